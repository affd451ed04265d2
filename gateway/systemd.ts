/**
 * systemd integration: socket activation (sd_listen_fds(3)) and readiness (sd_notify(3)).
 * NOTIFY_SOCKET is often an abstract name written `@name`, with raw bytes (no escapes); it is
 * sent with the native exact-length code, since Node has no datagram unix sockets at all.
 */
import type { Address } from '../core/address.js';
import { native, systemError } from '../native/binding.js';
import { ngError } from '../core/errors.js';

/** The first socket systemd passes (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/** What systemd passed (sd_listen_fds(3)): `count` sockets from fd 3 on, with their names. */
export interface ListenFds {
  /** 0 when this process was not socket-activated. */
  readonly count: number;
  /** Each socket's FileDescriptorName= (LISTEN_FDNAMES), '' where none was given. */
  readonly names: readonly string[];
  /** Why LISTEN_FDS was set but not taken: it was not meant for this process. */
  readonly ignored?: string;
}

/**
 * Reads LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES as sd_listen_fds_with_names(3) does: the sockets
 * are ours only when LISTEN_PID is our pid (a missing LISTEN_PID is not ours either: the
 * variables may have been inherited from an activated parent). Malformed values are an error
 * naming what was passed.
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): ListenFds {
  const fds = env.LISTEN_FDS;
  if (fds === undefined || fds === '') return { count: 0, names: [] };
  if (env.LISTEN_PID === undefined || env.LISTEN_PID === '')
    return { count: 0, names: [], ignored: `LISTEN_FDS=${fds} is set without LISTEN_PID` };
  if (env.LISTEN_PID !== String(pid))
    return { count: 0, names: [], ignored: `LISTEN_PID=${env.LISTEN_PID} is not this process (${pid})` };
  if (!/^\d+$/.test(fds) || Number(fds) < 1) {
    throw ngError('NG_ERR_SOCKET_ACTIVATION', `LISTEN_FDS=${fds} is not a positive number of sockets`);
  }
  const count = Number(fds);
  const given = env.LISTEN_FDNAMES;
  const names = given === undefined || given === '' ? [] : given.split(':');
  if (names.length > 0 && names.length !== count) {
    throw ngError(
      'NG_ERR_SOCKET_ACTIVATION',
      `LISTEN_FDNAMES=${given} names ${names.length} sockets, but LISTEN_FDS=${fds}`,
    );
  }
  return { count, names: Array.from({ length: count }, (_, i) => names[i] ?? '') };
}

/**
 * listenFds(), then unsets the three variables, as sd_listen_fds(unset_environment=1) does,
 * so no child (a spawned helper) takes the sockets for its own.
 */
export function takeListenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): ListenFds {
  try {
    return listenFds(env, pid);
  } finally {
    forgetActivation(env);
  }
}

export interface ActivatedSocket {
  readonly address: Address;
  /** Its FileDescriptorName= ('' when none). */
  readonly name: string;
}

/**
 * The socket to serve when no --socket was given: systemd's only one. nullgate serves one
 * socket, so with several it is an error saying how to choose (`--socket fd:N`).
 */
export function activatedSocket(fds: ListenFds): ActivatedSocket | undefined {
  if (fds.count === 0) return undefined;
  if (fds.count > 1) {
    const list = fds.names
      .map((name, i) => `fd:${LISTEN_FDS_START + i}${name ? ` "${name}"` : ''}`)
      .join(', ');
    throw ngError(
      'NG_ERR_SOCKET_ACTIVATION',
      `systemd passed ${fds.count} sockets (${list}); nullgate serves one: choose it with --socket fd:N`,
    );
  }
  return { address: { kind: 'fd', fd: LISTEN_FDS_START }, name: fds.names[0] ?? '' };
}

/** The FileDescriptorName= systemd gave fd `fd`, if it passed that fd. */
export function listenFdName(fds: ListenFds, fd: number): string | undefined {
  const i = fd - LISTEN_FDS_START;
  return i >= 0 && i < fds.count ? fds.names[i] : undefined;
}

/** Don't let a child (e.g. a spawned helper) think the sockets are its own (sd_listen_fds unset_environment). */
export function forgetActivation(env: NodeJS.ProcessEnv = process.env): void {
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
}

/** sun_path bytes for NOTIFY_SOCKET: '@' means the abstract namespace, the rest is taken as is. */
export function notifySunPath(text: string): Buffer {
  if (text.startsWith('@')) return Buffer.concat([Buffer.of(0), Buffer.from(text.slice(1), 'utf8')]);
  return Buffer.from(text, 'utf8');
}

/** Sends `state` (e.g. "READY=1") to NOTIFY_SOCKET if set; returns whether it was sent. */
export function notify(state: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const target = env.NOTIFY_SOCKET;
  if (!target) return false;
  const rc = native.sendDatagram(notifySunPath(target), Buffer.from(state));
  if (rc < 0) throw systemError(rc, 'sendto', { address: target });
  return true;
}
