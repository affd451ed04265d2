/**
 * GET and PUT /archive (CONTRACT.md "HTTP API"): round trips checked with GNU tar and Python's
 * tarfile, every unsafe entry kind refused with the tree left byte-identical, truncated and
 * aborted uploads leaving nothing, gzip both ways, limits, and merge semantics.
 */
import { exec } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  opendirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
  chmodSync,
  ftruncateSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';

import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { buildApp } from '../../gateway/app.js';
import { listenAbstract } from '../../gateway/listen.js';
import { archiveRoutes, type ArchiveRoutesOptions } from '../../routes/archive/plugin.js';
import { itNeeds } from '../helpers/requirements.js';
import { connectSocket, rawRequest, uniqueName } from '../helpers/sockets.js';
import { tree } from '../helpers/files.js';
import { listTar, packEntries, type TarSpec } from '../helpers/tar.js';

const execAsync = promisify(exec);
const GiB = 1024 ** 3;
const FIXED_TIME = new Date('2021-06-01T12:00:00Z');

let base: string;
let root: string;
let outside: string;

async function makeApp(options: Partial<ArchiveRoutesOptions> = {}): Promise<FastifyInstance> {
  const app = buildApp({ logLevel: false });
  await app.register(archiveRoutes, { prefix: '/archive', root, writable: true, ...options });
  await app.ready();
  return app;
}

/** A listening app and the name to give curl (`--abstract-unix-socket`). */
async function serve(app: FastifyInstance): Promise<{ address: string; curlName: string }> {
  const address = uniqueName('archive');
  await listenAbstract(app.server, address);
  return { address, curlName: address.slice(1) };
}

function sh(cmd: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return execAsync(cmd, {
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
    shell: '/bin/bash',
  });
}

/**
 * One line per entry under `dir`: name, type, permission bits, size and content hash (or link
 * target); with `times`, the mtime in seconds of files and directories too. Sparse giants are
 * described by their size, first and last bytes instead of a full hash.
 */
function treeDigest(dir: string, options: { times?: boolean } = {}): string[] {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const full = join(dir, childRel);
      const st = lstatSync(full);
      const time = options.times && !st.isSymbolicLink() ? ` t=${Math.floor(st.mtimeMs / 1000)}` : '';
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        lines.push(`${childRel} dir ${mode}${time}`);
        walk(childRel);
      } else if (st.isSymbolicLink()) {
        lines.push(`${childRel} symlink -> ${readlinkSync(full)}`);
      } else if (st.isFile()) {
        lines.push(`${childRel} file ${mode} ${st.size} ${fileHash(full, st.size)}${time}`);
      } else {
        lines.push(`${childRel} other`);
      }
    }
  };
  walk('');
  return lines;
}

function fileHash(path: string, size: number): string {
  if (size > 64 * 1024 * 1024) return `head=${readAt(path, 0, 8)} tail=${readAt(path, size - 8, 8)}`;
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
}

function readAt(path: string, position: number, length: number): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, position);
    return buf.subarray(0, n).toString('hex');
  } finally {
    closeSync(fd);
  }
}

/** Every staging directory anywhere under the root (there must never be one after a request). */
function stagingLeft(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => p.includes('.nullgate-tmp-'));
}

/** The sample tree of the issue: nested dirs, an empty dir, a 0-byte file, a 300-char path, unicode, a symlink. */
const LONG_PATH = `${'d'.repeat(100)}/${'e'.repeat(100)}/${'f'.repeat(100)}.txt`;
function makeTree(dir: string): void {
  mkdirSync(join(dir, 'a/b/c'), { recursive: true });
  writeFileSync(join(dir, 'a/b/c/deep.txt'), 'deep\n');
  writeFileSync(join(dir, 'a/top.txt'), 'top\n'.repeat(1000));
  mkdirSync(join(dir, 'empty'));
  writeFileSync(join(dir, 'zero'), '');
  mkdirSync(join(dir, LONG_PATH, '..'), { recursive: true });
  writeFileSync(join(dir, LONG_PATH), 'long\n');
  writeFileSync(join(dir, 'ünïcødé 日本.txt'), 'unicode\n');
  writeFileSync(join(dir, 'exec.sh'), '#!/bin/sh\n');
  chmodSync(join(dir, 'exec.sh'), 0o750);
  mkdirSync(join(dir, 'private'));
  writeFileSync(join(dir, 'private/secret'), 'secret');
  chmodSync(join(dir, 'private/secret'), 0o600);
  chmodSync(join(dir, 'private'), 0o700);
  symlinkSync('a/b/c/deep.txt', join(dir, 'link'));
  symlinkSync('../top.txt', join(dir, 'a/b/up'));
  symlinkSync('a/b', join(dir, 'dirlink'));
  const stamp = (rel: string): void => utimesSync(join(dir, rel), FIXED_TIME, FIXED_TIME);
  for (const rel of ['a/b/c/deep.txt', 'a/top.txt', 'zero', LONG_PATH, 'exec.sh', 'private/secret'])
    stamp(rel);
  for (const rel of ['a/b/c', 'a/b', 'a', 'empty', 'private']) stamp(rel);
}

function put(app: FastifyInstance, url: string, payload: Buffer, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'PUT',
    url,
    payload,
    headers: { 'content-type': 'application/x-tar', ...headers },
  });
}

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'ng-archive-'));
  outside = join(base, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'outside secret');
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

beforeEach(() => {
  root = mkdtempSync(join(base, 'root-'));
});

describe('GET /archive', () => {
  let app: FastifyInstance;
  beforeEach(async () => {
    app = await makeApp({ writable: false });
  });
  afterEach(async () => {
    await app.close();
  });

  it('streams the tree as tar: files, dirs, symlinks (not followed), modes and mtimes', async () => {
    makeTree(join(root, 'src'));
    symlinkSync(join(outside, 'secret'), join(root, 'src/escape'));
    const res = await app.inject({ method: 'GET', url: '/archive/src' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-tar');
    const entries = await listTar(res.rawPayload);
    const byName = new Map(entries.map((e) => [e.header.name.replace(/\/$/, ''), e]));
    expect([...byName.keys()].sort()).toEqual(
      [
        '.',
        'a',
        'a/b',
        'a/b/c',
        'a/b/c/deep.txt',
        'a/b/up',
        'a/top.txt',
        'd'.repeat(100),
        `${'d'.repeat(100)}/${'e'.repeat(100)}`,
        LONG_PATH,
        'dirlink',
        'empty',
        'escape',
        'exec.sh',
        'link',
        'private',
        'private/secret',
        'zero',
        'ünïcødé 日本.txt',
      ].sort(),
    );
    expect(byName.get('escape')?.header).toMatchObject({
      type: 'symlink',
      linkname: join(outside, 'secret'),
    });
    expect(byName.get('escape')?.body?.length).toBe(0);
    expect(byName.get('dirlink')?.header).toMatchObject({ type: 'symlink', linkname: 'a/b' });
    expect(byName.get('exec.sh')?.header).toMatchObject({ type: 'file', mode: 0o750, mtime: FIXED_TIME });
    expect(byName.get('private')?.header).toMatchObject({ type: 'directory', mode: 0o700 });
    expect(byName.get('a/top.txt')?.body?.toString()).toBe('top\n'.repeat(1000));
    expect(byName.get('zero')?.header.size).toBe(0);
    expect(byName.get(LONG_PATH)?.body?.toString()).toBe('long\n');
  });

  it('?gzip=1 streams tar.gz', async () => {
    makeTree(join(root, 'src'));
    const res = await app.inject({ method: 'GET', url: '/archive/src?gzip=1' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/gzip');
    expect(res.rawPayload.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const entries = await listTar(gunzipSync(res.rawPayload));
    expect(entries.map((e) => e.header.name)).toContain('a/b/c/deep.txt');
  });

  it('the root itself, and hides staging directories of uploads in progress', async () => {
    writeFileSync(join(root, 'f'), 'x');
    mkdirSync(join(root, '.nullgate-tmp-0123456789abcdef'));
    writeFileSync(join(root, '.nullgate-tmp-0123456789abcdef/half'), 'x');
    for (const url of ['/archive', '/archive/']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      expect((await listTar(res.rawPayload)).map((e) => e.header.name)).toEqual(['./', 'f']);
    }
  });

  it('a missing directory is 404, a file is 409, a symlink leading out is 403', async () => {
    writeFileSync(join(root, 'file'), 'x');
    symlinkSync(outside, join(root, 'out'));
    const cases: [string, number, string][] = [
      ['/archive/missing', 404, 'NG_ERR_NOT_FOUND'],
      ['/archive/file', 409, 'NG_ERR_CONFLICT'],
      ['/archive/out', 403, 'NG_ERR_OUTSIDE_ROOT'],
      ['/archive/%00', 400, 'NG_ERR_BAD_PATH'],
    ];
    for (const [url, status, code] of cases) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(status);
      expect(res.json()).toMatchObject({ statusCode: status, code });
      expect(res.body).not.toContain(base);
    }
  });

  it('`..` in the raw request target is refused (raw request: URL parsers normalise it away)', async () => {
    const { address } = await serve(app);
    const res = await rawRequest(
      address,
      'GET /archive/../../etc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'NG_ERR_BAD_PATH' });
  });

  it('archives FIFOs as FIFO members without opening them (so without blocking on them)', async () => {
    mkdirSync(join(root, 'src'));
    writeFileSync(join(root, 'src/f'), 'x');
    await sh(`mkfifo ${JSON.stringify(join(root, 'src/fifo'))}`);
    const res = await app.inject({ method: 'GET', url: '/archive/src' });
    expect((await listTar(res.rawPayload)).map((e) => [e.header.name, e.header.type])).toEqual([
      ['./', 'directory'],
      ['f', 'file'],
      ['fifo', 'fifo'],
    ]);
  });

  it('a client that disconnects stops the walk and closes every file it opened', async () => {
    mkdirSync(join(root, 'src'));
    // Real data (a file of holes would travel as a small sparse member).
    const MiB = Buffer.alloc(1024 * 1024, 1);
    for (let i = 0; i < 4; i++) {
      const fd = openSync(join(root, `src/big-${i}`), 'w');
      for (let m = 0; m < 32; m++) writeSync(fd, MiB);
      closeSync(fd);
    }
    const { address } = await serve(app);
    const fdCount = (): number => readdirSync('/proc/self/fd').length;
    const before = fdCount();
    const socket = connectSocket(address);
    socket.write('GET /archive/src HTTP/1.1\r\nHost: x\r\n\r\n');
    let received = 0;
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > 1024 * 1024) {
          socket.destroy();
          resolve();
        }
      });
    });
    // Had the walk continued, it would be sending the rest of 128 MiB.
    for (let i = 0; i < 100 && fdCount() > before; i++) await new Promise((r) => setTimeout(r, 50));
    expect(fdCount()).toBeLessThanOrEqual(before);
  });
});

describe('round trip', () => {
  let app: FastifyInstance;
  let curlName: string;
  beforeEach(async () => {
    app = await makeApp();
    ({ curlName } = await serve(app));
  });
  afterEach(async () => {
    await app.close();
  });

  itNeeds(
    ['curl', 'tar', 'python3'],
    'the produced tar lists and extracts with GNU tar and Python, and PUT restores it',
    async () => {
      makeTree(join(root, 'src'));
      const want = treeDigest(join(root, 'src'), { times: true });
      const work = mkdtempSync(join(base, 'work-'));
      const url = 'http://localhost/archive/src';
      await sh(`curl -sSf --abstract-unix-socket "$N" -o "$W/out.tar" ${url}`, { N: curlName, W: work });

      const listing = (await sh(`tar -tf "$W/out.tar"`, { W: work })).stdout.split('\n').filter(Boolean);
      expect(listing).toContain(LONG_PATH);
      expect(listing).toContain('ünïcødé 日本.txt');
      mkdirSync(join(work, 'gnu'));
      await sh(`tar -xpf "$W/out.tar" -C "$W/gnu"`, { W: work });
      expect(treeDigest(join(work, 'gnu'), { times: true })).toEqual(want);

      const py = [
        'import sys, tarfile',
        'tf = tarfile.open(sys.argv[1])',
        'names = tf.getnames()',
        'kw = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}',
        'tf.extractall(sys.argv[2], **kw)',
        'print(len(names))',
      ].join('\n');
      writeFileSync(join(work, 'x.py'), py);
      const count = await sh(`python3 "$W/x.py" "$W/out.tar" "$W/py"`, { W: work });
      expect(Number(count.stdout.trim())).toBe(listing.length);
      expect(treeDigest(join(work, 'py'), { times: true })).toEqual(want);

      // Back up through PUT, with curl -T (chunked, Expect: 100-continue) from GNU tar's own output.
      const { stdout } = await sh(
        `tar -c -C "$W/gnu" . | curl -sSf --abstract-unix-socket "$N" -T - http://localhost/archive/copy/nested`,
        { N: curlName, W: work },
      );
      expect(JSON.parse(stdout)).toEqual({ files: 7, dirs: 7, symlinks: 3, bytes: 4034 });
      expect(treeDigest(join(root, 'copy/nested'), { times: true })).toEqual(want);
      expect(stagingLeft(root)).toEqual([]);
    },
  );

  it('PUT of our own GET restores the tree (inject)', async () => {
    makeTree(join(root, 'src'));
    const got = await app.inject({ method: 'GET', url: '/archive/src' });
    const res = await put(app, '/archive/copy', got.rawPayload);
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ files: 7, dirs: 7, symlinks: 3, bytes: 4034 });
    expect(treeDigest(join(root, 'copy'), { times: true })).toEqual(
      treeDigest(join(root, 'src'), { times: true }),
    );
  });

  itNeeds(['curl', 'tar'], 'gzip both ways: curl | tar -xz, and tar -cz | curl -T', async () => {
    makeTree(join(root, 'src'));
    const work = mkdtempSync(join(base, 'work-'));
    mkdirSync(join(work, 'out'));
    await sh(
      `curl -sSf --abstract-unix-socket "$N" 'http://localhost/archive/src?gzip=1' | tar -xzpf - -C "$W/out"`,
      {
        N: curlName,
        W: work,
      },
    );
    const want = treeDigest(join(root, 'src'), { times: true });
    expect(treeDigest(join(work, 'out'), { times: true })).toEqual(want);
    const { stdout } = await sh(
      `tar -cz -C "$W/out" . | curl -sSf --abstract-unix-socket "$N" -T - http://localhost/archive/fromgz`,
      { N: curlName, W: work },
    );
    expect(JSON.parse(stdout)).toMatchObject({ files: 7 });
    expect(treeDigest(join(root, 'fromgz'), { times: true })).toEqual(want);
  });

  it('gzip is detected by magic bytes, whatever the Content-Type says', async () => {
    const tarball = await packEntries([{ header: { name: 'f', mtime: FIXED_TIME }, body: 'hello' }]);
    const res = await put(app, '/archive/gz', gzipSync(tarball), { 'content-type': 'application/json' });
    expect(res.statusCode).toBe(201);
    expect(readFileSync(join(root, 'gz/f'), 'utf8')).toBe('hello');
  });

  itNeeds(
    ['curl', 'tar', 'python3'],
    'a sparse file over 8 GiB travels as a GNU sparse member: a small archive GNU tar and Python restore',
    async () => {
      const size = 8 * GiB + 4097;
      mkdirSync(join(root, 'bigdir'));
      writeFileSync(join(root, 'bigdir/after'), 'after the giant\n');
      const fd = openSync(join(root, 'bigdir/big'), 'w');
      writeSync(fd, 'HEADHEAD', 0);
      writeSync(fd, 'TAILTAIL', size - 8);
      ftruncateSync(fd, size);
      closeSync(fd);
      const work = mkdtempSync(join(base, 'work-'));
      await sh(`curl -sSf --abstract-unix-socket "$N" -o "$W/big.tar" http://localhost/archive/bigdir`, {
        N: curlName,
        W: work,
      });
      // The holes are not in the archive: only the two data blocks and the map.
      expect(statSync(join(work, 'big.tar')).size).toBeLessThan(64 * 1024);
      const verbose = (await sh(`tar -tvf "$W/big.tar"`, { W: work })).stdout;
      expect(verbose).toMatch(new RegExp(`\\s${size}\\s.*\\bbig\\n`));
      mkdirSync(join(work, 'gnu'));
      await sh(`tar -xf "$W/big.tar" -C "$W/gnu"`, { W: work });
      const st = statSync(join(work, 'gnu/big'));
      expect(st.size).toBe(size);
      expect(st.blocks * 512).toBeLessThan(64 * 1024 * 1024); // arrived sparse
      expect(readAt(join(work, 'gnu/big'), 0, 8)).toBe(Buffer.from('HEADHEAD').toString('hex'));
      expect(readAt(join(work, 'gnu/big'), size - 8, 8)).toBe(Buffer.from('TAILTAIL').toString('hex'));
      expect(readFileSync(join(work, 'gnu/after'), 'utf8')).toBe('after the giant\n');

      writeFileSync(
        join(work, 'check.py'),
        [
          'import sys, tarfile',
          'tf = tarfile.open(sys.argv[1])',
          'm = tf.getmember("big")',
          'assert m.isfile() and m.issparse(), m.pax_headers',
          'f = tf.extractfile(m)',
          'head = f.read(8); f.seek(m.size - 8); tail = f.read(8)',
          'print(m.size, head.decode(), tail.decode(), tf.extractfile("after").read().decode().strip())',
        ].join('\n'),
      );
      const py = await sh(`python3 "$W/check.py" "$W/big.tar"`, { W: work });
      expect(py.stdout.trim()).toBe(`${size} HEADHEAD TAILTAIL after the giant`);
    },
    120_000,
  );
});

describe('PUT /archive refuses unsafe entries and leaves the tree byte-identical', () => {
  let app: FastifyInstance;
  beforeEach(async () => {
    app = await makeApp();
    makeTree(join(root, 'dst'));
    writeFileSync(join(root, 'victim'), 'original');
    symlinkSync('victim', join(root, 'dst/to-victim'));
  });
  afterEach(async () => {
    await app.close();
  });

  const ok = { header: { name: 'fine.txt' }, body: 'fine' };
  const cases: [string, TarSpec[], string][] = [
    ['absolute path', [ok, { header: { name: '/etc/evil' }, body: 'x' }], '/etc/evil'],
    ['.. escape', [ok, { header: { name: '../../evil' }, body: 'x' }], '../../evil'],
    ['.. inside a path', [ok, { header: { name: 'a/../../victim' }, body: 'x' }], 'a/../../victim'],
    [
      'hard link leading outside the root',
      [ok, { header: { name: 'hl', type: 'link', linkname: '../victim' } }],
      'hl',
    ],
    [
      'hard link to an absolute path',
      [ok, { header: { name: 'hl', type: 'link', linkname: '/etc/passwd' } }],
      'hl',
    ],
    [
      'hard link to a file not in the archive',
      [ok, { header: { name: 'hl', type: 'link', linkname: 'a/top.txt' } }],
      'hl',
    ],
    [
      'writing through a symlink made by an earlier entry',
      [
        ok,
        { header: { name: 'sneaky', type: 'symlink', linkname: '..' } },
        { header: { name: 'sneaky/victim' }, body: 'overwritten' },
      ],
      'sneaky/victim',
    ],
    [
      'a directory entry through a symlink made by an earlier entry',
      [
        ok,
        { header: { name: 'sub', type: 'symlink', linkname: 'a' } },
        { header: { name: 'sub/evil', type: 'directory' } },
      ],
      'sub/evil',
    ],
    [
      'a file through a symlink leading out, made by an earlier entry',
      [
        ok,
        { header: { name: 'out', type: 'symlink', linkname: '../../outside' } },
        { header: { name: 'out/secret' }, body: 'overwritten' },
      ],
      'out/secret',
    ],
    [
      'a file through an absolute symlink made by an earlier entry',
      [
        ok,
        { header: { name: 'abs', type: 'symlink', linkname: '/tmp' } },
        { header: { name: 'abs/evil' }, body: 'x' },
      ],
      'abs/evil',
    ],
    [
      'a file through a symlink already in the tree',
      [ok, { header: { name: 'to-victim/x' }, body: 'x' }],
      'to-victim/',
    ],
    [
      'hard link to a file already in the tree, not in the archive',
      [ok, { header: { name: 'hl', type: 'link', linkname: 'zero' } }],
      'hl',
    ],
    [
      'hard link through a symlink made by an earlier entry',
      [
        ok,
        { header: { name: 's', type: 'symlink', linkname: '.' } },
        { header: { name: 'h', type: 'link', linkname: 's/fine.txt' } },
      ],
      'h',
    ],
  ];

  it.each(cases)('%s', async (_kind, entries, named) => {
    const before = treeDigest(root);
    const res = await put(app, '/archive/dst', await packEntries(entries));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ statusCode: 400, code: 'NG_ERR_ARCHIVE_UNSAFE' });
    expect(res.json().message).toContain(`"${named}"`);
    expect(treeDigest(root)).toEqual(before);
    expect(stagingLeft(root)).toEqual([]);
    expect(readFileSync(join(outside, 'secret'), 'utf8')).toBe('outside secret');
  });

  it('the same into a directory that does not exist yet leaves nothing at all', async () => {
    const before = treeDigest(root);
    const entries = [ok, { header: { name: '../escape' }, body: 'x' }];
    const res = await put(app, '/archive/new/deeper/dir', await packEntries(entries));
    expect(res.json()).toMatchObject({ code: 'NG_ERR_ARCHIVE_UNSAFE' });
    expect(treeDigest(root)).toEqual(before);
  });

  it('an in-root symlink in the archive is fine; pointing at an earlier entry works', async () => {
    const entries = [
      { header: { name: 'sub/f' }, body: 'x' },
      { header: { name: 'sub/up', type: 'symlink' as const, linkname: '../../victim' } },
      { header: { name: 'hard', type: 'link' as const, linkname: 'sub/f' } },
    ];
    const res = await put(app, '/archive/dst', await packEntries(entries));
    expect(res.statusCode).toBe(200);
    expect(readlinkSync(join(root, 'dst/sub/up'))).toBe('../../victim');
    expect(statSync(join(root, 'dst/hard')).ino).toBe(statSync(join(root, 'dst/sub/f')).ino);
  });

  it('a target reached through a symlink leading out of the root is refused by the kernel (403)', async () => {
    symlinkSync(outside, join(root, 'escape'));
    const before = readdirSync(outside);
    const res = await put(app, '/archive/escape/x', await packEntries([ok]));
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'NG_ERR_OUTSIDE_ROOT' });
    expect(readdirSync(outside)).toEqual(before);
  });

  it.each([
    ['a path over PATH_MAX', Array.from({ length: 25 }, () => 'a'.repeat(200)).join('/'), 'NG_ERR_BAD_PATH'],
    ['a name over NAME_MAX', `dir/${'n'.repeat(300)}`, 'NG_ERR_BAD_PATH'],
    ['an unsafe long name', `${'u'.repeat(4000)}/../x`, 'NG_ERR_ARCHIVE_UNSAFE'],
  ])('%s is refused naming the entry shortened, not echoed whole', async (_what, name, code) => {
    const before = treeDigest(root);
    const res = await put(app, '/archive/dst', await packEntries([ok, { header: { name }, body: 'x' }]));
    expect(res.statusCode).toBe(400);
    const body = res.json<{ code: string; message: string }>();
    expect(body.code).toBe(code);
    // The first 100 bytes of the name, "…", and how long it was.
    expect(body.message).toContain(`"${name.slice(0, 100)}…" (${name.length} bytes)`);
    expect(res.body.length).toBeLessThan(400);
    expect(treeDigest(root)).toEqual(before);
    expect(stagingLeft(root)).toEqual([]);
  });

  it('symlinks are data: absolute, leading out and dangling targets are created as written', async () => {
    const entries = [
      { header: { name: 'abs', type: 'symlink' as const, linkname: '/etc/passwd' } },
      { header: { name: 'sub/out', type: 'symlink' as const, linkname: '../../../outside/secret' } },
      { header: { name: 'dangling', type: 'symlink' as const, linkname: 'no/such/thing' } },
    ];
    const res = await put(app, '/archive/links', await packEntries(entries));
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ symlinks: 3 });
    expect(readlinkSync(join(root, 'links/abs'))).toBe('/etc/passwd');
    expect(readlinkSync(join(root, 'links/sub/out'))).toBe('../../../outside/secret');
    expect(readlinkSync(join(root, 'links/dangling'))).toBe('no/such/thing');
    expect(readFileSync(join(outside, 'secret'), 'utf8')).toBe('outside secret');
  });

  it('root for root: set-id bits, sticky bits, FIFOs and devices as in the archive', async () => {
    const entries = [
      { header: { name: 'suid', mode: 0o4755 }, body: 'x' },
      { header: { name: 'ro', mode: 0o444 }, body: 'x' },
      { header: { name: 'sticky', type: 'directory' as const, mode: 0o1777 } },
      { header: { name: 'pipe', type: 'fifo' as const, mode: 0o640 } },
      { header: { name: 'null', type: 'character-device' as const, mode: 0o666, devmajor: 1, devminor: 3 } },
    ];
    const res = await put(app, '/archive/modes', await packEntries(entries));
    expect(res.statusCode).toBe(201);
    expect(statSync(join(root, 'modes/suid')).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(root, 'modes/ro')).mode & 0o7777).toBe(0o444);
    expect(statSync(join(root, 'modes/sticky')).mode & 0o7777).toBe(0o1777);
    expect(lstatSync(join(root, 'modes/pipe')).isFIFO()).toBe(true);
    expect(lstatSync(join(root, 'modes/pipe')).mode & 0o7777).toBe(0o640);
    const dev = lstatSync(join(root, 'modes/null'));
    expect(dev.isCharacterDevice()).toBe(true);
    expect(dev.rdev).toBe(statSync('/dev/null').rdev);
  });
});

describe('PUT /archive: all or nothing', () => {
  let app: FastifyInstance;
  afterEach(async () => {
    await app.close();
  });

  async function sample(): Promise<Buffer> {
    return packEntries([
      { header: { name: 'd', type: 'directory' } },
      { header: { name: 'd/one' }, body: 'one'.repeat(300) },
      { header: { name: 'd/two' }, body: 'two'.repeat(300) },
      { header: { name: 'three' }, body: 'three' },
    ]);
  }

  it.each([
    ['inside the first header', 100],
    ['inside file data', 512 + 512 + 300],
    ['at an entry boundary, before the end-of-archive blocks', 512 + 512 + 1024],
    ['inside the end-of-archive blocks', -600],
    ['empty body', 0],
  ])('a tar truncated %s leaves nothing', async (_where, cut) => {
    app = await makeApp();
    const full = await sample();
    const truncated = full.subarray(0, cut < 0 ? full.length + cut : cut);
    for (const url of ['/archive/new', '/archive/']) {
      const before = treeDigest(root);
      const res = await put(app, url, truncated);
      expect(res.statusCode, url).toBe(400);
      expect(res.json()).toMatchObject({ code: 'NG_ERR_ARCHIVE_INVALID' });
      expect(treeDigest(root)).toEqual(before);
    }
  });

  it('a truncated tar.gz and garbage leave nothing', async () => {
    app = await makeApp();
    const gz = gzipSync(await sample());
    for (const body of [
      gz.subarray(0, gz.length - 20),
      Buffer.from('this is not a tar file at all'.repeat(40)),
    ]) {
      const res = await put(app, '/archive/new', body);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'NG_ERR_ARCHIVE_INVALID' });
      expect(readdirSync(root)).toEqual([]);
    }
  });

  it('a client that disconnects mid-upload leaves nothing', async () => {
    app = await makeApp();
    const { address } = await serve(app);
    const full = await sample();
    const socket = connectSocket(address);
    socket.write(
      `PUT /archive/aborted HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: ${full.length}\r\n\r\n`,
    );
    socket.write(full.subarray(0, 1200));
    await new Promise((r) => setTimeout(r, 200));
    socket.destroy();
    for (let i = 0; i < 50 && stagingLeft(root).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 100));
    expect(readdirSync(root)).toEqual([]);
  });

  it('read-only servers refuse with 403 NG_ERR_READ_ONLY', async () => {
    app = await makeApp({ writable: false });
    const res = await put(app, '/archive/x', await sample());
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'NG_ERR_READ_ONLY' });
    expect(readdirSync(root)).toEqual([]);
  });

  it('over maxUpload: 413 from Content-Length, from a chunked body, and from a gzip bomb', async () => {
    app = await makeApp({ maxUpload: 4096 });
    const big = await packEntries([{ header: { name: 'big' }, body: 'x'.repeat(10_000) }]);
    const res = await put(app, '/archive/x', big);
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: 'NG_ERR_PAYLOAD_TOO_LARGE' });

    const { address } = await serve(app);
    const chunk = (b: Buffer): string => `${b.length.toString(16)}\r\n${b.toString('latin1')}\r\n`;
    const raw = await rawRequest(
      address,
      Buffer.from(
        `PUT /archive/y HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
          chunk(big.subarray(0, 3000)) +
          chunk(big.subarray(3000, 6000)) +
          chunk(big.subarray(6000)) +
          '0\r\n\r\n',
        'latin1',
      ),
    );
    expect(raw.status).toBe(413);

    const bomb = gzipSync(await packEntries([{ header: { name: 'zeros' }, body: '\0'.repeat(100_000) }]));
    expect(bomb.length).toBeLessThan(4096);
    const res3 = await put(app, '/archive/z', bomb);
    expect(res3.statusCode).toBe(413);
    expect(readdirSync(root)).toEqual([]);
  });

  itNeeds(['root', 'mount'], 'a full disk is 507 and leaves nothing', async () => {
    const small = join(root, 'small');
    mkdirSync(small);
    await sh(`mount -t tmpfs -o size=256k tmpfs "$D"`, { D: small });
    try {
      app = await makeApp({ root: small });
      writeFileSync(join(small, 'keep'), 'keep');
      const big = await packEntries([
        { header: { name: 'a' }, body: 'x'.repeat(100_000) },
        { header: { name: 'b' }, body: 'y'.repeat(400_000) },
      ]);
      const res = await put(app, '/archive/', big);
      expect(res.statusCode).toBe(507);
      expect(res.json()).toMatchObject({ code: 'NG_ERR_INSUFFICIENT_STORAGE' });
      expect(readdirSync(small)).toEqual(['keep']);
    } finally {
      await app.close();
      await sh(`umount "$D"`, { D: small });
    }
  });
});

describe('PUT /archive into an existing directory merges', () => {
  let app: FastifyInstance;
  beforeEach(async () => {
    app = await makeApp();
    mkdirSync(join(root, 'dst/keep/sub'), { recursive: true });
    writeFileSync(join(root, 'dst/keep/sub/old'), 'old');
    writeFileSync(join(root, 'dst/replace-me'), 'old');
    writeFileSync(join(root, 'dst/untouched'), 'old');
    mkdirSync(join(root, 'dst/a-dir'));
  });
  afterEach(async () => {
    await app.close();
  });

  it('adds new entries, replaces files, merges directories (200)', async () => {
    const res = await put(
      app,
      '/archive/dst',
      await packEntries([
        { header: { name: './', type: 'directory', mode: 0o700 } },
        { header: { name: 'keep/sub/new' }, body: 'new' },
        { header: { name: 'keep/fresh/f' }, body: 'fresh' },
        { header: { name: 'replace-me' }, body: 'new' },
        { header: { name: 'added' }, body: 'new' },
      ]),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ files: 4, dirs: 3, symlinks: 0, bytes: 14 });
    expect(treeDigest(join(root, 'dst')).map((l) => l.replace(/ [0-9a-f]{16}$/, ''))).toEqual([
      'a-dir dir 755',
      'added file 644 3',
      'keep dir 755',
      'keep/fresh dir 755',
      'keep/fresh/f file 644 5',
      'keep/sub dir 755',
      'keep/sub/new file 644 3',
      'keep/sub/old file 644 3',
      'replace-me file 644 3',
      'untouched file 644 3',
    ]);
    expect(readFileSync(join(root, 'dst/replace-me'), 'utf8')).toBe('new');
    expect(readFileSync(join(root, 'dst/keep/sub/old'), 'utf8')).toBe('old');
    // The existing directory takes the './' entry's mode, as with tar -xp (root for root).
    expect(statSync(join(root, 'dst')).mode & 0o777).toBe(0o700);
    expect(stagingLeft(root)).toEqual([]);
  });

  it('a directory meeting a file is 409 and nothing changes', async () => {
    const before = treeDigest(root);
    for (const entries of [
      [
        { header: { name: 'added' }, body: 'new' },
        { header: { name: 'untouched/x' }, body: 'x' },
      ],
      [
        { header: { name: 'added' }, body: 'new' },
        { header: { name: 'a-dir' }, body: 'x' },
      ],
    ]) {
      const res = await put(app, '/archive/dst', await packEntries(entries));
      expect(res.statusCode).toBe(409);
      expect(res.json()).toMatchObject({ code: 'NG_ERR_CONFLICT' });
      expect(treeDigest(root)).toEqual(before);
    }
  });

  it('a file in the way of the target is 409', async () => {
    const res = await put(
      app,
      '/archive/dst/untouched/below',
      await packEntries([{ header: { name: 'f' }, body: 'x' }]),
    );
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'NG_ERR_CONFLICT' });
  });

  it('later entries replace earlier ones of the same name, never writing through a link', async () => {
    const res = await put(
      app,
      '/archive/fresh',
      await packEntries([
        { header: { name: 'x', type: 'symlink', linkname: '../dst/untouched' } },
        { header: { name: 'x' }, body: 'replaced the link' },
      ]),
    );
    expect(res.statusCode).toBe(201);
    expect(readFileSync(join(root, 'fresh/x'), 'utf8')).toBe('replaced the link');
    expect(readFileSync(join(root, 'dst/untouched'), 'utf8')).toBe('old');
  });
});

describe('PUT /archive: staging at the top of the root, reserved names, methods, targets', () => {
  let app: FastifyInstance;
  afterEach(async () => {
    await app.close();
  });

  it('stages at the top of the root (where the startup sweep looks), not inside the target', async () => {
    mkdirSync(join(root, 'target'));
    app = await makeApp();
    const { address } = await serve(app);
    const full = await packEntries([{ header: { name: 'f' }, body: 'x'.repeat(4000) }]);
    const socket = connectSocket(address);
    socket.on('error', () => undefined);
    socket.write(
      `PUT /archive/target HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: ${full.length}\r\n\r\n`,
    );
    socket.write(full.subarray(0, 1024));
    const top = (): string[] => readdirSync(root).filter((n) => n.startsWith('.nullgate-tmp-'));
    try {
      for (let i = 0; i < 100 && top().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(top()).toHaveLength(1);
      expect(readdirSync(join(root, 'target'))).toEqual([]);
    } finally {
      socket.destroy();
    }
    for (let i = 0; i < 100 && stagingLeft(root).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(tree(root)).toEqual(['target']);
  });

  it('a writable plugin sweeps stale staging directories at the top of the root at registration', async () => {
    mkdirSync(join(root, '.nullgate-tmp-00000000000000ff/target'), { recursive: true });
    writeFileSync(join(root, '.nullgate-tmp-00000000000000ff/target/z'), 'partial');
    app = await makeApp();
    expect(readdirSync(root)).toEqual([]);
  });

  it.each([
    [
      'a member named like a temporary',
      [{ header: { name: '.nullgate-tmp-0123456789abcdef/z' }, body: 'x' }],
    ],
    [
      'a directory named like one',
      [{ header: { name: 'ok/.nullgate-tmp-mine/', type: 'directory' as const } }],
    ],
    [
      'a symlink into one',
      [{ header: { name: 'l', type: 'symlink' as const, linkname: '.nullgate-tmp-0123456789abcdef/z' } }],
    ],
  ])('%s is 400 NG_ERR_ARCHIVE_UNSAFE naming the entry, and nothing stays', async (_what, entries) => {
    writeFileSync(join(root, 'keep'), 'keep');
    app = await makeApp();
    const before = treeDigest(root);
    const res = await put(
      app,
      '/archive/',
      await packEntries([{ header: { name: 'first' }, body: '1' }, ...entries]),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'NG_ERR_ARCHIVE_UNSAFE' });
    expect((res.json() as { message: string }).message).toContain(`"${entries[0]!.header.name}"`);
    expect(treeDigest(root)).toEqual(before);
    expect(stagingLeft(root)).toEqual([]);
  });

  it("answers the contract's {files, dirs, bytes} (plus symlinks), for a new and a merged directory", async () => {
    app = await makeApp();
    const body = await packEntries([
      { header: { name: 'd', type: 'directory' } },
      { header: { name: 'd/f' }, body: 'abc' },
      { header: { name: 'l', type: 'symlink', linkname: 'd/f' } },
    ]);
    for (const status of [201, 200]) {
      const res = await put(app, '/archive/out', body);
      expect(res.statusCode).toBe(status);
      const json = res.json() as Record<string, number>;
      expect(json).toMatchObject({ files: 1, dirs: 1, bytes: 3 });
      expect(Object.keys(json).sort()).toEqual(['bytes', 'dirs', 'files', 'symlinks']);
    }
  });

  it.each(['DELETE', 'PATCH', 'OPTIONS'] as const)(
    '%s is 405 NG_ERR_METHOD_NOT_ALLOWED with Allow: GET, HEAD, POST, PUT',
    async (method) => {
      mkdirSync(join(root, 'x'));
      app = await makeApp();
      for (const url of ['/archive/x', '/archive/', '/archive']) {
        const res = await app.inject({ method, url });
        expect(res.statusCode, `${method} ${url}`).toBe(405);
        expect(res.headers.allow).toBe('GET, HEAD, POST, PUT');
        expect(res.json()).toMatchObject({ statusCode: 405, code: 'NG_ERR_METHOD_NOT_ALLOWED' });
      }
      expect(statSync(join(root, 'x')).isDirectory()).toBe(true);
    },
  );

  it('absolute-form targets (RFC 9112 §3.2.2) name the same directory, `..` still refused', async () => {
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'sub/f'), 'abs');
    app = await makeApp();
    const { address } = await serve(app);
    const get = await rawRequest(
      address,
      'GET http://localhost/archive/sub HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(get.status).toBe(200);
    expect((await listTar(get.body)).map((e) => [e.header.name, e.body?.toString()])).toEqual([
      ['./', ''],
      ['f', 'abs'],
    ]);
    const body = await packEntries([{ header: { name: 'g' }, body: 'put' }]);
    const putRes = await rawRequest(
      address,
      Buffer.concat([
        Buffer.from(
          `PUT http://localhost/archive/sub HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`,
        ),
        body,
      ]),
    );
    expect(putRes.status).toBe(200);
    expect(readFileSync(join(root, 'sub/g'), 'utf8')).toBe('put');
    const up = await rawRequest(
      address,
      'GET http://localhost/archive/../x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(up.status).toBe(400);
  });
});

describe('PUT /archive merging into an existing directory is undone when a rename fails', () => {
  itNeeds(
    ['root', 'mount'],
    'a failure mid-way renames the replaced entries back: the tree is as it was',
    async () => {
      // The root and a directory inside the target are two tmpfs mounts: the staged entry for
      // dst/sub cannot be renamed across them (EXDEV), after other entries have been merged.
      const top = join(root, 'top');
      mkdirSync(top);
      await sh(`mount -t tmpfs -o size=4m tmpfs "$D"`, { D: top });
      let app: FastifyInstance | undefined;
      try {
        mkdirSync(join(top, 'dst/sub'), { recursive: true });
        await sh(`mount -t tmpfs -o size=1m tmpfs "$D"`, { D: join(top, 'dst/sub') });
        try {
          writeFileSync(join(top, 'dst/a'), 'old a');
          writeFileSync(join(top, 'dst/c'), 'old c');
          writeFileSync(join(top, 'dst/sub/kept'), 'kept');
          // Merge moves follow the staging directory's listing order; on tmpfs that is a fixed
          // order of creation: make `sub` the last one listed, so a, b and c move before it fails.
          mkdirSync(join(top, 'probe'));
          writeFileSync(join(top, 'probe/first'), '');
          writeFileSync(join(top, 'probe/second'), '');
          // (opendir: readdirSync sorts the names.)
          const probe = opendirSync(join(top, 'probe'));
          const newestFirst = probe.readSync()?.name === 'second';
          probe.closeSync();
          rmSync(join(top, 'probe'), { recursive: true });
          const others = [
            { header: { name: 'a' }, body: 'new a' },
            { header: { name: 'b' }, body: 'new b' },
            { header: { name: 'c' }, body: 'new c' },
          ];
          const failing = { header: { name: 'sub/f' }, body: 'never' };
          const entries = newestFirst ? [failing, ...others] : [...others, failing];
          // An old mtime on the target: a rename into it that is not undone shows at once.
          utimesSync(join(top, 'dst'), FIXED_TIME, FIXED_TIME);
          const before = treeDigest(top, { times: true });
          app = await makeApp({ root: top });
          const res = await put(app, '/archive/dst', await packEntries(entries));
          expect(res.statusCode).toBeGreaterThanOrEqual(400);
          expect(treeDigest(top, { times: true })).toEqual(before);
          expect(readFileSync(join(top, 'dst/a'), 'utf8')).toBe('old a');
          expect(stagingLeft(top)).toEqual([]);
        } finally {
          await app?.close();
          await sh(`umount "$D"`, { D: join(top, 'dst/sub') });
        }
      } finally {
        await sh(`umount "$D"`, { D: top });
      }
    },
  );
});

describe('PUT /archive with Expect: 100-continue (curl -T sends it)', () => {
  let app: FastifyInstance;
  afterEach(async () => {
    await app.close();
  });

  /** Sends the head, waits (bounded) for what the server says first, then the body if asked. */
  async function putExpecting(
    address: string,
    target: string,
    body: Buffer,
  ): Promise<{ first: string; final: string }> {
    const socket = connectSocket(address);
    socket.on('error', () => undefined);
    let received = '';
    const seen = (pattern: RegExp): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${String(pattern)} within 5 s: ${received}`)),
          5000,
        );
        const check = (): void => {
          if (!pattern.test(received)) return;
          clearTimeout(timer);
          socket.off('data', onData);
          resolve();
        };
        const onData = (c: Buffer): void => {
          received += c.toString('latin1');
          check();
        };
        socket.on('data', onData);
        check();
      });
    try {
      socket.write(
        `PUT ${target} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      await seen(/^HTTP\/1\.1 \d{3} [^\r]*\r\n/);
      const first = received.split('\r\n')[0]!;
      if (first.startsWith('HTTP/1.1 100')) socket.write(body);
      await seen(/HTTP\/1\.1 [2-5]\d\d [^]*\r\n\r\n\{[^]*\}$/);
      return { first, final: received };
    } finally {
      socket.destroy();
    }
  }

  it('is answered 100 Continue, then the archive is extracted', async () => {
    app = await makeApp();
    const { address } = await serve(app);
    const body = await packEntries([{ header: { name: 'f.txt' }, body: 'continued' }]);
    const { first, final } = await putExpecting(address, '/archive/cont', body);
    expect(first).toBe('HTTP/1.1 100 Continue');
    expect(final).toMatch(/HTTP\/1\.1 201 Created/);
    expect(readFileSync(join(root, 'cont/f.txt'), 'utf8')).toBe('continued');
  });

  it.each([
    ['a file in the way (409)', 409, 10, () => writeFileSync(join(root, 'cont'), 'a file')],
    ['over --max-upload (413)', 413, 20_000, () => undefined],
  ])('refused before the body, without 100 Continue: %s', async (_what, status, size, prepare) => {
    prepare();
    app = await makeApp({ maxUpload: 8192 });
    const { address } = await serve(app);
    const body = await packEntries([{ header: { name: 'f.txt' }, body: 'x'.repeat(size) }]);
    const { first, final } = await putExpecting(address, '/archive/cont', body);
    expect(first).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(final.toLowerCase()).toContain('connection: close');
    expect(stagingLeft(root)).toEqual([]);
  });
});
