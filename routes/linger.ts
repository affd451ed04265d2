/**
 * Lingering close (nginx's lingering_close): answer, send FIN, then read and discard what the
 * client is still sending, until it stops (LINGER_IDLE_MS of silence) or for LINGER_MS at most. Closing a unix socket that has
 * unread data makes the kernel report ECONNRESET to the peer (af_unix: unix_release_sock), and a
 * client still writing a body it was refused mid-way (507, 413, 403) then loses the answer
 * that was already in its receive queue.
 */
import type { Socket } from 'node:net';
import type { FastifyReply } from 'fastify';
import { replaceDestroySoon } from '../native/node-internals.js';

/** How long a refused connection is drained at most (bounds what a hostile client can hold). */
export const LINGER_MS = 2000;
/** A drained connection that sends nothing for this long is done (nginx's lingering_timeout). */
export const LINGER_IDLE_MS = 250;

/** Ends `socket` (after `data`, if given) and drains it for at most `maxMs`. */
export function lingeringClose(socket: Socket, data?: string | Buffer, maxMs = LINGER_MS): void {
  if (socket.destroyed) return;
  if (data === undefined) socket.end();
  else socket.end(data);
  // What the client still sends is read (by the HTTP parser, or here) and dropped.
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), maxMs);
  // The HTTP parser may read the socket itself, so silence is seen in bytesRead, not in events.
  let seen = socket.bytesRead;
  const idle = setInterval(() => {
    if (socket.bytesRead === seen && socket.writableFinished) socket.destroy();
    seen = socket.bytesRead;
  }, LINGER_IDLE_MS);
  // The client is done sending: close once our answer is out (destroy() would drop what is
  // still queued).
  socket.once('end', () => {
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  });
  socket.once('close', () => {
    clearTimeout(timer);
    clearInterval(idle);
  });
}

/**
 * For a request refused before its body was read whole: answer with `Connection: close` (the
 * unread rest must not be parsed as a next request, RFC 9112 §9.6), and when Node closes the
 * connection after the response (socket.destroySoon), close it lingering instead.
 */
export function closeAfterResponse(reply: FastifyReply): void {
  void reply.header('connection', 'close');
  const socket = reply.raw.socket;
  if (socket && !socket.destroyed) replaceDestroySoon(socket, () => lingeringClose(socket));
}
