import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  readlinkSync,
  statSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { constants as fsc } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { constants as osConstants, tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { native } from '../../native/binding.js';
import type { SystemError } from '../../native/binding.js';
import { BeneathDir, BeneathRoot, TMP_PREFIX, closeFd } from '../../native/beneath.js';
import { fsError } from '../../core/errors.js';
import { normalizeRel, TEMP_NAME_PREFIX } from '../../core/rel-path.js';
import { itNeeds } from '../helpers/requirements.js';

let base: string;
let rootDir: string;
let outsideDir: string;
let root: BeneathRoot;

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

async function readAll(fd: number): Promise<string> {
  const buf = Buffer.alloc(4096);
  const n = readSync(fd, buf, 0, buf.length, 0);
  await closeFd(fd);
  return buf.subarray(0, n).toString();
}

async function rejection(p: Promise<unknown>): Promise<SystemError> {
  try {
    await p;
  } catch (err) {
    return err as SystemError;
  }
  throw new Error('expected a rejection');
}

beforeAll(() => {
  base = mkdtempSync(path.join(tmpdir(), 'ng-beneath-'));
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
  writeFileSync(path.join(rootDir, 'sub', 'inner.txt'), 'inner');
  symlinkSync('sub/inner.txt', path.join(rootDir, 'link-in'));
  symlinkSync('sub', path.join(rootDir, 'link-dir-in'));
  symlinkSync('../file.txt', path.join(rootDir, 'sub', 'link-up-in'));
  symlinkSync('/etc', path.join(rootDir, 'link-etc'));
  symlinkSync('../outside', path.join(rootDir, 'link-out'));
  symlinkSync('../../../../../../../../..', path.join(rootDir, 'link-dotdot'));
  symlinkSync(path.join(rootDir, 'file.txt'), path.join(rootDir, 'link-abs'));
  root = await BeneathRoot.open(rootDir);
});

afterEach(async () => {
  await root.close();
  rmSync(path.dirname(rootDir), { recursive: true, force: true });
});

describe('open and stat beneath the root', () => {
  it('opens and reads files inside, with or without a leading slash', async () => {
    expect(await readAll(await root.open('file.txt', fsc.O_RDONLY))).toBe('hello');
    expect(await readAll(await root.open('/sub/inner.txt', fsc.O_RDONLY))).toBe('inner');
    expect(await readAll(await root.open('sub/../file.txt', fsc.O_RDONLY))).toBe('hello');
  });

  it('follows symlinks that stay inside the root', async () => {
    expect(await readAll(await root.open('link-in', fsc.O_RDONLY))).toBe('inner');
    expect(await readAll(await root.open('link-dir-in/inner.txt', fsc.O_RDONLY))).toBe('inner');
    expect(await readAll(await root.open('sub/link-up-in', fsc.O_RDONLY))).toBe('hello');
    const st = await root.stat('link-in');
    expect(st.type).toBe('file');
    expect(st.size).toBe(5);
  });

  it.each([
    ['link-etc/passwd'],
    ['link-etc'],
    ['link-out/secret'],
    ['link-dotdot/etc/passwd'],
    ['link-abs'],
    ['link-dir-in/../link-out/secret'],
  ])('refuses %s, which leads outside, with EXDEV', async (rel) => {
    const err = await rejection(root.open(rel, fsc.O_RDONLY));
    expect(err.code).toBe('EXDEV');
    expect(err.syscall).toBe('open');
    // The path is shown normalised ('..' resolved lexically), as a URL parser would.
    expect(err.path).toBe(`/${normalizeRel(rel)!}`);
    expect(err.message).not.toContain(rootDir);
    expect(fsError(err, `/${rel}`).code).toBe('NG_ERR_OUTSIDE_ROOT');
    expect((await rejection(root.stat(rel))).code).toBe('EXDEV');
  });

  it('never reaches outside while a directory is swapped for a symlink leading out', async () => {
    mkdirSync(path.join(rootDir, 'real'));
    writeFileSync(path.join(rootDir, 'real', 'secret'), 'INSIDE');
    symlinkSync('real', path.join(rootDir, 'swap'));
    symlinkSync('../outside', path.join(rootDir, 'swap-out'));
    symlinkSync('real', path.join(rootDir, 'swap-in'));
    // Another process flips `swap` between the two (rename(2) over a symlink is atomic).
    const flipper = spawn(
      'sh',
      [
        '-c',
        'cd "$1" && while :; do cp -P swap-out s1 && mv -T s1 swap; cp -P swap-in s2 && mv -T s2 swap; done',
        'sh',
        rootDir,
      ],
      { detached: true },
    );
    const seen = new Set<string>();
    try {
      for (let round = 0; round < 40; round++) {
        await Promise.all(
          Array.from({ length: 25 }, async () => {
            try {
              seen.add(await readAll(await root.open('swap/secret', fsc.O_RDONLY)));
            } catch (err) {
              seen.add((err as SystemError).code);
            }
          }),
        );
      }
    } finally {
      // The whole process group: a cp or mv the shell started would outlive it and write into
      // the directory that afterEach is removing.
      const exited = new Promise((resolve) => flipper.once('exit', resolve));
      process.kill(-flipper.pid!, 'SIGKILL');
      await exited;
    }
    expect(seen.has('SECRET')).toBe(false);
    for (const v of seen) expect(['INSIDE', 'EXDEV', 'ENOENT']).toContain(v);
  });

  it('refuses /proc magic links with ELOOP', async () => {
    const proc = await BeneathRoot.open('/proc/self');
    try {
      const err = await rejection(proc.open('root/etc/passwd', fsc.O_RDONLY));
      expect(err.code).toBe('ELOOP');
      expect(fsError(err, '/root/etc/passwd').code).toBe('NG_ERR_OUTSIDE_ROOT');
    } finally {
      await proc.close();
    }
  });

  it('stat types: file, dir, symlink, and other for a fifo or a socket', async () => {
    execFileSync('mkfifo', [path.join(rootDir, 'fifo')]);
    expect((await root.lstat('file.txt')).type).toBe('file');
    expect((await root.lstat('sub')).type).toBe('dir');
    expect((await root.lstat('link-in')).type).toBe('symlink');
    expect((await root.lstat('fifo')).type).toBe('other');
    const sock = native.socket();
    expect(native.bind(sock, Buffer.from(path.join(rootDir, 'sock')))).toBe(0);
    try {
      expect((await root.lstat('sock')).type).toBe('other');
    } finally {
      native.close(sock);
    }
  });

  it('lstat reports a symlink leading out as a symlink without following it', async () => {
    const st = await root.lstat('link-etc');
    expect(st.type).toBe('symlink');
    expect(await root.readlink('link-etc')).toBe('/etc');
    expect((await root.stat('')).type).toBe('dir');
    expect(typeof (await root.stat('file.txt')).mtimeNs).toBe('bigint');
  });

  it('rejects a .. that would leave the root before any syscall', async () => {
    for (const rel of ['..', '../outside/secret', 'sub/../../outside/secret', '/../etc/passwd']) {
      const err = await rejection(root.open(rel, fsc.O_RDONLY));
      expect(err.code).toBe('EXDEV');
    }
    // The same lexical rule (core/rel-path.ts) lets a '..' that stays inside through.
    expect((await root.stat('/sub/../sub//./')).type).toBe('dir');
  });

  it('rejects NUL bytes with EINVAL, in JS and at the native boundary', async () => {
    const err = await rejection(root.open('file.txt\0.jpg', fsc.O_RDONLY));
    expect(err.code).toBe('EINVAL');
    expect(await native.fsOpen(root.fd, 'file.txt\0.jpg', fsc.O_RDONLY, 0)).toBe(-22);
    expect(await native.fsMkdir(root.fd, 'x\0y', 0o755)).toBe(-22);
    expect(existsSync(path.join(rootDir, 'x'))).toBe(false);
  });

  it('throws TypeError Usage for wrong argument types', () => {
    const loose = native as unknown as Record<string, (...args: unknown[]) => unknown>;
    expect(() => loose.fsOpen?.('x', 'y', 0, 0)).toThrow(/^Usage: fsOpen/);
    expect(() => loose.fsStat?.(root.fd, 'x')).toThrow(TypeError);
  });

  it('reports ENOENT with the client-visible path', async () => {
    const err = await rejection(root.stat('/nope/x'));
    expect(err).toMatchObject({ code: 'ENOENT', syscall: 'stat', path: '/nope/x', errno: -2 });
    expect(fsError(err, '/nope/x').code).toBe('NG_ERR_NOT_FOUND');
  });
});

describe('directory operations', () => {
  it('mkdir, mkdirp, rmdir, unlink', async () => {
    await root.mkdir('d1');
    expect((await rejection(root.mkdir('d1'))).code).toBe('EEXIST');
    expect((await rejection(root.mkdir('missing/d'))).code).toBe('ENOENT');
    expect(await root.mkdirp('a/b/c')).toBe(true);
    expect(await root.mkdirp('/a/b/c/')).toBe(false);
    expect(await root.mkdirp('link-dir-in')).toBe(false);
    expect((await rejection(root.mkdirp('file.txt/x'))).code).toBe('ENOTDIR');
    expect((await rejection(root.mkdirp('file.txt'))).code).toBe('EEXIST');
    expect((await rejection(root.mkdirp('link-out/evil'))).code).toBe('EXDEV');
    expect(existsSync(path.join(outsideDir, 'evil'))).toBe(false);
    expect((await rejection(root.rmdir('a'))).code).toBe('ENOTEMPTY');
    expect((await rejection(root.unlink('a/b'))).code).toBe('EISDIR');
    await root.rmdir('a/b/c');
    expect(existsSync(path.join(rootDir, 'a/b/c'))).toBe(false);
    await root.unlink('file.txt');
    expect(existsSync(path.join(rootDir, 'file.txt'))).toBe(false);
    // unlink removes the symlink itself, never its target.
    await root.unlink('link-out');
    expect(existsSync(path.join(outsideDir, 'secret'))).toBe(true);
    expect((await rejection(root.rmdir('/'))).code).toBe('EBUSY');
  });

  it('rename, with and without noReplace', async () => {
    await root.rename('file.txt', 'sub/moved.txt');
    expect(readFileSync(path.join(rootDir, 'sub/moved.txt'), 'utf8')).toBe('hello');
    writeFileSync(path.join(rootDir, 'other'), 'other');
    const err = await rejection(root.rename('other', 'sub/moved.txt', { noReplace: true }));
    expect(err).toMatchObject({ code: 'EEXIST', path: '/other', dest: '/sub/moved.txt' });
    await root.rename('other', 'sub/moved.txt');
    expect(readFileSync(path.join(rootDir, 'sub/moved.txt'), 'utf8')).toBe('other');
    expect((await rejection(root.rename('sub/moved.txt', 'link-out/stolen'))).code).toBe('EXDEV');
    expect(existsSync(path.join(outsideDir, 'stolen'))).toBe(false);
  });

  it('reads 10,000 entries in bounded batches', async () => {
    await root.mkdir('big');
    const big = path.join(rootDir, 'big');
    // Hard links to one file: one syscall per entry keeps the setup fast.
    writeFileSync(path.join(big, 'entry-0'), '');
    for (let i = 1; i < 10_000; i++) linkSync(path.join(big, 'entry-0'), path.join(big, `entry-${i}`));
    mkdirSync(path.join(big, 'adir'));
    symlinkSync('/etc', path.join(big, 'alink'));
    const seen = new Map<string, string>();
    let batches = 0;
    for await (const batch of root.readdirBatches('big', { bufferBytes: 16 * 1024 })) {
      batches++;
      // 16 KiB of records of at least 24 bytes each.
      expect(batch.length).toBeLessThanOrEqual((16 * 1024) / 24);
      for (const e of batch) {
        expect(seen.has(e.name)).toBe(false);
        seen.set(e.name, e.type);
      }
    }
    expect(batches).toBeGreaterThan(10);
    expect(seen.size).toBe(10_002);
    expect(seen.get('entry-9999')).toBe('file');
    expect(seen.get('adir')).toBe('dir');
    expect(seen.get('alink')).toBe('symlink');
    expect(seen.has('.')).toBe(false);
    let count = 0;
    for await (const e of root.readdir('/')) if (e.name) count++;
    expect(count).toBe(readdirSync(rootDir).length);
  });

  it('rm -r never follows symlinks out of (or inside) the root', async () => {
    await root.mkdirp('tree/a/b');
    writeFileSync(path.join(rootDir, 'tree/a/b/f'), 'x');
    symlinkSync('../../outside', path.join(rootDir, 'tree/rel-out'));
    symlinkSync(outsideDir, path.join(rootDir, 'tree/a/abs-out'));
    symlinkSync('../sub', path.join(rootDir, 'tree/a/in'));
    expect((await rejection(root.rm('tree'))).code).toBe('ENOTEMPTY');
    await root.rm('tree', { recursive: true });
    expect(existsSync(path.join(rootDir, 'tree'))).toBe(false);
    expect(readFileSync(path.join(outsideDir, 'secret'), 'utf8')).toBe('SECRET');
    expect(existsSync(path.join(rootDir, 'sub/inner.txt'))).toBe(true);
    // A symlink to a directory is removed as a link.
    await root.rm('link-dir-in', { recursive: true });
    expect(existsSync(path.join(rootDir, 'sub/inner.txt'))).toBe(true);
    await root.rm('link-out', { recursive: true });
    expect(existsSync(path.join(outsideDir, 'secret'))).toBe(true);
    // Through a symlink leading out, nothing is reached.
    symlinkSync('../outside', path.join(rootDir, 'link-out'));
    expect((await rejection(root.rm('link-out/secret', { recursive: true }))).code).toBe('EXDEV');
    expect(existsSync(path.join(outsideDir, 'secret'))).toBe(true);
    await root.rm('missing', { force: true });
    expect((await rejection(root.rm('missing'))).code).toBe('ENOENT');
    expect((await rejection(root.rm('/', { recursive: true }))).code).toBe('EBUSY');
  });
});

describe('atomic uploads', () => {
  it('writes an O_TMPFILE and links it in (new, then replace)', async () => {
    const fd = await root.openTmpfile('sub');
    writeSync(fd, 'first');
    await root.fsync(fd);
    await root.linkTmpfile(fd, 'sub/up.txt');
    await closeFd(fd);
    expect(readFileSync(path.join(rootDir, 'sub/up.txt'), 'utf8')).toBe('first');

    const fd2 = await root.openTmpfile('/sub/');
    writeSync(fd2, 'second');
    fsyncSync(fd2);
    expect((await rejection(root.linkTmpfile(fd2, 'sub/up.txt'))).code).toBe('EEXIST');
    await root.linkTmpfile(fd2, 'sub/up.txt', { replace: true });
    await closeFd(fd2);
    await root.fsyncDir('sub');
    await root.fsyncDir('');
    expect(readFileSync(path.join(rootDir, 'sub/up.txt'), 'utf8')).toBe('second');
    expect(readdirSync(path.join(rootDir, 'sub')).filter((n) => n.startsWith(TMP_PREFIX))).toEqual([]);
  });

  it('starts the writeback of a file being written (sync_file_range), a hint that changes nothing', async () => {
    const fd = await root.openTmpfile('sub');
    writeSync(fd, Buffer.alloc(1 << 20, 7));
    await root.startWriteback(fd, 0, 1 << 20);
    expect(await native.fsStartWriteback(fd, -1, 10)).toBe(-osConstants.errno.EINVAL);
    await root.linkTmpfile(fd, 'sub/wb.bin');
    await closeFd(fd);
    expect(readFileSync(path.join(rootDir, 'sub/wb.bin'))).toEqual(Buffer.alloc(1 << 20, 7));
    expect(() => (native.fsStartWriteback as (...a: unknown[]) => unknown)(fd)).toThrow(
      /Usage: fsStartWriteback/,
    );
  });

  it('an unlinked O_TMPFILE leaves nothing behind; linking outside is refused', async () => {
    const before = readdirSync(path.join(rootDir, 'sub')).sort();
    const fd = await root.openTmpfile('sub');
    writeSync(fd, 'data');
    expect((await rejection(root.linkTmpfile(fd, 'link-out/planted'))).code).toBe('EXDEV');
    expect((await rejection(root.openTmpfile('link-out'))).code).toBe('EXDEV');
    await closeFd(fd);
    expect(readdirSync(path.join(rootDir, 'sub')).sort()).toEqual(before);
    expect(existsSync(path.join(outsideDir, 'planted'))).toBe(false);
  });

  it('replacing a directory with a file fails with EISDIR and leaves no temporary name', async () => {
    await root.mkdir('sub/adir');
    const fd = await root.openTmpfile('sub');
    try {
      expect((await rejection(root.linkTmpfile(fd, 'sub/adir', { replace: true }))).code).toBe('EISDIR');
    } finally {
      await closeFd(fd);
    }
    expect(readdirSync(path.join(rootDir, 'sub')).filter((n) => n.startsWith(TMP_PREFIX))).toEqual([]);
  });

  it('offers named temporary files as the fallback', async () => {
    const { fd, rel } = await root.openNamedTmpfile('sub');
    expect(rel).toMatch(/^sub\/\.nullgate-tmp-[0-9a-f]{16}$/);
    writeSync(fd, 'named');
    await closeFd(fd);
    await root.rename(rel, 'sub/named.txt');
    expect(readFileSync(path.join(rootDir, 'sub/named.txt'), 'utf8')).toBe('named');
  });
});

describe('symlinks and link times (symlinkat, utimensat AT_SYMLINK_NOFOLLOW)', () => {
  it('creates a symlink in a parent opened beneath the root, its target stored as is', async () => {
    await root.symlink('../file.txt', 'sub/made');
    expect(readlinkSync(path.join(rootDir, 'sub/made'))).toBe('../file.txt');
    // Any target text is stored, never resolved (the archive routes judge targets themselves).
    await root.symlink('/etc/passwd', 'sub/abs');
    expect(readlinkSync(path.join(rootDir, 'sub/abs'))).toBe('/etc/passwd');
    expect((await rejection(root.symlink('x', 'sub/made'))).code).toBe('EEXIST');
    expect((await rejection(root.symlink('x', 'link-out/planted'))).code).toBe('EXDEV');
    expect((await rejection(root.symlink('x', 'link-dotdot/planted'))).code).toBe('EXDEV');
    expect(existsSync(path.join(outsideDir, 'planted'))).toBe(false);
    expect((await rejection(root.symlink('', 'sub/empty'))).code).toBe('EINVAL');
    expect((await rejection(root.symlink('a\0b', 'sub/nul'))).code).toBe('EINVAL');
    expect(await native.fsSymlink(root.fd, 'x', 'sub/../../escape')).toBe(-osErrno('EXDEV'));
    expect(() => (native.fsSymlink as (...a: unknown[]) => unknown)(root.fd, 1, 'x')).toThrow(
      /Usage: fsSymlink/,
    );
  });

  it('sets the times of a symlink itself, never of what it points at', async () => {
    const targetMtime = statSync(path.join(rootDir, 'sub/inner.txt')).mtimeMs;
    const when = new Date('2021-06-01T12:00:00.250Z');
    await root.lutimes('link-in', when, when);
    expect(lstatSync(path.join(rootDir, 'link-in')).mtimeMs).toBe(when.getTime());
    expect(statSync(path.join(rootDir, 'sub/inner.txt')).mtimeMs).toBe(targetMtime);
    // A link leading out is not followed either: its own time changes, the outside file's not.
    const outside = statSync(path.join(outsideDir, 'secret')).mtimeMs;
    await root.lutimes('link-out', when, when);
    expect(statSync(path.join(outsideDir, 'secret')).mtimeMs).toBe(outside);
    expect((await rejection(root.lutimes('link-out/secret', when, when))).code).toBe('EXDEV');
    expect((await rejection(root.lutimes('nope', when, when))).code).toBe('ENOENT');
  });
});

function osErrno(code: string): number {
  const n = (osConstants.errno as Record<string, number>)[code];
  if (n === undefined) throw new Error(code);
  return n;
}

describe('resolving links, mounts, and the temporaries sweep', () => {
  it('resolveLinks walks like the kernel: links are resolved where they are, not lexically', async () => {
    mkdirSync(path.join(rootDir, 'sub/nest'));
    symlinkSync('sub/nest', path.join(rootDir, 'via'));
    symlinkSync('../inner.txt', path.join(rootDir, 'sub/nest/back'));
    symlinkSync('sub/missing/x', path.join(rootDir, 'dangling'));
    symlinkSync('loop2', path.join(rootDir, 'loop1'));
    symlinkSync('loop1', path.join(rootDir, 'loop2'));
    expect(await root.resolveLinks('link-in')).toBe('sub/inner.txt');
    // via/back → sub/nest/../inner.txt: `..` applies in sub/nest, where the link is.
    expect(await root.resolveLinks('via/back')).toBe('sub/inner.txt');
    expect(await root.resolveLinks('sub/link-up-in')).toBe('file.txt');
    expect(await root.resolveLinks('dangling')).toBe('sub/missing/x');
    expect(await root.resolveLinks('file.txt')).toBe('file.txt');
    expect((await rejection(root.resolveLinks('link-out'))).code).toBe('EXDEV');
    expect((await rejection(root.resolveLinks('link-abs'))).code).toBe('EXDEV');
    expect((await rejection(root.resolveLinks('link-dotdot'))).code).toBe('EXDEV');
    expect((await rejection(root.resolveLinks('loop1'))).code).toBe('ELOOP');
  });

  it('nearestExisting finds the closest existing ancestor (a file in the way included)', async () => {
    expect((await root.nearestExisting('sub/no/such')).rel).toBe('sub');
    expect((await root.nearestExisting('sub/inner.txt/x/y')).stat.type).toBe('file');
    expect((await root.nearestExisting('no')).rel).toBe('');
    expect((await root.nearestExisting('link-dir-in/new')).rel).toBe('link-dir-in');
    expect((await rejection(root.nearestExisting('link-out/new'))).code).toBe('EXDEV');
  });

  it('temporaries go to the top of the root when it is on the same mount', async () => {
    expect(await root.sameMount('', 'sub')).toBe(true);
    expect(await root.tempDirFor('sub')).toBe('');
    expect(TEMP_NAME_PREFIX).toBe(TMP_PREFIX);
    // The replace link's hidden name never stays anywhere.
    const fd = await root.openTmpfile('sub');
    writeSync(fd, 'x');
    await root.linkTmpfile(fd, 'sub/inner.txt', { replace: true });
    await closeFd(fd);
    for (const dir of ['', 'sub']) {
      expect(readdirSync(path.join(rootDir, dir)).filter((n) => n.startsWith(TMP_PREFIX))).toEqual([]);
    }
  });

  it('sweepTemporaries removes stale ones at the top of the root, and only those', async () => {
    writeFileSync(path.join(rootDir, `${TMP_PREFIX}0000000000000001`), 'partial upload');
    mkdirSync(path.join(rootDir, `${TMP_PREFIX}0000000000000002/deep`), { recursive: true });
    writeFileSync(path.join(rootDir, `${TMP_PREFIX}0000000000000002/deep/z`), 'staged');
    // A symlink is removed, never followed.
    symlinkSync('../outside', path.join(rootDir, `${TMP_PREFIX}0000000000000003`));
    // Deeper ones are not looked for (the sweep reads the root directory only).
    writeFileSync(path.join(rootDir, `sub/${TMP_PREFIX}0000000000000004`), 'beside');
    // One in use by a live server (this process) is locked, and left alone.
    const live = await root.openNamedTmpfile('');
    const removed = await root.sweepTemporaries();
    expect(removed.sort()).toEqual(['1', '2', '3'].map((n) => `${TMP_PREFIX}${n.padStart(16, '0')}`));
    const top = readdirSync(rootDir).filter((n) => n.startsWith(TMP_PREFIX));
    expect(top).toEqual([live.rel]);
    expect(readFileSync(path.join(outsideDir, 'secret'), 'utf8')).toBe('SECRET');
    expect(existsSync(path.join(rootDir, `sub/${TMP_PREFIX}0000000000000004`))).toBe(true);
    await closeFd(live.fd);
    expect(await root.sweepTemporaries()).toEqual([live.rel]);
    expect(readdirSync(rootDir).filter((n) => n.startsWith(TMP_PREFIX))).toEqual([]);
  });

  it('named temporaries and O_TMPFILEs are flocked while open', async () => {
    const { fd, rel } = await root.openNamedTmpfile('');
    const other = openSync(path.join(rootDir, rel), 'r');
    try {
      expect(native.fsTryLock(other)).toBe(-osErrno('EWOULDBLOCK'));
      await closeFd(fd);
      expect(native.fsTryLock(other)).toBe(0);
    } finally {
      closeSync(other);
    }
    expect(native.fsTryLock(-1)).toBe(-osErrno('EBADF'));
  });

  itNeeds(
    ['root', 'mount'],
    'a directory on another mount keeps its temporaries beside the target',
    async () => {
      const mnt = path.join(rootDir, 'mnt');
      mkdirSync(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'ng-test-beneath', mnt]);
      try {
        expect(await root.sameMount('', 'mnt')).toBe(false);
        expect(await root.tempDirFor('mnt')).toBe('mnt');
        writeFileSync(path.join(mnt, 'f'), 'old');
        // The replace link cannot be made at the root (EXDEV): it is made beside the target.
        const fd = await root.openTmpfile('mnt');
        writeSync(fd, 'new');
        await root.linkTmpfile(fd, 'mnt/f', { replace: true });
        await closeFd(fd);
        expect(readFileSync(path.join(mnt, 'f'), 'utf8')).toBe('new');
        expect(readdirSync(mnt)).toEqual(['f']);
      } finally {
        execFileSync('umount', [mnt]);
      }
    },
  );
});

describe('resources', () => {
  it('leaks no fds over 200 operations, failing ones included', async () => {
    // Warm up lazily opened handles (thread pool, promisified fs) before counting.
    await root.stat('file.txt');
    await closeFd(await root.open('file.txt', fsc.O_RDONLY));
    const before = fdCount();
    for (let i = 0; i < 200; i++) {
      switch (i % 10) {
        case 0:
          await closeFd(await root.open('link-in', fsc.O_RDONLY));
          break;
        case 1:
          await rejection(root.open('link-out/secret', fsc.O_RDONLY));
          break;
        case 2:
          await rejection(root.stat('nope/nope'));
          break;
        case 3:
          await root.mkdirp(`m${i}/x`);
          await root.rm(`m${i}`, { recursive: true });
          break;
        case 4:
          await rejection(root.rename('nope', 'sub/x'));
          await rejection(root.mkdir('link-out/x'));
          break;
        case 5: {
          const fd = await root.openTmpfile('sub');
          await root.linkTmpfile(fd, 'sub/t', { replace: true });
          await rejection(root.linkTmpfile(fd, 'sub/t'));
          await closeFd(fd);
          break;
        }
        case 6:
          for await (const batch of root.readdirBatches('sub')) expect(batch.length).toBeGreaterThan(0);
          break;
        case 7:
          for await (const e of root.readdir('')) if (e.name === 'sub') break;
          await rejection(root.readdirBatches('link-etc').next());
          break;
        case 8:
          await root.fsyncDir('sub');
          await root.readlink('link-etc');
          await rejection(root.readlink('file.txt'));
          await rejection(root.symlink('x', 'link-out/planted'));
          await root.symlink('x', `sub/l${i}`);
          await root.lutimes(`sub/l${i}`, new Date(0), new Date(0));
          await root.sameMount('', 'sub');
          await rejection(root.resolveLinks('link-out'));
          break;
        default: {
          await rejection(root.rm('link-out/secret', { recursive: true }));
          await rejection(root.unlink('sub'));
          const named = await root.openNamedTmpfile('');
          await closeFd(named.fd);
          await root.sweepTemporaries();
        }
      }
    }
    expect(fdCount()).toBe(before);
    const other = await BeneathRoot.open(rootDir);
    await other.close();
    await other.close();
    expect(fdCount()).toBe(before);
    expect((await rejection(BeneathRoot.open(path.join(rootDir, 'file.txt')))).code).toBe('ENOTDIR');
  });
});

describe('BeneathDir: a walk from open directories, one name at a time', () => {
  it('opens subdirectories from their parent, never through a symlink, nor a file', async () => {
    const top = await BeneathDir.open(root, '');
    try {
      const sub = await top.openDir('sub');
      try {
        expect(sub.rel).toBe('sub');
        expect((await sub.stat()).type).toBe('dir');
        expect((await sub.lstat('link-up-in')).type).toBe('symlink');
        expect(await sub.readlink('link-up-in')).toBe('../file.txt');
        const names: string[] = [];
        for await (const batch of sub.readdirBatches()) names.push(...batch.map((e) => e.name));
        expect(names.sort()).toEqual(['inner.txt', 'link-up-in']);
      } finally {
        await sub.close();
      }
      // O_DIRECTORY | O_NOFOLLOW on a symlink: Linux answers ENOTDIR (ELOOP without O_DIRECTORY).
      expect(['ELOOP', 'ENOTDIR']).toContain((await rejection(top.openDir('link-dir-in'))).code);
      expect(['ELOOP', 'ENOTDIR']).toContain((await rejection(top.openDir('link-out'))).code);
      expect((await rejection(top.openDir('file.txt'))).code).toBe('ENOTDIR');
      const err = await rejection(top.openDir('missing'));
      expect([err.code, err.path]).toEqual(['ENOENT', '/missing']);
    } finally {
      await top.close();
    }
  });

  it('takes one plain name: a path, "." or ".." is EINVAL', async () => {
    const top = await BeneathDir.open(root, 'sub');
    try {
      for (const name of ['', '.', '..', 'a/b', '../sub', 'x\0y']) {
        expect((await rejection(top.lstat(name))).code, name).toBe('EINVAL');
      }
    } finally {
      await top.close();
    }
  });

  it('a directory renamed away after it was opened is still the one that was opened', async () => {
    const top = await BeneathDir.open(root, '');
    try {
      const sub = await top.openDir('sub');
      renameSync(path.join(rootDir, 'sub'), path.join(rootDir, 'moved'));
      mkdirSync(path.join(rootDir, 'sub'));
      try {
        expect((await sub.lstat('inner.txt')).type).toBe('file');
      } finally {
        await sub.close();
      }
    } finally {
      await top.close();
    }
  });
});

describe('syncfs', () => {
  it('writes back the file system of a directory beneath the root; a missing one is ENOENT, one outside EXDEV', async () => {
    writeFileSync(path.join(rootDir, 'sub', 'dirty.txt'), 'dirty');
    await root.syncfs('sub');
    await root.syncfs('');
    expect((await rejection(root.syncfs('missing'))).code).toBe('ENOENT');
    expect((await rejection(root.syncfs('link-out'))).code).toBe('EXDEV');
    expect((await rejection(root.syncfs('file.txt'))).code).toBe('ENOTDIR');
  });
});
