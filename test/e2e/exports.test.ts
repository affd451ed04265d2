/**
 * One server, many chroots (`serve --export CHROOT_DIR=ROOT_DIR[:rw]`): each connection gets the
 * tree of the chroot its peer runs in, matched by device and inode of the peer's root directory
 * (found through the connection's pidfd), never by path string.
 *
 * Real chroots made with `install-client --with-node` for what a user does; Python peers that
 * connect and then chroot(2) for the many-connection and exit-race cases (a process keeps the
 * sockets it opened before chrooting, and the server asks for its root when its first request
 * arrives).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { runCli, type Served, startServe } from '../helpers/cli.js';
import { has, itNeeds, requireAll } from '../helpers/requirements.js';
import { uniqueName } from '../helpers/sockets.js';

const canRun = has('root') && has('chroot') && has('python3') && has('curl');
const chrootEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/tmp' };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runIn(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: chrootEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A Python peer: opens `count` connections to the server, then (with a `jail`) chroots into it,
 * then sends `GET /files/marker` on each and prints each body's first line. With `fork`, the
 * connecting process forks, exits, and its child (which chroots) sends the requests: the
 * connection's peer is then a process that no longer exists.
 */
const PEER = String.raw`
import os, socket, sys
name, jail, count, fork = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1'
conns = []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX)
    s.connect('\0' + name)
    conns.append(s)
if fork:
    parent = os.getpid()
    if os.fork() != 0:
        os._exit(0)
    import time
    while os.getppid() == parent:
        time.sleep(0.01)
    time.sleep(0.2)
if jail:
    os.chroot(jail)
for s in conns:
    s.sendall(b'GET /files/marker HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
for s in conns:
    data = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    status = head.split(b' ')[1].decode()
    print(status, body.decode().splitlines()[0] if body else '')
`;

describe.skipIf(!canRun && !requireAll)('--export: one server, many chroots', () => {
  let work: string;
  const trees: Record<string, string> = {};
  const jails: Record<string, string> = {};

  beforeAll(async () => {
    if (!canRun) return;
    work = mkdtempSync(path.join(tmpdir(), 'ng-exports-'));
    for (const name of ['A', 'B', 'C', 'D', '0']) {
      trees[name] = path.join(work, `R${name}`);
      mkdirSync(trees[name]);
      writeFileSync(path.join(trees[name], 'marker'), `tree ${name}\n`);
      jails[name] = path.join(work, `jail${name}`);
      mkdirSync(jails[name]);
    }
    // A and B are real chroots with the client (and node) installed, as a user makes them.
    for (const name of ['A', 'B']) {
      const install = await runCli(['install-client', jails[name]!, '--with-node']);
      expect(install.code, install.stderr).toBe(0);
    }
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const exportArgs = (...specs: string[]): string[] => specs.flatMap((spec) => ['--export', spec]);

  itNeeds(
    ['root', 'chroot', 'curl'],
    'each chroot sees its own tree; writes follow :rw; outsiders get 403 NG_ERR_NO_EXPORT',
    async () => {
      const socket = uniqueName('exports');
      const server: Served = await startServe([
        '--socket',
        socket,
        ...exportArgs(`${jails.A}=${trees.A}:rw`, `${jails.B}=${trees.B}`),
      ]);
      try {
        const nullgate = (jail: string, ...args: string[]) =>
          runIn('chroot', [jail, '/usr/local/bin/nullgate', ...args, '--socket', socket]);
        const a = await nullgate(jails.A!, 'get', '/marker');
        expect(a.stdout, a.stderr).toBe('tree A\n');
        const b = await nullgate(jails.B!, 'get', '/marker');
        expect(b.stdout, b.stderr).toBe('tree B\n');

        writeFileSync(path.join(jails.B!, 'tmp', 'out.txt'), 'from B\n');
        const putB = await nullgate(jails.B!, 'put', '/tmp/out.txt', '/out.txt');
        expect(putB.code).toBe(22);
        expect(putB.stderr).toContain('NG_ERR_READ_ONLY');
        writeFileSync(path.join(jails.A!, 'tmp', 'out.txt'), 'from A\n');
        const putA = await nullgate(jails.A!, 'put', '/tmp/out.txt', '/out.txt');
        expect(putA.code, putA.stderr).toBe(0);
        expect(readFileSync(path.join(trees.A!, 'out.txt'), 'utf8')).toBe('from A\n');

        const whoami = JSON.parse((await nullgate(jails.A!, 'request', '/whoami')).stdout) as {
          chroot: string;
        };
        expect(whoami.chroot).toBe(jails.A);
        const info = JSON.parse((await nullgate(jails.B!, 'request', '/')).stdout) as { writable: boolean };
        expect(info.writable).toBe(false);

        // The host is inside no export, and no --root was given.
        const host = execFileSync(
          'curl',
          ['-s', '--abstract-unix-socket', socket.slice(1), 'http://localhost/files/marker'],
          { encoding: 'utf8' },
        );
        expect(JSON.parse(host)).toMatchObject({ statusCode: 403, code: 'NG_ERR_NO_EXPORT' });
        const hostWhoami = JSON.parse(
          execFileSync('curl', ['-s', '--abstract-unix-socket', socket.slice(1), 'http://localhost/whoami'], {
            encoding: 'utf8',
          }),
        ) as { chroot: string };
        expect(hostWhoami.chroot).toBe('/');
      } finally {
        await server.stop();
      }
    },
  );

  itNeeds(
    ['root', 'chroot', 'curl'],
    'with --root, processes outside every export get that tree',
    async () => {
      const socket = uniqueName('exports');
      const server = await startServe([
        '--socket',
        socket,
        '--root',
        trees['0']!,
        ...exportArgs(`${jails.A}=${trees.A}`),
      ]);
      try {
        const host = execFileSync(
          'curl',
          ['-s', '--abstract-unix-socket', socket.slice(1), 'http://localhost/files/marker'],
          { encoding: 'utf8' },
        );
        expect(host).toBe('tree 0\n');
        const a = await runIn('chroot', [
          jails.A!,
          '/usr/local/bin/nullgate',
          'get',
          '/marker',
          '--socket',
          socket,
        ]);
        expect(a.stdout, a.stderr).toBe('tree A\n');
      } finally {
        await server.stop();
      }
    },
  );

  itNeeds(
    ['root', 'chroot', 'mount'],
    'CHROOT_DIR given through a symlink or a bind mount still matches',
    async () => {
      const link = path.join(work, 'link-to-A');
      symlinkSync(jails.A!, link);
      const bind = path.join(work, 'bind-of-B');
      mkdirSync(bind);
      execFileSync('mount', ['--bind', jails.B!, bind]);
      const socket = uniqueName('exports');
      const server = await startServe([
        '--socket',
        socket,
        ...exportArgs(`${link}=${trees.A}`, `${bind}=${trees.B}`),
      ]);
      try {
        const a = await runIn('chroot', [
          jails.A!,
          '/usr/local/bin/nullgate',
          'get',
          '/marker',
          '--socket',
          socket,
        ]);
        expect(a.stdout, a.stderr).toBe('tree A\n');
        const b = await runIn('chroot', [
          jails.B!,
          '/usr/local/bin/nullgate',
          'get',
          '/marker',
          '--socket',
          socket,
        ]);
        expect(b.stdout, b.stderr).toBe('tree B\n');
      } finally {
        await server.stop();
        execFileSync('umount', [bind]);
      }
    },
  );

  itNeeds(['root', 'python3'], '200 connections from 4 chroots at once: each sees its own tree', async () => {
    const socket = uniqueName('exports');
    const names = ['A', 'B', 'C', 'D'];
    const server = await startServe([
      '--socket',
      socket,
      ...exportArgs(...names.map((n) => `${jails[n]}=${trees[n]}`)),
    ]);
    try {
      const runs = await Promise.all(
        names.map((n) => runIn('python3', ['-c', PEER, socket.slice(1), jails[n]!, '50', '0'])),
      );
      runs.forEach((run, i) => {
        expect(run.code, run.stderr).toBe(0);
        const lines = run.stdout.trim().split('\n');
        expect(lines).toHaveLength(50);
        for (const line of lines) expect(line).toBe(`200 tree ${names[i]}`);
      });
    } finally {
      await server.stop();
    }
  });

  itNeeds(
    ['root', 'python3'],
    "a peer that exits right after connecting is never matched to another process's root",
    async () => {
      const socket = uniqueName('exports');
      const server = await startServe(['--socket', socket, ...exportArgs(`${jails.C}=${trees.C}`)]);
      try {
        // The connecting process exits; its child, chrooted into C, sends the requests on its sockets.
        // runIn's 'close' waits for the child too: it holds the same stdout.
        const run = await runIn('python3', ['-c', PEER, socket.slice(1), jails.C!, '3', '1']);
        expect(run.code, run.stderr).toBe(0);
        const lines = run.stdout.trim().split('\n');
        expect(lines).toHaveLength(3);
        for (const line of lines) expect(line).toMatch(/^403 .*NG_ERR_NO_EXPORT/);
      } finally {
        await server.stop();
      }
    },
  );
});
