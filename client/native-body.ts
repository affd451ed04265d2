/**
 * Zero-copy download bodies, the client's mirror of the server's upload path (routes/receive.ts):
 * once node:http has parsed a response's headers, the body bytes its parser already read go to
 * the file first, then a native thread moves the rest from the socket into the file with
 * splice(2) (native/receive.cc) while the event loop sleeps. Read through JS, a 1 GiB body was
 * 16,000 socket reads of 64 KiB handed to the thread pool as 1,024 writes of 1 MiB, and the
 * server's sendfile thread and the client took turns (docs/performance.md, "Client downloads").
 * Loaded by client/http-transport.ts on the first body it moves (not at start-up).
 *
 * The steps, each against a pitfall:
 *
 * 1. Stop node:http reading: http.Server's pause flag on the socket (which the response's own
 *    _read honours, so reading the response below does not restart the socket), the stream
 *    paused, and its libuv handle stopped (the client's parser is fed by the stream's 'data',
 *    and a paused stream's handle keeps reading into the stream's buffer until it is full).
 * 2. What the socket read but the parser has not seen yet is parsed now (socket.read() emits it
 *    to node:http's 'data' listener), then the handle is stopped again (reading restarts it).
 *    From here on, every byte node:http read is in the response's buffer, every other one in
 *    the kernel.
 * 3. Take the response's buffered bytes (`res.read()` until null): the prefix, written first.
 * 4. The thread takes exactly the bytes the body still lacks, never one more; the socket's
 *    idle timeout is suspended (Node sees no I/O) and applied natively; the socket's 'close'
 *    (an abort, the transport destroyed) cancels the thread.
 * 5. Success: the parser is told the rest was read (skipBodyInParser), so the response is
 *    complete and ends as a read one does. Then, and on every failure, the connection is
 *    destroyed: it is never reused after bytes went past node:http's parser.
 */
import type { IncomingMessage } from 'node:http';
import {
  pauseHttpReading,
  resumeHttpReading,
  skipBodyInParser,
  socketFd,
  stopHandleReading,
} from '../native/node-internals.js';
import { type NativeOutcome, receiveFromSocket } from './native-receive.js';

export { nativeBodyStats, type NativeOutcome } from './native-receive.js';

/**
 * Moves the body of `res` (an identity body of `length` bytes, none of it read yet) into
 * `fileFd` at the fd's offset; the caller owns `fileFd` throughout (the thread writes to a
 * duplicate). Resolves with how it ended, or with undefined when the body cannot be taken
 * (already being read, already complete, no fd, reading not stoppable): nothing was taken then,
 * and the caller reads the body as a stream.
 */
export async function receiveResponseBody(
  res: IncomingMessage,
  fileFd: number,
  length: number,
  idleMs: number,
): Promise<NativeOutcome | undefined> {
  const socket = res.socket;
  if (res.complete || res.readableDidRead || res.readableFlowing === true || res.destroyed) return undefined;
  if (socket === null || socketFd(socket) < 0) return undefined;
  pauseHttpReading(socket);
  const stop = (): boolean => {
    // Step 2: parse what the stream holds; reading it may start the handle again.
    while (socket.readableLength > 0 && !res.complete) socket.read();
    return stopHandleReading(socket);
  };
  if (!stopHandleReading(socket) || !stop() || res.complete) {
    resumeHttpReading(socket);
    return undefined;
  }
  const parts: Buffer[] = [];
  let taken = 0;
  for (let chunk = res.read() as Buffer | null; chunk !== null; chunk = res.read() as Buffer | null) {
    parts.push(chunk);
    taken += chunk.length;
  }
  const prefix = parts.length === 1 ? parts[0]! : Buffer.concat(parts, taken);
  const rest = length - taken;
  const fd = socketFd(socket);
  if (rest <= 0 || fd < 0) {
    // Cannot happen for a body the parser had not finished; never guess.
    socket.destroy();
    return { bytes: 0, ended: 'closed' };
  }
  socket.setTimeout(0);
  const outcome = await receiveFromSocket(fd, fileFd, prefix, rest, idleMs, (cancel) => {
    // The socket's 'close' (an abort, the transport destroyed) cancels the thread.
    socket.once('close', cancel);
    if (socket.destroyed) cancel();
    return () => socket.off('close', cancel);
  });
  if (outcome.ended === 'complete') {
    // The response ends as if node:http had read the body: complete, so closing the
    // connection below is no error of the body's.
    skipBodyInParser(socket, rest);
    res.resume();
  }
  socket.destroy();
  return outcome;
}
