/**
 * Paths relative to a tree's root, as every side writes them: no leading or trailing slash, ''
 * for the root, '/' between names. The one place that normalises, joins, splits and shows them
 * (the beneath-root layer, the server's routes and archives, the tar entry rules, the client's
 * archives); URL decoding is routes/url-path.ts, a client's remote path is a URL path.
 */

/**
 * Names starting with this are nullgate's own temporaries (upload files, replace links, archive
 * staging directories; the native layer's kTmpPrefix, checked equal by the tests). No client
 * path may name one: a temporary is never served, listed, written or moved by a request.
 */
export const TEMP_NAME_PREFIX = '.nullgate-tmp-';

/** Is `name` (one path component) reserved for nullgate's temporaries? */
export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_NAME_PREFIX);
}

/**
 * `p` as a clean relative path, resolved lexically: leading, trailing and repeated slashes and
 * '.' dropped, each '..' taking back the name before it. Undefined when a '..' would climb
 * above the root. NUL bytes are left to the caller, which refuses them in its own words.
 */
export function normalizeRel(p: string): string | undefined {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part !== '..') out.push(part);
    else if (out.pop() === undefined) return undefined;
  }
  return out.join('/');
}

/** `dir` joined with one more `name` ('' is the root). */
export function joinRel(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** The parent of a relative path ('' for a name at the root). */
export function parentOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? '' : rel.slice(0, slash);
}

/** The last name of a relative path (the whole path for a name at the root). */
export function baseOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? rel : rel.slice(slash + 1);
}

/** Is `rel` the directory `dir` or beneath it? (Everything is beneath the root, ''.) */
export function isWithin(rel: string, dir: string): boolean {
  return dir === '' || rel === dir || rel.startsWith(`${dir}/`);
}

/** The proper ancestors of a relative path, outermost first: 'a/b/c' → ['a', 'a/b']; none for '' or a name at the root. */
export function ancestorsOf(rel: string): string[] {
  const out: string[] = [];
  for (let at = rel.indexOf('/'); at !== -1; at = rel.indexOf('/', at + 1)) out.push(rel.slice(0, at));
  return out;
}

/** The client-visible form of a relative path: '/a/b', '/a/b/' for a directory, '/' for the root. */
export function displayPath(rel: string, dir = false): string {
  if (rel === '') return '/';
  return dir ? `/${rel}/` : `/${rel}`;
}

/** Bytes of a name or path an error message shows at most (see `shortened`). */
export const SHOWN_NAME_MAX = 100;

/**
 * `text` as an error message shows it: whole when it is at most `max` bytes of UTF-8, else its
 * first `max` bytes (cut between characters) and "…". A name a client sent is echoed back, and
 * one of 5,000 bytes would bury the message (or fill a log line).
 */
export function shortened(text: string, max = SHOWN_NAME_MAX): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return text;
  let end = max;
  // Back to the start of the character the cut falls in (continuation bytes are 10xxxxxx).
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString('utf8')}…`;
}
