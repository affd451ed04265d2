import { describe, expect, it } from 'vitest';
import { formatMode, formatMtime, parseId, parseMode, parseMtime } from '../../core/file-meta.js';

describe('file metadata headers (X-Nullgate-Mode, -Uid, -Gid, -Mtime)', () => {
  it.each([
    [0o644, '0644'],
    [0o100755, '0755'],
    [0o4755, '4755'],
    [0o1777, '1777'],
    [0, '0000'],
  ])('formatMode(0o%o) → %s, read back as its permission bits', (mode, text) => {
    expect(formatMode(mode)).toBe(text);
    expect(parseMode(text)).toBe(mode & 0o7777);
  });

  it.each([undefined, '', '8', '0o644', '12345', '-1', '64 4', '0x1ff'])(
    'parseMode(%j) is not a mode',
    (text) => {
      expect(parseMode(text)).toBeUndefined();
    },
  );

  it.each([
    ['0', 0],
    ['1000', 1000],
    ['4294967294', 4294967294],
  ])('parseId(%j) → %i', (text, id) => {
    expect(parseId(text)).toBe(id);
  });

  it.each([undefined, '', '-1', '4294967295', '1e3', 'root', '1.5'])('parseId(%j) is not an id', (text) => {
    expect(parseId(text)).toBeUndefined();
  });

  it.each([
    [1764667200123456789n, '1764667200.123456789'],
    [1764667200000000000n, '1764667200.000000000'],
    [5n, '0.000000005'],
    [0n, '0.000000000'],
    [-1500000000n, '-1.500000000'],
  ])('formatMtime(%s) → %s, and back', (ns, text) => {
    expect(formatMtime(ns)).toBe(text);
    expect(parseMtime(text)).toBe(ns);
  });

  it.each([
    ['1764667200', 1764667200000000000n],
    ['1764667200.5', 1764667200500000000n],
  ])('parseMtime(%j) takes fewer decimals', (text, ns) => {
    expect(parseMtime(text)).toBe(ns);
  });

  it.each([undefined, '', 'x', '1.1234567890', '1e9', '1.', '.5', '--1'])(
    'parseMtime(%j) is not an mtime',
    (text) => {
      expect(parseMtime(text)).toBeUndefined();
    },
  );
});
