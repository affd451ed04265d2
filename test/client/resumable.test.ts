/**
 * Client.put({ resumable: true }) and `nullgate put` of a large file (CONTRACT.md "Resumable
 * uploads"): a connection cut mid-body by a proxy, and a server killed and started again, end
 * with the file byte-exact on the server and nothing of the upload left behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../client/index.js';
import { connectFd } from '../../native/socket.js';
import { parseAddress } from '../../core/address.js';
import { createGateway, type Gateway } from '../../gateway/gateway.js';
import { listenAbstract } from '../../gateway/listen.js';
import { UPLOADS_DIR } from '../../routes/upload-store.js';
import { runCli, type Served, startServe } from '../helpers/cli.js';
import { uniqueName } from '../helpers/sockets.js';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function leftovers(root: string): string[] {
  const dir = join(root, UPLOADS_DIR);
  return existsSync(dir) ? readdirSync(dir).filter((n) => !n.endsWith('.done')) : [];
}

/**
 * A proxy on `name` to `upstream` that cuts connections: the k-th cut comes once a connection's
 * client has sent more than `cuts[k]` bytes through it (on the very first connection, only after
 * the server has answered something: its 104 naming the resource; a cut before that cannot be
 * resumed, by design, the draft's optimistic creation). After the last cut everything passes.
 * The bytes up to the cut reach the server, never one more: a client that got there before the
 * 104 did (a busy server) is held, its bytes past the cut unforwarded, until the 104 has passed.
 */
async function cuttingProxy(name: string, upstream: string, cuts: number[]): Promise<net.Server> {
  let connections = 0;
  let made = 0;
  const server = net.createServer((client) => {
    const first = connections++ === 0;
    const fd = connectFd(parseAddress(upstream));
    const target = new net.Socket({ fd, readable: true, writable: true });
    let sent = 0;
    let answered = !first;
    // The cut is due but waits for the server's first answer (held: the client is paused).
    let held = false;
    let cutDone = false;
    client.on('error', () => undefined);
    target.on('error', () => undefined);
    // What reached the server so far stays there (then EOF mid-body); the client is cut off.
    const cut = (): void => {
      cutDone = true;
      client.destroy();
      target.end();
    };
    client.on('data', (chunk: Buffer) => {
      if (held || cutDone) return;
      const limit = cuts[made];
      sent += chunk.length;
      if (limit !== undefined && sent > limit) {
        made++;
        target.write(chunk.subarray(0, chunk.length - (sent - limit)));
        if (answered) {
          cut();
        } else {
          held = true;
          client.pause();
        }
        return;
      }
      target.write(chunk);
    });
    target.on('data', (chunk: Buffer) => {
      answered = true;
      if (held) {
        // The 104 goes to the client first (it names the resource to resume), then the cut.
        held = false;
        client.write(chunk, () => cut());
        return;
      }
      client.write(chunk);
    });
    client.on('end', () => target.end());
    target.on('end', () => client.end());
    target.on('close', () => client.destroy());
  });
  await listenAbstract(server, name);
  return server;
}

describe('Client.put({ resumable: true })', () => {
  let root: string;
  let gateway: Gateway;
  let files: string;
  const socket = uniqueName('resume-client');

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ng-resume-client-'));
    files = mkdtempSync(join(tmpdir(), 'ng-resume-local-'));
    gateway = createGateway({ socket, root, writable: true, logLevel: false });
    await gateway.listen();
  });
  afterAll(async () => {
    await gateway.close();
    rmSync(root, { recursive: true, force: true });
    rmSync(files, { recursive: true, force: true });
  });

  it('a connection cut twice mid-body resumes from the offset HEAD tells; the file arrives byte-exact', async () => {
    const data = randomBytes(12 * MiB);
    const local = join(files, 'cut.bin');
    writeFileSync(local, data);
    const proxyName = uniqueName('resume-proxy');
    const proxy = await cuttingProxy(proxyName, socket, [3 * MiB, 2 * MiB]);
    const client = new Client({ socket: proxyName });
    const resumed: number[] = [];
    const progress: number[] = [];
    try {
      const result = await client.put(local, '/out/cut.bin', {
        resumable: true,
        onResume: (offset) => resumed.push(offset),
        onProgress: (done) => progress.push(done),
      });
      expect(result).toMatchObject({ path: '/out/cut.bin', size: data.length, created: true });
    } finally {
      await client.close();
      proxy.close();
    }
    expect(sha256(readFileSync(join(root, 'out/cut.bin')))).toBe(sha256(data));
    // Each cut led to one resumption from where the server had got to, never from zero.
    expect(resumed).toHaveLength(2);
    expect(resumed[0]).toBeGreaterThan(0);
    expect(resumed[1]).toBeGreaterThan(resumed[0]!);
    // The progress went on from each resumed offset.
    expect(progress.at(-1)).toBe(data.length);
    expect(leftovers(root)).toEqual([]);
  });

  it('a small or unbroken resumable put is one request, the same result as a plain one', async () => {
    const local = join(files, 'small.txt');
    writeFileSync(local, 'small');
    const client = new Client({ socket });
    try {
      const resumed: number[] = [];
      const result = await client.put(local, 'small.txt', {
        resumable: true,
        onResume: (o) => resumed.push(o),
      });
      expect(result).toMatchObject({ path: '/small.txt', size: 5, created: true });
      expect(resumed).toEqual([]);
      await expect(
        client.put(local, 'small.txt', { resumable: true, noClobber: true }),
      ).rejects.toMatchObject({
        statusCode: 412,
      });
    } finally {
      await client.close();
    }
    expect(readFileSync(join(root, 'small.txt'), 'utf8')).toBe('small');
  });
});

describe('nullgate put of 64 MiB and more', () => {
  let root: string;
  let files: string;
  const running: Served[] = [];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ng-resume-cli-'));
    files = mkdtempSync(join(tmpdir(), 'ng-resume-cli-local-'));
  });
  afterAll(async () => {
    for (const s of running) await s.stop('SIGKILL');
    rmSync(root, { recursive: true, force: true });
    rmSync(files, { recursive: true, force: true });
  });

  it('goes on after the server is killed and started again (--wait), byte-exact, nothing left', async () => {
    const data = randomBytes(80 * MiB);
    const local = join(files, 'image.bin');
    writeFileSync(local, data);
    const name = uniqueName('resume-cli');
    const first = await startServe(['--socket', name, '--root', root, '--writable', '--body-min-rate', '0']);
    running.push(first);
    const put = runCli(['put', '--socket', name, '--wait', '30', local, '/images/image.bin'], {
      timeoutMs: 120_000,
    });
    // Killed once part of the body is on disk.
    const partOnDisk = () => {
      const dir = join(root, UPLOADS_DIR);
      if (!existsSync(dir)) return false;
      return readdirSync(dir).some((n) => n.endsWith('.part') && statSync(join(dir, n)).size >= 8 * MiB);
    };
    const end = Date.now() + 60_000;
    while (!partOnDisk()) {
      if (Date.now() > end) throw new Error('the upload never reached 8 MiB on disk');
      await new Promise((r) => setTimeout(r, 10));
    }
    await first.stop('SIGKILL');
    running.push(await startServe(['--socket', name, '--root', root, '--writable']));
    const result = await put;
    expect({ code: result.code, stderr: result.stderr }).toMatchObject({
      code: 0,
      stderr: expect.stringMatching(/resuming at [\d.]+ MiB of 80\.0 MiB/),
    });
    expect(sha256(readFileSync(join(root, 'images/image.bin')))).toBe(sha256(data));
    expect(leftovers(root)).toEqual([]);
  }, 180_000);

  it('-s keeps it quiet', async () => {
    const name = uniqueName('resume-cli-s');
    running.push(await startServe(['--socket', name, '--root', root, '--writable']));
    const local = join(files, 'quiet.bin');
    writeFileSync(local, randomBytes(64 * MiB));
    const result = await runCli(['put', '-s', '--socket', name, local, '/quiet.bin'], { timeoutMs: 60_000 });
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(statSync(join(root, 'quiet.bin')).size).toBe(64 * MiB);
  }, 90_000);
});
