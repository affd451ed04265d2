/**
 * The zero-copy body path (routes/zero-copy.ts over native/sendfile.cc) behind a plain
 * http.Server on a real abstract socket: byte-exact bodies, ranges, keep-alive and pipelining
 * after a zero-copy response, aborted and stalled readers. No timed assertions: "promptly" means
 * "while four transfers are stalled for good", which a design holding pool threads never does.
 */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { fstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../native/binding.js';
import { listenAbstract } from '../../gateway/listen.js';
import { sendFileRange, zeroCopyAvailable } from '../../routes/zero-copy.js';
import { itNeeds } from '../helpers/requirements.js';
import { connectSocket, openFdCount, rawGet, uniqueName } from '../helpers/sockets.js';

const MiB = 1024 * 1024;
const SIZES: Record<string, number> = { empty: 0, one: 1, mib: MiB, big: 64 * MiB };

let dir = '';
let address = '';
let server: Server;
const content = new Map<string, Buffer>();
/** What the server saw: transfers finished, how they ended, fds wrongly closed, files still open. */
const stats = { started: 0, ok: 0, failed: [] as string[], fdClosed: 0, active: 0, openFiles: 0 };

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * GET|HEAD /f/<name>[?start=&end=][&idle=ms][&lie=1]: opens the file with fs.promises (the libuv
 * pool, so a design that parks transfers on pool threads would starve it) and sends it through
 * sendFileRange; `lie` promises 1 KiB more than the file has.
 */
async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const name = url.pathname.slice('/f/'.length);
  const fh = await open(path.join(dir, name), 'r');
  stats.openFiles++;
  try {
    const size = (await fh.stat()).size;
    const q = url.searchParams;
    const start = Number(q.get('start') ?? 0);
    let end = Number(q.get('end') ?? size - 1);
    if (q.has('lie')) end += 1024;
    const length = end - start + 1;
    res.writeHead(q.has('start') ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': String(length),
    });
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    if (q.has('idle')) res.socket?.setTimeout(Number(q.get('idle')));
    stats.started++;
    stats.active++;
    try {
      await sendFileRange(res, fh.fd, start, end);
      stats.ok++;
    } catch (err) {
      stats.failed.push((err as NodeJS.ErrnoException).code ?? String(err));
    } finally {
      stats.active--;
    }
    try {
      fstatSync(fh.fd);
    } catch {
      stats.fdClosed++;
    }
  } finally {
    await fh.close();
    stats.openFiles--;
  }
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ng-sendfile-'));
  for (const [name, size] of Object.entries(SIZES)) {
    const data = randomFillSync(Buffer.allocUnsafe(size));
    content.set(name, data);
    writeFileSync(path.join(dir, name), data);
  }
  server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  address = uniqueName('sendfile');
  await listenAbstract(server, address);
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string): Buffer {
  const data = content.get(name);
  if (!data) throw new Error(`no test file ${name}`);
  return data;
}

interface Received {
  status: number;
  headers: Record<string, string>;
  length: number;
  sha: string;
}

/**
 * A keep-alive HTTP/1.1 client over one connection: requests go out as given (so they can be
 * pipelined), responses are parsed in order by Content-Length and hashed as they stream in.
 */
class Connection {
  readonly socket: Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly waiting: { head: boolean; resolve: (r: Received) => void; reject: (e: Error) => void }[] =
    [];
  private current: { received: Received; left: number; hash: ReturnType<typeof createHash> } | undefined;

  constructor() {
    this.socket = connectSocket(address);
    this.socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
      this.parse();
    });
    const fail = (err?: Error): void => {
      for (const w of this.waiting.splice(0)) w.reject(err ?? new Error('connection closed'));
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail());
  }

  request(target: string, method = 'GET'): Promise<Received> {
    const promise = this.expect(method === 'HEAD');
    this.socket.write(`${method} ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    return promise;
  }

  expect(head: boolean): Promise<Received> {
    return new Promise((resolve, reject) => this.waiting.push({ head, resolve, reject }));
  }

  close(): void {
    this.socket.destroy();
  }

  private parse(): void {
    for (;;) {
      if (!this.current) {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const [statusLine = '', ...lines] = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
        this.buffer = this.buffer.subarray(end + 4);
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const i = line.indexOf(':');
          headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
        }
        const head = this.waiting[0]?.head ?? false;
        const length = head ? 0 : Number(headers['content-length'] ?? 0);
        this.current = {
          received: { status: Number(statusLine.split(' ')[1]), headers, length, sha: '' },
          left: length,
          hash: createHash('sha256'),
        };
      }
      const take = Math.min(this.current.left, this.buffer.length);
      this.current.hash.update(this.buffer.subarray(0, take));
      this.buffer = this.buffer.subarray(take);
      this.current.left -= take;
      if (this.current.left > 0) return;
      const done = this.current.received;
      done.sha = this.current.hash.digest('hex');
      this.current = undefined;
      this.waiting.shift()?.resolve(done);
    }
  }
}

function curlSha(target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', [
      '-sS',
      '--fail',
      '--abstract-unix-socket',
      address.slice(1),
      `http://x${target}`,
    ]);
    const hash = createHash('sha256');
    child.stdout.on('data', (c: Buffer) => hash.update(c));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(hash.digest('hex')) : reject(new Error(`curl exited ${code}`)),
    );
  });
}

function taskCount(): number {
  return readdirSync('/proc/self/task').length;
}

/** Polls `probe` until it returns true (a bounded wait, not a timing assertion). */
async function eventually(probe: () => boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > until) throw new Error(`not reached within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function connectionCount(): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((err, count) => (err ? reject(err) : resolve(count))),
  );
}

async function eventuallyAsync(probe: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > until) throw new Error(`not reached within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('sendFileRange: zero-copy bodies', () => {
  it('the addon has the sendfile entry points', () => {
    expect(zeroCopyAvailable()).toBe(true);
  });

  itNeeds(['curl'], 'curl receives 0 B, 1 B, 1 MiB and 64 MiB byte-exact', async () => {
    for (const name of Object.keys(SIZES)) {
      expect(await curlSha(`/f/${name}`), name).toBe(sha(file(name)));
    }
  });

  it('a range at an offset is exactly that slice, with 206', async () => {
    const c = new Connection();
    try {
      const r = await c.request('/f/mib?start=12345&end=700000');
      expect(r.status).toBe(206);
      expect(r.length).toBe(700000 - 12345 + 1);
      expect(r.sha).toBe(sha(file('mib').subarray(12345, 700001)));
      const deep = await c.request(`/f/big?start=${60 * MiB + 7}&end=${62 * MiB}`);
      expect(deep.sha).toBe(sha(file('big').subarray(60 * MiB + 7, 62 * MiB + 1)));
    } finally {
      c.close();
    }
  });

  it('keep-alive: requests after a zero-copy response are served on the same connection', async () => {
    const c = new Connection();
    try {
      const first = await c.request('/f/big');
      expect(first.sha).toBe(sha(file('big')));
      const second = await c.request('/f/mib');
      expect(second.sha).toBe(sha(file('mib')));
      const head = await c.request('/f/big', 'HEAD');
      expect(head.headers['content-length']).toBe(String(64 * MiB));
      const third = await c.request('/f/one');
      expect(third.sha).toBe(sha(file('one')));
    } finally {
      c.close();
    }
  });

  it('pipelining: 12 requests written at once come back in order, byte-exact', async () => {
    const c = new Connection();
    const targets = [
      '/f/mib',
      '/f/one',
      '/f/empty',
      '/f/big?start=1&end=3000000',
      'HEAD /f/mib',
      '/f/mib?start=524288&end=524288',
      '/f/big',
      '/f/one',
      '/f/mib?start=0&end=65535',
      '/f/empty',
      '/f/mib',
      '/f/big?start=33554432&end=67108863',
    ];
    try {
      const expected = targets.map((t) => {
        const head = t.startsWith('HEAD ');
        const url = new URL(head ? t.slice(5) : t, 'http://x');
        const data = file(url.pathname.slice(3));
        const start = Number(url.searchParams.get('start') ?? 0);
        const end = Number(url.searchParams.get('end') ?? data.length - 1);
        return head ? sha(Buffer.alloc(0)) : sha(data.subarray(start, end + 1));
      });
      const pending = targets.map((t) => c.expect(t.startsWith('HEAD ')));
      c.socket.write(
        targets
          .map((t) =>
            t.startsWith('HEAD ')
              ? `${t} HTTP/1.1\r\nHost: x\r\n\r\n`
              : `GET ${t} HTTP/1.1\r\nHost: x\r\n\r\n`,
          )
          .join(''),
      );
      const got = await Promise.all(pending);
      expect(got.map((r) => r.sha)).toEqual(expected);
    } finally {
      c.close();
    }
  });

  it('leaves the caller its file fd (the native side works on duplicates)', () => {
    expect(stats.fdClosed).toBe(0);
  });

  it('a file shorter than the promised range ends in ENODATA and a cut connection', async () => {
    const before = stats.failed.length;
    const c = new Connection();
    const closed = new Promise((r) => c.socket.once('close', r));
    const response = c.request('/f/mib?lie=1').catch((err: unknown) => err);
    await closed;
    expect(await response).toBeInstanceOf(Error);
    await eventually(() => stats.failed.length > before, 'transfer reported');
    expect(stats.failed.at(-1)).toBe('ENODATA');
  });

  it('40 clients leaving mid-body leave fds and threads at their baseline', async () => {
    // Warm up: the libuv pool threads exist from the first fs.promises call on.
    expect((await rawGet(address, '/f/one')).body.length).toBe(1);
    await eventually(() => stats.active === 0, 'earlier transfers ended');
    // The server's side of earlier connections (the warm-up's among them) closes a little after
    // the client's, and a handler closes its file after the transfer ended: counted in the
    // baseline, either fd would be missing at the end.
    await eventuallyAsync(async () => (await connectionCount()) === 0, 'earlier connections closed');
    await eventually(() => stats.openFiles === 0, 'earlier files closed');
    const fds = openFdCount();
    const tasks = taskCount();
    const finishedBefore = stats.ok + stats.failed.length;
    const clients = Array.from({ length: 40 }, async () => {
      const socket = connectSocket(address);
      await new Promise<void>((resolve, reject) => {
        let seen = 0;
        socket.on('error', reject);
        socket.on('data', (chunk: Buffer) => {
          seen += chunk.length;
          if (seen > 256 * 1024) {
            socket.destroy();
            resolve();
          }
        });
        socket.write('GET /f/big HTTP/1.1\r\nHost: x\r\n\r\n');
      });
    });
    await Promise.all(clients);
    await eventually(() => stats.ok + stats.failed.length - finishedBefore === 40, 'all 40 transfers ended');
    // At most the baseline: an fd of the warm-up (its socket) may still have been closing then.
    await eventually(() => openFdCount() <= fds, `fds back to ${fds} (now ${openFdCount()})`);
    await eventually(() => taskCount() <= tasks, `threads back to ${tasks} (now ${taskCount()})`);
  });

  it('four stalled readers do not block a fifth request', async () => {
    const failedBefore = stats.failed.length;
    const stalled = Array.from({ length: 4 }, () => {
      const socket = connectSocket(address);
      socket.pause(); // never reads: the server's socket fills up and sendfile waits in poll
      socket.write('GET /f/big HTTP/1.1\r\nHost: x\r\n\r\n');
      return socket;
    });
    try {
      await eventually(() => stats.active === 4, 'four transfers running');
      // The handler opens with fs.promises: a transfer design that held pool threads would have
      // all four of them now, and this request would never be answered.
      const small = await rawGet(address, '/f/one');
      expect(small.status).toBe(200);
      expect(small.body.equals(file('one'))).toBe(true);
      expect(stats.active).toBe(4);
    } finally {
      for (const s of stalled) s.destroy();
    }
    // The readers left: Node closes its socket (the transfer is cancelled) or sendfile fails
    // with EPIPE first, whichever comes first.
    await eventually(() => stats.active === 0, 'stalled transfers ended');
    const ends = stats.failed.slice(failedBefore);
    expect(ends).toHaveLength(4);
    for (const code of ends) expect(['ECANCELED', 'EPIPE', 'ECONNRESET']).toContain(code);
  });

  it("a reader stalled beyond the socket's idle timeout is cut (ETIMEDOUT)", async () => {
    const before = stats.failed.length;
    const socket = connectSocket(address);
    socket.on('error', () => undefined);
    socket.pause();
    socket.write('GET /f/big?idle=200 HTTP/1.1\r\nHost: x\r\n\r\n');
    try {
      await eventually(() => stats.failed.length > before, 'transfer reported');
      expect(stats.failed.at(-1)).toBe('ETIMEDOUT');
      // The response was destroyed, so the server closed the connection: reading shows the end.
      const closed = new Promise((r) => socket.once('close', r));
      socket.resume();
      await closed;
    } finally {
      socket.destroy();
    }
  });
});

describe('native sendfileStart: the binding contract', () => {
  it('rejects wrong argument types as programmer errors', () => {
    const start = native.sendfileStart;
    if (!start) throw new Error('no sendfileStart');
    const cb = (): void => undefined;
    expect(() => (start as (...a: unknown[]) => number)(1, 2, 0, 1)).toThrow(TypeError);
    expect(() => start(1, 2, -1, 1, cb)).toThrow(/Usage: sendfileStart/);
    expect(() => start(1, 2, 0, 1.5, cb)).toThrow(TypeError);
  });

  it('returns -EBADF for a closed fd and leaves nothing open', () => {
    const start = native.sendfileStart;
    if (!start) throw new Error('no sendfileStart');
    const fds = openFdCount();
    expect(start(987654, 987655, 0, 1, () => undefined)).toBe(-9);
    expect(openFdCount()).toBeLessThanOrEqual(fds);
    expect(native.sendfileCancel?.(2 ** 31)).toBe(false);
  });
});
