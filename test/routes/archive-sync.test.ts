/**
 * The HTTP side of `--sync` (docs/api.md "Sync"): `GET /archive/<dir>?manifest=1`,
 * `POST /archive/<dir>?select=1` and `PUT /archive/<dir>?sync=1` with deletion records; a plain
 * PUT refuses deletion records and keeps the tree as it was.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  linkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type ManifestEntry, parseManifestLine } from '../../core/manifest.js';
import { encodeHeader, END_OF_ARCHIVE, paddingOf, TYPEFLAG } from '../../core/tar-header.js';
import { readTar } from '../../core/tar-read.js';
import { buildApp } from '../../gateway/app.js';
import { archiveRoutes, type ArchiveRoutesOptions, parseSelection } from '../../routes/archive/plugin.js';

const WHEN = new Date('2021-06-01T12:00:00Z');
let base: string;
let root: string;
let app: FastifyInstance | undefined;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'ng-archive-sync-'));
  root = join(base, 'root');
  mkdirSync(join(root, 't/sub'), { recursive: true });
  writeFileSync(join(root, 't/a.txt'), 'alpha');
  writeFileSync(join(root, 't/sub/b.txt'), 'bravo!');
  linkSync(join(root, 't/a.txt'), join(root, 't/sub/hard'));
  symlinkSync('/etc/passwd', join(root, 't/link'));
  for (const p of ['t/a.txt', 't/sub/b.txt', 't/sub', 't']) utimesSync(join(root, p), WHEN, WHEN);
});

afterEach(async () => {
  await app?.close();
  app = undefined;
  rmSync(base, { recursive: true, force: true });
});

async function makeApp(options: Partial<ArchiveRoutesOptions> = {}): Promise<FastifyInstance> {
  const a = buildApp({ logLevel: false });
  await a.register(archiveRoutes, { prefix: '/archive', root, writable: true, ...options });
  await a.ready();
  return a;
}

function lines(body: string): ManifestEntry[] {
  return body.split('\n').filter(Boolean).map(parseManifestLine);
}

async function members(payload: Buffer): Promise<string[]> {
  const names: string[] = [];
  for await (const m of readTar(Readable.from([payload]))) {
    names.push(`${m.header.type} ${m.header.name}`);
    for await (const _ of m.pieces()) void _;
  }
  return names;
}

function tarOf(...parts: { name: string; data?: string; del?: boolean; dir?: boolean }[]): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    const data = Buffer.from(p.data ?? '');
    out.push(
      encodeHeader({
        name: p.name,
        typeflag: p.dir === true ? TYPEFLAG.dir : TYPEFLAG.file,
        mode: p.dir === true ? 0o755 : 0o644,
        uid: 0,
        gid: 0,
        size: data.length,
        mtimeNs: 1_600_000_000_000_000_000n,
        ...(p.del === true && { delete: true }),
      }),
      data,
      Buffer.alloc(paddingOf(data.length)),
    );
  }
  out.push(END_OF_ARCHIVE);
  return Buffer.concat(out);
}

describe('GET /archive/<dir>?manifest=1', () => {
  it('one NDJSON line per entry, in the archive order, the directory itself first', async () => {
    app = await makeApp();
    const res = await app.inject({ method: 'GET', url: '/archive/t?manifest=1' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
    expect(res.headers['x-nullgate-apply']).toBe('all');
    const entries = lines(res.body);
    expect(entries.map((x) => x.path)).toEqual(['', 'a.txt', 'link', 'sub', 'sub/b.txt', 'sub/hard']);
    const archive = await app.inject({ method: 'GET', url: '/archive/t' });
    expect(await members(archive.rawPayload)).toEqual([
      'dir ./',
      'file a.txt',
      'symlink link',
      'dir sub/',
      'file sub/b.txt',
      'hardlink sub/hard',
    ]);
    const byPath = new Map(entries.map((x) => [x.path, x]));
    expect(byPath.get('a.txt')).toMatchObject({
      type: 'file',
      size: 5,
      mtime: String(BigInt(WHEN.getTime()) * 1_000_000n),
      mode: 0o644,
      link: 'a.txt',
    });
    expect(byPath.get('sub/hard')).toMatchObject({ type: 'file', link: 'a.txt' });
    expect(byPath.get('link')).toMatchObject({ type: 'symlink', target: '/etc/passwd' });
    expect(byPath.get('a.txt')!.sha256).toBeUndefined();
  });

  it('checksum=1 adds the sha-256 of file contents (cached: the same answer twice)', async () => {
    app = await makeApp();
    for (let i = 0; i < 2; i++) {
      const res = await app.inject({ method: 'GET', url: '/archive/t?manifest=1&checksum=1' });
      const b = lines(res.body).find((x) => x.path === 'sub/b.txt');
      expect(b?.sha256).toBe(createHash('sha256').update('bravo!').digest('hex'));
    }
  });

  it('a missing directory is 404, a file 409', async () => {
    app = await makeApp();
    expect((await app.inject({ method: 'GET', url: '/archive/nope?manifest=1' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/archive/t/a.txt?manifest=1' })).statusCode).toBe(409);
  });
});

describe('POST /archive/<dir>?select=1', () => {
  it('archives only the selected entries (also on a read-only server)', async () => {
    app = await makeApp({ writable: false });
    const res = await app.inject({
      method: 'POST',
      url: '/archive/t?select=1',
      payload: '"sub/b.txt"\n"link"\n"sub/hard"\n',
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-tar');
    // sub/hard is the first name selected of its inode: a file, not a link to the unselected a.txt.
    expect(await members(res.rawPayload)).toEqual(['symlink link', 'file sub/b.txt', 'file sub/hard']);
  });

  it('"" selects the directory itself, as ./', async () => {
    app = await makeApp();
    const res = await app.inject({ method: 'POST', url: '/archive/t?select=1', payload: '""\n"sub"\n' });
    expect(await members(res.rawPayload)).toEqual(['dir ./', 'dir sub/']);
  });

  it.each([
    ['without ?select=1', '/archive/t', '"a.txt"\n'],
    ['a line that is not a string', '/archive/t?select=1', '{"path":"a.txt"}\n'],
    ['..', '/archive/t?select=1', '"../x"\n'],
    ['an absolute path', '/archive/t?select=1', '"/etc"\n'],
    ['a temporary name', '/archive/t?select=1', '".nullgate-tmp-x"\n'],
  ])('400 %s', async (_name, url, payload) => {
    app = await makeApp();
    const res = await app.inject({ method: 'POST', url, payload });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'NG_ERR_BAD_REQUEST' });
  });

  it('parseSelection keeps names that are not UTF-8', () => {
    expect([...parseSelection(Buffer.from('"caf\\udce9"\n"a/b"\n'))]).toEqual(['caf\udce9', 'a/b']);
  });
});

describe('PUT /archive/<dir>?sync=1 and deletion records', () => {
  it('a plain PUT refuses a deletion record and keeps the tree as it was', async () => {
    app = await makeApp();
    const res = await app.inject({
      method: 'PUT',
      url: '/archive/t',
      payload: tarOf({ name: 'new.txt', data: 'n' }, { name: 'a.txt', del: true }),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'NG_ERR_ARCHIVE_INVALID' });
    expect(res.json().message).toContain('?sync=1');
    expect(readFileSync(join(root, 't/a.txt'), 'utf8')).toBe('alpha');
    expect(existsSync(join(root, 't/new.txt'))).toBe(false);
  });

  it('?sync=1 deletes files and whole directories, and adds what the archive has', async () => {
    app = await makeApp();
    const untouched = lstatSync(join(root, 't/link'), { bigint: true });
    const res = await app.inject({
      method: 'PUT',
      url: '/archive/t?sync=1',
      payload: tarOf(
        { name: 'a.txt', del: true },
        { name: 'sub', del: true },
        { name: 'gone', del: true },
        { name: 'new.txt', data: 'n' },
      ),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ files: 1, deleted: 2 });
    expect(existsSync(join(root, 't/a.txt'))).toBe(false);
    expect(existsSync(join(root, 't/sub'))).toBe(false);
    expect(readFileSync(join(root, 't/new.txt'), 'utf8')).toBe('n');
    const after = lstatSync(join(root, 't/link'), { bigint: true });
    expect([after.ino, after.ctimeNs]).toEqual([untouched.ino, untouched.ctimeNs]);
  });

  it('a directory deleted and sent as a file in the same push is replaced', async () => {
    app = await makeApp();
    const res = await app.inject({
      method: 'PUT',
      url: '/archive/t?sync=1',
      payload: tarOf({ name: 'sub', del: true }, { name: 'sub', data: 'now a file' }),
    });
    expect(res.statusCode).toBe(200);
    expect(readFileSync(join(root, 't/sub'), 'utf8')).toBe('now a file');
  });

  it('a deletion reached through a symlink in the tree is refused, nothing changed', async () => {
    mkdirSync(join(root, 'elsewhere'));
    writeFileSync(join(root, 'elsewhere/keep'), 'k');
    symlinkSync('../elsewhere', join(root, 't/via'));
    app = await makeApp();
    const res = await app.inject({
      method: 'PUT',
      url: '/archive/t?sync=1',
      payload: tarOf({ name: 'via/keep', del: true }, { name: 'new.txt', data: 'n' }),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'NG_ERR_ARCHIVE_UNSAFE' });
    expect(readFileSync(join(root, 'elsewhere/keep'), 'utf8')).toBe('k');
    expect(existsSync(join(root, 't/new.txt'))).toBe(false);
  });

  it.each([
    ['the target itself', './'],
    ['..', '../x'],
  ])('a deletion of %s is refused', async (_name, name) => {
    app = await makeApp();
    const res = await app.inject({
      method: 'PUT',
      url: '/archive/t?sync=1',
      payload: tarOf({ name, del: true }),
    });
    expect(res.statusCode).toBe(400);
    expect(existsSync(join(root, 't/a.txt'))).toBe(true);
  });
});
