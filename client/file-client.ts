/**
 * The file methods of the client (CONTRACT.md "HTTP API") over any Transport (client/transport.ts):
 * get, download, stat, put, list, remove, mkdir, move. The library's Client (client/client.ts)
 * is this over undici, with the raw request and the tree verbs besides; the CLI's simple verbs
 * use it over node:http (client/http-transport.ts), which starts faster. One copy of the response
 * handling for both. Bodies are streamed both ways; nothing buffers a whole file. Remote paths are
 * paths in the served tree (`/etc/motd`), mapped to `/files/<percent-encoded segments>`.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Readable, Transform } from 'node:stream';
import { inspect } from 'node:util';
import { isNullgateError, ngError } from '../core/errors.js';
import { encodeNameComponent, fsPath } from '../core/name-bytes.js';
import {
  GID_HEADER,
  MODE_HEADER,
  MTIME_HEADER,
  TYPE_HEADER,
  UID_HEADER,
  parseId,
  parseMode,
  parseMtime,
} from '../core/file-meta.js';
import { LocalFileError, PartialTransferError, discardBody, isAbort, responseError } from './client-error.js';
import { ListingFormatError, ListingSplitter } from './listing.js';
import { type ProgressCallback, localTarget, saveTo } from './local-file.js';
import { ifRangeDate, stampMtime, strongLastModified } from './resume.js';
import { type Keep, type RemoteMeta, keepHeaders, keepLocally, localMeta } from './keep.js';
import type { Transport, TransportResponse } from './transport.js';

export type { ProgressCallback } from './local-file.js';

export type Headers = Record<string, string | string[] | undefined>;

export interface GetOptions {
  /** `bytes=0-99`, `0-99` (curl's `-r`), or `{ start, end? }` (inclusive, RFC 9110 §14.1.2). */
  readonly range?: string | { readonly start: number; readonly end?: number | undefined } | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly headers?: Record<string, string> | undefined;
}

export interface GetResult {
  readonly statusCode: number;
  readonly headers: Headers;
  /** The body, streamed: consume or destroy it. */
  readonly body: Readable;
  /** Content-Length of this response, when sent. */
  readonly contentLength: number | undefined;
}

export type { Keep } from './keep.js';

export interface DownloadOptions {
  /**
   * What of the remote file's metadata the local file keeps (X-Nullgate-* headers): 'mode' (the
   * default, as cp: the permission bits less the umask), 'all' (as cp -p: also the mtime, and
   * as root the owner and set-id bits), 'none'.
   */
  readonly keep?: Keep | undefined;
  /** Continue a partial local file with `Range: bytes=<its size>-` (curl `-C -`). */
  readonly resume?: boolean | undefined;
  /** Download only this range (not with `resume`); see GetOptions.range. */
  readonly range?: GetOptions['range'];
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ProgressCallback | undefined;
}

export interface DownloadResult {
  /** Bytes received in this call. */
  readonly bytes: number;
  /** Size of the local file now. */
  readonly size: number;
  /** True when a partial file was continued (206), false when it was written from the start. */
  readonly resumed: boolean;
  /**
   * Why a resume wrote the whole file over a partial one: `changed`, the server sent all of it
   * (If-Range failed: the remote file is not the one the partial file came from, or the server
   * does not resume); `unverifiable`, the partial file's mtime is no Last-Modified, so nothing
   * tells which version it holds. Undefined otherwise.
   */
  readonly restart: 'changed' | 'unverifiable' | undefined;
}

export interface PutOptions {
  /**
   * What of a local file's metadata the server is asked to keep (for a path source): 'mode'
   * (the default, as cp: the permission bits without set-id), 'all' (as cp -p: also the mtime,
   * and as root the owner and set-id bits; the server's rule of who may set what decides), 'none'.
   */
  readonly keep?: Keep | undefined;
  /** Content-Length for a stream source whose size the caller knows. */
  readonly size?: number | undefined;
  /** Fail with 412 instead of replacing an existing file (`If-None-Match: *`). */
  readonly noClobber?: boolean | undefined;
  readonly headers?: Record<string, string> | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ProgressCallback | undefined;
  /**
   * Resume the upload when the connection breaks or the server restarts (a local file only; see
   * client/resumable.ts): the server keeps what arrived, the client asks for the offset and sends
   * the rest. Waiting for a restarting server is the client's `wait`.
   */
  readonly resumable?: boolean | undefined;
  /** With `resumable`: called before each resumption with the offset the server reported and what broke. */
  readonly onResume?: ((offset: number, cause: unknown) => void) | undefined;
}

export interface PutResult {
  readonly path: string;
  readonly size: number;
  readonly etag: string;
  /** 201 (created) rather than 200 (replaced). */
  readonly created: boolean;
}

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface ListEntry {
  readonly name: string;
  readonly type: EntryType;
  readonly size: number;
  /** As the server sends it (ISO 8601 text or milliseconds since the epoch). */
  readonly mtime: string | number;
  readonly mode: number;
  /** Numeric owner; absent from servers that predate it. */
  readonly uid?: number;
  readonly gid?: number;
}

export interface Listing {
  readonly path: string;
  readonly entries: ListEntry[];
}

/**
 * A listing read as it arrives: iterate it once, entry by entry or (`batches()`) in the groups
 * that arrived together, which spares a caller that writes them out a write per entry.
 */
export interface ListingStream extends AsyncIterable<ListEntry> {
  /** The listing's path as the server sent it (it comes before the entries); undefined before. */
  readonly path: string | undefined;
  batches(): AsyncIterable<ListEntry[]>;
}

export interface ListOptions {
  readonly signal?: AbortSignal | undefined;
  /**
   * Entries `list()` holds at most (default MAX_LISTING_ENTRIES); a longer listing fails with
   * NG_ERR_RESPONSE_TOO_LARGE. `listStream()` holds one entry at a time and has no such bound.
   */
  readonly maxEntries?: number | undefined;
}

/**
 * Entries `list()` keeps by default: a few hundred bytes each, so about 150 MB at most. A server
 * streams a listing of any size, and a hostile one can make it endless.
 */
export const MAX_LISTING_ENTRIES = 500_000;
/** The JSON answer of an upload or an archive push is a few fields: read no more than this. */
const MAX_JSON_ANSWER = 1024 * 1024;

export interface StatResult {
  /** 'dir' when the server answered with a listing (X-Nullgate-Type), else 'file'. */
  readonly type: 'file' | 'dir';
  readonly size: number | undefined;
  readonly mtime: Date | undefined;
  readonly etag: string | undefined;
  readonly contentType: string | undefined;
  /** Permission bits (set-id and sticky included), owner, group, nanosecond mtime: when sent. */
  readonly mode: number | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly mtimeNs: bigint | undefined;
}

export interface RequestOptions {
  readonly headers?: Record<string, string | string[]> | undefined;
  readonly body?: string | Buffer | Uint8Array | Readable | null | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** `/etc/motd` → `etc/motd` with each segment percent-encoded; '/' kept, a trailing one too. */
export function encodeRemotePath(remotePath: string): string {
  if (remotePath.includes('\0')) {
    throw ngError('NG_ERR_INVALID_OPTION', `remote path contains a NUL byte: ${inspect(remotePath)}`);
  }
  return remotePath.replace(/^\/+/, '').split('/').map(encodeNameComponent).join('/');
}

export function filesPath(remotePath: string): string {
  return `/files/${encodeRemotePath(remotePath)}`;
}

export function archivePath(remoteDir: string): string {
  return `/archive/${encodeRemotePath(remoteDir)}`;
}

function rangeHeader(range: NonNullable<GetOptions['range']>): string {
  if (typeof range === 'string') return /^bytes=/i.test(range) ? range : `bytes=${range}`;
  const { start, end } = range;
  if (
    !Number.isSafeInteger(start) ||
    start < 0 ||
    (end !== undefined && (!Number.isSafeInteger(end) || end < start))
  ) {
    throw ngError('NG_ERR_INVALID_OPTION', `invalid range: ${inspect(range)}`);
  }
  return `bytes=${start}-${end ?? ''}`;
}

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function numberHeader(headers: Headers, name: string): number | undefined {
  const v = header(headers, name);
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** The complete length in `Content-Range: bytes a-b/N` or `bytes *\/N` (RFC 9110 §14.4). */
export function completeLength(contentRange: string | undefined): number | undefined {
  const m = contentRange && /\/(\d+)\s*$/.exec(contentRange);
  return m ? Number(m[1]) : undefined;
}

function rangeStart(contentRange: string | undefined): number | undefined {
  const m = contentRange && /^\s*bytes\s+(\d+)-/i.exec(contentRange);
  return m ? Number(m[1]) : undefined;
}

/** The metadata GET tells in X-Nullgate-* headers (core/file-meta.ts). */
function remoteMeta(headers: Headers): RemoteMeta {
  return {
    mode: parseMode(header(headers, MODE_HEADER)),
    uid: parseId(header(headers, UID_HEADER)),
    gid: parseId(header(headers, GID_HEADER)),
    mtimeNs: parseMtime(header(headers, MTIME_HEADER)),
  };
}

/** The server marks a directory listing with `X-Nullgate-Type: dir` (a file named x.json is JSON too). */
/** A local file `put` sends: open, its size when regular, its metadata as headers. */
export interface LocalSource {
  readonly fh: FileHandle;
  readonly regular: boolean;
  readonly size: number;
  readonly keep: Record<string, string>;
}

/** Opens `source` for `put` (a directory is EISDIR); every failure is a LocalFileError. */
export async function openLocal(source: string, keep: Keep): Promise<LocalSource> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(fsPath(source), 'r');
  } catch (err) {
    throw new LocalFileError('read', source, err);
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    return { fh, regular: st.isFile(), size: Number(st.size), keep: keepHeaders(localMeta(st), keep) };
  } catch (err) {
    await fh.close();
    throw new LocalFileError('read', source, err);
  }
}

/** A PUT's headers: the body's type, the metadata to keep, the caller's own, If-None-Match. */
export function putHeaders(keep: Record<string, string>, options: PutOptions): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    ...keep,
    ...options.headers,
  };
  if (options.noClobber) headers['if-none-match'] = '*';
  return headers;
}

function isListing(headers: Headers): boolean {
  return header(headers, TYPE_HEADER) === 'dir';
}

/** 2xx (RFC 9110 §15.3): the only answers the file methods take as done. */
function isSuccess(statusCode: number): boolean {
  return statusCode >= 200 && statusCode <= 299;
}

/** A pass-through that reports the running byte count. */
export function progressStream(
  onProgress: ProgressCallback,
  total: number | undefined,
  offset = 0,
): Transform {
  let done = offset;
  const { Transform } = process.getBuiltinModule('node:stream');
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      onProgress(done, total);
      cb(null, chunk);
    },
  });
}

export class FileClient {
  /** The address as users write it (`@nullgate`), for messages. */
  readonly socket: string;
  readonly #transport: Transport;

  constructor(transport: Transport, socket: string) {
    this.#transport = transport;
    this.socket = socket;
  }

  /** One request over the transport; an error status is returned, not thrown. */
  protected send(method: string, urlPath: string, options: RequestOptions = {}): Promise<TransportResponse> {
    return this.#transport.request({ method, path: urlPath, ...options });
  }

  /**
   * Like send(), but any answer that is not 2xx becomes a thrown ClientError. A redirect is an
   * error too: the file API never sends one, and following it (or saving its empty body as the
   * file, exit 0) would be trusting the server more than the user asked to.
   */
  protected async checked(
    method: string,
    urlPath: string,
    options: RequestOptions = {},
  ): Promise<TransportResponse> {
    const res = await this.send(method, urlPath, options);
    if (!isSuccess(res.statusCode)) throw await responseError(res, method, urlPath, this.socket);
    return res;
  }

  /** The JSON answer of a write (a few fields), read up to MAX_JSON_ANSWER bytes. */
  protected async json<T>(res: TransportResponse, method: string, urlPath: string): Promise<T> {
    const chunks: Buffer[] = [];
    let size = 0;
    res.body.on('error', () => undefined);
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_JSON_ANSWER) {
        await discardBody(res.body);
        throw ngError(
          'NG_ERR_RESPONSE_TOO_LARGE',
          `${method} ${urlPath} on ${this.socket}: the answer is larger than ${MAX_JSON_ANSWER} bytes`,
        );
      }
      chunks.push(chunk);
    }
    try {
      return JSON.parse(Buffer.concat(chunks, size).toString('utf8')) as T;
    } catch (err) {
      throw ngError('NG_ERR_HTTP', `${method} ${urlPath} on ${this.socket}: the answer is not JSON`, err);
    }
  }

  /** GET a file: status, headers and the streamed body (206 when a range was asked and granted). */
  async get(remotePath: string, options: GetOptions = {}): Promise<GetResult> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.range !== undefined) headers.range = rangeHeader(options.range);
    const res = await this.checked('GET', filesPath(remotePath), { headers, signal: options.signal });
    if (isListing(res.headers)) throw await this.notAFile(res, 'GET', remotePath);
    return {
      statusCode: res.statusCode,
      headers: res.headers,
      body: res.body,
      contentLength: numberHeader(res.headers, 'content-length'),
    };
  }

  /** A listing came where a file was asked for: its body is dropped, the error says what it is. */
  private async notAFile(res: TransportResponse, method: string, remotePath: string): Promise<Error> {
    await discardBody(res.body);
    return ngError(
      'NG_ERR_IS_A_DIRECTORY',
      `${method} ${filesPath(remotePath)} on ${this.socket}: ${remotePath} is a directory, not a file (list it with ls, copy it with pull)`,
    );
  }

  /** HEAD a file: its size, mtime, ETag and type without the body. */
  async stat(remotePath: string, options: { signal?: AbortSignal | undefined } = {}): Promise<StatResult> {
    const res = await this.checked('HEAD', filesPath(remotePath), { signal: options.signal });
    await discardBody(res.body);
    const lm = header(res.headers, 'last-modified');
    const mtimeNs = parseMtime(header(res.headers, MTIME_HEADER));
    return {
      type: isListing(res.headers) ? 'dir' : 'file',
      size: numberHeader(res.headers, 'content-length'),
      mtime:
        mtimeNs !== undefined
          ? new Date(Number(mtimeNs / 1_000_000n))
          : lm === undefined
            ? undefined
            : new Date(lm),
      etag: header(res.headers, 'etag'),
      contentType: header(res.headers, 'content-type'),
      mode: parseMode(header(res.headers, MODE_HEADER)),
      uid: parseId(header(res.headers, UID_HEADER)),
      gid: parseId(header(res.headers, GID_HEADER)),
      mtimeNs,
    };
  }

  /**
   * Downloads to `localFile`. The body goes to a temporary name in the same directory, renamed
   * over `localFile` only when complete: a failed download leaves the old file (or none) and no
   * temporary file. Not a regular file (`/dev/null`): written in place (see local-file.ts).
   *
   * With `resume` (curl's `-C -`) `localFile` is written in place, so a cut transfer leaves what
   * arrived for the next try, and a partial `localFile` is continued from its size (`Range:
   * bytes=N-`) only if the remote file is the one it holds part of: `If-Range` with the partial
   * file's mtime, which a resumed download stamps from the remote Last-Modified (client/resume.ts).
   * A remote file that changed since, a server that ignores the range, or a partial file whose
   * mtime is no Last-Modified: the whole file, saved like a plain download (`restart` says why).
   */
  async download(
    remotePath: string,
    localFile: string,
    options: DownloadOptions = {},
  ): Promise<DownloadResult> {
    const urlPath = filesPath(remotePath);
    if (options.resume && options.range !== undefined) {
      throw ngError('NG_ERR_INVALID_OPTION', 'invalid download options: resume and range exclude each other');
    }
    const target = await localTarget(localFile);
    const validator = options.resume && target.size > 0 ? ifRangeDate(target.mtimeNs) : undefined;
    const offset = validator === undefined ? 0 : target.size;
    const headers: Record<string, string> = {};
    if (validator !== undefined) {
      headers.range = `bytes=${offset}-`;
      headers['if-range'] = validator;
    } else if (options.range !== undefined) headers.range = rangeHeader(options.range);
    const res = await this.send('GET', urlPath, { headers, signal: options.signal });
    if (offset > 0 && res.statusCode === 416) {
      // RFC 9110 §15.5.17: `Content-Range: bytes */N` gives the size; equal means already complete
      // (curl -C - treats it the same way). If-Range held, so it is the same file.
      const total = completeLength(header(res.headers, 'content-range'));
      const error = await responseError(res, 'GET', urlPath, this.socket);
      if (total === offset) return { bytes: 0, size: offset, resumed: true, restart: undefined };
      throw error;
    }
    if (!isSuccess(res.statusCode)) throw await responseError(res, 'GET', urlPath, this.socket);
    if (isListing(res.headers)) throw await this.notAFile(res, 'GET', remotePath);
    const length = numberHeader(res.headers, 'content-length');
    // A small answer the transport holds whole is written as it is (no stream is made for it).
    const body = res.whole ?? (res.body as AsyncIterable<Buffer>);
    // A resumed download keeps the remote Last-Modified as its validator, also when it is cut.
    const stamp = options.resume
      ? strongLastModified(header(res.headers, 'last-modified'), header(res.headers, 'date'))
      : undefined;
    const restart: DownloadResult['restart'] =
      !options.resume || target.size === 0
        ? undefined
        : validator === undefined
          ? 'unverifiable'
          : res.statusCode === 206
            ? undefined
            : 'changed';
    const append = offset > 0 && res.statusCode === 206;
    if (append && rangeStart(header(res.headers, 'content-range')) !== offset) {
      await discardBody(res.body);
      throw ngError(
        'NG_ERR_HTTP',
        `GET ${urlPath} on ${this.socket}: 206 for a range that does not start at ${offset}`,
      );
    }
    // 200, also when a resume's range was ignored (RFC 9110 §14.2: a server may) or If-Range
    // failed, or the 206 of -r: the whole file. A resume with nothing local yet writes in place,
    // so a cut leaves the part that arrived; over a partial file, a temporary name as usual, so
    // a cut leaves the partial file as it was (and its mtime: it still holds the old version).
    const how = append || (options.resume && target.size === 0 && !target.inPlace) ? 'append' : 'replace';
    const remote = remoteMeta(res.headers);
    const keep = options.keep ?? 'mode';
    const save = {
      onProgress: options.onProgress,
      offset: append ? offset : 0,
      length,
      finish: (file: string | number) => keepLocally(file, remote, keep),
    };
    let bytes: number;
    try {
      bytes = await saveTo(target, body, how, save);
    } catch (err) {
      if (how === 'append' && !target.inPlace) await stampMtime(target.path, stamp);
      throw err;
    }
    // -p's exact mtime, not the resume's whole second, when both are asked for.
    if (!target.inPlace && keep !== 'all') await stampMtime(target.path, stamp);
    return { bytes, size: save.offset + bytes, resumed: append, restart };
  }

  /**
   * Uploads a local file (path) or a stream. The server writes it atomically (CONTRACT.md: PUT
   * /files). Content-Length is sent when the size is known, otherwise the body is chunked.
   */
  async put(source: string | Readable, remotePath: string, options: PutOptions = {}): Promise<PutResult> {
    let body: Readable;
    let size = options.size;
    let localName = '<stream>';
    let keep: Record<string, string> = {};
    if (typeof source === 'string') {
      localName = source;
      const local = await openLocal(source, options.keep ?? 'mode');
      if (local.regular && options.resumable === true) {
        try {
          return await this.putResumableFile(local, source, remotePath, options);
        } finally {
          await local.fh.close();
        }
      }
      if (local.regular) size = local.size;
      keep = local.keep;
      body = local.fh.createReadStream();
    } else {
      body = source;
    }
    // undici destroys the stream it was given when the request fails; handing it a pass-through
    // keeps `body` errors (the local file) apart from connection errors.
    let localErr: unknown;
    const { PassThrough } = process.getBuiltinModule('node:stream');
    const upload = options.onProgress ? progressStream(options.onProgress, size) : new PassThrough();
    body.once('error', (err) => {
      localErr ??= err;
      upload.destroy(err);
    });
    body.pipe(upload);

    const headers = putHeaders(keep, options);
    if (size !== undefined) headers['content-length'] = String(size);
    let res: TransportResponse;
    try {
      res = await this.checked('PUT', filesPath(remotePath), {
        headers,
        body: upload,
        signal: options.signal,
      });
    } catch (err) {
      body.unpipe(upload);
      if (typeof source === 'string') body.destroy();
      if (localErr !== undefined) throw new LocalFileError('read', localName, localErr);
      throw err;
    }
    const out = await this.json<{ path: string; size: number; etag: string }>(
      res,
      'PUT',
      filesPath(remotePath),
    );
    return { path: out.path, size: out.size, etag: out.etag, created: res.statusCode === 201 };
  }

  /**
   * `put` with `resumable`, of a regular file (`local`, closed by the caller): the library's
   * Client does it over undici (client/resumable.ts); the CLI opens a Client for it.
   */
  protected putResumableFile(
    local: LocalSource,
    source: string,
    remotePath: string,
    options: PutOptions,
  ): Promise<PutResult> {
    void local;
    void options;
    return Promise.reject(
      ngError(
        'NG_ERR_INVALID_OPTION',
        `PUT ${filesPath(remotePath)}: a resumable upload (of ${source}) needs the Client`,
      ),
    );
  }

  /**
   * The JSON listing of a directory, sorted by name (CONTRACT.md: GET /files/<dir>), all of it:
   * at most `maxEntries` entries (see ListOptions). listStream() reads any size.
   */
  async list(remotePath: string, options: ListOptions = {}): Promise<Listing> {
    const max = options.maxEntries ?? MAX_LISTING_ENTRIES;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw ngError('NG_ERR_INVALID_OPTION', `invalid maxEntries: expected a count, got ${inspect(max)}`);
    }
    const dir = remotePath.endsWith('/') ? remotePath : `${remotePath}/`;
    const stream = await this.listStream(remotePath, { signal: options.signal });
    const entries: ListEntry[] = [];
    for await (const entry of stream) {
      if (entries.length >= max) {
        throw ngError(
          'NG_ERR_RESPONSE_TOO_LARGE',
          `GET ${filesPath(dir)} on ${this.socket}: the listing has more than ${max} entries`,
        );
      }
      entries.push(entry);
    }
    return { path: stream.path ?? dir, entries };
  }

  /**
   * The listing of a directory as it streams in, one entry at a time (client/listing.ts): a
   * directory of any size (or a server that never ends its listing) costs the memory of one
   * entry. A malformed listing fails the iteration with NG_ERR_HTTP, a cut one with
   * PartialTransferError.
   */
  async listStream(
    remotePath: string,
    options: { signal?: AbortSignal | undefined } = {},
  ): Promise<ListingStream> {
    const dir = remotePath.endsWith('/') ? remotePath : `${remotePath}/`;
    const urlPath = filesPath(dir);
    const res = await this.checked('GET', urlPath, {
      signal: options.signal,
      headers: { accept: 'application/json' },
    });
    const where = `GET ${urlPath} on ${this.socket}`;
    const type = header(res.headers, 'content-type') ?? '';
    if (!/json/i.test(type)) {
      await discardBody(res.body);
      throw ngError('NG_ERR_HTTP', `${where}: not a directory listing (${type || 'no content type'})`);
    }
    const splitter = new ListingSplitter();
    const body = res.body;
    const length = numberHeader(res.headers, 'content-length');
    const malformed = (err: unknown): Error =>
      err instanceof ListingFormatError
        ? ngError('NG_ERR_HTTP', `${where}: not a directory listing (${err.message})`, err)
        : (err as Error);
    async function* batches(): AsyncGenerator<ListEntry[]> {
      // Leaving early (a consumer that stops, a malformed listing) destroys the body: its abort
      // error must not go unheard.
      body.on('error', () => undefined);
      let received = 0;
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          received += chunk.length;
          let batch: unknown[];
          try {
            batch = splitter.push(chunk);
          } catch (err) {
            throw malformed(err);
          }
          for (const entry of batch) {
            if (
              typeof entry !== 'object' ||
              entry === null ||
              typeof (entry as ListEntry).name !== 'string'
            ) {
              throw ngError('NG_ERR_HTTP', `${where}: not a directory listing (an entry has no name)`);
            }
          }
          if (batch.length > 0) yield batch as ListEntry[];
          // The listing is complete: whatever else the body holds is not read (leaving the loop
          // destroys the body).
          if (splitter.done) break;
        }
      } catch (err) {
        if (isNullgateError(err) || isAbort(err)) throw err;
        throw new PartialTransferError(received, length, err);
      }
      try {
        splitter.end();
      } catch (err) {
        throw malformed(err);
      }
    }
    const iterator = batches();
    async function* entries(): AsyncGenerator<ListEntry> {
      for await (const batch of iterator) yield* batch;
    }
    return {
      get path() {
        return splitter.path;
      },
      batches: () => iterator,
      [Symbol.asyncIterator]: entries,
    };
  }

  /** Deletes a file or an empty directory; `recursive` deletes a whole tree. */
  async remove(
    remotePath: string,
    options: { recursive?: boolean | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<void> {
    const urlPath = filesPath(remotePath) + (options.recursive ? '?recursive=1' : '');
    const res = await this.checked('DELETE', urlPath, { signal: options.signal });
    await res.body.dump();
  }

  /** Creates a directory and its parents; `created` is false when it already was one. */
  async mkdir(
    remotePath: string,
    options: { signal?: AbortSignal | undefined } = {},
  ): Promise<{ created: boolean }> {
    const dir = remotePath.endsWith('/') ? remotePath : `${remotePath}/`;
    const res = await this.checked('PUT', filesPath(dir), {
      body: '',
      headers: { 'content-length': '0' },
      signal: options.signal,
    });
    await res.body.dump();
    return { created: res.statusCode === 201 };
  }

  /** Renames within the served tree; `overwrite: false` fails (412) when `to` exists. */
  async move(
    from: string,
    to: string,
    options: { overwrite?: boolean | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<{ replaced: boolean }> {
    const headers: Record<string, string> = { destination: filesPath(to) };
    if (options.overwrite === false) headers.overwrite = 'F';
    const res = await this.checked('MOVE', filesPath(from), { headers, signal: options.signal });
    await res.body.dump();
    return { replaced: res.statusCode === 204 };
  }

  /** Waits for requests in flight, then closes the connections. */
  close(): Promise<void> {
    return this.#transport.close();
  }

  /** Closes at once, failing requests in flight. */
  destroy(): Promise<void> {
    return this.#transport.destroy();
  }
}
