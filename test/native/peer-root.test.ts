/**
 * native.peerRoot: the root directory of the process on the other end of a connection, found
 * through its pidfd (SO_PEERPIDFD), for --export (one server, many chroots).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { listenAbstract } from '../../gateway/listen.js';
import { native, type PeerRoot } from '../../native/binding.js';
import { itNeeds } from '../helpers/requirements.js';
import { connectSocket, uniqueName } from '../helpers/sockets.js';

const servers: Server[] = [];
const children: ChildProcess[] = [];
const work = mkdtempSync(path.join(tmpdir(), 'ng-peer-root-'));
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function fdOf(socket: Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

/** A server that hands each accepted socket to `onPeer` and waits for the test to finish. */
async function serve(onPeer: (socket: Socket) => void, pauseOnConnect = false): Promise<string> {
  const address = uniqueName('root');
  const server = createServer({ pauseOnConnect }, onPeer);
  servers.push(server);
  await listenAbstract(server, address);
  return address;
}

function rootOf(dir: string): { dev: bigint; ino: bigint } {
  const st = statSync(dir, { bigint: true });
  return { dev: st.dev, ino: st.ino };
}

/** Python as the peer: connect, then (as root) chroot into `dir`, then wait or exit. */
function pythonPeer(address: string, script: string): ChildProcess {
  const child = spawn('python3', ['-c', script, address.slice(1)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

describe('native.peerRoot', () => {
  it('a peer in this process: its root is /, its pid ours, found through SO_PEERPIDFD', async () => {
    let resolvePeer: (r: PeerRoot | number) => void;
    const peer = new Promise<PeerRoot | number>((r) => (resolvePeer = r));
    const address = await serve((socket) => {
      resolvePeer(native.peerRoot(fdOf(socket)));
      socket.destroy();
    });
    const client = connectSocket(address);
    client.on('error', () => undefined);
    const root = (await peer) as PeerRoot;
    client.destroy();
    expect(root).toMatchObject({ pid: process.pid, viaPidfd: true, ...rootOf('/') });
  });

  itNeeds(
    ['root', 'python3'],
    'a peer that chrooted after connecting: its root is that directory',
    async () => {
      const jail = mkdtempSync(path.join(work, 'jail-'));
      let resolvePeer: (r: PeerRoot | number) => void;
      const peer = new Promise<PeerRoot | number>((r) => (resolvePeer = r));
      const address = await serve((socket) => {
        // Ask once the peer says it is inside (it writes one byte after chroot).
        socket.once('data', () => {
          resolvePeer(native.peerRoot(fdOf(socket)));
          socket.destroy();
        });
      });
      const child = pythonPeer(
        address,
        `import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect('\\0' + sys.argv[1])
os.chroot(${JSON.stringify(jail)})
s.send(b'x')
time.sleep(20)`,
      );
      const root = (await peer) as PeerRoot;
      expect(root).toMatchObject({ pid: child.pid, ...rootOf(jail) });
    },
  );

  itNeeds(['python3'], 'a peer that has exited is never matched to anything (ESRCH)', async () => {
    let resolvePeer: (r: PeerRoot | number) => void;
    const peer = new Promise<PeerRoot | number>((r) => (resolvePeer = r));
    let accepted: Socket | undefined;
    let exited = false;
    const tryNow = (): void => {
      if (accepted && exited) {
        resolvePeer(native.peerRoot(fdOf(accepted)));
        accepted.destroy();
      }
    };
    const address = await serve((socket) => {
      socket.on('error', () => undefined);
      accepted = socket;
      tryNow();
    }, true);
    const child = pythonPeer(
      address,
      `import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect('\\0' + sys.argv[1])
import os
os._exit(0)`,
    );
    child.once('exit', () => {
      exited = true;
      tryNow();
    });
    const result = await peer;
    expect(result).toBe(-3 /* ESRCH */);
  });
});
