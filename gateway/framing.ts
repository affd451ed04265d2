/**
 * What a request's framing asks that nullgate does not do, refused before any handler runs:
 * a transfer coding other than chunked (RFC 9112 §6.1), an expectation other than 100-continue
 * (RFC 9110 §10.1.1), and the CONNECT method (RFC 9110 §9.3.6: nullgate is no proxy). Node's
 * parser lets the first through (it removes the chunked framing and hands over the rest still
 * encoded, so a gzip body was stored gzipped), answers the second with an empty 417, and closes
 * a CONNECT without a word; here each gets the contract's JSON shape.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { ngError, type NullgateError } from '../core/errors.js';
import { lingeringClose } from '../routes/linger.js';
import { rawErrorResponse } from '../routes/raw-error.js';
import { FILES_METHODS } from '../routes/files.js';
import { ARCHIVE_METHODS } from '../routes/archive/plugin.js';
import { shortened } from '../core/rel-path.js';

/** The members of a comma-separated header list (RFC 9110 §5.6.1), lowercased, empty ones dropped. */
function listMembers(value: string): string[] {
  return value
    .split(',')
    .map((m) => m.trim().toLowerCase())
    .filter((m) => m !== '');
}

/**
 * The refusal a request's Transfer-Encoding and Expect call for, or undefined when it may go on.
 * Node has already refused a Transfer-Encoding whose last coding is not chunked (400).
 */
export function framingRefusal(
  headers: IncomingMessage['headers'],
  httpVersion: string,
): NullgateError | undefined {
  const te = headers['transfer-encoding'];
  if (te !== undefined) {
    const codings = listMembers(te).map((c) => c.split(';')[0]!.trim());
    const other = codings.find((c) => c !== 'chunked');
    // RFC 9112 §6.1: a server that receives a transfer coding it does not understand SHOULD
    // answer 501. Content codings (gzip as Content-Encoding) are the client's to use instead.
    if (other !== undefined) {
      return ngError(
        'NG_ERR_NOT_IMPLEMENTED',
        `transfer coding "${shortened(other, 40)}" is not supported: send the body as is (only chunked framing is understood)`,
      );
    }
    // RFC 9112 §6.1: a sender MUST NOT apply chunked more than once.
    if (codings.length > 1)
      return ngError('NG_ERR_BAD_REQUEST', 'Transfer-Encoding lists chunked more than once');
  }
  // RFC 9110 §10.1.1: a 100-continue in an HTTP/1.0 request MUST be ignored, and so is any other
  // expectation there (HTTP/1.0 has none); in HTTP/1.1 one the server cannot meet may be 417.
  const expect = headers.expect;
  if (expect !== undefined && httpVersion === '1.1') {
    const other = listMembers(expect).find((m) => m !== '100-continue');
    if (other !== undefined || listMembers(expect).length === 0) {
      return ngError(
        'NG_ERR_EXPECTATION_FAILED',
        `expectation "${shortened(expect.trim(), 40)}" cannot be met (only 100-continue is)`,
      );
    }
  }
  return undefined;
}

/** The methods a CONNECT's target has, for the 405's Allow (RFC 9110 §15.5.6). */
export function allowedMethods(target: string): readonly string[] {
  const path = target.split('?')[0]!;
  const under = (prefix: string): boolean => path === prefix || path.startsWith(`${prefix}/`);
  if (under('/files')) return FILES_METHODS;
  if (under('/archive')) return ARCHIVE_METHODS;
  // '/', /health, /whoami; an authority-form target (`host:port`) names nothing of ours.
  return ['GET', 'HEAD'];
}

/**
 * The 'connect' listener of the HTTP server: Node hands the socket over without a response
 * object (a tunnel would take it from here), so the 405 is written raw and the connection is
 * closed lingering (what the client sent after its request is read and dropped).
 */
export function refuseConnect(req: IncomingMessage, socket: Socket): void {
  socket.on('error', () => socket.destroy());
  const allow = allowedMethods(req.url ?? '');
  lingeringClose(
    socket,
    rawErrorResponse(
      405,
      'NG_ERR_METHOD_NOT_ALLOWED',
      `CONNECT is not allowed: nullgate is not a proxy (allowed: ${allow.join(', ')})`,
      { allow: allow.join(', ') },
    ),
  );
}
