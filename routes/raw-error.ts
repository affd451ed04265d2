/**
 * The one writer of an error response as raw bytes on a socket, for the answers given where no
 * http.ServerResponse exists: a refused peer or a connection over the limit (the HTTP parser is
 * never attached), a request the parser rejected (Fastify has no request yet), and a CONNECT
 * (Node hands the socket over for a tunnel). Same body as every other error
 * (`{statusCode, code, error, message}`, core/errors.ts), an exact Content-Length, and
 * `Connection: close`: nothing after it on the connection is read as a request.
 */
import type { Socket } from 'node:net';
import { type ErrorCode, errorBody } from '../core/errors.js';
import { LINGER_MS, lingeringClose } from './linger.js';

/**
 * The whole response (status line, headers, JSON body) as it goes on the wire; `headers` are
 * added as given (the `Allow` of a 405).
 */
export function rawErrorResponse(
  status: number,
  code: ErrorCode,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): string {
  const body = errorBody(status, code, message);
  const json = JSON.stringify(body);
  let extra = '';
  for (const [name, value] of Object.entries(headers)) extra += `${name}: ${value}\r\n`;
  return (
    `HTTP/1.1 ${status} ${body.error}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    extra +
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
