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
  Transport,
  TransportRequest,
  TransportResponse,
} from './transport.js';
import {
  IDLE_TIMEOUT_MS,
  aborted,
  bodyTimeout,
  dumpBody,
  headersOf,
  headersTimeout,
  nativeLength,
  otherSideClosed,
  receiptOf,
} from './transport-shapes.js';

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
  return outcome === undefined ? undefined : receiptOf(outcome, signal);
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
              req.destroy(headersTimeout());
            } else {
              response.destroy(bodyTimeout());
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
      const body: ResponseBody = Object.assign(res, {
        dump: () => dumpBody(res, Number(res.headers['content-length'])),
      });
      const length = r.method === 'HEAD' ? undefined : nativeLength(res.headers);
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
