/**
 * Pure rules for tar entries, shared by `GET /archive` (what goes into a header), `PUT /archive`
 * (what an uploaded entry may do) and the client's `pull` (what a downloaded entry may do to
 * LOCAL_DIR, client/archive.ts). None of this touches the disk: the checks
 * here give early, precise refusals naming the entry; confinement itself stays the kernel's
 * (openat2 RESOLVE_BENEATH in native/beneath.ts). They never rely on tar-stream's own name
 * handling, which does no filtering at all.
 */
import { ngError, type NullgateError } from './errors.js';
import {
  ancestorsOf,
  isTempName,
  joinRel,
  normalizeRel,
  parentOf,
  shortened,
  TEMP_NAME_PREFIX,
} from './rel-path.js';

/** The largest value an 11-digit octal ustar field holds: 8 GiB - 1 (POSIX.1-2001 ustar). */
export const USTAR_MAX_OCTAL11 = 0o77777777777;
/** The largest value a 7-digit octal ustar field (uid, gid) holds. */
export const USTAR_MAX_OCTAL7 = 0o7777777;

/** An entry's name as messages show it: quoted, and shortened when long (with its length). */
export function entryLabel(name: string): string {
  const shown = shortened(name);
  return shown === name ? `"${name}"` : `"${shown}" (${Buffer.byteLength(name)} bytes)`;
}

export function unsafeEntry(name: string, why: string, cause?: unknown): NullgateError {
  return ngError('NG_ERR_ARCHIVE_UNSAFE', `refusing archive entry ${entryLabel(name)}: ${why}`, cause);
}

export function invalidEntry(name: string, why: string): NullgateError {
  return ngError('NG_ERR_ARCHIVE_INVALID', `bad archive entry ${entryLabel(name)}: ${why}`);
}

/**
 * The entry name as a clean relative path ('' names the target directory itself). Absolute
 * names and any `..` component are refused, even `a/../b` that would stay inside: one rule is
 * easier to trust than a normaliser (the same rule as URL paths, routes/url-path.ts). So are
 * components starting with `.nullgate-tmp-`, the names of the server's own temporaries, as in
 * URL paths: nothing extracted may pose as (or hide inside) one.
 */
export function entryPath(name: string): string {
  if (name.includes('\0')) throw unsafeEntry(name, 'NUL byte in name');
  if (name.startsWith('/')) throw unsafeEntry(name, 'absolute path');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafeEntry(name, "'..' in path");
  if (parts.some(isTempName))
    throw unsafeEntry(name, `names starting with "${TEMP_NAME_PREFIX}" are reserved`);
  return parts.join('/');
}

export type EntryKind = 'file' | 'dir' | 'symlink' | 'hardlink';

/**
 * What an entry type becomes on disk. Devices, FIFOs (and sockets, which tar cannot carry at
 * all) are refused as unsafe: a device node in the served tree is a hole in the sandbox, and
 * opening a FIFO blocks. Types tar-stream does not know (GNU sparse 'S', multi-volume 'M',
 * …) arrive as null and are refused as unsupported rather than guessed at.
 */
export function entryKind(name: string, type: string | null | undefined): EntryKind {
  switch (type) {
    case 'file':
    case 'contiguous-file':
    case undefined:
      return 'file';
    case 'directory':
      return 'dir';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'hardlink';
    case 'character-device':
    case 'block-device':
      throw unsafeEntry(name, 'device nodes are not extracted');
    case 'fifo':
      throw unsafeEntry(name, 'FIFOs are not extracted');
    default:
      throw invalidEntry(name, `unsupported entry type ${type === null ? '(unknown)' : type}`);
  }
}

/**
 * The member a hard-link entry names, as a clean relative path. GNU tar and pax name a hard
 * link's target by its member name, relative to the archive's top, so the target obeys the
 * same rules as an entry name; the target directory itself is never one.
 */
export function hardlinkTarget(name: string, linkname: string): string {
  let target: string;
  try {
    target = entryPath(linkname);
  } catch (err) {
    throw unsafeEntry(name, `hard link leading outside the target (${shortened(linkname)})`, err);
  }
  if (target === '') throw unsafeEntry(name, 'hard link to the target directory');
  return target;
}

/**
 * Does a symlink whose final location is `finalRel` (relative to the served root) with target
 * `linkname` lead outside the root? Resolved lexically from the link's directory, the way the
 * kernel would walk it if every component were a plain directory. An absolute target always
 * counts as outside: beneath the root the kernel refuses absolute links anyway (RESOLVE_BENEATH,
 * openat2(2)), and outside nullgate it would name the host's tree.
 */
export function symlinkLeavesRoot(finalRel: string, linkname: string): boolean {
  if (linkname.startsWith('/')) return true;
  return normalizeRel(joinRel(parentOf(finalRel), linkname)) === undefined;
}

/** The checks on a symlink entry; `finalRel` is where it will live relative to the root. */
export function checkSymlink(name: string, finalRel: string, linkname: string): void {
  if (linkname === '') throw invalidEntry(name, 'symlink with an empty target');
  if (linkname.includes('\0')) throw unsafeEntry(name, 'NUL byte in link target');
  if (linkname.startsWith('/'))
    throw unsafeEntry(name, `symlink to an absolute path (${shortened(linkname)})`);
  // A link into a temporary would serve a half-written upload under an ordinary name.
  if (linkname.split('/').some(isTempName)) {
    throw unsafeEntry(name, `symlink into a name reserved for the server (${shortened(linkname)})`);
  }
  if (symlinkLeavesRoot(finalRel, linkname)) {
    throw unsafeEntry(name, `symlink leads outside the served root (${shortened(linkname)})`);
  }
}

/**
 * The first proper prefix of `rel` that an earlier entry made a symlink, if any. Writing
 * beneath it would write wherever the link points (the classic tar "symlink then file
 * through it" attack), so such entries are refused even when the link stays inside the root.
 */
export function symlinkPrefix(rel: string, symlinks: ReadonlySet<string>): string | undefined {
  if (symlinks.size === 0) return undefined;
  return ancestorsOf(rel).find((dir) => symlinks.has(dir));
}

/**
 * Permission bits kept from an uploaded entry: setuid and setgid are dropped (the files
 * belong to the server's user, often root, and an upload must not mint set-id programs);
 * the sticky bit is kept for directories.
 */
export function extractedMode(kind: 'file' | 'dir', mode: number | undefined): number {
  if (mode === undefined) return kind === 'dir' ? 0o755 : 0o644;
  return mode & (kind === 'dir' ? 0o1777 : 0o777);
}

/**
 * Extra pax records (POSIX.1-2001 pax, `size`, `uid`, `gid`, `mtime`) for values a ustar
 * header cannot hold in octal. tar-stream would fall back to GNU base-256 for sizes; pax is
 * the portable form and what GNU tar, bsdtar and Python's tarfile all read.
 */
export function paxRecords(h: {
  size: number;
  uid: number;
  gid: number;
  mtimeSec: number;
}): Record<string, string> | undefined {
  const pax: Record<string, string> = {};
  if (h.size > USTAR_MAX_OCTAL11) pax.size = String(h.size);
  if (h.uid > USTAR_MAX_OCTAL7) pax.uid = String(h.uid);
  if (h.gid > USTAR_MAX_OCTAL7) pax.gid = String(h.gid);
  if (h.mtimeSec < 0 || h.mtimeSec > USTAR_MAX_OCTAL11) pax.mtime = String(h.mtimeSec);
  return Object.keys(pax).length === 0 ? undefined : pax;
}

const ZEROS = Buffer.alloc(64 * 1024);

/** True when every byte is 0: such chunks are skipped on extraction, leaving a hole. */
export function isAllZero(chunk: Uint8Array): boolean {
  for (let at = 0; at < chunk.length; at += ZEROS.length) {
    const part = chunk.subarray(at, Math.min(chunk.length, at + ZEROS.length));
    if (!ZEROS.subarray(0, part.length).equals(part)) return false;
  }
  return true;
}

/** A member's data occupies whole 512-byte blocks. */
export function blockAlign(size: number): number {
  return Math.ceil(size / 512) * 512;
}

/**
 * A tar stream ends with two 512-byte zero blocks (POSIX.1-2001 ustar, "end of archive").
 * A stream cut at an entry boundary is otherwise indistinguishable from a complete one, so
 * the two blocks are required: `total` bytes were read and the last entry's data ended at
 * `lastEnd`.
 */
export function hasEndOfArchive(total: number, lastEnd: number): boolean {
  return total - lastEnd >= 1024;
}
