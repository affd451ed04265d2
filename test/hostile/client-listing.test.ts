/**
 * A server whose listing never ends (issue 16 C: `ls` grew to 1.6 GB in 15 s). `ls` and
 * `ls --json` print the entries as they arrive, in bounded memory; `ls -l`, which needs the whole
 * listing to align its columns, stops at its entry limit with a clear error; so does
 * Client.list(). Also: a write whose JSON answer never ends.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, MAX_LISTING_ENTRIES } from '../../client/index.js';
import { listenAbstract } from '../../gateway/listen.js';
import { BIN, runCli } from '../helpers/cli.js';
import { uniqueName } from '../helpers/sockets.js';
import { MiB } from './harness.js';

const ENTRY = '{"name":"entry-0000000","type":"file","size":1,"mtime":0,"mode":420}';

/** Writes `chunk` again and again as chunked data, as fast as the reader takes it, until it goes. */
function pumpForever(socket: net.Socket, chunk: string): void {
  const frame = Buffer.from(`${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`);
  const pump = (): void => {
    while (!socket.destroyed && socket.write(frame));
    if (!socket.destroyed) socket.once('drain', pump);
  };
  pump();
}

/** Connections the endless server holds, to end them when the tests are done. */
const sockets = new Set<net.Socket>();

async function startEndlessServer(name: string): Promise<net.Server> {
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let head = '';
    socket.on('error', () => undefined);
    socket.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const [method = '', target = ''] = head.split(' ');
      head = '';
      if (target.startsWith('/files/endless')) {
        // A listing (GET) or an upload's answer (PUT) that opens and never closes.
        const put = method === 'PUT';
        socket.write(
          `HTTP/1.1 ${put ? '201 Created' : '200 OK'}\r\ncontent-type: application/json\r\n` +
            `transfer-encoding: chunked\r\n\r\n`,
        );
        const opening = put ? '{"path":"/endless","etag":"' : '{"path":"/endless/","entries":[';
        socket.write(`${Buffer.byteLength(opening).toString(16)}\r\n${opening}\r\n`);
        pumpForever(socket, put ? 'x'.repeat(64 * 1024) : `${ENTRY},`.repeat(1000));
      } else {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      }
    });
  });
  await listenAbstract(server, name);
  return server;
}

/**
 * Runs the CLI until its stdout has `bytes` bytes, then kills it; resolves with what it printed
 * and its peak RSS (VmHWM) read just before the kill.
 */
function runUntil(args: string[], bytes: number): Promise<{ head: string; peakRss: number; lines: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let head = '';
    let seen = 0;
    let lines = 0;
    let err = '';
    let done = false;
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      if (done) return;
      if (head.length < 4096) head += c.toString('utf8');
      seen += c.length;
      for (const b of c) if (b === 0x0a) lines++;
      if (seen >= bytes) {
        done = true;
        const peakRss = peakRssOf(child.pid!);
        child.kill('SIGKILL');
        resolve({ head, peakRss, lines });
      }
    });
    child.on('exit', (code) => {
      if (!done) reject(new Error(`exited ${code} after ${seen} bytes: ${err}`));
    });
  });
}

/** VmHWM (the peak resident set) of `pid` in bytes. */
function peakRssOf(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

describe('a server whose listing never ends', () => {
  let name: string;
  let server: net.Server;
  beforeAll(async () => {
    name = uniqueName('endless');
    server = await startEndlessServer(name);
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((r) => server.close(r));
  });

  it('ls prints the entries as they arrive, in bounded memory', async () => {
    // More lines than `ls -l` would ever hold, and far more bytes than the client may keep.
    const { head, peakRss, lines } = await runUntil(['ls', '/endless', '--socket', name], 20 * MiB);
    expect(head.startsWith('entry-0000000\nentry-0000000\n')).toBe(true);
    expect(lines).toBeGreaterThan(MAX_LISTING_ENTRIES);
    expect(peakRss).toBeLessThan(200 * MiB);
  }, 120_000);

  it('ls --json streams the listing as JSON, in bounded memory', async () => {
    const { head, peakRss } = await runUntil(['ls', '--json', '/endless', '--socket', name], 40 * MiB);
    expect(head.startsWith(`{"path":"/endless/","entries":[${ENTRY},${ENTRY},`)).toBe(true);
    expect(peakRss).toBeLessThan(200 * MiB);
  }, 120_000);

  it('ls -l stops at its entry limit: exit 1 naming it', async () => {
    const r = await runCli(['ls', '-l', '/endless', '--socket', name], { timeoutMs: 110_000 });
    expect(r.stderr).toBe(
      `nullgate: GET /files/endless/ on ${name}: the listing has more than ${MAX_LISTING_ENTRIES} entries\n`,
    );
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBe(0);
  }, 120_000);

  it('Client.list stops at maxEntries; listStream reads on', async () => {
    const client = new Client({ socket: name });
    try {
      await expect(client.list('/endless', { maxEntries: 10_000 })).rejects.toMatchObject({
        code: 'NG_ERR_RESPONSE_TOO_LARGE',
        message: `GET /files/endless/ on ${name}: the listing has more than 10000 entries`,
      });
      const stream = await client.listStream('/endless');
      let count = 0;
      for await (const entry of stream) {
        expect(entry.name).toBe('entry-0000000');
        if (++count === 50_000) break;
      }
      expect(stream.path).toBe('/endless/');
    } finally {
      await client.destroy();
    }
  }, 120_000);

  it('a write whose JSON answer never ends fails after 1 MiB', async () => {
    const client = new Client({ socket: name });
    try {
      const err = await client.put(Readable.from([Buffer.from('data')]), '/endless').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'NG_ERR_RESPONSE_TOO_LARGE' });
    } finally {
      await client.destroy();
    }
  }, 120_000);
});
