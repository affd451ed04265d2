import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway, listenAbstract } from '../../gateway/index.js';
import { runFile, runNode } from '../helpers/cli.js';
import { settlesWithin } from '../helpers/bounds.js';
import { connectSocket, rawGet, rawRequest, uniqueName } from '../helpers/sockets.js';

/** Keep-alive and idle timeouts that never end during a test. */
const NEVER = { keepAliveTimeoutMs: 120_000, idleTimeoutMs: 120_000 };

/** Resolves true once the far end closes `socket` (false after 10 s: a hang). */
function closedSoon(socket: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.resume();
  });
}

describe('createGateway (library API)', () => {
  it('serves user routes with request.peer, and close() lets a request in flight finish', async () => {
    const socket = uniqueName('lib');
    const gateway = createGateway({ socket, logLevel: false, graceMs: 5000 });
    let release!: () => void;
    const started = new Promise<void>((resolve) => {
      gateway.app.get('/slow', async (request) => {
        resolve();
        await new Promise<void>((r) => (release = r));
        return { done: true, uid: request.peer.uid };
      });
    });
    const bound = await gateway.listen();
    expect(bound).toEqual({ kind: 'abstract', name: Buffer.from(socket.slice(1)) });
    expect(gateway.addressText).toBe(socket);

    const inFlight = rawGet(socket, '/slow');
    await started;
    const closed = gateway.close();
    // The listener is gone at once: new connections are refused while the old one finishes.
    await new Promise((r) => setTimeout(r, 50));
    expect(() => connectSocket(socket)).toThrow(/ECONNREFUSED/);
    release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ done: true, uid: process.getuid!() });
    await closed;
  });

  it('close() is bounded by the grace period when a request never finishes', async () => {
    const socket = uniqueName('grace');
    const gateway = createGateway({ socket, logLevel: false, graceMs: 300 });
    gateway.app.get('/stuck', () => new Promise(() => {}));
    await gateway.listen();
    const stuck = rawGet(socket, '/stuck').catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 100));
    // Without the grace, close() would wait for the stuck request for ever.
    await settlesWithin(gateway.close(), 20_000, 'close() with a request that never finishes');
    await stuck;
  });

  it('close() does not wait for connections no request is coming on', async () => {
    const socket = uniqueName('silent');
    // Timeouts and grace far beyond the bound below: a close() that waited for either connection
    // would hang, not merely take a while.
    const gateway = createGateway({ socket, logLevel: false, graceMs: 120_000, limits: NEVER });
    await gateway.listen();
    // One that never says a word, one kept alive after a request.
    const silent = connectSocket(socket);
    silent.on('error', () => undefined);
    const kept = connectSocket(socket);
    kept.on('error', () => undefined);
    const answered = new Promise<void>((resolve) => kept.once('data', () => resolve()));
    kept.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await answered;
    await new Promise((r) => setTimeout(r, 100));
    await settlesWithin(gateway.close(), 20_000, 'close() beside idle connections');
    expect(silent.destroyed || (await closedSoon(silent))).toBe(true);
    silent.destroy();
    kept.destroy();
  });

  it('close() lets a keep-alive request in flight finish, then closes its connection at once', async () => {
    const socket = uniqueName('inflight-ka');
    const gateway = createGateway({ socket, logLevel: false, graceMs: 120_000, limits: NEVER });
    let release!: () => void;
    const started = new Promise<void>((resolve) => {
      gateway.app.get('/slow', async () => {
        resolve();
        await new Promise<void>((r) => (release = r));
        return { done: true };
      });
    });
    await gateway.listen();
    const client = connectSocket(socket);
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve) => client.once('close', () => resolve()));
    // No `Connection: close`: without the drain the connection would idle on for keepAliveTimeout.
    client.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await started;
    const closed = gateway.close();
    await new Promise((r) => setTimeout(r, 100));
    release();
    await settlesWithin(Promise.all([closed, ended]), 20_000, 'close() and the connection closed');
    const text = Buffer.concat(chunks).toString();
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('{"done":true}');
  });

  it('bad options are refused before anything is bound', () => {
    expect(() => createGateway({ socket: '@bad\\x', logLevel: false })).toThrow(/malformed escape/);
    expect(() => createGateway({ allowUids: [65534], logLevel: false })).toThrow(/65534/);
  });

  it('user routes with schemas validate requests and serialize responses as in any Fastify app', async () => {
    const gateway = createGateway({ logLevel: false });
    gateway.app.get(
      '/user/:id',
      {
        schema: {
          params: { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'] },
          headers: { type: 'object', properties: { 'X-Token': { type: 'string' } }, required: ['X-Token'] },
          response: { 200: { type: 'object', properties: { id: { type: 'integer' } } } },
        },
      },
      (request) => ({ id: (request.params as { id: number }).id, secret: 'not in the schema' }),
    );
    const ok = await gateway.app.inject({ url: '/user/7', headers: { 'x-token': 't' } });
    expect(ok.statusCode).toBe(200);
    // fast-json-stringify (loaded on first use) drops what the response schema does not name.
    expect(ok.json()).toEqual({ id: 7 });
    const bad = await gateway.app.inject({ url: '/user/x', headers: { 'x-token': 't' } });
    expect(bad.statusCode).toBe(400);
    expect((await gateway.app.inject({ url: '/user/7' })).statusCode).toBe(400);
    await gateway.app.close();
  });

  it('an idle gateway has loaded neither schema compiler (ajv, fast-json-stringify): they load on first use', async () => {
    // A fresh process, so no other test's schema routes count; dist/ is what users import.
    const gateway = fileURLToPath(new URL('../../dist/gateway/index.js', import.meta.url));
    const script = [
      `const { createGateway } = await import(${JSON.stringify(gateway)});`,
      'const g = createGateway({ logLevel: false, root: process.cwd() });',
      'await g.app.ready();',
      "const { createRequire } = await import('node:module');",
      'const cache = Object.keys(createRequire(import.meta.url).cache);',
      "const loaded = ['/ajv/', '/@fastify/ajv-compiler/', '/@fastify/fast-json-stringify-compiler/'].filter((p) => cache.some((f) => f.includes(p)));",
      'process.stdout.write(JSON.stringify(loaded));',
      'await g.app.close();',
    ].join('\n');
    const r = await runNode(['--input-type=module', '-e', script]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout.toString())).toEqual([]);
  });

  it('inject() requests carry the process itself as peer', async () => {
    const gateway = createGateway({ logLevel: false });
    const res = await gateway.app.inject({ url: '/whoami' });
    expect(res.json()).toEqual({
      pid: process.pid,
      uid: process.getuid!(),
      gid: process.getgid!(),
      allowed: true,
    });
    await gateway.app.close();
  });
});

describe('docs/examples/custom-route.mjs', () => {
  it('runs as documented: a user route on the gateway answers with the caller’s peer', async () => {
    const socket = uniqueName('example');
    const script = fileURLToPath(new URL('../../docs/examples/custom-route.mjs', import.meta.url));
    // NULLGATE_SOCKET is the client's (the README has users export it): the example ignores it.
    const taken = uniqueName('example-taken');
    const holder = createServer();
    await listenAbstract(holder, taken);
    const child = spawn(process.execPath, [script, '--socket', socket], {
      env: { ...process.env, NULLGATE_SOCKET: taken },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          if (c.toString().includes(`listening on ${socket}`)) resolve();
        });
        child.on('exit', (code) => reject(new Error(`example exited with ${code}`)));
      });
      const res = await rawGet(socket, '/hello');
      expect(JSON.parse(res.body.toString())).toEqual({
        hello: `uid ${process.getuid!()}`,
        pid: process.pid,
      });
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('exit', r));
      await new Promise((r) => holder.close(r));
    }
  });

  it('a name in use is one line on stderr and exit 1, not a stack trace', async () => {
    const taken = uniqueName('example-busy');
    const holder = createServer();
    await listenAbstract(holder, taken);
    try {
      const script = fileURLToPath(new URL('../../docs/examples/custom-route.mjs', import.meta.url));
      for (const run of [
        { args: ['--socket', taken], env: {} },
        { args: [], env: { NULLGATE_EXAMPLE_SOCKET: taken } },
      ]) {
        const r = await runFile(script, run.args, { env: run.env });
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`^custom-route: cannot listen on ${taken}: .*EADDRINUSE.*\\n$`));
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
      }
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });
});

interface AccessLine {
  msg: string;
  peer: { pid: number; uid: number; gid: number };
  method: string;
  path: string;
  url?: string;
  status: number;
  bytes: number;
  ms: number;
  aborted?: boolean;
}

describe('the access line (one per request, from the logStream)', () => {
  const MB5 = 5_000_000;
  const socket = uniqueName('access');
  let dir: string;
  let gateway: Gateway;
  let logged = '';
  const lines = (): AccessLine[] =>
    logged
      .split('\n')
      .filter((l) => l.includes('"msg":"access"'))
      .map((l) => JSON.parse(l) as AccessLine);
  /** The access line for `path` (waits for it: it is written when the response closes). */
  async function lineFor(path: string, count = 1): Promise<AccessLine[]> {
    for (let i = 0; i < 100; i++) {
      const found = lines().filter((l) => l.path === path);
      if (found.length >= count) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no access line for ${path} in:\n${logged}`);
  }
  /** Reads the response head and a little body, then hangs up. */
  function abortAfter(path: string, atLeast: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const client = connectSocket(socket);
      let received = 0;
      client.on('error', reject);
      client.on('data', (c: Buffer) => {
        received += c.length;
        if (received >= atLeast) {
          client.destroy();
          resolve(received);
        }
      });
      client.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-access-'));
    writeFileSync(join(dir, 'a.txt'), 'hello\n');
    writeFileSync(join(dir, 'big.bin'), randomBytes(MB5));
    const logStream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logged += chunk.toString();
        cb();
      },
    });
    gateway = createGateway({ socket, root: dir, logLevel: 'info', logStream });
    // 5 MB through Node's socket (not sendfile), 64 KiB at a time.
    gateway.app.get('/stream', (_request, reply) => {
      let left = MB5;
      const body = new Readable({
        read() {
          const n = Math.min(left, 65536);
          left -= n;
          this.push(n > 0 ? Buffer.alloc(n, 0x61) : null);
        },
      });
      return reply.header('content-length', MB5).send(body);
    });
    await gateway.listen();
  });
  afterAll(async () => {
    await gateway.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['/health', '/health', 200],
    ['/files/a.txt?download=1', '/files/a.txt', 200],
    ['/files/', '/files/', 200],
    ['/no/such/route?q=secret', '/no/such/route', 404],
    ['/files/big.bin', '/files/big.bin', 200],
  ])('GET %s: bytes are what the client received, the path has no query', async (url, path, status) => {
    const res = await rawGet(socket, url);
    expect(res.status).toBe(status);
    const [line] = await lineFor(path);
    expect(line).toMatchObject({
      peer: { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() },
      method: 'GET',
      path,
      status,
      bytes: res.raw.length,
    });
    expect(line!.url).toBeUndefined();
    expect(line!.aborted).toBeUndefined();
    expect(typeof line!.ms).toBe('number');
    expect(logged).not.toContain('secret');
  });

  it('pipelined responses on one connection each count their own bytes', async () => {
    const one = 'GET /files/a.txt?n=1 HTTP/1.1\r\nHost: x\r\n\r\n';
    const res = await rawRequest(
      socket,
      `${one}${one}GET /health?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    // The first /files/a.txt and /health lines are the earlier tests'.
    const [, a, b] = await lineFor('/files/a.txt', 3);
    const [, h] = await lineFor('/health', 2);
    expect(a!.bytes + b!.bytes + h!.bytes).toBe(res.raw.length);
    // Node starts writing a pipelined response before the previous one's 'close'.
    const health = res.raw.indexOf('HTTP/1.1', res.raw.indexOf('HTTP/1.1', 1) + 1);
    expect(h!.bytes).toBe(res.raw.length - health);
    expect(a!.bytes).toBe(b!.bytes);
  });

  it('a download cut mid-body logs aborted, with the bytes sent so far, not the Content-Length', async () => {
    const received = await abortAfter('/stream', 100_000);
    const [line] = await lineFor('/stream');
    expect(line).toMatchObject({ method: 'GET', path: '/stream', status: 200, aborted: true });
    expect(line!.bytes).toBeGreaterThanOrEqual(received);
    expect(line!.bytes).toBeLessThan(MB5);
  });

  it('a zero-copy download cut mid-body logs aborted, never the whole Content-Length', async () => {
    await abortAfter('/files/big.bin?cut=1', 100_000);
    const all = await lineFor('/files/big.bin', 2);
    const line = all[1]!;
    expect(line).toMatchObject({ status: 200, aborted: true });
    expect(line.bytes).toBeGreaterThan(0);
    expect(line.bytes).toBeLessThan(MB5);
  });
});
