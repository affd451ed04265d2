/**
 * The one writer of an error response as raw bytes on a socket, for the answers given where no
 * http.ServerResponse exists: a refused peer (the HTTP parser is never attached) and a request
 * the parser rejected (Fastify has no request yet). Same body as every other error
 * (`{statusCode, code, error, message}`, core/errors.ts), an exact Content-Length, and
 * `Connection: close`: nothing after it on the connection is read as a request.
 */
import type { Socket } from 'node:net';
import { type ErrorCode, errorBody } from '../core/errors.js';
import { LINGER_MS, lingeringClose } from './linger.js';

/** The whole response (status line, headers, JSON body) as it goes on the wire. */
export function rawErrorResponse(status: number, code: ErrorCode, message: string): string {
  const body = errorBody(status, code, message);
  const json = JSON.stringify(body);
  return (
    `HTTP/1.1 ${status} ${body.error}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(json)}\r\n` +
    'connection: close\r\n\r\n' +
    json
  );
}

/** Answers with the error, then closes lingering (routes/linger.ts) for at most `maxMs`. */
export function closeWithError(
  socket: Socket,
  status: number,
  code: ErrorCode,
  message: string,
  maxMs = LINGER_MS,
): void {
  lingeringClose(socket, rawErrorResponse(status, code, message), maxMs);
}
