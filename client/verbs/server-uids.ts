/**
 * `--server-uid N` (repeatable) and `NULLGATE_SERVER_UID=N[,N…]`: the uids, besides root and the
 * client's own, whose server a client verb talks to (CONTRACT.md, "The client checks the server
 * too"). Numeric only: inside a chroot the user names in /etc/passwd are not the host's.
 */
import { usageError } from '../../core/errors.js';
import type { Env } from './common.js';

/** (uid_t)-1 means "no uid" to the kernel; no process has it. */
const MAX_UID = 0xfffffffe;

function parseUid(text: string, from: string): number {
  const uid = /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(uid <= MAX_UID)) throw usageError(`${from} takes a numeric uid (0-${MAX_UID}), got "${text}"`);
  return uid;
}

/** The flags when given (they replace the variable, as --socket replaces NULLGATE_SOCKET), else the variable. */
export function parseServerUids(flags: readonly string[] | undefined, env: Env): number[] {
  if (flags !== undefined && flags.length > 0) return flags.map((f) => parseUid(f.trim(), '--server-uid'));
  const text = env.NULLGATE_SERVER_UID;
  if (text === undefined || text.trim() === '') return [];
  return text.split(',').map((part) => parseUid(part.trim(), 'NULLGATE_SERVER_UID'));
}
