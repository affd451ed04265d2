/**
 * Request bodies are bounded by default (issue 16 item E): a client that trickles its body under
 * the idle timeout no longer holds an upload slot for ever. Short limits through buildApp's
 * options, a real listener on an abstract socket, and trickle clients that stop on their own;
 * the only times asserted are generous bounds that catch a hang.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../gateway/app.js';
import { listenAbstract } from '../../gateway/listen.js';
import { parseAddress } from '../../core/address.js';
import type { Limits } from '../../core/limits.js';
import { connectFd } from '../../native/socket.js';
import { DEFAULT_LIMITS, resolveLimits } from '../../core/limits.js';
import { connectSocket, parseResponse, rawRequest, uniqueName } from '../helpers/sockets.js';

/**
 * Sends `head`, then one byte of body every `everyMs` until the server closes (or `maxBytes`).
 * The bytes are written with write(2) on the fd, not through the Socket: the server answers and
 * closes while the client is still sending, and a Socket destroys itself on the EPIPE of its
 * next write, dropping the answer it had not read yet (seen under Node 22 and 24). Here a
 * failed write is ignored and the answer is read to the end.
 */
function trickle(
  address: string,
  head: string,
  everyMs: number,
  maxBytes: number,
): Promise<{ answer: Buffer; sent: number }> {
  return new Promise((resolve, reject) => {
    const fd = connectFd(parseAddress(address));
    const socket = new Socket({ fd, readable: true, writable: true });
    const chunks: Buffer[] = [];
    let sent = 0;
    const send = (data: string): boolean => {
      if (socket.destroyed) return false; // its fd is closed, and its number may be reused
      try {
        writeSync(fd, data);
        return true;
      } catch {
        return false; // EPIPE or EAGAIN: the server stopped reading; its answer is read below
      }
    };
    socket.on('error', () => undefined);
    socket.on('data', (c: Buffer) => chunks.push(c));
    const timer = setInterval(() => {
      if (sent >= maxBytes) return;
      if (send('x')) sent++;
    }, everyMs);
    // A bound that only catches a hang: the limits below cut the body within a few seconds.
    const hang = setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error(`not cut within 20 s (${sent} bytes sent)`));
    }, 20_000);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(hang);
      resolve({ answer: Buffer.concat(chunks), sent });
    });
    send(head);
  });
}

describe('a request body too slow, or not whole in time, is 408 and frees its upload slot', () => {
  let dir: string;
  let app: FastifyInstance;
  let address: string;
  const start = async (limits: Partial<Limits>): Promise<void> => {
    app = buildApp({ root: dir, writable: true, logLevel: false, limits: { maxUploads: 1, ...limits } });
    await app.ready();
    address = uniqueName('slow-body');
    await listenAbstract(app.server, address);
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ng-slow-body-'));
  });
  afterEach(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const expect408 = (answer: Buffer, reason: RegExp): void => {
    const res = parseResponse(answer);
    expect(res.status).toBe(408);
    const body = JSON.parse(res.body.toString()) as { code: string; message: string };
    expect(body.code).toBe('NG_ERR_TIMEOUT');
    expect(body.message).toMatch(reason);
  };

  /**
   * The one upload slot is free again, and the server writes files: a whole PUT is 201. The slot
   * is released when the cut upload has cleaned up, just after the client sees the close: 429
   * until then, for a bounded time.
   */
  const expectSlotFree = async (): Promise<void> => {
    let status = 0;
    for (let i = 0; i < 100; i++) {
      const res = await rawRequest(
        address,
        'PUT /files/after.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok',
      );
      status = res.status;
      if (status !== 429) break;
      await sleep(50);
    }
    expect(status).toBe(201);
  };

  it('a byte every 100 ms under a minimum of 1000 bytes/s over 0.5 s is cut, and nothing is kept', async () => {
    await start({ bodyMinRate: 1000, bodyRateWindowMs: 500, bodyTimeoutMs: 0 });
    const { answer } = await trickle(
      address,
      'PUT /files/slow.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n',
      100,
      100_000,
    );
    expect408(answer, /too slow/);
    expect(existsSync(join(dir, 'slow.txt'))).toBe(false);
    await expectSlotFree();
    expect(readdirSync(dir).sort()).toEqual(['after.txt']);
  });

  it('PUT /archive the same, with Expect: 100-continue (curl -T)', async () => {
    await start({ bodyMinRate: 1000, bodyRateWindowMs: 500, bodyTimeoutMs: 0 });
    // The client waits for 100 Continue before its first byte: that wait is not counted.
    const { answer } = await trickle(
      address,
      'PUT /archive/tree HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n',
      100,
      100_000,
    );
    expect(answer.toString('latin1')).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
    expect408(answer.subarray(answer.indexOf('\r\n\r\n') + 4), /too slow/);
    await expectSlotFree();
    expect(readdirSync(dir).sort()).toEqual(['after.txt']);
  });

  it('a body fast enough but not whole within bodyTimeoutMs is cut', async () => {
    await start({ bodyMinRate: 0, bodyTimeoutMs: 1500 });
    const { answer, sent } = await trickle(
      address,
      'PUT /files/long.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n',
      10,
      100_000,
    );
    expect(sent).toBeGreaterThan(0);
    expect408(answer, /not whole within 1\.5 s/);
    expect(existsSync(join(dir, 'long.txt'))).toBe(false);
    await expectSlotFree();
  });

  it('a large body sent at full speed is not cut, whatever the window', async () => {
    await start({ bodyMinRate: 1000, bodyRateWindowMs: 200 });
    const size = 32 * 1024 * 1024;
    const socket = connectSocket(address);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.write(
      `PUT /files/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`,
    );
    const block = Buffer.alloc(1024 * 1024, 0x61);
    for (let i = 0; i < 32; i++) {
      if (!socket.write(block)) await new Promise((resolve) => socket.once('drain', resolve));
    }
    await closed;
    expect(parseResponse(Buffer.concat(chunks)).status).toBe(201);
  });
});

describe('body limits: defaults and checks', () => {
  it('every body limit has a bounded default', () => {
    expect(DEFAULT_LIMITS.bodyMinRate).toBeGreaterThan(0);
    expect(DEFAULT_LIMITS.bodyRateWindowMs).toBeGreaterThan(0);
    expect(DEFAULT_LIMITS.bodyTimeoutMs).toBeGreaterThan(0);
  });

  it('a minimum rate needs a window', () => {
    expect(() => resolveLimits({ bodyRateWindowMs: 0 })).toThrow(/bodyRateWindowMs/);
    expect(resolveLimits({ bodyMinRate: 0, bodyRateWindowMs: 0 }).bodyMinRate).toBe(0);
  });
});
