/**
 * Errors of the HTTP parser, before Fastify has a request (a malformed request, headers too
 * large, a request too slow): answered in the nullgate error shape too, raw on the socket
 * (routes/raw-error.ts), without ever answering out of turn.
 */
import type { Socket } from 'node:net';
import type { ErrorCode } from '../core/errors.js';
import { inFlightResponse } from '../native/node-internals.js';
import { cutLingering } from '../routes/linger.js';
import { closeWithError, rawErrorResponse } from '../routes/raw-error.js';
import type { LimitHit } from './limit-log.js';
import { peerOf } from './listen.js';

/** Connections whose parser failed while a response was in flight: closed once it is sent. */
const closingAfterResponse = new WeakSet<Socket>();
/** Connections answered with a parser error, draining the client's input before closing. */
const lingering = new WeakSet<Socket>();

function clientErrorBody(err: NodeJS.ErrnoException): [number, ErrorCode, string] {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'NG_ERR_TIMEOUT', 'request timed out'];
  if (err.code === 'HPE_HEADER_OVERFLOW')
    return [431, 'NG_ERR_HEADERS_TOO_LARGE', 'request headers too large'];
  return [400, 'NG_ERR_BAD_REQUEST', `malformed request (${err.code ?? 'parse error'})`];
}

/**
 * Cuts a connection whose request being answered is itself broken (a bad or too slow body, see
 * also gateway/body-rate.ts): its handler may still read or write, so the connection is closed
 * for Node now (the request aborted), with the error written raw only if nothing of a response
 * was sent or queued yet, and closed lingering (routes/linger.ts cutLingering): a client still
 * sending its body reads the answer instead of a reset.
 */
export function cutRequest(socket: Socket, status: number, code: ErrorCode, message: string): void {
  const inflight = inFlightResponse(socket);
  const answer =
    socket.writable && inflight?.headersSent !== true && socket.writableLength === 0
      ? rawErrorResponse(status, code, message)
      : undefined;
  cutLingering(socket, answer);
}

/** Fastify's `clientErrorHandler`: each refusal is told to `limitHit`. */
export function clientErrorHandler(limitHit: LimitHit): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const inflight = inFlightResponse(socket);
    if (inflight?.req.complete && err.code !== 'ERR_HTTP_REQUEST_TIMEOUT') {
      // Bad bytes pipelined after a whole request: that request's response is on the socket
      // (or about to be). A raw 400 written now would be read as its answer, or land in the
      // middle of its body; let it finish, then close (RFC 9112 §9.3.2: answers keep order).
      if (!closingAfterResponse.has(socket)) {
        closingAfterResponse.add(socket);
        limitHit(
          400,
          `malformed request after a complete one (${err.code ?? 'parse error'})`,
          peerOf(socket),
        );
        // end() first: destroy() would drop response bytes still queued in userland.
        inflight.once('close', () => socket.end(() => socket.destroy()));
      }
      return;
    }
    // Already answered: the parser reports each further chunk the client sends while lingering.
    if (lingering.has(socket)) return;
    if (!inflight && !socket.writable) {
      // Our side is closed already, after a response that refused its request's body (curl -T
      // refused 403 or 413 sends no body and hangs up; routes/linger.ts): the parser reports
      // the end of that body never sent (HPE_INVALID_EOF_STATE), which is no malformed request
      // to answer or log. Whoever ended the socket closes it; once our answer is out, now.
      if (socket.writableFinished) socket.destroy();
      return;
    }
    const [status, code, message] = clientErrorBody(err);
    limitHit(status, message, peerOf(socket));
    if (inflight) {
      cutRequest(socket, status, code, message);
      return;
    }
    // Lingering close (what nginx does): answer, send FIN, and read and discard what the
    // client is still sending for a bounded time. Destroying at once, with the rest of a 1 MiB
    // header unread, resets the connection and the client never reads the 431.
    lingering.add(socket);
    closeWithError(socket, status, code, message);
  };
}
