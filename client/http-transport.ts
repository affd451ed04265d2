/**
 * The client's HTTP/1.1 path over node:http, for the CLI's simple verbs (get, ls, rm, mkdir, mv,
 * put of a small file): node's client parses with the llhttp compiled into node, so a `get`
 * starts without loading undici and compiling its WebAssembly parser, which was most of a short
 * command's time (docs/performance.md, "Client start-up"). Internal: the library's Client is on
 * undici, and so are the streaming verbs.
 *
 * It behaves as the undici Agent does where a user can tell: the socket comes from the same
 * connector (exact-length connect, the server vetted before a byte is sent); a connection that
 * ends before the answer or in the middle of its body fails with undici's SocketError shape
 * (`UND_ERR_SOCKET`, "other side closed"), one idle for undici's default 300 s with its
 * HeadersTimeoutError or BodyTimeoutError shape; headers come as undici gives them. Each
 * request has a connection of its own (`Connection: close`): a verb sends one or two requests,
 * and a server that does not keep connections alive needs nothing else.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Connector } from './connector.js';
import type {
  BodyReceipt,
  ResponseBody,
  ResponseHeaders,
  Transport,
  TransportRequest,
  TransportResponse,
} from './transport.js';

/** undici's default headersTimeout and bodyTimeout: how long a connection may stay silent. */
export const IDLE_TIMEOUT_MS = 300_000;
/** A rest this small is read to its end by dump(); a larger one closes the connection (undici's limit). */
const DUMP_LIMIT = 128 * 1024;

/** An error shaped as undici's own of that name (its `name`, `code` and default message). */
function undiciShaped(name: string, code: string, message: string): Error {
  const err = new Error(message);
  err.name = name;
  return Object.assign(err, { code });
}

const otherSideClosed = (): Error => undiciShaped('SocketError', 'UND_ERR_SOCKET', 'other side closed');

function aborted(signal: AbortSignal): Error {
  const err = new Error('This operation was aborted', { cause: signal.reason });
  err.name = 'AbortError';
  return Object.assign(err, { code: 'ABORT_ERR' });
}

/** Lower-cased names, a repeated header as an array: the shape undici gives (node:http joins some with ', '). */
function headersOf(raw: readonly string[]): ResponseHeaders {
  const headers: ResponseHeaders = Object.create(null) as ResponseHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const had = headers[name];
    headers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  return headers;
}

/** undici's BodyReadable.dump(): a small rest is read and dropped, a larger one closes the connection. */
function dump(res: http.IncomingMessage): Promise<void> {
  if (res.readableEnded || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    res.on('error', () => undefined);
    res.once('end', resolve);
    res.once('close', resolve);
    const length = Number(res.headers['content-length']);
    if (length > DUMP_LIMIT) {
      res.destroy();
      return;
    }
    let read = 0;
    res.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > DUMP_LIMIT) res.destroy();
    });
  });
}

/**
 * Bodies this large or larger are moved into a file natively (client/native-body.ts) when a
 * download asks (ResponseBody.receiveInto): below it, loading that module and starting a thread
 * cost more than the copies they save, and a small `get` loads nothing it does not need.
 */
export const NATIVE_BODY_MIN_BYTES = 1024 * 1024;

/**
 * `NULLGATE_ZERO_COPY_DOWNLOADS`: `0` takes every body through JS (to compare both paths),
 * `always` takes any body with a Content-Length natively (tests); anything else, or unset, the
 * default: natively from NATIVE_BODY_MIN_BYTES on. Read per response.
 */
function nativeMode(): 'off' | 'always' | 'auto' {
  const value = process.env.NULLGATE_ZERO_COPY_DOWNLOADS;
  if (value === '0' || value === 'off') return 'off';
  if (value === 'always') return 'always';
  return 'auto';
}

/**
 * The length of a body a native receive can take: an identity body (no Transfer-Encoding, no
 * Content-Encoding) with a Content-Length, over the threshold. Else undefined (JS only).
 */
function nativeLength(res: http.IncomingMessage): number | undefined {
  const mode = nativeMode();
  if (mode === 'off') return undefined;
  const { headers } = res;
  if (headers['transfer-encoding'] !== undefined || headers['content-encoding'] !== undefined)
    return undefined;
  const declared = headers['content-length'];
  if (declared === undefined || !/^\d+$/.test(declared)) return undefined;
  const length = Number(declared);
  if (!Number.isSafeInteger(length) || length === 0) return undefined;
  return mode === 'always' || length >= NATIVE_BODY_MIN_BYTES ? length : undefined;
}

/** ResponseBody.receiveInto over client/native-body.ts, its outcome as the stream would have failed. */
async function receiveInto(
  res: http.IncomingMessage,
  fd: number,
  length: number,
  idleMs: number,
  signal: AbortSignal | undefined,
): Promise<BodyReceipt | undefined> {
  const { receiveResponseBody } = await import('./native-body.js');
  const outcome = await receiveResponseBody(res, fd, length, idleMs);
  if (outcome === undefined) return undefined;
  const { bytes } = outcome;
  switch (outcome.ended) {
    case 'complete':
      return { bytes };
    case 'file':
      return { bytes, fileError: outcome.error };
    case 'idle':
      return {
        bytes,
        connectionError: undiciShaped('BodyTimeoutError', 'UND_ERR_BODY_TIMEOUT', 'Body Timeout Error'),
      };
    case 'cancelled':
      return { bytes, connectionError: signal?.aborted ? aborted(signal) : otherSideClosed() };
    case 'closed':
      return { bytes, connectionError: otherSideClosed() };
  }
}

function send(
  connect: Connector,
  r: TransportRequest,
  sockets: Set<Socket>,
  idleMs: number,
): Promise<TransportResponse> {
  return new Promise((resolve, reject) => {
    let response: http.IncomingMessage | undefined;
    const upload =
      r.body !== null && typeof r.body === 'object' && !(r.body instanceof Uint8Array) ? r.body : undefined;
    const req = http.request({
      method: r.method,
      path: r.path,
      headers: r.headers,
      signal: r.signal,
      createConnection: (_options, done) => {
        connect({ protocol: 'http:', hostname: 'localhost', port: '' }, (err, socket) => {
          if (err !== null || socket === null) {
            done(err ?? new Error('no socket'), undefined as never);
            return;
          }
          sockets.add(socket);
          socket.once('close', () => {
            sockets.delete(socket);
            // Registered before node:http's own listener, which would fail a body cut short
            // with ECONNRESET "aborted": undici says "other side closed" (UND_ERR_SOCKET), and
            // the CLI's messages and the Client's errors are the same on either path.
            if (response !== undefined && !response.complete) {
              response.destroy(r.signal?.aborted ? aborted(r.signal) : otherSideClosed());
            }
          });
          socket.setTimeout(idleMs, () => {
            if (response === undefined) {
              req.destroy(
                undiciShaped('HeadersTimeoutError', 'UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error'),
              );
            } else {
              response.destroy(
                undiciShaped('BodyTimeoutError', 'UND_ERR_BODY_TIMEOUT', 'Body Timeout Error'),
              );
            }
          });
          done(null, socket);
        });
        return undefined;
      },
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      // As undici does, a request that fails lets go of the stream it was sending.
      if (upload !== undefined && !upload.destroyed) upload.destroy();
      // After the answer, its body reports what broke (the socket's 'close' above).
      if (response !== undefined) return;
      // node:http's "socket hang up": the server closed the connection before answering.
      reject(err.code === 'ECONNRESET' && err.syscall === undefined ? otherSideClosed() : err);
    });
    req.once('response', (res: http.IncomingMessage) => {
      response = res;
      const body: ResponseBody = Object.assign(res, { dump: () => dump(res) });
      const length = r.method === 'HEAD' ? undefined : nativeLength(res);
      if (length !== undefined) {
        body.receiveInto = (fd) => receiveInto(res, fd, length, idleMs, r.signal);
      }
      resolve({ statusCode: res.statusCode ?? 0, headers: headersOf(res.rawHeaders), body });
    });
    if (upload === undefined) {
      req.end(r.body ?? undefined);
      return;
    }
    upload.once('error', (err) => req.destroy(err));
    upload.pipe(req);
  });
}

/** A Transport over node:http whose connections `connect` makes (client/connector.ts). */
export function httpTransport(connect: Connector, idleMs = IDLE_TIMEOUT_MS): Transport {
  const sockets = new Set<Socket>();
  const closed = (): Promise<void> =>
    Promise.all(
      [...sockets].map(
        (s) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve()))),
      ),
    ).then(() => undefined);
  return {
    request: (r) => send(connect, r, sockets, idleMs),
    close: closed,
    destroy() {
      for (const s of sockets) s.destroy();
      return closed();
    },
  };
}
