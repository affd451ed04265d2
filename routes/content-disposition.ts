/**
 * The Content-Disposition of a response that suggests a file name (RFC 6266): `GET /archive`'s
 * `<name>.tar`. Names are bytes carried as strings (core/name-bytes.ts), and a header holds only
 * ASCII, so a name that is not plain printable ASCII goes twice (RFC 6266 §4.3, Appendix D):
 *
 * - `filename*=UTF-8''…` (RFC 8187 §3.2): the name's bytes percent-encoded, every byte that is
 *   not an attr-char as `%XX`. Recipients that read it (wget --content-disposition, browsers,
 *   Python's email.utils) get the exact name, and prefer it to `filename` (RFC 6266 §4.3).
 * - `filename="…"`, for those that do not (curl -J): the name in printable ASCII, with
 *   accents dropped (é → e) and every other character, or byte, as `_`; never a `"` or `\`,
 *   since recipients disagree on backslash escapes (RFC 6266 Appendix D).
 *
 * A byte that is not part of valid UTF-8 (U+DC80..U+DCFF, surrogateescape) is percent-encoded in
 * `filename*` as the byte it is, still under the UTF-8 label, as nullgate's URLs carry it
 * (`/files/bad%FF`, routes/url-path.ts). RFC 8187 §3.2.1 requires recipients to know only
 * UTF-8 and ISO-8859-1; labelling the name ISO-8859-1 would be valid for any bytes but turn
 * every UTF-8 character of the name into two or three Latin-1 ones, while under UTF-8 a decoder
 * that keeps bytes (Python's unquote with errors='surrogateescape', a byte-level percent
 * decoder) gets the name back exactly, and a strict one is left with the ASCII `filename`.
 */
import { percentEncodeName } from '../core/name-bytes.js';

/** RFC 8187 §3.2.1 attr-char: what `filename*` carries unencoded. */
const ATTR_CHAR = /^[A-Za-z0-9!#$&+\-.^_`|~]$/;
/** Printable ASCII but `"` and `\`: what a quoted `filename` carries as is. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
/** A `%XX` in a name: some recipients percent-decode `filename` (RFC 6266 Appendix D). */
const HEX_ESCAPE = /%[0-9A-Fa-f]{2}/;
/** Combining marks, left by NFKD after their base letter (é → e + U+0301). */
const COMBINING = /[\u0300-\u036f]/g;

/** The name in printable ASCII for `filename`: accents dropped, anything else `_`. */
function asciiFallback(name: string): string {
  let out = '';
  // for...of walks code points: a surrogate pair is one character, a lone surrogate (a raw
  // byte) one too.
  for (const ch of name) {
    const folded =
      ch.length === 1 && ch >= '\ud800' && ch <= '\udfff' ? '_' : ch.normalize('NFKD').replace(COMBINING, '');
    for (const c of folded) out += PLAIN.test(c) ? c : '_';
    if (folded === '') out += '_';
  }
  return out;
}

/**
 * The Content-Disposition value suggesting `name` as the file name: `filename="name"` alone for
 * a plain printable ASCII name, else an ASCII `filename` and the exact `filename*`.
 */
export function contentDisposition(name: string, type: 'attachment' | 'inline' = 'attachment'): string {
  if (PLAIN.test(name) && !HEX_ESCAPE.test(name)) return `${type}; filename="${name}"`;
  return `${type}; filename="${asciiFallback(name)}"; filename*=UTF-8''${percentEncodeName(name, ATTR_CHAR)}`;
}
