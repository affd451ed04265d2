/**
 * core/tar-read.ts: archives written by GNU tar (pax with xattrs, ns times and sparse maps in
 * all three GNU sparse forms, GNU long names, devices and FIFOs), by tar-stream, and broken ones.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NullgateError } from '../../core/errors.js';
import { paxTimeNs, parsePax, readTar, type TarHeader } from '../../core/tar-read.js';
import { itNeeds } from '../helpers/requirements.js';
import { packEntries } from '../helpers/tar.js';

interface Read {
  header: TarHeader;
  data: Map<number, Buffer>;
}

async function readAll(buf: Buffer, chunk = 7000): Promise<Read[]> {
  const chunks: Buffer[] = [];
  for (let at = 0; at < buf.length; at += chunk) chunks.push(buf.subarray(at, at + chunk));
  const out: Read[] = [];
  for await (const member of readTar(chunks)) {
    const data = new Map<number, Buffer>();
    for await (const piece of member.pieces()) data.set(piece.position, Buffer.from(piece.data));
    out.push({ header: member.header, data });
  }
  return out;
}

/** The pieces joined where they touch: offset -> bytes. */
function joined(data: Map<number, Buffer>): [number, string][] {
  const out: [number, Buffer][] = [];
  for (const [pos, buf] of [...data].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1].length === pos) last[1] = Buffer.concat([last[1], buf]);
    else out.push([pos, buf]);
  }
  return out.map(([pos, buf]) => [pos, buf.toString('latin1')]);
}

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ng-tar-read-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function gnuTar(args: string[], cwd: string): Buffer {
  return execFileSync('tar', args, { cwd, maxBuffer: 1 << 28 });
}

describe('readTar', () => {
  it('parses pax records as bytes', () => {
    const value = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0x0a, 0x3d]);
    const rec = (k: string, v: Buffer): Buffer => {
      const body = Buffer.concat([Buffer.from(` ${k}=`), v, Buffer.from('\n')]);
      let len = body.length + 1;
      if (String(len).length + body.length !== len) len = String(len + 1).length + body.length;
      return Buffer.concat([Buffer.from(String(len)), body]);
    };
    const recs = parsePax(
      Buffer.concat([rec('SCHILY.xattr.security.capability', value), rec('path', Buffer.from('ä/b'))]),
    );
    expect(recs[0]?.[0]).toBe('SCHILY.xattr.security.capability');
    expect(recs[0]?.[1].equals(value)).toBe(true);
    expect(recs[1]?.[1].toString()).toBe('ä/b');
  });

  it.each([
    ['1700000000', 1700000000000000000n],
    ['1700000000.5', 1700000000500000000n],
    ['1700000000.123456789', 1700000000123456789n],
    ['1700000000.1234567891', 1700000000123456789n],
    ['-1.5', -1500000000n],
    ['0', 0n],
  ])('paxTimeNs(%s)', (text, ns) => {
    expect(paxTimeNs(text)).toBe(ns);
  });

  it('reads tar-stream archives (ustar, long names through pax)', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}`;
    const buf = await packEntries([
      { header: { name: 'a', type: 'directory', mode: 0o1777 } },
      { header: { name: 'a/x', mode: 0o4755, uid: 1234, gid: 2345, mtime: new Date(1e12) }, body: 'hello' },
      { header: { name: long, mode: 0o644 }, body: 'long' },
      { header: { name: 'a/l', type: 'symlink', linkname: '/etc/passwd' } },
      { header: { name: 'a/h', type: 'link', linkname: 'a/x' } },
    ]);
    const read = await readAll(buf, 100);
    expect(read.map((r) => [r.header.name, r.header.type])).toEqual([
      ['a', 'dir'],
      ['a/x', 'file'],
      [long, 'file'],
      ['a/l', 'symlink'],
      ['a/h', 'hardlink'],
    ]);
    expect(read[0]?.header.mode).toBe(0o1777);
    expect(read[1]?.header).toMatchObject({ mode: 0o4755, uid: 1234, gid: 2345, size: 5 });
    expect(read[1]?.header.mtimeNs).toBe(1_000_000_000_000_000_000n);
    expect(joined(read[1]?.data ?? new Map())).toEqual([[0, 'hello']]);
    expect(read[3]?.header.linkname).toBe('/etc/passwd');
    expect(read[4]?.header.linkname).toBe('a/x');
  });

  it.each([
    ['bad checksum', (b: Buffer) => b.fill(0x41, 0, 10)],
    ['no end-of-archive blocks', (b: Buffer) => b.subarray(0, 1024)],
    ['cut inside the data', (b: Buffer) => b.subarray(0, 600)],
    ['cut inside a header', (b: Buffer) => b.subarray(0, 300)],
  ])('refuses an archive with %s', async (_name, spoil) => {
    const buf = await packEntries([{ header: { name: 'x' }, body: 'y'.repeat(600) }]);
    const err = await readAll(spoil(Buffer.from(buf))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NullgateError);
    expect((err as NullgateError).code).toBe('NG_ERR_ARCHIVE_INVALID');
  });

  it('reads nothing more after the end-of-archive blocks', async () => {
    const buf = await packEntries([{ header: { name: 'x' }, body: 'y' }]);
    const read = await readAll(Buffer.concat([buf, Buffer.alloc(4096, 0x41)]));
    expect(read.map((r) => r.header.name)).toEqual(['x']);
  });

  itNeeds(
    ['tar', 'root', 'setcap', 'setfattr'],
    'reads GNU tar pax archives: xattrs as bytes, ns times, owners, devices, FIFOs, hard links',
    async () => {
      const src = join(dir, 'gnu');
      mkdirSync(src);
      const f = join(src, 'prog');
      closeSync(openSync(f, 'w', 0o755));
      execFileSync('chown', ['1234:2345', f]);
      execFileSync('chmod', ['4755', f]);
      execFileSync('setcap', ['cap_net_raw+ep', f]);
      execFileSync('setfattr', ['-n', 'user.note', '-v', '0x00ff0a3d', f]);
      execFileSync('touch', ['-h', '-d', '2021-06-01 12:00:00.123456789Z', f]);
      linkSync(f, join(src, 'prog2'));
      symlinkSync('../../out', join(src, 'out'));
      execFileSync('mkfifo', [join(src, 'fifo')]);
      execFileSync('mknod', [join(src, 'null'), 'c', '1', '3']);
      const buf = gnuTar(
        [
          '--xattrs',
          '--xattrs-include=*',
          '--format=posix',
          '--numeric-owner',
          '-cf',
          '-',
          '--sort=name',
          '.',
        ],
        src,
      );
      const read = await readAll(buf);
      const by = new Map(read.map((r) => [r.header.name, r.header]));
      const prog = by.get('./prog');
      expect(prog).toMatchObject({ type: 'file', mode: 0o4755, uid: 1234, gid: 2345 });
      expect(prog?.mtimeNs).toBe(1622548800123456789n);
      const cap = execFileSync('getfattr', ['-e', 'hex', '-n', 'security.capability', '--only-values', f]);
      expect(prog?.xattrs.get('security.capability')?.equals(cap)).toBe(true);
      expect(prog?.xattrs.get('user.note')?.toString('hex')).toBe('00ff0a3d');
      expect(by.get('./prog2')).toMatchObject({ type: 'hardlink', linkname: './prog' });
      expect(by.get('./out')).toMatchObject({ type: 'symlink', linkname: '../../out' });
      expect(by.get('./fifo')?.type).toBe('fifo');
      expect(by.get('./null')).toMatchObject({ type: 'char-device', devmajor: 1, devminor: 3 });
    },
  );

  describe.each([['1.0'], ['0.1'], ['0.0']])('GNU tar --sparse --sparse-version=%s', (version) => {
    itNeeds(['tar'], 'gives the map and the data at their offsets', async () => {
      const src = join(dir, `sparse-${version}`);
      mkdirSync(src);
      const fd = openSync(join(src, 'disk.img'), 'w');
      writeSync(fd, 'A'.repeat(5000), 0, 'latin1');
      writeSync(fd, 'B'.repeat(100), 1 << 20, 'latin1');
      writeSync(fd, 'C'.repeat(3), 3 << 20, 'latin1');
      ftruncateSync(fd, 8 << 20);
      closeSync(fd);
      const buf = gnuTar(
        ['--sparse', `--sparse-version=${version}`, '--format=posix', '-cf', '-', 'disk.img'],
        src,
      );
      const read = await readAll(buf, 1000);
      expect(read).toHaveLength(1);
      const h = read[0]?.header;
      expect(h?.name).toBe('disk.img');
      expect(h?.sparse?.realSize).toBe(8 << 20);
      const pieces = joined(read[0]?.data ?? new Map()).filter(([, s]) => /[^\0]/.test(s));
      expect(pieces.map(([pos, s]) => [pos, s.replace(/\0+$/, '')])).toEqual([
        [0, 'A'.repeat(5000)],
        [1 << 20, 'B'.repeat(100)],
        [3 << 20, 'C'.repeat(3)],
      ]);
    });
  });

  itNeeds(['tar'], 'reads GNU format long names and link names', async () => {
    const src = join(dir, 'gnu-long');
    const long = 'n'.repeat(150);
    mkdirSync(join(src, long), { recursive: true });
    closeSync(openSync(join(src, long, 'f'), 'w'));
    symlinkSync('t'.repeat(150), join(src, long, 'l'));
    const read = await readAll(gnuTar(['--format=gnu', '--sort=name', '-cf', '-', long], src));
    expect(read.map((r) => [r.header.name, r.header.type, r.header.linkname])).toEqual([
      [`${long}/`, 'dir', ''],
      [`${long}/f`, 'file', ''],
      [`${long}/l`, 'symlink', 't'.repeat(150)],
    ]);
  });
});
