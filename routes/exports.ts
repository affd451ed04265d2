/**
 * One server, many chroots (`--export CHROOT_DIR=ROOT_DIR[:rw]`): which tree a connection gets.
 *
 * For each connection the kernel tells the peer's root directory (native.peerRoot: its
 * /proc/PID/root reached through the connection's pidfd), compared by device and inode, never by
 * path string, with each CHROOT_DIR. That lookup runs once per connection (cached on the socket);
 * the match decides the root and writability of /files and /archive for every request on it.
 * A peer whose root cannot be determined (it exited, another pid namespace, no right to read its
 * /proc entry) is treated as outside every export.
 */
import { statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { ngError } from '../core/errors.js';
import { native } from '../native/binding.js';
import { socketFd } from '../native/node-internals.js';

/** One `--export`: peers whose root is `chroot` get `root` as their tree. */
export interface ExportSpec {
  /** The chroot directory as the server sees it (symlinks and bind mounts resolve to the same inode). */
  readonly chroot: string;
  /** The tree its peers get under /files and /archive. */
  readonly root: string;
  /** Writes allowed (default false). */
  readonly writable?: boolean | undefined;
}

/** `dev:ino` of a directory: how a peer's root is compared. */
export type DirKey = string;

/** The identity of `dir` (following symlinks, as chroot(2) does); a usage error when it is not a directory. */
export function dirKey(dir: string, what = 'export'): DirKey {
  let st;
  try {
    st = statSync(dir, { bigint: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      code === 'ENOENT' ? `${what}: no such directory: ${dir}` : `${what}: cannot use ${dir} (${code})`,
      err,
    );
  }
  if (!st.isDirectory()) throw ngError('NG_ERR_INVALID_OPTION', `${what}: not a directory: ${dir}`);
  return `${st.dev}:${st.ino}`;
}

const peerRoots = new WeakMap<Socket, DirKey | null>();

/**
 * The connection's peer root as a DirKey, or null when it cannot be determined. Asked of the
 * kernel once per connection; later requests on it read the answer kept with the socket.
 */
export function peerRootKey(socket: Socket | null | undefined): DirKey | null {
  if (!socket) return null;
  let key = peerRoots.get(socket);
  if (key === undefined) {
    // No fd: not a real socket (Fastify's inject()), or one already closed: no peer to ask.
    const fd = socketFd(socket);
    const result = fd < 0 ? -1 : native.peerRoot(fd);
    key = typeof result === 'number' ? null : `${result.dev}:${result.ino}`;
    peerRoots.set(socket, key);
  }
  return key;
}

/** What a connection is matched against: each export's chroot identity and what it carries. */
export class ExportTable<T> {
  readonly #byKey = new Map<DirKey, { readonly chroot: string; readonly value: T }>();

  /** `entries`: each export's CHROOT_DIR and the value its peers get. */
  constructor(entries: readonly { readonly chroot: string; readonly value: T }[]) {
    for (const entry of entries) {
      const key = dirKey(entry.chroot, `--export ${entry.chroot}`);
      const other = this.#byKey.get(key);
      if (other) {
        throw ngError(
          'NG_ERR_INVALID_OPTION',
          `--export: ${entry.chroot} and ${other.chroot} are the same directory`,
        );
      }
      this.#byKey.set(key, entry);
    }
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** The export whose chroot is the connection's root, if any. */
  match(socket: Socket | null | undefined): { readonly chroot: string; readonly value: T } | undefined {
    const key = peerRootKey(socket);
    return key === null ? undefined : this.#byKey.get(key);
  }
}

/** 403 for a peer outside every export when the server has no `--root` for others. */
export function noExport(): Error {
  return ngError(
    'NG_ERR_NO_EXPORT',
    'this process is not inside any exported chroot (--export), and the server serves no tree to others',
  );
}

/**
 * `CHROOT_DIR=ROOT_DIR[:rw]` (the `:ro` suffix is accepted too) as an ExportSpec. The first `=`
 * splits; a directory name with `=` in CHROOT_DIR cannot be written (use a symlink to it).
 */
export function parseExport(text: string): ExportSpec {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) {
    throw ngError('NG_ERR_INVALID_OPTION', `--export takes CHROOT_DIR=ROOT_DIR[:rw], got "${text}"`);
  }
  const chroot = text.slice(0, eq);
  let root = text.slice(eq + 1);
  let writable = false;
  if (root.endsWith(':rw')) {
    writable = true;
    root = root.slice(0, -3);
  } else if (root.endsWith(':ro')) root = root.slice(0, -3);
  if (root === '') throw ngError('NG_ERR_INVALID_OPTION', `--export: empty ROOT_DIR in "${text}"`);
  return { chroot, root, writable };
}
