/**
 * A response body moved from a socket into a file on a native thread (native/receive.cc):
 * splice(2) from the socket through a pipe into the file, while the event loop sleeps. Both of
 * the CLI's transports use it for a large identity body with a Content-Length
 * (client/native-body.ts takes the socket from node:http first; client/blocking-transport.ts owns
 * its fd). Loaded on the first body it moves, not at start-up.
 */
import { constants } from 'node:os';
import { native, type SystemError, systemError } from '../native/binding.js';

const { ECANCELED, ECONNRESET, ETIMEDOUT } = constants.errno;

/** Bodies this process has moved natively (the tests' proof that the native path was taken). */
export const nativeBodyStats = { receives: 0 };

/**
 * How a native receive ended, with the bytes written to the file (the prefix included):
 * `complete`, every byte of the body; `closed`, the server ended the connection before the body
 * did; `idle`, nothing came for the idle timeout; `cancelled`, the receive was cancelled on this
 * side (an abort, the transport destroyed); `file`, writing the file failed with `error`.
 */
export type NativeOutcome =
  | { readonly bytes: number; readonly ended: 'complete' | 'closed' | 'idle' | 'cancelled' }
  | { readonly bytes: number; readonly ended: 'file'; readonly error: SystemError };

/**
 * Writes `prefix` (body bytes already read from the socket) and then exactly `rest` more bytes
 * of the socket `socketFd` into `fileFd` at its offset; the caller owns both fds throughout (the
 * thread works on duplicates). `onStarted` gets a function that cancels the receive (the
 * caller's socket closed). Never rejects.
 */
export function receiveFromSocket(
  socketFd: number,
  fileFd: number,
  prefix: Buffer,
  rest: number,
  idleMs: number,
  onStarted: (cancel: () => void) => () => void = () => () => undefined,
): Promise<NativeOutcome> {
  nativeBodyStats.receives++;
  return new Promise((resolve) => {
    let done = (): void => undefined;
    // The callback runs inside a thread-safe-function call, where Node 20 swallows a throw:
    // it only settles the promise.
    const rc = native.receiveStart(
      socketFd,
      fileFd,
      prefix,
      rest,
      [],
      (err, written) => {
        done();
        resolve(outcomeOf(err, written));
      },
      idleMs,
      false,
      0,
      0,
      // No early writeback: nothing fsyncs a download, and starting the disk's writes every
      // 8 MiB (what an upload wants) made a 1 GiB get -o to disk up to 2x slower than curl.
      0,
    );
    if (rc < 0) {
      resolve(outcomeOf(rc, 0));
      return;
    }
    done = onStarted(() => native.receiveCancel(rc));
  });
}

function outcomeOf(err: number, bytes: number): NativeOutcome {
  if (err === 0) return { bytes, ended: 'complete' };
  if (err === -ECONNRESET) return { bytes, ended: 'closed' };
  if (err === -ETIMEDOUT) return { bytes, ended: 'idle' };
  if (err === -ECANCELED) return { bytes, ended: 'cancelled' };
  return { bytes, ended: 'file', error: systemError(err, 'write') };
}
