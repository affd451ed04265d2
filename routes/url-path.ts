/**
 * URL path → path relative to the served root, as a pure function. This is only the first line
 * of defence (CONTRACT.md "HTTP API": a NUL, a `..` or a malformed escape is a 400); confinement
 * itself is the kernel's job (openat2 RESOLVE_BENEATH), so this module never touches the disk.
 */
import { ngError } from '../core/errors.js';
import { bytesToName, nameToBytes } from '../core/name-bytes.js';
import { isTempName, TEMP_NAME_PREFIX } from '../core/rel-path.js';

export interface FilePath {
  /** Normalised path relative to the root: no leading or trailing slash, '' for the root. */
  readonly rel: string;
  /** The URL ended in '/' (or in a '.' segment), i.e. the client named a directory. */
  readonly trailingSlash: boolean;
}

/** Printable ASCII without '%': a segment that decodes to itself. */
const PLAIN_SEGMENT = /^[\x20-\x24\x26-\x7e]*$/;

function isHex(code: number | undefined): boolean {
  return (
    code !== undefined &&
    ((code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66))
  );
}

/**
 * Percent-decodes one segment exactly once (RFC 3986 §2.1), so `%252e` stays the literal `%2e`.
 * The escapes are bytes, and file names are bytes: a segment that is not valid UTF-8 after
 * decoding names the file with those bytes, carried as a surrogateescape string
 * (core/name-bytes.ts) exactly as listings and the native layer carry it, so `/files/caf%E9`
 * reaches the file whose name is `caf` and the byte 0xE9. No byte sequence decodes to a '.'
 * or '/' other than that byte itself (an overlong `%c0%ae` is two bytes that are not '.').
 * Node's HTTP parser rejects raw non-ASCII bytes in the request target, so characters above
 * 0x7F only come from library callers; they are taken as a name's text (UTF-8, and lone
 * U+DC80..U+DCFF as the bytes they carry).
 */
function decodeSegment(raw: string): string {
  // Most segments are plain printable ASCII: nothing to decode, and ASCII is valid UTF-8.
  if (PLAIN_SEGMENT.test(raw)) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code === 0x25 /* % */) {
      if (!isHex(raw.charCodeAt(i + 1)) || !isHex(raw.charCodeAt(i + 2))) {
        throw ngError('NG_ERR_BAD_PATH', `malformed percent escape in path: "${raw.slice(i, i + 3)}"`);
      }
      bytes.push(Number.parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (code < 0x80) {
      bytes.push(code);
    } else {
      const cp = raw.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      for (const b of nameToBytes(ch)) bytes.push(b);
      i += ch.length - 1;
    }
  }
  return bytesToName(Buffer.from(bytes));
}

/**
 * Decodes the raw (still percent-encoded) URL path after the `/files` prefix, query already
 * stripped. Rules, in order, per segment of the raw path split on '/':
 *
 * - Segments are split BEFORE decoding, and a segment whose decoding contains '/' (`%2F`) is
 *   refused: accepting it as a separator would let `..%2F` hide a dot-segment from a naive check,
 *   and keeping it inside a name is impossible on Linux.
 * - A NUL byte, raw or `%00`, is refused: the kernel would truncate the name there.
 * - Every `..` segment (also `%2e%2e`, RFC 3986 §6.2.2.2 treats encoded dots as dots) is refused,
 *   even `a/../b` which stays inside the root: one simple rule is easier to trust than a
 *   normaliser, and clients (curl, browsers) already remove dot-segments (RFC 3986 §5.2.4).
 * - Empty segments (`//`) and `.` segments are dropped.
 * - A segment starting with `.nullgate-tmp-` (TEMP_NAME_PREFIX) is refused: such names are the
 *   server's own temporaries, so a half-written upload or staged archive is never served and a
 *   client cannot create a file that would then be hidden from listings.
 * - A backslash is an ordinary byte of a Linux file name, never a separator.
 */
export function decodeFilePath(rawUrlPathAfterPrefix: string): FilePath {
  const rawSegments = rawUrlPathAfterPrefix.split('/');
  const kept: string[] = [];
  let lastWasDirectory = false;
  for (const raw of rawSegments) {
    if (raw.includes('\0')) throw ngError('NG_ERR_BAD_PATH', 'path contains a NUL byte');
    const segment = decodeSegment(raw);
    if (segment.includes('\0')) throw ngError('NG_ERR_BAD_PATH', 'path contains a NUL byte');
    if (segment.includes('/')) {
      throw ngError('NG_ERR_BAD_PATH', 'path segment contains an encoded slash (%2F)');
    }
    if (segment === '..') throw ngError('NG_ERR_BAD_PATH', 'path contains a ".." segment');
    if (isTempName(segment)) {
      throw ngError(
        'NG_ERR_BAD_PATH',
        `names starting with "${TEMP_NAME_PREFIX}" are reserved for the server`,
      );
    }
    if (segment === '' || segment === '.') {
      lastWasDirectory = true;
      continue;
    }
    kept.push(segment);
    lastWasDirectory = false;
  }
  // For the root ('' or '/'), trailingSlash mirrors whether the client wrote the slash.
  const trailingSlash = kept.length === 0 ? rawUrlPathAfterPrefix.endsWith('/') : lastWasDirectory;
  return { rel: kept.join('/'), trailingSlash };
}

/**
 * The path of a request target (or of a Destination header), still percent-encoded, query and
 * fragment cut off. The origin-form (`/files/a`) is taken as is; the absolute-form
 * (`http://host/files/a`, RFC 9112 §3.2.2, also RFC 4918 §10.3 for Destination) loses its
 * scheme and authority, cut by hand: `new URL()` would remove dot-segments and re-encode
 * escapes, so `..` would be judged after normalisation instead of as sent.
 */
export function targetPath(target: string): string {
  let path = target;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(path);
  if (scheme) {
    const rest = path.slice(scheme[0].length);
    const end = rest.search(/[/?#]/);
    path = end === -1 ? '/' : rest[end] === '/' ? rest.slice(end) : `/${rest.slice(end)}`;
  }
  const cut = path.search(/[?#]/);
  return cut === -1 ? path : path.slice(0, cut);
}

/** The decoded path of a request under a plugin's `prefix` (origin- or absolute-form target). */
export function requestPath(prefix: string, url: string): FilePath {
  const path = targetPath(url);
  return decodeFilePath(path.startsWith(prefix) ? path.slice(prefix.length) : path);
}

/** Targets a requestPaths memo keeps (each at most MEMO_TARGET_MAX characters long). */
const MEMO_TARGETS = 512;
const MEMO_TARGET_MAX = 256;

/**
 * requestPath for one prefix, with the answers for recent request targets kept: a busy server
 * gets the same few targets again and again, and decoding one is two regular expressions and a
 * walk over its segments. A pure function's answers, frozen, so a kept one cannot change; a
 * target that is refused (it throws) is never kept. At most MEMO_TARGETS short targets: when full,
 * the memo starts over.
 */
export function requestPaths(prefix: string): (url: string) => FilePath {
  const kept = new Map<string, FilePath>();
  return (url) => {
    let path = kept.get(url);
    if (path === undefined) {
      path = Object.freeze(requestPath(prefix, url));
      if (url.length <= MEMO_TARGET_MAX) {
        if (kept.size >= MEMO_TARGETS) kept.clear();
        kept.set(url, path);
      }
    }
    return path;
  };
}

/** An escape of a byte above 0x7F: the only escapes decodeURI can fail on besides malformed ones. */
const HIGH_ESCAPE = /%([89a-f][0-9a-f])/gi;

/**
 * Fastify's `rewriteUrl` for the file routes: find-my-way decodes the whole path with decodeURI
 * before it matches a route, and throws (a 400 before any route runs) on escapes that are not
 * UTF-8, such as `/files/caf%E9`, a name of bytes (see decodeSegment). The router only needs the
 * route's prefix, so such a path is routed as its `%25XX` form; the routes read the path as sent
 * from `request.originalUrl`. A path decodeURI accepts, or one with a malformed escape (still a
 * 400), is left as it is. A Fastify app of the library's users passes it as
 * `Fastify({ rewriteUrl: routableUrl })` to address such names too.
 */
export function routableUrl(req: { url?: string | undefined }): string {
  const url = req.url ?? '/';
  // No escape anywhere (most requests): nothing decodeURI could fail on, no search for the query.
  if (!url.includes('%')) return url;
  const cut = url.search(/[?#]/);
  const path = cut === -1 ? url : url.slice(0, cut);
  if (!path.includes('%')) return url;
  try {
    decodeURI(path);
    return url;
  } catch {
    return path.replace(HIGH_ESCAPE, '%25$1') + (cut === -1 ? '' : url.slice(cut));
  }
}
