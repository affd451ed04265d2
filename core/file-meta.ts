/**
 * A file's metadata in HTTP headers, both ways (CONTRACT.md "Single files too"): GET and HEAD of
 * /files/<file> tell its permission bits, owner and nanosecond mtime, and PUT takes the same
 * headers; a listing says it is one. Last-Modified carries whole seconds only (RFC 9110 §5.6.7),
 * so the mtime has a header of its own. One syntax for server and client, written and read here.
 */

/** On a directory listing (GET/HEAD of /files/<dir>): `dir`. A file never has it. */
export const TYPE_HEADER = 'x-nullgate-type';
/** Permission bits with set-uid, set-gid and sticky, as 4 octal digits: `0644`, `4755`. */
export const MODE_HEADER = 'x-nullgate-mode';
/** Numeric owner and group (never names: the chroot's /etc/passwd is not the host's). */
export const UID_HEADER = 'x-nullgate-uid';
export const GID_HEADER = 'x-nullgate-gid';
/** Seconds since the epoch with 9 decimals: `1764667200.123456789`. */
export const MTIME_HEADER = 'x-nullgate-mtime';

/** Largest uid/gid a header may carry: (uid_t)-1 means "unchanged" to chown(2), never an owner. */
const MAX_ID = 0xfffffffe;

export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** The bits of a mode header (1 to 4 octal digits), or undefined when it is not one. */
export function parseMode(text: string | undefined): number | undefined {
  if (text === undefined || !/^[0-7]{1,4}$/.test(text.trim())) return undefined;
  return Number.parseInt(text.trim(), 8);
}

export function parseId(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,10}$/.test(text.trim())) return undefined;
  const id = Number(text.trim());
  return id <= MAX_ID ? id : undefined;
}

const NS_PER_S = 1_000_000_000n;

/** `1764667200.123456789` from nanoseconds since the epoch (a time before 1970 starts with `-`). */
export function formatMtime(ns: bigint): string {
  const sign = ns < 0n ? '-' : '';
  const abs = ns < 0n ? -ns : ns;
  return `${sign}${abs / NS_PER_S}.${(abs % NS_PER_S).toString().padStart(9, '0')}`;
}

/** Nanoseconds since the epoch from an mtime header (1 to 9 decimals, or none), else undefined. */
export function parseMtime(text: string | undefined): bigint | undefined {
  const m = text === undefined ? null : /^(-?)(\d{1,12})(?:\.(\d{1,9}))?$/.exec(text.trim());
  if (!m) return undefined;
  const ns = BigInt(m[2]!) * NS_PER_S + BigInt((m[3] ?? '').padEnd(9, '0'));
  return m[1] === '-' ? -ns : ns;
}
