/**
 * The small-file fast path of GET /files (PERFORMANCE-NOTES.md "Small files"): one synchronous
 * native call opens a file beneath the root (openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
 * RESOLVE_CACHED), fstats it and reads it whole with preadv2 RWF_NOWAIT — from the kernel's
 * caches only, so it never waits for a disk on the event loop. Nothing is cached here: every
 * answer is the file as it is on disk now (routes/small-file-cache.ts keeps what this reads,
 * revalidated by statSlots).
 */
import type { BeneathRoot, BeneathStat } from './beneath.js';
import { native } from './binding.js';

/** Files up to this size can take the fast path. */
export const SMALL_FILE_MAX = 64 * 1024;

/**
 * The 14 status slots the native calls fill (native/addon_small.cc): dev, ino, mode, nlink,
 * uid, gid, size, mtime s, mtime ns, atime s, atime ns, ctime s, ctime ns, blocks.
 */
export const STAT_SLOTS = 14;

// One scratch buffer and one stat array for every call: the call is synchronous, and the bytes
// are copied out before anything else can run.
const scratch = Buffer.allocUnsafe(SMALL_FILE_MAX);
const st = new Float64Array(STAT_SLOTS);

export interface CachedFile {
  readonly stat: BeneathStat;
  readonly data: Buffer;
}

/**
 * The content and stat of `rel` (a path from decodeFilePath: relative, no `..`, no NUL) when it
 * is a regular file of at most SMALL_FILE_MAX bytes whose lookup and data are all in the
 * caches. `undefined` otherwise — not cached, not a regular file, too large, or any error: the
 * caller takes the asynchronous path, which gives the same answer (or the error) the slow way.
 */
export function readCached(root: BeneathRoot, rel: string, slots?: Float64Array): CachedFile | undefined {
  const n = native.readSmallCached(root.fd, rel, scratch, st);
  if (n < 0) return undefined;
  // The raw status as well, for a caller that revalidates what it keeps (statSlots).
  slots?.set(st);
  // A copy: the response may sit in the socket's queue while later requests reuse the scratch.
  const data = Buffer.allocUnsafe(n);
  scratch.copy(data, 0, 0, n);
  const sec = st[7]!;
  const nsec = st[8]!;
  const ns = (s: number, n: number): bigint => BigInt(s) * 1_000_000_000n + BigInt(n);
  return {
    data,
    stat: {
      type: 'file',
      dev: st[0]!,
      ino: st[1]!,
      mode: st[2]!,
      nlink: st[3]!,
      uid: st[4]!,
      gid: st[5]!,
      size: st[6]!,
      mtimeMs: sec * 1e3 + nsec / 1e6,
      mtimeNs: ns(sec, nsec),
      atimeNs: ns(st[9]!, st[10]!),
      ctimeNs: ns(st[11]!, st[12]!),
      // A regular file: no device numbers.
      rdev: 0,
      rdevMajor: 0,
      rdevMinor: 0,
      blocks: st[13]!,
    },
  };
}

/**
 * The status of `rel` under the root in one system call (fstatat, following symlinks), into
 * `out` (STAT_SLOTS slots): true, or false on any error. NOT confined to the root: it may only
 * revalidate a file readCached read beneath it, never decide what is served.
 */
export function statSlots(root: BeneathRoot, rel: string, out: Float64Array): boolean {
  return native.statAt(root.fd, rel, out) === 0;
}
