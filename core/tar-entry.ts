/**
 * Pure rules for tar entries, shared by `PUT /archive` and the client's `pull` (both through
 * native/tree-writer.ts): which names and hard-link targets an entry may have. None of this
 * touches the disk: the checks here give early, precise refusals naming the entry; confinement
 * itself stays the kernel's (openat2 RESOLVE_BENEATH in native/beneath.ts).
 */
import { ngError, type NullgateError } from './errors.js';
import { ancestorsOf, isTempName, shortened, TEMP_NAME_PREFIX } from './rel-path.js';

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
 * The first proper prefix of `rel` that an earlier entry made a symlink, if any. Writing
 * beneath it would write wherever the link points (the classic tar "symlink then file
 * through it" attack), so such entries are refused even when the link stays inside the root.
 */
export function symlinkPrefix(rel: string, symlinks: ReadonlySet<string>): string | undefined {
  if (symlinks.size === 0) return undefined;
  return ancestorsOf(rel).find((dir) => symlinks.has(dir));
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
