/**
 * `push --sync` and `pull --sync` (CONTRACT.md "Sync: send only what changed", issue 12 item 3)
 * through a real server on a real abstract socket, with the real CLI and real files: a 200-file
 * tree changed in 2 files, with 1 deleted and 1 added, is synced both ways rewriting exactly
 * those (the inode and ctime of every other file unchanged); --delete and --dry-run do what they
 * say; --checksum finds a same-size, same-mtime change; a sync push cut mid-transfer leaves the
 * server's tree as it was.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createGateway, type Gateway } from '../../gateway/index.js';
import { settlesWithin } from '../helpers/bounds.js';
import { BIN, runCli } from '../helpers/cli.js';
import { uniqueName } from '../helpers/sockets.js';
import { makeFixtureTree } from '../helpers/fixture-tree.js';
import { itNeeds } from '../helpers/requirements.js';
import { compareTrees } from '../helpers/tree-compare.js';

const OPTS = { ignoreSockets: true, ignoreTop: true };
let base: string;
let served: string;
let gateway: Gateway;
let socket: string;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'ng-sync-'));
  served = join(base, 'served');
  mkdirSync(served);
  socket = uniqueName('sync');
  gateway = createGateway({ socket, root: served, writable: true, logLevel: false, graceMs: 1000 });
  await gateway.listen();
});

afterAll(async () => {
  await gateway.close();
  rmSync(base, { recursive: true, force: true });
});

/** A tree of 200 files in 4 directories (and a symlink, a hard-link pair), with fixed mtimes. */
function makeTree(dir: string): void {
  for (let d = 0; d < 4; d++) {
    mkdirSync(join(dir, `d${d}`), { recursive: true });
    for (let f = 0; f < 50; f++) writeFileSync(join(dir, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`);
  }
  const when = new Date('2024-01-02T03:04:05.123Z');
  for (let d = 0; d < 4; d++) {
    for (let f = 0; f < 50; f++) utimesSync(join(dir, `d${d}`, `f${f}.txt`), when, when);
    utimesSync(join(dir, `d${d}`), when, when);
  }
}

interface Ident {
  ino: bigint;
  ctimeNs: bigint;
}

function idents(dir: string): Map<string, Ident> {
  const out = new Map<string, Ident>();
  for (const rel of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const st = lstatSync(join(dir, rel), { bigint: true });
    if (st.isFile()) out.set(rel, { ino: st.ino, ctimeNs: st.ctimeNs });
  }
  return out;
}

/** The files whose inode or ctime differ between two snapshots (and those only in one). */
function rewritten(before: Map<string, Ident>, after: Map<string, Ident>): string[] {
  const out: string[] = [];
  for (const [rel, a] of before) {
    const b = after.get(rel);
    if (b === undefined || b.ino !== a.ino || b.ctimeNs !== a.ctimeNs) out.push(rel);
  }
  for (const rel of after.keys()) if (!before.has(rel)) out.push(rel);
  return out.sort();
}

/** Two changed (one same-size), one deleted, one added: the change set of the issue. */
function change(dir: string): void {
  writeFileSync(join(dir, 'd0/f1.txt'), 'changed content, longer than before\n');
  writeFileSync(join(dir, 'd2/f7.txt'), 'FILE 2/7\n');
  rmSync(join(dir, 'd1/f3.txt'));
  writeFileSync(join(dir, 'd3/new.txt'), 'a new file\n');
}

/** A dry run's lines about files (directories whose times would change are listed too). */
function fileLines(out: Buffer): string[] {
  return out
    .toString()
    .split('\n')
    .filter((l) => l !== '' && !l.endsWith('/'))
    .sort();
}

function cli(...args: string[]) {
  return runCli([...args, '--socket', socket, '-s']);
}

describe('push --sync', () => {
  it('rewrites exactly the changed, added and deleted files; the rest keep inode and ctime', async () => {
    const src = join(base, 'push-src');
    makeTree(src);
    expect((await cli('push', src, '/push')).code).toBe(0);
    change(src);
    const before = idents(join(served, 'push'));

    const dry = await cli('push', '--sync', '--delete', '--dry-run', src, '/push');
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    expect(fileLines(dry.stdout)).toEqual(
      ['delete d1/f3.txt', 'send d0/f1.txt', 'send d2/f7.txt', 'send d3/new.txt'].sort(),
    );
    expect(rewritten(before, idents(join(served, 'push')))).toEqual([]);

    const res = await cli('push', '--sync', '--delete', src, '/push');
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(rewritten(before, idents(join(served, 'push')))).toEqual(
      ['d0/f1.txt', 'd1/f3.txt', 'd2/f7.txt', 'd3/new.txt'].sort(),
    );
    expect(await compareTrees(src, join(served, 'push'), OPTS)).toEqual([]);

    // Nothing left to do: a second sync sends nothing and touches nothing.
    const again = idents(join(served, 'push'));
    expect((await cli('push', '--sync', '--delete', '--dry-run', src, '/push')).stdout.toString()).toBe('');
    expect((await cli('push', '--sync', '--delete', src, '/push')).code).toBe(0);
    expect(rewritten(again, idents(join(served, 'push')))).toEqual([]);
  });

  it('keeps destination-only entries without --delete', async () => {
    const src = join(base, 'keep-src');
    makeTree(src);
    expect((await cli('push', src, '/keep')).code).toBe(0);
    rmSync(join(src, 'd1/f3.txt'));
    expect((await cli('push', '--sync', src, '/keep')).code).toBe(0);
    expect(readFileSync(join(served, 'keep/d1/f3.txt'), 'utf8')).toBe('file 1/3\n');
  });

  it('--checksum finds a change of the same size and mtime', async () => {
    const src = join(base, 'sum-src');
    makeTree(src);
    expect((await cli('push', src, '/sum')).code).toBe(0);
    const p = join(src, 'd0/f0.txt');
    const st = lstatSync(p);
    writeFileSync(p, 'FILE 0/0\n');
    utimesSync(p, st.atime, st.mtime);
    expect(fileLines((await cli('push', '--sync', '--dry-run', src, '/sum')).stdout)).toEqual([]);
    expect(fileLines((await cli('push', '--sync', '--checksum', '--dry-run', src, '/sum')).stdout)).toEqual([
      'send d0/f0.txt',
    ]);
    expect((await cli('push', '--sync', '--checksum', src, '/sum')).code).toBe(0);
    expect(readFileSync(join(served, 'sum/d0/f0.txt'), 'utf8')).toBe('FILE 0/0\n');
  });

  it('replaces a directory by a file and a file by a directory', async () => {
    const src = join(base, 'types-src');
    makeTree(src);
    expect((await cli('push', src, '/types')).code).toBe(0);
    rmSync(join(src, 'd0'), { recursive: true });
    writeFileSync(join(src, 'd0'), 'now a file\n');
    rmSync(join(src, 'd1/f0.txt'));
    mkdirSync(join(src, 'd1/f0.txt'));
    writeFileSync(join(src, 'd1/f0.txt/inside'), 'x');
    const res = await cli('push', '--sync', src, '/types');
    expect(res.stderr).toBe('');
    expect(await compareTrees(src, join(served, 'types'), OPTS)).toEqual([]);
  });

  it('a sync cut mid-transfer leaves the server tree as it was', async () => {
    const src = join(base, 'cut-src');
    makeTree(src);
    expect((await cli('push', src, '/cut')).code).toBe(0);
    const copy = join(base, 'cut-copy');
    execFileSync('cp', ['-a', join(served, 'cut'), copy]);
    change(src);
    // A big new file keeps the transfer going long enough to kill the client in the middle.
    writeFileSync(join(src, 'd3/big.bin'), Buffer.alloc(512 * 1024 * 1024, 1));
    const before = idents(join(served, 'cut'));
    const child = spawn(
      process.execPath,
      [BIN, 'push', '--sync', '--delete', src, '/cut', '--socket', socket],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    // Killed once the server has begun staging (its staging directory appears).
    await new Promise<void>((resolve) => {
      const look = setInterval(() => {
        if (stagingPresent(served)) {
          clearInterval(look);
          resolve();
        }
      }, 5);
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    // The server notices the cut and removes its staging directory.
    await new Promise<void>((resolve) => {
      const look = setInterval(() => {
        if (!stagingPresent(served)) {
          clearInterval(look);
          resolve();
        }
      }, 5);
    });
    expect(rewritten(before, idents(join(served, 'cut')))).toEqual([]);
    expect(existsSync(join(served, 'cut/d3/big.bin'))).toBe(false);
    expect(await compareTrees(copy, join(served, 'cut'), OPTS)).toEqual([]);
    rmSync(join(src, 'd3/big.bin'));
  });
});

/** Whether process `pid` has a file open in `dir` (read from /proc/PID/fd). */
function opensBeneath(pid: number, dir: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(`${dir}/`);
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false; // not started yet, or gone
  }
}

function stagingPresent(dir: string): boolean {
  return readdirSync(dir).some((n) => n.startsWith('.nullgate-tmp-'));
}

describe('pull --sync', () => {
  it('rewrites exactly the changed, added and deleted files; the rest keep inode and ctime', async () => {
    const remote = join(served, 'pull');
    makeTree(remote);
    const local = join(base, 'pull-local');
    expect((await cli('pull', '/pull', local)).code).toBe(0);
    change(remote);
    const before = idents(local);

    const dry = await cli('pull', '--sync', '--delete', '--dry-run', '/pull', local);
    expect(dry.code).toBe(0);
    expect(fileLines(dry.stdout)).toEqual(
      ['delete d1/f3.txt', 'send d0/f1.txt', 'send d2/f7.txt', 'send d3/new.txt'].sort(),
    );
    expect(rewritten(before, idents(local))).toEqual([]);

    const res = await cli('pull', '--sync', '--delete', '/pull', local);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(rewritten(before, idents(local))).toEqual(
      ['d0/f1.txt', 'd1/f3.txt', 'd2/f7.txt', 'd3/new.txt'].sort(),
    );
    // Changed files were written beside their names and renamed over them: nothing left over.
    expect(
      readdirSync(local, { recursive: true }).filter((n) => String(n).includes('.nullgate-tmp-')),
    ).toEqual([]);
    expect(await compareTrees(remote, local, OPTS)).toEqual([]);
    expect((await cli('pull', '--sync', '--delete', '--dry-run', '/pull', local)).stdout.toString()).toBe('');
  });

  it('a pull --sync --delete killed mid-transfer has deleted no local-only entry', async () => {
    const remote = join(served, 'pull-cut');
    makeTree(remote);
    const local = join(base, 'pull-cut-local');
    expect((await cli('pull', '/pull-cut', local)).code).toBe(0);
    writeFileSync(join(local, 'd1/mine.txt'), 'mine');
    // A big new file keeps the transfer going long enough to kill the client in the middle.
    writeFileSync(join(remote, 'd3/big.bin'), Buffer.alloc(256 * 1024 * 1024, 1));
    const child = spawn(
      process.execPath,
      [BIN, 'pull', '--sync', '--delete', '/pull-cut', local, '--socket', socket],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    // Killed once it extracts big.bin: it holds a file open in d3 (its O_TMPFILE, or a
    // temporary beside the name where the file system has none).
    const extracting = new Promise<void>((resolve) => {
      const look = setInterval(() => {
        if (opensBeneath(child.pid!, join(local, 'd3'))) {
          clearInterval(look);
          resolve();
        }
      }, 5);
    });
    await settlesWithin(extracting, 60_000, 'the extraction of big.bin began');
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    expect(readFileSync(join(local, 'd1/mine.txt'), 'utf8')).toBe('mine');

    // The same pull, whole, deletes it, and leaves d1 with the server's times.
    rmSync(join(remote, 'd3/big.bin'));
    for (const name of readdirSync(join(local, 'd3')))
      if (name.startsWith('.nullgate-tmp-') || name === 'big.bin') rmSync(join(local, 'd3', name));
    expect((await cli('pull', '--sync', '--delete', '/pull-cut', local)).code).toBe(0);
    expect(existsSync(join(local, 'd1/mine.txt'))).toBe(false);
    expect(await compareTrees(remote, local, OPTS)).toEqual([]);
    expect((await cli('pull', '--sync', '--delete', '--dry-run', '/pull-cut', local)).stdout.toString()).toBe(
      '',
    );
  });

  it('keeps local-only entries without --delete', async () => {
    const remote = join(served, 'pull2');
    makeTree(remote);
    const local = join(base, 'pull2-local');
    expect((await cli('pull', '--sync', '/pull2', local)).code).toBe(0);
    writeFileSync(join(local, 'mine.txt'), 'mine');
    expect((await cli('pull', '--sync', '/pull2', local)).code).toBe(0);
    expect(readFileSync(join(local, 'mine.txt'), 'utf8')).toBe('mine');
    expect((await cli('pull', '--sync', '--delete', '/pull2', local)).code).toBe(0);
    expect(existsSync(join(local, 'mine.txt'))).toBe(false);
    expect(await compareTrees(remote, local, OPTS)).toEqual([]);
  });
});

describe('every kind of entry', () => {
  // The server's manifest and the client's describe a tree the same way: after a sync, a second
  // one finds nothing to do, both ways, for owners, set-id modes, ns mtimes, hard links,
  // symlinks, xattrs (security.capability), a sparse file, a FIFO, a device.
  itNeeds(
    ['root', 'setcap', 'setfattr'],
    'a synced fixture tree is synced: nothing more to send',
    async () => {
      const src = join(base, 'fixture');
      await makeFixtureTree(src);
      let res = await cli('push', '--sync', src, '/fixture');
      expect(res.code).toBe(0);
      // -s keeps the socket's warning quiet; without it, one line names it.
      expect(res.stderr).toBe('');
      res = await runCli(['push', '--sync', '--dry-run', src, '/fixture', '--socket', socket]);
      expect(res.stderr).toMatch(/^nullgate: push: skipped \S+ \(a socket cannot be archived\)\n$/);
      expect(await compareTrees(src, join(served, 'fixture'), OPTS)).toEqual([]);
      res = await cli('push', '--sync', '--delete', '--dry-run', src, '/fixture');
      expect(res.stdout.toString()).toBe('');
      expect(
        (await cli('push', '--sync', '--checksum', '--dry-run', src, '/fixture')).stdout.toString(),
      ).toBe('');

      const back = join(base, 'fixture-back');
      res = await cli('pull', '--sync', '/fixture', back);
      expect(res.stderr).toBe('');
      expect(await compareTrees(src, back, OPTS)).toEqual([]);
      res = await cli('pull', '--sync', '--delete', '--dry-run', '/fixture', back);
      expect(res.stdout.toString()).toBe('');
    },
    120_000,
  );
});

describe('usage', () => {
  it.each([
    ['push', '--delete'],
    ['push', '--checksum'],
    ['pull', '--dry-run'],
  ])('%s %s without --sync is a usage error (exit 2)', async (verb, flag) => {
    const res = await cli(verb, flag, 'a', 'b');
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`${flag} needs --sync`);
  });
});
