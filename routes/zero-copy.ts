/**
 * Zero-copy response bodies: after Node has written the status line and headers, the kernel moves
 * the body from the file to the socket with sendfile(2) on a native thread (native/sendfile.cc),
 * and the socket is handed back to Node for the next request on the connection.
 *
 * The ordering and lifetime rules come from ../shared/PERFORMANCE-NOTES.md ("Zero-copy
 * downloads"); each step below names the pitfall it avoids. The caller owns `fileFd` and closes
 * it once the returned promise settles (the native side works on its own duplicate).
 */
import { createReadStream } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { native, systemError } from '../native/binding.js';
import { inFlightResponse, socketFd } from '../native/node-internals.js';

/**
 * Bodies smaller than this are cheaper through Node: a transfer costs a thread start, a
 * thread-safe-function hop and an extra write barrier (tens of µs), which only pays off once the
 * copy it saves is bigger. Routes stream (or read in one call) below it.
 */
export const ZERO_COPY_MIN_BYTES = 256 * 1024;

/** True when the addon has the sendfile entry points (an older build may not). */
export function zeroCopyAvailable(): boolean {
  return typeof native.sendfileStart === 'function' && typeof native.sendfileCancel === 'function';
}

const { ECONNRESET, ENODATA } = constants.errno;

/** The connection closed before the body could be sent. */
function gone(): Error {
  return systemError(ECONNRESET, 'sendfile');
}

/**
 * Resolves with the socket once `res` is the response the socket is writing. With pipelining a
 * later response is queued (its `socket` is null) until the earlier ones finished (step 2).
 * Rejects when the connection closes first: Node then emits neither 'socket' nor 'close' on a
 * queued response, so the connection's own 'close' is watched too.
 */
export function ownSocket(res: ServerResponse): Promise<Socket> {
  const current = res.socket;
  if (current && inFlightResponse(current) === res) {
    return Promise.resolve(current);
  }
  const connection = res.req.socket;
  if (connection.destroyed) return Promise.reject(gone());
  return new Promise((resolve, reject) => {
    const onSocket = (socket: Socket): void => {
      res.off('close', onClose);
      connection.off('close', onClose);
      // Resolving defers the caller to a microtask: assignSocket() flushes the response's
      // buffered output right after emitting 'socket'.
      resolve(socket);
    };
    const onClose = (): void => {
      res.off('socket', onSocket);
      res.off('close', onClose);
      connection.off('close', onClose);
      reject(gone());
    };
    res.once('socket', onSocket);
    res.once('close', onClose);
    connection.once('close', onClose);
  });
}

/**
 * A zero-length write whose callback runs once everything queued before it (the headers, and
 * earlier pipelined responses) is in the kernel: writable callbacks run in order. Without it the
 * body overtook queued header bytes with a small SO_SNDBUF (step 2).
 */
export function drained(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(gone());
    socket.once('close', onClose);
    socket.write(Buffer.alloc(0), (err) => {
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

/**
 * Runs the native transfer; cancels it when the socket closes under it (step 3). `idleMs` carries
 * the socket's idle timeout over to the native side: a reader that takes nothing for that long
 * ends the transfer with ETIMEDOUT, as Node's own timeout would have ended the connection.
 */
async function transfer(
  socket: Socket,
  fd: number,
  fileFd: number,
  start: number,
  length: number,
  idleMs: number,
): Promise<void> {
  const sent = await transferSome(socket, fd, fileFd, start, length, idleMs);
  if (sent !== length) throw systemError(ENODATA, 'sendfile');
}

/** `transfer`, resolving with the bytes sent: fewer than `length` when the file ended first. */
function transferSome(
  socket: Socket,
  fd: number,
  fileFd: number,
  start: number,
  length: number,
  idleMs: number,
): Promise<number> {
  const start_ = native.sendfileStart;
  const cancel = native.sendfileCancel;
  if (!start_ || !cancel) return Promise.reject(new Error('sendfile is not in this addon build'));
  return new Promise((resolve, reject) => {
    let id = 0;
    const onClose = (): void => {
      if (id > 0) cancel(id);
    };
    // The callback runs inside a thread-safe-function call, where Node 20 swallows a throw: it
    // only settles the promise, and everything else runs in the promise's continuation (step 5).
    const rc = start_(
      fd,
      fileFd,
      start,
      length,
      (err, sent) => {
        socket.off('close', onClose);
        if (err < 0 && err !== -ENODATA) reject(systemError(err, 'sendfile'));
        else resolve(sent);
      },
      idleMs,
    );
    if (rc < 0) {
      reject(systemError(rc, 'sendfile'));
      return;
    }
    id = rc;
    socket.once('close', onClose);
    // Node may have closed the socket between our last check and the start.
    if (socket.destroyed) cancel(id);
  });
}

/** The fallback: the body through JS buffers, for sockets without an fd or an addon without sendfile. */
async function streamRange(res: ServerResponse, fileFd: number, start: number, end: number): Promise<void> {
  const body = createReadStream('', {
    fd: fileFd,
    start,
    end,
    autoClose: false,
    highWaterMark: 1024 * 1024,
  });
  await pipeline(body, res);
}

/**
 * Sends bytes `start..endInclusive` of `fileFd` as the body of `res`, whose status and headers
 * (Content-Length among them) the caller has set but not sent; for a Fastify route, call
 * `reply.hijack()` first so Fastify does not answer itself. Not for HEAD (there is no body) and
 * not for an empty range (end the response instead).
 *
 * Resolves once the response has ended, so the connection serves the next request (keep-alive).
 * Rejects when the body could not be sent in full (the client left: code ECANCELED, EPIPE or
 * ECONNRESET; the file shrank: ENODATA); the response is destroyed by then, and the caller has
 * only to close `fileFd`, which it owns throughout.
 */
export async function sendFileRange(
  res: ServerResponse,
  fileFd: number,
  start: number,
  endInclusive: number,
): Promise<void> {
  const length = endInclusive - start + 1;
  try {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 1) {
      throw new RangeError(`sendFileRange: invalid range ${String(start)}-${String(endInclusive)}`);
    }
    if (res.destroyed || res.writableEnded) throw gone();
    // Node would otherwise compare Content-Length with the bytes written through it (none) and
    // throw from end() — a throw nobody sees when it happens in a thread-safe-function call (step 5).
    res.strictContentLength = false;
    const socket = await ownSocket(res);
    const fd = socketFd(socket);
    if (fd < 0 || !zeroCopyAvailable()) {
      await streamRange(res, fileFd, start, endInclusive);
      return;
    }
    res.flushHeaders();
    await drained(socket);
    if (socket.destroyed) throw gone();
    // Node sees no I/O on the socket while the kernel sends, and would cut it as idle (step 4);
    // the native side applies the same limit to a stalled reader instead.
    const idle = socket.timeout ?? 0;
    socket.setTimeout(0);
    try {
      await transfer(socket, fd, fileFd, start, length, idle);
    } finally {
      if (!socket.destroyed) socket.setTimeout(idle);
    }
    // No body bytes go through Node; with strictContentLength off it does not count them.
    res.end();
  } catch (err) {
    res.destroy();
    throw err;
  }
}

/**
 * For a response that frames its own body (`GET /archive`: chunked, tar headers written by Node
 * between members): sends `length` bytes of `fileFd` from `start` to `socket` (whose fd is
 * `socketFd`, from `socketFd(socket)` once `ownSocket` gave it) with sendfile on a native
 * thread, after everything written to the socket before it. Resolves with the bytes sent:
 * `length`, or fewer when the file ended first (it shrank). Rejects when the client went away
 * or stalled past the socket's idle timeout.
 */
export async function sendfileToSocket(
  socket: Socket,
  socketFdNumber: number,
  fileFd: number,
  start: number,
  length: number,
): Promise<number> {
  await drained(socket);
  if (socket.destroyed) throw gone();
  const idle = socket.timeout ?? 0;
  socket.setTimeout(0);
  try {
    return await transferSome(socket, socketFdNumber, fileFd, start, length, idle);
  } finally {
    if (!socket.destroyed) socket.setTimeout(idle);
  }
}
