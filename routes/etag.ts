/**
 * Validators for a file (RFC 9110 §8.8): a strong ETag derived from its stat, and Last-Modified.
 */

/** The stat fields an ETag depends on. Use `fs.stat(…, { bigint: true })` / `fstat(fd, { bigint: true })`. */
export interface EtagStat {
  /** st_dev: inode numbers are unique per file system only (two mounts inside the root). */
  readonly dev: bigint | number;
  readonly ino: bigint | number;
  readonly size: bigint | number;
  /** Nanosecond mtime: only the bigint stat form carries it exactly. */
  readonly mtimeNs: bigint;
}

/**
 * A strong entity-tag (RFC 9110 §8.8.3) `"<dev>-<ino>-<size>-<mtime ns>"`, all lower-case hex.
 * The device is part of it because an inode number is unique only within one file system: two
 * mounts inside the root can hold files with the same inode, size and mtime.
 *
 * Strong is justified (§8.8.1) because every way nullgate changes a file changes one of these:
 * an atomic PUT renames a new inode over the target, and an in-place rewrite by another process
 * updates the nanosecond mtime. Nanoseconds, not milliseconds, so two writes within the same
 * millisecond still differ, and a bigint so the tag is identical whichever code path stats the
 * file (a float mtimeMs cannot round-trip nanoseconds). Deterministic: no clock, no randomness.
 */
export function strongEtag(stat: EtagStat): string {
  const { dev, ino, size, mtimeNs } = stat;
  return `"${dev.toString(16)}-${ino.toString(16)}-${size.toString(16)}-${mtimeNs.toString(16)}"`;
}

/** `Last-Modified` value (RFC 9110 §8.8.2) as an IMF-fixdate (§5.6.7); toUTCString writes exactly that. */
export function lastModifiedHeader(mtime: number | bigint | Date): string {
  const ms = mtime instanceof Date ? mtime.getTime() : Number(mtime);
  // The header has whole seconds; most responses of a busy server repeat the last few files'.
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    lastText = new Date(second * 1000).toUTCString();
  }
  return lastText;
}

let lastSecond = NaN;
let lastText = '';
