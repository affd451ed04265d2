/**
 * The CLI's transport for short commands (client/blocking-transport.ts): blocking reads and
 * writes of the socket, its own HTTP/1.1 parsing. The servers run in processes of their own (a
 * server on this event loop could not answer a client that blocks it): the real gateway
 * (`nullgate serve`) and a raw server for what the gateway never sends (test/helpers/
 * raw-http-server.mjs). Checked: bytes exact on every framing, the same answers and errors as
 * the node:http transport and the Client (undici), timeouts, the native path for large bodies,
 * and no fd left open.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osc, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { blockingTransport } from '../../client/blocking-transport.js';
import { Client, ClientError, PartialTransferError } from '../../client/index.js';
import { connector } from '../../client/connector.js';
import { dialer } from '../../client/dial.js';
import { FileClient } from '../../client/file-client.js';
import { httpTransport } from '../../client/http-transport.js';
import { nativeBodyStats } from '../../client/native-receive.js';
import type { ResponseBody } from '../../client/transport.js';
import { native } from '../../native/binding.js';
import { runFile, runNode, type Served, startServe } from '../helpers/cli.js';
import { openFdCount, uniqueName } from '../helpers/sockets.js';
import { bodyOf, shape, withMode, simpleVerbAnswers } from '../helpers/transport.js';

const BUNDLE = fileURLToPath(new URL('../../bundle/nullgate.cjs', import.meta.url));
const RAW_SERVER = fileURLToPath(new URL('../helpers/raw-http-server.mjs', import.meta.url));
const MiB = 1024 * 1024;
/** Over the native threshold (1 MiB), every byte value, no multiple of any chunk size. */
const BIG = randomBytes(2 * MiB + 4321);
const CUT = Math.floor(BIG.length / 3);

function startRaw(name: string, bodyFile: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RAW_SERVER, name, bodyFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`raw server exited with ${code}`)));
    child.stdout!.once('data', () => resolve(child));
  });
}

/** The addon's own setBlocking, for a spy that refuses only some calls. */
const setBlockingNative = native.setBlocking.bind(native);

describe('the blocking transport (short CLI commands)', () => {
  let root: string;
  let work: string;
  let served: Served;
  let name: string;
  let raw: ChildProcess;
  let rawName: string;
  const overBlocking = (socket: string, idleMs?: number): FileClient =>
    new FileClient(
      blockingTransport(dialer(socket), () => Promise.resolve(httpTransport(connector(socket))), idleMs),
      socket,
    );
  const overHttp = (socket: string, idleMs?: number): FileClient =>
    new FileClient(httpTransport(connector(socket), idleMs), socket);
  const temporaries = (): string[] => readdirSync(work).filter((n) => n.endsWith('.part'));

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'ng-blocking-root-'));
    work = mkdtempSync(path.join(tmpdir(), 'ng-blocking-work-'));
    writeFileSync(path.join(root, 'big.bin'), BIG);
    writeFileSync(path.join(root, 'small.txt'), 'small\n');
    name = uniqueName('blocking');
    served = await startServe(['--socket', name, '--root', root, '--writable']);
    rawName = uniqueName('blocking-raw');
    raw = await startRaw(rawName, path.join(root, 'big.bin'));
  });
  afterAll(async () => {
    raw?.kill();
    await served?.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  afterEach(() => {
    expect(temporaries()).toEqual([]);
  });

  it('get, a range and download are byte-exact; a large download takes the native path; no fd stays open', async () => {
    const fds = openFdCount();
    const client = overBlocking(name);
    try {
      const res = await client.get('/big.bin');
      expect(res.statusCode).toBe(200);
      expect(res.contentLength).toBe(BIG.length);
      expect((await bodyOf(res.body)).equals(BIG)).toBe(true);
      const ranged = await client.get('/big.bin', { range: '1000-1999' });
      expect(ranged.statusCode).toBe(206);
      expect((await bodyOf(ranged.body)).equals(BIG.subarray(1000, 2000))).toBe(true);
      const before = nativeBodyStats.receives;
      const file = path.join(work, 'big.bin');
      expect(await client.download('/big.bin', file)).toEqual({
        bytes: BIG.length,
        size: BIG.length,
        resumed: false,
        restart: undefined,
      });
      expect(nativeBodyStats.receives).toBe(before + 1);
      expect(readFileSync(file).equals(BIG)).toBe(true);
      await client.download('/small.txt', path.join(work, 'small.txt'));
      expect(readFileSync(path.join(work, 'small.txt'), 'utf8')).toBe('small\n');
      expect(nativeBodyStats.receives).toBe(before + 1);
    } finally {
      await client.close();
    }
    expect(openFdCount()).toBe(fds);
  });

  it('a native receive the socket refuses (fcntl fails) is declined with nothing taken: the body is read on this thread, whole', async () => {
    const before = nativeBodyStats.receives;
    const refuse = vi
      .spyOn(native, 'setBlocking')
      .mockImplementation((fd: number, blocking: boolean, timeoutMs: number) =>
        blocking ? setBlockingNative(fd, blocking, timeoutMs) : -osc.errno.EBADF,
      );
    const client = overBlocking(name);
    try {
      const file = path.join(work, 'declined.bin');
      expect(await client.download('/big.bin', file)).toMatchObject({ bytes: BIG.length, size: BIG.length });
      expect(readFileSync(file).equals(BIG)).toBe(true);
      expect(refuse).toHaveBeenCalledWith(expect.any(Number), false, expect.anything());
      expect(nativeBodyStats.receives).toBe(before);
    } finally {
      refuse.mockRestore();
      await client.close();
    }
  });

  it('NULLGATE_ZERO_COPY_DOWNLOADS=always and =0: bodies of every size byte-identical on both paths', async () => {
    const sizes = [1, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 300_001, MiB];
    for (const size of sizes) writeFileSync(path.join(root, `size-${size}.bin`), BIG.subarray(0, size));
    const client = overBlocking(name);
    try {
      for (const mode of ['always', '0']) {
        await withMode(mode, async () => {
          for (const size of sizes) {
            for (const resume of [false, true]) {
              const local = path.join(work, `size-${size}-${resume}-${mode}.bin`);
              expect(await client.download(`/size-${size}.bin`, local, { resume })).toMatchObject({
                bytes: size,
                size,
              });
              expect(readFileSync(local).equals(BIG.subarray(0, size))).toBe(true);
            }
          }
        });
      }
    } finally {
      await client.close();
    }
  });

  it('the same answers as the Client: stat, list, mkdir, put (over the fallback), move, remove', async () => {
    const results: unknown[][] = [];
    for (const [i, client] of [overBlocking(name), new Client({ socket: name })].entries()) {
      try {
        results.push(await simpleVerbAnswers(client, String(i), work));
      } finally {
        await client.close();
      }
    }
    expect(results[0]).toEqual(results[1]);
    expect(results[0]![1]).toEqual({ created: false });
  });

  it('chunked, interim (1xx) and close-delimited bodies are byte-exact', async () => {
    const client = overBlocking(rawName);
    try {
      for (const target of ['/chunked', '/interim', '/until-close']) {
        const res = await client.get(target);
        expect(res.statusCode).toBe(200);
        expect((await bodyOf(res.body)).equals(BIG)).toBe(true);
        const file = path.join(work, `raw${target.replace('/', '-')}.bin`);
        await client.download(target, file);
        expect(readFileSync(file).equals(BIG)).toBe(true);
      }
    } finally {
      await client.close();
    }
  });

  it('the same errors as the node:http transport: an HTTP error, no server, a cut body (JS and native paths), a hang-up', async () => {
    const errors: Record<string, unknown>[][] = [];
    const nobody = uniqueName('blocking-nobody');
    for (const make of [overBlocking, overHttp]) {
      const got: Record<string, unknown>[] = [];
      const [real, rawClient, gone] = [make(name), make(rawName), make(nobody)];
      try {
        const notFound = await real.get('/nope.bin').catch((e: unknown) => e);
        expect(notFound).toBeInstanceOf(ClientError);
        got.push({ ...shape(notFound), statusCode: (notFound as ClientError).statusCode });
        got.push(shape(await gone.get('/x').catch((e: unknown) => e)));
        for (const mode of [undefined, '0']) {
          const cut = await withMode(mode, () =>
            rawClient.download('/cut', path.join(work, 'cut.bin')).catch((e: unknown) => e),
          );
          expect(cut).toBeInstanceOf(PartialTransferError);
          const { received, ...rest } = shape(cut);
          expect(received).toBeLessThanOrEqual(CUT);
          got.push(rest);
        }
        got.push(shape(await rawClient.get('/hangup').catch((e: unknown) => e)));
        errors.push(got);
      } finally {
        await Promise.all([real.destroy(), rawClient.destroy(), gone.destroy()]);
      }
    }
    expect(errors[0]).toEqual(errors[1]);
    expect(errors[0]).toMatchObject([
      { name: 'ClientError', code: 'NG_ERR_NOT_FOUND', statusCode: 404 },
      { code: 'NG_ERR_NO_SERVER' },
      { name: 'PartialTransferError', code: 'UND_ERR_SOCKET', expected: BIG.length },
      { name: 'PartialTransferError', code: 'UND_ERR_SOCKET', expected: BIG.length },
      { code: 'UND_ERR_SOCKET', message: 'other side closed' },
    ]);
  });

  it('a malformed answer: a bad header, a head too long, a bad chunk size', async () => {
    const client = overBlocking(rawName);
    try {
      await expect(client.get('/bad-head')).rejects.toMatchObject({
        name: 'HTTPParserError',
        code: 'HPE_INVALID_HEADER_TOKEN',
      });
      await expect(client.get('/overflow')).rejects.toMatchObject({ code: 'HPE_HEADER_OVERFLOW' });
      const bad = await client.download('/chunked-bad', path.join(work, 'bad.bin')).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(PartialTransferError);
      expect((bad as PartialTransferError).cause).toMatchObject({ code: 'HPE_INVALID_CHUNK_SIZE' });
      expect(readdirSync(work)).not.toContain('bad.bin');
    } finally {
      await client.close();
    }
  });

  it("silence ends as undici's timeouts: before the answer, in the body (JS and native paths)", async () => {
    const fds = openFdCount();
    const client = overBlocking(rawName, 300);
    try {
      await expect(client.get('/silent')).rejects.toMatchObject({
        name: 'HeadersTimeoutError',
        code: 'UND_ERR_HEADERS_TIMEOUT',
      });
      for (const mode of [undefined, '0']) {
        const stalled = await withMode(mode, () =>
          client.download('/stall', path.join(work, 'stall.bin')).catch((e: unknown) => e),
        );
        expect(stalled).toBeInstanceOf(PartialTransferError);
        expect((stalled as PartialTransferError).cause).toMatchObject({ code: 'UND_ERR_BODY_TIMEOUT' });
      }
    } finally {
      await client.destroy();
    }
    expect(openFdCount()).toBe(fds);
  });

  it('dump() lets go of an unread body, small or large; destroy() ends what is left', async () => {
    const client = overBlocking(name);
    try {
      const small = await client.get('/small.txt');
      await (small.body as ResponseBody).dump();
      const large = await client.get('/big.bin');
      await (large.body as ResponseBody).dump();
      expect(large.body.destroyed).toBe(true);
      const unread = await client.get('/big.bin');
      await client.destroy();
      expect(unread.body.destroyed).toBe(true);
    } finally {
      await client.destroy();
    }
  });

  it('the bundle: get -o and to standard output over every framing, and its messages', async () => {
    for (const target of ['/body', '/chunked', '/until-close']) {
      const out = path.join(work, 'cli.bin');
      const saved = await runFile(BUNDLE, ['get', '-s', target, '-o', out, '--socket', rawName]);
      expect(saved.stderr).toBe('');
      expect(saved.code).toBe(0);
      expect(readFileSync(out).equals(BIG)).toBe(true);
      const piped = await runFile(BUNDLE, ['get', '-o', '-', target, '--socket', rawName]);
      expect(piped.code).toBe(0);
      expect(piped.stdout.equals(BIG)).toBe(true);
    }
    const bad = await runFile(BUNDLE, ['get', '/bad-head', '--socket', rawName]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      `nullgate: GET /files/bad-head on ${rawName}: Response does not match the HTTP/1.1 protocol (Invalid header token)\n`,
    );
  });

  it('a small get -o loads none of node:stream, node:net, node:http (what made a short command slow)', async () => {
    const out = path.join(work, 'loads.txt');
    const script = `
      const before = new Set(process.moduleLoadList);
      require(${JSON.stringify(BUNDLE)}).main(['get', '-s', '--socket', ${JSON.stringify(name)}, '/small.txt', '-o', ${JSON.stringify(out)}])
        .then((code) => {
          const loaded = process.moduleLoadList.filter((m) => !before.has(m)).map((m) => m.replace('NativeModule ', ''));
          require('node:fs').writeSync(1, JSON.stringify({ code, loaded }));
        });`;
    const run = await runNode(['-e', script]);
    expect(run.stderr).toBe('');
    const { code, loaded } = JSON.parse(run.stdout.toString()) as { code: number; loaded: string[] };
    expect(code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe('small\n');
    expect(loaded.filter((m) => /^(stream|net|http|_http_\w+|internal\/streams\/\w+)$/.test(m))).toEqual([]);
  });
});
