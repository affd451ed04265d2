/**
 * The CLI's node:http path (client/http-transport.ts under FileClient) against the library's
 * Client on undici: the same bytes, the same answers, the same errors (class, code, message),
 * so the CLI's messages and exit codes do not depend on which one a verb runs on. A real gateway
 * for the answers, a raw server for what nullgate's own server never does (a body cut short, a
 * connection closed before the answer, a body that ends with the connection).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ClientError, PartialTransferError } from '../../client/index.js';
import { connector } from '../../client/connector.js';
import { FileClient } from '../../client/file-client.js';
import { httpTransport } from '../../client/http-transport.js';
import type { ResponseBody } from '../../client/transport.js';
import { createGateway, type Gateway } from '../../gateway/gateway.js';
import { listenAbstract } from '../../gateway/listen.js';
import { runFile } from '../helpers/cli.js';
import { uniqueName } from '../helpers/sockets.js';
import { bodyOf, shape, simpleVerbAnswers } from '../helpers/transport.js';

const BUNDLE = fileURLToPath(new URL('../../bundle/nullgate.cjs', import.meta.url));

/** Every byte value, in a size that is no multiple of any chunk size. */
const ALL_BYTES = Buffer.from(Array.from({ length: 300_001 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
const SHORT = Buffer.from('0123456789'.repeat(10));

interface RawServer {
  readonly server: net.Server;
  /** The request heads the server received, as text. */
  readonly heads: string[];
}

async function startRaw(name: string): Promise<RawServer> {
  const heads: string[] = [];
  const server = net.createServer((socket) => {
    let head = '';
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      heads.push(head);
      const target = head.split(' ')[1];
      head = '';
      if (target === '/files/cut') {
        // Announces 100 bytes, sends 10, and the connection ends.
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${SHORT.length}\r\n\r\n`);
        socket.write(SHORT.subarray(0, 10));
        setTimeout(() => socket.end(), 50);
      } else if (target === '/files/hangup') {
        socket.end();
      } else if (target === '/files/until-close') {
        // No length, no chunking: the body is what comes before the connection ends (RFC 9112 §6.3).
        socket.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n'), ALL_BYTES]));
      } else {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      }
    });
  });
  await listenAbstract(server, name);
  return { server, heads };
}

describe('the CLI transport (node:http) against the Client (undici)', () => {
  let root: string;
  let work: string;
  let gateway: Gateway;
  let name: string;
  let raw: RawServer;
  let rawName: string;
  const overHttp = (socket: string): FileClient => new FileClient(httpTransport(connector(socket)), socket);

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'ng-transport-root-'));
    work = await mkdtemp(path.join(tmpdir(), 'ng-transport-work-'));
    await writeFile(path.join(root, 'all.bin'), ALL_BYTES);
    name = uniqueName('transport');
    gateway = createGateway({ socket: name, root, writable: true, logLevel: false });
    await gateway.listen();
    rawName = uniqueName('transport-raw');
    raw = await startRaw(rawName);
  });
  afterAll(async () => {
    await gateway.close();
    await new Promise((r) => raw.server.close(r));
    await rm(root, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('get and download are byte-exact, every byte value, on both', async () => {
    for (const client of [overHttp(name), new Client({ socket: name })]) {
      try {
        const res = await client.get('/all.bin');
        expect(res.statusCode).toBe(200);
        expect(res.contentLength).toBe(ALL_BYTES.length);
        expect((await bodyOf(res.body)).equals(ALL_BYTES)).toBe(true);
        const ranged = await client.get('/all.bin', { range: '1000-1999' });
        expect(ranged.statusCode).toBe(206);
        expect((await bodyOf(ranged.body)).equals(ALL_BYTES.subarray(1000, 2000))).toBe(true);
        const file = path.join(work, `${client.constructor.name}.bin`);
        const result = await client.download('/all.bin', file);
        expect(result).toMatchObject({ bytes: ALL_BYTES.length, resumed: false });
        expect((await readFile(file)).equals(ALL_BYTES)).toBe(true);
      } finally {
        await client.destroy();
      }
    }
  });

  it('the bundle: get -o and get to standard output are byte-exact', async () => {
    const out = path.join(work, 'bundle.bin');
    const saved = await runFile(BUNDLE, ['get', '-s', '/all.bin', '-o', out, '--socket', name]);
    expect(saved.stderr).toBe('');
    expect(saved.code).toBe(0);
    expect((await readFile(out)).equals(ALL_BYTES)).toBe(true);
    const piped = await runFile(BUNDLE, ['get', '-o', '-', '/all.bin', '--socket', name]);
    expect(piped.code).toBe(0);
    expect(piped.stdout.equals(ALL_BYTES)).toBe(true);
  });

  it('the same answers: stat, list, mkdir, put, move, remove', async () => {
    const results: unknown[][] = [];
    for (const [i, client] of [overHttp(name), new Client({ socket: name })].entries()) {
      try {
        results.push(await simpleVerbAnswers(client, String(i), work));
      } finally {
        await client.close();
      }
    }
    expect(results[0]).toEqual(results[1]);
    expect(results[0]![1]).toEqual({ created: false });
  });

  it('the same errors: an HTTP error answer, no server, a body cut short, a connection closed before the answer', async () => {
    const errors: Record<string, unknown>[][] = [];
    const nobody = uniqueName('transport-nobody');
    for (const make of [overHttp, (s: string) => new Client({ socket: s })]) {
      const real = make(name);
      const rawClient = make(rawName);
      const gone = make(nobody);
      try {
        const got: Record<string, unknown>[] = [];
        const notFound = await real.get('/nope.bin').catch((e: unknown) => e);
        expect(notFound).toBeInstanceOf(ClientError);
        got.push({ ...shape(notFound), statusCode: (notFound as ClientError).statusCode });
        got.push(shape(await gone.get('/x').catch((e: unknown) => e)));
        const cut = await rawClient.download('/cut', path.join(work, 'cut.bin')).catch((e: unknown) => e);
        expect(cut).toBeInstanceOf(PartialTransferError);
        // What arrived before the end: all ten bytes, unless the end overtook them on a loaded
        // machine (the client then drops what it had buffered), on either path.
        const { received, message, ...rest } = shape(cut);
        expect(received).toBeLessThanOrEqual(10);
        expect(message).toBe(`transfer cut short after ${String(received)} of 100 bytes: other side closed`);
        got.push(rest);
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
      { name: 'PartialTransferError', code: 'UND_ERR_SOCKET', expected: 100 },
      { code: 'UND_ERR_SOCKET', message: 'other side closed' },
    ]);
  });

  it('the bundle: the same exit codes and messages as before (22, 7, 18)', async () => {
    const missing = await runFile(BUNDLE, ['get', '/nope.bin', '--socket', name]);
    expect(missing.code).toBe(22);
    expect(missing.stderr).toBe(
      `nullgate: GET /files/nope.bin on ${name}: 404 NG_ERR_NOT_FOUND no such file: /nope.bin\n`,
    );
    const nobody = uniqueName('transport-nobody');
    const gone = await runFile(BUNDLE, ['get', '/x', '--socket', nobody]);
    expect(gone.code).toBe(7);
    expect(gone.stderr).toBe(`nullgate: GET /files/x on ${nobody}: no server on ${nobody}\n`);
    const cut = await runFile(BUNDLE, ['get', '/cut', '-o', path.join(work, 'cut.bin'), '--socket', rawName]);
    expect(cut.code).toBe(18);
    expect(cut.stderr).toMatch(
      new RegExp(
        `^nullgate: GET /files/cut on ${rawName}: transfer cut short after \\d+ of 100 bytes: other side closed\n$`,
      ),
    );
    const hangup = await runFile(BUNDLE, ['get', '/hangup', '--socket', rawName]);
    expect(hangup.code).toBe(1);
    expect(hangup.stderr).toBe(`nullgate: GET /files/hangup on ${rawName}: other side closed\n`);
  });

  it('needs no keep-alive: one connection per request, and a body that ends with its connection', async () => {
    const client = overHttp(rawName);
    try {
      const before = raw.heads.length;
      const res = await client.get('/until-close');
      expect(res.contentLength).toBeUndefined();
      expect((await bodyOf(res.body)).equals(ALL_BYTES)).toBe(true);
      expect(raw.heads.length).toBe(before + 1);
      expect(raw.heads[before]).toMatch(/\r\nconnection: close\r\n/i);
    } finally {
      await client.destroy();
    }
  });

  it('dump() lets go of an unread body, small or large; destroy() ends what is left', async () => {
    const client = overHttp(name);
    try {
      await writeFile(path.join(root, 'small.txt'), 'small\n');
      const small = await client.get('/small.txt');
      await (small.body as ResponseBody).dump();
      const large = await client.get('/all.bin');
      await (large.body as ResponseBody).dump();
      expect(large.body.destroyed).toBe(true);
      // Still usable afterwards: each request has a connection of its own.
      expect((await bodyOf((await client.get('/small.txt')).body)).toString()).toBe('small\n');
    } finally {
      await client.destroy();
    }
  });
});
