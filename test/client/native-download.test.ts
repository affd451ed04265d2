/**
 * Downloads whose body a native thread moves from the socket into the file (client/native-body.ts
 * under client/http-transport.ts): the bytes, the proof that the path was taken
 * (nativeBodyStats), and the same answers as the JS path where it ends otherwise: a body cut
 * short (the partial state `-C -` resumes from), an abort, a connection gone quiet, a file that
 * cannot be written. Not regular files (/dev/null, a FIFO) stay on the JS path. Real sockets and
 * files throughout: `nullgate serve` in a child process (so this process's fds are the client's
 * alone), a raw server for what nullgate's own server never does, and the bundled CLI.
 *
 * Also what any download leaves on disk when it does not finish: the bytes go to an anonymous
 * file (O_TMPFILE) named over the target only when whole, so an interrupted or killed client
 * leaves nothing; and the two fallbacks (no O_TMPFILE; an fd that cannot be named) still replace
 * the target whole, with its metadata.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  constants,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { constants as osc, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PartialTransferError } from '../../client/client-error.js';
import { connector } from '../../client/connector.js';
import { FileClient } from '../../client/file-client.js';
import { httpTransport } from '../../client/http-transport.js';
import { nativeBodyStats } from '../../client/native-body.js';
import { listenAbstract } from '../../gateway/listen.js';
import { native } from '../../native/binding.js';
import { runFile, type Served, startServe } from '../helpers/cli.js';
import { openFdCount, uniqueName } from '../helpers/sockets.js';
import { shape, withMode } from '../helpers/transport.js';

const BUNDLE = fileURLToPath(new URL('../../bundle/nullgate.cjs', import.meta.url));
const MiB = 1024 * 1024;
/** Larger than the native threshold, and no multiple of any chunk or pipe size. */
const BIG = randomBytes(6 * MiB + 12_345);
/** Where the raw server cuts BIG's body. */
const CUT_AT = 2 * MiB + 777;
/** A Last-Modified well over 60 s before the Date: a strong validator (client/resume.ts). */
const LAST_MODIFIED = 'Tue, 01 Dec 2026 10:00:00 GMT';

async function eventually(probe: () => boolean, what: string, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > until) throw new Error(`not reached within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `/files/cut`: BIG announced, CUT_AT bytes sent, then the end; with `Range: bytes=N-` the rest
 * from N (206). `/files/stall`: BIG announced, CUT_AT bytes sent, then nothing until the client
 * goes. Each request has its connection.
 */
async function startRaw(name: string): Promise<{ server: net.Server; open: Set<net.Socket> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const target = head.split(' ')[1];
      const range = /\r\nrange: bytes=(\d+)-\r\n/i.exec(head);
      const dated = `last-modified: ${LAST_MODIFIED}\r\ndate: ${new Date().toUTCString()}\r\n`;
      if (target === '/files/cut' && range) {
        const from = Number(range[1]);
        socket.write(
          `HTTP/1.1 206 Partial Content\r\n${dated}content-range: bytes ${from}-${BIG.length - 1}/${BIG.length}\r\ncontent-length: ${BIG.length - from}\r\n\r\n`,
        );
        socket.end(BIG.subarray(from));
      } else if (target === '/files/cut' || target === '/files/stall') {
        socket.write(`HTTP/1.1 200 OK\r\n${dated}content-length: ${BIG.length}\r\n\r\n`);
        if (target === '/files/cut') socket.end(BIG.subarray(0, CUT_AT));
        else socket.write(BIG.subarray(0, CUT_AT));
      } else {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      }
    });
  });
  await listenAbstract(server, name);
  return { server, open };
}

describe('downloads whose body a native thread moves into the file', () => {
  let root: string;
  let work: string;
  let served: Served;
  let name: string;
  let rawName: string;
  let raw: { server: net.Server; open: Set<net.Socket> };
  const overHttp = (socket: string, idleMs?: number): FileClient =>
    new FileClient(httpTransport(connector(socket), idleMs), socket);
  const temporaries = (): string[] => readdirSync(work).filter((n) => n.endsWith('.part'));

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'ng-native-get-root-'));
    work = mkdtempSync(path.join(tmpdir(), 'ng-native-get-work-'));
    writeFileSync(path.join(root, 'big.bin'), BIG);
    writeFileSync(path.join(root, 'small.txt'), 'small\n');
    name = uniqueName('native-get');
    served = await startServe(['--socket', name, '--root', root]);
    rawName = uniqueName('native-get-raw');
    raw = await startRaw(rawName);
  });
  afterAll(async () => {
    await served.stop();
    for (const s of raw.open) s.destroy();
    await new Promise((r) => raw.server.close(r));
    rmSync(root, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  afterEach(() => {
    expect(temporaries()).toEqual([]);
  });

  it('a big download arrives byte-identical through the native path, reports its progress, and leaves no fd open', async () => {
    const fds = openFdCount();
    const before = nativeBodyStats.receives;
    const client = overHttp(name);
    const progress: [number, number | undefined][] = [];
    const file = path.join(work, 'big.bin');
    const result = await client.download('/big.bin', file, { onProgress: (d, t) => progress.push([d, t]) });
    await client.close();
    expect(nativeBodyStats.receives).toBe(before + 1);
    expect(result).toEqual({ bytes: BIG.length, size: BIG.length, resumed: false, restart: undefined });
    expect(readFileSync(file).equals(BIG)).toBe(true);
    // At least the final count; any reports before it only grow.
    expect(progress.at(-1)).toEqual([BIG.length, BIG.length]);
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]![0]).toBeGreaterThanOrEqual(progress[i - 1]![0]);
    // The mode as the server sent it (0644 less the umask), as on the JS path.
    expect(statSync(file).mode & 0o777).toBe(0o644 & ~process.umask());
    // Every fd of the download closed: the file, the connection, the thread's duplicates.
    await eventually(() => openFdCount() <= fds, `fds back to ${fds} (now ${openFdCount()})`);
  });

  it('NULLGATE_ZERO_COPY_DOWNLOADS=always: bodies of every size byte-identical, whether or not node:http had read them whole', async () => {
    const sizes = [1, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 300_001, MiB];
    for (const size of sizes) writeFileSync(path.join(root, `size-${size}.bin`), BIG.subarray(0, size));
    const client = overHttp(name);
    try {
      await withMode('always', async () => {
        for (const size of sizes) {
          for (const resume of [false, true]) {
            const local = path.join(work, `size-${size}-${resume}.bin`);
            const result = await client.download(`/size-${size}.bin`, local, { resume });
            expect(result).toMatchObject({ bytes: size, size });
            expect(readFileSync(local).equals(BIG.subarray(0, size))).toBe(true);
          }
        }
      });
      // The client goes on, on a connection of its own: none is reused after a native body.
      expect((await client.stat('/small.txt')).size).toBe(6);
    } finally {
      await client.close();
    }
  });

  it('a small body, a device and NULLGATE_ZERO_COPY_DOWNLOADS=0 stay on the JS path', async () => {
    const before = nativeBodyStats.receives;
    const client = overHttp(name);
    try {
      await client.download('/small.txt', path.join(work, 'small.txt'));
      expect(readFileSync(path.join(work, 'small.txt'), 'utf8')).toBe('small\n');
      expect(await client.download('/big.bin', '/dev/null')).toMatchObject({ bytes: BIG.length });
      await withMode('0', () => client.download('/big.bin', path.join(work, 'js.bin')));
      expect(readFileSync(path.join(work, 'js.bin')).equals(BIG)).toBe(true);
    } finally {
      await client.close();
    }
    expect(nativeBodyStats.receives).toBe(before);
  });

  it('a body cut short: the same PartialTransferError as the JS path, and -C - keeps and resumes what arrived', async () => {
    const got: Record<string, unknown>[] = [];
    for (const mode of [undefined, '0']) {
      const before = nativeBodyStats.receives;
      const local = path.join(work, `cut-${mode ?? 'native'}.bin`);
      const client = overHttp(rawName);
      try {
        const plain = await withMode(mode, () => client.download('/cut', local).catch((e: unknown) => e));
        expect(plain).toBeInstanceOf(PartialTransferError);
        // A plain download leaves no file (and no temporary one).
        expect(statSync(local, { throwIfNoEntry: false })).toBeUndefined();
        got.push(shape(plain));
        const cut = await withMode(mode, () =>
          client.download('/cut', local, { resume: true }).catch((e: unknown) => e),
        );
        expect(shape(cut)).toEqual(shape(plain));
        // -C -: what arrived stays, stamped with the Last-Modified it is part of.
        expect(readFileSync(local).equals(BIG.subarray(0, CUT_AT))).toBe(true);
        expect(statSync(local).mtime.toUTCString()).toBe(LAST_MODIFIED);
        const resumed = await withMode(mode, () => client.download('/cut', local, { resume: true }));
        expect(resumed).toEqual({
          bytes: BIG.length - CUT_AT,
          size: BIG.length,
          resumed: true,
          restart: undefined,
        });
        expect(readFileSync(local).equals(BIG)).toBe(true);
      } finally {
        await client.close();
      }
      // Native: the cut body of both tries and the resumed rest (each over the threshold).
      expect(nativeBodyStats.receives).toBe(before + (mode === undefined ? 3 : 0));
    }
    expect(got[0]).toEqual(got[1]);
    expect(got[0]).toEqual({
      name: 'PartialTransferError',
      code: 'UND_ERR_SOCKET',
      message: `transfer cut short after ${CUT_AT} of ${BIG.length} bytes: other side closed`,
      received: CUT_AT,
      expected: BIG.length,
    });
  });

  it('an abort mid-body is the abort, on either path; nothing is left behind', async () => {
    const errors: Record<string, unknown>[] = [];
    for (const mode of [undefined, '0']) {
      const fds = openFdCount();
      const before = nativeBodyStats.receives;
      const client = overHttp(rawName);
      const controller = new AbortController();
      let seen = 0;
      const download = withMode(mode, () =>
        client.download('/stall', path.join(work, 'stall.bin'), {
          signal: controller.signal,
          onProgress: (done) => (seen = done),
        }),
      ).catch((e: unknown) => e);
      // Aborted once bytes are in the file (native: the progress poll has seen them).
      await eventually(() => seen > 0, 'bytes to arrive');
      controller.abort();
      const err = await download;
      errors.push({ name: (err as Error).name, code: (err as { code?: unknown }).code });
      await client.close();
      expect(statSync(path.join(work, 'stall.bin'), { throwIfNoEntry: false })).toBeUndefined();
      await eventually(() => openFdCount() <= fds + raw.open.size, 'the client fds closed');
      expect(nativeBodyStats.receives).toBe(before + (mode === undefined ? 1 : 0));
    }
    expect(errors).toEqual([
      { name: 'AbortError', code: 'ABORT_ERR' },
      { name: 'AbortError', code: 'ABORT_ERR' },
    ]);
  });

  it('a connection that goes quiet mid-body times out as on the JS path (the idle timeout applies natively)', async () => {
    const got: Record<string, unknown>[] = [];
    for (const mode of [undefined, '0']) {
      const before = nativeBodyStats.receives;
      // Idle for 1 s: long enough that a loaded machine's pauses while the CUT_AT bytes still
      // flow are not taken for it (every byte sent is counted on both paths).
      const client = overHttp(rawName, 1000);
      try {
        const err = await withMode(mode, () =>
          client.download('/stall', path.join(work, 'quiet.bin')).catch((e: unknown) => e),
        );
        expect(err).toBeInstanceOf(PartialTransferError);
        got.push(shape(err));
      } finally {
        await client.close();
      }
      expect(nativeBodyStats.receives).toBe(before + (mode === undefined ? 1 : 0));
    }
    expect(got[0]).toEqual(got[1]);
    expect(got[0]).toMatchObject({ code: 'UND_ERR_BODY_TIMEOUT', received: CUT_AT });
  });

  it('the bundle: get -o of a big file, a cut one (exit 18, then -C -), and /dev/null and a FIFO', async () => {
    const out = path.join(work, 'bundle.bin');
    const saved = await runFile(BUNDLE, ['get', '-s', '/big.bin', '-o', out, '--socket', name]);
    expect(saved.stderr).toBe('');
    expect(saved.code).toBe(0);
    expect(readFileSync(out).equals(BIG)).toBe(true);

    const partial = path.join(work, 'bundle-cut.bin');
    const cut = await runFile(BUNDLE, ['get', '-C', '-', '/cut', '-o', partial, '--socket', rawName]);
    expect(cut.code).toBe(18);
    expect(cut.stderr).toBe(
      `nullgate: GET /files/cut on ${rawName}: transfer cut short after ${CUT_AT} of ${BIG.length} bytes: other side closed\n`,
    );
    expect(readFileSync(partial).equals(BIG.subarray(0, CUT_AT))).toBe(true);
    const resumed = await runFile(BUNDLE, ['get', '-C', '-', '/cut', '-o', partial, '--socket', rawName]);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(readFileSync(partial).equals(BIG)).toBe(true);

    const devnull = await runFile(BUNDLE, ['get', '/big.bin', '-o', '/dev/null', '--socket', name]);
    expect(devnull.code).toBe(0);
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);

    const fifo = path.join(work, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    reader.stdout.on('data', (c: Buffer) => chunks.push(c));
    const readerDone = new Promise((r) => reader.on('close', r));
    const piped = await runFile(BUNDLE, ['get', '/big.bin', '-o', fifo, '--socket', name]);
    await readerDone;
    expect(piped.code).toBe(0);
    expect(Buffer.concat(chunks).equals(BIG)).toBe(true);
    expect(statSync(fifo).isFIFO()).toBe(true);
  });

  it('a file that cannot be written: the same message and exit code (23) on both paths, no temporary file left', async () => {
    // RLIMIT_FSIZE makes writes past 1 MiB fail with EFBIG (SIGXFSZ ignored, inherited by exec).
    const results: { code: number | null; stderr: string }[] = [];
    for (const mode of ['', '0']) {
      const out = path.join(work, `limited-${mode || 'native'}.bin`);
      // (The server is another process: this one may wait synchronously.)
      const r = spawnSync(
        'sh',
        [
          '-c',
          `trap '' XFSZ; ulimit -f 2048; exec "$0" "$@"`,
          process.execPath,
          BUNDLE,
          'get',
          '-s',
          '/big.bin',
          '-o',
          out,
          '--socket',
          name,
        ],
        { env: { ...process.env, NULLGATE_ZERO_COPY_DOWNLOADS: mode }, encoding: 'utf8', timeout: 20_000 },
      );
      results.push({ code: r.status, stderr: r.stderr.replace(out, 'OUT') });
      expect(statSync(out, { throwIfNoEntry: false })).toBeUndefined();
    }
    expect(results[0]).toEqual(results[1]);
    expect(results[0]).toEqual({ code: 23, stderr: 'nullgate: cannot write OUT: file too large\n' });
  });

  /** The fd of `pid` open on an anonymous file in `dir` (its link reads `DIR/#INODE (deleted)`), if any. */
  function anonymousFd(pid: number, dir: string): string | undefined {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const link = `/proc/${pid}/fd/${fd}`;
      try {
        const target = readlinkSync(link);
        if (target.startsWith(`${dir}/#`) && target.endsWith(' (deleted)')) return link;
      } catch {
        // Closed meanwhile.
      }
    }
    return undefined;
  }

  it('the CLI interrupted mid-body (Ctrl-C, SIGTERM, SIGKILL), get -o and request -o, on either path, leaves no file of any name', async () => {
    const dir = mkdtempSync(path.join(work, 'signals-'));
    const verbs = {
      get: ['get', '-s', '/stall'],
      request: ['request', '/files/stall'],
    } as const;
    for (const [verb, args] of Object.entries(verbs)) {
      for (const mode of ['', '0']) {
        for (const signal of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
          const child = spawn(
            process.execPath,
            [BUNDLE, ...args, '-o', path.join(dir, 'stall.bin'), '--socket', rawName],
            { env: { ...process.env, NULLGATE_ZERO_COPY_DOWNLOADS: mode }, stdio: 'ignore' },
          );
          const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, sig) => r(sig)));
          // The bytes that came are in the file (a MiB: the JS path writes in batches of one), and
          // the file has no name.
          await eventually(
            () => {
              const fd = anonymousFd(child.pid!, dir);
              return fd !== undefined && statSync(fd).size >= MiB;
            },
            `${verb} ${signal}/${mode || 'native'}: a MiB in the anonymous file`,
          );
          child.kill(signal);
          expect(await exited).toBe(signal);
          expect(readdirSync(dir)).toEqual([]);
        }
      }
    }
  });

  it('a new name takes one link; a file that appears at it meanwhile is replaced, as one that was there', async () => {
    const client = overHttp(name);
    const link = vi.spyOn(native, 'fsLinkTmpfile');
    try {
      const fresh = path.join(work, 'fresh.txt');
      await client.download('/small.txt', fresh);
      expect(link.mock.calls.map((c) => c[3])).toEqual([false]);
      // Something made the file between the look at the target and the link: EEXIST, then replace.
      link.mockClear();
      link.mockResolvedValueOnce(-osc.errno.EEXIST);
      const raced = path.join(work, 'raced.txt');
      await client.download('/small.txt', raced);
      expect(link.mock.calls.map((c) => c[3])).toEqual([false, true]);
      expect(readFileSync(raced, 'utf8')).toBe('small\n');
      // A file that was there: replaced at once.
      link.mockClear();
      await client.download('/small.txt', raced);
      expect(link.mock.calls.map((c) => c[3])).toEqual([true]);
    } finally {
      link.mockRestore();
      await client.close();
    }
    expect(readdirSync(work).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('where the file system has no O_TMPFILE, or the anonymous file cannot be named, the target is still replaced whole, with its metadata', async () => {
    const mtime = new Date('2026-11-20T08:00:00Z');
    utimesSync(path.join(root, 'big.bin'), mtime, mtime);
    utimesSync(path.join(root, 'small.txt'), mtime, mtime);
    const client = overHttp(name);
    const { O_TMPFILE } = native.fsConstants;
    const link = vi.spyOn(native, 'fsLinkTmpfile');
    try {
      for (const fallback of ['no O_TMPFILE', 'no name']) {
        // open(2) of a directory with O_DIRECTORY | O_RDWR: EISDIR, as kernels before O_TMPFILE answer.
        if (fallback === 'no O_TMPFILE')
          (native.fsConstants as { O_TMPFILE: number }).O_TMPFILE = constants.O_DIRECTORY;
        // linkat(2) without CAP_DAC_READ_SEARCH before Linux 6.10, and no /proc: ENOENT.
        else link.mockResolvedValue(-osc.errno.ENOENT);
        for (const remote of ['big.bin', 'small.txt']) {
          const local = path.join(work, `${fallback}-${remote}`);
          writeFileSync(local, 'the old version\n');
          await client.download(`/${remote}`, local, { keep: 'all' });
          expect(
            readFileSync(local).equals(readFileSync(path.join(root, remote))),
            `${fallback}: ${remote}`,
          ).toBe(true);
          expect(statSync(local).mtime).toEqual(mtime);
          expect(statSync(local).mode & 0o7777).toBe(statSync(path.join(root, remote)).mode & 0o7777);
        }
        expect(link).toHaveBeenCalledTimes(fallback === 'no name' ? 2 : 0);
        (native.fsConstants as { O_TMPFILE: number }).O_TMPFILE = O_TMPFILE;
      }
    } finally {
      (native.fsConstants as { O_TMPFILE: number }).O_TMPFILE = O_TMPFILE;
      link.mockRestore();
      await client.close();
    }
    expect(readdirSync(work).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});
