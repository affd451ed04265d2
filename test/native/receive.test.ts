/**
 * The zero-copy receive path (routes/receive.ts over native/receive.cc) behind the real gateway
 * on an abstract socket: byte-exact bodies, pipelined requests after an upload on one kept-alive
 * connection, clients that stop mid-body or go quiet, a full disk, digests hashed on the native
 * thread, and the binding contract. Each upload case runs through splice, through the
 * read/write fallback, and through JS (NULLGATE_ZERO_COPY_UPLOADS=0) where the comparison says
 * something. No timed assertions: bounds only catch hangs.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { type AddressInfo, connect, createServer, Socket as NetSocket, type Socket } from 'node:net';
import { constants, tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/gateway.js';
import { native } from '../../native/binding.js';
import { socketFd } from '../../native/node-internals.js';
import { parseAddress } from '../../core/address.js';
import { connectFd } from '../../native/socket.js';
import { settlesWithin } from '../helpers/bounds.js';
import { tree } from '../helpers/files.js';
import { itNeeds } from '../helpers/requirements.js';
import { connectSocket, openFdCount, parseResponse, rawGet, uniqueName } from '../helpers/sockets.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function taskCount(): number {
  return readdirSync('/proc/self/task').length;
}

/** Polls `probe` until it returns true (a bounded wait, not a timing assertion). */
async function eventually(probe: () => boolean, what: string, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > until) throw new Error(`not reached within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `count` bytes that differ per 64 KiB block (a block out of place or lost changes the hash). */
function pattern(count: number, seed = 1): Buffer {
  const block = randomBytes(64 * KiB);
  const out = Buffer.allocUnsafe(count);
  for (let at = 0, i = 0; at < count; at += block.length, i++) {
    block.writeUInt32BE(i ^ seed, 0);
    block.copy(out, at, 0, Math.min(block.length, count - at));
  }
  return out;
}

function putHead(name: string, length: number, extra = ''): string {
  return `PUT /files/${name} HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\n${extra}\r\n`;
}

/**
 * A kept-alive connection that reads responses one at a time (Content-Length bodies only).
 */
class Conn {
  readonly socket: Socket;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  constructor(address: string) {
    this.socket = connectSocket(address);
    this.socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      for (const w of this.waiters.splice(0)) w();
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => this.socket.write(data, () => resolve()));
  }
  /** The next whole response, or undefined when the connection closed first. */
  async next(): Promise<ReturnType<typeof parseResponse> | undefined> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end !== -1) {
        const head = parseResponse(this.buf.subarray(0, end + 4));
        const length = Number(head.headers['content-length'] ?? 0);
        if (this.buf.length >= end + 4 + length) {
          const whole = parseResponse(this.buf.subarray(0, end + 4 + length));
          this.buf = this.buf.subarray(end + 4 + length);
          if (whole.status >= 200) return whole;
          continue;
        }
      }
      if (this.closed) return undefined;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  close(): void {
    this.socket.destroy();
  }
}

describe('zero-copy uploads', () => {
  let root: string;
  let gateway: Gateway;
  let address: string;
  const started = vi.spyOn(native, 'receiveStart');

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'ng-receive-'));
    address = uniqueName('receive');
    gateway = createGateway({
      socket: address,
      root,
      writable: true,
      logLevel: false,
      maxUpload: 2 * 1024 * MiB,
    });
    await gateway.listen();
  });
  afterAll(async () => {
    await gateway.close();
    rmSync(root, { recursive: true, force: true });
    delete process.env.NULLGATE_ZERO_COPY_UPLOADS;
    started.mockRestore();
  });
  afterEach(() => {
    delete process.env.NULLGATE_ZERO_COPY_UPLOADS;
  });

  const sizes = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, MiB, 100 * MiB];

  for (const [label, mode] of [
    ['splice', 'always'],
    ['JS', '0'],
  ] as const) {
    it(`bodies of ${sizes.join(', ')} bytes arrive byte-exact (${label}), one kept-alive connection`, async () => {
      process.env.NULLGATE_ZERO_COPY_UPLOADS = mode;
      const conn = new Conn(address);
      try {
        for (const size of sizes) {
          const body = pattern(size, size);
          const before = started.mock.calls.length;
          // Headers and body in separate writes, so the parser has read part of it or none.
          await conn.write(putHead(`${label}-${size}.bin`, size));
          await conn.write(body);
          const res = await conn.next();
          expect(res?.status, `${size} B`).toBe(201);
          const file = readFileSync(path.join(root, `${label}-${size}.bin`));
          expect(file.length).toBe(size);
          expect(sha(file), `${size} B`).toBe(sha(body));
          expect(started.mock.calls.length - before).toBe(mode === 'always' ? 1 : 0);
        }
      } finally {
        conn.close();
      }
    }, 120_000);
  }

  it('a body sent with its headers in one write (the parser has read it all) arrives byte-exact', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const conn = new Conn(address);
    try {
      for (const size of [1, 1000, 30 * KiB]) {
        const body = pattern(size, 7);
        await conn.write(Buffer.concat([Buffer.from(putHead(`one-${size}.bin`, size)), body]));
        expect((await conn.next())?.status).toBe(201);
        expect(sha(readFileSync(path.join(root, `one-${size}.bin`)))).toBe(sha(body));
      }
    } finally {
      conn.close();
    }
  });

  it('pipelined requests after an upload reach the parser, in order, on the same connection', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const a = pattern(3 * MiB + 5, 11);
    const b = pattern(100 * KiB + 3, 12);
    const known = pattern(10 * KiB, 13);
    writeFileSync(path.join(root, 'pipe-known.bin'), known);
    const conn = new Conn(address);
    const before = started.mock.calls.length;
    try {
      // Everything in one stream: the bytes after each body are the next request. (Pipelined
      // requests run side by side, so the GETs ask for what exists before the uploads end.)
      await conn.write(
        Buffer.concat([
          Buffer.from(putHead('pipe-a.bin', a.length)),
          a,
          Buffer.from('GET /files/pipe-known.bin HTTP/1.1\r\nHost: x\r\n\r\n'),
          Buffer.from(putHead('pipe-b.bin', b.length)),
          b,
          Buffer.from('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'),
        ]),
      );
      expect((await conn.next())?.status).toBe(201);
      const got = await conn.next();
      expect(got?.status).toBe(200);
      expect(sha(got!.body)).toBe(sha(known));
      expect((await conn.next())?.status).toBe(201);
      expect(JSON.parse((await conn.next())!.body.toString())).toEqual({ status: 'ok' });
      expect(conn.closed).toBe(false);
      expect(sha(readFileSync(path.join(root, 'pipe-a.bin')))).toBe(sha(a));
      expect(sha(readFileSync(path.join(root, 'pipe-b.bin')))).toBe(sha(b));
      // Both bodies went through the native path: the bytes after them reached the parser.
      expect(started.mock.calls.length - before).toBe(2);
    } finally {
      conn.close();
    }
  });

  it('resumable uploads: the creation and the PATCH append are received natively, byte-exact', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const first = pattern(2 * MiB + 3, 21);
    const rest = pattern(3 * MiB + 1, 22);
    const conn = new Conn(address);
    const before = started.mock.calls.length;
    try {
      await conn.write(putHead('resumed.bin', first.length, 'Upload-Complete: ?0\r\n'));
      await conn.write(first);
      const created = await conn.next();
      expect(created?.status).toBe(201);
      const where = created!.headers.location!;
      expect(existsSync(path.join(root, 'resumed.bin'))).toBe(false);
      await conn.write(
        `PATCH ${where} HTTP/1.1\r\nHost: x\r\nContent-Type: application/partial-upload\r\n` +
          `Upload-Offset: ${first.length}\r\nUpload-Complete: ?1\r\nContent-Length: ${rest.length}\r\n\r\n`,
      );
      await conn.write(rest);
      expect((await conn.next())?.status).toBe(201);
      expect(started.mock.calls.length - before).toBe(2);
      expect(sha(readFileSync(path.join(root, 'resumed.bin')))).toBe(sha(Buffer.concat([first, rest])));
    } finally {
      conn.close();
    }
  });

  it('the read/write fallback (where splice is EINVAL) writes the same bytes', async () => {
    const filePath = path.join(root, 'fallback.bin');
    const body = pattern(5 * MiB + 77, 3);
    const out = openSync(filePath, 'w');
    const p = await pair();
    try {
      const done = new Promise<[number, number]>((resolve) => {
        const rc = native.receiveStart(
          p.fd,
          out,
          Buffer.from('prefix'),
          body.length,
          [],
          (err, written) => resolve([err, written]),
          0,
          true,
        );
        expect(rc).toBeGreaterThan(0);
      });
      p.client.write(body);
      expect(await done).toEqual([0, body.length + 6]);
      expect(sha(readFileSync(filePath))).toBe(sha(Buffer.concat([Buffer.from('prefix'), body])));
    } finally {
      closeSync(out);
      await p.close();
    }
  });

  it('digests asked for are hashed on the native thread; a mismatch writes nothing', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const body = pattern(2 * MiB + 1, 5);
    const good = `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
    const good512 = `sha-512=:${createHash('sha512').update(body).digest('base64')}:`;
    const conn = new Conn(address);
    try {
      await conn.write(putHead('digest-ok.bin', body.length, `Content-Digest: ${good}, ${good512}\r\n`));
      await conn.write(body);
      expect((await conn.next())?.status).toBe(201);
      expect(sha(readFileSync(path.join(root, 'digest-ok.bin')))).toBe(sha(body));
      const calls = started.mock.calls;
      expect(calls[calls.length - 1]![4]).toEqual(['sha256', 'sha512']);

      const wrong = `sha-256=:${createHash('sha256').update('other').digest('base64')}:`;
      await conn.write(putHead('digest-bad.bin', body.length, `Repr-Digest: ${wrong}\r\n`));
      await conn.write(body);
      const res = await conn.next();
      expect(res?.status).toBe(400);
      expect(JSON.parse(res!.body.toString()).code).toBe('NG_ERR_DIGEST_MISMATCH');
      expect(existsSync(path.join(root, 'digest-bad.bin'))).toBe(false);
      // The body was read whole: the connection goes on.
      expect((await conn.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'), await conn.next())?.status).toBe(
        200,
      );
    } finally {
      conn.close();
    }
  });

  it('a Content-Length over --max-upload is 413 before any of the body is read', async () => {
    const small = uniqueName('receive-413');
    const gw = createGateway({ socket: small, root, writable: true, logLevel: false, maxUpload: MiB });
    await gw.listen();
    try {
      process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
      const conn = new Conn(small);
      const before = started.mock.calls.length;
      await conn.write(putHead('too-big.bin', MiB + 1, 'Expect: 100-continue\r\n'));
      const res = await conn.next();
      expect(res?.status).toBe(413);
      expect(started.mock.calls.length).toBe(before);
      conn.close();
      expect(existsSync(path.join(root, 'too-big.bin'))).toBe(false);
    } finally {
      await gw.close();
    }
  });

  it('clients that stop mid-body leave no fd, thread or temporary behind', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    // Warm up: the libuv pool threads exist from the first fs call on.
    expect((await rawGet(address, '/health')).status).toBe(200);
    const fds = openFdCount();
    const tasks = taskCount();
    const before = started.mock.calls.length;
    const half = pattern(3 * MiB, 9);
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const conn = new Conn(address);
        await conn.write(putHead(`gone-${i}.bin`, 8 * MiB));
        await conn.write(half);
        // Half-close on some (EOF before the end), reset on the others.
        if (i % 2 === 0) conn.socket.end();
        else conn.close();
        await eventually(() => conn.closed, 'the server to close the connection');
        conn.close();
      }),
    );
    await eventually(() => started.mock.calls.length - before === 10, 'ten native receives started');
    await eventually(() => openFdCount() <= fds, `fds back to ${fds} (now ${openFdCount()})`);
    await eventually(() => taskCount() <= tasks, `threads back to ${tasks} (now ${taskCount()})`);
    // (The resumable test's upload records live in their own directory.)
    const left = tree(root).filter((n) => !n.startsWith('.nullgate-tmp-uploads'));
    expect(left.filter((n) => n.startsWith('gone-') || n.includes('nullgate-tmp'))).toEqual([]);
    expect((await rawGet(address, '/health')).status).toBe(200);
  });

  it('a sender that goes quiet mid-body is cut after the idle timeout, leaving nothing', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const quiet = uniqueName('receive-idle');
    const dir = mkdtempSync(path.join(tmpdir(), 'ng-receive-idle-'));
    const gw = createGateway({
      socket: quiet,
      root: dir,
      writable: true,
      logLevel: false,
      limits: { idleTimeoutMs: 300 },
    });
    await gw.listen();
    try {
      const tasks = taskCount();
      const conn = new Conn(quiet);
      await conn.write(putHead('quiet.bin', 4 * MiB));
      await conn.write(pattern(MiB));
      // Nothing more is sent: only the idle timeout ends this.
      await eventually(() => conn.closed, 'the server to cut the quiet sender');
      conn.close();
      await eventually(() => taskCount() <= tasks, 'the receive thread to end');
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('closing the server cancels a receive in flight: no thread or temporary left', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const closing = uniqueName('receive-close');
    const dir = mkdtempSync(path.join(tmpdir(), 'ng-receive-close-'));
    const gw = createGateway({ socket: closing, root: dir, writable: true, logLevel: false, graceMs: 200 });
    await gw.listen();
    const tasks = taskCount();
    const before = started.mock.calls.length;
    const conn = new Conn(closing);
    try {
      await conn.write(putHead('stalled.bin', 8 * MiB));
      await conn.write(pattern(MiB));
      await eventually(() => started.mock.calls.length - before === 1, 'the native receive to start');
      // The sender stalls; only the close can end the receive (after its grace period).
      await gw.close();
      await eventually(() => conn.closed, 'the connection to be closed');
      await eventually(() => taskCount() <= tasks, 'the receive thread to end');
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      conn.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a sender under the minimum body rate is cut with a 408 by the native thread, leaving nothing', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const slow = uniqueName('receive-rate');
    const dir = mkdtempSync(path.join(tmpdir(), 'ng-receive-rate-'));
    const gw = createGateway({
      socket: slow,
      root: dir,
      writable: true,
      logLevel: false,
      limits: { bodyMinRate: 1000, bodyRateWindowMs: 500 },
    });
    await gw.listen();
    const conn = new Conn(slow);
    const before = started.mock.calls.length;
    // A byte every 100 ms, until the server answers: 10 bytes/s, under the 1000 asked. Written
    // with write(2) on the fd, a failure ignored: a Socket destroys itself on the EPIPE of a write
    // after the server closed, dropping the answer it had not read yet (as in slow-body.test.ts).
    const fd = socketFd(conn.socket);
    const trickle = setInterval(() => {
      if (conn.closed) return;
      try {
        writeSync(fd, 'x');
      } catch {
        // EPIPE or EAGAIN: the server stopped reading; its answer is read by the Conn.
      }
    }, 100);
    try {
      await conn.write(putHead('slow.bin', MiB));
      await conn.write(pattern(64 * KiB));
      const res = await conn.next();
      expect(res?.status).toBe(408);
      const body = JSON.parse(res!.body.toString());
      expect(body.code).toBe('NG_ERR_TIMEOUT');
      // Worded as on the JS path (gateway/body-rate.ts): the bytes the window brought, its wait.
      expect(body.message).toMatch(/^request body too slow: \d+ bytes in \d+ s, under 1000 bytes\/s$/);
      expect(started.mock.calls.length - before).toBe(1);
      await eventually(() => conn.closed, 'the server to close the connection');
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      clearInterval(trickle);
      conn.close();
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a body cut for its total time while the native thread finds it too slow is refused (and logged) once', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const slow = uniqueName('receive-once');
    const dir = mkdtempSync(path.join(tmpdir(), 'ng-receive-once-'));
    const lines: { status?: number; suppressed?: number; msg: string }[] = [];
    const gw = createGateway({
      socket: slow,
      root: dir,
      writable: true,
      logLevel: 'warn',
      logStream: new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
          done();
        },
      }),
      limits: { bodyMinRate: 1000, bodyRateWindowMs: 500, bodyTimeoutMs: 300 },
    });
    await gw.listen();
    // The test plays the thread: it receives nothing, and its verdict (too slow, -ETIME) crosses
    // the cancel that the total time's cut sends it, as a thread's can.
    const FAKE_ID = 1_000_001;
    let verdict:
      ((err: number, written: number, digests: Buffer[], bytes: number, ms: number) => void) | undefined;
    started.mockImplementationOnce((...args) => {
      verdict = args[5];
      return FAKE_ID;
    });
    const cancel = vi.spyOn(native, 'receiveCancel').mockImplementation((id) => {
      if (id !== FAKE_ID) return false;
      verdict?.(-constants.errno.ETIME, 0, [], 0, 500);
      return true;
    });
    const conn = new Conn(slow);
    try {
      await conn.write(putHead('once.bin', MiB));
      await conn.write(pattern(64 * KiB));
      const res = await conn.next();
      expect(res?.status).toBe(408);
      expect(JSON.parse(res!.body.toString()).message).toBe('request body not whole within 0.3 s');
      await eventually(() => conn.closed, 'the server to close the connection');
      expect(cancel).toHaveBeenCalledWith(FAKE_ID);
    } finally {
      cancel.mockRestore();
      conn.close();
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
    }
    // One refusal: the thread's verdict on a connection already cut says nothing more (no second
    // line, and no "1 more like the last one" when the log's window is flushed at close).
    const refusals = lines.filter((l) => l.status === 408);
    expect(refusals.map((l) => [l.msg, l.suppressed])).toEqual([
      ['request refused: request body not whole within 0.3 s', 0],
    ]);
  });

  itNeeds(['root', 'mount'], 'a full disk (1 MiB tmpfs) is 507 and leaves no file', async () => {
    process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
    const mnt = mkdtempSync(path.join(tmpdir(), 'ng-receive-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'ng-test-receive', mnt]);
    const full = uniqueName('receive-full');
    const gw = createGateway({ socket: full, root: mnt, writable: true, logLevel: false });
    try {
      await gw.listen();
      const freeBefore = statfsSync(mnt).bfree;
      const before = started.mock.calls.length;
      const conn = new Conn(full);
      await conn.write(putHead('big.bin', 4 * MiB));
      conn.socket.write(pattern(4 * MiB));
      const res = await conn.next();
      expect(res?.status).toBe(507);
      expect(JSON.parse(res!.body.toString()).code).toBe('NG_ERR_INSUFFICIENT_STORAGE');
      expect(started.mock.calls.length - before).toBe(1);
      conn.close();
      expect(readdirSync(mnt)).toEqual([]);
      await eventually(() => statfsSync(mnt).bfree === freeBefore, 'the space to be freed');
    } finally {
      await gw.close();
      execFileSync('umount', [mnt]);
      rmdirSync(mnt);
    }
  });

  itNeeds(
    ['root', 'mount'],
    'a full disk mid-body: a client that never stops sending reads the whole 507, and is closed (the lingering close, not the body time)',
    async () => {
      process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
      const mnt = mkdtempSync(path.join(tmpdir(), 'ng-receive-full-drain-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'ng-test-receive-drain', mnt]);
      const full = uniqueName('receive-full-drain');
      // The body's own bounds far away: only the close after the answer can end the connection.
      const gw = createGateway({
        socket: full,
        root: mnt,
        writable: true,
        logLevel: false,
        limits: { bodyTimeoutMs: 3_600_000, bodyMinRate: 1, bodyRateWindowMs: 3_600_000 },
      });
      try {
        await gw.listen();
        const before = started.mock.calls.length;
        // Sends a 64 MiB body 64 KiB every 10 ms through write(2) on the fd (a Socket would
        // destroy itself on the EPIPE and drop the answer it had not read), until a write fails.
        const fd = connectFd(parseAddress(full));
        const client = new NetSocket({ fd, readable: true, writable: true, allowHalfOpen: true });
        const chunks: Buffer[] = [];
        client.on('data', (c: Buffer) => chunks.push(c));
        client.on('error', () => undefined);
        writeSync(fd, putHead('drain.bin', 64 * MiB));
        const block = Buffer.alloc(64 * KiB, 0x61);
        const failure = await settlesWithin(
          new Promise<string>((resolve) => {
            const timer = setInterval(() => {
              try {
                writeSync(fd, block);
              } catch (err) {
                const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
                if (code === 'EAGAIN') return;
                clearInterval(timer);
                resolve(code);
              }
            }, 10);
          }),
          20_000,
          'the server to close the connection',
        );
        expect(failure).toMatch(/^(EPIPE|ECONNRESET)$/);
        await new Promise((r) => setImmediate(r));
        const res = parseResponse(Buffer.concat(chunks));
        expect(res.status).toBe(507);
        expect(JSON.parse(res.body.toString()).code).toBe('NG_ERR_INSUFFICIENT_STORAGE');
        expect(started.mock.calls.length - before).toBe(1);
        client.destroy();
        expect(readdirSync(mnt)).toEqual([]);
      } finally {
        await gw.close();
        execFileSync('umount', [mnt]);
        rmdirSync(mnt);
      }
    },
  );

  itNeeds(
    ['curl'],
    'a 1 GiB body (curl -T of a sparse file) arrives byte-exact',
    async () => {
      process.env.NULLGATE_ZERO_COPY_UPLOADS = 'always';
      const src = mkdtempSync(path.join(tmpdir(), 'ng-receive-src-'));
      const file = path.join(src, 'sparse.bin');
      try {
        // 1 GiB with data at the start, the middle and the end, holes between: fast to read.
        const fd = openSync(file, 'w');
        for (const at of [0, 512 * MiB - 3, 1024 * MiB - 4096]) writeSync(fd, randomBytes(4096), 0, 4096, at);
        closeSync(fd);
        const before = started.mock.calls.length;
        const status = await new Promise<string>((resolve, reject) => {
          const curl = spawn('curl', [
            '-sS',
            '--abstract-unix-socket',
            address.slice(1),
            '-T',
            file,
            '-o',
            '/dev/null',
            '-w',
            '%{http_code}',
            'http://localhost/files/big-1g.bin',
          ]);
          let out = '';
          curl.stdout.on('data', (c: Buffer) => (out += c.toString()));
          curl.on('error', reject);
          curl.on('close', () => resolve(out));
        });
        expect(status).toBe('201');
        expect(started.mock.calls.length - before).toBe(1);
        // cmp exits 0 only for identical files (and is faster than hashing 2 GiB).
        execFileSync('cmp', [file, path.join(root, 'big-1g.bin')]);
      } finally {
        rmSync(src, { recursive: true, force: true });
        rmSync(path.join(root, 'big-1g.bin'), { force: true });
      }
    },
    300_000,
  );
});

describe('receiveStart: the binding contract', () => {
  it('checks its arguments (TypeError "Usage: …")', () => {
    const cb = (): void => undefined;
    expect(() => (native.receiveStart as unknown as () => number)()).toThrow(/^Usage: receiveStart/);
    expect(() => native.receiveStart(0, 0, 'x' as unknown as Buffer, 0, [], cb)).toThrow(TypeError);
    expect(() => native.receiveStart(0, 0, Buffer.alloc(0), -1, [], cb)).toThrow(TypeError);
    expect(() => native.receiveStart(0, 0, Buffer.alloc(0), 0, [1 as unknown as string], cb)).toThrow(
      TypeError,
    );
    // writebackBytes: a byte count (0: never).
    expect(() => native.receiveStart(0, 0, Buffer.alloc(0), 0, [], cb, 0, false, 0, 0, -1)).toThrow(
      TypeError,
    );
    expect(() => native.receiveCancel('x' as unknown as number)).toThrow(/^Usage: receiveCancel/);
  });

  it('-EBADF, -EINVAL (unknown digest) and a cancelled receive leave nothing open', async () => {
    const p = await pair();
    const fds = openFdCount();
    const cb = (): void => undefined;
    expect(native.receiveStart(1_000_000, 1, Buffer.alloc(0), 1, [], cb)).toBe(-9);
    expect(native.receiveStart(p.fd, 1, Buffer.alloc(0), 1, ['md5'], cb)).toBe(-22);
    const out = openSync('/dev/null', 'w');
    const result = new Promise<number>((resolve) => {
      const id = native.receiveStart(p.fd, out, Buffer.alloc(0), 10, [], (err) => resolve(err));
      expect(native.receiveCancel(id)).toBe(true);
    });
    expect(await result).toBe(-125);
    closeSync(out);
    expect(native.receiveCancel(123456789)).toBe(false);
    await eventually(() => openFdCount() <= fds, 'fds back at the baseline');
    await p.close();
  });

  it('a sender that ends early is -ECONNRESET with what was written', async () => {
    const p = await pair();
    const out = openSync('/dev/null', 'w');
    const result = new Promise<[number, number]>((resolve) => {
      native.receiveStart(p.fd, out, Buffer.from('ab'), 100, [], (err, written) => resolve([err, written]));
    });
    p.client.end(Buffer.alloc(10));
    expect(await result).toEqual([-104, 12]);
    closeSync(out);
    await p.close();
  });
});

/**
 * A connected TCP pair whose server side nobody reads (pauseOnConnect): its fd is the receive's
 * source, the client a net.Socket that writes, ends or resets.
 */
async function pair(): Promise<{ fd: number; client: Socket; close: () => Promise<void> }> {
  const server = createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  const serverSide = await accepted;
  return {
    fd: socketFd(serverSide),
    client,
    close: async () => {
      client.destroy();
      serverSide.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
