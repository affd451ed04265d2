import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createGateway } from '../../gateway/index.js';
import { connectSocket, rawGet, uniqueName } from '../helpers/sockets.js';

/** Resolves true once the far end closes `socket` (false after 1 s). */
function closedSoon(socket: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 1000);
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
    const t0 = Date.now();
    await gateway.close();
    expect(Date.now() - t0).toBeLessThan(3000);
    await stuck;
  });

  it('close() does not wait for connections no request is coming on', async () => {
    const socket = uniqueName('silent');
    const gateway = createGateway({ socket, logLevel: false, graceMs: 10_000 });
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
    const t0 = Date.now();
    await gateway.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(silent.destroyed || (await closedSoon(silent))).toBe(true);
    silent.destroy();
    kept.destroy();
  });

  it('close() lets a keep-alive request in flight finish, then closes its connection at once', async () => {
    const socket = uniqueName('inflight-ka');
    const gateway = createGateway({ socket, logLevel: false, graceMs: 10_000 });
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
    const t0 = Date.now();
    release();
    await closed;
    await ended;
    expect(Date.now() - t0).toBeLessThan(1000);
    const text = Buffer.concat(chunks).toString();
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('{"done":true}');
  });

  it('bad options are refused before anything is bound', () => {
    expect(() => createGateway({ socket: '@bad\\x', logLevel: false })).toThrow(/malformed escape/);
    expect(() => createGateway({ allowUids: [65534], logLevel: false })).toThrow(/65534/);
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
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, NULLGATE_SOCKET: socket },
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
    }
  });
});
