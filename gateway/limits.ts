/**
 * Resource limits: every one bounded by default, since anyone in the network namespace can open
 * connections to an abstract name. Slowloris is defeated by headersTimeout (the whole header
 * block within 10 s, checked every second), idle connections by the idle timeout, floods by
 * maxConnections (beyond it Node closes new connections at once and emits 'drop').
 */
import { ngError } from './errors.js';

export interface Limits {
  /** Open connections at most; more are closed at once (counted and logged). */
  readonly maxConnections: number;
  /** Concurrent uploads (PUT bodies, archive extractions) at most; more get 429. */
  readonly maxUploads: number;
  /** Bytes of request line + headers at most (431 beyond). */
  readonly maxHeaderSize: number;
  /** The header block must arrive within this time (408 beyond). */
  readonly headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this time; 0 = no limit. */
  readonly requestTimeoutMs: number;
  /** A connection with no traffic either way is closed after this time. */
  readonly idleTimeoutMs: number;
  /** An idle keep-alive connection is closed after this time. */
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxConnections: 2048,
  maxUploads: 16,
  maxHeaderSize: 16 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 0,
  idleTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
});

export function resolveLimits(partial: Partial<Limits> = {}): Limits {
  const limits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(partial) as [keyof Limits, number | undefined][]) {
    if (value === undefined) continue;
    if (!Number.isFinite(value) || value < 0 || (key.startsWith('max') && value < 1)) {
      throw ngError(
        'NG_ERR_INVALID_OPTION',
        `limits.${key} must be a ${key.startsWith('max') ? 'positive' : 'non-negative'} number, got ${String(value)}`,
      );
    }
    limits[key] = value;
  }
  // Node checks these timers on an interval; the headers timeout must fit inside the request one.
  if (limits.requestTimeoutMs > 0 && limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw ngError('NG_ERR_INVALID_OPTION', 'limits.headersTimeoutMs must not exceed limits.requestTimeoutMs');
  }
  return Object.freeze(limits);
}

/**
 * Upload slots shared by every route that takes a request body to disk (`PUT /files`,
 * `PUT /archive`), so `--max-uploads` bounds them together. `acquire()` is 429
 * NG_ERR_TOO_MANY_REQUESTS when all are taken; call the returned function once, when done.
 */
export class UploadSlots {
  #inUse = 0;
  constructor(readonly max: number) {}

  get inUse(): number {
    return this.#inUse;
  }

  acquire(): () => void {
    if (this.#inUse >= this.max) {
      throw ngError('NG_ERR_TOO_MANY_REQUESTS', `${this.max} uploads are in progress; try again`);
    }
    this.#inUse++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inUse--;
    };
  }
}

/**
 * A logger guard for events a flood could repeat without end (peer denials, dropped
 * connections): the first one in each window is logged, the rest are counted and reported with
 * the next one that gets through.
 */
export function rateLimited(windowMs: number, log: (suppressed: number) => void): () => void {
  let windowStart = -Infinity;
  let suppressed = 0;
  return () => {
    const now = performance.now();
    if (now - windowStart >= windowMs) {
      windowStart = now;
      log(suppressed);
      suppressed = 0;
    } else {
      suppressed++;
    }
  };
}
