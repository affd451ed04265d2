/**
 * Atomic uploads under failure (CONTRACT.md "HTTP API", PUT row): a client that disconnects
 * mid-body, a server killed with SIGKILL mid-upload, a full disk, and a 1 GiB body streamed
 * in bounded memory. All over real abstract sockets.
 */
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TMP_PREFIX } from '../../native/beneath.js';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { type Served, startServe } from '../helpers/cli.js';
import { itNeeds } from '../helpers/requirements.js';
import { connectSocket, parseResponse, rawGet, type RawResponse, uniqueName } from '../helpers/sockets.js';
import { tree } from '../helpers/files.js';

const MiB = 1024 * 1024;

/** Paths of the fds `pid` holds under `dir` (O_TMPFILE inodes show as `dir/#ino (deleted)`). */
function fdsUnder(pid: number | 'self', dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function* repeat(chunk: Buffer, total: number): Generator<Buffer> {
  for (let sent = 0; sent < total; sent += chunk.length) {
    yield total - sent >= chunk.length ? chunk : chunk.subarray(0, total - sent);
  }
}

function write(socket: Socket, chunk: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      reject(new Error('socket destroyed'));
      return;
    }
    if (socket.write(chunk)) resolve();
    else {
      const onClose = () => reject(new Error('socket closed'));
      socket.once('close', onClose);
      socket.once('drain', () => {
        socket.off('close', onClose);
        resolve();
      });
    }
  });
}

interface Upload {
  socket: Socket;
  /** Resolves with the response once the server closes the connection (`Connection: close`). */
  response: Promise<RawResponse>;
  /** Resolves when the body generator is exhausted or writing stopped (answered or failed). */
  written: Promise<number>;
}

/**
 * PUT over a raw connection, body pulled from a generator and written with backpressure (so
 * neither side ever holds it whole). Writing stops as soon as the server answers.
 */
function startUpload(
  address: string,
  path: string,
  body: Iterable<Buffer>,
  headers: Record<string, string | number> = {},
): Upload {
  const socket = connectSocket(address);
  const chunks: Buffer[] = [];
  let answered = false;
  const response = new Promise<RawResponse>((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      answered = true;
      chunks.push(c);
    });
    socket.on('close', () => {
      if (chunks.length > 0) resolve(parseResponse(Buffer.concat(chunks)));
      else reject(new Error(`connection closed without a response (PUT ${path})`));
    });
    // EPIPE/ECONNRESET once the server has answered and closed is expected.
    socket.on('error', () => undefined);
  });
  // Tests that cut the connection themselves never ask for the response.
  response.catch(() => undefined);
  const head =
    `PUT ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
    Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('') +
    (headers['Content-Length'] === undefined ? 'Transfer-Encoding: chunked\r\n' : '') +
    '\r\n';
  const chunked = headers['Content-Length'] === undefined;
  const written = (async () => {
    let bytes = 0;
    try {
      await write(socket, head);
      for (const chunk of body) {
        if (answered || socket.destroyed) return bytes;
        await write(
          socket,
          chunked
            ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
            : chunk,
        );
        bytes += chunk.length;
      }
      if (chunked) await write(socket, '0\r\n\r\n');
    } catch {
      // the server answered and closed, or the test destroyed the socket
    }
    return bytes;
  })();
  return { socket, response, written };
}

describe('an upload cut off by the client', () => {
  const socket = uniqueName('files-abort');
  let root: string;
  let gateway: Gateway;
  const old = Buffer.alloc(3000, 0x6f);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ng-files-abort-'));
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'sub', 'keep.bin'), old);
    gateway = createGateway({ socket, root, writable: true, logLevel: false });
    await gateway.listen();
  });
  afterAll(async () => {
    await gateway?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it.each([
    ['replacing a file, Content-Length', '/files/sub/keep.bin', true],
    ['a new file, Content-Length', '/files/sub/new.bin', true],
    ['replacing a file, chunked', '/files/sub/keep.bin', false],
    ['a new file, chunked', '/files/sub/new.bin', false],
  ])(
    '%s: no new file, old file intact, no temporary names, listing unchanged',
    async (_what, path, sized) => {
      const listingBefore = (await rawGet(socket, '/files/sub/')).body.toString();
      const treeBefore = tree(root);
      const total = 16 * MiB;
      // A sized body is received by splice (routes/receive.ts), faster than this test could cut
      // it: its sender stops part-way and waits there to be cut. (A chunked body's sender must
      // not stop: its last chunk would end the body.)
      const stopAt = sized ? 4 * MiB : total;
      let sent = 0;
      const body = (function* () {
        for (const chunk of repeat(Buffer.alloc(64 * 1024, 0x6e), total)) {
          if (sent >= stopAt) return;
          sent += chunk.length;
          yield chunk;
        }
      })();
      const up = startUpload(socket, path, body, sized ? { 'Content-Length': total } : {});
      // Cut the connection once the server is writing the body into its temporary file.
      await until(
        'the server to open its temporary file',
        () => fdsUnder('self', root).length > 0 && sent > 2 * MiB,
      );
      up.socket.destroy();
      await up.written;
      expect(sent).toBeLessThan(total);
      await until('the server to close the temporary file', () => fdsUnder('self', root).length === 0);

      expect(tree(root)).toEqual(treeBefore);
      expect(tree(root).some((n) => n.includes(TMP_PREFIX))).toBe(false);
      expect(readFileSync(join(root, 'sub', 'keep.bin')).equals(old)).toBe(true);
      expect((await rawGet(socket, '/files/sub/')).body.toString()).toBe(listingBefore);
      // And the server still works.
      expect((await rawGet(socket, '/files/sub/keep.bin')).body.equals(old)).toBe(true);
    },
  );
});

describe('a server killed with SIGKILL during three uploads', () => {
  let root: string;
  const running: Served[] = [];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ng-files-kill-'));
  });
  afterAll(async () => {
    for (const s of running) await s.stop('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  it('leaves nothing visible after a restart, and the old file intact', async () => {
    mkdirSync(join(root, 'dir'));
    const old = Buffer.alloc(5000, 0x41);
    writeFileSync(join(root, 'a.bin'), old);
    writeFileSync(join(root, 'dir', 'other.txt'), 'other');
    const treeBefore = tree(root);

    const first = uniqueName('files-kill1');
    const served = await startServe(['--socket', first, '--root', root, '--writable']);
    running.push(served);
    const listingBefore = (await rawGet(first, '/files/')).body.toString();
    const pid = served.child.pid!;

    const targets = ['/files/a.bin', '/files/b.bin', '/files/dir/c.bin'];
    const uploads = targets.map((path, i) =>
      startUpload(
        first,
        path,
        repeat(Buffer.alloc(64 * 1024, 0x30 + i), 64 * MiB),
        i === 1 ? {} : { 'Content-Length': 64 * MiB },
      ),
    );
    await until('three temporary files in the server', () => fdsUnder(pid, root).length >= 3);
    served.child.kill('SIGKILL');
    await served.stop();
    for (const up of uploads) {
      up.socket.destroy();
      await up.written;
    }

    const second = uniqueName('files-kill2');
    const restarted = await startServe(['--socket', second, '--root', root, '--writable']);
    running.push(restarted);
    expect((await rawGet(second, '/files/')).body.toString()).toBe(listingBefore);
    expect(tree(root)).toEqual(treeBefore);
    expect(readFileSync(join(root, 'a.bin')).equals(old)).toBe(true);
    const res = await rawGet(second, '/files/a.bin');
    expect(res.status).toBe(200);
    expect(res.body.equals(old)).toBe(true);
    expect((await rawGet(second, '/files/b.bin')).status).toBe(404);
  });
});

describe('a body refused mid-way', () => {
  let gateway: Gateway | undefined;
  let dir: string;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('the client still sending always reads the answer (lingering close), 20 times in a row', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-files-linger-'));
    const socket = uniqueName('files-linger');
    gateway = createGateway({ socket, root: dir, writable: true, maxUpload: MiB, logLevel: false });
    await gateway.listen();
    for (let i = 0; i < 20; i++) {
      // Chunked, so the limit is only found mid-body; 16 MiB more keep coming after it.
      const up = startUpload(socket, `/files/big-${i}.bin`, repeat(Buffer.alloc(256 * 1024, 7), 16 * MiB));
      const res = await up.response;
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'NG_ERR_PAYLOAD_TOO_LARGE' });
    }
    expect(tree(dir)).toEqual([]);
  }, 30_000);
});

describe('a full disk', () => {
  let mountpoint: string | undefined;
  let mounted = false;
  let gateway: Gateway | undefined;

  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    if (mounted) execFileSync('umount', [mountpoint!]);
    mounted = false;
    if (mountpoint) rmdirSync(mountpoint);
    mountpoint = undefined;
  });

  itNeeds(['root', 'mount'], 'a 16 MiB upload into an 8 MiB tmpfs is 507 and leaves no file', async () => {
    mountpoint = mkdtempSync(join(tmpdir(), 'ng-files-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'ng-test-tmpfs', mountpoint]);
    mounted = true;
    writeFileSync(join(mountpoint, 'old.bin'), Buffer.alloc(1000, 0x61));
    const freeBefore = statfsSync(mountpoint).bfree;
    const socket = uniqueName('files-full');
    gateway = createGateway({ socket, root: mountpoint, writable: true, logLevel: false });
    await gateway.listen();

    for (const [path, sized] of [
      ['/files/new.bin', true],
      ['/files/old.bin', false],
    ] as const) {
      const up = startUpload(
        socket,
        path,
        repeat(Buffer.alloc(64 * 1024, 0x62), 16 * MiB),
        sized ? { 'Content-Length': 16 * MiB } : {},
      );
      const res = await up.response;
      await up.written;
      expect(res.status, path).toBe(507);
      expect(JSON.parse(res.body.toString())).toEqual({
        statusCode: 507,
        code: 'NG_ERR_INSUFFICIENT_STORAGE',
        error: 'Insufficient Storage',
        message: expect.any(String),
      });
      expect(tree(mountpoint)).toEqual(['old.bin']);
      expect(readFileSync(join(mountpoint, 'old.bin')).equals(Buffer.alloc(1000, 0x61))).toBe(true);
    }
    // The space the temporary files took is given back.
    await until('the space to be freed', () => statfsSync(mountpoint!).bfree === freeBefore);
    expect((await rawGet(socket, '/health')).status).toBe(200);
  });
});

describe('a 1 GiB upload', () => {
  let root: string;
  let served: Served | undefined;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ng-files-big-'));
  });
  afterAll(async () => {
    await served?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  function rssKiB(pid: number): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? Number.NaN);
  }

  it('keeps the server RSS growth under 64 MiB (streamed to disk, not buffered)', async () => {
    const socket = uniqueName('files-big');
    served = await startServe(['--socket', socket, '--root', root, '--writable']);
    const pid = served.child.pid!;
    // Warm up (JIT, first allocations) so the baseline is the server at work, not at birth.
    await startUpload(socket, '/files/warm.bin', repeat(Buffer.alloc(MiB, 1), 8 * MiB), {
      'Content-Length': 8 * MiB,
    }).response;
    const baseline = rssKiB(pid);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(pid))), 25);
    const total = 1024 * MiB;
    const t0 = Date.now();
    try {
      const up = startUpload(socket, '/files/big.bin', repeat(Buffer.alloc(MiB, 0x5a), total), {
        'Content-Length': total,
      });
      const res = await up.response;
      expect(await up.written).toBe(total);
      expect(res.status).toBe(201);
      expect(JSON.parse(res.body.toString())).toMatchObject({ path: '/big.bin', size: total });
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssKiB(pid));
    const seconds = (Date.now() - t0) / 1000;
    expect(statSync(join(root, 'big.bin')).size).toBe(total);
    expect((peak - baseline) / 1024, `RSS ${baseline} → ${peak} KiB in ${seconds} s`).toBeLessThan(64);
    rmSync(join(root, 'big.bin'));
  }, 60_000);
});
