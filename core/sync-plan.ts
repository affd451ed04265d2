/**
 * What a sync sends and deletes (CONTRACT.md "Sync: send only what changed"): the source's
 * manifest against the destination's (core/manifest.ts), compared the way `rsync -aHAXS
 * --numeric-ids` compares (its "quick check", or content with `--checksum`). Pure: both `push
 * --sync` and `pull --sync` plan with it, and the dry run prints its listing.
 *
 * An entry is sent when the destination lacks it or differs in what the receiver keeps: type,
 * size and mtime (or the content's sha-256 with `checksum`), permission bits (those the
 * receiver may set), owner (only when the receiver applies owners: root for root), symlink
 * target, device numbers, extended attributes (the digest of those the receiver applies).
 * Symlinks are compared by target, owner and attributes, not by their own time or mode (which
 * Linux does not give a link): rsync does the same.
 *
 * Hard links: a set of names that is one inode at the source is sent whole (its first name as
 * the file, the others as links to it) when any of its names changed or the destination does
 * not have exactly those names as one inode; otherwise none of it is sent.
 *
 * Deletions: with `delete`, destination entries the source lacks; always, an entry whose type
 * changes between a directory and anything else (a merge cannot put a file where a directory
 * is, nor the other way). Only the outermost of a deleted subtree goes on the wire (deleting a
 * directory deletes what is in it); the listing names every deleted entry, contents before
 * their directory (as `rsync -n --delete` does).
 *
 * The directories that hold a sent or deleted entry are sent too (as directory entries: their
 * modes and times are set after their contents changed, so their mtimes end as the source's);
 * they are not listed unless they changed themselves.
 */
import type { ManifestEntry } from './manifest.js';
import { ancestorsOf, isWithin } from './rel-path.js';

export interface PlanOptions {
  /** Also delete destination entries that the source lacks (`--delete`). */
  readonly delete?: boolean;
  /** Compare regular files by `sha256` instead of size and mtime (`--checksum`). */
  readonly checksum?: boolean;
  /** Compare uid and gid: only when the receiver applies owners (root writing for root). */
  readonly owners?: boolean;
  /** The permission bits the receiver keeps: 07777 when it may set set-id bits, else 01777. */
  readonly modeMask?: number;
}

export interface SyncPlan {
  /** Paths to send, in the source's order: changed entries, their link sets and their parents. */
  readonly send: readonly string[];
  /** Paths to delete at the destination, outermost only, in the destination's order. */
  readonly delete: readonly string[];
  /** What changes, one line each, for a dry run and for the report: `send` / `delete` and a path. */
  readonly listing: readonly {
    readonly op: 'send' | 'delete';
    readonly path: string;
    readonly type: string;
  }[];
}

/** The coarsest precision (ns per unit, a power of ten up to a second) that `ns` is a multiple of. */
export function mtimePrecision(ns: bigint): bigint {
  let unit = 1n;
  while (unit < 1_000_000_000n && ns % (unit * 10n) === 0n) unit *= 10n;
  return unit;
}

/**
 * Whether two mtimes (ns as decimal text) are the same time. When one side keeps less than
 * nanoseconds (a file system with second or microsecond times, an archive without pax times),
 * they are compared at the coarser precision: a file whose time was truncated is not changed.
 */
export function sameMtime(a: string, b: string): boolean {
  if (a === b) return true;
  const x = BigInt(a);
  const y = BigInt(b);
  const px = mtimePrecision(x);
  const py = mtimePrecision(y);
  const unit = px > py ? px : py;
  if (unit === 1n) return false;
  const floor = (n: bigint): bigint => (n >= 0n ? n / unit : -((-n + unit - 1n) / unit));
  return floor(x) === floor(y);
}

/** Why `src` would be sent over `dst` (undefined when the receiver already has it as it is). */
export function difference(
  src: ManifestEntry,
  dst: ManifestEntry,
  options: PlanOptions = {},
): string | undefined {
  if (src.type !== dst.type) return 'type';
  const mask = options.modeMask ?? 0o7777;
  if (options.owners === true && (src.uid !== dst.uid || src.gid !== dst.gid)) return 'owner';
  if (src.xattrs !== dst.xattrs) return 'xattrs';
  switch (src.type) {
    case 'symlink':
      return src.target === dst.target ? undefined : 'target';
    case 'file':
      if (options.checksum === true && src.sha256 !== undefined && dst.sha256 !== undefined) {
        if (src.sha256 !== dst.sha256) return 'content';
      } else if (src.size !== dst.size) return 'size';
      break;
    case 'char':
    case 'block':
      if (src.rdev?.[0] !== dst.rdev?.[0] || src.rdev?.[1] !== dst.rdev?.[1]) return 'rdev';
      break;
    default:
      break;
  }
  if ((src.mode & mask) !== (dst.mode & mask)) return 'mode';
  if (!sameMtime(src.mtime, dst.mtime)) return 'mtime';
  return undefined;
}

/** The names of each hard-link set (entries with the same `link`), by that `link`. */
function linkSets(entries: Iterable<ManifestEntry>): Map<string, string[]> {
  const sets = new Map<string, string[]>();
  for (const e of entries) {
    if (e.link === undefined) continue;
    const names = sets.get(e.link);
    if (names === undefined) sets.set(e.link, [e.path]);
    else names.push(e.path);
  }
  return sets;
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/** Compares two manifests (each in walk order) and says what to send and delete. */
export function planSync(
  source: readonly ManifestEntry[],
  destination: readonly ManifestEntry[],
  options: PlanOptions = {},
): SyncPlan {
  const dst = new Map(destination.map((e) => [e.path, e]));
  const src = new Map(source.map((e) => [e.path, e]));
  const changed = new Set<string>();
  const replaced = new Set<string>();
  for (const s of source) {
    const d = dst.get(s.path);
    if (d === undefined || difference(s, d, options) !== undefined) changed.add(s.path);
    // A directory cannot be merged over a non-directory or the other way: the old one goes.
    if (d !== undefined && d.type !== s.type && (d.type === 'dir' || s.type === 'dir')) replaced.add(s.path);
  }

  // Hard-link sets go whole, when any name changed or the destination's set is not the same.
  const srcSets = linkSets(source);
  const dstSets = linkSets(destination);
  const dstSetOf = (path: string): readonly string[] => {
    const link = dst.get(path)?.link;
    return link === undefined ? [path] : (dstSets.get(link) ?? [path]);
  };
  for (const names of srcSets.values()) {
    if (names.some((n) => changed.has(n) || !sameNames(dstSetOf(n), names))) {
      for (const n of names) changed.add(n);
    }
  }
  // A single name at the source that is part of a larger set at the destination is sent, so it
  // becomes its own inode there.
  for (const s of source) {
    if (s.link === undefined && s.type !== 'dir' && dstSetOf(s.path).length > 1) changed.add(s.path);
  }

  // Deletions: the whole subtree of each deleted entry, listed contents first.
  // Walk order keeps a directory's contents right after it, so a subtree is one run of entries.
  const deletedRoots: string[] = [];
  const deletedListing: { op: 'delete'; path: string; type: string }[] = [];
  let inside: string | undefined;
  for (const d of destination) {
    if (d.path === '') continue;
    if (inside !== undefined && isWithin(d.path, inside)) {
      deletedListing.push({ op: 'delete', path: d.path, type: d.type });
      continue;
    }
    inside = undefined;
    const gone = !src.has(d.path) ? options.delete === true : replaced.has(d.path);
    if (!gone) continue;
    inside = d.path;
    deletedRoots.push(d.path);
    deletedListing.push({ op: 'delete', path: d.path, type: d.type });
  }
  // Contents before their directory (reverse walk order puts every child before its parent).
  deletedListing.reverse();

  // The directories that hold a change, so that their times end as the source's.
  const parents = new Set<string>();
  const addParents = (path: string): void => {
    for (const a of ['', ...ancestorsOf(path)]) if (src.get(a)?.type === 'dir') parents.add(a);
  };
  for (const p of changed) if (p !== '') addParents(p);
  for (const p of deletedRoots) addParents(p);

  const send: string[] = [];
  const listing: { op: 'send' | 'delete'; path: string; type: string }[] = [...deletedListing];
  for (const s of source) {
    if (changed.has(s.path)) {
      send.push(s.path);
      listing.push({ op: 'send', path: s.path, type: s.type });
    } else if (parents.has(s.path)) send.push(s.path);
  }
  return { send, delete: deletedRoots, listing };
}

/** A listing line as a dry run prints it: `send a/b`, `delete c/` (a directory ends in '/'; the top is './'). */
export function listingLine(item: SyncPlan['listing'][number]): string {
  const shown = item.path === '' ? './' : item.type === 'dir' ? `${item.path}/` : item.path;
  return `${item.op} ${shown}`;
}
