import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAddress } from '../../core/address.js';
import { connectFd } from '../../native/socket.js';
import { settlesWithin } from '../helpers/bounds.js';
import { runCli, type Served, startServe } from '../helpers/cli.js';
import { itNeeds } from '../helpers/requirements.js';
import { connectSocket, openFdCount, parseResponse, rawGet, uniqueName } from '../helpers/sockets.js';

const exec = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Whether /proc/net/unix lists `name` (it writes the leading NUL of an abstract name as '@'). */
function nameListed(name: string): boolean {
  return readFileSync('/proc/net/unix', 'latin1')
    .split('\n')
    .some((line) => line.endsWith(` ${name}`));
}

/** Polls until `probe` holds (or `ms` passed); returns the last verdict. */
async function eventually(probe: () => boolean, ms: number): Promise<boolean> {
  for (const until = Date.now() + ms; Date.now() < until; await sleep(20)) if (probe()) return true;
  return probe();
}

/** Resolves with how the server exits, without signalling it (it is draining already). */
function exitOf(s: Served): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const { child } = s;
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Everything `socket` receives until the server closes it. */
function readAll(socket: Socket, onData?: (received: number) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      onData?.(received);
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/**
 * Keep-alive and grace far beyond any bound of these tests: a drain that kept a connection
 * open until one of them ended would hang the test, not merely slow it.
 */
const NEVER = ['--keep-alive-timeout', '120', '--grace', '120'];

function refused(name: string): boolean {
  try {
    connectSocket(name).destroy();
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

describe('nullgate serve (real CLI, real abstract socket)', () => {
  const name = uniqueName('serve');
  let served: Served;

  beforeAll(async () => {
    served = await startServe(['--socket', name]);
  });
  afterAll(async () => {
    await served.stop();
  });

  it('prints one line with the root, the mode, the address and a curl command', () => {
    expect(served.banner).toContain(`on ${name}`);
    expect(served.banner).toContain('(read-only)');
    expect(served.banner).toContain(`curl --abstract-unix-socket ${name.slice(1)} http://localhost/files/`);
  });

  itNeeds(['curl'], 'curl --abstract-unix-socket reaches /health', async () => {
    const { stdout } = await exec('curl', [
      '-sS',
      '--abstract-unix-socket',
      name.slice(1),
      'http://localhost/health',
    ]);
    expect(JSON.parse(stdout)).toEqual({ status: 'ok' });
  });

  itNeeds(['python3'], "Python's socket.connect('\\0NAME') reaches /health", async () => {
    const script = [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
      "s.connect('\\0' + sys.argv[1])",
      "s.sendall(b'GET /health HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')",
      "data = b''",
      'while True:',
      '    chunk = s.recv(65536)',
      '    if not chunk: break',
      '    data += chunk',
      'sys.stdout.write(data.decode())',
    ].join('\n');
    const { stdout } = await exec('python3', ['-c', script, name.slice(1)]);
    expect(stdout).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(stdout).toContain('{"status":"ok"}');
  });

  it('/whoami reports this process as the kernel sees it', async () => {
    const res = await rawGet(name, '/whoami');
    expect(JSON.parse(res.body.toString())).toEqual({
      pid: process.pid,
      uid: process.getuid!(),
      gid: process.getgid!(),
      allowed: true,
    });
  });

  it('GET / describes the service', async () => {
    const body = JSON.parse((await rawGet(name, '/')).body.toString()) as Record<string, unknown>;
    expect(body).toMatchObject({ name: 'nullgate', writable: false, root: '/' });
    expect(body.peer).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
  });

  it('unknown routes get the JSON error shape', async () => {
    const res = await rawGet(name, '/no/such/route');
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(res.body.toString())).toEqual({
      statusCode: 404,
      code: 'NG_ERR_ROUTE_NOT_FOUND',
      error: 'Not Found',
      message: 'no route for GET /no/such/route',
    });
  });

  it('a malformed request gets the JSON error shape, and the server lives on', async () => {
    const { rawRequest } = await import('../helpers/sockets.js');
    const res = await rawRequest(name, 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString())).toMatchObject({ statusCode: 400, code: 'NG_ERR_BAD_REQUEST' });
    expect((await rawGet(name, '/health')).status).toBe(200);
  });

  itNeeds(
    ['root', 'setpriv', 'curl'],
    'a peer running as uid 65534 is denied with the JSON error',
    async () => {
      const { stdout } = await exec('setpriv', [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        'curl',
        '-sS',
        '--abstract-unix-socket',
        name.slice(1),
        'http://localhost/whoami',
      ]);
      expect(JSON.parse(stdout)).toMatchObject({
        statusCode: 403,
        code: 'NG_ERR_PEER_DENIED',
        error: 'Forbidden',
      });
      expect(served.stderr()).toMatch(/"uid":65534.*peer denied|peer denied.*"uid":65534/);
    },
  );

  it('no fd growth in the server after 2,000 connections', async () => {
    const pid = served.child.pid!;
    await rawGet(name, '/health');
    const baseline = openFdCount(pid);
    const batch = 50;
    for (let i = 0; i < 2000; i += batch) {
      const results = await Promise.all(Array.from({ length: batch }, () => rawGet(name, '/health')));
      for (const r of results) expect(r.status).toBe(200);
    }
    // Closed sockets are reaped asynchronously; give the server a moment.
    for (let i = 0; i < 50 && openFdCount(pid) > baseline; i++) await new Promise((r) => setTimeout(r, 100));
    expect(openFdCount(pid)).toBeLessThanOrEqual(baseline);
  });
});

describe('serve: start-up and shutdown', () => {
  it('@X and @X\\x00 are served by two servers at once, each answering its own', async () => {
    const base = uniqueName('pair');
    const a = await startServe(['--socket', base]);
    const b = await startServe(['--socket', `${base}\\x00`, '--writable']);
    try {
      expect(b.banner).toContain(`on ${base}\\x00`);
      // One is read-only, the other writable: each answer says which server took the connection.
      const ra = JSON.parse((await rawGet(base, '/')).body.toString()) as { writable: boolean };
      const rb = JSON.parse((await rawGet(`${base}\\x00`, '/')).body.toString()) as { writable: boolean };
      expect(ra.writable).toBe(false);
      expect(rb.writable).toBe(true);
      expect((await a.stop()).code).toBe(0);
      expect(() => connectFd(parseAddress(base))).toThrow(/ECONNREFUSED/);
      expect((await rawGet(`${base}\\x00`, '/health')).status).toBe(200);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('with @ the kernel picks a name, which is printed and reachable', async () => {
    const s = await startServe(['--socket', '@']);
    try {
      const printed = /on (@\S+)/.exec(s.banner)?.[1];
      expect(printed).toMatch(/^@([0-9a-f]{5}|\\x00[0-9a-f]{4})$/);
      expect((await rawGet(printed!, '/health')).status).toBe(200);
    } finally {
      await s.stop();
    }
  });

  it('a name in use exits non-zero naming the address and the owning pid', async () => {
    const name = uniqueName('busy');
    const first = await startServe(['--socket', name]);
    try {
      const second = await runCli(['serve', '--socket', name]);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`nullgate: cannot listen on ${name}: address already in use`);
      // The process as `ps` would name it (argv), not its thread name (Node 24's is MainThread).
      expect(second.stderr).toContain(`held by pid ${first.child.pid} node nullgate.js)`);
      expect(second.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      await first.stop();
    }
  });

  itNeeds(['python3'], 'the owner of a name in use is named by its command line', async () => {
    const name = uniqueName('busy-py');
    const holder = spawn(
      'python3',
      [
        '-c',
        [
          'import socket, sys, time',
          's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
          "s.bind('\\0' + sys.argv[1])",
          's.listen(1)',
          "print('bound', flush=True)",
          'time.sleep(20)',
        ].join('\n'),
        name.slice(1),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
      const r = await runCli(['serve', '--socket', name]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`held by pid ${holder.pid} python3[.0-9]* -c\\)`));
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it.each([
    [['--socket', '@bad\\xZ1'], /malformed escape/],
    [['--socket', `@${'n'.repeat(108)}`], /at most 107/],
    [['--allow-uid', '65534'], /65534 .* can never be allowed/],
    [['--allow-uid', 'root'], /numeric id/],
    [['--max-upload', '12Q'], /--max-upload takes a size/],
    [['--root', '/nonexistent/dir'], /--root \/nonexistent\/dir: no such directory$/m],
    [['--root', '/etc/passwd'], /--root \/etc\/passwd: not a directory$/m],
    [['--root', '/etc/passwd/x'], /--root \/etc\/passwd\/x: no such directory$/m],
    [['--frobnicate'], /serve: unknown option --frobnicate/],
    [['--writable=yes'], /serve: --writable takes no value/],
    [['/srv/x'], /serve: unexpected argument "\/srv\/x" \(the directory is --root DIR\)/],
  ])('usage error %j exits 2 with one line', async (args, message) => {
    const r = await runCli(['serve', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('SIGTERM exits 0 and the name is gone afterwards', async () => {
    const name = uniqueName('term');
    const s = await startServe(['--socket', name]);
    expect((await rawGet(name, '/health')).status).toBe(200);
    expect(await s.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(() => connectFd(parseAddress(name))).toThrow(/ECONNREFUSED/);
  });

  it('SIGTERM with a slow download in flight: it completes byte-exact, new connections are refused, exit 0, the name is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ng-drain-'));
    const file = randomBytes(24 * 1024 * 1024);
    writeFileSync(join(dir, 'big.bin'), file);
    const name = uniqueName('drain');
    const s = await startServe(['--socket', name, '--root', dir, ...NEVER]);
    try {
      expect(nameListed(name)).toBe(true);
      // A client that reads slowly (a chunk, then a pause) on a keep-alive connection.
      const client = connectSocket(name);
      let signalled = false;
      const body = readAll(client, (received) => {
        client.pause();
        setTimeout(() => client.resume(), 3);
        if (!signalled && received > 1024 * 1024) {
          signalled = true;
          s.child.kill('SIGTERM');
        }
      });
      client.write('GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n');
      // The listener goes at once, while the download goes on.
      expect(await eventually(() => signalled && refused(name), 5000)).toBe(true);
      // Written before the listener closes, but read here through a pipe of its own: wait for it.
      expect(await eventually(() => s.stderr().includes('SIGTERM: draining'), 5000)).toBe(true);
      // Done with its one request, the connection is closed by the server, and it exits 0.
      const res = parseResponse(await settlesWithin(body, 30_000, 'the download, then its close'));
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(file.length);
      expect(sha256(res.body)).toBe(sha256(file));
      expect(await settlesWithin(exitOf(s), 20_000, 'exit after the drain')).toEqual({
        code: 0,
        signal: null,
      });
      expect(nameListed(name)).toBe(false);
    } finally {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('SIGTERM with an upload whose body is still coming: it completes after the signal, exit 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ng-drain-up-'));
    const name = uniqueName('drain-up');
    const s = await startServe(['--socket', name, '--root', dir, '--writable', ...NEVER]);
    try {
      const client = connectSocket(name);
      const answer = readAll(client);
      const payload = randomBytes(256 * 1024);
      client.write(`PUT /files/up.bin HTTP/1.1\r\nHost: x\r\nContent-Length: ${payload.length}\r\n\r\n`);
      client.write(payload.subarray(0, 1000));
      await sleep(200);
      s.child.kill('SIGTERM');
      expect(await eventually(() => refused(name), 3000)).toBe(true);
      await sleep(300);
      client.write(payload.subarray(1000));
      const res = parseResponse(await settlesWithin(answer, 20_000, 'the answer, then its close'));
      expect(res.status).toBe(201);
      expect(res.headers.connection).toBe('close');
      expect(readFileSync(join(dir, 'up.bin')).equals(payload)).toBe(true);
      expect(await settlesWithin(exitOf(s), 20_000, 'exit after the drain')).toEqual({
        code: 0,
        signal: null,
      });
      expect(nameListed(name)).toBe(false);
    } finally {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('SIGTERM does not wait for a connection that never sent a byte', async () => {
    const name = uniqueName('drain-silent');
    // Its idle timeout (60 s) and the grace (120 s) would end a drain that waited for it.
    const s = await startServe(['--socket', name, '--grace', '120']);
    const silent = connectSocket(name);
    silent.on('error', () => undefined);
    await sleep(200);
    const exit = await settlesWithin(s.stop('SIGTERM'), 20_000, 'exit on SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    silent.destroy();
  });

  it('SIGHUP reloads nothing: it is logged and the server keeps serving', async () => {
    const name = uniqueName('hup');
    const s = await startServe(['--socket', name, '--log-level', 'info']);
    try {
      s.child.kill('SIGHUP');
      for (let i = 0; i < 50 && !s.stderr().includes('SIGHUP'); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(s.stderr()).toContain('SIGHUP: nothing to reload');
      expect((await rawGet(name, '/health')).status).toBe(200);
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });

  it('a second signal exits at once, even with a request stuck in flight', async () => {
    const name = uniqueName('twice');
    const s = await startServe(['--socket', name, '--grace', '120']);
    // A request whose headers never complete keeps the drain waiting.
    const { connectSocket } = await import('../helpers/sockets.js');
    const stuck = connectSocket(name);
    stuck.on('error', () => {});
    stuck.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    await new Promise((r) => setTimeout(r, 200));
    s.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    // Without the second signal the drain would go on until the headers timeout (10 s) cut the
    // stuck request and then exit 0: exit 1 is the second signal's.
    const exit = await settlesWithin(s.stop('SIGTERM'), 20_000, 'exit on the second SIGTERM');
    expect(exit.code).toBe(1);
    stuck.destroy();
  });

  it('SIGINT exits 0 too', async () => {
    const s = await startServe(['--socket', uniqueName('int')]);
    expect(await s.stop('SIGINT')).toEqual({ code: 0, signal: null });
  });
});
