/**
 * What makes `get -C -` safe: appending the rest of a remote file to a partial local one is only
 * right if the remote file is still the one the local bytes came from. The request says so with
 * `If-Range` (RFC 9110 §13.1.5): the server sends the range only if its file is unchanged, else
 * the whole file (200), which then replaces the partial one instead of being spliced onto it.
 *
 * The validator is the partial file's own mtime, as curl -R keeps it: a `-C -` download sets
 * the local file's mtime to the remote Last-Modified (after the transfer, also a cut one), and a
 * later `-C -` sends that date back. A date is a validator only when it is strong (§8.8.2.2): the
 * remote file was last modified at least 60 seconds before the response that carried it (its
 * Date), so no second write within that same second can hide behind it. A weaker date is not
 * stamped; a local mtime that is not a whole second was not stamped from any Last-Modified
 * (curl without -R, an editor), so nothing tells which version the bytes are from: the file is
 * downloaded whole, never appended to on a guess.
 *
 * (An ETag would be exact, but a client keeps it only beside the file, in an extended attribute
 * or a second file; the mtime travels with the file through cp -p, tar and rsync -t.)
 */
import * as fsa from './fs-calls.js';

const NS_PER_S = 1_000_000_000n;
/** §8.8.2.2: Last-Modified at least this long before Date is strong. */
const STRONG_AFTER_MS = 60_000;

/** The `If-Range` date for a partial file's mtime, or undefined when the mtime is no Last-Modified. */
export function ifRangeDate(mtimeNs: bigint | undefined): string | undefined {
  if (mtimeNs === undefined || mtimeNs % NS_PER_S !== 0n) return undefined;
  return new Date(Number(mtimeNs / 1_000_000n)).toUTCString();
}

function parseDate(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * The mtime to stamp a `-C -` download with: the response's Last-Modified when it is a strong
 * validator (§8.8.2.2: at least 60 s before the response's Date), else undefined.
 */
export function strongLastModified(
  lastModified: string | undefined,
  date: string | undefined,
): Date | undefined {
  const lm = parseDate(lastModified);
  const sent = parseDate(date);
  if (lm === undefined || sent === undefined || lm > sent - STRONG_AFTER_MS) return undefined;
  return new Date(lm);
}

/** Sets `file`'s mtime to `mtime` (its atime to now); a failure only costs the next resume. */
export async function stampMtime(file: string, mtime: Date | undefined): Promise<void> {
  if (mtime === undefined) return;
  await fsa.utimes(file, new Date(), mtime).catch(() => undefined);
}
