/**
 * Resource limits: every one bounded by default, since anyone in the network namespace can open
 * connections to an abstract name. Slowloris is defeated by headersTimeout (the whole header
 * block within 10 s, checked every second), idle connections by the idle timeout, floods by
 * maxConnections (counted over allowed peers by the peer gate, gateway/listen.ts: beyond it new
 * connections are answered 429 and closed; refused peers have caps of their own).
 */
import { ngError } from './errors.js';

export interface Limits {
  /** Open connections from allowed peers at most; more are answered 429 and closed (and logged). */
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
  /**
   * Bytes per second a request body must average, over each bodyRateWindowMs the server spends
   * waiting for it (time it stops reading for its own backpressure does not count); slower is
   * 408 and the connection closed. 0 = no minimum. The idle timeout alone lets a byte every 59 s
   * hold an upload slot for ever.
   */
  readonly bodyMinRate: number;
  /** The window bodyMinRate is averaged over (nginx's client_body_timeout is 60 s between reads). */
  readonly bodyRateWindowMs: number;
  /** A request body must be whole within this time from its first byte read; 0 = no limit. */
  readonly bodyTimeoutMs: number;
}

/** Request header fields at most (Node 22+'s own default); more are 431 on every Node version. */
export const MAX_HEADER_FIELDS = 1000;

/**
 * Requests one connection may have in flight (read, not yet answered) at most. HTTP/1.1 answers
 * pipelined requests in order, so a client that sends many and reads none holds every one of
 * them; beyond this the server stops reading from the connection and starts no further request
 * until an earlier one is answered (gateway/pipelining.ts), as nginx reads the next request
 * only once the current one is answered.
 */
export const MAX_PIPELINED_REQUESTS = 32;

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxConnections: 2048,
  maxUploads: 16,
  maxHeaderSize: 16 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 0,
  idleTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  // Apache's mod_reqtimeout asks 500 bytes/s of a body by default; a minute smooths out a
  // producer that pauses (tar walking a large directory, a compressor filling its window).
  bodyMinRate: 500,
  bodyRateWindowMs: 60_000,
  bodyTimeoutMs: 3_600_000,
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
  if (limits.bodyMinRate > 0 && limits.bodyRateWindowMs === 0) {
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      'limits.bodyRateWindowMs must be positive when limits.bodyMinRate is',
    );
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

/** Keys a RateLimitedLog tracks at most; events for more keys share one overflow key. */
export const MAX_LOG_KEYS = 256;
/** The key that events beyond MAX_LOG_KEYS distinct keys are counted under. */
export const OVERFLOW_KEY = '*';

interface LogWindow<E> {
  timer: NodeJS.Timeout;
  suppressed: number;
  last: E;
}

/**
 * A logger guard for events a flood could repeat without end (peer denials, dropped connections,
 * parser errors), with one window per key (e.g. uid + reason), so one peer's flood never hides
 * another peer's first event. The first event of a key is logged at once; the rest within the
 * window are counted, and when the window ends a timer logs the count with the last event seen
 * (and opens the next window, so a flood that goes on logs one line per window). A key with
 * nothing pending is forgotten. Timers are unref'd: a pending count never keeps the process up;
 * flush() logs what is pending (call it on close).
 */
export class RateLimitedLog<E> {
  readonly #windows = new Map<string, LogWindow<E>>();

  constructor(
    readonly windowMs: number,
    private readonly emit: (event: E, suppressed: number) => void,
    readonly maxKeys: number = MAX_LOG_KEYS,
  ) {}

  /** Keys with a window open (for tests and metrics). */
  get size(): number {
    return this.#windows.size;
  }

  event(key: string, event: E): void {
    let k = key;
    let w = this.#windows.get(k);
    if (w === undefined && this.#windows.size >= this.maxKeys) {
      k = OVERFLOW_KEY;
      w = this.#windows.get(k);
    }
    if (w !== undefined) {
      w.suppressed++;
      w.last = event;
      return;
    }
    this.emit(event, 0);
    this.#windows.set(k, { timer: this.#arm(k), suppressed: 0, last: event });
  }

  /** Logs every pending count now and forgets all keys. */
  flush(): void {
    for (const w of this.#windows.values()) {
      clearTimeout(w.timer);
      if (w.suppressed > 0) this.emit(w.last, w.suppressed);
    }
    this.#windows.clear();
  }

  #arm(key: string): NodeJS.Timeout {
    return setTimeout(() => this.#windowEnd(key), this.windowMs).unref();
  }

  #windowEnd(key: string): void {
    const w = this.#windows.get(key);
    if (w === undefined) return;
    if (w.suppressed === 0) {
      this.#windows.delete(key);
      return;
    }
    const { last, suppressed } = w;
    w.suppressed = 0;
    w.timer = this.#arm(key);
    this.emit(last, suppressed);
  }
}

/**
 * The 408 message of a body under the minimum rate, the same whoever judged it (the JS watch,
 * gateway/body-rate.ts, or the native receive thread, routes/receive.ts): what the last window
 * brought and how long the server waited for it.
 */
export function bodyTooSlowMessage(bytes: number, waitedMs: number, minRate: number): string {
  return `request body too slow: ${bytes} bytes in ${Math.round(waitedMs / 1000)} s, under ${minRate} bytes/s`;
}
