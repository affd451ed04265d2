/**
 * Client: the file API of CONTRACT.md ("HTTP API") as typed methods over one undici Agent on a
 * nullgate socket. The file methods (get, download, stat, put, list, remove, mkdir, move) are
 * FileClient's (client/file-client.ts), which the CLI also runs over node:http; this adds the raw
 * request, the undici dispatcher, resumable uploads and the tree verbs (pull, push, sync).
 */
import type { PullResult } from './archive.js';
import type { SyncOptions, SyncResult } from './sync.js';
import { inspect } from 'node:util';
import type { Agent as AgentType, Dispatcher } from 'undici';
import { type Address, DEFAULT_ADDRESS, formatAddress, parseAddress } from '../core/address.js';
import { ngError } from '../core/errors.js';
import { ClientError, LocalFileError, PartialTransferError, isAbort } from './client-error.js';
import { connector } from './connector.js';
import {
  FileClient,
  type LocalSource,
  type ProgressCallback,
  type PutOptions,
  type PutResult,
  type RequestOptions,
  archivePath,
  filesPath,
  numberHeader,
  putHeaders,
} from './file-client.js';
import { putResumable } from './resumable.js';
import type { Transport } from './transport.js';
import { Agent } from './undici-core.js';

export {
  FileClient,
  MAX_LISTING_ENTRIES,
  archivePath,
  completeLength,
  encodeRemotePath,
  filesPath,
  progressStream,
  type DownloadOptions,
  type DownloadResult,
  type EntryType,
  type GetOptions,
  type GetResult,
  type Headers,
  type Keep,
  type ListEntry,
  type Listing,
  type ListingStream,
  type ListOptions,
  type ProgressCallback,
  type PutOptions,
  type PutResult,
  type RequestOptions,
  type StatResult,
} from './file-client.js';

/** The host is irrelevant on a unix socket; undici needs an origin all the same. */
export const ORIGIN = 'http://localhost';

export interface ClientOptions {
  /** `@name`, a socket path, or a parsed Address; default `@nullgate`. */
  readonly socket?: string | Address | undefined;
  /** Seconds to keep retrying while no server listens yet (`--wait`). Default 0. */
  readonly wait?: number | undefined;
  /**
   * Uids besides root and the client's own whose server is trusted (connector's `serverUids`);
   * a server run by anyone else is refused before a byte is sent (NG_ERR_SERVER_UNTRUSTED).
   */
  readonly serverUids?: readonly number[] | undefined;
  /** Milliseconds undici waits for response headers / between body chunks (undici's defaults otherwise). */
  readonly headersTimeout?: number | undefined;
  readonly bodyTimeout?: number | undefined;
}

export type { PullResult } from './archive.js';
export type { SyncOptions, SyncResult } from './sync.js';

export interface ArchiveOptions {
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ProgressCallback | undefined;
}

export interface PushResult {
  readonly files: number;
  readonly dirs: number;
  readonly bytes: number;
  /** Local entries that are not files, directories or symlinks (sockets, FIFOs, devices). */
  readonly skipped: string[];
}

/** undici's request options for a request of the file API. */
function dispatchOptions(
  method: string,
  urlPath: string,
  options: RequestOptions,
): Dispatcher.RequestOptions {
  const opts: Dispatcher.RequestOptions = { origin: ORIGIN, path: urlPath, method };
  if (options.headers) opts.headers = options.headers;
  if (options.body !== undefined) opts.body = options.body;
  if (options.signal) opts.signal = options.signal;
  return opts;
}

function undiciTransport(agent: AgentType): Transport {
  return {
    request: (r) => agent.request(dispatchOptions(r.method, r.path, r)),
    close: () => agent.close(),
    destroy: () => agent.destroy(),
  };
}

/** The undici Agent a Client runs on, from its options (validated here, once). */
function agentFor(options: ClientOptions): { address: Address; agent: AgentType } {
  if (options === null || typeof options !== 'object') {
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      `invalid Client options: expected an object, got ${inspect(options)}`,
    );
  }
  const wait = options.wait ?? 0;
  if (typeof wait !== 'number' || !Number.isFinite(wait) || wait < 0) {
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      `invalid wait: expected a non-negative number of seconds, got ${inspect(wait)}`,
    );
  }
  const socket = options.socket ?? DEFAULT_ADDRESS;
  const address = typeof socket === 'string' ? parseAddress(socket) : socket;
  const agentOptions: AgentType.Options = {
    connect: connector(address, { waitMs: wait * 1000, serverUids: options.serverUids }),
  };
  if (options.headersTimeout !== undefined) agentOptions.headersTimeout = options.headersTimeout;
  if (options.bodyTimeout !== undefined) agentOptions.bodyTimeout = options.bodyTimeout;
  return { address, agent: new Agent(agentOptions) };
}

export class Client extends FileClient {
  readonly address: Address;
  readonly #agent: AgentType;

  constructor(options: ClientOptions = {}) {
    const { address, agent } = agentFor(options);
    super(undiciTransport(agent), formatAddress(address));
    this.address = address;
    this.#agent = agent;
  }

  /** The undici dispatcher, for `request(url, { dispatcher })`, `fetch` and friends. */
  get dispatcher(): Dispatcher {
    return this.#agent;
  }

  /** A raw request: any method, any URL path (`/health`, `/files/x?y`). Error statuses are returned, not thrown. */
  request(method: string, urlPath: string, options: RequestOptions = {}): Promise<Dispatcher.ResponseData> {
    if (!urlPath.startsWith('/')) {
      throw ngError(
        'NG_ERR_INVALID_OPTION',
        `invalid URL path: must start with '/', got ${inspect(urlPath)}`,
      );
    }
    return this.#agent.request(dispatchOptions(method, urlPath, options));
  }

  /** `put` with `resumable`, of a regular file (`local`, closed by the caller). */
  protected override async putResumableFile(
    local: LocalSource,
    source: string,
    remotePath: string,
    options: PutOptions,
  ): Promise<PutResult> {
    const { fh, size } = local;
    const headers = putHeaders(local.keep, options);
    const urlPath = filesPath(remotePath);
    const answer = await putResumable(
      { dispatcher: this.#agent, socket: this.socket, origin: ORIGIN },
      {
        fh,
        localName: source,
        size,
        urlPath,
        headers,
        signal: options.signal,
        onProgress: options.onProgress,
        onResume: options.onResume,
      },
    );
    if (answer.res === undefined) {
      // Completed, but its answer was lost: HEAD told the size and ETag (whether it was new is unknown).
      return {
        path: remotePath,
        size: answer.completed?.size ?? size,
        etag: answer.completed?.etag ?? '',
        created: false,
      };
    }
    const out = await this.json<{ path: string; size: number; etag: string }>(answer.res, 'PUT', urlPath);
    return { path: out.path, size: out.size, etag: out.etag, created: answer.statusCode === 201 };
  }

  /** Puts the contents of REMOTE_DIR into LOCAL_DIR (created if missing), from GET /archive. */
  async pull(remoteDir: string, localDir: string, options: ArchiveOptions = {}): Promise<PullResult> {
    const urlPath = archivePath(remoteDir);
    const res = await this.checked('GET', urlPath, { signal: options.signal });
    // tar-stream is loaded only by the verbs that need it (CLI startup time).
    const { extractTar } = await import('./archive.js');
    let cut: unknown;
    res.body.once('error', (err) => (cut ??= err));
    try {
      return await extractTar(res.body, localDir, options.onProgress);
    } catch (err) {
      // The connection failing mid-archive (not an entry refused, not a local write).
      // (The body's 'error' event may come after the rejection it caused: ask the stream too.)
      cut ??= res.body.errored ?? undefined;
      if (cut !== undefined && err === cut && !isAbort(err)) {
        throw new PartialTransferError(undefined, numberHeader(res.headers, 'content-length'), err);
      }
      throw err;
    }
  }

  /** Puts the contents of LOCAL_DIR into REMOTE_DIR, as one tar stream to PUT /archive. */
  async push(localDir: string, remoteDir: string, options: ArchiveOptions = {}): Promise<PushResult> {
    const { packTar, sendPacked } = await import('./archive.js');
    const packed = await packTar(localDir, options.onProgress);
    const res = await sendPacked(packed, (body) =>
      this.checked('PUT', archivePath(remoteDir), {
        headers: { 'content-type': 'application/x-tar' },
        body,
        signal: options.signal,
      }),
    );
    const out = await this.json<{ files?: number; dirs?: number; bytes?: number }>(
      res,
      'PUT',
      archivePath(remoteDir),
    );
    return { files: out.files ?? 0, dirs: out.dirs ?? 0, bytes: out.bytes ?? 0, skipped: packed.skipped };
  }

  /**
   * Makes REMOTE_DIR equal to LOCAL_DIR sending only what differs (`push --sync`, client/sync.ts):
   * one PUT /archive/<dir>?sync=1, applied all or nothing, deletions included (`delete`).
   */
  async pushSync(localDir: string, remoteDir: string, options: SyncOptions = {}): Promise<SyncResult> {
    const { pushSync } = await import('./sync.js');
    return pushSync(this, localDir, archivePath(remoteDir), options);
  }

  /** Makes LOCAL_DIR equal to REMOTE_DIR fetching only what differs (`pull --sync`, client/sync.ts). */
  async pullSync(remoteDir: string, localDir: string, options: SyncOptions = {}): Promise<SyncResult> {
    const { pullSync } = await import('./sync.js');
    return pullSync(this, archivePath(remoteDir), localDir, options);
  }

  /** Waits for requests in flight, then closes the connections. */
}

export { ClientError, LocalFileError, PartialTransferError };
