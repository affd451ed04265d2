/**
 * Zero-copy request bodies, the mirror of routes/zero-copy.ts: once Node has parsed a request's
 * headers, the bytes its parser already read go to the file first, then a native thread moves
 * the rest of the body from the socket into the file with splice(2) (native/receive.cc), and the
 * connection goes back to Node for the next request. Only identity bodies with a Content-Length:
 * a chunked body's framing is the parser's to read.
 *
 * The steps, each against a pitfall (../shared/PERFORMANCE-NOTES.md, "Uploads"):
 *
 * 1. Stop Node reading the socket, with http.Server's own pause flag (its resume paths then leave
 *    it paused), and check that the libuv handle really stopped: the parser reads the handle
 *    directly, so what it has not read yet is still in the kernel.
 * 2. Take what the parser already pushed into the request stream (`req.read()` until null):
 *    part of the body, or all of it. Those bytes are written first, on the native thread.
 * 3. The native thread takes exactly the bytes the body still lacks, never one more: a pipelined
 *    next request stays in the kernel for Node's parser.
 * 4. The socket's libuv handle is held from reading (holdReading: http.Server resumes a
 *    connection it paused when its writes drain, and would read the body beside the thread).
 *    The socket's idle timeout is suspended (Node sees no I/O) and applied natively instead;
 *    the socket's 'close' (client gone, the body-rate watch cutting it, the server closing)
 *    cancels the transfer.
 * 5. Success: the parser is told the body's bytes were read (skipBodyInParser: it ends the
 *    request as if it had read them), and reading resumes for the next request. Failure: the
 *    parser is resumed mid-body, the request's stream is drained, and the caller answers with
 *    `Connection: close` (routes/files.ts does for every request not complete).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { bodyTooSlowMessage } from '../core/limits.js';
import { native, systemError } from '../native/binding.js';
import {
  handleStopped,
  holdReading,
  httpReadingPaused,
  pauseHttpReading,
  resumeHttpReading,
  skipBodyInParser,
  socketFd,
} from '../native/node-internals.js';
import type { DigestAlgorithm } from './digest.js';
import { ZERO_COPY_MIN_BYTES } from './zero-copy.js';

const { ECONNRESET, ETIME, ETIMEDOUT } = constants.errno;

/**
 * The body-rate rule (gateway/body-rate.ts) for a request, given by the gateway: the native
 * thread applies it to the bytes that bypass Node, and calls `tooSlow` (which answers 408 and
 * cuts the connection) when a window is too slow. `reading` is called at the first read of the
 * body: the total time (bodyTimeoutMs) runs from there on the gateway's watch, whose cut closes
 * the socket and so cancels the thread.
 */
export interface BodyRate {
  readonly minRate: number;
  readonly windowMs: number;
  tooSlow(message: string): void;
  reading(): void;
}

const bodyRates = new WeakMap<IncomingMessage, BodyRate>();

/** Gives the native receive of `req`'s body the body-rate rule (the gateway does, per request). */
export function setBodyRate(req: IncomingMessage, rate: BodyRate): void {
  bodyRates.set(req, rate);
}

/** The OpenSSL names of the digests the native thread computes. */
const NATIVE_DIGEST: Record<DigestAlgorithm, string> = { 'sha-256': 'sha256', 'sha-512': 'sha512' };

/**
 * `NULLGATE_ZERO_COPY_UPLOADS`: `0` takes every body through JS (to compare both paths),
 * `always` takes even bodies under ZERO_COPY_MIN_BYTES natively (tests); anything else, or
 * unset, the default: native from ZERO_COPY_MIN_BYTES on. Read per request.
 */
function mode(): 'off' | 'always' | 'auto' {
  const value = process.env.NULLGATE_ZERO_COPY_UPLOADS;
  if (value === '0' || value === 'off') return 'off';
  if (value === 'always') return 'always';
  return 'auto';
}

/** The body's length when it can be received natively, else undefined (take the JS path). */
export function nativeBodyLength(req: IncomingMessage, limit: number): number | undefined {
  const m = mode();
  if (m === 'off') return undefined;
  if (req.headers['transfer-encoding'] !== undefined) return undefined;
  const declared = req.headers['content-length'];
  if (declared === undefined || !/^\d+$/.test(declared)) return undefined;
  const length = Number(declared);
  if (!Number.isSafeInteger(length) || length > limit) return undefined;
  if (m === 'auto' && length < ZERO_COPY_MIN_BYTES) return undefined;
  // Already read whole by the parser (or being read by the route already): nothing to gain.
  if (m === 'auto' && req.complete) return undefined;
  if (req.readableFlowing === true || req.readableEnded || req.destroyed) return undefined;
  if (socketFd(req.socket) < 0) return undefined;
  return length;
}

export interface NativeReceipt {
  /** Bytes written to the file. */
  readonly bytes: number;
  /** The digests asked for, of the whole body (only when it arrived whole). */
  readonly digests: Map<DigestAlgorithm, Buffer>;
}

/** An error of the receive that carries what was written before it (resumable appends keep it). */
export type ReceiveError = NodeJS.ErrnoException & { bytesWritten: number };

/** The native errno as a Node-shaped error (`splice ECONNRESET`: what endedEarly() knows). */
function failed(err: number, written: number): ReceiveError {
  const e = systemError(err, 'splice') as ReceiveError;
  e.bytesWritten = written;
  return e;
}

/**
 * Receives the body of `req` (whose length `nativeBodyLength` gave) into `fileFd`, at the fd's
 * offset; the caller owns `fileFd` throughout. Resolves with the bytes written and the digests
 * of `algorithms`, or with undefined when Node's reading could not be stopped: nothing was taken
 * then, and the JS path must read the body. Rejects with a system error carrying `bytesWritten`:
 * ECONNRESET, ECANCELED or ETIMEDOUT (the client went away, was cut, or went quiet for the idle
 * timeout: the connection is closed or closing), ENOSPC and other file errors (the request is
 * left incomplete: answer with Connection: close).
 */
export async function receiveNative(
  req: IncomingMessage,
  length: number,
  fileFd: number,
  algorithms: readonly DigestAlgorithm[],
): Promise<NativeReceipt | undefined> {
  const socket = req.socket;
  const wasPaused = httpReadingPaused(socket);
  pauseHttpReading(socket);
  if (!handleStopped(socket)) {
    if (!wasPaused) resumeHttpReading(socket);
    return undefined;
  }
  const rate = bodyRates.get(req);
  rate?.reading();
  // What the parser read past the headers (step 2): req.read() does not restart the socket
  // while http.Server's pause flag is set (_http_incoming.js readStart).
  const parts: Buffer[] = [];
  let taken = 0;
  for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null) {
    parts.push(chunk);
    taken += chunk.length;
  }
  const prefix = parts.length === 1 ? parts[0]! : Buffer.concat(parts, taken);
  const rest = length - taken;
  const fd = socketFd(socket);
  const idle = socket.timeout ?? 0;
  socket.setTimeout(0);
  // Until the parser has been told of the bytes the thread read, Node must not read the socket,
  // whoever asks it to (http.Server's drain handler resumes a connection it paused).
  const release = holdReading(socket);
  let ok = false;
  try {
    if (rest < 0 || (rest > 0 && (req.complete || fd < 0))) {
      // Cannot happen with an identity body whose length the parser enforces; never guess.
      throw failed(-ECONNRESET, 0);
    }
    const result = await transfer(socket, fd, fileFd, prefix, rest, algorithms, idle, rate);
    if (rest > 0 && !skipBodyInParser(socket, rest)) {
      socket.destroy();
      throw failed(-ECONNRESET, result.bytes);
    }
    ok = true;
    // The stream has ended (the parser pushed its end): let it emit 'end' to whoever waits.
    req.resume();
    return result;
  } finally {
    release();
    if (!socket.destroyed) {
      socket.setTimeout(idle);
      if (!ok) {
        // The rest of the body (if the client still sends it) is read and dropped by the parser
        // until the caller's answer closes the connection.
        req.resume();
        resumeHttpReading(socket);
      } else if (!wasPaused) {
        resumeHttpReading(socket);
      }
    }
  }
}

function transfer(
  socket: Socket,
  socketFdNumber: number,
  fileFd: number,
  prefix: Buffer,
  rest: number,
  algorithms: readonly DigestAlgorithm[],
  idleMs: number,
  rate: BodyRate | undefined,
): Promise<NativeReceipt> {
  return new Promise((resolve, reject) => {
    let id = 0;
    const onClose = (): void => {
      if (id > 0) native.receiveCancel(id);
    };
    // As for sendfile: the callback runs inside a thread-safe-function call, where Node 20
    // swallows a throw; it only settles the promise.
    const rc = native.receiveStart(
      socketFdNumber,
      fileFd,
      prefix,
      rest,
      algorithms.map((a) => NATIVE_DIGEST[a]),
      (err, written, digests, windowBytes, windowMs) => {
        socket.off('close', onClose);
        if (err < 0) {
          // A sender that went quiet for the idle timeout is cut, as Node's own timeout would.
          if (err === -ETIMEDOUT) socket.destroy();
          if (err === -ETIME && rate) {
            rate.tooSlow(bodyTooSlowMessage(windowBytes, windowMs, rate.minRate));
          }
          reject(failed(err, written));
          return;
        }
        resolve({ bytes: written, digests: new Map(algorithms.map((a, i) => [a, digests[i]!])) });
      },
      idleMs,
      false,
      rate?.minRate ?? 0,
      rate?.windowMs ?? 0,
    );
    if (rc < 0) {
      reject(failed(rc, 0));
      return;
    }
    id = rc;
    socket.once('close', onClose);
    if (socket.destroyed) native.receiveCancel(id);
  });
}
