/**
 * The zero-copy receive path (routes/receive.ts over native/receive.cc) behind the real gateway
 * on an abstract socket: byte-exact bodies, pipelined requests after an upload on one kept-alive
 * connection, clients that stop mid-body or go quiet, a full disk, digests hashed on the native
 * thread, and the binding contract. Each upload case runs through splice, through the
 * read/write fallback, and through JS (NULLGATE_ZERO_COPY_UPLOADS=0) where the comparison says
 * something. No timed assertions: bounds only catch hangs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../native/binding.js';
import { socketFd } from '../../native/node-internals.js';
import { openFdCount } from '../helpers/sockets.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
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

describe('receiveStart: the binding contract', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ng-receive-native-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the read/write fallback (where splice is EINVAL) writes the same bytes', async () => {
    const filePath = path.join(dir, 'fallback.bin');
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

  it('checks its arguments (TypeError "Usage: …")', () => {
    const cb = (): void => undefined;
    expect(() => (native.receiveStart as unknown as () => number)()).toThrow(/^Usage: receiveStart/);
    expect(() => native.receiveStart(0, 0, 'x' as unknown as Buffer, 0, [], cb)).toThrow(TypeError);
    expect(() => native.receiveStart(0, 0, Buffer.alloc(0), -1, [], cb)).toThrow(TypeError);
    expect(() => native.receiveStart(0, 0, Buffer.alloc(0), 0, [1 as unknown as string], cb)).toThrow(
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
