/**
 * PUT /archive against a real `nullgate serve`: a server killed with SIGKILL mid-upload leaves
 * nothing once restarted (the staging directory sits at the top of the root, where the startup
 * sweep looks), and symlinks are extracted through the beneath-root layer alone — also by a
 * server that has no /proc to lean on.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TMP_PREFIX } from '../../native/beneath.js';
import { BIN, type Served, startServe } from '../helpers/cli.js';
import { itNeeds } from '../helpers/requirements.js';
import { connectSocket, rawGet, rawRequest, uniqueName } from '../helpers/sockets.js';
import { tree } from '../helpers/files.js';
import { packEntries } from '../helpers/tar.js';

const MiB = 1024 * 1024;

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Size of the biggest file under the root-level staging directories, or -1 if there is none. */
function stagedBytes(root: string): number {
  let most = -1;
  for (const name of readdirSync(root)) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    most = Math.max(most, 0);
    for (const rel of readdirSync(join(root, name), { recursive: true }) as string[]) {
      const st = statSync(join(root, name, rel), { throwIfNoEntry: false });
      if (st?.isFile()) most = Math.max(most, st.size);
    }
  }
  return most;
}

function writeAll(socket: Socket, chunk: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.write(chunk)) resolve();
    else {
      socket.once('drain', resolve);
      socket.once('close', () => reject(new Error('socket closed')));
    }
  });
}

let base: string;
const running: Served[] = [];

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'ng-archive-crash-'));
});
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

describe('a server killed with SIGKILL during PUT /archive', () => {
  it('leaves nothing after a restart: no staging directory, the target as it was', async () => {
    const root = join(base, 'root');
    mkdirSync(join(root, 'target/sub'), { recursive: true });
    writeFileSync(join(root, 'target/keep.txt'), 'keep');
    writeFileSync(join(root, 'target/sub/old'), 'old');
    const treeBefore = tree(root);

    const first = uniqueName('archive-kill1');
    const served = await startServe(['--socket', first, '--root', root, '--writable']);
    running.push(served);
    const listingBefore = (await rawGet(first, '/files/target/')).body.toString();

    // One 64 MiB member, of which 4 MiB are sent: the server is mid-extraction when killed.
    const socket = connectSocket(first);
    socket.on('error', () => undefined);
    await writeAll(
      socket,
      'PUT /archive/target HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n',
    );
    const pack = tar.pack();
    const member = pack.entry({ name: 'sub/big', size: 64 * MiB });
    const sending = (async () => {
      for await (const chunk of pack as AsyncIterable<Buffer>) {
        if (socket.destroyed) return;
        await writeAll(
          socket,
          Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
        );
      }
    })().catch(() => undefined);
    for (let i = 0; i < 64; i++) member.write(Buffer.alloc(64 * 1024, 0x7a));
    await until('4 MiB staged at the top of the root', () => stagedBytes(root) >= 4 * MiB - 64 * 1024);
    // The staging directory is at the root, not inside the target.
    expect(readdirSync(join(root, 'target')).filter((n) => n.startsWith(TMP_PREFIX))).toEqual([]);
    served.child.kill('SIGKILL');
    await served.stop();
    socket.destroy();
    member.destroy();
    pack.destroy();
    await sending;
    expect(stagedBytes(root)).toBeGreaterThan(0); // what the kill left behind

    const second = uniqueName('archive-kill2');
    const restarted = await startServe(['--socket', second, '--root', root, '--writable']);
    running.push(restarted);
    expect(tree(root)).toEqual(treeBefore);
    expect(tree(root).some((n) => n.includes(TMP_PREFIX))).toBe(false);
    expect((await rawGet(second, '/files/target/')).body.toString()).toBe(listingBefore);
    expect(readFileSync(join(root, 'target/keep.txt'), 'utf8')).toBe('keep');
  });
});

/** `nullgate serve` in a mount namespace whose /proc is unmounted. */
function serveWithoutProc(args: string[]): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'unshare',
      ['-m', 'sh', '-c', 'umount -l /proc && exec "$@"', 'sh', process.execPath, BIN, 'serve', ...args],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    const exited = new Promise<void>((res) => child.on('exit', () => res()));
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    };
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`serve did not start: ${err}`));
    }, 15_000);
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      if (err.includes('nullgate: serving')) {
        clearTimeout(timer);
        resolve({ child, stop });
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`serve exited: ${err}`));
    });
  });
}

describe('symlinks in PUT /archive', () => {
  itNeeds(
    ['root', 'unshare'],
    'are made with symlinkat and lutimes beneath the root, with no /proc (symlink and mtime kept)',
    async () => {
      const root = join(base, 'root');
      mkdirSync(root);
      const name = uniqueName('archive-noproc');
      const server = await serveWithoutProc([
        '--socket',
        name,
        '--root',
        root,
        '--writable',
        '--log-level',
        'warn',
      ]);
      try {
        const mtime = new Date('2021-06-01T12:00:00Z');
        const body = await packEntries([
          { header: { name: 'dir', type: 'directory' } },
          { header: { name: 'dir/file' }, body: 'content' },
          { header: { name: 'dir/link', type: 'symlink', linkname: 'file', mtime } },
        ]);
        const res = await rawRequest(
          name,
          Buffer.concat([
            Buffer.from(
              `PUT /archive/t HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`,
            ),
            body,
          ]),
        );
        expect(res.status, res.body.toString()).toBe(201);
        expect(JSON.parse(res.body.toString())).toMatchObject({ files: 1, dirs: 1, symlinks: 1, bytes: 7 });
        expect(readlinkSync(join(root, 't/dir/link'))).toBe('file');
        expect(lstatSync(join(root, 't/dir/link')).mtimeMs).toBe(mtime.getTime());
      } finally {
        await server.stop();
      }
    },
  );
});
