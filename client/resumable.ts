/**
 * The client side of resumable uploads (routes/resumable.ts; draft-ietf-httpbis-resumable-upload):
 * `Client.put(file, remote, { resumable: true })`. The upload starts as one PUT of the whole file
 * with `Upload-Complete: ?1` (the draft's "optimistic creation": no extra round trip when nothing
 * breaks); the server names the upload resource in a 104 interim response. When the connection
 * breaks (or the server restarts: the client's `wait` lets the next connection wait for it), the
 * client asks the resource for its offset (HEAD) and sends the rest of the file from there
 * (PATCH, `application/partial-upload`), as often as it takes while each attempt makes progress.
 * Only a local file can be resumed: its bytes can be read again from any offset.
 */
import type { FileHandle } from 'node:fs/promises';
import { PassThrough, Readable, Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ngError } from '../core/errors.js';
import { ClientError, discardBody, isAbort, LocalFileError, responseError } from './client-error.js';
import type { ProgressCallback } from './local-file.js';

/** What putResumable needs of the Client (passed in: client.ts imports this file). */
export interface ResumableTransport {
  readonly dispatcher: Dispatcher;
  /** The socket as text, for messages. */
  readonly socket: string;
  readonly origin: string;
}

export interface ResumableRequest {
  readonly fh: FileHandle;
  readonly localName: string;
  readonly size: number;
  /** The /files URL path of the target. */
  readonly urlPath: string;
  /** Headers of the creating PUT (If-None-Match, digests, the caller's own). */
  readonly headers: Record<string, string>;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ProgressCallback | undefined;
  /** Called before each resumption with the offset the server reported. */
  readonly onResume?: ((offset: number, cause: unknown) => void) | undefined;
}

export interface ResumableAnswer {
  readonly statusCode: number;
  readonly res: Dispatcher.ResponseData | undefined;
  /** When the outcome was learned from HEAD (the final answer was lost): the completed size and ETag. */
  readonly completed?: { readonly size: number; readonly etag: string } | undefined;
}

/** The pause before asking again after a HEAD that got no answer. */
const RETRY_PAUSE_MS = 250;

/** Bytes read from the local file at a time. */
const READ_CHUNK = 256 * 1024;

/** Attempts in a row that may end without the offset moving before the upload is given up. */
const MAX_STALLED = 3;

function header(res: Dispatcher.ResponseData, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * May the upload go on after `err`? A broken transfer (the connection closed or reset, no
 * answer) yes; an answer the server gave (ClientError: 4xx), a local file error or an abort the
 * caller asked for, no; a 5xx yes (the draft: the client MAY resume).
 */
function resumableFailure(err: unknown): boolean {
  if (isAbort(err) || err instanceof LocalFileError) return false;
  if (err instanceof ClientError) return err.statusCode >= 500;
  const code = (err as { code?: unknown } | null)?.code;
  // The connector's own refusals (an untrusted server, a bad address) are final.
  return code !== 'NG_ERR_SERVER_UNTRUSTED' && code !== 'NG_ERR_ADDRESS_INVALID';
}

/** The file from `offset`, counted for the progress callback from `offset` on. */
function bodyFrom(
  fh: FileHandle,
  offset: number,
  size: number,
  onProgress: ProgressCallback | undefined,
  localErr: { err?: unknown },
): Readable {
  // Read with positioned reads on the handle: a file stream, destroyed with the body of a failed
  // attempt (undici does), would close the fd the next attempt needs.
  let position = offset;
  const file = new Readable({
    highWaterMark: READ_CHUNK,
    read() {
      const buffer = Buffer.allocUnsafe(READ_CHUNK);
      fh.read(buffer, 0, READ_CHUNK, position).then(
        ({ bytesRead }) => {
          if (bytesRead === 0) {
            this.push(null);
            return;
          }
          position += bytesRead;
          this.push(buffer.subarray(0, bytesRead));
        },
        (err: unknown) => this.destroy(err as Error),
      );
    },
  });
  let done = offset;
  const out = onProgress
    ? new Transform({
        transform(chunk: Buffer, _enc, cb) {
          done += chunk.length;
          onProgress(done, size);
          cb(null, chunk);
        },
      })
    : new PassThrough();
  // undici destroys the stream it was given when the request fails; the pass-through keeps the
  // file's own errors apart from the connection's (and the FileHandle open for the next attempt).
  file.once('error', (err) => {
    localErr.err ??= err;
    out.destroy(err);
  });
  out.once('close', () => {
    file.unpipe(out);
    file.destroy();
  });
  file.pipe(out);
  return out;
}

/**
 * Uploads `req.fh` whole, resuming as described at the top. Resolves with the final answer (2xx,
 * its body unread), or with what HEAD said of a completed upload whose answer was lost; throws
 * the error that ended it otherwise (a ClientError for an answer, the transport's error when no
 * answer came and there is nothing to resume).
 */
export async function putResumable(t: ResumableTransport, req: ResumableRequest): Promise<ResumableAnswer> {
  const localErr: { err?: unknown } = {};
  let location: string | undefined;
  const send = async (
    method: string,
    path: string,
    headers: Record<string, string>,
    offset: number,
  ): Promise<Dispatcher.ResponseData> => {
    const opts: Dispatcher.RequestOptions = {
      origin: t.origin,
      path,
      method,
      headers: { ...headers, 'content-length': String(req.size - offset) },
      body: bodyFrom(req.fh, offset, req.size, req.onProgress, localErr),
      onInfo: ({ statusCode, headers: info }) => {
        // 104 Upload Resumption Supported (§5): the resource, announced before the body is read.
        const named = info.location;
        if (statusCode === 104 && typeof named === 'string' && named.startsWith('/')) location ??= named;
      },
    };
    if (req.signal) opts.signal = req.signal;
    try {
      return await t.dispatcher.request(opts);
    } catch (err) {
      if (localErr.err !== undefined) throw new LocalFileError('read', req.localName, localErr.err);
      throw err;
    }
  };
  const checked = async (res: Dispatcher.ResponseData, method: string, path: string) => {
    if (res.statusCode >= 200 && res.statusCode <= 299) return res;
    throw await responseError(res, method, path, t.socket);
  };

  let failure: unknown;
  try {
    const res = await send(
      'PUT',
      req.urlPath,
      { ...req.headers, 'upload-complete': '?1', 'upload-length': String(req.size) },
      0,
    );
    return { statusCode: res.statusCode, res: await checked(res, 'PUT', req.urlPath) };
  } catch (err) {
    if (location === undefined || !resumableFailure(err)) throw err;
    failure = err;
  }

  let stalled = 0;
  let lastOffset = -1;
  for (;;) {
    // HEAD: where is it? (§4.3) With `wait`, the connection waits for a restarting server. One
    // that fails (a dying server can still accept, then reset) counts as an attempt without
    // progress, tried again after a pause.
    let head: Dispatcher.ResponseData;
    try {
      head = await t.dispatcher.request({
        origin: t.origin,
        path: location,
        method: 'HEAD',
        ...(req.signal ? { signal: req.signal } : {}),
      });
    } catch (err) {
      if (!resumableFailure(err) || ++stalled >= MAX_STALLED) throw err;
      failure = err;
      await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      continue;
    }
    if (head.statusCode !== 204 && head.statusCode !== 200) {
      const error = await responseError(head, 'HEAD', location, t.socket);
      throw head.statusCode === 404 ? Object.assign(error, { cause: failure }) : error;
    }
    await discardBody(head.body);
    const offset = Number(header(head, 'upload-offset'));
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > req.size) {
      throw ngError(
        'NG_ERR_HTTP',
        `HEAD ${location} on ${t.socket}: no usable Upload-Offset (${header(head, 'upload-offset')})`,
      );
    }
    if (header(head, 'upload-complete') === '?1') {
      // Completed, its answer lost: what HEAD tells is the outcome.
      return {
        statusCode: 200,
        res: undefined,
        completed: { size: offset, etag: header(head, 'etag') ?? '' },
      };
    }
    stalled = offset > lastOffset ? 0 : stalled + 1;
    if (stalled >= MAX_STALLED) throw failure;
    lastOffset = offset;
    req.onResume?.(offset, failure);
    try {
      const res = await send(
        'PATCH',
        location,
        {
          'content-type': 'application/partial-upload',
          'upload-offset': String(offset),
          'upload-complete': '?1',
        },
        offset,
      );
      // 409: the offset moved meanwhile (a cut transfer landed late): ask again.
      if (res.statusCode === 409) {
        failure = await responseError(res, 'PATCH', location, t.socket);
        continue;
      }
      return { statusCode: res.statusCode, res: await checked(res, 'PATCH', location) };
    } catch (err) {
      if (!resumableFailure(err)) throw err;
      failure = err;
    }
  }
}
