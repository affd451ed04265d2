/**
 * The seed scenario (issue 6): a chroot that has nothing, the client installed into it with
 * --with-node, the server outside. Everything inside runs through chroot(8) for real.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Script } from 'node:vm';

import { afterAll, beforeAll, describe, expect } from 'vitest';
import { parseLdd } from '../../cli/install-client.js';
import { runCli, type Served, startServe } from '../helpers/cli.js';
import { has, itNeeds, requireAll } from '../helpers/requirements.js';
import { uniqueName } from '../helpers/sockets.js';

const canChroot = has('root') && has('chroot');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The environment a chroot script would have: none of this machine's Node settings. */
const chrootEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/tmp' };

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function inChroot(
  dir: string,
  args: string[],
  timeoutMs = 20_000,
  env: NodeJS.ProcessEnv = chrootEnv,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('chroot', [dir, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** Copies a host binary and the libraries ldd lists into the chroot at the same paths. */
function copyBinary(dir: string, binary: string): void {
  const place = (host: string, inside: string) => {
    mkdirSync(path.join(dir, path.dirname(inside)), { recursive: true });
    copyFileSync(realpathSync(host), path.join(dir, inside));
  };
  place(binary, binary);
  for (const lib of parseLdd(execFileSync('ldd', [binary], { encoding: 'utf8' }))) place(lib, lib);
}

describe.skipIf(!canChroot && !requireAll)('a bare chroot with only the installed client', () => {
  let work: string;
  let chroot: string;
  let served: string;
  let server: Served | undefined;
  const socket = uniqueName('chroot');
  const payload = randomBytes(300_000);

  beforeAll(async () => {
    if (!canChroot) return;
    work = mkdtempSync(path.join(tmpdir(), 'ng-chroot-'));
    chroot = path.join(work, 'root');
    served = path.join(work, 'served');
    mkdirSync(chroot);
    mkdirSync(path.join(served, 'config', 'nested', 'deeper'), { recursive: true });
    writeFileSync(path.join(served, 'motd'), payload);
    writeFileSync(path.join(served, 'config', 'app.conf'), 'key = value\n');
    writeFileSync(path.join(served, 'config', 'nested', 'deeper', 'x.txt'), 'deep\n');
    symlinkSync('app.conf', path.join(served, 'config', 'link.conf'));
    const install = await runCli(['install-client', chroot, '--with-node']);
    expect(install.code, install.stderr).toBe(0);
    expect(install.stderr).not.toContain('no code cache');
    // The closing hint works for a server that is not on @nullgate.
    expect(install.stderr).toContain(
      `try chroot ${chroot} /usr/local/bin/nullgate request /health --socket @NAME`,
    );
    server = await startServe(['--socket', socket, '--root', served, '--writable']);
  });

  afterAll(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  itNeeds(['root', 'chroot'], 'the chroot holds nothing but the client, node and its libraries', () => {
    const listing = execFileSync('find', [chroot, '-type', 'f'], { encoding: 'utf8' });
    expect(listing).toContain('/usr/local/bin/nullgate');
    expect(listing).toContain('/usr/local/bin/node');
    expect(listing).not.toContain('/bin/sh');
  });

  itNeeds(['root', 'chroot'], 'get: bytes identical', async () => {
    const r = await inChroot(chroot, ['nullgate', 'get', '/motd', '-o', '/tmp/motd', '--socket', socket]);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256(readFileSync(path.join(chroot, 'tmp', 'motd')))).toBe(sha256(payload));
  });

  itNeeds(
    ['root', 'chroot'],
    'host variables naming host paths do not reach node: no warning, no failed start',
    async () => {
      // What a script run from a host shell inherits: a CA file and a --require the chroot lacks.
      const env = {
        ...chrootEnv,
        NODE_EXTRA_CA_CERTS: '/host/only/ca.pem',
        NODE_OPTIONS: '--require /host/only/preload.js',
      };
      const r = await inChroot(
        chroot,
        ['nullgate', 'get', '/config/app.conf', '--socket', socket],
        20_000,
        env,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toBe('key = value\n');
      expect(r.stderr).toBe('');
    },
  );

  itNeeds(
    ['root', 'chroot'],
    '--help and help CMD work inside, and name no reference the chroot lacks',
    async () => {
      const general = await inChroot(chroot, ['nullgate', '--help']);
      expect(general.code, general.stderr).toBe(0);
      expect(general.stdout.toString()).toContain('nullgate help CMD');
      expect(general.stdout.toString()).toMatch(/Exit codes: 0 success/);
      expect(general.stdout.toString()).not.toContain('docs/cli.md');
      const get = await inChroot(chroot, ['nullgate', 'help', 'get']);
      expect(get.code, get.stderr).toBe(0);
      expect(get.stdout.toString()).toMatch(/^Usage: nullgate get REMOTE/);
      expect(get.stdout.toString()).not.toContain('docs/cli.md');
    },
  );

  itNeeds(['root', 'chroot'], 'get to stdout, ls and request -i /health', async () => {
    const get = await inChroot(chroot, ['nullgate', 'get', '/config/app.conf', '--socket', socket]);
    expect(get.stdout.toString()).toBe('key = value\n');
    const ls = await inChroot(chroot, ['nullgate', 'ls', '/config', '--socket', socket]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.toString()).toMatch(/app\.conf/);
    expect(ls.stdout.toString()).toMatch(/nested\//);
    const health = await inChroot(chroot, ['nullgate', 'request', '-i', '/health', '--socket', socket]);
    expect(health.code, health.stderr).toBe(0);
    expect(health.stdout.toString()).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(health.stdout.toString()).toContain('{"status":"ok"}');
  });

  itNeeds(['root', 'chroot'], 'ls -l and ls --json', async () => {
    const long = await inChroot(chroot, ['nullgate', 'ls', '-l', '/config', '--socket', socket]);
    expect(long.code, long.stderr).toBe(0);
    const lines = long.stdout.toString().split('\n');
    expect(lines).toContainEqual(
      expect.stringMatching(/^-rw\S+ +\d+ +\d+ +12 \d{4}-\d\d-\d\d \d\d:\d\d app\.conf$/),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^l\S+ .* link\.conf$/));
    expect(lines).toContainEqual(expect.stringMatching(/^d\S+ .* nested\/$/));
    const json = await inChroot(chroot, ['nullgate', 'ls', '--json', '/config', '--socket', socket]);
    expect(json.code, json.stderr).toBe(0);
    const listing = JSON.parse(json.stdout.toString()) as {
      path: string;
      entries: { name: string; type: string }[];
    };
    expect(listing.path).toBe('/config/');
    expect(listing.entries.map((e) => [e.name, e.type])).toEqual([
      ['app.conf', 'file'],
      ['link.conf', 'symlink'],
      ['nested', 'dir'],
    ]);
  });

  itNeeds(['root', 'chroot'], 'a launcher whose bundle cannot load says so in one line, exit 1', async () => {
    const bundle = path.join(chroot, 'usr', 'local', 'lib', 'nullgate', 'nullgate.cjs');
    renameSync(bundle, `${bundle}.away`);
    try {
      const r = await inChroot(chroot, ['nullgate', 'request', '/health', '--socket', socket]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^nullgate: cannot load the client: .*nullgate\.cjs.*\n$/);
    } finally {
      renameSync(`${bundle}.away`, bundle);
    }
  });

  itNeeds(
    ['root', 'chroot'],
    "get runs on install-client's code cache; without it, or with one V8 rejects, it runs as before",
    async () => {
      const cache = path.join(chroot, 'usr', 'local', 'lib', 'nullgate', 'nullgate.cache');
      const get = (mode: string) =>
        inChroot(chroot, ['nullgate', 'get', '/motd', '-o', '/tmp/motd-cached', '--socket', socket], 20_000, {
          ...chrootEnv,
          NULLGATE_CODE_CACHE: mode,
        });
      const check = async (mode: string, stderr: string) => {
        rmSync(path.join(chroot, 'tmp', 'motd-cached'), { force: true });
        const r = await get(mode);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toBe(stderr);
        expect(sha256(readFileSync(path.join(chroot, 'tmp', 'motd-cached')))).toBe(sha256(payload));
      };
      const made = readFileSync(cache);
      expect(made.length).toBeGreaterThan(0);
      await check('report', 'nullgate: code cache: used\n');
      await check('off', '');
      const key = made.subarray(0, made.indexOf(10) + 1);
      expect(key.toString()).toMatch(
        new RegExp(`^${process.version} ${process.arch} \\d+ [\\d.]+ \\d+ [\\d.]+\\n$`),
      );
      try {
        // Made for another node binary or bundle (its size or mtime differ): not even shown to V8.
        writeFileSync(
          cache,
          Buffer.concat([
            Buffer.from(`v0.0.0${key.toString().slice(key.indexOf(' '))}`),
            made.subarray(key.length),
          ]),
        );
        await check('report', 'nullgate: code cache: stale\n');
        await check('', '');
        // One V8 refuses (here: made for another source): the bundle is compiled as without.
        writeFileSync(cache, Buffer.concat([key, new Script('0').createCachedData()]));
        await check('report', 'nullgate: code cache: rejected\n');
        await check('', '');
        rmSync(cache);
        await check('report', 'nullgate: code cache: none\n');
        await check('', '');
      } finally {
        writeFileSync(cache, made);
      }
    },
  );

  itNeeds(['root', 'chroot'], 'put: a result goes back out', async () => {
    writeFileSync(path.join(chroot, 'tmp', 'result.log'), 'installed fine\n');
    const r = await inChroot(chroot, [
      'nullgate',
      'put',
      '/tmp/result.log',
      '/results/result.log',
      '--socket',
      socket,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(served, 'results', 'result.log'), 'utf8')).toBe('installed fine\n');
  });

  itNeeds(['root', 'chroot'], 'pull a tree in, push a tree out', async () => {
    const pull = await inChroot(chroot, ['nullgate', 'pull', '/config', '/etc/app', '--socket', socket]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(readFileSync(path.join(chroot, 'etc', 'app', 'app.conf'), 'utf8')).toBe('key = value\n');
    expect(readFileSync(path.join(chroot, 'etc', 'app', 'nested', 'deeper', 'x.txt'), 'utf8')).toBe('deep\n');
    mkdirSync(path.join(chroot, 'out', 'logs'), { recursive: true });
    writeFileSync(path.join(chroot, 'out', 'logs', 'a.log'), 'A\n');
    writeFileSync(path.join(chroot, 'out', 'summary.txt'), 'S\n');
    const push = await inChroot(chroot, ['nullgate', 'push', '/out', '/pushed', '--socket', socket]);
    expect(push.code, push.stderr).toBe(0);
    expect(readFileSync(path.join(served, 'pushed', 'logs', 'a.log'), 'utf8')).toBe('A\n');
    expect(readFileSync(path.join(served, 'pushed', 'summary.txt'), 'utf8')).toBe('S\n');
  });

  itNeeds(['root', 'chroot'], 'exit 22 on a 404 and 7 with no server, one line each', async () => {
    const missing = await inChroot(chroot, ['nullgate', 'get', '/nope', '--socket', socket]);
    expect(missing.code).toBe(22);
    expect(missing.stderr).toMatch(/404 NG_ERR_NOT_FOUND/);
    const none = await inChroot(chroot, ['nullgate', 'get', '/motd', '--socket', uniqueName('absent')]);
    expect(none.code).toBe(7);
    expect(none.stderr.trim().split('\n')).toHaveLength(1);
  });

  itNeeds(['root', 'chroot'], '--wait 5 succeeds when the server starts a second later', async () => {
    const late = uniqueName('late');
    const waiting = inChroot(chroot, ['nullgate', 'request', '/health', '--wait', '5', '--socket', late]);
    await new Promise((r) => setTimeout(r, 1000));
    const s = await startServe(['--socket', late, '--root', served]);
    try {
      const r = await waiting;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toContain('"status":"ok"');
    } finally {
      await s.stop();
    }
  });

  itNeeds(['root', 'chroot', 'curl'], 'plain curl, copied in with its libraries, pulls a file', async () => {
    copyBinary(chroot, execFileSync('sh', ['-c', 'command -v curl'], { encoding: 'utf8' }).trim());
    const curl = execFileSync('sh', ['-c', 'command -v curl'], { encoding: 'utf8' }).trim();
    const r = await inChroot(chroot, [
      curl,
      '-sS',
      '--abstract-unix-socket',
      socket.slice(1),
      '-o',
      '/tmp/curl-motd',
      'http://localhost/files/motd',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256(readFileSync(path.join(chroot, 'tmp', 'curl-motd')))).toBe(sha256(payload));
  });
});
