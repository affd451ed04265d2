/**
 * Lingering close (nginx's lingering_close): answer, send FIN, then read and discard what the
 * client is still sending, until it stops (LINGER_IDLE_MS of silence) or for LINGER_MS at most.
 * Closing a unix socket that has unread data makes the kernel report ECONNRESET to the peer
 * (af_unix: unix_release_sock), and its next write fails with EPIPE: a client still writing a
 * body it was refused or cut mid-way (507, 413, 403, 408) then stops at the failed write (curl:
 * "Send failure: Broken pipe", or "Recv failure: Connection reset by peer") and never reads the
 * answer already in its receive queue.
 *
 * The bounds are time only, as nginx's are (lingering_time 30 s, lingering_timeout 5 s), here
 * shorter because the peer is local: a client that answers nothing for LINGER_IDLE_MS after
 * its answer was sent is done, and none is drained longer than LINGER_MS. No byte bound: a local
 * client sends a body at memory speed, so any bound in bytes would cut, and reset, the very
 * client that is about to read its answer, while the time bound already caps what draining costs.
 */
import { type Server, Socket } from 'node:net';
import type { FastifyReply } from 'fastify';
import { native } from '../native/binding.js';
import { adoptConnection, connectionServer, replaceDestroySoon, socketFd } from '../native/node-internals.js';

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

/** Per server: who is told of each duplicate a cut leaves lingering (gateway/listen.ts counts them). */
const lingerWatchers = new WeakMap<Server, (twin: Socket) => void>();

/**
 * Tells `watch` of every connection of `server` that cutLingering leaves open under a duplicate
 * fd, as soon as it exists; the duplicate's 'close' is the connection's real end. One watcher per
 * server (the peer gate's, which counts them against the connection limit).
 */
export function watchLingering(server: Server, watch: (twin: Socket) => void): void {
  lingerWatchers.set(server, watch);
}

/**
 * Cuts `socket` for everything in Node that uses it, as destroy() does (its request is
 * aborted, a native transfer on it cancelled), and lingers on a duplicate of its fd: the kernel
 * releases a socket with its last fd, so the connection stays open under the duplicate, which
 * answers `data` and drains the client. The HTTP parser is gone with the socket: nothing the
 * client sends after the cut reaches a route. The connection is still the server's until the
 * duplicate closes: the duplicate is counted in the server's connections (so `server.close()`
 * waits for it, as for any connection) and its watcher is told (watchLingering).
 * A socket with no fd of its own (a mock, a TLS socket) is destroyed after `data` is written.
 */
export function cutLingering(socket: Socket, data?: string, maxMs = LINGER_MS): void {
  if (socket.destroyed) return;
  const fd = socketFd(socket);
  const copy = fd >= 0 ? native.dup(fd) : -1;
  if (copy < 0) {
    if (data !== undefined && socket.writable) socket.write(data);
    socket.destroy();
    return;
  }
  const server = connectionServer(socket);
  socket.destroy();
  // From here the duplicate's Socket owns `copy`: it closes it when destroyed.
  const twin =
    server === undefined
      ? new Socket({ fd: copy, readable: true, writable: true })
      : adoptConnection(server, copy);
  if (server !== undefined) lingerWatchers.get(server)?.(twin);
  // EPIPE or ECONNRESET: the client is gone, there is nothing left to linger for.
  twin.on('error', () => twin.destroy());
  lingeringClose(twin, data, maxMs);
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
