/**
 * The small-file cache of GET /files: the content and status of small files that are served
 * often, so that a hit costs one fstatat(2) instead of openat2 + fstat + pread + close (on this
 * kind of machine a system call costs 1.5–3 µs; docs/performance.md, "Small files").
 *
 * Freshness. Every hit compares the file's status now with the status it had when it was read:
 * device, inode, mode, link count, owner, size, mtime and ctime to the nanosecond. Any write,
 * truncate, chmod, chown, link or rename of a file sets its ctime to the current time, and no
 * system call sets ctime to anything else, so a file whose ctime is unchanged has not been
 * written — provided two changes cannot share one ctime value. File systems stamp ctime from a
 * coarse clock (a jiffy, up to 10 ms; 2 s on FAT), so a file is kept only once its ctime is
 * SETTLE_MS in the past: any later change stamps a ctime at least that much later than the
 * one kept. (git calls the other case "racily clean" and rereads such files, as this does.)
 * What ctime cannot show: a write through a shared mapping to a page that was already dirty
 * (the kernel stamps the time on the first write fault after writeback) — the cache would keep
 * the bytes read before it until the next stamped change.
 *
 * Confinement. Entries are filled only by readCached, which opens the file beneath the root
 * (openat2 RESOLVE_BENEATH). The revalidating fstatat follows symlinks anywhere, but a hit
 * also needs the very inode read beneath the root, with the same ctime: so a hit replays bytes
 * that were beneath the root when read and have not changed since. A directory on the path
 * swapped for a symlink to anything else misses, and the miss takes the confined path again.
 *
 * One fstatat per file per turn of the event loop. A request for a kept file waits (later) until
 * the event loop has run every read of this turn, and then all waiting requests are answered
 * together: the first request for a file revalidates it, the others for the same file take that
 * answer. Every request was read before that fstatat, so a change made before a client sent its
 * request is seen, as with an fstatat of its own. A busy server reads many requests per turn
 * (about ten at ten connections): most of them cost no system call.
 */
import type { BeneathRoot } from '../native/beneath.js';
import { type CachedFile, readCached, STAT_SLOTS, statSlots } from '../native/small-file.js';

/** A file whose ctime is less than this old is read every time, never kept. */
export const SETTLE_MS = 5_000;
/** Bytes of content kept per served tree (each file is at most SMALL_FILE_MAX). */
export const DEFAULT_CACHE_BYTES = 8 * 1024 * 1024;
/** Files kept per served tree. */
export const DEFAULT_CACHE_FILES = 4096;

// Slots compared on a hit: all but atime (reading changes it) and blocks (delayed allocation
// changes it after the data was written, without a new ctime).
const COMPARED = [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12] as const;
const CTIME_SEC = 11;
const CTIME_NSEC = 12;

interface Entry {
  readonly file: CachedFile;
  /** The status slots when the content was read. */
  readonly slots: Float64Array;
}

export interface SmallFileCacheOptions {
  readonly maxBytes?: number;
  readonly maxFiles?: number;
  /** The clock to judge SETTLE_MS by (tests). */
  readonly now?: () => number;
  /** The revalidating status call (tests count it). */
  readonly stat?: typeof statSlots;
}

/** Takes the content and status of a file as `get` gives them; must not throw. */
export type CachedAnswer = (file: CachedFile | undefined) => void;

export class SmallFileCache {
  readonly #root: BeneathRoot;
  readonly #entries = new Map<string, Entry>();
  readonly #maxBytes: number;
  readonly #maxFiles: number;
  readonly #now: () => number;
  readonly #stat: typeof statSlots;
  /** Scratch status slots of the current lookup (every call is synchronous). */
  readonly #current = new Float64Array(STAT_SLOTS);
  #bytes = 0;
  /** Requests waiting for the end of this turn of the event loop (later), in arrival order. */
  #waiting: { readonly rel: string; readonly answer: CachedAnswer }[] = [];
  /** Kept files revalidated while answering the waiting requests: the others take that answer. */
  readonly #fresh = new Set<string>();
  #answering = false;

  constructor(root: BeneathRoot, options: SmallFileCacheOptions = {}) {
    this.#root = root;
    this.#maxBytes = options.maxBytes ?? DEFAULT_CACHE_BYTES;
    this.#maxFiles = options.maxFiles ?? DEFAULT_CACHE_FILES;
    this.#now = options.now ?? (() => Date.now());
    this.#stat = options.stat ?? statSlots;
  }

  /** Files kept now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The content and status of `rel` as readCached gives them (undefined when the caches of the
   * kernel cannot answer at once: take the asynchronous path), from this cache when the file's
   * status is what it was when it was kept.
   */
  get(rel: string): CachedFile | undefined {
    const kept = this.#entries.get(rel);
    if (kept !== undefined) {
      if (this.#fresh.has(rel)) return kept.file;
      if (this.#stat(this.#root, rel, this.#current) && sameStatus(kept.slots, this.#current)) {
        if (this.#answering) this.#fresh.add(rel);
        return kept.file;
      }
      this.#drop(rel, kept);
    }
    // Read into the scratch slots; an entry kept gets its own copy.
    const file = readCached(this.#root, rel, this.#current);
    if (file !== undefined && this.#settled(this.#current) && this.#maxBytes > 0) {
      this.#keep(rel, { file, slots: this.#current.slice() });
    }
    return file;
  }

  /** True when `rel` is kept: `later` answers it once this turn of the event loop is over. */
  keeps(rel: string): boolean {
    return this.#entries.has(rel);
  }

  /**
   * Calls `answer` with what `get(rel)` gives once the event loop has run every read of this
   * turn, together with every other request waiting: one fstatat per file for all of them.
   */
  later(rel: string, answer: CachedAnswer): void {
    if (this.#waiting.push({ rel, answer }) === 1) setImmediate(this.#answerWaiting);
  }

  readonly #answerWaiting = (): void => {
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#answering = true;
    try {
      for (const { rel, answer } of waiting) answer(this.get(rel));
    } finally {
      this.#answering = false;
      this.#fresh.clear();
    }
  };

  #settled(slots: Float64Array): boolean {
    const ctimeMs = slots[CTIME_SEC]! * 1e3 + slots[CTIME_NSEC]! / 1e6;
    return this.#now() - ctimeMs >= SETTLE_MS;
  }

  #keep(rel: string, entry: Entry): void {
    const size = entry.file.data.length;
    if (size > this.#maxBytes) return;
    // Oldest first out: a Map iterates in insertion order.
    for (const [oldest, old] of this.#entries) {
      if (this.#bytes + size <= this.#maxBytes && this.#entries.size < this.#maxFiles) break;
      this.#drop(oldest, old);
    }
    this.#entries.set(rel, entry);
    this.#bytes += size;
  }

  #drop(rel: string, entry: Entry): void {
    this.#entries.delete(rel);
    this.#bytes -= entry.file.data.length;
  }
}

function sameStatus(kept: Float64Array, now: Float64Array): boolean {
  for (const i of COMPARED) if (kept[i] !== now[i]) return false;
  return true;
}
