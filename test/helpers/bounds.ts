/**
 * Bounds that only catch hangs (STYLE.md "Tests"): a test waits for the event it is about, and
 * `settlesWithin` fails it, naming the event, when that has not come after `ms`. The bound is
 * seconds beyond what a loaded machine needs; where the failure it guards against is a wait of
 * its own (a grace period, a keep-alive timeout), the test makes that wait far longer still, so
 * the two can never be confused.
 */
export function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}
