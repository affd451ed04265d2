/**
 * The client side end to end: a real gateway in this process on a fresh abstract name, the real
 * CLI spawned (bin/nullgate.js runs dist/: `npx tsc -p tsconfig.build.json` first, as `npm test`
 * does), and the library's connector with undici's own request/stream/pipeline/fetch.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, statSync } from 'node:fs';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  truncate,
  utimes,
  writeFile,
} from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { Agent, fetch, pipeline, request, stream } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client, ClientError, PartialTransferError, connector } from '../../client/index.js';
import { createGateway, type Gateway } from '../../gateway/gateway.js';
import { listenAbstract } from '../../gateway/listen.js';
import { BIN, runCli, runFile, runNode } from '../helpers/cli.js';
import { itNeeds } from '../helpers/requirements.js';
import { uniqueName } from '../helpers/sockets.js';

const BUNDLE = fileURLToPath(new URL('../../bundle/nullgate.cjs', import.meta.url));

/** Temporary download names (`.NAME.<random>.part`) left in `dir`. */
const leftovers = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.part'));

/**
 * A deliberately broken HTTP server for what nullgate's own server never does: bodies cut
 * short, Range ignored, a 206 for the wrong range. The URL path picks the behaviour.
 */
async function startRawServer(name: string, full: Buffer): Promise<net.Server> {
  const server = net.createServer((socket) => {
    let head = '';
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const [method = '', target = ''] = head.split(' ');
      head = '';
      const send = (status: string, headers: Record<string, string | number>, body: Buffer): void => {
        const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
        socket.write(`HTTP/1.1 ${status}\r\n${lines.join('')}\r\n`);
        if (method !== 'HEAD') socket.write(body);
      };
      if (target === '/files/cut') {
        // Announces the whole file, sends a tenth, then the connection dies.
        send('200 OK', { 'content-length': full.length }, full.subarray(0, full.length / 10));
        setTimeout(() => socket.destroy(), 50);
      } else if (target === '/files/ignores-range') {
        send('200 OK', { 'content-length': full.length }, full);
      } else if (target === '/files/ignores-range-then-cut') {
        send('200 OK', { 'content-length': full.length }, full.subarray(0, 3));
        setTimeout(() => socket.destroy(), 50);
      } else if (target === '/files/wrong-206') {
        send(
          '206 Partial Content',
          { 'content-length': full.length, 'content-range': `bytes 0-${full.length - 1}/${full.length}` },
          full,
        );
      } else if (target === '/files/evil/') {
        // Names and fields that would drive a terminal: clear screen, set the title, 8-bit CSI.
        const listing = JSON.stringify({
          path: '/evil/',
          entries: [
            { name: '\x1b[2J\x1b]0;owned\x07', type: 'file', size: 1, mtime: 0, mode: 0o644 },
            { name: 'line\nnullgate: forged', type: 'dir', size: 0, mtime: 0, mode: 0o755 },
            { name: 'c1\u009b2J\x7f', type: 'file', size: '\x1b[31m', mtime: 0, mode: 0o644 },
          ],
        });
        send(
          '200 OK',
          { 'content-type': 'application/json', 'content-length': Buffer.byteLength(listing) },
          Buffer.from(listing),
        );
      } else if (/^\/(files|archive)\/redirect/.test(target)) {
        send('302 Found', { location: '/files/elsewhere', 'content-length': 0 }, Buffer.alloc(0));
      } else if (target === '/evil-header') {
        // obs-text (RFC 9110 §5.5): the UTF-8 bytes of U+009B, an 8-bit CSI.
        socket.write(Buffer.from('HTTP/1.1 200 OK\r\nx-evil: a\u009b2Jb\r\ncontent-length: 2\r\n\r\nok'));
      } else if (target === '/files/evil-error') {
        const body = JSON.stringify({
          statusCode: 404,
          code: 'NG_ERR_NOT_FOUND',
          error: 'Not Found',
          message: 'gone\x1b[2J\r\nnullgate: all good\u009b',
        });
        send(
          '404 Not Found',
          { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          Buffer.from(body),
        );
      } else {
        send('404 Not Found', { 'content-length': 0 }, Buffer.alloc(0));
      }
    });
  });
  await listenAbstract(server, name);
  return server;
}

async function startGateway(root: string, socket = uniqueName('client')): Promise<Gateway> {
  const gateway = createGateway({ socket, root, writable: true, logLevel: false });
  await gateway.listen();
  return gateway;
}

describe('nullgate client (real CLI, real abstract socket)', () => {
  let root: string;
  let work: string;
  let gateway: Gateway;
  let name: string;
  const cli = (args: string[], options: Parameters<typeof runCli>[1] = {}) =>
    runCli([...args, '--socket', name], { cwd: work, ...options });

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'ng-client-root-'));
    work = await mkdtemp(path.join(tmpdir(), 'ng-client-work-'));
    name = uniqueName('client');
    gateway = await startGateway(root, name);
  });
  afterAll(async () => {
    await gateway.close();
    await rm(root, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  describe('the bundle (npm run bundle)', () => {
    it('runs as a script from any directory: node bundle/nullgate.cjs get …', async () => {
      await writeFile(path.join(root, 'bundled.txt'), 'from the bundle\n');
      const r = await runFile(BUNDLE, ['get', '/bundled.txt', '--socket', name], { cwd: tmpdir() });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.toString()).toBe('from the bundle\n');
    });

    it('exits 7 with one line when no server listens', async () => {
      const r = await runFile(BUNDLE, ['request', '/health', '--socket', uniqueName('nobody')]);
      expect(r.code).toBe(7);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    });

    it('a get loads only what get needs: no undici, node:crypto, zlib or fs/promises (the archive and tree code use them)', async () => {
      // The bundle is CommonJS so that each module's built-ins load when that module first runs
      // (scripts/bundle.mjs); process.moduleLoadList names every built-in the process loaded.
      await writeFile(path.join(root, 'lean.txt'), 'lean\n');
      const list = path.join(work, 'module-load-list.json');
      const preload = path.join(work, 'module-load-list.cjs');
      await writeFile(
        preload,
        `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, JSON.stringify(process.moduleLoadList)));\n`,
      );
      for (const args of [[], ['-o', path.join(work, 'lean.out')]]) {
        const r = await runNode(['-r', preload, BUNDLE, 'get', '/lean.txt', '--socket', name, ...args]);
        expect(r.stderr).toBe('');
        expect(
          args.length === 0 ? r.stdout.toString() : await readFile(path.join(work, 'lean.out'), 'utf8'),
        ).toBe('lean\n');
        const loaded = JSON.parse(await readFile(list, 'utf8')) as string[];
        // undici is a bundle of its own, compiled when a verb on it starts; it requires
        // node:assert (and the client node:v8, for undici's wasm): neither may be loaded.
        for (const absent of [
          'NativeModule assert',
          'NativeModule v8',
          'NativeModule vm',
          'NativeModule crypto',
          'NativeModule zlib',
          'NativeModule internal/fs/promises',
          'NativeModule module',
        ]) {
          expect(loaded, `${absent} (get ${args.join(' ')})`).not.toContain(absent);
        }
      }
      await rm(path.join(work, 'lean.out'), { force: true });
    });

    it('carries only the undici it uses: no fetch, EventSource, mock or cache layers', async () => {
      const text = await readFile(BUNDLE, 'utf8');
      for (const absent of [
        'UND_MOCK_ERR_MOCK_NOT_MATCHED',
        'EventSource',
        'MockAgent',
        'SqliteCacheStore',
      ]) {
        expect(text.includes(absent), absent).toBe(false);
      }
    });

    it('never tiers the wasm HTTP parser up to TurboFan, whose background job Node waits for at exit', async () => {
      await writeFile(path.join(root, 'quick.bin'), Buffer.alloc(1024, 3));
      // V8 reports each wasm function it compiles and with which tier. Node waits for a TurboFan
      // job still running when the work is done (~100 ms for a 1 KiB request): none may start.
      // (`request` is on undici; `get` has no wasm at all, see above.)
      const script = `
        const m = await import(${JSON.stringify(BUNDLE)});
        process.exitCode = await m.main(['request', '/files/quick.bin', '--socket', ${JSON.stringify(name)}]);
      `;
      const r = await runNode(['--trace-wasm-compilation-times', '--input-type=module', '-e', script]);
      expect(r.code, r.stderr).toBe(0);
      // The trace shares stdout with the file: pick its lines out by their words.
      const tiers = [...r.stdout.toString('latin1').matchAll(/Compiled function \S+ using (\w+)/g)];
      expect(tiers.some(([, tier]) => tier === 'Liftoff')).toBe(true); // the parser, traced
      expect(tiers.filter(([, tier]) => tier === 'TurboFan').map(([line]) => line)).toEqual([]);
    });

    it('--help lists the client verbs only, on stdout; no verb is a usage error, usage on stderr', async () => {
      const help = await runFile(BUNDLE, ['--help']);
      expect(help.code).toBe(0);
      expect(help.stderr).toBe('');
      expect(help.stdout.toString()).toContain('nullgate get REMOTE');
      expect(help.stdout.toString()).not.toMatch(/nullgate serve|install-client/);
      const bare = await runFile(BUNDLE, []);
      expect(bare.code).toBe(2);
      expect(bare.stdout.length).toBe(0);
      expect(bare.stderr).toContain('nullgate get REMOTE');
      expect(bare.stderr).not.toMatch(/nullgate serve|install-client/);
      const unknown = await runFile(BUNDLE, ['serve']);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toBe('nullgate: unknown command "serve" (try nullgate --help)\n');
    });

    it('the full CLI: --help on stdout with serve; no verb: usage on stderr, exit 2', async () => {
      const help = await runCli(['--help']);
      expect(help.code).toBe(0);
      expect(help.stdout.toString()).toMatch(/nullgate serve .*\n[\s\S]*nullgate install-client DIR/);
      const bare = await runCli([]);
      expect(bare.code).toBe(2);
      expect(bare.stdout.length).toBe(0);
      expect(bare.stderr).toContain('nullgate serve');
    });
  });

  describe('request', () => {
    it('request -i /health prints the status line, headers and body', async () => {
      const r = await cli(['request', '-i', '/health']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const out = r.stdout.toString();
      expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(out).toMatch(/\r\ncontent-type: application\/json/i);
      expect(out.split('\r\n\r\n')[1]).toBe('{"status":"ok"}');
    });

    it('request /health prints only the body', async () => {
      const r = await cli(['request', '/health']);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout.toString())).toEqual({ status: 'ok' });
    });

    it('request -I /health sends HEAD and prints the headers only', async () => {
      const r = await cli(['request', '-I', '/health']);
      expect(r.code).toBe(0);
      const out = r.stdout.toString();
      expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(out.endsWith('\r\n\r\n')).toBe(true);
    });

    it('request -f /nope exits 22 with one line naming method, path, socket and code', async () => {
      const r = await cli(['request', '-f', '/nope']);
      expect(r.code).toBe(22);
      expect(r.stdout.length).toBe(0);
      expect(r.stderr).toBe(
        `nullgate: GET /nope on ${name}: 404 NG_ERR_ROUTE_NOT_FOUND no route for GET /nope\n`,
      );
    });

    it('request -I -f of a missing file exits 22 naming the registry code (a HEAD has no body)', async () => {
      const r = await cli(['request', '-I', '-f', '/files/nope']);
      expect(r.stderr).toBe(`nullgate: HEAD /files/nope on ${name}: 404 NG_ERR_NOT_FOUND Not Found\n`);
      expect(r.code).toBe(22);
      expect(r.stdout.length).toBe(0);
    });

    it('request /nope without -f prints the error body and exits 0 (like curl)', async () => {
      const r = await cli(['request', '/nope']);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout.toString())).toMatchObject({
        statusCode: 404,
        code: 'NG_ERR_ROUTE_NOT_FOUND',
      });
    });

    it('request -v -d prints the request and response headers to stderr; -d means POST, form-encoded', async () => {
      const r = await cli(['request', '-v', '-d', 'a=1', '-d', 'b=2', '/health']);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('> POST /health HTTP/1.1\n');
      expect(r.stderr).toContain('> content-type: application/x-www-form-urlencoded\n');
      expect(r.stderr).toContain('> content-length: 7\n');
      expect(r.stderr).toMatch(/^< HTTP\/1\.1 404 Not Found$/m);
    });

    it('request -o FILE writes the body to the file', async () => {
      const r = await cli(['request', '-o', 'health.json', '/health']);
      expect(r.code).toBe(0);
      expect(r.stdout.length).toBe(0);
      expect(JSON.parse(await readFile(path.join(work, 'health.json'), 'utf8'))).toEqual({ status: 'ok' });
    });

    it('takes the socket from NULLGATE_SOCKET and from curl-style --abstract-unix-socket', async () => {
      const viaEnv = await runCli(['request', '/health'], { env: { NULLGATE_SOCKET: name } });
      expect(viaEnv.code).toBe(0);
      const viaCurlFlag = await runCli(['request', '/health', '--abstract-unix-socket', name.slice(1)]);
      expect(viaCurlFlag.code).toBe(0);
      expect(JSON.parse(viaCurlFlag.stdout.toString())).toEqual({ status: 'ok' });
    });

    it('a usage error exits 2', async () => {
      expect((await cli(['request'])).code).toBe(2);
      expect((await cli(['request', 'health'])).code).toBe(2);
      expect((await cli(['get'])).code).toBe(2);
      expect((await cli(['request', '--bogus', '/health'])).code).toBe(2);
    });
  });

  describe('connecting', () => {
    it('no server on the name: exit 7, "no server on @name"', async () => {
      const nobody = uniqueName('nobody');
      const r = await runCli(['request', '/health', '--socket', nobody]);
      expect(r.code).toBe(7);
      expect(r.stderr).toBe(`nullgate: GET /health on ${nobody}: no server on ${nobody}\n`);
      const g = await runCli(['get', '/x', '--socket', nobody]);
      expect(g.code).toBe(7);
    });

    it('NULLGATE_SOCKET=name (no @, no such socket file) exits 7 with a hint to write @name', async () => {
      const bare = uniqueName('nobody').slice(1);
      const r = await runCli(['request', '/health'], { env: { NULLGATE_SOCKET: bare }, cwd: work });
      expect(r.code).toBe(7);
      expect(r.stderr).toBe(
        `nullgate: GET /health on ${bare}: no server on ${bare} (did you mean @${bare}?)\n`,
      );
    });

    it('--wait 5 succeeds when the server starts a second later', async () => {
      const later = uniqueName('later');
      let ended = false;
      const run = runCli(['request', '/health', '--socket', later, '--wait', '5']).finally(
        () => (ended = true),
      );
      await new Promise((r) => setTimeout(r, 1000));
      // Still waiting when the server comes: the answer below is from this server.
      expect(ended).toBe(false);
      const g = await startGateway(root, later);
      try {
        const r = await run;
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout.toString())).toEqual({ status: 'ok' });
      } finally {
        await g.close();
      }
    });

    it('--wait gives up after its time: exit 7', async () => {
      const nobody = uniqueName('nobody');
      const started = Date.now();
      const r = await runCli(['request', '/health', '--socket', nobody, '--wait', '0.5']);
      expect(r.code).toBe(7);
      // A lower bound: what --wait promises, and no load can make it fail.
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    });
  });

  describe('connector with undici', () => {
    let agent: Agent;
    beforeAll(() => {
      agent = new Agent({ connect: connector(name) });
    });
    afterAll(async () => {
      await agent.close();
    });

    it('works with fetch', async () => {
      const res = await fetch('http://localhost/health', { dispatcher: agent });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok' });
    });

    it('works with request, and keeps the connection alive between requests', async () => {
      for (let i = 0; i < 3; i++) {
        const { statusCode, body } = await request('http://localhost/whoami', { dispatcher: agent });
        expect(statusCode).toBe(200);
        expect(await body.json()).toMatchObject({ pid: process.pid, allowed: true });
      }
    });

    it('works with stream and pipeline', async () => {
      const chunks: Buffer[] = [];
      await stream(
        'http://localhost/health',
        { dispatcher: agent, method: 'GET' },
        () =>
          new Writable({
            write(chunk: Buffer, _enc, cb) {
              chunks.push(chunk);
              cb();
            },
          }),
      );
      expect(Buffer.concat(chunks).toString()).toBe('{"status":"ok"}');

      const piped: Buffer[] = [];
      const duplex = pipeline(
        'http://localhost/health',
        { dispatcher: agent, method: 'GET' },
        ({ body }) => body,
      );
      duplex.end(); // a GET has no request body: end the writable side
      await pipelineAsync(
        duplex,
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            piped.push(chunk);
            cb();
          },
        }),
      );
      expect(Buffer.concat(piped).toString()).toBe('{"status":"ok"}');
    });

    it('reports a missing server as NG_ERR_NO_SERVER with the system error as cause', async () => {
      const nobody = uniqueName('nobody');
      const lonely = new Agent({ connect: connector(nobody) });
      try {
        const err = await request('http://localhost/health', { dispatcher: lonely }).then(
          () => undefined,
          (e: unknown) => e as Error & { code?: string; cause?: { code?: string } },
        );
        expect(err?.code).toBe('NG_ERR_NO_SERVER');
        expect(err?.message).toBe(`no server on ${nobody}`);
        expect(err?.cause?.code).toBe('ECONNREFUSED');
        const fetched = await fetch('http://localhost/health', { dispatcher: lonely }).catch(
          (e: unknown) => e,
        );
        expect((fetched as { cause?: { code?: string } }).cause?.code).toBe('NG_ERR_NO_SERVER');
      } finally {
        await lonely.close();
      }
    });

    it('validates its options once, naming the option and the value', () => {
      expect(() => connector(name, { waitMs: -1 })).toThrow(/invalid waitMs: .* got -1/);
      expect(() => connector(name, { busyMs: Number.NaN })).toThrow(/invalid busyMs: .* got NaN/);
      expect(() => connector('@')).toThrow(/invalid address/);
      expect(() => connector('@bad\\x')).toThrow(expect.objectContaining({ code: 'NG_ERR_ADDRESS_INVALID' }));
    });

    it('Client.request returns raw responses, error statuses included', async () => {
      const client = new Client({ socket: name });
      try {
        const ok = await client.request('GET', '/health');
        expect(await ok.body.json()).toEqual({ status: 'ok' });
        const missing = await client.request('GET', '/nope');
        expect(missing.statusCode).toBe(404);
        await missing.body.dump();
      } finally {
        await client.close();
      }
    });
  });

  describe('file verbs', () => {
    afterEach(async () => {
      for (const entry of ['out.bin', 'got', 'pulled', 'partial.bin']) {
        await rm(path.join(work, entry), { recursive: true, force: true });
      }
    });

    it('put then get round-trips a file (stdout, -o, -O)', async () => {
      const data = Buffer.from('hello, chroot\n');
      await writeFile(path.join(work, 'local.txt'), data);
      expect((await cli(['put', 'local.txt', '/dir/remote.txt'])).code).toBe(0);
      expect(await readFile(path.join(root, 'dir/remote.txt'))).toEqual(data);

      const out = await cli(['get', '/dir/remote.txt']);
      expect(out.code).toBe(0);
      expect(out.stdout).toEqual(data);

      expect((await cli(['get', '/dir/remote.txt', '-o', 'out.bin'])).code).toBe(0);
      expect(await readFile(path.join(work, 'out.bin'))).toEqual(data);

      expect((await cli(['get', '-O', '/dir/remote.txt'])).code).toBe(0);
      expect(await readFile(path.join(work, 'remote.txt'))).toEqual(data);
    });

    it('a reader that closes stdout early (| head -c 10) ends get and request quietly: exit 0, no message', async () => {
      await writeFile(path.join(root, 'endless.bin'), Buffer.alloc(16 * 1024 * 1024, 'x'));
      for (const args of [['get', '/endless.bin'], ['request', '/files/endless.bin'], ['--help']]) {
        // Like head -c 10: read the first bytes, then close the pipe while the writer goes on.
        const child = spawn(
          process.execPath,
          [BIN, ...args, ...(args[0] === '--help' ? [] : ['--socket', name])],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stderr = '';
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.stdout.once('data', () => child.stdout.destroy());
        const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
        expect({ args, code, signal, stderr }).toEqual({ args, code: 0, signal: null, stderr: '' });
      }
    });

    it('put - REMOTE reads standard input; put LOCAL DIR/ takes the local name', async () => {
      expect((await cli(['put', '-', '/stdin.txt'], { input: 'from stdin' })).code).toBe(0);
      expect(await readFile(path.join(root, 'stdin.txt'), 'utf8')).toBe('from stdin');
      await writeFile(path.join(work, 'named.txt'), 'named');
      expect((await cli(['put', 'named.txt', '/into/'])).code).toBe(0);
      expect(await readFile(path.join(root, 'into/named.txt'), 'utf8')).toBe('named');
    });

    it('put of a missing local file exits 26', async () => {
      const r = await cli(['put', 'does-not-exist', '/x']);
      expect(r.code).toBe(26);
      expect(r.stderr).toContain('does-not-exist');
    });

    it('get of a missing file exits 22 with the server code, and leaves no file behind', async () => {
      const r = await cli(['get', '/missing.txt', '-o', 'got']);
      expect(r.code).toBe(22);
      expect(r.stderr).toBe(
        `nullgate: GET /files/missing.txt on ${name}: 404 NG_ERR_NOT_FOUND no such file: /missing.txt\n`,
      );
      expect(existsSync(path.join(work, 'got'))).toBe(false);
      const leftovers = (await import('node:fs')).readdirSync(work).filter((f) => f.endsWith('.part'));
      expect(leftovers).toEqual([]);
    });

    it('get -r RANGE and get -C - (resume from the local size)', async () => {
      const data = Buffer.from('0123456789abcdef');
      await writeFile(path.join(root, 'ranged.bin'), data);
      const part = await cli(['get', '-r', '2-5', '/ranged.bin']);
      expect(part.code).toBe(0);
      expect(part.stdout.toString()).toBe('2345');

      await writeFile(path.join(work, 'partial.bin'), data.subarray(0, 7));
      expect((await cli(['get', '-C', '-', '-o', 'partial.bin', '/ranged.bin'])).code).toBe(0);
      expect(await readFile(path.join(work, 'partial.bin'))).toEqual(data);
      // Already complete: the server answers 416 and that is success, as with curl.
      expect((await cli(['get', '-C', '-', '-o', 'partial.bin', '/ranged.bin'])).code).toBe(0);
      expect(await readFile(path.join(work, 'partial.bin'))).toEqual(data);
    });

    it('get -C - appends only to the version it holds the start of: a remote file changed since comes whole', async () => {
      const v1 = Buffer.from('version one: 0123456789');
      const v2 = Buffer.from('VERSION TWO: 9876543210');
      const remote = path.join(root, 'versioned.bin');
      const local = path.join(work, 'versioned.bin');
      // Modified long enough ago for Last-Modified to be a strong validator (RFC 9110 §8.8.2.2).
      const t1 = new Date(Math.floor(Date.now() / 1000) * 1000 - 7200_000);
      const t2 = new Date(t1.getTime() + 3600_000);
      await writeFile(remote, v1);
      await utimes(remote, t1, t1);
      const cutTo = async (n: number, mtime: Date): Promise<void> => {
        await truncate(local, n);
        await utimes(local, mtime, mtime); // as a cut download leaves it: stamped
      };

      // The first -C - stamps the file with the remote Last-Modified, as curl -R does.
      const first = await cli(['get', '-C', '-', '-o', 'versioned.bin', '/versioned.bin']);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect(await readFile(local)).toEqual(v1);
      expect((await stat(local)).mtimeMs).toBe(t1.getTime());

      // Unchanged: the rest is appended.
      await cutTo(7, t1);
      const client = new Client({ socket: name });
      try {
        expect(await client.download('/versioned.bin', local, { resume: true })).toMatchObject({
          resumed: true,
          bytes: v1.length - 7,
          restart: undefined,
        });
        expect(await readFile(local)).toEqual(v1);
      } finally {
        await client.close();
      }

      // Changed since (same size): If-Range fails, the whole new file replaces the partial one.
      await writeFile(remote, v2);
      await utimes(remote, t2, t2);
      await cutTo(7, t1);
      const changed = await cli(['get', '-C', '-', '-o', 'versioned.bin', '/versioned.bin']);
      expect(changed.code).toBe(0);
      expect(await readFile(local)).toEqual(v2);
      expect(changed.stderr).toBe(
        'nullgate: /versioned.bin is not the file versioned.bin holds the start of (it changed, or the server does not resume): downloaded it whole\n',
      );
      expect((await stat(local)).mtimeMs).toBe(t2.getTime());

      // A partial file whose mtime no Last-Modified gave (curl without -R, an editor): whole too.
      await writeFile(local, v2.subarray(0, 5));
      await utimes(local, new Date(t2.getTime() + 1234), new Date(t2.getTime() + 1234));
      const unknown = await cli(['get', '-C', '-', '-o', 'versioned.bin', '/versioned.bin']);
      expect(unknown.code).toBe(0);
      expect(await readFile(local)).toEqual(v2);
      expect(unknown.stderr).toMatch(/mtime is not a Last-Modified of \/versioned\.bin.*downloaded it whole/);
      expect(leftovers(work)).toEqual([]);
    });

    it('put and get -o keep the permission bits like cp; -p also the mtime, and as root the owner', async () => {
      const local = path.join(work, 'tool.sh');
      await writeFile(local, '#!/bin/sh\n');
      await chmod(local, 0o750);
      const mtime = new Date('2024-05-06T07:08:09.123Z');
      await utimes(local, mtime, mtime);
      expect((await cli(['put', 'tool.sh', '/keep/tool.sh'])).code).toBe(0);
      let remote = await stat(path.join(root, 'keep/tool.sh'));
      expect(remote.mode & 0o7777).toBe(0o750);
      expect(remote.mtimeMs).not.toBe(mtime.getTime());
      expect((await cli(['put', '-p', 'tool.sh', '/keep/tool-p.sh'])).code).toBe(0);
      remote = await stat(path.join(root, 'keep/tool-p.sh'));
      expect(remote.mode & 0o7777).toBe(0o750);
      // To the nanosecond: the server sets what the header says.
      const localNs = (await stat(local, { bigint: true })).mtimeNs;
      expect((await stat(path.join(root, 'keep/tool-p.sh'), { bigint: true })).mtimeNs).toBe(localNs);

      // get -o: the remote bits (less the umask, as cp); -p: the mtime too, and as root the owner.
      const asRoot = process.getuid?.() === 0;
      // chown first: it clears set-id bits.
      if (asRoot) await chown(path.join(root, 'keep/tool-p.sh'), 1234, 2345);
      await chmod(path.join(root, 'keep/tool-p.sh'), 0o4751);
      expect((await cli(['get', '/keep/tool-p.sh', '-o', 'got.sh'])).code).toBe(0);
      const got = await stat(path.join(work, 'got.sh'));
      const umask = process.umask(0o022);
      process.umask(umask);
      expect(got.mode & 0o7777).toBe(0o751 & ~umask);
      expect(got.mtimeMs).not.toBe(mtime.getTime());
      expect((await cli(['get', '-p', '/keep/tool-p.sh', '-o', 'got-p.sh'])).code).toBe(0);
      const gotP = await stat(path.join(work, 'got-p.sh'));
      // To the microsecond: what Node's utimes keeps of it.
      const gotNs = (await stat(path.join(work, 'got-p.sh'), { bigint: true })).mtimeNs;
      expect(Number(gotNs > localNs ? gotNs - localNs : localNs - gotNs)).toBeLessThan(2000);
      expect(gotP.mode & 0o7777).toBe(asRoot ? 0o4751 : 0o751);
      if (asRoot) expect([gotP.uid, gotP.gid]).toEqual([1234, 2345]);
      const usage = await cli(['get', '-p', '/keep/tool-p.sh']);
      expect(usage.code).toBe(2);

      // The resumable path (put sends files of 64 MiB and more that way) keeps them too.
      const client = new Client({ socket: name });
      try {
        await client.put(local, '/keep/resumable.sh', { resumable: true, keep: 'all' });
      } finally {
        await client.close();
      }
      const viaResumable = await stat(path.join(root, 'keep/resumable.sh'), { bigint: true });
      expect(Number(viaResumable.mode) & 0o7777).toBe(0o750);
      expect(viaResumable.mtimeNs).toBe(localNs);
    });

    it('ls, ls -l, ls --json', async () => {
      await mkdir(path.join(root, 'list/sub'), { recursive: true });
      await writeFile(path.join(root, 'list/a.txt'), 'aaa');
      const plain = await cli(['ls', '/list']);
      expect(plain.code).toBe(0);
      expect(plain.stdout.toString()).toBe('a.txt\nsub/\n');
      const long = await cli(['ls', '-l', '/list']);
      const [uid, gid] = [process.getuid!(), process.getgid!()];
      expect(long.stdout.toString()).toMatch(
        new RegExp(
          `^-rw\\S+ ${uid} ${gid} +3 \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d a\\.txt\\nd\\S+ ${uid} ${gid} .+ sub/\\n$`,
        ),
      );
      const json = JSON.parse((await cli(['ls', '--json', '/list/'])).stdout.toString()) as {
        entries: { name: string; type: string; uid: number; gid: number }[];
      };
      expect(json.entries.map((e) => [e.name, e.type, e.uid, e.gid])).toEqual([
        ['a.txt', 'file', uid, gid],
        ['sub', 'dir', uid, gid],
      ]);
      expect((await cli(['ls', '/no/such/dir'])).code).toBe(22);
    });

    it('ls FILE shows the file as ls(1) does: its own line, with -l its mode, size and mtime; --json one entry', async () => {
      await mkdir(path.join(root, 'results'), { recursive: true });
      await writeFile(path.join(root, 'results/install.log'), 'install ok\n', { mode: 0o640 });
      await chmod(path.join(root, 'results/install.log'), 0o640);
      const plain = await cli(['ls', '/results/install.log']);
      expect(plain.stderr).toBe('');
      expect(plain.code).toBe(0);
      expect(plain.stdout.toString()).toBe('/results/install.log\n');
      const long = await cli(['ls', '-l', '/results/install.log']);
      expect(long.code).toBe(0);
      expect(long.stdout.toString()).toMatch(
        new RegExp(
          `^-rw-r----- ${process.getuid!()} ${process.getgid!()} 11 \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d /results/install\\.log\\n$`,
        ),
      );
      const asJson = await cli(['ls', '--json', '/results/install.log']);
      expect(asJson.code).toBe(0);
      const parsed = JSON.parse(asJson.stdout.toString()) as {
        path: string;
        entries: Record<string, unknown>[];
      };
      expect(parsed).toMatchObject({
        path: '/results/install.log',
        entries: [{ name: 'install.log', type: 'file', size: 11, mode: 0o640 }],
      });
      const mtime = (await stat(path.join(root, 'results/install.log'))).mtimeMs;
      expect(Math.abs(Date.parse(String(parsed.entries[0]!.mtime)) - mtime)).toBeLessThanOrEqual(1);
      // A file written as a directory, and a path that is not there, stay errors.
      const slash = await cli(['ls', '/results/install.log/']);
      expect(slash.code).toBe(22);
      expect(slash.stderr).toContain('404 NG_ERR_NOT_FOUND');
      const missing = await cli(['ls', '-l', '/results/nope.log']);
      expect(missing.code).toBe(22);
      expect(missing.stderr).toBe(
        `nullgate: GET /files/results/nope.log/ on ${name}: 404 NG_ERR_NOT_FOUND no such file: /results/nope.log\n`,
      );
    });

    it('get of a directory fails in one line naming ls and pull (exit 22), printing and writing nothing', async () => {
      await mkdir(path.join(root, 'config'), { recursive: true });
      await writeFile(path.join(root, 'config/app.json'), '{"a":1}');
      for (const args of [
        ['get', '/config'],
        ['get', '/config/'],
        ['get', '/config', '-o', 'config.out'],
      ]) {
        const r = await cli(args);
        expect(r.code, args.join(' ')).toBe(22);
        expect(r.stdout.length, args.join(' ')).toBe(0);
        expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
        expect(r.stderr, args.join(' ')).toMatch(
          /is a directory: list it with "nullgate ls \/config\/?", or copy it with "nullgate pull \/config\/? DIR"/,
        );
      }
      expect(existsSync(path.join(work, 'config.out'))).toBe(false);
      // A file that is JSON is still a file.
      const file = await cli(['get', '/config/app.json']);
      expect(file.code).toBe(0);
      expect(file.stdout.toString()).toBe('{"a":1}');
      const client = new Client({ socket: name });
      try {
        await expect(client.get('/config')).rejects.toMatchObject({ code: 'NG_ERR_IS_A_DIRECTORY' });
        expect(await client.stat('/config')).toMatchObject({ type: 'dir' });
        expect(await client.stat('/config/app.json')).toMatchObject({ type: 'file', size: 7 });
      } finally {
        await client.close();
      }
    });

    it('mkdir, mv, rm, rm -r', async () => {
      expect((await cli(['mkdir', '/m/a/b'])).code).toBe(0);
      expect((await stat(path.join(root, 'm/a/b'))).isDirectory()).toBe(true);
      await writeFile(path.join(root, 'm/f.txt'), 'f');
      expect((await cli(['mv', '/m/f.txt', '/m/g.txt'])).code).toBe(0);
      expect(await readFile(path.join(root, 'm/g.txt'), 'utf8')).toBe('f');
      expect((await cli(['rm', '/m/g.txt'])).code).toBe(0);
      expect(existsSync(path.join(root, 'm/g.txt'))).toBe(false);
      const notEmpty = await cli(['rm', '/m']);
      expect(notEmpty.code).toBe(22);
      expect(notEmpty.stderr).toBe(
        `nullgate: DELETE /files/m on ${name}: 409 NG_ERR_CONFLICT /m is a directory that is not empty: use rm -r to delete it with its contents\n`,
      );
      expect((await cli(['rm', '-r', '/m'])).code).toBe(0);
      expect(existsSync(path.join(root, 'm'))).toBe(false);
    });

    it('mv FILE DIR moves into the directory like mv(1) and says so; -T takes DIR as the name', async () => {
      await mkdir(path.join(root, 'mvd/into'), { recursive: true });
      await writeFile(path.join(root, 'mvd/f.txt'), 'f');
      const into = await cli(['mv', '/mvd/f.txt', '/mvd/into']);
      expect(into.code, into.stderr).toBe(0);
      expect(await readFile(path.join(root, 'mvd/into/f.txt'), 'utf8')).toBe('f');
      expect(into.stderr).toBe('nullgate: moved /mvd/f.txt to /mvd/into/f.txt\n');
      // A trailing slash on TO says the same; -s keeps quiet.
      const back = await cli(['mv', '-s', '/mvd/into/f.txt', '/mvd/']);
      expect(back.code, back.stderr).toBe(0);
      expect(back.stderr).toBe('');
      expect(await readFile(path.join(root, 'mvd/f.txt'), 'utf8')).toBe('f');
      // -T: the directory itself is the target name (an empty directory is replaced, as rename(2) does).
      await mkdir(path.join(root, 'mvd/d1'));
      await mkdir(path.join(root, 'mvd/d2'));
      await writeFile(path.join(root, 'mvd/d1/x'), 'x');
      const named = await cli(['mv', '-T', '/mvd/d1', '/mvd/d2']);
      expect(named.code, named.stderr).toBe(0);
      expect(await readFile(path.join(root, 'mvd/d2/x'), 'utf8')).toBe('x');
      expect(existsSync(path.join(root, 'mvd/d2/d1'))).toBe(false);
    });

    it('push then pull round-trips a tree with a symlink', async () => {
      const src = path.join(work, 'tree');
      await mkdir(path.join(src, 'sub/deeper'), { recursive: true });
      await writeFile(path.join(src, 'top.txt'), 'top');
      await writeFile(path.join(src, 'sub/deeper/leaf.bin'), Buffer.alloc(70_000, 7));
      await symlink('top.txt', path.join(src, 'link'));
      expect((await cli(['push', 'tree', '/pushed'])).code).toBe(0);
      expect(await readFile(path.join(root, 'pushed/top.txt'), 'utf8')).toBe('top');

      const r = await cli(['pull', '/pushed', 'pulled']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const dest = path.join(work, 'pulled');
      expect(await readFile(path.join(dest, 'top.txt'), 'utf8')).toBe('top');
      expect((await readFile(path.join(dest, 'sub/deeper/leaf.bin'))).length).toBe(70_000);
      expect((await lstat(path.join(dest, 'link'))).isSymbolicLink()).toBe(true);
      expect(await readlink(path.join(dest, 'link'))).toBe('top.txt');
    });

    itNeeds(
      ['root', 'mount'],
      'get -o on a full disk mid-download exits 23, keeps the old file and leaves no temporary',
      async () => {
        const small = await mkdtemp(path.join(tmpdir(), 'ng-client-full-'));
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
        try {
          await writeFile(path.join(root, 'big-for-tmpfs.bin'), Buffer.alloc(8 << 20, 5));
          await writeFile(path.join(small, 'keep.bin'), 'old content');
          const r = await cli(['get', '/big-for-tmpfs.bin', '-o', path.join(small, 'keep.bin')]);
          expect(r.code).toBe(23);
          expect(r.stderr).toMatch(/cannot write .*keep\.bin: no space left on device/);
          expect(await readFile(path.join(small, 'keep.bin'), 'utf8')).toBe('old content');
          expect(readdirSync(small)).toEqual(['keep.bin']);
        } finally {
          execFileSync('umount', [small]);
          await rm(small, { recursive: true, force: true });
        }
      },
    );

    it('get -o into a missing directory exits 23 naming the destination, not the temporary file', async () => {
      await writeFile(path.join(root, 'small.txt'), 'small');
      const r = await cli(['get', '/small.txt', '-o', 'no-such-dir/app.conf']);
      expect(r.code).toBe(23);
      expect(r.stderr).toBe(
        'nullgate: cannot write no-such-dir/app.conf: directory no-such-dir does not exist\n',
      );
    });

    it.skipIf(!statSync('/dev/full', { throwIfNoEntry: false })?.isCharacterDevice())(
      'get -o /dev/full exits 23 (no space); the device is written in place, never replaced',
      async () => {
        await writeFile(path.join(root, 'small.txt'), 'small');
        const r = await cli(['get', '/small.txt', '-o', '/dev/full']);
        expect(r.stderr).toBe('nullgate: cannot write /dev/full: no space left on device\n');
        expect(r.code).toBe(23);
        expect(statSync('/dev/full').isCharacterDevice()).toBe(true);
        const ok = await cli(['get', '/small.txt', '-o', '/dev/null']);
        expect(ok.code).toBe(0);
        expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
        expect(leftovers('/dev')).toEqual([]);
      },
    );

    it('get -o through a symlink replaces the file it points to and keeps the link', async () => {
      await writeFile(path.join(root, 'small.txt'), 'small');
      await writeFile(path.join(work, 'real.txt'), 'old');
      await symlink('real.txt', path.join(work, 'out.bin'));
      expect((await cli(['get', '/small.txt', '-o', 'out.bin'])).code).toBe(0);
      expect((await lstat(path.join(work, 'out.bin'))).isSymbolicLink()).toBe(true);
      expect(await readFile(path.join(work, 'real.txt'), 'utf8')).toBe('small');
      await rm(path.join(work, 'real.txt'));
    });

    it('Client.stat: HEAD metadata, a typed 404, and no crash on the unread body', async () => {
      await writeFile(path.join(root, 'stat.bin'), Buffer.alloc(1234, 1));
      const client = new Client({ socket: name });
      try {
        const st = await client.stat('/stat.bin');
        expect(st).toMatchObject({ size: 1234, contentType: 'application/octet-stream' });
        expect(st.etag).toMatch(/^"/);
        expect(st.mtime).toBeInstanceOf(Date);
        const err = await client.stat('/nope.bin').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ClientError);
        expect(err).toMatchObject({ statusCode: 404, code: 'NG_ERR_NOT_FOUND', method: 'HEAD' });
        // An unhandled UND_ERR_ABORTED would surface here, a tick or two later.
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        await client.close();
      }
    });

    it('the library Client: typed results and a typed error', async () => {
      const client = new Client({ socket: name });
      try {
        const { Readable } = await import('node:stream');
        const created = await client.put(Readable.from([Buffer.from('lib')]), '/lib.txt', { size: 3 });
        expect(created).toMatchObject({ size: 3 });
        const got = await client.get('/lib.txt');
        const chunks: Buffer[] = [];
        for await (const c of got.body as AsyncIterable<Buffer>) chunks.push(c);
        expect(Buffer.concat(chunks).toString()).toBe('lib');
        const listing = await client.list('/');
        expect(listing.entries.some((e) => e.name === 'lib.txt')).toBe(true);
        const err = await client.get('/nope.txt').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ClientError);
        expect(err).toMatchObject({ statusCode: 404, code: 'NG_ERR_NOT_FOUND' });
      } finally {
        await client.close();
      }
    });
  });

  describe('a server that misbehaves (raw)', () => {
    const full = Buffer.from('0123456789'.repeat(10)); // 100 bytes: a tenth is 10
    let raw: net.Server;
    let rawName: string;
    const rawCli = (args: string[]) => runCli([...args, '--socket', rawName], { cwd: work });
    beforeAll(async () => {
      rawName = uniqueName('raw');
      raw = await startRawServer(rawName, full);
    });
    afterAll(async () => {
      await new Promise((r) => raw.close(r));
    });
    afterEach(async () => {
      await rm(path.join(work, 'keep.txt'), { force: true });
    });

    it('get -o cut mid-body: exit 18, the old file untouched, no temporary file', async () => {
      await writeFile(path.join(work, 'keep.txt'), 'the old contents');
      const r = await rawCli(['get', '/cut', '-o', 'keep.txt']);
      expect(r.stderr).toBe(
        `nullgate: GET /files/cut on ${rawName}: transfer cut short after ${full.length / 10} of ${full.length} bytes: other side closed\n`,
      );
      expect(r.code).toBe(18);
      expect(await readFile(path.join(work, 'keep.txt'), 'utf8')).toBe('the old contents');
      expect(leftovers(work)).toEqual([]);
    });

    it('get -C - with no local file writes in place: a cut leaves what arrived, for the next -C -', async () => {
      const r = await rawCli(['get', '-C', '-', '/cut', '-o', 'keep.txt']);
      expect(r.code).toBe(18);
      // What arrived and was read before the cut: all ten bytes, unless the connection's end
      // overtook them on a loaded machine (the HTTP client then drops what it had buffered).
      const kept = await readFile(path.join(work, 'keep.txt'));
      expect(kept).toEqual(full.subarray(0, kept.length));
      expect(kept.length).toBeLessThanOrEqual(full.length / 10);
      expect(leftovers(work)).toEqual([]);
    });

    it('get to stdout and request cut mid-body: exit 18 too', async () => {
      expect((await rawCli(['get', '/cut'])).code).toBe(18);
      const r = await rawCli(['request', '-o', 'keep.txt', '/files/cut']);
      expect(r.code).toBe(18);
      expect(existsSync(path.join(work, 'keep.txt'))).toBe(false);
      expect(leftovers(work)).toEqual([]);
    });

    it('get -C - when the server ignores the range (200): the whole file, like a plain download', async () => {
      await writeFile(path.join(work, 'keep.txt'), full.subarray(0, 7));
      await utimes(path.join(work, 'keep.txt'), 1_700_000_000, 1_700_000_000);
      const r = await rawCli(['get', '-C', '-', '-o', 'keep.txt', '/ignores-range']);
      expect(r.stderr).toBe(
        'nullgate: /ignores-range is not the file keep.txt holds the start of (it changed, or the server does not resume): downloaded it whole\n',
      );
      expect(r.code).toBe(0);
      expect(await readFile(path.join(work, 'keep.txt'))).toEqual(full);
      expect(leftovers(work)).toEqual([]);
    });

    it('get -C - with a 200 that is cut: the partial file keeps what it had', async () => {
      await writeFile(path.join(work, 'keep.txt'), full.subarray(0, 7));
      const r = await rawCli(['get', '-C', '-', '-o', 'keep.txt', '/ignores-range-then-cut']);
      expect(r.code).toBe(18);
      expect(await readFile(path.join(work, 'keep.txt'))).toEqual(full.subarray(0, 7));
      expect(leftovers(work)).toEqual([]);
    });

    it('a 206 for the wrong range names the request once', async () => {
      await writeFile(path.join(work, 'keep.txt'), full.subarray(0, 4));
      await utimes(path.join(work, 'keep.txt'), 1_700_000_000, 1_700_000_000);
      const r = await rawCli(['get', '-C', '-', '-o', 'keep.txt', '/wrong-206']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `nullgate: GET /files/wrong-206 on ${rawName}: 206 for a range that does not start at 4\n`,
      );
      expect(await readFile(path.join(work, 'keep.txt'))).toEqual(full.subarray(0, 4));
    });

    it('a 302 (any answer that is not 2xx) is an error for every file verb; request keeps curl manners', async () => {
      await writeFile(path.join(work, 'keep.txt'), 'the old contents');
      await mkdir(path.join(work, 'tree'), { recursive: true });
      await writeFile(path.join(work, 'tree', 'f'), 'f');
      const verbs = [
        ['get', '/redirect', '-o', 'keep.txt'],
        ['get', '-C', '-', '/redirect', '-o', 'keep.txt'],
        ['get', '/redirect'],
        ['ls', '/redirect'],
        ['rm', '/redirect'],
        ['mkdir', '/redirect'],
        ['mv', '/redirect', '/other'],
        ['put', 'keep.txt', '/redirect'],
        ['pull', '/redirect', 'pulled'],
        ['push', 'tree', '/redirect'],
      ];
      for (const args of verbs) {
        const r = await rawCli(args);
        expect(r.code, args.join(' ')).toBe(22);
        expect(r.stdout.toString(), args.join(' ')).toBe('');
        expect(r.stderr, args.join(' ')).toMatch(/: 302 NG_ERR_HTTP Found\n$/);
      }
      expect(await readFile(path.join(work, 'keep.txt'), 'utf8')).toBe('the old contents');
      expect(leftovers(work)).toEqual([]);
      const r = await rawCli(['request', '-i', '/files/redirect']);
      expect(r.code).toBe(0);
      expect(r.stdout.toString()).toMatch(/^HTTP\/1.1 302 Found\r\n/);
    }, 120_000);

    it('names and messages from the server reach the terminal with their control characters escaped', async () => {
      // Anything a terminal acts on except the newline that ends each line.
      // eslint-disable-next-line no-control-regex -- matching control characters is the point
      const controls = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;
      let r = await rawCli(['ls', '/evil']);
      expect(r.code).toBe(0);
      expect(r.stdout.toString()).toBe(
        '\\x1b[2J\\x1b]0;owned\\x07\nline\\nnullgate: forged/\nc1\\u009b2J\\x7f\n',
      );
      r = await rawCli(['ls', '-l', '/evil']);
      expect(r.code).toBe(0);
      expect(r.stdout.toString()).not.toMatch(controls);
      expect(r.stdout.toString().split('\n')[2]).toMatch(/^-rw-r--r-- \? .* c1\\u009b2J\\x7f$/);
      r = await rawCli(['ls', '--json', '/evil']);
      expect(r.stdout.toString()).not.toMatch(controls);
      expect(JSON.parse(r.stdout.toString()).entries[2].name).toBe('c1\u009b2J\x7f');
      r = await rawCli(['request', '-i', '-v', '/evil-header']);
      expect(r.code).toBe(0);
      expect(r.stdout.toString()).toContain('x-evil: a\\u009b2Jb\r\n');
      expect(r.stderr).toContain('< x-evil: a\\u009b2Jb\n');
      r = await rawCli(['get', '/evil-error']);
      expect(r.code).toBe(22);
      expect(r.stderr).toBe(
        `nullgate: GET /files/evil-error on ${rawName}: 404 NG_ERR_NOT_FOUND gone\\x1b[2J\\r\\nnullgate: all good\\u009b\n`,
      );
    }, 60_000);

    it('Client.download reports the cut as a PartialTransferError with the byte counts', async () => {
      const client = new Client({ socket: rawName });
      try {
        const err = await client.download('/cut', path.join(work, 'keep.txt')).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(PartialTransferError);
        expect(err).toMatchObject({
          received: full.length / 10,
          expected: full.length,
          code: 'UND_ERR_SOCKET',
        });
      } finally {
        await client.close();
      }
    });
  });
});
