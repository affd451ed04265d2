import { constants as fsc } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  type ManifestEntry,
  ManifestFormatError,
  ManifestSplitter,
  manifestEntry,
  manifestLine,
  manifestTypeOfMode,
  parseManifestLine,
  xattrDigest,
} from '../../core/manifest.js';
import { difference, listingLine, mtimePrecision, planSync, sameMtime } from '../../core/sync-plan.js';

const T = '1700000000123456789';

function e(path: string, over: Partial<ManifestEntry> = {}): ManifestEntry {
  return { path, type: 'file', size: 3, mtime: T, mode: 0o644, uid: 0, gid: 0, ...over };
}
function dir(path: string, over: Partial<ManifestEntry> = {}): ManifestEntry {
  return e(path, { type: 'dir', size: 0, mode: 0o755, ...over });
}

describe('mtimes at the coarser precision', () => {
  it.each([
    [1700000000123456789n, 1n],
    [1700000000123456000n, 1000n],
    [1700000000000000000n, 1_000_000_000n],
    [0n, 1_000_000_000n],
    [-1_500_000_000n, 100_000_000n],
  ])('precision of %s is %s ns', (ns, unit) => {
    expect(mtimePrecision(ns)).toBe(unit);
  });

  it.each([
    [T, T, true],
    [T, '1700000000123456788', false],
    // One side with whole seconds (ustar, a file system with second times).
    ['1700000000000000000', T, true],
    ['1700000001000000000', T, false],
    // One side with microseconds.
    ['1700000000123456000', T, true],
    ['1700000000123457000', T, false],
    ['-1000000000', '-1500000000', false],
    ['-2000000000', '-1500000000', true],
  ])('%s vs %s: same = %s', (a, b, same) => {
    expect(sameMtime(a, b)).toBe(same);
  });
});

describe('difference (what the receiver keeps)', () => {
  it.each<[string, ManifestEntry, ManifestEntry, object, string | undefined]>([
    ['equal', e('a'), e('a'), {}, undefined],
    ['size', e('a'), e('a', { size: 4 }), {}, 'size'],
    ['mtime', e('a'), e('a', { mtime: '1700000000123456788' }), {}, 'mtime'],
    ['mode', e('a'), e('a', { mode: 0o600 }), {}, 'mode'],
    ['type', e('a'), dir('a'), {}, 'type'],
    ['xattrs', e('a', { xattrs: 'x' }), e('a'), {}, 'xattrs'],
    ['owner ignored unless kept', e('a', { uid: 5 }), e('a'), {}, undefined],
    ['owner when kept', e('a', { uid: 5 }), e('a'), { owners: true }, 'owner'],
    [
      'set-id bits a user cannot keep',
      e('a', { mode: 0o4755 }),
      e('a', { mode: 0o755 }),
      { modeMask: 0o1777 },
      undefined,
    ],
    ['set-id bits root keeps', e('a', { mode: 0o4755 }), e('a', { mode: 0o755 }), {}, 'mode'],
    [
      'same size and time, other content: unseen',
      e('a', { sha256: '1' }),
      e('a', { sha256: '2' }),
      {},
      undefined,
    ],
    ['checksum sees it', e('a', { sha256: '1' }), e('a', { sha256: '2' }), { checksum: true }, 'content'],
    [
      'checksum ignores the size',
      e('a', { sha256: '1' }),
      e('a', { sha256: '1', size: 9 }),
      { checksum: true },
      undefined,
    ],
    [
      'symlink target',
      e('l', { type: 'symlink', target: '/x' }),
      e('l', { type: 'symlink', target: '/y' }),
      {},
      'target',
    ],
    [
      'symlink time and mode do not count',
      e('l', { type: 'symlink', target: '/x', mode: 0o777 }),
      e('l', { type: 'symlink', target: '/x', mtime: '5', mode: 0o755 }),
      {},
      undefined,
    ],
    [
      'device numbers',
      e('d', { type: 'char', size: 0, rdev: [1, 3] }),
      e('d', { type: 'char', size: 0, rdev: [1, 5] }),
      {},
      'rdev',
    ],
  ])('%s', (_name, src, dst, options, why) => {
    expect(difference(src, dst, options)).toBe(why);
  });
});

describe('planSync', () => {
  const base = [dir(''), dir('d'), e('d/a'), e('d/b'), dir('e'), e('e/c'), e('top')];

  it('an equal tree sends and deletes nothing', () => {
    expect(planSync(base, base, { delete: true })).toEqual({ send: [], delete: [], listing: [] });
  });

  it('sends what changed and what is new, with the directories that hold them', () => {
    const src = [
      dir(''),
      dir('d'),
      e('d/a', { size: 9 }),
      e('d/b'),
      dir('e'),
      e('e/c'),
      e('e/new'),
      e('top'),
    ];
    const plan = planSync(src, base);
    expect(plan.send).toEqual(['', 'd', 'd/a', 'e', 'e/new']);
    expect(plan.listing.map(listingLine)).toEqual(['send d/a', 'send e/new']);
    expect(plan.delete).toEqual([]);
  });

  it('deletes only with delete: the outermost on the wire, every entry in the listing, contents first', () => {
    const src = [dir(''), e('top')];
    expect(planSync(src, base).delete).toEqual([]);
    const plan = planSync(src, base, { delete: true });
    expect(plan.delete).toEqual(['d', 'e']);
    expect(plan.send).toEqual(['']);
    expect(plan.listing.map(listingLine)).toEqual([
      'delete e/c',
      'delete e/',
      'delete d/b',
      'delete d/a',
      'delete d/',
    ]);
  });

  it('a directory replaced by a file (and the other way) is deleted first, also without delete', () => {
    const src = [dir(''), e('d'), dir('e'), dir('e/c'), e('e/c/x'), e('top')];
    const plan = planSync(src, base);
    expect(plan.delete).toEqual(['d', 'e/c']);
    expect(plan.send).toEqual(['', 'd', 'e', 'e/c', 'e/c/x']);
  });

  it('a file replaced by a symlink is sent over it (no deletion needed)', () => {
    const src = [
      dir(''),
      dir('d'),
      e('d/a', { type: 'symlink', size: 0, target: 'b' }),
      e('d/b'),
      dir('e'),
      e('e/c'),
      e('top'),
    ];
    const plan = planSync(src, base);
    expect(plan.delete).toEqual([]);
    expect(plan.send).toEqual(['', 'd', 'd/a']);
  });

  describe('hard links', () => {
    const linked = [dir(''), e('a', { link: 'a' }), e('b', { link: 'a' }), e('c')];

    it('an unchanged set is not sent', () => {
      expect(planSync(linked, linked).send).toEqual([]);
    });

    it('a set whose one name changed is sent whole', () => {
      const src = [dir(''), e('a', { link: 'a', size: 5 }), e('b', { link: 'a', size: 5 }), e('c')];
      const dst = [dir(''), e('a', { link: 'a' }), e('b', { link: 'a' }), e('c')];
      expect(planSync(src, dst).send).toEqual(['', 'a', 'b']);
    });

    it('a set the destination has as separate files is sent whole', () => {
      const dst = [dir(''), e('a'), e('b'), e('c')];
      expect(planSync(linked, dst).send).toEqual(['', 'a', 'b']);
    });

    it('a set the destination has with one more name is sent, and that name too', () => {
      const dst = [dir(''), e('a', { link: 'a' }), e('b', { link: 'a' }), e('c', { link: 'a' })];
      expect(planSync(linked, dst).send).toEqual(['', 'a', 'b', 'c']);
    });
  });
});

describe('manifest lines', () => {
  it('round-trip, with ns mtimes as text and names that are not UTF-8 escaped', () => {
    const entry = manifestEntry({
      path: 'caf\udce9/x',
      type: 'symlink',
      size: 7,
      mtimeNs: 1700000000123456789n,
      mode: 0o120777,
      uid: 1234,
      gid: 2345,
      target: '/etc/x',
    });
    const line = manifestLine(entry).toString();
    expect(line).toContain('"caf\\udce9/x"');
    expect(line).toContain('"mtime":"1700000000123456789"');
    expect(line).toContain('"mode":511');
    expect(line.endsWith('\n')).toBe(true);
    expect(parseManifestLine(line)).toEqual({ ...entry, size: 0 });
  });

  it('split across chunks', () => {
    const lines = Buffer.concat([manifestLine(e('a')), manifestLine(e('b/é'))]);
    const s = new ManifestSplitter();
    const out = [
      ...s.push(lines.subarray(0, 7)),
      ...s.push(lines.subarray(7, lines.length - 3)),
      ...s.push(lines.subarray(lines.length - 3)),
    ];
    s.end();
    expect(out.map((x) => x.path)).toEqual(['a', 'b/é']);
  });

  it.each([
    ['not JSON', '{'],
    ['no path', '{"type":"file","size":0,"mtime":"1","mode":0,"uid":0,"gid":0}'],
    ['bad type', '{"path":"a","type":"socket","size":0,"mtime":"1","mode":0,"uid":0,"gid":0}'],
    ['mtime as a number', '{"path":"a","type":"file","size":0,"mtime":1,"mode":0,"uid":0,"gid":0}'],
  ])('refuses %s', (_name, line) => {
    expect(() => parseManifestLine(line)).toThrow(ManifestFormatError);
  });

  it('a cut manifest is an error at its end', () => {
    const s = new ManifestSplitter();
    s.push(Buffer.from('{"path":"a"'));
    expect(() => s.end()).toThrow(ManifestFormatError);
  });
});

describe('xattrDigest', () => {
  const user = { name: 'user.a', value: Buffer.from('1') };
  const sec = { name: 'security.capability', value: Buffer.from([1, 2]) };

  it('is undefined for none, independent of order, and covers only user.* in the user scope', () => {
    expect(xattrDigest([], 'all')).toBeUndefined();
    expect(xattrDigest([sec], 'user')).toBeUndefined();
    expect(xattrDigest([user, sec], 'all')).toBe(xattrDigest([sec, user], 'all'));
    expect(xattrDigest([user, sec], 'user')).toBe(xattrDigest([user], 'all'));
    expect(xattrDigest([user], 'all')).not.toBe(xattrDigest([{ ...user, value: Buffer.from('2') }], 'all'));
  });
});

describe('manifestTypeOfMode', () => {
  it.each([
    [fsc.S_IFREG | 0o644, 'file'],
    [fsc.S_IFDIR | 0o1777, 'dir'],
    [fsc.S_IFLNK | 0o777, 'symlink'],
    [fsc.S_IFIFO | 0o600, 'fifo'],
    [fsc.S_IFCHR | 0o620, 'char'],
    [fsc.S_IFBLK | 0o660, 'block'],
    [fsc.S_IFSOCK | 0o755, undefined],
  ])('mode %o is %s', (mode, type) => {
    expect(manifestTypeOfMode(mode)).toBe(type);
  });
});
