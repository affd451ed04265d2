/**
 * File names are bytes; JS strings are UTF-16. Names cross between them as Python's
 * surrogateescape (PEP 383) carries them, the same codec as the native layer's
 * (native/name_codec.h): valid UTF-8 decodes as itself, and each byte that is not part of valid
 * UTF-8 becomes the lone surrogate U+DC80..U+DCFF. Every name read from the disk — valid UTF-8
 * or not — is a string that encodes back to its bytes, so nothing is lost or dropped on the way;
 * a well-formed string (anything a user types) encodes exactly as UTF-8.
 *
 * JSON.stringify writes lone surrogates as `\udcXX` escapes, so such names show escaped in
 * JSON listings; tar carries their bytes (core/tar-header.ts).
 */
import { isUtf8 } from 'node:buffer';

const SURROGATE = /[\ud800-\udfff]/;

/** The bytes of a name (surrogateescape: U+DC80..U+DCFF are the bytes 0x80..0xFF). */
export function nameToBytes(name: string): Buffer {
  if (!SURROGATE.test(name)) return Buffer.from(name, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const u = name.charCodeAt(i);
    const next = name.charCodeAt(i + 1);
    if (u >= 0xd800 && u <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      out.push(...Buffer.from(name.slice(i, i + 2), 'utf8'));
      i++;
    } else if (u >= 0xdc80 && u <= 0xdcff) {
      out.push(u - 0xdc00);
    } else {
      // Well-formed BMP characters as UTF-8; any other lone surrogate as U+FFFD, as V8 does.
      out.push(...Buffer.from(String.fromCharCode(u), 'utf8'));
    }
  }
  return Buffer.from(out);
}

/** The length in bytes of the valid UTF-8 sequence at `at`, or 0 when there is none there. */
function sequenceAt(b: Buffer, at: number): number {
  const b0 = b[at]!;
  if (b0 < 0x80) return 1;
  const len = b0 >= 0xc2 && b0 <= 0xdf ? 2 : b0 >= 0xe0 && b0 <= 0xef ? 3 : b0 >= 0xf0 && b0 <= 0xf4 ? 4 : 0;
  if (len === 0 || at + len > b.length) return 0;
  return isUtf8(b.subarray(at, at + len)) ? len : 0;
}

/** A name read as bytes, as a string that `nameToBytes` turns back into the same bytes. */
export function bytesToName(bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  let out = '';
  for (let at = 0; at < bytes.length;) {
    const len = sequenceAt(bytes, at);
    if (len === 0) {
      out += String.fromCharCode(0xdc00 + bytes[at]!);
      at++;
    } else {
      out += bytes.toString('utf8', at, at + len);
      at += len;
    }
  }
  return out;
}

/** What encodeURIComponent leaves as is (RFC 3986 unreserved plus `!*'()`). */
const URI_KEPT = /^[A-Za-z0-9\-_.!~*'()]$/;

/**
 * `encodeURIComponent` for names: the name's bytes percent-encoded, so a byte that is not UTF-8
 * (a lone U+DC80..U+DCFF) becomes its own `%XX` (`caf\udce9` → `caf%E9`) where
 * encodeURIComponent throws a URIError. For a well-formed string it is encodeURIComponent.
 * The server's URL decoding (routes/url-path.ts) turns the result back into the same name.
 */
export function encodeNameComponent(name: string): string {
  if (!SURROGATE.test(name)) return encodeURIComponent(name);
  return percentEncodeName(name, URI_KEPT);
}

/**
 * The bytes of `name` (raw bytes included), each ASCII character `kept` matches as itself and
 * every other byte as `%XX` (upper-case hex): URLs (encodeNameComponent) and RFC 8187
 * ext-values (routes/content-disposition.ts) differ only in what they keep.
 */
export function percentEncodeName(name: string, kept: RegExp): string {
  let out = '';
  for (const b of nameToBytes(name)) {
    const c = String.fromCharCode(b);
    out += b < 0x80 && kept.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * A local path as node:fs should be given it: node:fs writes a string as UTF-8, where a lone
 * surrogate becomes U+FFFD, so a path carrying bytes that are not UTF-8 goes as its bytes.
 */
export function fsPath(p: string): string | Buffer {
  return SURROGATE.test(p) ? nameToBytes(p) : p;
}

/**
 * Byte order of two names (what `sort` in the C locale and GNU tar --sort=name give): by their
 * bytes, so a name that is not UTF-8 sorts by its raw bytes, not by its surrogate escapes.
 */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(nameToBytes(a), nameToBytes(b));
}
