import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isNullgateError } from '../../core/errors.js';
import {
  createDigestHash,
  DigestCache,
  formatDigest,
  parseDigestHeader,
  parseWantDigest,
  type DigestAlgorithm,
} from '../../routes/digest.js';

const SHA256_HELLO = createHash('sha256').update('hello').digest();
const SHA512_HELLO = createHash('sha512').update('hello').digest();
const B256 = SHA256_HELLO.toString('base64');
const B512 = SHA512_HELLO.toString('base64');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isNullgateError(err) ? err.code : 'not a NullgateError';
  }
  return undefined;
}

describe('parseWantDigest: RFC 9530 §4 preferences over an RFC 8941 §3.2 Dictionary', () => {
  it.each<[string | string[] | undefined, DigestAlgorithm | undefined]>([
    [undefined, undefined],
    ['', undefined],
    ['sha-256=1', 'sha-256'],
    ['sha-512=3', 'sha-512'],
    ['sha-256=1, sha-512=3', 'sha-512'],
    ['sha-256=10, sha-512=3', 'sha-256'],
    // Ties go to sha-256.
    ['sha-512=5, sha-256=5', 'sha-256'],
    // 0 means "not acceptable".
    ['sha-256=0', undefined],
    ['sha-256=0, sha-512=1', 'sha-512'],
    // Unknown algorithms are skipped.
    ['md5=10', undefined],
    ['unixsum=10, sha-256=2', 'sha-256'],
    ['id-sha-256=9, sha-512=1', 'sha-512'],
    // RFC 8941 whitespace: SP/HTAB around commas, SP at the ends.
    ['  sha-256=1 ,\tsha-512=2  ', 'sha-512'],
    ['sha-256=1,sha-512=2', 'sha-512'],
    // Upper-case keys are folded (a deliberate leniency over RFC 8941 §3.2).
    ['SHA-256=1', 'sha-256'],
    ['Sha-512=4', 'sha-512'],
    // Parameters are parsed and ignored.
    ['sha-256=1;q=2, sha-512=2;foo', 'sha-512'],
    // Values outside 0..10 or not Integers skip the member.
    ['sha-256=11', undefined],
    ['sha-256=-1', undefined],
    ['sha-256=5.0', undefined],
    ['sha-256="5"', undefined],
    ['sha-256', undefined],
    ['sha-256=(1 2)', undefined],
    ['sha-256=?1, sha-512=1', 'sha-512'],
    // A later duplicate overrides (RFC 8941 §4.2.2).
    ['sha-256=9, sha-256=0, sha-512=1', 'sha-512'],
    // Several field lines combine.
    [['sha-256=1', 'sha-512=2'], 'sha-512'],
    // Unparseable fields are ignored as a whole (RFC 8941 §4.2).
    ['sha-256=1,', undefined],
    ['sha-256=1 sha-512=2', undefined],
    ['sha-256=1;', undefined],
    ['=1', undefined],
    ['sha-256==1', undefined],
    ['sha-256=1234567890123456', undefined],
    ['sha-256:1', undefined],
  ])('%j → %s', (header, expected) => {
    expect(parseWantDigest(header)).toBe(expected);
  });
});

describe('parseDigestHeader: RFC 9530 §2/§3 over RFC 8941 §3.2 Dictionary of Byte Sequences', () => {
  it.each<[string | string[] | undefined, [DigestAlgorithm, Buffer][]]>([
    [undefined, []],
    [`sha-256=:${B256}:`, [['sha-256', SHA256_HELLO]]],
    [`sha-512=:${B512}:`, [['sha-512', SHA512_HELLO]]],
    [
      `sha-256=:${B256}:, sha-512=:${B512}:`,
      [
        ['sha-256', SHA256_HELLO],
        ['sha-512', SHA512_HELLO],
      ],
    ],
    [`  SHA-256=:${B256}:  `, [['sha-256', SHA256_HELLO]]],
    [`sha-256=:${B256.replace(/=+$/, '')}:`, [['sha-256', SHA256_HELLO]]],
    [`sha-256=:${B256}:;param=1`, [['sha-256', SHA256_HELLO]]],
    // Unknown algorithms are ignored whatever their value type.
    [`md5=:AAAA:, sha-256=:${B256}:`, [['sha-256', SHA256_HELLO]]],
    ['unixsum=42, adler=?1, crc32c="x", id-sha-256=:AAAA:', []],
    [[`md5=:AAAA:`, `sha-512=:${B512}:`], [['sha-512', SHA512_HELLO]]],
    ['', []],
  ])('%j', (header, expected) => {
    expect(parseDigestHeader(header).map((d) => [d.algorithm, d.bytes])).toEqual(expected);
  });

  it.each<[string, string]>([
    ['sha-256=:not base64!:', 'bad base64 alphabet'],
    ['sha-256=:A:', 'impossible base64 length'],
    ['sha-256=:ab=c:', 'padding in the middle'],
    ['sha-256=:abc=d===:', 'too much padding'],
    [`sha-256=:${B256.replace(/\+|\//g, '-')}-:`, 'URL-safe alphabet'],
    [`sha-256=:${B256}`, 'unterminated byte sequence'],
    [`sha-256=${B256}`, 'a token, not a byte sequence'],
    ['sha-256=42', 'an integer, not a byte sequence'],
    ['sha-256', 'a bare key (Boolean true)'],
    ['sha-256=::', 'empty digest (wrong length)'],
    [`sha-256=:${B512}:`, 'sha-512 length under sha-256'],
    [`sha-512=:${B256}:`, 'sha-256 length under sha-512'],
    [`sha-256=:${B256}:,`, 'trailing comma'],
    [`sha-256=:${B256}: sha-512=:${B512}:`, 'missing comma'],
    ['md5="unterminated', 'malformed unknown member still breaks the field'],
    ['1abc=:AAAA:', 'key starting with a digit'],
  ])('%j is NG_ERR_BAD_REQUEST (%s)', (header) => {
    expect(codeOf(() => parseDigestHeader(header))).toBe('NG_ERR_BAD_REQUEST');
  });
});

describe('formatDigest / createDigestHash, RFC 9530 §3', () => {
  it.each<[DigestAlgorithm, Buffer, string]>([
    ['sha-256', SHA256_HELLO, 'sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:'],
    ['sha-512', SHA512_HELLO, `sha-512=:${B512}:`],
    ['sha-256', Buffer.alloc(0), 'sha-256=::'],
  ])('%s → %s', (algorithm, bytes, expected) => {
    expect(formatDigest(algorithm, bytes)).toBe(expected);
  });

  it.each<[DigestAlgorithm, Buffer]>([
    ['sha-256', SHA256_HELLO],
    ['sha-512', SHA512_HELLO],
  ])(
    'createDigestHash(%s) hashes like node:crypto, and round-trips through the parser',
    (algorithm, bytes) => {
      const digest = createDigestHash(algorithm).update('hel').update('lo').digest();
      expect(digest).toEqual(bytes);
      expect(parseDigestHeader(formatDigest(algorithm, digest))).toEqual([{ algorithm, bytes }]);
    },
  );

  it('formats a Uint8Array view without copying the surrounding buffer', () => {
    const big = Buffer.concat([Buffer.from('xx'), SHA256_HELLO, Buffer.from('yy')]);
    expect(formatDigest('sha-256', new Uint8Array(big.buffer, big.byteOffset + 2, 32))).toBe(
      `sha-256=:${B256}:`,
    );
  });
});

describe('DigestCache: bounded LRU keyed by algorithm and ETag', () => {
  const d = (n: number): Buffer => Buffer.from([n]);

  it('returns what was stored, per algorithm and etag', () => {
    const cache = new DigestCache(4);
    cache.set('sha-256', '"a"', d(1));
    cache.set('sha-512', '"a"', d(2));
    expect(cache.get('sha-256', '"a"')).toEqual(d(1));
    expect(cache.get('sha-512', '"a"')).toEqual(d(2));
    expect(cache.get('sha-256', '"b"')).toBeUndefined();
    expect(cache.size).toBe(2);
  });

  it('evicts the least recently used entry beyond maxEntries', () => {
    const cache = new DigestCache(2);
    cache.set('sha-256', '"a"', d(1));
    cache.set('sha-256', '"b"', d(2));
    expect(cache.get('sha-256', '"a"')).toEqual(d(1)); // "a" is now the most recent
    cache.set('sha-256', '"c"', d(3));
    expect(cache.get('sha-256', '"b"')).toBeUndefined();
    expect(cache.get('sha-256', '"a"')).toEqual(d(1));
    expect(cache.get('sha-256', '"c"')).toEqual(d(3));
    expect(cache.size).toBe(2);
  });

  it('replaces an existing key without growing', () => {
    const cache = new DigestCache(2);
    cache.set('sha-256', '"a"', d(1));
    cache.set('sha-256', '"a"', d(9));
    expect(cache.get('sha-256', '"a"')).toEqual(d(9));
    expect(cache.size).toBe(1);
    cache.clear();
    expect(cache.size).toBe(0);
  });

  it.each<[number]>([[0], [-1], [1.5], [Number.NaN]])('rejects maxEntries %s', (max) => {
    expect(codeOf(() => new DigestCache(max))).toBe('NG_ERR_INVALID_OPTION');
  });
});
