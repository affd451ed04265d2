/**
 * Digest fields (RFC 9530): Want-Repr-Digest / Want-Content-Digest preferences, Content-Digest /
 * Repr-Digest values, and a small cache of whole-file digests keyed by ETag.
 *
 * All four fields are Structured Field Dictionaries (RFC 8941 §3.2), parsed here by hand: no
 * dependency of the project parses structured fields, and only dictionaries are needed.
 */
import { createHash, type Hash } from 'node:crypto';
import { ngError } from '../core/errors.js';

/** The algorithms nullgate computes and verifies, in tie-break order (RFC 9530 §5 lists both as "Active"). */
export const DIGEST_ALGORITHMS = ['sha-256', 'sha-512'] as const;
export type DigestAlgorithm = (typeof DIGEST_ALGORITHMS)[number];

const DIGEST_BYTES: Record<DigestAlgorithm, number> = { 'sha-256': 32, 'sha-512': 64 };
const NODE_HASH: Record<DigestAlgorithm, string> = { 'sha-256': 'sha256', 'sha-512': 'sha512' };

export interface ParsedDigest {
  readonly algorithm: DigestAlgorithm;
  readonly bytes: Buffer;
}

// ---------------------------------------------------------------------------------------------
// RFC 8941 §4.2 parsing, enough for Dictionaries. Values are kept only as far as digests need
// them (integers and byte sequences); every other type is parsed (so its syntax is checked and
// skipped correctly) and reported as 'other'. Parameters are parsed and ignored.

type Member =
  | { readonly type: 'integer'; readonly value: number }
  | { readonly type: 'bytes'; readonly value: Buffer }
  | { readonly type: 'other' };

class SyntaxFailure extends Error {}

const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

class DictionaryParser {
  private pos = 0;
  constructor(private readonly input: string) {}

  private peek(): string | undefined {
    return this.input[this.pos];
  }

  private fail(what: string): never {
    throw new SyntaxFailure(`${what} at offset ${this.pos}`);
  }

  private skipSP(): void {
    while (this.peek() === ' ') this.pos++;
  }

  private skipOWS(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  /** §4.2: leading and trailing SP are discarded, anything else left over is a failure. */
  parse(): Map<string, Member> {
    this.skipSP();
    const dict = this.parseDictionary();
    this.skipSP();
    if (this.pos !== this.input.length) this.fail('trailing characters');
    return dict;
  }

  /** §4.2.2. A repeated key keeps its first position but takes the last value. */
  private parseDictionary(): Map<string, Member> {
    const dict = new Map<string, Member>();
    while (this.pos < this.input.length) {
      const key = this.parseKey();
      let member: Member;
      if (this.peek() === '=') {
        this.pos++;
        member = this.parseItemOrInnerList();
      } else {
        member = { type: 'other' }; // Boolean true
        this.parseParameters();
      }
      dict.set(key, member);
      this.skipOWS();
      if (this.pos === this.input.length) return dict;
      if (this.peek() !== ',') this.fail('expected ","');
      this.pos++;
      this.skipOWS();
      if (this.pos === this.input.length) this.fail('trailing ","');
    }
    return dict;
  }

  /**
   * §4.2.3.3. RFC 8941 keys are lower case; upper-case letters are accepted and folded here
   * because senders write `SHA-256` and algorithm names are case-insensitive in practice
   * (RFC 9530 §5 registers them in lower case). A deliberate leniency.
   */
  private parseKey(): string {
    const first = this.peek();
    if (first === undefined || !/[a-zA-Z*]/.test(first)) this.fail('expected a key');
    const start = this.pos;
    while (/[a-zA-Z0-9_\-.*]/.test(this.peek() ?? '')) this.pos++;
    return this.input.slice(start, this.pos).toLowerCase();
  }

  private parseItemOrInnerList(): Member {
    if (this.peek() === '(') {
      this.parseInnerList();
      return { type: 'other' };
    }
    const item = this.parseBareItem();
    this.parseParameters();
    return item;
  }

  /** §4.2.1.2 */
  private parseInnerList(): void {
    this.pos++;
    while (this.pos < this.input.length) {
      this.skipSP();
      if (this.peek() === ')') {
        this.pos++;
        this.parseParameters();
        return;
      }
      this.parseBareItem();
      this.parseParameters();
      const next = this.peek();
      if (next !== ' ' && next !== ')') this.fail('expected SP or ")" in inner list');
    }
    this.fail('unterminated inner list');
  }

  /** §4.2.3.2 */
  private parseParameters(): void {
    while (this.peek() === ';') {
      this.pos++;
      this.skipSP();
      this.parseKey();
      if (this.peek() === '=') {
        this.pos++;
        this.parseBareItem();
      }
    }
  }

  /** §4.2.3.1 */
  private parseBareItem(): Member {
    const c = this.peek();
    if (c === undefined) this.fail('expected an item');
    if (c === '-' || /[0-9]/.test(c)) return this.parseNumber();
    if (c === '"') return this.parseString();
    if (c === ':') return this.parseByteSequence();
    if (c === '?') return this.parseBoolean();
    if (c === '*' || /[A-Za-z]/.test(c)) return this.parseToken();
    return this.fail('unexpected character');
  }

  /** §4.2.4: integers have at most 15 digits, decimals at most 12 + 3. */
  private parseNumber(): Member {
    const m = /^(-?)(\d+)(?:\.(\d*))?/.exec(this.input.slice(this.pos));
    if (!m) return this.fail('expected a number');
    const [text, , int, frac] = m;
    if (frac === undefined) {
      if (int!.length > 15) this.fail('integer too long');
      this.pos += text.length;
      return { type: 'integer', value: Number(text) };
    }
    if (int!.length > 12 || frac.length < 1 || frac.length > 3) this.fail('malformed decimal');
    this.pos += text.length;
    return { type: 'other' };
  }

  /** §4.2.5 */
  private parseString(): Member {
    this.pos++;
    while (this.pos < this.input.length) {
      const c = this.input.charCodeAt(this.pos++);
      if (c === 0x5c /* \ */) {
        const next = this.peek();
        if (next !== '"' && next !== '\\') this.fail('bad escape in string');
        this.pos++;
      } else if (c === 0x22 /* " */) {
        return { type: 'other' };
      } else if (c < 0x20 || c > 0x7e) {
        this.fail('bad character in string');
      }
    }
    return this.fail('unterminated string');
  }

  /** §4.2.6 */
  private parseToken(): Member {
    this.pos++;
    while (TCHAR.test(this.peek() ?? '') || this.peek() === ':' || this.peek() === '/') this.pos++;
    return { type: 'other' };
  }

  /**
   * §4.2.7. Base64 (RFC 4648 §4, not the URL-safe alphabet); padding may be missing, which
   * §4.2.7 asks parsers to tolerate. Buffer.from(…, 'base64') is lenient, so the alphabet and
   * length are checked first.
   */
  private parseByteSequence(): Member {
    const end = this.input.indexOf(':', this.pos + 1);
    if (end === -1) this.fail('unterminated byte sequence');
    const b64 = this.input.slice(this.pos + 1, end);
    if (!BASE64_CHARS.test(b64) || b64.replace(/=+$/, '').length % 4 === 1) {
      this.fail('malformed base64 in byte sequence');
    }
    if (b64.includes('=') && b64.length % 4 !== 0) this.fail('malformed base64 padding');
    this.pos = end + 1;
    return { type: 'bytes', value: Buffer.from(b64, 'base64') };
  }

  /** §4.2.8 */
  private parseBoolean(): Member {
    const v = this.input[this.pos + 1];
    if (v !== '0' && v !== '1') this.fail('malformed boolean');
    this.pos += 2;
    return { type: 'other' };
  }
}

function joined(header: string | readonly string[]): string {
  // RFC 8941 §4.2: several field lines are combined with commas before parsing.
  return typeof header === 'string' ? header : header.join(', ');
}

function isSupported(name: string): name is DigestAlgorithm {
  return (DIGEST_ALGORITHMS as readonly string[]).includes(name);
}

// ---------------------------------------------------------------------------------------------

/**
 * Picks the algorithm for `Repr-Digest`/`Content-Digest` from a `Want-Repr-Digest` or
 * `Want-Content-Digest` value (RFC 9530 §4): members are algorithm → Integer 0..10, higher is
 * preferred, 0 means "not acceptable". Returns the supported algorithm with the highest
 * preference (ties go to sha-256, the cheaper one), or undefined when none is acceptable.
 * A value that is not a valid Dictionary is ignored as a whole (RFC 8941 §4.2: a field that
 * fails to parse is ignored), and a member whose value is not an Integer in 0..10 is skipped.
 */
export function parseWantDigest(header: string | readonly string[] | undefined): DigestAlgorithm | undefined {
  if (header === undefined) return undefined;
  let dict: Map<string, Member>;
  try {
    dict = new DictionaryParser(joined(header)).parse();
  } catch (err) {
    if (err instanceof SyntaxFailure) return undefined;
    throw err;
  }
  let best: DigestAlgorithm | undefined;
  let bestPreference = 0;
  for (const algorithm of DIGEST_ALGORITHMS) {
    const member = dict.get(algorithm);
    if (member?.type !== 'integer' || member.value < 1 || member.value > 10) continue;
    if (member.value > bestPreference) {
      best = algorithm;
      bestPreference = member.value;
    }
  }
  return best;
}

/**
 * Parses `Content-Digest` or `Repr-Digest` (RFC 9530 §2, §3): a Dictionary of algorithm → Byte
 * Sequence. Returns the entries of supported algorithms, in field order; unknown algorithms are
 * ignored (RFC 9530 §2 lets recipients ignore algorithms they do not support). Returns [] when
 * the field is absent. Throws NG_ERR_BAD_REQUEST when the field is not a valid Dictionary, or a
 * supported algorithm's value is not a Byte Sequence of that algorithm's length: for an upload
 * that must be verified, guessing would be worse than refusing.
 */
export function parseDigestHeader(header: string | readonly string[] | undefined): ParsedDigest[] {
  if (header === undefined) return [];
  let dict: Map<string, Member>;
  try {
    dict = new DictionaryParser(joined(header)).parse();
  } catch (err) {
    if (err instanceof SyntaxFailure) {
      throw ngError('NG_ERR_BAD_REQUEST', `malformed digest field: ${err.message}`, err);
    }
    throw err;
  }
  const out: ParsedDigest[] = [];
  for (const [name, member] of dict) {
    if (!isSupported(name)) continue;
    if (member.type !== 'bytes') {
      throw ngError('NG_ERR_BAD_REQUEST', `digest field: ${name} must be a byte sequence (:base64:)`);
    }
    if (member.value.length !== DIGEST_BYTES[name]) {
      throw ngError(
        'NG_ERR_BAD_REQUEST',
        `digest field: ${name} must be ${DIGEST_BYTES[name]} bytes, got ${member.value.length}`,
      );
    }
    out.push({ algorithm: name, bytes: member.value });
  }
  return out;
}

/** One Dictionary member for `Repr-Digest`/`Content-Digest` (RFC 9530 §3): `sha-256=:<base64>:`. */
export function formatDigest(algorithm: DigestAlgorithm, bytes: Uint8Array): string {
  return `${algorithm}=:${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}:`;
}

/** A Node hash object for the algorithm, to be fed the file or the upload as it streams. */
export function createDigestHash(algorithm: DigestAlgorithm): Hash {
  return createHash(NODE_HASH[algorithm]);
}

export const DEFAULT_DIGEST_CACHE_ENTRIES = 1024;

/**
 * A bounded least-recently-used cache of whole-file digests keyed by `${algorithm} ${etag}`, so
 * a repeated `Want-Repr-Digest` for an unchanged file costs nothing (CONTRACT.md "cached by
 * ETag"). Sound because the ETag is strong, names the file system (st_dev) and the inode, and
 * changes with the content (etag.ts), so two files never share a key; entries of
 * replaced files simply age out. A Map iterates in insertion order, so re-inserting on every hit
 * keeps the least recently used entry first.
 */
export class DigestCache {
  readonly #entries = new Map<string, Buffer>();
  readonly #maxEntries: number;

  constructor(maxEntries: number = DEFAULT_DIGEST_CACHE_ENTRIES) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw ngError(
        'NG_ERR_INVALID_OPTION',
        `DigestCache maxEntries must be a positive integer, got ${String(maxEntries)}`,
      );
    }
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(algorithm: DigestAlgorithm, etag: string): Buffer | undefined {
    const key = `${algorithm} ${etag}`;
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  set(algorithm: DigestAlgorithm, etag: string, bytes: Buffer): void {
    const key = `${algorithm} ${etag}`;
    this.#entries.delete(key);
    this.#entries.set(key, bytes);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  clear(): void {
    this.#entries.clear();
  }
}
