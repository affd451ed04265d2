/**
 * What `get -o` and `put` keep of a single file (CONTRACT.md "Single files too"), as cp and
 * scp do: `mode`, the permission bits (cp: less the umask, without set-id bits); `all` (`-p`),
 * also the mtime and, as root, the owner and set-id bits (cp -p, scp -p; the local side of the
 * rule of who may set what, core/set-rule.ts, with the local user writing for itself).
 */
import {
  GID_HEADER,
  MODE_HEADER,
  MTIME_HEADER,
  UID_HEADER,
  formatMode,
  formatMtime,
} from '../core/file-meta.js';
import { modeUnder, ownerUnder, processIds, setRule } from '../core/set-rule.js';
import { fsPath } from '../core/name-bytes.js';
import * as fsa from './fs-calls.js';

export type Keep = 'none' | 'mode' | 'all';

export interface RemoteMeta {
  readonly mode: number | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly mtimeNs: bigint | undefined;
}

/** The umask, read without changing it for longer than the call (process.umask() with no argument is deprecated). */
function currentUmask(): number {
  const old = process.umask(0o022);
  process.umask(old);
  return old;
}

/** chown, chmod and utimes of a file by name, or of an open one (an anonymous download: local-file.ts). */
function fileCalls(file: string | number) {
  if (typeof file === 'number') {
    return {
      chown: (uid: number, gid: number) => fsa.fchown(file, uid, gid),
      chmod: (mode: number) => fsa.fchmod(file, mode),
      utimes: (atime: number, mtime: number) => fsa.futimes(file, atime, mtime),
    };
  }
  const name = fsPath(file);
  return {
    chown: (uid: number, gid: number) => fsa.chown(name, uid, gid),
    chmod: (mode: number) => fsa.chmod(name, mode),
    utimes: (atime: number, mtime: number) => fsa.utimes(name, atime, mtime),
  };
}

/**
 * Applies what `keep` asks of a downloaded file's metadata to `file`, a name or an open fd (owner
 * first: chown clears set-id bits).
 */
export async function keepLocally(file: string | number, meta: RemoteMeta, keep: Keep): Promise<void> {
  if (keep === 'none') return;
  const calls = fileCalls(file);
  if (keep === 'all') {
    const rule = setRule(processIds(), processIds());
    if (meta.uid !== undefined && meta.gid !== undefined) {
      const owner = ownerUnder(rule, { uid: meta.uid, gid: meta.gid });
      if (owner !== undefined) await calls.chown(owner.uid, owner.gid);
    }
    if (meta.mode !== undefined) await calls.chmod(modeUnder(rule, meta.mode));
    if (meta.mtimeNs !== undefined) {
      // Node's utimes takes seconds as a double and sets microseconds: not every nanosecond.
      const NS = 1_000_000_000n;
      const mtime = Number(meta.mtimeNs / NS) + Number(meta.mtimeNs % NS) / 1e9;
      await calls.utimes(Date.now() / 1000, mtime);
    }
    return;
  }
  if (meta.mode !== undefined) await calls.chmod(meta.mode & 0o777 & ~currentUmask());
}

/** A local file's metadata, from a bigint stat (`{ bigint: true }`: the mtime to the nanosecond). */
export interface LocalMeta {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtimeNs: bigint;
}

export function localMeta(st: import('node:fs').BigIntStats): LocalMeta {
  return { mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs };
}

/** The headers that tell the server what to keep of a local file (see PUT in docs/api.md). */
export function keepHeaders(st: LocalMeta, keep: Keep): Record<string, string> {
  if (keep === 'none') return {};
  const all = keep === 'all';
  // cp without -p does not keep set-id bits; with -p the server's rule decides.
  const headers: Record<string, string> = { [MODE_HEADER]: formatMode(all ? st.mode : st.mode & 0o1777) };
  if (!all) return headers;
  headers[MTIME_HEADER] = formatMtime(st.mtimeNs);
  // Owners are numeric and only root can give files away: as cp -p, only as root.
  if (processIds().uid === 0) {
    headers[UID_HEADER] = String(st.uid);
    headers[GID_HEADER] = String(st.gid);
  }
  return headers;
}
