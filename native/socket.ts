/**
 * Native exact-length sockets, composed from the binding's small primitives: a listening fd for
 * an Address, and a connected fd for the client. Every failure path closes what it opened; a
 * returned fd belongs to the caller (normally handed straight to a net.Server or net.Socket).
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { type Address, formatAddress, fromSunPath, toSunPath } from '../core/address.js';
import { check, native, systemError } from './binding.js';
import { ngError } from '../core/errors.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;

export interface BoundSocket {
  readonly fd: number;
  /** The address as bound: autobind resolved to the kernel's name, fd:N to what it listens on. */
  readonly address: Address;
  /** A filesystem socket this process created and should unlink when it stops. */
  readonly createdPath?: { readonly path: string; readonly ino: number; readonly dev: number };
}

/** Like `accept()` backlog in Node's net: SOMAXCONN is clamped by the kernel anyway. */
export const DEFAULT_BACKLOG = 511;

function closeQuietly(fd: number): void {
  native.close(fd);
}

/** Vets an inherited fd (socket activation): it must be a listening AF_UNIX stream socket. */
export function adoptListener(fd: number): BoundSocket {
  const info = native.sockInfo(fd);
  if (typeof info === 'number') {
    throw ngError(
      'NG_ERR_SOCKET_ACTIVATION',
      `fd:${fd} is not a usable socket`,
      systemError(info, 'getsockopt'),
    );
  }
  if (info.domain !== AF_UNIX || info.type !== SOCK_STREAM || !info.listening) {
    throw ngError('NG_ERR_SOCKET_ACTIVATION', `fd:${fd} is not a listening AF_UNIX stream socket`);
  }
  const name = check<Buffer>(native.sockName(fd), 'getsockname');
  return { fd, address: fromSunPath(name) };
}

/** True when something accepts connections on the filesystem socket `path`. */
function pathAnswers(sunPath: Buffer): boolean {
  const fd = check<number>(native.socket(), 'socket');
  try {
    const rc = native.connect(fd, sunPath);
    // EAGAIN: a listener exists, its backlog is just full.
    return rc === 0 || rc === -constants.errno.EAGAIN;
  } finally {
    closeQuietly(fd);
  }
}

function bindOnce(address: Address, sunPath: Buffer, backlog: number): number {
  const shown = formatAddress(address);
  const fd = check<number>(native.socket(), 'socket', { address: shown });
  try {
    check(native.bind(fd, sunPath), 'bind', { address: shown });
    check(native.listen(fd, backlog), 'listen', { address: shown });
    return fd;
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
}

/**
 * Like bindListener, but the socket is made inside the network namespace at `nsPath` (a
 * /proc/PID/ns/net or /run/netns/NAME file): only processes in that namespace can reach it.
 */
export function bindListenerInNetns(
  address: Address,
  nsPath: string,
  backlog = DEFAULT_BACKLOG,
): BoundSocket {
  const shown = formatAddress(address);
  if (address.kind === 'fd') {
    throw ngError('NG_ERR_INVALID_OPTION', `--netns cannot be combined with an inherited socket (${shown})`);
  }
  const rc = native.listenInNetns(nsPath, toSunPath(address), backlog);
  if (typeof rc === 'number') {
    if (address.kind !== 'autobind') return { fd: rc, address };
    try {
      return { fd: rc, address: fromSunPath(check<Buffer>(native.sockName(rc), 'getsockname')) };
    } catch (err) {
      closeQuietly(rc);
      throw err;
    }
  }
  const err = systemError(
    rc.errno,
    rc.syscall,
    rc.syscall === 'open' || rc.syscall === 'setns' ? { path: nsPath } : { address: shown },
  );
  if (rc.syscall === 'setns' && err.code === 'EPERM') {
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      `--netns ${nsPath}: entering a network namespace needs CAP_SYS_ADMIN`,
      err,
    );
  }
  if (rc.syscall === 'setns' && err.code === 'EINVAL') {
    throw ngError('NG_ERR_INVALID_OPTION', `--netns ${nsPath}: not a network namespace file`, err);
  }
  if (rc.syscall === 'open') {
    const hint =
      err.code === 'EACCES' || err.code === 'EPERM'
        ? '; entering a network namespace needs CAP_SYS_ADMIN'
        : '';
    throw ngError('NG_ERR_INVALID_OPTION', `--netns ${nsPath}: cannot open (${err.code}${hint})`, err);
  }
  throw err;
}

export function bindListener(address: Address, backlog = DEFAULT_BACKLOG): BoundSocket {
  if (address.kind === 'fd') return adoptListener(address.fd);
  const sunPath = toSunPath(address);
  let fd: number;
  try {
    fd = bindOnce(address, sunPath, backlog);
  } catch (err) {
    // A filesystem socket left behind by a dead server: replace it only if nothing answers
    // on it and it really is a socket (never unlink a regular file someone named by mistake).
    if (address.kind !== 'path' || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    const st = lstatSync(address.path, { throwIfNoEntry: false });
    if (!st?.isSocket() || pathAnswers(sunPath)) throw err;
    unlinkSync(address.path);
    fd = bindOnce(address, sunPath, backlog);
  }
  if (address.kind === 'path') {
    const st = lstatSync(address.path);
    return { fd, address, createdPath: { path: address.path, ino: st.ino, dev: st.dev } };
  }
  if (address.kind === 'autobind') {
    try {
      return { fd, address: fromSunPath(check<Buffer>(native.sockName(fd), 'getsockname')) };
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
  }
  return { fd, address };
}

/**
 * A connected, non-blocking client fd. Throws the Node-shaped connect error (ECONNREFUSED when
 * nobody listens on an abstract name, ENOENT for a missing socket file, EAGAIN for a full backlog).
 */
/**
 * A connected socket blocking, each read and write bounded by `timeoutMs` (0: unbounded; a
 * bounded call fails with EAGAIN), or non-blocking again. Throws a Node-shaped error.
 */
export function setBlocking(fd: number, blocking: boolean, timeoutMs = 0): void {
  check(native.setBlocking(fd, blocking, timeoutMs), 'fcntl');
}

export function connectFd(address: Address): number {
  const shown = formatAddress(address);
  if (address.kind !== 'abstract' && address.kind !== 'path') {
    throw ngError('NG_ERR_INVALID_OPTION', `cannot connect to ${shown}: give @name or a socket path`);
  }
  const fd = check<number>(native.socket(), 'socket', { address: shown });
  const rc = native.connect(fd, toSunPath(address));
  if (rc < 0) {
    closeQuietly(fd);
    throw systemError(rc, 'connect', { address: shown });
  }
  return fd;
}
