/**
 * GET /archive keeps what `tar --xattrs --sparse --numeric-owner -p` keeps (CONTRACT.md "Trees
 * arrive as they left"): a tree with every kind of entry is archived by nullgate and restored by
 * GNU tar (as root, --xattrs --sparse -p) and by Python's tarfile, then compared entry by entry
 * with the source: owners, every mode bit (0000 too), nanosecond mtimes, a hard-link pair
 * (one inode after extraction), user.*, security.capability and ACL (system.posix_acl_access)
 * xattrs, a 1 GiB sparse file with 64 KiB of data (a small archive, and it arrives sparse), a
 * FIFO and a character device.
 * Sockets are skipped with one warning line. The same tree gives the same bytes twice.
 */
import { exec, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  linkSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  ftruncateSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildApp } from '../../gateway/app.js';
import { listenAbstract } from '../../gateway/listen.js';
import { uniqueName } from '../helpers/sockets.js';
import { readTar } from '../../core/tar-read.js';
import { archiveRoutes } from '../../routes/archive/plugin.js';
import { packPieces, readFileRange } from '../../routes/archive/pack.js';
import { BeneathRoot } from '../../native/beneath.js';
import { has, itNeeds } from '../helpers/requirements.js';

const execAsync = promisify(exec);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const NS = 1_000_000_000n;

let base: string;
let root: string;

function sh(cmd: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return execAsync(cmd, { env: { ...process.env, ...env }, maxBuffer: 64 * MiB, shell: '/bin/bash' });
}

/** lutimes with nanoseconds (touch -h -d @S.N), for symlinks as well. */
function touchNs(path: string, ns: bigint): void {
  execFileSync('touch', ['-h', '-d', `@${ns / NS}.${(ns % NS).toString().padStart(9, '0')}`, path]);
}

function contentHash(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(8 * MiB);
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex').slice(0, 16);
}

/** Extended attributes of `path` itself, as getfattr shows them (hex values). */
function xattrsOf(path: string): string {
  const out = execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path], {
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .join(' ');
}

/**
 * One line per entry under `dir` (not `dir` itself): type, mode bits, owner, ns mtime, size,
 * content, link target or device numbers, xattrs, and for a second name of an inode the first.
 */
function describeTree(
  dir: string,
  options: { xattrs?: boolean; mtimeNs?: boolean; linkTimes?: boolean } = {},
): string[] {
  const lines: string[] = [];
  const inodes = new Map<bigint, string>();
  const walk = (rel: string): void => {
    const names = readdirSync(join(dir, rel)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const full = join(dir, childRel);
      const st = lstatSync(full, { bigint: true });
      const mtime = options.mtimeNs === false ? st.mtimeNs / 1000n : st.mtimeNs;
      const time = options.linkTimes === false && st.isSymbolicLink() ? '' : ` t=${mtime}`;
      let line = `${childRel} ${(st.mode & 0o7777n).toString(8)} ${st.uid}:${st.gid}${time}`;
      if (!st.isDirectory() && st.nlink > 1n) {
        const first = inodes.get(st.ino);
        if (first !== undefined) line += ` same-inode-as=${first}`;
        else inodes.set(st.ino, childRel);
      }
      if (st.isDirectory()) line += ' dir';
      else if (st.isSymbolicLink()) line += ` symlink -> ${readlinkSync(full)}`;
      else if (st.isFile()) line += ` file ${st.size} ${contentHash(full)}`;
      else if (st.isFIFO()) line += ' fifo';
      else if (st.isCharacterDevice()) line += ` char ${st.rdev}`;
      else if (st.isBlockDevice()) line += ` block ${st.rdev}`;
      else if (st.isSocket()) line += ' socket';
      if (options.xattrs !== false && !st.isSymbolicLink()) line += ` [${xattrsOf(full)}]`;
      lines.push(line);
      if (st.isDirectory()) walk(childRel);
    }
  };
  walk('');
  return lines;
}

/** The fixture tree of issue 12 (as root): every kind of entry the contract keeps. */
function makeFixture(dir: string): void {
  mkdirSync(join(dir, 'hard/a'), { recursive: true });
  mkdirSync(join(dir, 'hard/b'));
  mkdirSync(join(dir, 'sticky'));
  chmodSync(join(dir, 'sticky'), 0o1777);
  const file = (rel: string, content: string, mode: number, owner: [number, number] = [0, 0]): void => {
    writeFileSync(join(dir, rel), content);
    lchownSync(join(dir, rel), owner[0], owner[1]);
    chmodSync(join(dir, rel), mode);
  };
  file('owned', 'owned by 1234:2345\n', 0o644, [1234, 2345]);
  file('setuid', '#!/bin/sh\n', 0o4755, [1234, 2345]);
  file('setgid', '#!/bin/sh\n', 0o2755);
  file('private', 'private\n', 0o600);
  file('nothing', 'mode 0000\n', 0o000);
  file('hard/a/one', 'one inode, two names\n', 0o640, [1234, 2345]);
  linkSync(join(dir, 'hard/a/one'), join(dir, 'hard/b/two'));
  file('caps', 'capable\n', 0o755);
  execFileSync('setcap', ['cap_net_raw,cap_net_bind_service+ep', join(dir, 'caps')]);
  execFileSync('setfattr', ['-n', 'user.comment', '-v', '0x00ff0a3d20', join(dir, 'owned')]);
  execFileSync('setfattr', ['-n', 'user.mime_type', '-v', 'text/plain', join(dir, 'owned')]);
  execFileSync('setfattr', ['-n', 'user.dir', '-v', 'yes', join(dir, 'sticky')]);
  // A POSIX ACL (user 1234 may read), as the kernel stores it: version 2, then (tag, perm, id).
  const acl =
    '0x02000000' +
    '01000600ffffffff' +
    '02000400d2040000' +
    '04000400ffffffff' +
    '10000400ffffffff' +
    '20000000ffffffff';
  execFileSync('setfattr', ['-n', 'system.posix_acl_access', '-v', acl, join(dir, 'private')]);
  // 1 GiB with 64 KiB of data in the middle.
  const fd = openSync(join(dir, 'sparse.img'), 'w');
  writeSync(fd, Buffer.alloc(64 * 1024, 0x5a), 0, 64 * 1024, 512 * MiB);
  ftruncateSync(fd, GiB);
  closeSync(fd);
  execFileSync('mkfifo', ['-m', '0620', join(dir, 'fifo')]);
  execFileSync('mknod', ['-m', '0666', join(dir, 'null'), 'c', '1', '3']);
  symlinkSync('/etc/alternatives/editor', join(dir, 'abs-link'));
  symlinkSync('../../outside', join(dir, 'sticky/out-link'));
  symlinkSync('missing', join(dir, 'dangling'));
  lchownSync(join(dir, 'dangling'), 1234, 2345);
  // Nanosecond mtimes, contents before their directories.
  let t = 1_700_000_000n * NS + 123_456_789n;
  for (const rel of [
    'owned',
    'setuid',
    'setgid',
    'private',
    'nothing',
    'hard/a/one',
    'caps',
    'sparse.img',
    'fifo',
    'null',
    'abs-link',
    'sticky/out-link',
    'dangling',
    'hard/a',
    'hard/b',
    'hard',
    'sticky',
  ]) {
    touchNs(join(dir, rel), t);
    t += 1_000_001n;
  }
}

/** A UNIX socket file at `path` (left behind by the process that bound it). */
function makeSocket(path: string): void {
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
}

describe('GET /archive keeps the whole tree', () => {
  const needs = ['root', 'tar', 'python3', 'setcap', 'setfattr'] as const;
  let app: FastifyInstance;
  let logs: string[];
  let archive: Buffer;
  let source: string[];

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'ng-archive-pack-'));
    root = join(base, 'root');
    mkdirSync(join(root, 'src'), { recursive: true });
    if (!needs.every((r) => has(r))) return;
    makeFixture(join(root, 'src'));
    makeSocket(join(root, 'src/sock'));
    logs = [];
    app = buildApp({
      logLevel: 'warn',
      logStream: { write: (line: string) => logs.push(line) } as unknown as NodeJS.WritableStream,
    });
    await app.register(archiveRoutes, { prefix: '/archive', root, writable: false });
    await app.ready();
    const res = await app.inject({ method: 'GET', url: '/archive/src' });
    expect(res.statusCode).toBe(200);
    archive = res.rawPayload;
    writeFileSync(join(base, 'out.tar'), archive);
    // The source without its socket (tar cannot carry one).
    source = describeTree(join(root, 'src')).filter((l) => !l.startsWith('sock '));
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    rmSync(base, { recursive: true, force: true });
  });

  itNeeds([...needs], 'GNU tar --xattrs --sparse -p restores every entry as it was', async () => {
    const out = join(base, 'gnu');
    mkdirSync(out);
    await sh(`tar --xattrs --xattrs-include='*' --sparse -xpf "$B/out.tar" -C "$B/gnu"`, { B: base });
    expect(describeTree(out)).toEqual(source);
    // The holes arrived as holes.
    expect(statSync(join(out, 'sparse.img')).blocks * 512).toBeLessThan(MiB);
  });

  itNeeds(
    [...needs],
    "Python's tarfile reads every member and restores owners, modes, links, devices and holes",
    async () => {
      const script = [
        'import sys, tarfile, json',
        'tf = tarfile.open(sys.argv[1])',
        'kw = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}',
        'tf.extractall(sys.argv[2], numeric_owner=True, **kw)',
        'out = {}',
        'for m in tf.getmembers():',
        '    x = {k[13:]: v.encode("utf-8", "surrogateescape").hex() for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}',
        '    out[m.name] = [m.type.decode(), oct(m.mode), m.uid, m.gid, m.pax_headers.get("mtime"), m.linkname, m.devmajor, m.devminor, m.size, m.issparse(), x]',
        'print(json.dumps(out))',
      ].join('\n');
      writeFileSync(join(base, 'read.py'), script);
      const { stdout } = await sh(`python3 "$B/read.py" "$B/out.tar" "$B/py"`, { B: base });
      const members = JSON.parse(stdout) as Record<string, unknown[]>;
      expect(members['owned']).toEqual([
        '0',
        '0o644',
        1234,
        2345,
        '1700000000.123456789',
        '',
        0,
        0,
        19,
        false,
        { 'user.comment': '00ff0a3d20', 'user.mime_type': Buffer.from('text/plain').toString('hex') },
      ]);
      expect(members['nothing']?.slice(0, 2)).toEqual(['0', '0o0']);
      expect(members['setuid']?.slice(0, 2)).toEqual(['0', '0o4755']);
      expect(members['sticky']?.slice(0, 2)).toEqual(['5', '0o1777']);
      expect(members['hard/b/two']?.[0]).toBe('1');
      expect(members['hard/b/two']?.[5]).toBe('hard/a/one');
      expect(members['null']?.slice(0, 1).concat(members['null']!.slice(6, 8))).toEqual(['3', 1, 3]);
      expect(members['fifo']?.[0]).toBe('6');
      expect(members['sparse.img']?.slice(8, 10)).toEqual([GiB, true]);
      expect(Object.keys(members['caps']![10] as object)).toEqual(['security.capability']);
      expect(members['sock']).toBeUndefined();
      // Extracted: tarfile sets times through float seconds, so compare them to the microsecond;
      // it restores no xattrs and no symlink times.
      const py = join(base, 'py');
      const loose = { xattrs: false, mtimeNs: false, linkTimes: false };
      const want = describeTree(join(root, 'src'), loose).filter((l) => !l.startsWith('sock '));
      expect(describeTree(py, loose)).toEqual(want);
      expect(statSync(join(py, 'sparse.img')).blocks * 512).toBeLessThan(MiB);
    },
  );

  itNeeds(
    [...needs],
    'the archive is small (holes are not stored) and its members are in byte order',
    async () => {
      expect(archive.length).toBeLessThan(MiB);
      const names: string[] = [];
      for await (const m of readTar([archive])) {
        names.push(m.header.name);
        for await (const piece of m.pieces()) void piece;
      }
      expect(names).toEqual([
        './',
        'abs-link',
        'caps',
        'dangling',
        'fifo',
        'hard/',
        'hard/a/',
        'hard/a/one',
        'hard/b/',
        'hard/b/two',
        'nothing',
        'null',
        'owned',
        'private',
        'setgid',
        'setuid',
        'sparse.img',
        'sticky/',
        'sticky/out-link',
      ]);
    },
  );

  itNeeds([...needs], 'the socket is skipped with one warning line naming it', () => {
    const warnings = logs.filter((l) => l.includes('socket'));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ sockets: ['/src/sock'], count: 1 });
  });

  itNeeds(
    [...needs],
    'PUT of that archive (root peer, root server) restores every entry as it was',
    async () => {
      const writable = buildApp({ logLevel: false });
      await writable.register(archiveRoutes, { prefix: '/archive', root, writable: true });
      await writable.ready();
      try {
        const res = await writable.inject({
          method: 'PUT',
          url: '/archive/copy',
          payload: archive,
          headers: { 'content-type': 'application/x-tar' },
        });
        expect(res.statusCode, res.body).toBe(201);
        expect(describeTree(join(root, 'copy'))).toEqual(source);
        expect(statSync(join(root, 'copy/sparse.img')).blocks * 512).toBeLessThan(MiB);
      } finally {
        await writable.close();
        rmSync(join(root, 'copy'), { recursive: true, force: true });
      }
    },
  );

  itNeeds([...needs], 'the same tree gives the same bytes twice', async () => {
    const again = await app.inject({ method: 'GET', url: '/archive/src' });
    expect(again.rawPayload.equals(archive)).toBe(true);
  });
});

describe('GET /archive without privileges needed', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'ng-archive-pack-'));
    root = join(base, 'root');
    mkdirSync(join(root, 'src/d'), { recursive: true });
    app = buildApp({ logLevel: false });
    await app.register(archiveRoutes, { prefix: '/archive', root, writable: false });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    rmSync(base, { recursive: true, force: true });
  });

  it('entries in byte order of their names, a directory before its contents', async () => {
    for (const name of ['b', 'B', 'a', '_', 'é', 'a.txt', 'Z']) writeFileSync(join(root, 'src', name), name);
    writeFileSync(join(root, 'src/d/inner'), 'x');
    const res = await app.inject({ method: 'GET', url: '/archive/src' });
    const names: string[] = [];
    for await (const m of readTar([res.rawPayload])) {
      names.push(m.header.name);
      for await (const piece of m.pieces()) void piece;
    }
    // `./` first: the top directory itself, as GNU tar -C dir . writes it.
    expect(names).toEqual(['./', 'B', 'Z', '_', 'a', 'a.txt', 'b', 'd/', 'd/inner', 'é']);
  });

  it('mode 0000 stays 0000, and nanosecond mtimes travel', async () => {
    writeFileSync(join(root, 'src/zero'), 'x');
    chmodSync(join(root, 'src/zero'), 0);
    touchNs(join(root, 'src/zero'), 1_600_000_000n * NS + 1n);
    const res = await app.inject({ method: 'GET', url: '/archive/src' });
    for await (const m of readTar([res.rawPayload])) {
      if (m.header.name === 'zero')
        expect(m.header).toMatchObject({ mode: 0, mtimeNs: 1_600_000_000n * NS + 1n });
      for await (const piece of m.pieces()) void piece;
    }
  });
});

describe('names that are not UTF-8 are carried as bytes, never dropped', () => {
  let app: FastifyInstance;
  let dir: string;
  const bad = Buffer.from([0x62, 0x61, 0x64, 0xff]); // "bad\xff"
  const inner = Buffer.from([0x69, 0x6e, 0xfe, 0x2e, 0x74]); // "in\xfe.t"
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-archive-names-'));
    const src = Buffer.from(join(dir, 'root/src'));
    mkdirSync(Buffer.concat([src, Buffer.from('/'), bad]), { recursive: true });
    writeFileSync(Buffer.concat([src, Buffer.from('/'), bad, Buffer.from('/'), inner]), 'payload\n');
    symlinkSync(Buffer.from([0x74, 0xe9]), Buffer.concat([src, Buffer.from('/link')]));
    writeFileSync(join(dir, 'root/src/plain'), 'plain\n');
    app = buildApp({ root: join(dir, 'root'), logLevel: false });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('GET /files lists them, escaped in the JSON (\\udcXX for each byte that is not UTF-8)', async () => {
    const res = await app.inject({ url: '/files/src/' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('"name":"bad\\udcff"');
    const names = (res.json() as { entries: { name: string }[] }).entries.map((e) => e.name);
    expect(names).toEqual(['bad\udcff', 'link', 'plain']);
  });

  it('a URL names them by their bytes, percent-encoded (/files/src/bad%FF/in%FE.t)', async () => {
    const inside = await app.inject({ url: '/files/src/bad%FF/' });
    expect(inside.statusCode).toBe(200);
    expect(inside.json()).toMatchObject({ path: '/src/bad\udcff/', entries: [{ name: 'in\udcfe.t' }] });
    const file = await app.inject({ url: '/files/src/bad%ff/in%FE.t' });
    expect(file.statusCode).toBe(200);
    expect(file.body).toBe('payload\n');
    // The archive's suggested file name carries the byte back as its escape (RFC 8187 filename*).
    const archive = await app.inject({ url: '/archive/src/bad%FF' });
    expect(archive.statusCode).toBe(200);
    expect(archive.headers['content-disposition']).toBe(
      `attachment; filename="bad_.tar"; filename*=UTF-8''bad%FF.tar`,
    );
  });

  itNeeds(
    ['tar'],
    'GET /archive carries them as their bytes (pax path, hdrcharset=BINARY): GNU tar restores them',
    async () => {
      const res = await app.inject({ url: '/archive/src' });
      expect(res.statusCode).toBe(200);
      writeFileSync(join(dir, 'names.tar'), res.rawPayload);
      mkdirSync(join(dir, 'out'));
      execFileSync('tar', ['-xf', join(dir, 'names.tar'), '-C', join(dir, 'out')]);
      const top = readdirSync(join(dir, 'out'), { encoding: 'buffer' })
        .map((b) => b.toString('hex'))
        .sort();
      expect(top).toEqual(
        [bad, Buffer.from('link'), Buffer.from('plain')].map((b) => b.toString('hex')).sort(),
      );
      const out = Buffer.from(join(dir, 'out/'));
      const under = readdirSync(Buffer.concat([out, bad]), { encoding: 'buffer' });
      expect(under).toEqual([inner]);
      expect(readlinkSync(Buffer.concat([out, Buffer.from('link')]), { encoding: 'buffer' })).toEqual(
        Buffer.from([0x74, 0xe9]),
      );
    },
  );
});

describe('GET /archive sends member data with sendfile (zero-copy), framing the chunks itself', () => {
  let app: FastifyInstance;
  let dir: string;
  let curlName: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-archive-zc-'));
    mkdirSync(join(dir, 'root/src/sub'), { recursive: true });
    writeFileSync(join(dir, 'root/src/big.bin'), randomBytes(3 * MiB + 123));
    writeFileSync(join(dir, 'root/src/small.txt'), 'small\n');
    writeFileSync(join(dir, 'root/src/sub/mid.bin'), randomBytes(300 * 1024));
    const fd = openSync(join(dir, 'root/src/holes.img'), 'w');
    writeSync(fd, randomBytes(MiB), 0, MiB, 4 * MiB);
    writeSync(fd, randomBytes(1000), 0, 1000, 9 * MiB);
    ftruncateSync(fd, 16 * MiB);
    closeSync(fd);
    app = buildApp({ root: join(dir, 'root'), logLevel: false });
    await app.ready();
    const address = uniqueName('archive-zc');
    await listenAbstract(app.server, address);
    curlName = address.slice(1);
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  itNeeds(
    ['curl', 'tar'],
    'byte-exact through curl, twice on one kept-alive connection, and over HTTP/1.0',
    async () => {
      const url = 'http://localhost/archive/src';
      await sh(`curl -sSf --abstract-unix-socket "$N" -o "$D/a.tar" ${url} -o "$D/b.tar" ${url}`, {
        N: curlName,
        D: dir,
      });
      await sh(`curl -sSf -0 --abstract-unix-socket "$N" -o "$D/c.tar" ${url}`, { N: curlName, D: dir });
      const a = readFileSync(join(dir, 'a.tar'));
      expect(readFileSync(join(dir, 'b.tar')).equals(a)).toBe(true);
      expect(readFileSync(join(dir, 'c.tar')).equals(a)).toBe(true);
      // The same bytes as the JS path gives (inject has no socket fd).
      expect((await app.inject({ url: '/archive/src' })).rawPayload.equals(a)).toBe(true);
      mkdirSync(join(dir, 'out'));
      await sh(`tar -xf "$D/a.tar" -C "$D/out"`, { D: dir });
      for (const rel of ['big.bin', 'small.txt', 'sub/mid.bin', 'holes.img']) {
        expect(contentHash(join(dir, 'out', rel)), rel).toBe(contentHash(join(dir, 'root/src', rel)));
      }
    },
  );
});

describe('trusted.* attributes go only to root peers', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ng-archive-trusted-'));
    mkdirSync(join(dir, 'root/src'), { recursive: true });
    writeFileSync(join(dir, 'root/src/f'), 'x');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The xattr names of member 'f' when a peer of `uid` asks (undefined: no peer, the library). */
  async function namesFor(uid: number | undefined): Promise<string[]> {
    const app = buildApp({ logLevel: false });
    if (uid !== undefined) {
      app.addHook('onRequest', async (request) => {
        (request as unknown as { peer: { uid: number; gid: number; pid: number } }).peer = {
          uid,
          gid: uid,
          pid: 1,
        };
      });
    }
    await app.register(archiveRoutes, { prefix: '/archive', root: join(dir, 'root'), writable: false });
    await app.ready();
    try {
      const res = await app.inject({ url: '/archive/src' });
      const names: string[] = [];
      for await (const m of readTar([res.rawPayload])) {
        if (m.header.name === 'f') names.push(...m.header.xattrs.keys());
        for await (const piece of m.pieces()) void piece;
      }
      return names.sort();
    } finally {
      await app.close();
    }
  }

  itNeeds(
    ['root', 'setfattr'],
    'a root peer gets them, any other peer does not (user.* it gets)',
    async () => {
      execFileSync('setfattr', ['-n', 'trusted.secret', '-v', 'root only', join(dir, 'root/src/f')]);
      execFileSync('setfattr', ['-n', 'user.note', '-v', 'anyone', join(dir, 'root/src/f')]);
      expect(await namesFor(0)).toEqual(['trusted.secret', 'user.note']);
      expect(await namesFor(undefined)).toEqual(['trusted.secret', 'user.note']);
      expect(await namesFor(1000)).toEqual(['user.note']);
    },
  );
});

describe('the top directory travels as the `./` member (as GNU tar -C dir . writes it)', () => {
  let app: FastifyInstance;
  let dir: string;
  let top: string;
  const TOP_NS = 1_600_000_000_123_456_789n;
  let archive: Buffer;
  /** What the test compares: mode, owner, mtime and user.* attributes of a directory. */
  const metaOf = (path: string) => {
    const st = lstatSync(path, { bigint: true });
    return {
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs,
      xattrs: xattrsOf(path),
    };
  };
  const expected = () => ({ mode: 0o2750, uid: 1234, gid: 2345, mtimeNs: TOP_NS, xattrs: xattrsOf(top) });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-archive-top-'));
    top = join(dir, 'root/src');
    mkdirSync(join(top, 'sub'), { recursive: true });
    writeFileSync(join(top, 'sub/f'), 'inside\n');
    if (has('root') && has('setfattr')) {
      execFileSync('setfattr', ['-n', 'user.top', '-v', 'here', top]);
      lchownSync(top, 1234, 2345);
    }
    chmodSync(top, 0o2750);
    touchNs(top, TOP_NS);
    app = buildApp({ root: join(dir, 'root'), writable: true, logLevel: false });
    await app.ready();
    archive = (await app.inject({ url: '/archive/src' })).rawPayload;
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  itNeeds(['root', 'setfattr'], 'GET /archive writes it first: mode, owner, mtime and xattrs', async () => {
    const members: { name: string; type: string }[] = [];
    for await (const m of readTar([archive])) {
      members.push({ name: m.header.name, type: m.header.type });
      if (members.length === 1) {
        expect(m.header).toMatchObject({ name: './', type: 'dir', mode: 0o2750, uid: 1234, gid: 2345 });
        expect(m.header.mtimeNs).toBe(TOP_NS);
        expect(m.header.xattrs.get('user.top')?.toString()).toBe('here');
      }
      for await (const piece of m.pieces()) void piece;
    }
    expect(members.map((m) => m.name)).toEqual(['./', 'sub/', 'sub/f']);
  });

  itNeeds(['root', 'setfattr'], 'PUT /archive gives it to a new target directory', async () => {
    const res = await app.inject({ method: 'PUT', url: '/archive/new', payload: archive });
    expect(res.statusCode, res.body).toBe(201);
    expect(metaOf(join(dir, 'root/new'))).toEqual(expected());
    expect(readFileSync(join(dir, 'root/new/sub/f'), 'utf8')).toBe('inside\n');
  });

  itNeeds(
    ['root', 'setfattr'],
    'PUT /archive into an existing directory sets it after the merge (the mtime as in the archive)',
    async () => {
      const existing = join(dir, 'root/existing');
      mkdirSync(existing, { mode: 0o700 });
      writeFileSync(join(existing, 'old'), 'kept\n');
      const res = await app.inject({ method: 'PUT', url: '/archive/existing', payload: archive });
      expect(res.statusCode, res.body).toBe(200);
      expect(metaOf(existing)).toEqual(expected());
      expect(readdirSync(existing).sort()).toEqual(['old', 'sub']);
    },
  );

  itNeeds(
    ['root', 'setfattr'],
    'pull gives it to LOCAL_DIR, new or existing, after its contents',
    async () => {
      const { extractTar } = await import('../../client/archive.js');
      const { Readable } = await import('node:stream');
      const fresh = join(dir, 'pulled-new');
      await extractTar(Readable.from([archive]), fresh);
      expect(metaOf(fresh)).toEqual(expected());
      const existing = join(dir, 'pulled-existing');
      mkdirSync(existing, { mode: 0o755 });
      writeFileSync(join(existing, 'old'), 'kept\n');
      await extractTar(Readable.from([archive]), existing);
      expect(metaOf(existing)).toEqual(expected());
      expect(readdirSync(existing).sort()).toEqual(['old', 'sub']);
    },
  );

  itNeeds(
    ['root', 'tar', 'getfattr'],
    'GNU tar extracts it onto the directory it extracts into',
    async () => {
      const out = join(dir, 'gnu');
      mkdirSync(out, { mode: 0o755 });
      writeFileSync(join(dir, 'top.tar'), archive);
      execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xpf', join(dir, 'top.tar'), '-C', out]);
      expect(metaOf(out)).toEqual(expected());
    },
  );
});

describe('a directory swapped for a symlink while the archive is read', () => {
  const quiet = { warn: () => undefined, error: () => undefined } as unknown as FastifyBaseLogger;
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ng-archive-swap-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Reads the archive of `src` one piece at a time, like a slow reader: the walk only goes on
   * when the next piece is asked for. Once the header of `a/` has been read, `swap` runs; the
   * member names of the whole archive are returned.
   */
  async function namesWithSwap(root: string, swap: () => void): Promise<string[]> {
    const beneath = await BeneathRoot.open(root);
    const chunks: Buffer[] = [];
    const signal = new AbortController().signal;
    try {
      for await (const piece of packPieces(beneath, 'src', signal, quiet)) {
        if (Buffer.isBuffer(piece)) {
          chunks.push(piece);
          if (isHeaderOf(piece, 'a/')) swap();
        } else {
          for await (const bytes of readFileRange(piece, signal, quiet)) chunks.push(bytes);
        }
      }
    } finally {
      await beneath.close();
    }
    const names: string[] = [];
    for await (const m of readTar([Buffer.concat(chunks)])) {
      names.push(m.header.name);
      for await (const piece of m.pieces()) void piece;
    }
    return names;
  }

  /** Whether `piece` holds the ustar block of the member `name` (after its pax block, if any). */
  function isHeaderOf(piece: Buffer, name: string): boolean {
    const want = Buffer.from(`${name}\0`);
    for (let at = 0; at + 512 <= piece.length; at += 512) {
      if (piece.subarray(at, at + want.length).equals(want)) return true;
    }
    return false;
  }

  function tree(name: string): string {
    const root = join(dir, name);
    mkdirSync(join(root, 'src/a/deeper'), { recursive: true });
    mkdirSync(join(root, 'src/b'));
    writeFileSync(join(root, 'src/a/mine'), 'a\n');
    writeFileSync(join(root, 'src/a/deeper/too'), 'a\n');
    writeFileSync(join(root, 'src/b/other'), 'b\n');
    return root;
  }

  it('is walked as the directory that was listed (renamed away), never as the link target', async () => {
    const root = tree('renamed');
    const names = await namesWithSwap(root, () => {
      renameSync(join(root, 'src/a'), join(root, 'a-moved'));
      symlinkSync('b', join(root, 'src/a'));
    });
    expect(names).toEqual(['./', 'a/', 'a/deeper/', 'a/deeper/too', 'a/mine', 'b/', 'b/other']);
  });

  it('removed and replaced by a symlink: nothing of the link target under its name', async () => {
    const root = tree('removed');
    const names = await namesWithSwap(root, () => {
      rmSync(join(root, 'src/a'), { recursive: true });
      symlinkSync(join(root, 'src/b'), join(root, 'src/a'));
    });
    expect(names).toEqual(['./', 'a/', 'b/', 'b/other']);
  });

  it('a subdirectory swapped before it is opened is skipped, not walked', async () => {
    const root = tree('deeper');
    const names = await namesWithSwap(root, () => {
      // The walk has listed a/ (its fd is open); a/deeper is opened from it only now.
      renameSync(join(root, 'src/a/deeper'), join(root, 'deeper-moved'));
      symlinkSync('../b', join(root, 'src/a/deeper'));
    });
    // a/deeper is now a symlink: archived as one (its target as written), nothing walked.
    expect(names).toEqual(['./', 'a/', 'a/deeper', 'a/mine', 'b/', 'b/other']);
  });
});
