/**
 * core/tar-header.ts: the pax/ustar encoder of GET /archive, as tables, checked field by field
 * against POSIX.1-2001's layout, read back by core/tar-read.ts, and by GNU tar and Python's
 * tarfile where they are installed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  BLOCK,
  END_OF_ARCHIVE,
  encodeHeader,
  paddingOf,
  paxRecord,
  paxRecordsOf,
  paxTime,
  sparseMapBlock,
  sparseMapOf,
  type HeaderSpec,
} from '../../core/tar-header.js';
import { parsePax, readTar, type TarHeader } from '../../core/tar-read.js';
import { itNeeds } from '../helpers/requirements.js';

const base: HeaderSpec = {
  name: 'f',
  typeflag: '0',
  mode: 0o644,
  uid: 0,
  gid: 0,
  size: 0,
  mtimeNs: 1_700_000_000n * 1_000_000_000n,
};

/** A field of a ustar block as text, NULs trimmed. */
function field(block: Buffer, at: number, width: number): string {
  return block
    .subarray(at, at + width)
    .toString('latin1')
    .replace(/\0.*$/s, '');
}

function checksumOk(block: Buffer): boolean {
  const copy = Buffer.from(block);
  copy.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of copy) sum += b;
  return parseInt(field(block, 148, 8), 8) === sum;
}

/** The archive of members (header + data + padding), ended. */
function archive(members: { spec: HeaderSpec; data?: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const { spec, data = Buffer.alloc(0) } of members) {
    parts.push(encodeHeader(spec), data, Buffer.alloc(paddingOf(data.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

async function readBack(buf: Buffer): Promise<{ header: TarHeader; data: Buffer }[]> {
  const out: { header: TarHeader; data: Buffer }[] = [];
  for await (const member of readTar([buf])) {
    const pieces: Buffer[] = [];
    for await (const piece of member.pieces()) pieces.push(Buffer.from(piece.data));
    out.push({ header: member.header, data: Buffer.concat(pieces) });
  }
  return out;
}

describe('paxRecord: "LEN KEY=VALUE\\n", LEN counting itself', () => {
  it.each([
    ['a', 'b', '6 a=b\n'],
    ['mtime', '1.5', '13 mtime=1.5\n'],
    ['path', '', '8 path=\n'],
  ])('%s=%s', (key, value, expected) => {
    expect(paxRecord(key, value).toString()).toBe(expected);
  });

  it('the length is right across digit-count boundaries, for binary values too', () => {
    for (let n = 0; n < 1100; n++) {
      const value = Buffer.alloc(n, n % 2 === 0 ? 0 : 0xff);
      const rec = paxRecord('SCHILY.xattr.user.x', value);
      expect(Number(rec.toString('latin1').split(' ')[0])).toBe(rec.length);
      expect(parsePax(rec)).toEqual([['SCHILY.xattr.user.x', value]]);
    }
  });
});

describe('paxTime: seconds and a fraction without trailing zeros', () => {
  it.each([
    [0n, '0'],
    [1_000_000_000n, '1'],
    [1_500_000_000n, '1.5'],
    [1_700_000_000_123_456_789n, '1700000000.123456789'],
    [1_700_000_000_000_000_100n, '1700000000.0000001'],
    [-1_500_000_000n, '-1.5'],
    [-1n, '-0.000000001'],
  ])('%s ns → %s', (ns, text) => {
    expect(paxTime(ns)).toBe(text);
  });
});

describe('encodeHeader: the ustar block', () => {
  it.each([
    ['regular file 0644', { ...base }, '0000644', '0'],
    ['mode 0000 stays 0000', { ...base, mode: 0 }, '0000000', '0'],
    ['set-uid 4755', { ...base, mode: 0o104755 }, '0004755', '0'],
    ['set-gid 2755', { ...base, mode: 0o2755 }, '0002755', '0'],
    ['sticky directory 1777', { ...base, name: 'd/', typeflag: '5', mode: 0o1777 }, '0001777', '5'],
    ['0600', { ...base, mode: 0o600 }, '0000600', '0'],
  ] as [string, HeaderSpec, string, string][])('%s', (_, spec, mode, type) => {
    const h = encodeHeader(spec);
    expect(h.length).toBe(BLOCK);
    expect(field(h, 100, 8)).toBe(mode);
    expect(field(h, 156, 1)).toBe(type);
    expect(h.subarray(257, 265).toString('latin1')).toBe('ustar\u000000');
    expect(checksumOk(h)).toBe(true);
  });

  it('numeric owners, size and whole-second mtime in octal; no user or group names', () => {
    const h = encodeHeader({ ...base, uid: 1234, gid: 2345, size: 5 });
    expect([field(h, 108, 8), field(h, 116, 8), field(h, 124, 12)]).toEqual([
      '0002322',
      '0004451',
      '00000000005',
    ]);
    expect(parseInt(field(h, 136, 12), 8)).toBe(1_700_000_000);
    expect([field(h, 265, 32), field(h, 297, 32)]).toEqual(['', '']);
  });

  it('a 100-byte name fits; 150 bytes split at a slash into prefix and name; neither needs pax', () => {
    const exact = 'n'.repeat(100);
    expect(encodeHeader({ ...base, name: exact }).length).toBe(BLOCK);
    const split = `${'p'.repeat(80)}/${'q'.repeat(69)}`;
    const h = encodeHeader({ ...base, name: split });
    expect(h.length).toBe(BLOCK);
    expect(field(h, 345, 155)).toBe('p'.repeat(80));
    expect(field(h, 0, 100)).toBe('q'.repeat(69));
  });

  it('hard links, symlinks, devices and FIFOs', () => {
    const link = encodeHeader({ ...base, name: 'b', typeflag: '1', linkname: 'a' });
    expect([field(link, 156, 1), field(link, 157, 100), field(link, 124, 12)]).toEqual([
      '1',
      'a',
      '00000000000',
    ]);
    const sym = encodeHeader({ ...base, typeflag: '2', linkname: '/abs/target' });
    expect(field(sym, 157, 100)).toBe('/abs/target');
    const chr = encodeHeader({ ...base, typeflag: '3', devmajor: 1, devminor: 3 });
    expect([field(chr, 329, 8), field(chr, 337, 8)]).toEqual(['0000001', '0000003']);
    expect(field(encodeHeader({ ...base, typeflag: '6' }), 156, 1)).toBe('6');
  });
});

describe('encodeHeader: pax records where ustar is not enough', () => {
  const records = (spec: HeaderSpec): [string, string][] =>
    parsePax(Buffer.concat(paxRecordsOf(spec))).map(([k, v]) => [k, v.toString('latin1')]);

  it.each([
    ['nothing extra', base, []],
    ['ns mtime', { ...base, mtimeNs: 1_700_000_000_123_000_000n }, [['mtime', '1700000000.123']]],
    ['mtime before 1970', { ...base, mtimeNs: -2_000_000_000n }, [['mtime', '-2']]],
    ['long name', { ...base, name: 'x'.repeat(300) }, [['path', 'x'.repeat(300)]]],
    ['non-ASCII name', { ...base, name: 'ü' }, [['path', Buffer.from('ü').toString('latin1')]]],
    [
      'long link target',
      { ...base, typeflag: '2', linkname: 'l'.repeat(101) },
      [['linkpath', 'l'.repeat(101)]],
    ],
    ['size from 8 GiB', { ...base, size: 8 * 1024 ** 3 }, [['size', String(8 * 1024 ** 3)]]],
    [
      'big ids',
      { ...base, uid: 2_097_152, gid: 4_000_000_000 },
      [
        ['uid', '2097152'],
        ['gid', '4000000000'],
      ],
    ],
    [
      'big device numbers',
      { ...base, typeflag: '4', devmajor: 3_000_000, devminor: 5 },
      [['SCHILY.devmajor', '3000000']],
    ],
    [
      'a name that is not UTF-8: raw bytes, hdrcharset=BINARY',
      { ...base, name: Buffer.from([0x66, 0xff, 0x2f, 0x67]) },
      [
        ['path', 'f\xff/g'],
        ['hdrcharset', 'BINARY'],
      ],
    ],
  ] as [string, HeaderSpec, [string, string][]][])('%s', (_, spec, expected) => {
    expect(records(spec)).toEqual(expected);
    const h = encodeHeader(spec);
    expect(h.length).toBe(expected.length === 0 ? BLOCK : h.length);
    if (expected.length > 0) {
      expect(field(h, 156, 1)).toBe('x');
      expect(checksumOk(h.subarray(0, BLOCK))).toBe(true);
      expect(checksumOk(h.subarray(h.length - BLOCK))).toBe(true);
    }
  });

  it("the pax header is named 'dir/PaxHeaders/base' (GNU tar's form, without a pid)", () => {
    const h = encodeHeader({ ...base, name: 'a/b/ü' });
    expect(field(h, 0, 100)).toBe(Buffer.from('a/b/PaxHeaders/ü').toString('latin1'));
    const top = encodeHeader({ ...base, name: 'dir/', typeflag: '5', mtimeNs: 1n });
    expect(field(top, 0, 100)).toBe('./PaxHeaders/dir');
  });

  it('extended attributes as SCHILY.xattr.NAME, binary values byte for byte, in the order given', () => {
    const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    const spec = {
      ...base,
      xattrs: [
        { name: 'security.capability', value: cap },
        { name: 'user.a', value: Buffer.from('\n=\0 ') },
      ],
    };
    expect(parsePax(Buffer.concat(paxRecordsOf(spec)))).toEqual([
      ['SCHILY.xattr.security.capability', cap],
      ['SCHILY.xattr.user.a', Buffer.from('\n=\0 ')],
    ]);
  });

  it('a sparse member: GNU.sparse 1.0 records, the real name in GNU.sparse.name, GNUSparseFile.0 in ustar', () => {
    const spec: HeaderSpec = { ...base, name: 'd/img', size: 1536, sparse: { realSize: 1 << 30 } };
    expect(records(spec)).toEqual([
      ['GNU.sparse.major', '1'],
      ['GNU.sparse.minor', '0'],
      ['GNU.sparse.name', 'd/img'],
      ['GNU.sparse.realsize', String(1 << 30)],
    ]);
    const h = encodeHeader(spec);
    const ustar = h.subarray(h.length - BLOCK);
    expect(field(ustar, 0, 100)).toBe('d/GNUSparseFile.0/img');
    expect(field(ustar, 156, 1)).toBe('0');
    expect(parseInt(field(ustar, 124, 12), 8)).toBe(1536);
  });

  it('is deterministic: the same spec, the same bytes', () => {
    const spec: HeaderSpec = {
      ...base,
      name: 'ü'.repeat(80),
      mtimeNs: 5n,
      xattrs: [{ name: 'user.a', value: Buffer.from('b') }],
    };
    expect(encodeHeader(spec).equals(encodeHeader({ ...spec }))).toBe(true);
  });
});

describe('sparse maps', () => {
  it('decimal lines (count, then offset and size of each), padded to a block', () => {
    const block = sparseMapBlock([
      { offset: 1048576, size: 4096 },
      { offset: 10485760, size: 0 },
    ]);
    expect(block.length).toBe(BLOCK);
    expect(block.toString('latin1').replace(/\0+$/, '')).toBe('2\n1048576\n4096\n10485760\n0\n');
  });

  it('a map longer than a block takes whole blocks', () => {
    const map = Array.from({ length: 100 }, (_, i) => ({ offset: i * 1_000_000_000, size: 4096 }));
    expect(sparseMapBlock(map).length % BLOCK).toBe(0);
    expect(sparseMapBlock(map).length).toBeGreaterThan(BLOCK);
  });

  it.each([
    [
      'ends in a hole: an empty last segment at the real size',
      [{ offset: 0, size: 10 }],
      100,
      [
        { offset: 0, size: 10 },
        { offset: 100, size: 0 },
      ],
    ],
    ['no data at all', [], 100, [{ offset: 100, size: 0 }]],
    ['ends in data: as is', [{ offset: 90, size: 10 }], 100, [{ offset: 90, size: 10 }]],
  ])('%s', (_, data, realSize, map) => {
    expect(sparseMapOf(data, realSize)).toEqual(map);
  });
});

describe('read back', () => {
  it('core/tar-read.ts reads every kind of member back as written', async () => {
    const map = sparseMapOf([{ offset: 1 << 20, size: 5 }], 1 << 30);
    const mapBlock = sparseMapBlock(map);
    const sparseData = Buffer.concat([mapBlock, Buffer.from('hello')]);
    const buf = archive([
      { spec: { ...base, name: 'd/', typeflag: '5', mode: 0o1777, mtimeNs: 1_000_000_001n } },
      { spec: { ...base, name: 'd/f', mode: 0, uid: 1234, gid: 2345, size: 3 }, data: Buffer.from('abc') },
      { spec: { ...base, name: 'd/g', typeflag: '1', linkname: 'd/f' } },
      { spec: { ...base, name: 'd/s', typeflag: '2', linkname: '/etc/passwd' } },
      { spec: { ...base, name: 'd/null', typeflag: '3', devmajor: 1, devminor: 3 } },
      { spec: { ...base, name: 'd/p', typeflag: '6' } },
      {
        spec: {
          ...base,
          name: 'd/x',
          xattrs: [{ name: 'security.capability', value: Buffer.from([1, 0, 0, 2, 0xff]) }],
        },
      },
      {
        spec: { ...base, name: 'd/img', size: sparseData.length, sparse: { realSize: 1 << 30 } },
        data: sparseData,
      },
    ]);
    const got = await readBack(buf);
    expect(got.map((m) => [m.header.name, m.header.type])).toEqual([
      ['d/', 'dir'],
      ['d/f', 'file'],
      ['d/g', 'hardlink'],
      ['d/s', 'symlink'],
      ['d/null', 'char-device'],
      ['d/p', 'fifo'],
      ['d/x', 'file'],
      ['d/img', 'file'],
    ]);
    expect(got[0]!.header).toMatchObject({ mode: 0o1777, mtimeNs: 1_000_000_001n });
    expect(got[1]!.header).toMatchObject({ mode: 0, uid: 1234, gid: 2345 });
    expect(got[1]!.data.toString()).toBe('abc');
    expect(got[2]!.header.linkname).toBe('d/f');
    expect(got[4]!.header).toMatchObject({ devmajor: 1, devminor: 3 });
    expect(got[6]!.header.xattrs.get('security.capability')).toEqual(Buffer.from([1, 0, 0, 2, 0xff]));
    expect(got[7]!.header.sparse).toEqual({ realSize: 1 << 30, map });
    expect(got[7]!.data.toString()).toBe('hello');
  });

  describe('by GNU tar and Python', () => {
    let dir: string;
    let tarFile: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'ng-tar-header-'));
      tarFile = join(dir, 'a.tar');
      const map = sparseMapOf([{ offset: 1 << 20, size: 5 }], 1 << 24);
      const sparseData = Buffer.concat([sparseMapBlock(map), Buffer.from('hello')]);
      writeFileSync(
        tarFile,
        archive([
          {
            spec: { ...base, name: 'f', mode: 0o600, size: 3, mtimeNs: 1_700_000_000_123_456_789n },
            data: Buffer.from('abc'),
          },
          { spec: { ...base, name: 'g', typeflag: '1', linkname: 'f' } },
          {
            spec: { ...base, name: `${'n'.repeat(120)}/${'m'.repeat(120)}`, size: 1 },
            data: Buffer.from('z'),
          },
          {
            spec: { ...base, name: 'img', size: sparseData.length, sparse: { realSize: 1 << 24 } },
            data: sparseData,
          },
        ]),
      );
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    itNeeds(['tar'], 'GNU tar lists it without a complaint', () => {
      const out = execFileSync('tar', ['--full-time', '-tvf', tarFile], { encoding: 'utf8' });
      expect(out).toMatch(/^-rw------- 0\/0 +3 2023-11-14 22:13:20\.123456789 f$/m);
      expect(out).toMatch(/^hrw-r--r-- 0\/0 .* g link to f$/m);
      expect(out).toContain(`${'n'.repeat(120)}/${'m'.repeat(120)}`);
      expect(out).toMatch(/ 16777216 .* img$/m);
    });

    itNeeds(['python3'], "Python's tarfile reads names, ns mtime, link and sparse size", () => {
      const out = execFileSync(
        'python3',
        [
          '-c',
          `import tarfile,sys
for m in tarfile.open(sys.argv[1]):
    print(m.name, m.type.decode(), m.size, repr(m.mtime), m.linkname, oct(m.mode))`,
          tarFile,
        ],
        { encoding: 'utf8' },
      );
      const lines = out.trim().split('\n');
      expect(lines[0]).toBe('f 0 3 1700000000.1234567  0o600');
      expect(lines[1]).toBe('g 1 0 1700000000 f 0o644');
      expect(lines[2]!.startsWith(`${'n'.repeat(120)}/${'m'.repeat(120)} 0 1`)).toBe(true);
      expect(lines[3]).toMatch(/^img \S+ 16777216 /);
    });
  });
});
