/**
 * Shared set-up for the hostile-client suite: a real `nullgate serve` on a real abstract socket,
 * its fd count and RSS read from /proc, and the check every test ends with (the server still
 * answers /health and holds no more fds than before the test).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { type Served, startServe } from '../helpers/cli.js';
import {
  connectSocket,
  openFdCount,
  parseResponse,
  rawGet,
  type RawResponse,
  uniqueName,
} from '../helpers/sockets.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export interface HostileServer {
  readonly name: string;
  readonly dir: string;
  readonly served: Served;
  readonly pid: number;
  /** fds the server holds when idle (measured after a warm-up request). */
  readonly baselineFds: number;
  /** VmRSS in bytes when idle. */
  readonly baselineRss: number;
  stop(): Promise<void>;
}

/** VmRSS of `pid` in bytes. */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * KiB;
}

/** Polls `probe` every 50 ms until it returns true or `ms` passed; returns the last verdict. */
export async function waitFor(probe: () => boolean, ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    if (probe()) return true;
    await sleep(50);
  }
  return probe();
}

/**
 * Starts `nullgate serve` over a fresh temporary root that `populate` fills, and measures its
 * idle fd count and RSS. `args` are extra serve flags.
 */
export async function startHostile(
  tag: string,
  populate: (dir: string) => void,
  args: string[] = [],
): Promise<HostileServer> {
  const dir = mkdtempSync(join(tmpdir(), `ng-hostile-${tag}-`));
  populate(dir);
  const name = uniqueName(`hostile-${tag}`);
  const served = await startServe(['--socket', name, '--root', dir, ...args]);
  const pid = served.child.pid!;
  // Warm-up: lazily opened fds (the thread pool's eventfds, the root dir) exist from here on.
  expect((await rawGet(name, '/health')).status).toBe(200);
  expect((await rawGet(name, '/files/')).status).toBe(200);
  await sleep(100);
  return {
    name,
    dir,
    served,
    pid,
    baselineFds: openFdCount(pid),
    baselineRss: rssOf(pid),
    async stop() {
      await served.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every test ends here: /health still answers, and the server's fds are back to the baseline. */
export async function expectRecovered(server: HostileServer, ms = 5000): Promise<void> {
  expect(server.served.child.exitCode, `server exited: ${server.served.stderr()}`).toBeNull();
  const health = await rawGet(server.name, '/health');
  expect(health.status).toBe(200);
  expect(JSON.parse(health.body.toString())).toEqual({ status: 'ok' });
  // Closes are asynchronous (the server sees EOF, then frees the fd on a later tick).
  await waitFor(() => openFdCount(server.pid) <= server.baselineFds, ms);
  expect(openFdCount(server.pid)).toBeLessThanOrEqual(server.baselineFds);
}

/** The contract's error shape: `{statusCode, code, error, message}` with a matching status. */
export function expectErrorShape(res: RawResponse, status?: number): void {
  if (status !== undefined) expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = JSON.parse(res.body.toString()) as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  expect(body.statusCode).toBe(res.status);
  expect(body.code).toMatch(/^NG_ERR_[A-Z_]+$/);
}

/**
 * Either the server answered with a 4xx in the contract's shape, or it closed without a word
 * (what it does for bytes that cannot start an HTTP message at all). Never a 5xx, never a hang.
 */
export function expectRefusedOrClosed(res: RawResponse): void {
  if (res.raw.length === 0) return;
  expect(res.raw.subarray(0, 9).toString('latin1')).toBe('HTTP/1.1 ');
  expect(res.status).toBeGreaterThanOrEqual(400);
  expect(res.status).toBeLessThan(500);
  expectErrorShape(res);
}

/**
 * Opens a connection and resolves once it is open; EAGAIN (the listen backlog is full because
 * the server has not accepted yet) is retried a bounded number of times.
 */
export async function openConnection(name: string, tries = 100): Promise<Socket> {
  for (let i = 0; ; i++) {
    try {
      const socket = connectSocket(name);
      // Errors (EPIPE, ECONNRESET) on connections the test drops on purpose are expected.
      socket.on('error', () => undefined);
      return socket;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || i >= tries) throw err;
      await sleep(10);
    }
  }
}

/** Resolves when `socket` is closed by the far end (or rejects after `ms`). */
export function closedWithin(socket: Socket, ms: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection still open after ${ms} ms`));
    }, ms);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.resume();
  });
}

/**
 * Like rawRequest, but a hostile request may be cut off mid-send (the server answers and closes
 * before reading it all: EPIPE/ECONNRESET on our side). What was received by then is the answer.
 */
export function sendHostile(
  name: string,
  request: string | Buffer,
  timeoutMs: number,
): Promise<RawResponse & { error?: string }> {
  return new Promise((resolve, reject) => {
    const socket = connectSocket(name);
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', () => {
      clearTimeout(timer);
      const res = parseResponse(Buffer.concat(chunks));
      resolve(error === undefined ? res : { ...res, error });
    });
    socket.end(request);
  });
}
