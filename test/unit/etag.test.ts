import { mkdtempSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEntityTag } from '../../routes/conditional.js';
import { lastModifiedHeader, strongEtag, type EtagStat } from '../../routes/etag.js';

describe('strongEtag, RFC 9110 §8.8.3', () => {
  it.each<[string, EtagStat, string]>([
    ['an empty file at the epoch', { dev: 0, ino: 1, size: 0, mtimeNs: 0n }, '"0-1-0-0"'],
    [
      'nanosecond mtime',
      { dev: 2049, ino: 255, size: 4096, mtimeNs: 1_700_000_000_123_456_789n },
      '"801-ff-1000-17979cfe3d85cd15"',
    ],
    [
      '64-bit device and inode, bigint size',
      { dev: 2n ** 40n, ino: 2n ** 63n, size: 2n ** 40n, mtimeNs: 1n },
      '"10000000000-8000000000000000-10000000000-1"',
    ],
  ])('%s → %s', (_what, stat, etag) => {
    expect(strongEtag(stat)).toBe(etag);
  });

  const base: EtagStat = { dev: 7, ino: 1, size: 10, mtimeNs: 5n };
  it.each<[string, EtagStat]>([
    ['the device (same inode on another mount inside the root)', { ...base, dev: 8 }],
    ['the inode (atomic rename)', { ...base, ino: 2 }],
    ['the size', { ...base, size: 11 }],
    ['the mtime by one nanosecond', { ...base, mtimeNs: 6n }],
  ])('changes with %s', (_what, changed) => {
    expect(strongEtag(changed)).not.toBe(strongEtag(base));
  });

  it('is a valid strong entity-tag, number and bigint stats agree', () => {
    const tag = parseEntityTag(strongEtag({ dev: 3, ino: 12345, size: 678, mtimeNs: 9n }));
    expect(tag).toEqual({ weak: false, opaque: '"3-3039-2a6-9"' });
    expect(strongEtag({ dev: 3, ino: 12345, size: 678, mtimeNs: 9n })).toBe(
      strongEtag({ dev: 3n, ino: 12345n, size: 678n, mtimeNs: 9n }),
    );
  });

  describe('on a real file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nullgate-etag-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const stat = (p: string): EtagStat => statSync(p, { bigint: true });

    it('is deterministic, and changes on an atomic replace with identical content and mtime', () => {
      const target = join(dir, 'f.txt');
      writeFileSync(target, 'hello');
      utimesSync(target, 1_700_000_000, 1_700_000_000);
      const before = strongEtag(stat(target));
      expect(strongEtag(stat(target))).toBe(before);

      const tmp = join(dir, '.f.txt.tmp');
      writeFileSync(tmp, 'hello');
      utimesSync(tmp, 1_700_000_000, 1_700_000_000);
      renameSync(tmp, target);
      expect(strongEtag(stat(target))).not.toBe(before);
    });
  });
});

describe('lastModifiedHeader, RFC 9110 §8.8.2 / §5.6.7 IMF-fixdate', () => {
  it.each<[string, number | bigint | Date, string]>([
    ['0 ms', 0, 'Thu, 01 Jan 1970 00:00:00 GMT'],
    ['ms', 784111777000, 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ['ms with a fraction of a second (truncated)', 784111777999, 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ['bigint ms (bigint stat mtimeMs)', 784111777000n, 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ['a Date', new Date(Date.UTC(2024, 1, 9, 1, 2, 3)), 'Fri, 09 Feb 2024 01:02:03 GMT'],
  ])('%s', (_what, mtime, header) => {
    expect(lastModifiedHeader(mtime)).toBe(header);
  });
});
