/**
 * Trees arrive as they left (CONTRACT.md, issue 12): a fixture with every kind of entry pushed
 * and pulled back through a real server on a real abstract socket, compared entry by entry with
 * one helper (test/helpers/tree-compare.ts), which is itself checked against GNU tar and cp -r
 * copies. A non-root peer's archive is applied under the rule of who may set what; GNU tar's
 * archives extract through PUT /archive; a symlink swapped in during a pull never makes it
 * write outside the destination.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect } from 'vitest';

import { extractTar } from '../../client/archive.js';
import { Client } from '../../client/index.js';
import { encodeHeader, END_OF_ARCHIVE, paddingOf, TYPEFLAG } from '../../core/tar-header.js';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { BIN } from '../helpers/cli.js';
import { makeFixtureTree } from '../helpers/fixture-tree.js';
import { itNeeds, type Requirement } from '../helpers/requirements.js';
import { uniqueName } from '../helpers/sockets.js';
import { compareTrees } from '../helpers/tree-compare.js';

const execFileAsync = promisify(execFile);
const NEEDS: Requirement[] = ['root', 'tar', 'setcap', 'setfattr'];
const OPTS = { ignoreSockets: true, ignoreTop: true };
const TAR_FLAGS = ['--xattrs', '--xattrs-include=*', '--sparse', '--numeric-owner', '-p'];
const PEER_UID = 1234;
const PEER_GID = 2345;

let base: string;
let src: string;
let served: string;
let gateway: Gateway | undefined;
let socket: string;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'ng-roundtrip-'));
  // The peer's curl (another uid) reads its archives from here.
  chmodSync(base, 0o755);
  src = join(base, 'src');
  served = join(base, 'served');
  mkdirSync(served);
  mkdirSync(join(base, 'outside'));
  writeFileSync(join(base, 'outside/secret'), 'outside secret');
  if (process.geteuid?.() !== 0) return;
  await makeFixtureTree(src);
  socket = uniqueName('roundtrip');
  gateway = createGateway({
    socket,
    root: served,
    writable: true,
    allowUids: [PEER_UID],
    logLevel: false,
    graceMs: 1000,
  });
  await gateway.listen();
});

afterAll(async () => {
  await gateway?.close();
  rmSync(base, { recursive: true, force: true });
});

function tarCopy(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  const archive = execFileSync('tar', [...TAR_FLAGS, '--format=posix', '-C', from, '-cf', '-', '.'], {
    maxBuffer: 1 << 28,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  execFileSync('tar', [...TAR_FLAGS, '-C', to, '-xf', '-'], { input: archive });
}

describe('the tree comparison helper', () => {
  itNeeds(NEEDS, 'finds a GNU tar --xattrs --sparse -p copy equal, and a cp -r copy different', async () => {
    const copy = join(base, 'tar-copy');
    tarCopy(src, copy);
    expect(await compareTrees(src, copy, OPTS)).toEqual([]);
    const cp = join(base, 'cp-copy');
    execFileSync('cp', ['-r', src, cp]);
    const diffs = await compareTrees(src, cp, OPTS);
    // cp -r keeps neither owners, times, set-id bits, hard links, holes nor attributes.
    for (const name of [
      'home/user/secret',
      'usr/bin/suid',
      'usr/bin/ping',
      'etc/hosts.hardlink',
      'disk.img',
    ]) {
      expect(
        diffs.some((d) => d.startsWith(`${name}:`)),
        name,
      ).toBe(true);
    }
  });
});

describe('push then pull gives back the same tree', () => {
  itNeeds(
    NEEDS,
    'as root, entry by entry: owners, modes, ns mtimes, hard links, xattrs, holes, FIFOs, devices, symlinks',
    async () => {
      const client = new Client({ socket });
      try {
        const pushed = await client.push(src, '/tree');
        expect(pushed.skipped).toEqual(['dev/socket']);
        expect(await compareTrees(src, join(served, 'tree'), OPTS)).toEqual([]);
        // The sparse file travelled as its data, not as 1 GiB.
        expect(lstatSync(join(served, 'tree/disk.img')).blocks * 512).toBeLessThan(4 * 1024 * 1024);
        const back = join(base, 'pulled');
        await client.pull('/tree', back);
        expect(await compareTrees(src, back, OPTS)).toEqual([]);
        // Pushed again onto itself: nothing changes, directory mtimes included.
        await client.push(src, '/tree');
        expect(await compareTrees(src, join(served, 'tree'), OPTS)).toEqual([]);
        // And pulled again over the first pull.
        await client.pull('/tree', back);
        expect(await compareTrees(src, back, OPTS)).toEqual([]);
      } finally {
        await client.close();
      }
      expect(readFileSync(join(base, 'outside/secret'), 'utf8')).toBe('outside secret');
    },
    120_000,
  );

  itNeeds(NEEDS, 'GNU tar archives extract through PUT /archive as GNU tar itself would', async () => {
    const archive = await execFileAsync('tar', [
      ...TAR_FLAGS,
      '--format=posix',
      '-C',
      src,
      '-cf',
      join(base, 'gnu.tar'),
      '.',
    ]).then(() => join(base, 'gnu.tar'));
    await execFileAsync('curl', [
      '-sSf',
      '--abstract-unix-socket',
      socket.slice(1),
      '-T',
      archive,
      'http://localhost/archive/from-gnu-tar',
    ]);
    expect(await compareTrees(src, join(served, 'from-gnu-tar'), OPTS)).toEqual([]);
  });
});

/** An archive claiming root's privileges: uid 0, 4755, a capability; and optionally a device. */
function claimingArchive(withDevice: boolean): Buffer {
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  const body = Buffer.from('#!/bin/sh\n');
  const parts = [
    encodeHeader({ name: 'bin/', typeflag: TYPEFLAG.dir, mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 0n }),
    encodeHeader({
      name: 'bin/tool',
      typeflag: TYPEFLAG.file,
      mode: 0o4755,
      uid: 0,
      gid: 0,
      size: body.length,
      mtimeNs: 1_600_000_000_123_456_789n,
      xattrs: [
        { name: 'security.capability', value: cap },
        { name: 'trusted.x', value: Buffer.from('t') },
        { name: 'user.kept', value: Buffer.from('yes') },
      ],
    }),
    body,
    Buffer.alloc(paddingOf(body.length)),
    encodeHeader({
      name: 'bin/sgid',
      typeflag: TYPEFLAG.file,
      mode: 0o2775,
      uid: 0,
      gid: 0,
      size: 0,
      mtimeNs: 0n,
    }),
  ];
  if (withDevice) {
    parts.push(
      encodeHeader({
        name: 'dev/mem',
        typeflag: TYPEFLAG.char,
        mode: 0o666,
        uid: 0,
        gid: 0,
        size: 0,
        mtimeNs: 0n,
        devmajor: 1,
        devminor: 1,
      }),
    );
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** curl as uid 1234 (setpriv), PUTting `file`; resolves with the HTTP status and body. */
async function putAsPeer(file: string, url: string): Promise<{ status: number; body: string }> {
  const { stdout } = await execFileAsync('setpriv', [
    `--reuid=${PEER_UID}`,
    `--regid=${PEER_GID}`,
    '--clear-groups',
    'curl',
    '-sS',
    '--abstract-unix-socket',
    socket.slice(1),
    '-T',
    file,
    '-w',
    '\n%{http_code}',
    url,
  ]);
  const lines = stdout.trimEnd().split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n') };
}

describe('a non-root peer of a root server', () => {
  itNeeds(
    [...NEEDS, 'setpriv', 'curl'],
    'gets its own uid/gid, no set-id bits, user.* xattrs only',
    async () => {
      const file = join(base, 'claiming.tar');
      writeFileSync(file, claimingArchive(false));
      execFileSync('chmod', ['0644', file]);
      const res = await putAsPeer(file, 'http://localhost/archive/peer');
      expect(res.status, res.body).toBe(201);
      const tool = lstatSync(join(served, 'peer/bin/tool'));
      expect([tool.uid, tool.gid]).toEqual([PEER_UID, PEER_GID]);
      expect(tool.mode & 0o7777).toBe(0o755);
      expect(lstatSync(join(served, 'peer/bin/sgid')).mode & 0o7777).toBe(0o775);
      const bin = lstatSync(join(served, 'peer/bin'));
      expect([bin.uid, bin.gid]).toEqual([PEER_UID, PEER_GID]);
      const attrs = execFileSync('getfattr', ['-h', '-d', '-m', '-', join(served, 'peer/bin/tool')], {
        encoding: 'utf8',
      });
      expect(attrs).toContain('user.kept="yes"');
      expect(attrs).not.toContain('security.capability');
      expect(attrs).not.toContain('trusted.x');
    },
  );

  itNeeds(
    [...NEEDS, 'setpriv', 'curl'],
    'has its device entry refused (400, naming it) with nothing kept',
    async () => {
      const file = join(base, 'device.tar');
      writeFileSync(file, claimingArchive(true));
      execFileSync('chmod', ['0644', file]);
      const before = readdirSync(served).sort();
      const res = await putAsPeer(file, 'http://localhost/archive/peer-dev');
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'NG_ERR_ARCHIVE_UNSAFE' });
      expect(JSON.parse(res.body).message).toContain('"dev/mem"');
      expect(readdirSync(served).sort()).toEqual(before);
      expect(existsSync(join(served, 'peer-dev'))).toBe(false);
    },
  );
});

/** `nullgate serve` run as uid 1234 (setpriv); resolves once it prints its banner. */
async function serveAsPeer(root: string, name: string): Promise<() => void> {
  const child = spawn(
    'setpriv',
    [
      `--reuid=${PEER_UID}`,
      `--regid=${PEER_GID}`,
      '--clear-groups',
      process.execPath,
      BIN,
      'serve',
      '--root',
      root,
      '--writable',
      '--socket',
      name,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      if (err.includes('nullgate: serving')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
  return () => child.kill('SIGTERM');
}

describe('a server that is not root', () => {
  itNeeds(
    [...NEEDS, 'setpriv', 'curl'],
    'gives a root peer files of its own user, no set-id bits, user.* only, no devices',
    async () => {
      const root = join(base, 'user-served');
      mkdirSync(root);
      chownSync(root, PEER_UID, PEER_GID);
      const name = uniqueName('user-server');
      const stop = await serveAsPeer(root, name);
      try {
        const put = async (file: string, url: string): Promise<{ status: number; body: string }> => {
          const { stdout } = await execFileAsync('curl', [
            '-sS',
            '--abstract-unix-socket',
            name.slice(1),
            '-T',
            file,
            '-w',
            '\n%{http_code}',
            url,
          ]);
          const lines = stdout.trimEnd().split('\n');
          return { status: Number(lines.pop()), body: lines.join('\n') };
        };
        const file = join(base, 'claiming-root.tar');
        writeFileSync(file, claimingArchive(false));
        const res = await put(file, 'http://localhost/archive/t');
        expect(res.status, res.body).toBe(201);
        const tool = lstatSync(join(root, 't/bin/tool'));
        expect([tool.uid, tool.gid]).toEqual([PEER_UID, PEER_GID]);
        expect(tool.mode & 0o7777).toBe(0o755);
        const attrs = execFileSync('getfattr', ['-h', '-d', '-m', '-', join(root, 't/bin/tool')], {
          encoding: 'utf8',
        });
        expect(attrs).toContain('user.kept="yes"');
        expect(attrs).not.toContain('security.capability');
        const dev = join(base, 'device-root.tar');
        writeFileSync(dev, claimingArchive(true));
        const refused = await put(dev, 'http://localhost/archive/t2');
        expect(refused.status).toBe(400);
        expect(JSON.parse(refused.body)).toMatchObject({ code: 'NG_ERR_ARCHIVE_UNSAFE' });
        expect(readdirSync(root)).toEqual(['t']);
      } finally {
        stop();
      }
    },
  );
});

describe('pull as a user who is not root', () => {
  itNeeds(
    [...NEEDS, 'setpriv'],
    'keeps modes minus set-id bits, user.* xattrs only, and skips devices with one line each',
    async () => {
      const client = new Client({ socket });
      try {
        await client.push(src, '/for-user');
      } finally {
        await client.close();
      }
      const home = join(base, 'user-home');
      mkdirSync(home);
      chownSync(home, PEER_UID, PEER_GID);
      const dest = join(home, 'pulled');
      const res = await execFileAsync('setpriv', [
        `--reuid=${PEER_UID}`,
        `--regid=${PEER_GID}`,
        '--clear-groups',
        process.execPath,
        BIN,
        'pull',
        '/for-user',
        dest,
        '--socket',
        socket,
      ]).catch((err: unknown) => err as { stdout: string; stderr: string; code: number });
      expect('code' in res ? res.code : 0, res.stderr).toBe(0);
      expect(res.stderr).toBe(
        'nullgate: pull: skipped dev/null (device nodes are only extracted by root for root)\n',
      );
      expect(existsSync(join(dest, 'dev/null'))).toBe(false);
      expect(lstatSync(join(dest, 'dev/fifo')).isFIFO()).toBe(true);
      for (const rel of ['usr/bin/suid', 'usr/bin/sgid', 'home/user/secret', 'tmp']) {
        const st = lstatSync(join(dest, rel));
        expect([st.uid, st.gid], rel).toEqual([PEER_UID, PEER_GID]);
      }
      expect(lstatSync(join(dest, 'usr/bin/suid')).mode & 0o7777).toBe(0o755);
      expect(lstatSync(join(dest, 'usr/bin/sgid')).mode & 0o7777).toBe(0o755);
      expect(lstatSync(join(dest, 'tmp')).mode & 0o7777).toBe(0o1777);
      expect(lstatSync(join(dest, 'home/user/secret')).mode & 0o7777).toBe(0o600);
      expect(lstatSync(join(dest, 'home/user/nothing')).mode & 0o7777).toBe(0);
      expect(lstatSync(join(dest, 'etc/hosts')).ino).toBe(lstatSync(join(dest, 'etc/hosts.hardlink')).ino);
      const attrs = (rel: string): string =>
        execFileSync('getfattr', ['-h', '-d', '-m', '-', join(dest, rel)], { encoding: 'utf8' });
      expect(attrs('home/user/secret')).toContain('user.note=');
      expect(attrs('usr/bin/ping')).not.toContain('security.capability');
      expect(lstatSync(join(dest, 'disk.img')).blocks * 512).toBeLessThan(4 * 1024 * 1024);
    },
  );
});

describe('pull never writes outside the destination', () => {
  itNeeds(['root'], 'when a symlink is swapped in for a directory while the pull runs', async () => {
    for (const target of [join(base, 'outside'), '../outside']) {
      const dest = join(base, `swap-${target.startsWith('/') ? 'abs' : 'rel'}`);
      let swapped!: () => void;
      const swap = new Promise<void>((resolve) => (swapped = resolve));
      const body = Buffer.from('overwritten');
      async function* slowArchive(): AsyncGenerator<Buffer> {
        yield encodeHeader({
          name: 'd/',
          typeflag: TYPEFLAG.dir,
          mode: 0o755,
          uid: 0,
          gid: 0,
          size: 0,
          mtimeNs: 0n,
        });
        yield encodeHeader({
          name: 'd/first',
          typeflag: TYPEFLAG.file,
          mode: 0o644,
          uid: 0,
          gid: 0,
          size: 0,
          mtimeNs: 0n,
        });
        // Held until the test has replaced d with a symlink leading out.
        await swap;
        yield encodeHeader({
          name: 'd/secret',
          typeflag: TYPEFLAG.file,
          mode: 0o644,
          uid: 0,
          gid: 0,
          size: body.length,
          mtimeNs: 0n,
        });
        yield Buffer.concat([body, Buffer.alloc(paddingOf(body.length))]);
        yield END_OF_ARCHIVE;
      }
      const pulling = extractTar(Readable.from(slowArchive()), dest).catch((err: unknown) => err);
      // Wait for d/first, then swap d for a symlink out.
      for (let i = 0; i < 1000 && !existsSync(join(dest, 'd/first')); i++)
        await new Promise((r) => setTimeout(r, 5));
      rmSync(join(dest, 'd'), { recursive: true });
      symlinkSync(target, join(dest, 'd'));
      swapped();
      const result = await pulling;
      expect(result).toMatchObject({ code: 'NG_ERR_ARCHIVE_UNSAFE' });
      expect(readFileSync(join(base, 'outside/secret'), 'utf8')).toBe('outside secret');
      expect(existsSync(join(base, 'outside/first'))).toBe(false);
    }
  });
});
