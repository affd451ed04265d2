/**
 * The small-file cache of GET /files (routes/small-file-cache.ts): what it keeps, that a kept
 * file is never answered stale (in-place rewrite, rename over, chmod, delete), that a directory
 * swapped for a symlink is never followed out of the root, and its bounds. The clock that judges
 * "settled" is the test's own, so files made a moment ago can be kept; rewrites wait until the
 * real clock has moved past the kept ctime by more than a coarse timestamp tick (a wait for a
 * condition, not a timed assertion).
 */
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../gateway/app.js';
import { BeneathRoot } from '../../native/beneath.js';
import { statSlots } from '../../native/small-file.js';
import { SETTLE_MS, SmallFileCache } from '../../routes/small-file-cache.js';
import { listenAbstract } from '../../gateway/listen.js';
import { prebuiltStats } from '../../native/node-internals.js';
import { rawRequest, uniqueName } from '../helpers/sockets.js';

/** Waits until the real clock is well past `file`'s ctime, so a change now stamps a later one. */
async function pastCtimeOf(file: string): Promise<void> {
  const ctimeMs = Number(statSync(file, { bigint: true }).ctimeNs / 1_000_000n);
  // 50 ms: five times the coarsest tick Linux stamps with (HZ=100).
  while (Date.now() - ctimeMs < 50) await sleep(5);
}

describe('SmallFileCache', () => {
  let dir: string;
  let root: BeneathRoot;
  /** "Now" for the cache: far enough ahead that every file is settled. */
  const later = () => Date.now() + SETTLE_MS + 1000;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ng-small-cache-'));
    root = await BeneathRoot.open(dir);
  });
  afterAll(async () => {
    await root.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps a settled file and answers it from memory', () => {
    writeFileSync(path.join(dir, 'kept.txt'), 'kept');
    const cache = new SmallFileCache(root, { now: later });
    const first = cache.get('kept.txt');
    expect(first?.data.toString()).toBe('kept');
    expect(cache.size).toBe(1);
    // The same object: no read, no copy.
    expect(cache.get('kept.txt')).toBe(first);
  });

  it('does not keep a file whose status changed less than SETTLE_MS ago', () => {
    writeFileSync(path.join(dir, 'fresh.txt'), 'fresh');
    const cache = new SmallFileCache(root);
    expect(cache.get('fresh.txt')?.data.toString()).toBe('fresh');
    expect(cache.get('fresh.txt')?.data.toString()).toBe('fresh');
    expect(cache.size).toBe(0);
  });

  it('sees an in-place rewrite of the same size', async () => {
    const file = path.join(dir, 'inplace.txt');
    writeFileSync(file, 'version 1');
    const cache = new SmallFileCache(root, { now: later });
    expect(cache.get('inplace.txt')?.data.toString()).toBe('version 1');
    await pastCtimeOf(file);
    writeFileSync(file, 'version 2');
    expect(cache.get('inplace.txt')?.data.toString()).toBe('version 2');
  });

  it('sees a file renamed over the name, even with the same size and mtime', async () => {
    const file = path.join(dir, 'renamed.txt');
    writeFileSync(file, 'AAAA');
    const cache = new SmallFileCache(root, { now: later });
    const before = cache.get('renamed.txt')!;
    writeFileSync(`${file}.new`, 'BBBB');
    const { mtime } = statSync(file);
    // The same mtime and size: only the inode (and ctime) tell them apart.
    const { utimesSync } = await import('node:fs');
    utimesSync(`${file}.new`, mtime, mtime);
    renameSync(`${file}.new`, file);
    const after = cache.get('renamed.txt')!;
    expect(after.data.toString()).toBe('BBBB');
    expect(after.stat.ino).not.toBe(before.stat.ino);
  });

  it('sees a change of mode, and a file removed', async () => {
    const file = path.join(dir, 'mode.txt');
    writeFileSync(file, 'm');
    chmodSync(file, 0o644);
    const cache = new SmallFileCache(root, { now: later });
    expect(cache.get('mode.txt')!.stat.mode & 0o777).toBe(0o644);
    await pastCtimeOf(file);
    chmodSync(file, 0o600);
    expect(cache.get('mode.txt')!.stat.mode & 0o777).toBe(0o600);
    rmSync(file);
    expect(cache.get('mode.txt')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('never follows a directory swapped for a symlink out of the root', () => {
    const outside = mkdtempSync(path.join(tmpdir(), 'ng-small-outside-'));
    try {
      mkdirSync(path.join(dir, 'd'));
      writeFileSync(path.join(dir, 'd/secret.txt'), 'inside');
      writeFileSync(path.join(outside, 'secret.txt'), 'OUTSIDE');
      const cache = new SmallFileCache(root, { now: later });
      expect(cache.get('d/secret.txt')?.data.toString()).toBe('inside');
      renameSync(path.join(dir, 'd'), path.join(dir, 'd.old'));
      symlinkSync(outside, path.join(dir, 'd'));
      // Neither the kept bytes (another file is there now) nor the file outside.
      expect(cache.get('d/secret.txt')).toBeUndefined();
      expect(cache.size).toBe(0);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('keeps at most maxBytes and maxFiles, oldest out first', () => {
    for (let i = 0; i < 10; i++) writeFileSync(path.join(dir, `n${i}`), Buffer.alloc(100, i));
    const byBytes = new SmallFileCache(root, { now: later, maxBytes: 350 });
    for (let i = 0; i < 10; i++) expect(byBytes.get(`n${i}`)?.data[0]).toBe(i);
    expect(byBytes.size).toBe(3);
    const byFiles = new SmallFileCache(root, { now: later, maxFiles: 4 });
    for (let i = 0; i < 10; i++) byFiles.get(`n${i}`);
    expect(byFiles.size).toBe(4);
    const off = new SmallFileCache(root, { now: later, maxBytes: 0 });
    expect(off.get('n1')?.data[0]).toBe(1);
    expect(off.size).toBe(0);
  });

  /** A cache whose revalidating fstatat calls are counted, per name. */
  const counted = () => {
    const stats: string[] = [];
    const cache = new SmallFileCache(root, {
      now: later,
      stat: (r, rel, out) => {
        stats.push(rel);
        return statSlots(r, rel, out);
      },
    });
    return { cache, stats };
  };
  /** What `later` answers for each name, once the turn is over. */
  const answered = async (cache: SmallFileCache, rels: string[]) => {
    const answers = await Promise.all(
      rels.map(
        (rel) =>
          new Promise<string | undefined>((resolve) =>
            cache.later(rel, (file) => resolve(file?.data.toString())),
          ),
      ),
    );
    return answers;
  };

  it('answers the requests of one turn with one fstatat per kept file, in the order they came', async () => {
    writeFileSync(path.join(dir, 'ta'), 'a');
    writeFileSync(path.join(dir, 'tb'), 'b');
    const { cache, stats } = counted();
    cache.get('ta');
    cache.get('tb');
    expect(cache.keeps('ta') && cache.keeps('tb')).toBe(true);
    expect(cache.keeps('tc')).toBe(false);
    const order: string[] = [];
    const rels = ['ta', 'tb', 'ta', 'ta', 'tb'];
    for (const [i, rel] of rels.entries()) cache.later(rel, () => order.push(`${i}`));
    expect(await answered(cache, rels)).toEqual(['a', 'b', 'a', 'a', 'b']);
    expect(order).toEqual(['0', '1', '2', '3', '4']);
    expect(stats.sort()).toEqual(['ta', 'tb']);
    // The next turn revalidates again: nothing carried over.
    expect(await answered(cache, ['ta'])).toEqual(['a']);
    expect(stats).toHaveLength(3);
  });

  it('sees a change made before the turn ends, for every request waiting in it', async () => {
    const file = path.join(dir, 'tw');
    writeFileSync(file, 'one');
    const { cache } = counted();
    expect(cache.get('tw')?.data.toString()).toBe('one');
    await pastCtimeOf(file);
    const waiting = answered(cache, ['tw', 'tw']);
    // After the requests were read, before their turn is over: as for a request of its own.
    writeFileSync(`${file}.new`, 'two');
    renameSync(`${file}.new`, file);
    expect(await waiting).toEqual(['two', 'two']);
    rmSync(file);
    expect(await answered(cache, ['tw'])).toEqual([undefined]);
  });
});

describe('GET /files answers from the cache, never stale', () => {
  let dir: string;
  let app: FastifyInstance;
  const get = async (url: string) => {
    const res = await app.inject({ method: 'GET', url });
    return { status: res.statusCode, body: res.body, etag: res.headers.etag };
  };
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ng-small-route-'));
    app = buildApp({ root: dir, logLevel: false });
    await app.ready();
    // Every file counts as settled: the cache keeps it at once.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + SETTLE_MS + 1000 });
  });
  afterEach(async () => {
    vi.useRealTimers();
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an in-place rewrite and a rename over are seen by the next request', async () => {
    const file = path.join(dir, 'f.txt');
    writeFileSync(file, 'one');
    const first = await get('/files/f.txt');
    expect(first).toMatchObject({ status: 200, body: 'one' });
    expect(await get('/files/f.txt')).toEqual(first);
    vi.useRealTimers();
    await pastCtimeOf(file);
    writeFileSync(file, 'two');
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + SETTLE_MS + 1000 });
    const second = await get('/files/f.txt');
    expect(second).toMatchObject({ status: 200, body: 'two' });
    expect(second.etag).not.toBe(first.etag);
    writeFileSync(`${file}.new`, 'six');
    renameSync(`${file}.new`, file);
    expect(await get('/files/f.txt')).toMatchObject({ status: 200, body: 'six' });
  });

  it('answers the many requests of one turn each whole, and their failures in the JSON shape', async () => {
    const file = path.join(dir, 'm.txt');
    writeFileSync(file, 'many');
    expect(await get('/files/m.txt')).toMatchObject({ status: 200, body: 'many' });
    const answers = await Promise.all(Array.from({ length: 8 }, () => get('/files/m.txt')));
    for (const answer of answers) expect(answer).toMatchObject({ status: 200, body: 'many' });
    const ranged = await app.inject({ method: 'GET', url: '/files/m.txt', headers: { range: 'bytes=1-2' } });
    expect([ranged.statusCode, ranged.body]).toEqual([206, 'an']);
    // Failures of an answer made after the handler returned reach the error handler.
    const failed = await app.inject({
      method: 'GET',
      url: '/files/m.txt',
      headers: { 'if-match': '"other"' },
    });
    expect(failed.statusCode).toBe(412);
    expect(JSON.parse(failed.body)).toMatchObject({ code: 'NG_ERR_PRECONDITION_FAILED' });
    rmSync(file);
    const gone = await app.inject({ method: 'GET', url: '/files/m.txt' });
    expect(gone.statusCode).toBe(404);
    expect(JSON.parse(gone.body)).toMatchObject({ code: 'NG_ERR_NOT_FOUND' });
  });

  it('a directory on the path swapped for a symlink out of the root is refused', async () => {
    const outside = mkdtempSync(path.join(tmpdir(), 'ng-small-out-'));
    try {
      mkdirSync(path.join(dir, 'd'));
      writeFileSync(path.join(dir, 'd/x.txt'), 'inside');
      writeFileSync(path.join(outside, 'x.txt'), 'bytes from outside');
      expect(await get('/files/d/x.txt')).toMatchObject({ status: 200, body: 'inside' });
      renameSync(path.join(dir, 'd'), path.join(dir, 'd.old'));
      symlinkSync(outside, path.join(dir, 'd'));
      const after = await get('/files/d/x.txt');
      expect(after.status).toBe(403);
      expect(JSON.parse(after.body)).toMatchObject({ code: 'NG_ERR_OUTSIDE_ROOT' });
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it("keeps what users' hooks set, and one answer's changes never reach the next", async () => {
    await app.close();
    app = buildApp({ root: dir, logLevel: false });
    app.addHook('onRequest', async (request, reply) => {
      if (request.headers['x-mark'] !== undefined) void reply.header('x-early', 'yes');
    });
    app.addHook('onSend', async (request, reply) => {
      // Hooks that edit the fields of an answer: the cached file's are copied for each answer.
      void reply.header('etag', '"edited"').header('x-mode-was', String(reply.getHeader('x-nullgate-mode')));
      if (request.headers['x-late'] !== undefined) void reply.header('x-seen', 'yes');
    });
    await app.ready();
    writeFileSync(path.join(dir, 'h.txt'), 'hooks');
    const plain = await app.inject({ method: 'GET', url: '/files/h.txt' });
    const marked = await app.inject({ method: 'GET', url: '/files/h.txt', headers: { 'x-mark': '1' } });
    const late = await app.inject({ method: 'GET', url: '/files/h.txt', headers: { 'x-late': '1' } });
    const again = await app.inject({ method: 'GET', url: '/files/h.txt' });
    for (const res of [plain, marked, late, again]) {
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('hooks');
      expect(res.headers).toMatchObject({
        etag: '"edited"',
        'x-mode-was': expect.stringMatching(/^0[0-7]{3}$/),
        'content-type': 'text/plain; charset=utf-8',
        'content-length': '5',
      });
    }
    expect(marked.headers['x-early']).toBe('yes');
    expect(late.headers['x-seen']).toBe('yes');
    for (const res of [plain, late, again]) expect(res.headers['x-early']).toBeUndefined();
    for (const res of [plain, marked, again]) expect(res.headers['x-seen']).toBeUndefined();
  });

  it("over a real socket, a kept file's fields go out as one checked block; a hook's edits take Node's path", async () => {
    writeFileSync(path.join(dir, 'b.txt'), 'block');
    const name = uniqueName('small-block');
    await listenAbstract(app.server, name);
    const before = prebuiltStats.used;
    const first = await rawRequest(name, 'GET /files/b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const second = await rawRequest(
      name,
      'GET /files/b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(prebuiltStats.used).toBe(before + 2);
    const shown = (raw: Buffer) => raw.toString('latin1').replace(/^Date: .*\r\n/m, '');
    expect(shown(second.raw)).toBe(shown(first.raw));
    expect(first.body.toString()).toBe('block');
    expect(first.headers).toMatchObject({
      'content-type': 'text/plain; charset=utf-8',
      'content-length': '5',
      'accept-ranges': 'bytes',
      'x-nullgate-mode': expect.stringMatching(/^0[0-7]{3}$/),
    });
    await app.close();
    app = buildApp({ root: dir, logLevel: false });
    app.addHook('onSend', async (_request, reply) => {
      void reply.header('x-hook', 'yes');
    });
    await app.ready();
    const other = uniqueName('small-block-hook');
    await listenAbstract(app.server, other);
    const hooked = await rawRequest(
      other,
      'GET /files/b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(hooked.headers['x-hook']).toBe('yes');
    expect(hooked.body.toString()).toBe('block');
    expect(prebuiltStats.used).toBe(before + 2);
  });

  it('answers conditional and HEAD requests for a kept file as for any other', async () => {
    writeFileSync(path.join(dir, 'c.txt'), 'cond');
    const first = await app.inject({ method: 'GET', url: '/files/c.txt' });
    const etag = first.headers.etag as string;
    const notModified = await app.inject({
      method: 'GET',
      url: '/files/c.txt',
      headers: { 'if-none-match': etag },
    });
    expect(notModified.statusCode).toBe(304);
    expect(notModified.headers.etag).toBe(etag);
    const failed = await app.inject({
      method: 'GET',
      url: '/files/c.txt',
      headers: { 'if-match': '"other"' },
    });
    expect(failed.statusCode).toBe(412);
    const head = await app.inject({ method: 'HEAD', url: '/files/c.txt' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers).toMatchObject({ etag, 'content-length': '4' });
  });
});
