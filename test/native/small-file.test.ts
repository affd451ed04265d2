import {
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native, type SmallFileResult } from '../../gateway/binding.js';
import { openFdCount } from '../helpers/sockets.js';

const { EAGAIN, EXDEV, EINVAL } = (await import('node:os')).constants.errno;

describe('readSmallCached: the small-file fast path (RESOLVE_CACHED + RWF_NOWAIT)', () => {
  let dir: string;
  let rootFd: number;
  const read = (rel: string, max = 65536) => {
    // Warm the caches the way a first (slow-path) request would, then ask the fast path.
    try {
      closeSync(openSync(path.join(dir, 'root', rel), constants.O_RDONLY | constants.O_NONBLOCK));
    } catch {
      // Missing or refused: the fast path must answer on its own.
    }
    return native.readSmallCached(rootFd, rel, max);
  };

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ng-small-'));
    mkdirSync(path.join(dir, 'root', 'sub'), { recursive: true });
    writeFileSync(path.join(dir, 'root', 'small.txt'), 'hello');
    writeFileSync(path.join(dir, 'root', 'empty'), '');
    writeFileSync(path.join(dir, 'root', 'big.bin'), Buffer.alloc(100_000, 1));
    writeFileSync(path.join(dir, 'secret'), 'outside');
    symlinkSync('small.txt', path.join(dir, 'root', 'inside-link'));
    symlinkSync('../secret', path.join(dir, 'root', 'outside-link'));
    symlinkSync('/etc/passwd', path.join(dir, 'root', 'absolute-link'));
    rootFd = openSync(path.join(dir, 'root'), constants.O_RDONLY | constants.O_DIRECTORY);
  });
  afterAll(() => {
    closeSync(rootFd);
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a small cached file whole, with its stat', () => {
    const r = read('small.txt') as SmallFileResult;
    expect(r.data?.toString()).toBe('hello');
    expect(r.size).toBe(5);
    expect(typeof r.mtimeNs).toBe('bigint');
    expect(r.mode & constants.S_IFMT).toBe(constants.S_IFREG);
  });

  it('reads an empty file as an empty buffer', () => {
    expect((read('empty') as SmallFileResult).data?.length).toBe(0);
  });

  it('follows a symlink that stays inside', () => {
    expect((read('inside-link') as SmallFileResult).data?.toString()).toBe('hello');
  });

  it.each(['outside-link', 'absolute-link'])(
    'refuses %s (EXDEV, or EAGAIN for the slow path), never reading outside',
    (rel) => {
      expect([-EXDEV, -EAGAIN]).toContain(read(rel));
    },
  );

  it('reports a directory or a large file by stat only', () => {
    expect((read('sub') as SmallFileResult).data).toBeUndefined();
    const big = read('big.bin', 65536) as SmallFileResult;
    expect(big.data).toBeUndefined();
    expect(big.size).toBe(100_000);
  });

  it('answers EAGAIN (take the slow path) or the file, never anything else, for a new name', () => {
    writeFileSync(path.join(dir, 'root', 'fresh.txt'), 'new');
    const r = native.readSmallCached(rootFd, 'fresh.txt', 100);
    if (typeof r === 'number') expect(r).toBe(-EAGAIN);
    else expect(r.data?.toString()).toBe('new');
  });

  it('refuses an embedded NUL', () => {
    expect(read('small.txt\0.png')).toBe(-EINVAL);
  });

  it('leaks no fd', () => {
    const before = openFdCount();
    for (let i = 0; i < 500; i++) {
      read('small.txt');
      read('outside-link');
      read('big.bin', 10);
    }
    expect(openFdCount()).toBe(before);
  });
});
