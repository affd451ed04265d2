import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OVERFLOW_KEY, RateLimitedLog, resolveLimits } from '../../core/limits.js';

interface Ev {
  readonly uid: number;
  readonly n: number;
}

describe('RateLimitedLog: one window per key, pending counts flushed by a timer', () => {
  let lines: [Ev, number][];
  let log: RateLimitedLog<Ev>;
  beforeEach(() => {
    vi.useFakeTimers();
    lines = [];
    log = new RateLimitedLog<Ev>(10_000, (event, suppressed) => lines.push([event, suppressed]), 4);
  });
  afterEach(() => {
    log.flush();
    vi.useRealTimers();
  });

  it('logs the first event at once and the count of the rest when the window ends', () => {
    for (let n = 1; n <= 5; n++) log.event('65534:denied', { uid: 65534, n });
    expect(lines).toEqual([[{ uid: 65534, n: 1 }, 0]]);
    vi.advanceTimersByTime(9_999);
    expect(lines).toHaveLength(1);
    // No later event is needed for the count to come out.
    vi.advanceTimersByTime(1);
    expect(lines).toEqual([
      [{ uid: 65534, n: 1 }, 0],
      [{ uid: 65534, n: 5 }, 4],
    ]);
  });

  it('keys do not share a window: another uid right after a flood is logged at once', () => {
    for (let n = 1; n <= 100; n++) log.event('65534:denied', { uid: 65534, n });
    log.event('1000:denied', { uid: 1000, n: 1 });
    expect(lines).toEqual([
      [{ uid: 65534, n: 1 }, 0],
      [{ uid: 1000, n: 1 }, 0],
    ]);
    vi.advanceTimersByTime(10_000);
    expect(lines).toContainEqual([{ uid: 65534, n: 100 }, 99]);
    expect(lines).toHaveLength(3);
  });

  it('a flood that goes on logs one line per window; a quiet key is forgotten', () => {
    for (let w = 0; w < 3; w++) {
      for (let n = 0; n < 10; n++) log.event('k', { uid: 1, n: w * 10 + n });
      vi.advanceTimersByTime(10_000);
    }
    expect(lines.map(([, s]) => s)).toEqual([0, 9, 10, 10]);
    expect(log.size).toBe(1);
    // A window with nothing in it closes the key; the next event is logged at once again.
    vi.advanceTimersByTime(10_000);
    expect(log.size).toBe(0);
    log.event('k', { uid: 1, n: 99 });
    expect(lines.at(-1)).toEqual([{ uid: 1, n: 99 }, 0]);
  });

  it('a single event leaves nothing pending: the window closes without a line', () => {
    log.event('k', { uid: 1, n: 1 });
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(1);
    expect(log.size).toBe(0);
  });

  it('keeps at most maxKeys keys; further keys share the overflow window', () => {
    for (let uid = 0; uid < 10; uid++) log.event(`${uid}:denied`, { uid, n: 1 });
    // Four keys of their own, then one line for the first overflowing event, the rest counted.
    expect(lines.map(([e]) => e.uid)).toEqual([0, 1, 2, 3, 4]);
    expect(log.size).toBe(5);
    vi.advanceTimersByTime(10_000);
    expect(lines.at(-1)).toEqual([{ uid: 9, n: 1 }, 5]);
    expect(OVERFLOW_KEY).toBe('*');
  });

  it('flush() logs what is pending and stops the timers', () => {
    log.event('a', { uid: 1, n: 1 });
    log.event('a', { uid: 1, n: 2 });
    log.event('b', { uid: 2, n: 1 });
    log.flush();
    expect(lines).toEqual([
      [{ uid: 1, n: 1 }, 0],
      [{ uid: 2, n: 1 }, 0],
      [{ uid: 1, n: 2 }, 1],
    ]);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(20_000);
    expect(lines).toHaveLength(3);
  });

  it('its timers never keep the process alive', () => {
    vi.useRealTimers();
    const real = new RateLimitedLog<Ev>(10_000, () => undefined);
    const spy = vi.spyOn(globalThis, 'setTimeout');
    real.event('k', { uid: 1, n: 1 });
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    spy.mockRestore();
    real.flush();
  });
});

describe('resolveLimits', () => {
  it.each([
    [{ maxConnections: 0 }, /limits.maxConnections must be a positive number, got 0/],
    [{ headersTimeoutMs: -1 }, /limits.headersTimeoutMs must be a non-negative number/],
    [{ requestTimeoutMs: 1000, headersTimeoutMs: 2000 }, /must not exceed/],
  ])('refuses %j', (partial, message) => {
    expect(() => resolveLimits(partial)).toThrow(message);
  });
});
