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
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../gateway/app.js';
import { listenAbstract } from '../../gateway/listen.js';
import { parseAddress } from '../../core/address.js';
import type { Limits } from '../../core/limits.js';
import { native } from '../../native/binding.js';
import { connectFd } from '../../native/socket.js';
import { DEFAULT_LIMITS, resolveLimits } from '../../core/limits.js';
import { settlesWithin } from '../helpers/bounds.js';
import { connectSocket, openFdCount, parseResponse, rawRequest, uniqueName } from '../helpers/sockets.js';

/** Resolves true once this process holds no more fds than `count` (polled every 50 ms). */
async function waitForFds(count: number): Promise<boolean> {
  while (openFdCount() > count) await sleep(50);
  return true;
}

/** Resolves true once this process runs no more threads than `count` (polled every 50 ms). */
async function waitForThreads(count: number): Promise<boolean> {
  while (readdirSync('/proc/self/task').length > count) await sleep(50);
  return true;
}

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

interface SendOutcome {
  readonly answer: Buffer;
  /** Errors of the client's writes and reads, by code, before it stopped sending on its own. */
  readonly errors: readonly string[];
  /** Whether a write failed because the server had closed the connection (EPIPE). */
  readonly cutOff: boolean;
}

/**
 * Sends `head`, then 16 KiB of body every 5 ms, with write(2) on the fd as `trickle` does. With
 * `stopOnAnswer`, it behaves as curl does on an early answer: once the whole answer is in, it
 * writes the block it has at hand (64 KiB) and stops sending, reading on until the server
 * closes. Without, it sends on for ever (only the server's close stops it) and ignores its EOF.
 */
function sendUntilCut(address: string, head: string, stopOnAnswer: boolean): Promise<SendOutcome> {
  return new Promise((resolve, reject) => {
    const fd = connectFd(parseAddress(address));
    // allowHalfOpen: the client's own FIN is never what stops it; the server's close is.
    const socket = new Socket({ fd, readable: true, writable: true, allowHalfOpen: !stopOnAnswer });
    const chunks: Buffer[] = [];
    const errors: string[] = [];
    let cutOff = false;
    let sending = true;
    const block = Buffer.alloc(16 * 1024, 0x61);
    const send = (data: string | Buffer): void => {
      if (socket.destroyed) return; // its fd is closed, and its number may be reused
      try {
        if (typeof data === 'string') writeSync(fd, data);
        else writeSync(fd, data);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
        if (code === 'EAGAIN') return; // the server reads slower than this: not an error
        if (code === 'EPIPE') cutOff = true;
        if (sending || stopOnAnswer) errors.push(code);
        sending = false;
        // The endless sender has nothing else that would close its half-open socket.
        if (!stopOnAnswer) socket.destroy();
      }
    };
    const answered = (): boolean => {
      const all = Buffer.concat(chunks);
      const res = parseResponse(all);
      const length = Number(res.headers['content-length'] ?? NaN);
      return res.status >= 200 && res.body.length === length;
    };
    socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? 'unknown'));
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (stopOnAnswer && sending && answered()) {
        send(Buffer.alloc(64 * 1024, 0x62));
        sending = false;
      }
    });
    const timer = setInterval(() => {
      if (sending) send(block);
    }, 5);
    const hang = setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error('the connection was not closed within 20 s'));
    }, 20_000);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(hang);
      resolve({ answer: Buffer.concat(chunks), errors, cutOff });
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

  // The same total time on both paths, from the first read of the body: a native receive's bytes
  // bypass Node, yet the watch's timer cuts it (its close cancels the thread).
  it.each([
    ['through Node', '0'],
    ['received natively', 'always'],
  ])(
    'a body sent steadily (%s) but not whole within bodyTimeoutMs is 408, leaving no file, fd or thread',
    async (_how, mode) => {
      const before = process.env.NULLGATE_ZERO_COPY_UPLOADS;
      process.env.NULLGATE_ZERO_COPY_UPLOADS = mode;
      const receives = vi.spyOn(native, 'receiveStart');
      try {
        await start({ bodyMinRate: 0, bodyTimeoutMs: 1000 });
        const fds = openFdCount();
        const threads = readdirSync('/proc/self/task').length;
        // 16 KiB every 5 ms (about 3 MB/s) of a 1 GiB body, until the server answers.
        const { answer, errors } = await sendUntilCut(
          address,
          `PUT /files/steady.bin HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 ** 30}\r\n\r\n`,
          true,
        );
        expect408(answer, /^request body not whole within 1 s$/);
        expect(errors).toEqual([]);
        expect(receives).toHaveBeenCalledTimes(mode === 'always' ? 1 : 0);
        expect(existsSync(join(dir, 'steady.bin'))).toBe(false);
        await expectSlotFree();
        expect(readdirSync(dir).sort()).toEqual(['after.txt']);
        expect(await settlesWithin(waitForFds(fds), 10_000, 'the fds of the cut connection closed')).toBe(
          true,
        );
        expect(await settlesWithin(waitForThreads(threads), 10_000, 'the receive thread ended')).toBe(true);
      } finally {
        receives.mockRestore();
        if (before === undefined) delete process.env.NULLGATE_ZERO_COPY_UPLOADS;
        else process.env.NULLGATE_ZERO_COPY_UPLOADS = before;
      }
    },
  );

  it('a resumable PATCH append received natively is held to bodyTimeoutMs too', async () => {
    const before = process.env.NULLGATE_ZERO_COPY_UPLOADS;
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const receives = vi.spyOn(native, 'receiveStart');
    try {
      await start({ bodyMinRate: 0, bodyTimeoutMs: 1000 });
      const interim = await rawRequest(
        address,
        'PUT /files/resumed.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nUpload-Complete: ?0\r\n' +
          'Connection: close\r\n\r\nok',
      );
      // After the 104 (Upload Resumption Supported) interim response.
      const created = parseResponse(interim.raw.subarray(interim.raw.lastIndexOf('HTTP/1.1 ')));
      expect(created.status).toBe(201);
      const where = created.headers.location!;
      const calls = receives.mock.calls.length;
      const { answer, errors } = await sendUntilCut(
        address,
        `PATCH ${where} HTTP/1.1\r\nHost: x\r\nContent-Type: application/partial-upload\r\n` +
          `Upload-Offset: 2\r\nUpload-Complete: ?1\r\nContent-Length: ${2 ** 30}\r\n\r\n`,
        true,
      );
      expect408(answer, /^request body not whole within 1 s$/);
      expect(errors).toEqual([]);
      expect(receives.mock.calls.length - calls).toBe(1);
      expect(existsSync(join(dir, 'resumed.bin'))).toBe(false);
      await expectSlotFree();
    } finally {
      receives.mockRestore();
      if (before === undefined) delete process.env.NULLGATE_ZERO_COPY_UPLOADS;
      else process.env.NULLGATE_ZERO_COPY_UPLOADS = before;
    }
  });

  // A client sending 3.2 MB/s where 100 MiB/s are asked: cut at the first window, on the JS path
  // (the parser reads the body) and on the native one (a thread splices it; the cut cancels it).
  const tooSlowForIt = { bodyMinRate: 100 * 2 ** 20, bodyRateWindowMs: 500, bodyTimeoutMs: 0 };

  it.each([
    ['through Node', '0'],
    ['received natively', 'always'],
  ])(
    'a client still sending when cut (%s) reads the whole 408, not a reset (lingering close)',
    async (_how, mode) => {
      const before = process.env.NULLGATE_ZERO_COPY_UPLOADS;
      process.env.NULLGATE_ZERO_COPY_UPLOADS = mode;
      try {
        await start(tooSlowForIt);
        const fds = openFdCount();
        const { answer, errors } = await sendUntilCut(
          address,
          `PUT /files/cut.bin HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 ** 40}\r\n\r\n`,
          true,
        );
        expect408(answer, /too slow/);
        // Neither a write refused (EPIPE) nor the answer followed by ECONNRESET.
        expect(errors).toEqual([]);
        expect(existsSync(join(dir, 'cut.bin'))).toBe(false);
        await expectSlotFree();
        expect(await settlesWithin(waitForFds(fds), 10_000, 'the fds of the cut connection closed')).toBe(
          true,
        );
      } finally {
        if (before === undefined) delete process.env.NULLGATE_ZERO_COPY_UPLOADS;
        else process.env.NULLGATE_ZERO_COPY_UPLOADS = before;
      }
    },
  );

  it('a client that never stops sending after the 408 is closed all the same (the linger is bounded)', async () => {
    await start(tooSlowForIt);
    const fds = openFdCount();
    // sendUntilCut's own bound (20 s, ten times LINGER_MS) fails the test if the server waits on.
    const { answer, cutOff } = await sendUntilCut(
      address,
      `PUT /files/endless.bin HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 ** 40}\r\n\r\n`,
      false,
    );
    expect408(answer, /too slow/);
    expect(cutOff).toBe(true);
    expect(existsSync(join(dir, 'endless.bin'))).toBe(false);
    expect(await settlesWithin(waitForFds(fds), 10_000, 'the fds of the cut connection closed')).toBe(true);
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
