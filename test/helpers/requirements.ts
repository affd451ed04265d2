/**
 * Tests that need root or an external tool declare it here. Without it they skip — unless
 * NULLGATE_TEST_REQUIRE_ALL=1 (CI), where a missing requirement fails the test instead.
 */
import { execFileSync } from 'node:child_process';
import { it, type TestFunction } from 'vitest';

export type Requirement =
  | 'root'
  | 'curl'
  | 'python3'
  | 'setpriv'
  | 'unshare'
  | 'nsenter'
  | 'chroot'
  | 'tar'
  | 'mount'
  | 'setcap'
  | 'setfattr'
  | 'getfattr'
  | 'openssl'
  | 'npm';

const cache = new Map<Requirement, boolean>();

function probe(req: Requirement): boolean {
  if (req === 'root') return process.getuid?.() === 0;
  try {
    execFileSync('sh', ['-c', `command -v ${req}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function has(req: Requirement): boolean {
  let ok = cache.get(req);
  if (ok === undefined) {
    ok = probe(req);
    cache.set(req, ok);
  }
  return ok;
}

export const requireAll = process.env.NULLGATE_TEST_REQUIRE_ALL === '1';

/** `it` that declares its requirements: runs, skips, or (under REQUIRE_ALL) fails. */
export function itNeeds(
  reqs: readonly Requirement[],
  name: string,
  fn: TestFunction,
  timeout?: number,
): void {
  const missing = reqs.filter((r) => !has(r));
  if (missing.length === 0) it(name, fn, timeout);
  else if (requireAll) {
    it(name, () => {
      throw new Error(
        `requires ${missing.join(', ')} (NULLGATE_TEST_REQUIRE_ALL=1 turns this skip into a failure)`,
      );
    });
  } else it.skip(`${name} [needs ${missing.join(', ')}]`, fn);
}
