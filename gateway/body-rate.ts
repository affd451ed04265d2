/**
 * A bound on every request body (core/limits.ts bodyMinRate, bodyRateWindowMs, bodyTimeoutMs):
 * the idle timeout alone lets a client that sends a byte now and then hold an upload slot for
 * ever, and Node's requestTimeout is off by default (0), since no fixed time suits every upload.
 * So a body must keep a minimum rate over each window in which the server waits for it, as
 * nginx's client_body_timeout bounds the wait between two reads, and be whole within a total
 * time. Time the server itself stops reading (the disk is slower than the client: its
 * backpressure pauses the socket) is not the client's and does not count against the rate.
 */
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { bodyTooSlowMessage, type Limits } from '../core/limits.js';

export type BodyLimits = Pick<Limits, 'bodyMinRate' | 'bodyRateWindowMs' | 'bodyTimeoutMs'>;

/** Does the request carry a body still to come (RFC 9112 §6.3)? */
function bodyPending(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const { 'content-length': length, 'transfer-encoding': te } = req.headers;
  return te !== undefined || (length !== undefined && length !== '0');
}

/**
 * Watches the body of `req` from the moment the server starts reading it (the route's first
 * read; a 100-continue client sends nothing before that) until it has ended or the request is
 * over. Calls `tooSlow(message)` at most once: when a window passes in which the server waited
 * at least half the time and the client sent less than bodyMinRate bytes a second of waiting,
 * or when the body is not whole bodyTimeoutMs after its first read. Bytes are the socket's
 * (bytesRead), which the HTTP parser reads directly.
 *
 * Returns what a native receive (routes/receive.ts) calls when it takes the first read of the
 * body instead of the stream: its bytes bypass the socket, so the thread judges the rate itself,
 * and only the total time runs here; the cut (tooSlow closes the socket) cancels the thread.
 */
export function watchBody(
  req: IncomingMessage,
  socket: Socket,
  limits: BodyLimits,
  tooSlow: (message: string) => void,
): () => void {
  const { bodyMinRate, bodyRateWindowMs, bodyTimeoutMs } = limits;
  if ((bodyMinRate === 0 && bodyTimeoutMs === 0) || !bodyPending(req)) return () => undefined;
  // inject()'s requests have a mock socket: nothing arrives slowly there.
  if (!(socket instanceof Socket)) return () => undefined;
  let stop: (() => void) | undefined;
  const start = (natively: boolean): void => {
    if (stop !== undefined || req.complete || socket.destroyed) return;
    let windowStart = performance.now();
    let bytesAtStart = socket.bytesRead;
    let pausedMs = 0;
    let pausedSince: number | undefined = socket.isPaused() ? windowStart : undefined;
    const onPause = (): void => {
      pausedSince ??= performance.now();
    };
    const onResume = (): void => {
      if (pausedSince === undefined) return;
      pausedMs += performance.now() - pausedSince;
      pausedSince = undefined;
    };
    const fail = (message: string): void => {
      stop?.();
      tooSlow(message);
    };
    const check = (): void => {
      // All sent, only not read yet by the route (a slow disk): nothing more to ask of the client.
      if (req.complete) {
        stop?.();
        return;
      }
      const now = performance.now();
      const waited = now - windowStart - pausedMs - (pausedSince === undefined ? 0 : now - pausedSince);
      const got = socket.bytesRead - bytesAtStart;
      // A window the server mostly spent paused says nothing about the client, nor one that ends
      // with bytes read but not yet taken by the route: judged again later.
      const judged = waited >= bodyRateWindowMs / 2 && req.readableLength === 0;
      if (judged && got < (bodyMinRate * waited) / 1000) {
        fail(bodyTooSlowMessage(got, waited, bodyMinRate));
        return;
      }
      windowStart = now;
      bytesAtStart = socket.bytesRead;
      pausedMs = 0;
      if (pausedSince !== undefined) pausedSince = now;
    };
    const rate = bodyMinRate > 0 && !natively ? setInterval(check, bodyRateWindowMs).unref() : undefined;
    const total =
      bodyTimeoutMs > 0
        ? setTimeout(
            () => fail(`request body not whole within ${bodyTimeoutMs / 1000} s`),
            bodyTimeoutMs,
          ).unref()
        : undefined;
    socket.on('pause', onPause);
    socket.on('resume', onResume);
    stop = () => {
      clearInterval(rate);
      clearTimeout(total);
      socket.off('pause', onPause);
      socket.off('resume', onResume);
    };
  };
  // 'resume': the route started reading the body (pipe, for await, on('data')).
  const resumed = (): void => start(false);
  req.once('resume', resumed);
  const end = (): void => {
    req.off('resume', resumed);
    stop?.();
    stop = () => undefined;
  };
  req.once('end', end);
  req.once('close', end);
  return () => start(true);
}
