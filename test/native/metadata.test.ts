/**
 * The metadata surface of the beneath-root layer (native/fs_ops.h "metadata", BeneathRoot's
 * lchown, lchmod, lutimesNs, mknod, link, xattrs, nextData/nextHole): each acts on the entry
 * itself — a final symlink is never followed — and nothing reaches outside the root.
 */
import {
  closeSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { constants as fsc } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { native } from '../../native/binding.js';
import type { SystemError } from '../../native/binding.js';
import { BeneathRoot, closeFd } from '../../native/beneath.js';
import { bytesToName } from '../../core/name-bytes.js';
import { itNeeds } from '../helpers/requirements.js';

let base: string;
let rootDir: string;
let outsideDir: string;
let root: BeneathRoot;

async function rejection(p: Promise<unknown>): Promise<SystemError> {
  try {
    await p;
  } catch (err) {
    return err as SystemError;
  }
  throw new Error('expected a rejection');
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** getfattr (package attr, with setfattr: the 'setfattr' requirement) of a file itself. */
function getfattr(file: string): string {
  return execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', file], { encoding: 'utf8' });
}

beforeAll(() => {
  base = mkdtempSync(path.join(tmpdir(), 'ng-meta-'));
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

beforeEach(async () => {
  const dir = mkdtempSync(path.join(base, 't-'));
  rootDir = path.join(dir, 'root');
  outsideDir = path.join(dir, 'outside');
  mkdirSync(path.join(rootDir, 'sub'), { recursive: true });
  mkdirSync(outsideDir);
  writeFileSync(path.join(outsideDir, 'secret'), 'SECRET');
  writeFileSync(path.join(rootDir, 'file.txt'), 'hello');
  symlinkSync('file.txt', path.join(rootDir, 'link-in'));
  symlinkSync('../outside', path.join(rootDir, 'link-out'));
  symlinkSync('../outside/secret', path.join(rootDir, 'link-secret'));
  root = await BeneathRoot.open(rootDir);
});

afterEach(async () => {
  await root.close();
  rmSync(path.dirname(rootDir), { recursive: true, force: true });
});

describe('stat reports what tar needs', () => {
  it('atime, ctime in ns, st_blocks, rdev 0 for a file', async () => {
    const st = await root.lstat('file.txt');
    const host = statSync(path.join(rootDir, 'file.txt'), { bigint: true });
    expect(st.atimeNs).toBe(host.atimeNs);
    expect(st.ctimeNs).toBe(host.ctimeNs);
    expect(st.mtimeNs).toBe(host.mtimeNs);
    expect(st.blocks).toBe(Number(host.blocks));
    expect(st.rdev).toBe(0);
  });

  itNeeds(['root'], 'a character device: rdev with its major and minor', async () => {
    await root.mknod('null', 'char', 0o640, 1, 3);
    const st = await root.lstat('null');
    expect(st.type).toBe('other');
    expect(st.mode & fsc.S_IFMT).toBe(fsc.S_IFCHR);
    expect(st.mode & 0o7777).toBe(0o640);
    expect([st.rdevMajor, st.rdevMinor]).toEqual([1, 3]);
    expect(st.rdev).toBe(Number(lstatSync(path.join(rootDir, 'null')).rdev));
  });
});

describe('mknod', () => {
  it('makes a FIFO (no privilege needed) with the given permission bits', async () => {
    const before = process.umask(0);
    try {
      await root.mknod('sub/fifo', 'fifo', 0o604);
    } finally {
      process.umask(before);
    }
    const st = lstatSync(path.join(rootDir, 'sub/fifo'));
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o604);
  });

  itNeeds(['root'], 'makes a block device', async () => {
    await root.mknod('blk', 'block', 0o600, 7, 200);
    const st = await root.lstat('blk');
    expect(st.mode & fsc.S_IFMT).toBe(fsc.S_IFBLK);
    expect([st.rdevMajor, st.rdevMinor]).toEqual([7, 200]);
  });

  it('refuses other kinds, an existing name and a parent outside', async () => {
    expect(await native.fsMknod(root.fd, 'reg', fsc.S_IFREG | 0o644, 0, 0)).toBe(-22); // EINVAL
    expect(await native.fsMknod(root.fd, 'sock', fsc.S_IFSOCK | 0o644, 0, 0)).toBe(-22);
    expect((await rejection(root.mknod('file.txt', 'fifo', 0o644))).code).toBe('EEXIST');
    const err = await rejection(root.mknod('link-out/fifo', 'fifo', 0o644));
    expect(err.code).toBe('EXDEV');
    expect(err.path).toBe('/link-out/fifo');
    expect(readdirSync(outsideDir)).toEqual(['secret']);
  });
});

describe('link', () => {
  it('gives a file a second name (one inode)', async () => {
    await root.link('file.txt', 'sub/again');
    const a = lstatSync(path.join(rootDir, 'file.txt'));
    const b = lstatSync(path.join(rootDir, 'sub/again'));
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
  });

  it('links a symlink itself, never its target', async () => {
    await root.link('link-secret', 'sub/link-copy');
    const st = lstatSync(path.join(rootDir, 'sub/link-copy'));
    expect(st.isSymbolicLink()).toBe(true);
    expect(st.ino).toBe(lstatSync(path.join(rootDir, 'link-secret')).ino);
    expect(statSync(path.join(outsideDir, 'secret')).nlink).toBe(1);
  });

  it('neither end may be outside the root', async () => {
    const out = await rejection(root.link('link-out/secret', 'stolen'));
    expect(out.code).toBe('EXDEV');
    expect(out.path).toBe('/link-out/secret');
    const into = await rejection(root.link('file.txt', 'link-out/planted'));
    expect(into.code).toBe('EXDEV');
    expect((into as SystemError & { dest: string }).dest).toBe('/link-out/planted');
    expect(readdirSync(outsideDir)).toEqual(['secret']);
    expect((await rejection(root.link('file.txt', '../x'))).code).toBe('EXDEV');
  });
});

describe('lchown, lchmod, lutimesNs act on the entry itself', () => {
  itNeeds(['root'], 'lchown of a symlink changes the link, not its target', async () => {
    await root.lchown('link-secret', 1234, 2345);
    const link = lstatSync(path.join(rootDir, 'link-secret'));
    expect([link.uid, link.gid]).toEqual([1234, 2345]);
    expect(statSync(path.join(outsideDir, 'secret')).uid).toBe(0);
    await root.lchown('file.txt', 1234, -1);
    const file = lstatSync(path.join(rootDir, 'file.txt'));
    expect([file.uid, file.gid]).toEqual([1234, 0]);
    await root.lchown('', 42, 43);
    expect(lstatSync(rootDir).uid).toBe(42);
    expect((await rejection(root.lchown('link-out/secret', 1, 1))).code).toBe('EXDEV');
  });

  it('lchmod sets every bit (0000, 4755, 1777) and refuses a symlink', async () => {
    for (const mode of [0o000, 0o4755, 0o2755, 0o600]) {
      await root.lchmod('file.txt', mode);
      expect(lstatSync(path.join(rootDir, 'file.txt')).mode & 0o7777).toBe(mode);
    }
    await root.lchmod('sub', 0o1777);
    expect(lstatSync(path.join(rootDir, 'sub')).mode & 0o7777).toBe(0o1777);
    const before = statSync(path.join(outsideDir, 'secret')).mode;
    expect((await rejection(root.lchmod('link-secret', 0o777))).code).toBe('ENOTSUP');
    expect(statSync(path.join(outsideDir, 'secret')).mode).toBe(before);
    expect((await rejection(root.lchmod('link-out/secret', 0o777))).code).toBe('EXDEV');
  });

  it('lutimesNs keeps nanoseconds, on a file and on a symlink itself', async () => {
    const mtime = 1_700_000_000_123_456_789n;
    const atime = 1_600_000_000_987_654_321n;
    await root.lutimesNs('file.txt', atime, mtime);
    const st = lstatSync(path.join(rootDir, 'file.txt'), { bigint: true });
    expect(st.mtimeNs).toBe(mtime);
    expect(st.atimeNs).toBe(atime);
    const target = statSync(path.join(outsideDir, 'secret'), { bigint: true }).mtimeNs;
    await root.lutimesNs('link-secret', null, 1_000_000_001n);
    expect(lstatSync(path.join(rootDir, 'link-secret'), { bigint: true }).mtimeNs).toBe(1_000_000_001n);
    expect(statSync(path.join(outsideDir, 'secret'), { bigint: true }).mtimeNs).toBe(target);
    // Before 1970: -1.5 s is -2 s + 0.5e9 ns.
    await root.lutimesNs('file.txt', null, -1_500_000_000n);
    expect(lstatSync(path.join(rootDir, 'file.txt'), { bigint: true }).mtimeNs).toBe(-1_500_000_000n);
  });

  it("'' is the root directory itself: its times, mode and attributes (the archive's ./ member)", async () => {
    await root.lutimesNs('', null, 1_650_000_000_000_000_001n);
    await root.lchmod('', 0o2751);
    await root.setXattr('', 'user.top', Buffer.from('here'));
    const st = lstatSync(rootDir, { bigint: true });
    expect(st.mtimeNs).toBe(1_650_000_000_000_000_001n);
    expect(Number(st.mode) & 0o7777).toBe(0o2751);
    expect(await root.readXattrs('')).toEqual([{ name: 'user.top', value: Buffer.from('here') }]);
  });
});

describe('extended attributes', () => {
  itNeeds(
    ['setfattr'],
    'set, list and get user.* on a file and a directory; binary values kept',
    async () => {
      const value = Buffer.from([0, 1, 2, 255, 0, 10]);
      await root.setXattr('file.txt', 'user.b', value);
      await root.setXattr('file.txt', 'user.a', Buffer.from('x'));
      await root.setXattr('sub', 'user.dir', Buffer.alloc(0));
      expect((await root.listXattrs('file.txt')).sort()).toEqual(['user.a', 'user.b']);
      expect(await root.getXattr('file.txt', 'user.b')).toEqual(value);
      expect(await root.getXattr('file.txt', 'user.none')).toBeUndefined();
      expect(await root.readXattrs('sub')).toEqual([{ name: 'user.dir', value: Buffer.alloc(0) }]);
      expect(getfattr(path.join(rootDir, 'file.txt'))).toContain('user.b=0x000102ff000a');
    },
  );

  it('readXattrs gives names in byte order; freadXattrs reads an open fd', async () => {
    for (const name of ['user.z', 'user.B', 'user.a', 'user.Z1'])
      await root.setXattr('file.txt', name, Buffer.from(name));
    const names = (await root.readXattrs('file.txt')).map((x) => x.name);
    expect(names).toEqual(['user.B', 'user.Z1', 'user.a', 'user.z']);
    const fd = await root.open('file.txt', fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      expect((await root.freadXattrs(fd, 'file.txt')).map((x) => x.name)).toEqual(names);
    } finally {
      await closeFd(fd);
    }
  });

  it('create and replace flags', async () => {
    await root.setXattr('file.txt', 'user.k', Buffer.from('1'), { create: true });
    expect(
      (await rejection(root.setXattr('file.txt', 'user.k', Buffer.from('2'), { create: true }))).code,
    ).toBe('EEXIST');
    expect(
      (await rejection(root.setXattr('file.txt', 'user.new', Buffer.from('2'), { replace: true }))).code,
    ).toBe('ENODATA');
  });

  itNeeds(['root', 'setfattr'], "a symlink's own attributes, never its target's", async () => {
    await root.setXattr('link-secret', 'trusted.mine', Buffer.from('link'));
    expect(await root.listXattrs('link-secret')).toContain('trusted.mine');
    expect(await root.getXattr('link-secret', 'trusted.mine')).toEqual(Buffer.from('link'));
    expect(getfattr(path.join(outsideDir, 'secret'))).not.toContain('trusted.mine');
    // user.* is not allowed on symlinks (xattr(7)): the kernel says so, nothing is followed.
    expect((await rejection(root.setXattr('link-secret', 'user.x', Buffer.from('1')))).code).toBe('EPERM');
  });

  itNeeds(['root', 'setcap'], 'security.capability round-trips as bytes (what setcap writes)', async () => {
    execFileSync('setcap', ['cap_net_raw+ep', path.join(rootDir, 'file.txt')]);
    const cap = await root.getXattr('file.txt', 'security.capability');
    expect(cap).toBeInstanceOf(Buffer);
    writeFileSync(path.join(rootDir, 'copy'), 'x');
    await root.setXattr('copy', 'security.capability', cap!);
    expect(execFileSync('getcap', [path.join(rootDir, 'copy')], { encoding: 'utf8' })).toContain(
      'cap_net_raw',
    );
  });

  itNeeds(['setfattr'], 'nothing outside the root: EXDEV through a link that leads out', async () => {
    for (const call of [
      () => root.listXattrs('link-out/secret'),
      () => root.getXattr('link-out/secret', 'user.a'),
      () => root.setXattr('link-out/secret', 'user.a', Buffer.from('1')),
    ]) {
      const err = await rejection(call());
      expect(err.code).toBe('EXDEV');
      expect(err.path).toBe('/link-out/secret');
    }
    expect(getfattr(path.join(outsideDir, 'secret'))).toBe('');
  });

  it('names and sizes are bounded', async () => {
    expect(await native.fsGetXattr(root.fd, 'file.txt', '')).toBe(-22);
    expect(await native.fsSetXattr(root.fd, 'file.txt', 'user.big', Buffer.alloc(65537), 0)).toBe(-22);
    expect(await native.fsSetXattr(root.fd, 'file.txt', 'user.a\0b', Buffer.from('1'), 0)).toBe(-22);
  });
});

describe('nextData / nextHole (SEEK_DATA, SEEK_HOLE)', () => {
  it('maps a sparse file without reading it', async () => {
    const MiB = 1024 * 1024;
    const host = path.join(rootDir, 'sparse');
    const hfd = openSync(host, 'w');
    ftruncateSync(hfd, 64 * MiB);
    writeSync(hfd, Buffer.alloc(64 * 1024, 7), 0, 64 * 1024, 8 * MiB);
    closeSync(hfd);
    const fd = await root.open('sparse', fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      const st = await root.fstat(fd, 'sparse');
      expect(st.blocks * 512).toBeLessThan(st.size);
      expect(await root.nextData(fd, 0)).toBe(8 * MiB);
      expect(await root.nextHole(fd, 8 * MiB)).toBe(8 * MiB + 64 * 1024);
      expect(await root.nextData(fd, 8 * MiB + 64 * 1024)).toBeNull();
      expect(await root.nextHole(fd, 0)).toBe(0);
      expect(await root.nextHole(fd, 64 * MiB)).toBeNull();
      expect(await native.fsSeek(fd, 0, 0)).toBe(-22); // SEEK_SET: not this call's job
    } finally {
      await closeFd(fd);
    }
  });
});

describe('resources', () => {
  itNeeds(['root'], 'every call closes what it opened, on success and on failure', async () => {
    linkSync(path.join(rootDir, 'file.txt'), path.join(rootDir, 'hard'));
    const run = async (): Promise<void> => {
      await root.setXattr('file.txt', 'user.a', Buffer.from('1'));
      await root.readXattrs('file.txt');
      await root.readXattrs('link-secret');
      await root.lchmod('file.txt', 0o644);
      await root.lchown('link-in', 0, 0);
      await root.lutimesNs('link-in', null, 1n);
      await root.mknod('f', 'fifo', 0o600);
      await root.link('f', 'g');
      await rejection(root.link('f', 'g'));
      await rejection(root.listXattrs('link-out/secret'));
      await rejection(root.lchmod('link-in', 0));
      await root.unlink('f');
      await root.unlink('g');
    };
    await run();
    const before = fdCount();
    for (let i = 0; i < 20; i++) await run();
    expect(fdCount()).toBe(before);
  });
});

describe('names that are not UTF-8 (native/name_codec.h)', () => {
  it('are listed, stat-ed, opened and read back as their bytes', async () => {
    const bad = Buffer.from([0x62, 0x61, 0x64, 0xff]); // "bad\xff"
    const inner = Buffer.from([0x69, 0x6e, 0xfe, 0x2e, 0x74]); // "in\xfe.t"
    const dirPath = Buffer.concat([Buffer.from(`${rootDir}/`), bad]);
    mkdirSync(dirPath);
    writeFileSync(Buffer.concat([dirPath, Buffer.from('/'), inner]), 'payload');
    symlinkSync(
      Buffer.concat([Buffer.from('target-'), Buffer.from([0xe9])]),
      Buffer.concat([dirPath, Buffer.from('/link')]),
    );
    const names = [];
    for await (const e of root.readdir('')) names.push(e.name);
    const dirName = bytesToName(bad);
    expect(dirName).toBe('bad\udcff');
    expect(names).toContain(dirName);
    const inside = [];
    for await (const e of root.readdir(dirName)) inside.push(e.name);
    expect(inside.sort()).toEqual(['in\udcfe.t', 'link']);
    const st = await root.lstat(`${dirName}/in\udcfe.t`);
    expect(st.size).toBe(7);
    expect(await root.readlink(`${dirName}/link`)).toBe('target-\udce9');
    const fd = await root.open(`${dirName}/in\udcfe.t`, fsc.O_RDONLY);
    await closeFd(fd);
    // A name made here lands as the bytes it stands for.
    await root.mkdir(`${dirName}/new\udc80`);
    expect(
      readdirSync(dirPath, { encoding: 'buffer' }).some((n) =>
        n.equals(Buffer.from([0x6e, 0x65, 0x77, 0x80])),
      ),
    ).toBe(true);
  });
});
