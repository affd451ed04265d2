/**
 * Puts any net.Server (http.Server, Fastify's server) on an exact-length socket address, and
 * checks every accepted connection's peer credentials before the server sees it.
 *
 * The listening fd is made natively (gateway/socket.ts) and handed to `server.listen({ fd })`:
 * from then on Node owns it and closing the server closes it (which is also what removes an
 * abstract name from the kernel).
 */
import { unlinkSync, lstatSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { type Address, formatAddress, parseAddress } from './address.js';
import { native, type PeerCredentials } from './binding.js';
import { errorBody } from './errors.js';
import { createPeerPolicy, type PeerPolicy } from './peer-policy.js';
import { type BoundSocket, bindListener, bindListenerInNetns, DEFAULT_BACKLOG } from './socket.js';

export interface DeniedPeer extends PeerCredentials {
  readonly reason: string;
}

export interface ListenOptions {
  /** Who may connect; defaults to the server's own uid and uid 0. */
  readonly peerPolicy?: PeerPolicy | undefined;
  readonly backlog?: number | undefined;
  /** Bind inside this network namespace (a /proc/PID/ns/net or /run/netns/NAME file). */
  readonly netns?: string | undefined;
  /** Told about each refused connection (the gateway logs it). */
  readonly onPeerDenied?: ((peer: DeniedPeer) => void) | undefined;
}

const peers = new WeakMap<Socket, PeerCredentials>();
const gated = new WeakSet<Server>();

/** The credentials the kernel reported for an accepted connection (undefined if not gated). */
export function peerOf(socket: Socket): PeerCredentials | undefined {
  return peers.get(socket);
}

interface HandleWithFd {
  readonly fd?: number;
}

function socketFd(socket: Socket): number {
  // net.Socket keeps its libuv handle on `_handle`; for pipes it exposes the fd (Unix only).
  const handle = (socket as unknown as { _handle?: HandleWithFd | null })._handle;
  return handle?.fd ?? -1;
}

const DENIED_CLOSE_MS = 2000;

function deny(socket: Socket, peer: PeerCredentials | undefined, reason: string): void {
  const body = JSON.stringify(
    errorBody(
      403,
      'NG_ERR_PEER_DENIED',
      `peer not allowed: ${peer ? `uid ${peer.uid} gid ${peer.gid}` : reason}`,
    ),
  );
  // The HTTP parser is never attached to this socket, so no request is read: the answer is
  // written raw, then the connection is closed.
  socket.end(
    `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  socket.on('error', () => socket.destroy());
  socket.setTimeout(DENIED_CLOSE_MS, () => socket.destroy());
}

/**
 * Replaces the server's 'connection' listeners (http.Server's parser set-up among them) with a
 * gate that calls them only for allowed peers. Idempotent per server.
 */
export function installPeerGate(
  server: Server,
  policy: PeerPolicy,
  onDenied?: (peer: DeniedPeer) => void,
): void {
  if (gated.has(server)) return;
  gated.add(server);
  const downstream = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    const cred = native.peerCred(socketFd(socket));
    if (typeof cred === 'number') {
      onDenied?.({ pid: 0, uid: -1, gid: -1, reason: 'no peer credentials' });
      deny(socket, undefined, 'no peer credentials');
      return;
    }
    if (!policy.allows(cred)) {
      onDenied?.({ ...cred, reason: 'uid/gid not allowed' });
      deny(socket, cred, 'uid/gid not allowed');
      return;
    }
    peers.set(socket, cred);
    for (const listener of downstream) listener.call(server, socket);
  });
}

/**
 * Listens `server` on `address` (text in the contract's syntax, or a parsed Address) and
 * resolves with what was bound. The peer gate is installed first, so no connection is ever
 * served unchecked.
 */
export async function listenAbstract(
  server: Server,
  address: string | Address,
  options: ListenOptions = {},
): Promise<BoundSocket> {
  const parsed = typeof address === 'string' ? parseAddress(address) : address;
  // Clients that half-close after sending (shutdown(SHUT_WR), as `socat` and many scripts do)
  // must still get their response; Node's http server would otherwise abort the request.
  if ('httpAllowHalfOpen' in server) (server as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  installPeerGate(server, options.peerPolicy ?? createPeerPolicy(), options.onPeerDenied);
  const backlog = options.backlog ?? DEFAULT_BACKLOG;
  const bound =
    options.netns === undefined
      ? bindListener(parsed, backlog)
      : bindListenerInNetns(parsed, options.netns, backlog);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd: bound.fd }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    native.close(bound.fd);
    throw err;
  }
  const created = bound.createdPath;
  if (created) {
    server.once('close', () => {
      // Unlink only the socket file we made, not one a later server put in its place.
      const st = lstatSync(created.path, { throwIfNoEntry: false });
      if (st?.isSocket() && st.ino === created.ino && st.dev === created.dev) unlinkSync(created.path);
    });
  }
  return bound;
}

export { formatAddress };
