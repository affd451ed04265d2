/**
 * systemd integration: socket activation (sd_listen_fds(3)) and readiness (sd_notify(3)).
 * NOTIFY_SOCKET is often an abstract name written `@name`, with raw bytes (no escapes); it is
 * sent with the native exact-length code, since Node has no datagram unix sockets at all.
 */
import type { Address } from './address.js';
import { native, systemError } from './binding.js';
import { ngError } from './errors.js';

/** The first socket systemd passes (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/**
 * The inherited socket when this process was socket-activated (LISTEN_PID names it), else
 * undefined. nullgate serves one socket: more than one is an error naming what was passed.
 */
export function activatedSocket(
  env: NodeJS.ProcessEnv = process.env,
  pid = process.pid,
): Address | undefined {
  const fds = env.LISTEN_FDS;
  if (fds === undefined || fds === '') return undefined;
  if (env.LISTEN_PID !== undefined && env.LISTEN_PID !== String(pid)) return undefined;
  if (!/^\d+$/.test(fds) || Number(fds) < 1) {
    throw ngError('NG_ERR_SOCKET_ACTIVATION', `LISTEN_FDS=${fds} is not a positive number of sockets`);
  }
  if (fds !== '1') {
    const names = env.LISTEN_FDNAMES ? ` (${env.LISTEN_FDNAMES})` : '';
    throw ngError(
      'NG_ERR_SOCKET_ACTIVATION',
      `LISTEN_FDS=${fds}${names}: nullgate serves exactly one socket`,
    );
  }
  return { kind: 'fd', fd: LISTEN_FDS_START };
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
