/**
 * Puts any net.Server (http.Server, Fastify's server) on an exact-length socket address, and
 * checks every accepted connection's peer credentials before the server sees it.
 *
 * The listening fd is made natively (native/socket.ts) and handed to `server.listen({ fd })`:
 * from then on Node owns it and closing the server closes it (which is also what removes an
 * abstract name from the kernel).
 */
import { unlinkSync, lstatSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import type { Server, Socket } from 'node:net';
import { type Address, formatAddress, parseAddress } from '../core/address.js';
import { native, type PeerCredentials } from '../native/binding.js';
import type { ErrorCode } from '../core/errors.js';
import { adoptConnection, inFlightResponse, listenerFd, socketFd } from '../native/node-internals.js';
import { watchLingering } from '../routes/linger.js';
import { closeWithError } from '../routes/raw-error.js';
import { createPeerPolicy, type PeerPolicy } from './peer-policy.js';
import { type BoundSocket, bindListener, bindListenerInNetns, DEFAULT_BACKLOG } from '../native/socket.js';

export interface DeniedPeer extends PeerCredentials {
  readonly reason: string;
}

export interface ListenOptions extends GateOptions {
  /** Who may connect; defaults to the server's own uid and uid 0. */
  readonly peerPolicy?: PeerPolicy | undefined;
  readonly backlog?: number | undefined;
  /** Bind inside this network namespace (a /proc/PID/ns/net or /run/netns/NAME file). */
  readonly netns?: string | undefined;
  /** Told about each refused connection (the gateway logs it). */
  readonly onPeerDenied?: ((peer: DeniedPeer) => void) | undefined;
}

export interface GateOptions {
  /**
   * Open connections from allowed peers at most; beyond it a new one is answered 429
   * NG_ERR_TOO_MANY_REQUESTS and closed (and `onDropped` told). A connection counts until it is
   * closed, also when a cut request left it closing lingering on a duplicate fd
   * (routes/linger.ts). Denied peers never count against it. Use this rather than Node's
   * `server.maxConnections`, which counts every accepted connection, so a flood of denied
   * connections would lock allowed peers out.
   */
  readonly maxConnections?: number | undefined;
  /** Told about each allowed connection refused because `maxConnections` were open. */
  readonly onDropped?: ((peer: PeerCredentials) => void) | undefined;
}

const peers = new WeakMap<Socket, PeerCredentials>();

/**
 * Per gated server: the connections it serves, those of them cut mid-request and still closing
 * on a duplicate fd (routes/linger.ts cutLingering: the served socket is gone, the connection
 * is not), and the refused ones still being answered. The connection limit counts the first two.
 */
interface GateState {
  readonly served: Set<Socket>;
  readonly lingering: Set<Socket>;
  readonly denied: Set<Socket>;
  readonly deniedPerUid: Map<number, number>;
}
const gates = new WeakMap<Server, GateState>();

/** The credentials the kernel reported for an accepted connection (undefined if not gated). */
export function peerOf(socket: Socket): PeerCredentials | undefined {
  return peers.get(socket);
}

/**
 * How long a refused connection is kept for the client to read its 403 (or 429) and close. A client that
 * does close (curl, Python) is let go at its EOF, long before; this bounds one that never does.
 */
export const DENIED_LINGER_MS = 1000;
/** Refused connections being answered at once, per uid and in all: beyond, they are cut unanswered. */
export const DENIED_PER_UID = 16;
export const DENIED_TOTAL = 256;

/** Why a connection was refused, as logged. */
export const DENY_NO_CREDENTIALS = 'no peer credentials';
export const DENY_POLICY = 'uid/gid not allowed';

/**
 * Answers a connection the server will not serve (a denied peer, one over the connection limit)
 * with `response` and closes it, within the caps per uid and in all; beyond them it is cut
 * unanswered.
 */
function refuse(
  state: GateState,
  socket: Socket,
  uid: number,
  status: number,
  code: ErrorCode,
  message: string,
): void {
  const perUid = state.deniedPerUid.get(uid) ?? 0;
  socket.on('error', () => socket.destroy());
  if (perUid >= DENIED_PER_UID || state.denied.size >= DENIED_TOTAL) {
    // A flood: every further connection costs us an fd until answered, so it gets no answer.
    socket.destroy();
    return;
  }
  state.denied.add(socket);
  state.deniedPerUid.set(uid, perUid + 1);
  // The HTTP parser is never attached to this socket, so no request is read: the answer is
  // written raw, then the connection is closed lingering (routes/linger.ts): the client's
  // request must not sit unread in our receive queue, which would turn our close into a reset.
  closeWithError(socket, status, code, message, DENIED_LINGER_MS);
  socket.once('close', () => {
    state.denied.delete(socket);
    const left = (state.deniedPerUid.get(uid) ?? 1) - 1;
    if (left > 0) state.deniedPerUid.set(uid, left);
    else state.deniedPerUid.delete(uid);
  });
}

function deny(state: GateState, socket: Socket, peer: PeerCredentials | undefined): void {
  const who = peer ? `uid ${peer.uid} gid ${peer.gid}` : DENY_NO_CREDENTIALS;
  refuse(state, socket, peer?.uid ?? -1, 403, 'NG_ERR_PEER_DENIED', `peer not allowed: ${who}`);
}

/**
 * Replaces the server's 'connection' listeners (http.Server's parser set-up among them) with a
 * gate that calls them only for allowed peers. Idempotent per server.
 */
export function installPeerGate(
  server: Server,
  policy: PeerPolicy,
  options: GateOptions & { onDenied?: ((peer: DeniedPeer) => void) | undefined } = {},
): void {
  if (gates.has(server)) return;
  const { onDenied, maxConnections = Infinity, onDropped } = options;
  const state: GateState = {
    served: new Set(),
    lingering: new Set(),
    denied: new Set(),
    deniedPerUid: new Map(),
  };
  gates.set(server, state);
  // A cut connection holds its fd, and the client its socket, until the lingering close ends:
  // it counts until then, or cutting requests on purpose would open more than the limit.
  watchLingering(server, (twin) => {
    state.lingering.add(twin);
    twin.once('close', () => state.lingering.delete(twin));
  });
  const downstream = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  let draining = false;
  server.on('connection', (socket: Socket) => {
    admit(socket);
    if (draining) return;
    draining = true;
    try {
      acceptPending(server);
    } finally {
      draining = false;
    }
  });
  function admit(socket: Socket): void {
    const cred = native.peerCred(socketFd(socket));
    if (typeof cred === 'number') {
      onDenied?.({ pid: 0, uid: -1, gid: -1, reason: DENY_NO_CREDENTIALS });
      deny(state, socket, undefined);
      return;
    }
    if (!policy.allows(cred)) {
      onDenied?.({ ...cred, reason: DENY_POLICY });
      deny(state, socket, cred);
      return;
    }
    if (state.served.size + state.lingering.size >= maxConnections) {
      onDropped?.(cred);
      const message = `${maxConnections} connections are open, the most this server takes; try again`;
      refuse(state, socket, cred.uid, 429, 'NG_ERR_TOO_MANY_REQUESTS', message);
      return;
    }
    state.served.add(socket);
    socket.on('close', () => state.served.delete(socket));
    peers.set(socket, cred);
    for (const listener of downstream) listener.call(server, socket);
  }
}

/** Connections accepted at most after each one libuv accepts (see acceptPending). */
export const ACCEPT_BATCH = 128;

/**
 * Accepts what else waits in `server`'s listen backlog, up to ACCEPT_BATCH, and emits each as
 * a 'connection' of it. libuv (1.45 and later, so Node 20 and every later Node) accepts one
 * connection per turn of the event loop, and a turn of a busy server lasts as long as it takes
 * to answer every connection that has a request: with hundreds of connections open, new ones
 * waited seconds in the backlog (clients saw EAGAIN, or a first answer seconds late) while
 * those already in were served. nginx accepts what is pending on each wake-up; so do we.
 */
function acceptPending(server: Server): void {
  for (let i = 0; i < ACCEPT_BATCH; i++) {
    // Looked up each time: a 'connection' listener may have closed the server.
    const fd = listenerFd(server);
    if (fd < 0) return;
    const accepted = native.accept(fd);
    // -EAGAIN: nothing more waits. Anything else (a connection reset while queued, EMFILE) is
    // left to libuv's own accept, which handles each of them.
    if (accepted < 0) return;
    let socket: Socket;
    try {
      socket = adoptConnection(server, accepted);
    } catch {
      native.close(accepted);
      return;
    }
    server.emit('connection', socket);
  }
}

/**
 * One step of draining a server whose listener is closed (call it until the server has closed):
 * cuts the connections no request is coming on, and lets those with a request in flight finish.
 *
 * - Refused connections still lingering over their 403 or 429 are cut.
 * - Connections cut mid-request and closing lingering (routes/linger.ts) are left to end on
 *   their own (LINGER_MS at most): their answer is on its way, and cutting them now would turn
 *   it into a reset. The server's close waits for them; cutRemaining ends them with the grace.
 * - Connections that have not sent a byte are cut: Node's closeIdleConnections() leaves them
 *   open, since it counts a fresh connection as a request in progress (so would its timers).
 * - A response not started yet is told to close its connection when done (`Connection: close`).
 * - Then closeIdleConnections() cuts keep-alive connections between requests — unless a response
 *   has ended but is still flushing: Node counts that connection as idle too and would cut the
 *   response's tail, so it waits for the next step.
 *
 * Returns how many connections are left (served, lingering and refused).
 */
export function drainStep(server: Server): number {
  const state = gates.get(server);
  if (!state) return 0;
  for (const socket of state.denied) socket.destroy();
  let flushing = false;
  for (const socket of state.served) {
    if (socket.bytesRead === 0) {
      socket.destroy();
      continue;
    }
    const res = inFlightResponse(socket);
    if (!res) continue;
    if (!res.headersSent) res.shouldKeepAlive = false;
    else if (res.writableEnded && !res.writableFinished) flushing = true;
  }
  if (!flushing && 'closeIdleConnections' in server) (server as HttpServer).closeIdleConnections();
  return state.served.size + state.lingering.size + state.denied.size;
}

/**
 * The end of a drain's grace: cuts every connection of `server` the gate knows of (served,
 * lingering and refused), so that its close completes now.
 */
export function cutRemaining(server: Server): void {
  if ('closeAllConnections' in server) (server as HttpServer).closeAllConnections();
  const state = gates.get(server);
  if (!state) return;
  for (const set of [state.served, state.lingering, state.denied]) for (const socket of set) socket.destroy();
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
  installPeerGate(server, options.peerPolicy ?? createPeerPolicy(), {
    onDenied: options.onPeerDenied,
    maxConnections: options.maxConnections,
    onDropped: options.onDropped,
  });
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
