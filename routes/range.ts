/**
 * The Range request header (RFC 9110 §14) as pure functions. range-parser does the arithmetic
 * (clamping, satisfiability, combining); this module adds the strict syntax check and the rules
 * range-parser leaves out, so the route only switches on `kind`.
 */
import rangeParser from 'range-parser';

export interface ByteRange {
  /** First byte offset, inclusive. */
  readonly start: number;
  /** Last byte offset, inclusive (RFC 9110 §14.1.2 last-pos). */
  readonly end: number;
}

export type RangeResult =
  /** No Range, or one that must or may be ignored (RFC 9110 §14.2): send 200 with the whole file. */
  | { readonly kind: 'none' }
  /** Send 206 with `Content-Range: contentRange(start, end, size)`. */
  | { readonly kind: 'single'; readonly range: ByteRange }
  /** Send 206 multipart/byteranges (RFC 9110 §14.6), parts in this order. */
  | { readonly kind: 'multiple'; readonly ranges: readonly ByteRange[] }
  /** Send 416 with `Content-Range: unsatisfiedContentRange(size)` (RFC 9110 §15.5.17). */
  | { readonly kind: 'unsatisfiable' };

export interface ParseRangeOptions {
  /** More range-specs than this and the header is ignored (default 100). */
  readonly maxRanges?: number;
}

export const DEFAULT_MAX_RANGES = 100;

const NONE: RangeResult = { kind: 'none' };
const UNSATISFIABLE: RangeResult = { kind: 'unsatisfiable' };

// RFC 9110 §14.1.1: int-range = first-pos "-" [ last-pos ]; suffix-range = "-" suffix-length.
const INT_RANGE = /^(\d+)-(\d*)$/;
const SUFFIX_RANGE = /^-(\d+)$/;

/**
 * Parses a Range header value against a representation of `size` bytes.
 *
 * - Unit other than `bytes` (compared case-insensitively, RFC 9110 §14.1): ignored, §14.2 says a
 *   server MUST ignore a range unit it does not understand.
 * - Any range-spec that is not valid `bytes` syntax, or has last-pos < first-pos (§14.1.1 calls
 *   that invalid): the whole header is ignored, which §14.2 permits for an invalid ranges-specifier.
 *   range-parser alone is too lenient here (it reads `5x-9` as 5-9 and garbage as unsatisfiable).
 * - More than `maxRanges` range-specs: ignored. §14.2 lets a server ignore a Range with many
 *   small or overlapping ranges, a known denial-of-service shape (§17.15); ignoring rather than
 *   416 means a legitimate but greedy client still gets the file (nginx `max_ranges` does the same).
 * - A suffix-length larger than the file selects the whole file (§14.1.3); `-0` selects nothing.
 * - Overlapping and adjacent ranges are combined (§14.6 allows coalescing), so a combination
 *   that collapses to one range is answered as a single 206.
 * - On a 0-byte file, a non-zero suffix-range is satisfiable in §14.1.1's terms but there is no
 *   byte to send, so the header is ignored (200 with the empty body); any int-range is 416.
 */
export function parseRange(
  header: string | undefined,
  size: number,
  options: ParseRangeOptions = {},
): RangeResult {
  if (header === undefined) return NONE;
  const eq = header.indexOf('=');
  if (eq === -1) return NONE;
  if (header.slice(0, eq).trim().toLowerCase() !== 'bytes') return NONE;

  // §5.6.1.2: recipients accept empty list elements and OWS around the commas.
  const specs = header
    .slice(eq + 1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (specs.length === 0) return NONE;
  if (specs.length > (options.maxRanges ?? DEFAULT_MAX_RANGES)) return NONE;

  const normalised: string[] = [];
  let nonEmptySuffix = false;
  for (const spec of specs) {
    const intRange = INT_RANGE.exec(spec);
    if (intRange) {
      const first = Number(intRange[1]);
      if (intRange[2] !== '' && Number(intRange[2]) < first) return NONE;
      normalised.push(spec);
      continue;
    }
    const suffix = SUFFIX_RANGE.exec(spec);
    if (!suffix) return NONE;
    const length = Number(suffix[1]);
    if (length > 0) nonEmptySuffix = true;
    // range-parser drops a suffix longer than the file instead of clamping it (§14.1.3).
    normalised.push(length > size ? `-${size}` : spec);
  }

  if (size === 0) return nonEmptySuffix ? NONE : UNSATISFIABLE;

  const parsed = rangeParser(size, `bytes=${normalised.join(',')}`, { combine: true });
  if (parsed === -1) return UNSATISFIABLE;
  if (parsed === -2) return NONE;
  const ranges = parsed.map(({ start, end }) => ({ start, end }));
  const [first] = ranges;
  if (first === undefined) return UNSATISFIABLE;
  return ranges.length === 1 ? { kind: 'single', range: first } : { kind: 'multiple', ranges };
}

/** `Content-Range` of a 206 or of one multipart part (RFC 9110 §14.4): `bytes 0-99/1000`. */
export function contentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`;
}

// `Content-Range` of a 416 (RFC 9110 §14.4 unsatisfied-range, §15.5.17): `bytes */1000`.
export function unsatisfiedContentRange(size: number): string {
  return `bytes */${size}`;
}
