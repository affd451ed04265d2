/**
 * Clients that try to exhaust the server rather than confuse it: one that never reads a 1 GiB
 * response (memory must stay bounded: backpressure, not buffering), 200 pipelined GETs that are
 * never read, 1,000 connections opened and dropped, a slowloris flood while a normal request is
 * served, and 200 concurrent downloads of one file. The server's RSS and fds are read from
 * /proc/<pid>.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, ftruncateSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PIPELINED_REQUESTS } from '../../core/limits.js';
import { settlesWithin } from '../helpers/bounds.js';
import { openFdCount, parseResponse, type RawResponse, rawGet } from '../helpers/sockets.js';
import {
  closedWithin,
  expectRecovered,
  GiB,
  type HostileServer,
  KiB,
  MiB,
  openConnection,
  rssOf,
  startHostile,
  waitFor,
} from './harness.js';

const file4m = randomBytes(4 * MiB);
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Opens `count` connections, a batch at a time so the listen backlog (511) never overflows for long. */
async function openMany(name: string, count: number, batch = 100): Promise<Socket[]> {
  const sockets: Socket[] = [];
  while (sockets.length < count) {
    const n = Math.min(batch, count - sockets.length);
    for (let i = 0; i < n; i++) sockets.push(await openConnection(name));
    await sleep(5);
  }
  return sockets;
}

/** GET `path` on a fresh connection, failing the test if it is not answered: a hang, not speed. */
function answered(name: string, path: string, what: string): Promise<RawResponse> {
  return settlesWithin(rawGet(name, path), 10_000, what);
}

describe('resource exhaustion', () => {
  let server: HostileServer;
  const open: Socket[] = [];
  beforeAll(async () => {
    server = await startHostile('resources', (dir) => {
      writeFileSync(join(dir, 'four.bin'), file4m);
      // Over the small-file fast path (64 KiB), under zero-copy (256 KiB): streamed from an fd.
      writeFileSync(join(dir, 'hundred.bin'), file4m.subarray(0, 100 * KiB));
      // A sparse 1 GiB file: no disk used, but 1 GiB to send.
      const fd = openSync(join(dir, 'huge.bin'), 'w');
      ftruncateSync(fd, GiB);
      closeSync(fd);
    });
  });
  afterAll(async () => {
    for (const s of open) s.destroy();
    await server?.stop();
  });
  afterEach(async () => {
    for (const s of open.splice(0)) s.destroy();
    await expectRecovered(server);
  });

  it('a client that never reads a 1 GiB response does not grow the server (backpressure)', async () => {
    const idleRss = rssOf(server.pid);
    const socket = await openConnection(server.name);
    open.push(socket);
    let received = 0;
    socket.on('data', (c: Buffer) => {
      received += c.length;
      // Take the first bytes (the status line and a little body), then stop reading for good.
      socket.pause();
    });
    socket.write('GET /files/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await waitFor(() => received > 0, 3000)).toBe(true);
    // Stall for a few seconds, sampling the server's RSS.
    let peak = 0;
    for (let i = 0; i < 12; i++) {
      await sleep(250);
      peak = Math.max(peak, rssOf(server.pid));
    }
    expect(received).toBeLessThan(64 * MiB);
    expect(peak - idleRss).toBeLessThan(64 * MiB);
    // Meanwhile the server serves others.
    const health = await answered(server.name, '/health', 'GET /health beside the stalled reader');
    expect(health.status).toBe(200);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
  }, 20_000);

  it.each([
    ['zero-copy', '/files/four.bin'],
    ['streamed', '/files/hundred.bin'],
  ])(
    '200 pipelined GETs never read (%s): a bounded number of files open, none once the client closes',
    async (_kind, path) => {
      const socket = await openConnection(server.name);
      open.push(socket);
      // The client never reads: the first answer fills the socket, the rest queue behind it.
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(200));
      // The server is taking them (one fd per request in flight); then the peak over half a second.
      expect(
        await waitFor(
          () => openFdCount(server.pid) >= server.baselineFds + MAX_PIPELINED_REQUESTS / 2,
          10_000,
        ),
      ).toBe(true);
      let peak = 0;
      for (let i = 0; i < 10; i++) {
        peak = Math.max(peak, openFdCount(server.pid));
        await sleep(50);
      }
      // The socket, one file per request in flight, and a few more (the native transfer's
      // duplicates, the thread pool's); not one per request sent.
      expect(peak - server.baselineFds).toBeLessThanOrEqual(1 + MAX_PIPELINED_REQUESTS + 8);
      socket.destroy();
      // Every file opened for a response queued behind the unread one is closed with the connection.
      expect(await waitFor(() => openFdCount(server.pid) <= server.baselineFds, 10_000)).toBe(true);
    },
    20_000,
  );

  it('100 pipelined GETs read as they come: each answered, in order, byte-exact', async () => {
    const bodies: Record<string, Buffer> = {
      '/files/four.bin': file4m,
      '/files/hundred.bin': file4m.subarray(0, 100 * KiB),
      '/health': Buffer.from('{"status":"ok"}'),
    };
    // More than MAX_PIPELINED_REQUESTS, so later ones wait for earlier ones, reading paused.
    const targets = Array.from({ length: 100 }, (_, i) =>
      i % 10 === 0 ? '/files/four.bin' : i % 2 === 0 ? '/files/hundred.bin' : '/health',
    );
    const socket = await openConnection(server.name);
    open.push(socket);
    const received = closedWithin(socket, 30_000);
    socket.write(
      targets
        .map(
          (t, i) =>
            `GET ${t} HTTP/1.1\r\nHost: x\r\n${i === targets.length - 1 ? 'Connection: close\r\n' : ''}\r\n`,
        )
        .join(''),
    );
    const all = await received;
    let at = 0;
    for (const target of targets) {
      const end = all.indexOf('\r\n\r\n', at);
      expect(end).toBeGreaterThan(-1);
      const res = parseResponse(all.subarray(at, end + 4));
      expect(res.status).toBe(200);
      const length = Number(res.headers['content-length']);
      expect(sha256(all.subarray(end + 4, end + 4 + length))).toBe(sha256(bodies[target]!));
      at = end + 4 + length;
    }
    expect(at).toBe(all.length);
  }, 45_000);

  it('1,000 concurrent connections opened and dropped leave nothing behind', async () => {
    const sockets = await openMany(server.name, 1000);
    open.push(...sockets);
    // Some say a little first: half a request line, a whole request, or nothing at all.
    sockets.forEach((s, i) => {
      if (i % 3 === 1) s.write('GET /hea');
      if (i % 3 === 2) s.write('GET /files/four.bin HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    // All of them are accepted (the server holds ~1,000 more fds) and the server still answers.
    expect(await waitFor(() => openFdCount(server.pid) >= server.baselineFds + 900, 10_000)).toBe(true);
    const health = await answered(server.name, '/health', 'GET /health beside 1,000 connections');
    expect(health.status).toBe(200);
    for (const s of open.splice(0)) s.destroy();
  }, 30_000);

  it('a slowloris flood does not stop a normal request from being served', async () => {
    // 300 connections that send one header byte per second (the 10 s headers timeout will cut
    // them; the test ends before), plus 300 that send nothing at all.
    const slow = await openMany(server.name, 300);
    const idle = await openMany(server.name, 300);
    open.push(...slow, ...idle);
    for (const s of slow) s.write('GET /health HTTP/1.1\r\nX-Slow: ');
    for (let tick = 0; tick < 4; tick++) {
      for (const s of slow) if (!s.destroyed) s.write('a');
      const health = await answered(server.name, '/health', `GET /health in the flood (tick ${tick})`);
      expect(health.status).toBe(200);
      // The file route too, not only /health.
      const res = await answered(server.name, '/files/four.bin', `GET a file in the flood (tick ${tick})`);
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(file4m.length);
      await sleep(1000);
    }
    for (const s of open.splice(0)) s.destroy();
  }, 30_000);

  it('200 concurrent downloads of the same 4 MiB file are byte-exact', async () => {
    const want = sha256(file4m);
    const results = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const socket = await openConnection(server.name);
        return new Promise<{ status: number; sha: string; length: number }>((resolve, reject) => {
          const chunks: Buffer[] = [];
          const timer = setTimeout(() => {
            socket.destroy();
            reject(new Error('download did not finish within 30 s'));
          }, 30_000);
          socket.on('data', (c: Buffer) => chunks.push(c));
          socket.on('close', () => {
            clearTimeout(timer);
            const res = parseResponse(Buffer.concat(chunks));
            resolve({ status: res.status, sha: sha256(res.body), length: res.body.length });
          });
          socket.end('GET /files/four.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        });
      }),
    );
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.length).toBe(file4m.length);
      expect(r.sha).toBe(want);
    }
  }, 45_000);

  it('parallel Range requests on the 1 GiB file stream only what was asked', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        rawGet(server.name, '/files/huge.bin', { Range: `bytes=${i * 10 * MiB}-${i * 10 * MiB + 65535}` }),
      ),
    );
    for (const r of results) {
      expect(r.status).toBe(206);
      expect(r.body.length).toBe(65536);
      expect(r.body.every((b) => b === 0)).toBe(true);
    }
  }, 20_000);
});
