/**
 * Who may talk to the server. Abstract sockets have no file permissions: anyone in the network
 * namespace can connect, so every connection's SO_PEERCRED is checked against this policy
 * before a byte of its request is read (CONTRACT.md "Peer policy").
 */
import type { PeerCredentials } from '../native/binding.js';
import { ngError } from '../core/errors.js';

/** The kernel's overflow uid/gid (/proc/sys/kernel/overflowuid): an unmapped user, identity unknown. */
export const OVERFLOW_ID = 65534;

export interface PeerPolicyOptions {
  readonly allowUids?: readonly number[] | undefined;
  readonly allowGids?: readonly number[] | undefined;
  readonly allowAnyPeer?: boolean | undefined;
  /** The server's own uid (allowed by default, with uid 0). Defaults to process.getuid(). */
  readonly serverUid?: number | undefined;
}

export interface PeerPolicy {
  readonly allowAnyPeer: boolean;
  readonly uids: ReadonlySet<number>;
  readonly gids: ReadonlySet<number>;
  allows(peer: PeerCredentials): boolean;
}

function validIds(ids: readonly number[] | undefined, what: string): number[] {
  const out: number[] = [];
  for (const id of ids ?? []) {
    if (!Number.isInteger(id) || id < 0 || id > 0xfffffffe) {
      throw ngError('NG_ERR_INVALID_OPTION', `${what} must be a non-negative integer id, got ${String(id)}`);
    }
    if (id === OVERFLOW_ID) {
      throw ngError(
        'NG_ERR_INVALID_OPTION',
        `${what} ${OVERFLOW_ID} is the overflow id of unmapped users and can never be allowed`,
      );
    }
    out.push(id);
  }
  return out;
}

export function createPeerPolicy(options: PeerPolicyOptions = {}): PeerPolicy {
  const serverUid = options.serverUid ?? process.getuid?.() ?? 0;
  const uids = new Set([0, serverUid, ...validIds(options.allowUids, '--allow-uid')]);
  const gids = new Set(validIds(options.allowGids, '--allow-gid'));
  // The server's own uid may itself be the overflow id (run as nobody); it is never a peer's pass.
  uids.delete(OVERFLOW_ID);
  const allowAnyPeer = options.allowAnyPeer === true;
  return {
    allowAnyPeer,
    uids,
    gids,
    allows(peer) {
      if (peer.uid === OVERFLOW_ID) return false;
      return allowAnyPeer || uids.has(peer.uid) || gids.has(peer.gid);
    },
  };
}
