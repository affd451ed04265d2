/**
 * The beneath-root file system: every path is resolved by the kernel beneath the served root's
 * directory fd (openat2(2) RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, native/fs_ops.h), so a
 * symlink or a `..` that leads out fails with EXDEV (ELOOP for /proc magic links), also when it
 * is swapped in while a request runs. The lexical filter here (NUL bytes, `..` above the root)
 * only gives early, clear errors; it is not the boundary.
 *
 * Paths are '/'-separated and relative to the root; a leading '/' is allowed and ignored, so
 * '/a/b', 'a/b' and 'a/./b/' are the same. Errors are Node-shaped system errors whose `path` is
 * the path as the client sees it ('/a/b'), never the host path, so `fsError()` maps them.
 *
 * Fds returned by `open`, `openTmpfile` and `openNamedTmpfile` belong to the caller, who closes
 * them (`closeFd`, or `fs.createReadStream({ fd })` and friends).
 */
import { close as closeCb, constants as fsc, fsync as fsyncCb } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { constants as osc } from 'node:os';
import { promisify } from 'node:util';

import { manifestTypeOfMode } from '../core/manifest.js';
import { compareNames } from '../core/name-bytes.js';
import { baseOf, displayPath, isTempName, joinRel, normalizeRel, parentOf } from '../core/rel-path.js';
import { check, native, systemError } from './binding.js';
import type { NativeStat, SystemError } from './binding.js';

const closeAsync = promisify(closeCb);
const fsyncAsync = promisify(fsyncCb);

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/** An entry's stat, with its type spelled out. */
export interface BeneathStat extends NativeStat {
  readonly type: EntryType;
}

/** The kinds of node `mknod` makes. */
export type NodeKind = 'fifo' | 'char' | 'block';

/** An extended attribute: its full name ('user.x', 'security.capability') and raw value. */
export interface Xattr {
  readonly name: string;
  readonly value: Buffer;
}

export interface BeneathDirent {
  readonly name: string;
  readonly type: EntryType;
}

/** Linux flags Node's fs.constants lacks (O_PATH, O_TMPFILE, RENAME_NOREPLACE, …). */
export const beneathConstants = native.fsConstants;

/** Prefix of the temporary names this layer creates, for a startup sweep. */
export const TMP_PREFIX = native.fsConstants.TMP_PREFIX;

const {
  EACCES,
  EBADF,
  EBUSY,
  EEXIST,
  EINVAL,
  EISDIR,
  ELOOP,
  ENODATA,
  ENOENT,
  ENOTDIR,
  ENOTEMPTY,
  ENXIO,
  EXDEV,
} = osc.errno;
const NODE_TYPE: Record<NodeKind, number> = { fifo: fsc.S_IFIFO, char: fsc.S_IFCHR, block: fsc.S_IFBLK };
/** Symlinks followed at most while resolving one path (the kernel's own limit, path_resolution(7)). */
const MAX_SYMLINKS = 40;
const DT_DIR = 4;
const DT_REG = 8;
const DT_LNK = 10;
const DEFAULT_DIR_BUFFER = 64 * 1024;

/** A listing's type: the manifest's (one reading of S_IFMT), with fifos, devices and sockets 'other'. */
function typeFromMode(mode: number): EntryType {
  const type = manifestTypeOfMode(mode);
  return type === 'file' || type === 'dir' || type === 'symlink' ? type : 'other';
}

function typeFromDtype(type: number): EntryType {
  if (type === DT_REG) return 'file';
  if (type === DT_DIR) return 'dir';
  if (type === DT_LNK) return 'symlink';
  return 'other';
}

function toStat(st: NativeStat): BeneathStat {
  return { type: typeFromMode(st.mode), ...st };
}

/**
 * The lexical first filter (core/rel-path.ts normalizeRel): '' for the root. A NUL byte is
 * EINVAL; a '..' above the root is EXDEV (what RESOLVE_BENEATH itself would answer).
 */
function relFor(p: string, syscall: string): string {
  if (p.includes('\0')) throw systemError(-EINVAL, syscall, { path: shownRaw(p.replaceAll('\0', '\\0')) });
  const rel = normalizeRel(p);
  if (rel === undefined) throw systemError(-EXDEV, syscall, { path: shownRaw(p) });
  return rel;
}

/** A path as the caller wrote it, shown to clients ('/' added when it has none). */
function shownRaw(p: string): string {
  return p.startsWith('/') ? p : displayPath(p);
}

export class BeneathRoot {
  #fd: number;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Opens the served root directory (O_PATH | O_DIRECTORY | O_CLOEXEC) at a host path. */
  static async open(rootPath: string): Promise<BeneathRoot> {
    // The host path is the operator's, not a client's, so it may appear in this error.
    const fd = check(await native.fsOpenRoot(rootPath), 'open', { path: rootPath });
    return new BeneathRoot(fd);
  }

  /** The root directory fd (O_PATH): borrowed, never to be closed by the caller. */
  get fd(): number {
    if (this.#fd < 0) throw systemError(-EBADF, 'beneath', { path: '/' });
    return this.#fd;
  }

  async close(): Promise<void> {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    await closeAsync(fd);
  }

  /**
   * openat2 beneath the root; `flags` are Linux O_* values (fs.constants, beneathConstants),
   * O_CLOEXEC is always added. The fd is the caller's. Opening a FIFO for reading blocks a
   * thread-pool thread until a writer comes: open with O_NONBLOCK and check the type with
   * `fstat` when the path is not trusted.
   */
  async open(rel: string, flags: number, mode = 0o666): Promise<number> {
    const r = relFor(rel, 'open');
    return check(await native.fsOpen(this.fd, r, flags, mode), 'open', { path: displayPath(r) });
  }

  /** stat, following a final symlink (beneath the root only). */
  async stat(rel: string): Promise<BeneathStat> {
    const r = relFor(rel, 'stat');
    return toStat(check(await native.fsStat(this.fd, r, true), 'stat', { path: displayPath(r) }));
  }

  /** lstat: a final symlink is reported as itself. */
  async lstat(rel: string): Promise<BeneathStat> {
    const r = relFor(rel, 'lstat');
    return toStat(check(await native.fsStat(this.fd, r, false), 'lstat', { path: displayPath(r) }));
  }

  /** fstat of any fd (for example one from `open`); `rel` names it in errors. */
  async fstat(fd: number, rel = ''): Promise<BeneathStat> {
    return toStat(check(await native.fsStat(fd, '', true), 'fstat', { path: displayPath(rel) }));
  }

  /** One level; EEXIST when the name exists, ENOENT when the parent does not. */
  async mkdir(rel: string, mode = 0o777): Promise<void> {
    const r = relFor(rel, 'mkdir');
    if (r === '') throw systemError(-EEXIST, 'mkdir', { path: '/' });
    check(await native.fsMkdir(this.fd, r, mode), 'mkdir', { path: displayPath(r) });
  }

  /**
   * mkdir -p. Resolves true when `rel` itself was created, false when it already was a
   * directory (or a symlink to one beneath the root); EEXIST when something else is in the way.
   */
  async mkdirp(rel: string, mode = 0o777): Promise<boolean> {
    const r = relFor(rel, 'mkdir');
    if (r === '') return false;
    let rc = await native.fsMkdir(this.fd, r, mode);
    if (rc === -ENOENT) {
      await this.mkdirp(parentOf(r), mode);
      rc = await native.fsMkdir(this.fd, r, mode);
    }
    if (rc === -EEXIST) {
      const st = await native.fsStat(this.fd, r, true);
      if (typeof st !== 'number' && typeFromMode(st.mode) === 'dir') return false;
    }
    check(rc, 'mkdir', { path: displayPath(r) });
    return true;
  }

  /** unlink a non-directory (a symlink itself, never its target). */
  async unlink(rel: string): Promise<void> {
    const r = relFor(rel, 'unlink');
    if (r === '') throw systemError(-EBUSY, 'unlink', { path: '/' });
    check(await native.fsUnlink(this.fd, r, false), 'unlink', { path: displayPath(r) });
  }

  async rmdir(rel: string): Promise<void> {
    const r = relFor(rel, 'rmdir');
    if (r === '') throw systemError(-EBUSY, 'rmdir', { path: '/' });
    check(await native.fsUnlink(this.fd, r, true), 'rmdir', { path: displayPath(r) });
  }

  /**
   * Removes a file, symlink or (empty, or with `recursive` any) directory. Symlinks are removed,
   * never followed: the walk goes from directory fd to directory fd, each opened O_NOFOLLOW
   * beneath its parent. The root itself is refused (EBUSY). `force` ignores ENOENT.
   */
  async rm(rel: string, options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    const r = relFor(rel, 'rm');
    if (r === '') throw systemError(-EBUSY, 'rm', { path: '/' });
    const parent = parentOf(r);
    try {
      const parentFd = check(
        await native.fsOpen(this.fd, parent, native.fsConstants.O_PATH | fsc.O_DIRECTORY, 0),
        'open',
        { path: displayPath(parent) },
      );
      try {
        await removeAt(parentFd, baseOf(r), r, options.recursive === true);
      } finally {
        await closeAsync(parentFd);
      }
    } catch (err) {
      if (options.force === true && (err as SystemError).code === 'ENOENT') return;
      throw err;
    }
  }

  /**
   * renameat2 within the root; `noReplace` fails with EEXIST instead of replacing; `exchange`
   * swaps the two names atomically (both must exist; EINVAL where the file system cannot).
   */
  async rename(
    from: string,
    to: string,
    options: { noReplace?: boolean; exchange?: boolean } = {},
  ): Promise<void> {
    const f = relFor(from, 'rename');
    const t = relFor(to, 'rename');
    if (f === '' || t === '') throw systemError(-EBUSY, 'rename', { path: displayPath(f) });
    const { RENAME_EXCHANGE, RENAME_NOREPLACE } = native.fsConstants;
    const flags =
      options.exchange === true ? RENAME_EXCHANGE : options.noReplace === true ? RENAME_NOREPLACE : 0;
    const rc = await native.fsRename(this.fd, f, t, flags);
    if (rc < 0) {
      const err = systemError(rc, 'rename', { path: displayPath(f) }) as SystemError & { dest: string };
      err.dest = displayPath(t);
      throw err;
    }
  }

  /** The target of a symlink beneath the root, as stored (it is not resolved). */
  async readlink(rel: string): Promise<string> {
    const r = relFor(rel, 'readlink');
    return check(await native.fsReadlink(this.fd, r), 'readlink', { path: displayPath(r) });
  }

  /** symlinkat: a new symlink at `rel` (in its parent, opened beneath the root) holding `target` as is. */
  async symlink(target: string, rel: string): Promise<void> {
    const r = relFor(rel, 'symlink');
    if (r === '') throw systemError(-EEXIST, 'symlink', { path: '/' });
    check(await native.fsSymlink(this.fd, target, r), 'symlink', { path: displayPath(r) });
  }

  /**
   * utimensat with AT_SYMLINK_NOFOLLOW: the times of `rel` itself, a symlink included (lutimes).
   * A null atime is left as it is.
   */
  async lutimes(rel: string, atime: Date | null, mtime: Date): Promise<void> {
    const r = relFor(rel, 'utime');
    check(await native.fsLutimes(this.fd, r, atime?.getTime() ?? null, mtime.getTime()), 'utime', {
      path: displayPath(r),
    });
  }

  /**
   * utimensat with AT_SYMLINK_NOFOLLOW and nanosecond times (BigInt ns since the epoch, as
   * `mtimeNs` holds them): the times of `rel` itself, a symlink included. A null atime is kept.
   */
  async lutimesNs(rel: string, atimeNs: bigint | null, mtimeNs: bigint): Promise<void> {
    const r = relFor(rel, 'utime');
    check(await native.fsLutimesNs(this.fd, r, atimeNs, mtimeNs), 'utime', { path: displayPath(r) });
  }

  /** lchown: the owner of `rel` itself, a symlink included ('' is the root). -1 keeps an id. */
  async lchown(rel: string, uid: number, gid: number): Promise<void> {
    const r = relFor(rel, 'lchown');
    check(await native.fsLchown(this.fd, r, uid, gid), 'lchown', { path: displayPath(r) });
  }

  /**
   * chmod of `rel` itself ('' is the root), never of what a symlink points at: a symlink is
   * ENOTSUP (EOPNOTSUPP; Linux symlinks have no mode of their own). All of 07777 is set:
   * set-uid, set-gid and sticky included, and 0000 stays 0000.
   */
  async lchmod(rel: string, mode: number): Promise<void> {
    const r = relFor(rel, 'chmod');
    check(await native.fsLchmod(this.fd, r, mode & 0o7777), 'chmod', { path: displayPath(r) });
  }

  /** mknodat: a FIFO, character or block device at `rel` (major/minor ignored for a FIFO). */
  async mknod(rel: string, kind: NodeKind, mode: number, major = 0, minor = 0): Promise<void> {
    const r = relFor(rel, 'mknod');
    if (r === '') throw systemError(-EEXIST, 'mknod', { path: '/' });
    check(await native.fsMknod(this.fd, r, NODE_TYPE[kind] | (mode & 0o7777), major, minor), 'mknod', {
      path: displayPath(r),
    });
  }

  /** linkat: `to` becomes another name of the entry `from` itself (a symlink is not followed). */
  async link(from: string, to: string): Promise<void> {
    const f = relFor(from, 'link');
    const t = relFor(to, 'link');
    if (f === '' || t === '') throw systemError(-EBUSY, 'link', { path: displayPath(f) });
    const rc = await native.fsLink(this.fd, f, t);
    if (rc < 0) {
      const err = systemError(rc, 'link', { path: displayPath(f) }) as SystemError & { dest: string };
      err.dest = displayPath(t);
      throw err;
    }
  }

  /** The names of the extended attributes of `rel` itself ('' is the root), as listed. */
  async listXattrs(rel: string): Promise<string[]> {
    const r = relFor(rel, 'listxattr');
    return check(await native.fsListXattr(this.fd, r), 'listxattr', { path: displayPath(r) });
  }

  /** One attribute of `rel` itself; undefined when it has none of that name (ENODATA). */
  async getXattr(rel: string, name: string): Promise<Buffer | undefined> {
    const r = relFor(rel, 'getxattr');
    const rc = await native.fsGetXattr(this.fd, r, name);
    if (rc === -ENODATA) return undefined;
    return check(rc, 'getxattr', { path: displayPath(r) });
  }

  /**
   * Every extended attribute of `rel` itself, in byte order of their names (so an archive of
   * the same tree is the same bytes). An attribute removed between list and get is left out.
   */
  async readXattrs(rel: string): Promise<Xattr[]> {
    const r = relFor(rel, 'listxattr');
    return readXattrsAt(this.fd, r, displayPath(r));
  }

  /** `readXattrs` of an open fd (say one from `open`); `rel` names it in errors. */
  async freadXattrs(fd: number, rel = ''): Promise<Xattr[]> {
    return readXattrsAt(fd, '', displayPath(rel));
  }

  /** setxattr on `rel` itself; `create` fails with EEXIST, `replace` with ENODATA. */
  async setXattr(
    rel: string,
    name: string,
    value: Buffer,
    options: { create?: boolean; replace?: boolean } = {},
  ): Promise<void> {
    const r = relFor(rel, 'setxattr');
    const { XATTR_CREATE, XATTR_REPLACE } = native.fsConstants;
    const flags = options.create === true ? XATTR_CREATE : options.replace === true ? XATTR_REPLACE : 0;
    check(await native.fsSetXattr(this.fd, r, name, value, flags), 'setxattr', { path: displayPath(r) });
  }

  /**
   * The first offset at or after `offset` of `fd` that holds data (lseek SEEK_DATA), or null
   * when none does (ENXIO: only a hole, or the end, follows). `rel` names the file in errors.
   */
  async nextData(fd: number, offset: number, rel = ''): Promise<number | null> {
    const rc = await native.fsSeek(fd, offset, native.fsConstants.SEEK_DATA);
    if (rc === -ENXIO) return null;
    return check(rc, 'lseek', { path: displayPath(rel) });
  }

  /**
   * The first hole at or after `offset` (lseek SEEK_HOLE; the end of the file counts as one),
   * or null when `offset` is at or past the end (ENXIO).
   */
  async nextHole(fd: number, offset: number, rel = ''): Promise<number | null> {
    const rc = await native.fsSeek(fd, offset, native.fsConstants.SEEK_HOLE);
    if (rc === -ENXIO) return null;
    return check(rc, 'lseek', { path: displayPath(rel) });
  }

  /**
   * Whether two paths beneath the root (final symlinks followed) are on one mount, so that one
   * can be renamed or linked into the other. False when the kernel reports no mount ids.
   */
  async sameMount(a: string, b: string): Promise<boolean> {
    const ra = relFor(a, 'statx');
    const rb = relFor(b, 'statx');
    const [ma, mb] = await Promise.all([native.fsMountId(this.fd, ra), native.fsMountId(this.fd, rb)]);
    if (ma === -osc.errno.ENOSYS || mb === -osc.errno.ENOSYS) return false;
    check(ma, 'statx', { path: displayPath(ra) });
    check(mb, 'statx', { path: displayPath(rb) });
    return ma === mb;
  }

  /**
   * Where a temporary for something that will end up in directory `dirRel` is made: the root
   * itself when it is on the same mount (the startup sweep, `sweepTemporaries`, only ever reads
   * the root directory, so its cost does not grow with the tree), else `dirRel`, where a rename
   * into place still works.
   */
  async tempDirFor(dirRel: string): Promise<string> {
    const r = relFor(dirRel, 'open');
    if (r === '' || (await this.sameMount('', r))) return '';
    return r;
  }

  /**
   * `rel` with every symlink resolved, the way the kernel would walk it beneath the root
   * (path_resolution(7)): a '..' or an absolute link target that would leave the root is EXDEV,
   * more than 40 links ELOOP. The first component that does not exist ends the walk; it and the
   * rest are kept as written. The result is a plain relative path; it is only a name — every use
   * of it still resolves beneath the root in the kernel, so a link swapped meanwhile cannot lead
   * out.
   */
  async resolveLinks(rel: string): Promise<string> {
    const r = relFor(rel, 'open');
    const pending = r === '' ? [] : r.split('/');
    const done: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (done.length === 0) throw systemError(-EXDEV, 'open', { path: displayPath(r) });
        done.pop();
        continue;
      }
      const at = [...done, part].join('/');
      const rc = await native.fsStat(this.fd, at, false);
      if (rc === -ENOENT) return relFor([...done, part, ...pending].join('/'), 'open');
      const st = check(rc, 'lstat', { path: displayPath(at) });
      if (typeFromMode(st.mode) !== 'symlink') {
        done.push(part);
        continue;
      }
      if (++links > MAX_SYMLINKS) throw systemError(-ELOOP, 'open', { path: displayPath(r) });
      const target = await this.readlink(at);
      if (target.startsWith('/')) throw systemError(-EXDEV, 'open', { path: displayPath(r) });
      pending.unshift(...target.split('/'));
    }
    return done.join('/');
  }

  /**
   * The nearest of `rel` and its ancestors that exists (final symlinks followed), with its
   * stat; the root always does. It may be a non-directory: then that file is in the way.
   */
  async nearestExisting(rel: string): Promise<{ rel: string; stat: BeneathStat }> {
    for (let dir = relFor(rel, 'stat'); ; dir = parentOf(dir)) {
      const rc = await native.fsStat(this.fd, dir, true);
      if (typeof rc !== 'number') return { rel: dir, stat: toStat(rc) };
      if ((rc !== -ENOENT && rc !== -ENOTDIR) || dir === '') check(rc, 'stat', { path: displayPath(dir) });
    }
  }

  /**
   * Removes stale temporaries of crashed servers: the `.nullgate-tmp-*` entries at the top of
   * the root (named upload files, replace links, archive staging directories — see
   * `tempDirFor`). Reads the root directory only, never the tree beneath it, so the cost stays
   * bounded even when the root is '/'. A temporary a live server still uses holds an flock
   * (`lockTemporary`) and is left alone, and so are the names in `keep` (state that outlives a
   * server: the resumable uploads' directory). Resolves with the names removed.
   */
  async sweepTemporaries(keep: readonly string[] = []): Promise<string[]> {
    const names: string[] = [];
    for await (const batch of this.readdirBatches('')) {
      for (const e of batch) if (isTempName(e.name) && !keep.includes(e.name)) names.push(e.name);
    }
    const removed: string[] = [];
    for (const name of names) {
      const flags = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;
      const fd = await native.fsOpen(this.fd, name, flags, 0);
      if (fd === -ENOENT) continue;
      // ELOOP: a symlink (never followed, just removed); EACCES: not ours to lock, but in the root.
      if (fd < 0 && fd !== -ELOOP && fd !== -EACCES) check(fd, 'open', { path: displayPath(name) });
      try {
        if (fd >= 0 && native.fsTryLock(fd) < 0) continue;
        await this.rm(name, { recursive: true, force: true });
        removed.push(name);
      } finally {
        if (fd >= 0) await closeAsync(fd);
      }
    }
    return removed;
  }

  /**
   * An anonymous O_TMPFILE (O_RDWR) in directory `dirRel`, for atomic uploads: write, fsync,
   * then `linkTmpfile`. Closing it unlinked leaves nothing behind, even after SIGKILL. File
   * systems without O_TMPFILE answer EOPNOTSUPP (or EISDIR on old kernels): fall back to
   * `openNamedTmpfile`.
   */
  async openTmpfile(dirRel: string, mode = 0o666): Promise<number> {
    const r = relFor(dirRel, 'open');
    const flags = native.fsConstants.O_TMPFILE | fsc.O_RDWR;
    const fd = check(await native.fsOpen(this.fd, r, flags, mode), 'open', { path: displayPath(r) });
    // Locked for the replace link's hidden name (fs_link_tmpfile), which shares the inode.
    lockTemporary(fd);
    return fd;
  }

  /**
   * Names an O_TMPFILE fd at `rel`. Without `replace` it fails with EEXIST when the name exists;
   * with `replace` it atomically replaces whatever file is there (link to a hidden temporary
   * name, then rename over). fsync the fd before and `fsyncDir` the parent after for durability.
   */
  async linkTmpfile(fd: number, rel: string, options: { replace?: boolean } = {}): Promise<void> {
    const r = relFor(rel, 'link');
    if (r === '') throw systemError(-EEXIST, 'link', { path: '/' });
    check(await native.fsLinkTmpfile(fd, this.fd, r, options.replace === true), 'link', {
      path: displayPath(r),
    });
  }

  /**
   * The fallback when O_TMPFILE is unsupported: a new `.nullgate-tmp-<random>` file
   * (O_CREAT | O_EXCL | O_RDWR) in `dirRel` (best `tempDirFor(target's directory)`), locked
   * against other servers' sweeps while the fd is open; `rename` it into place, or `unlink` it
   * on failure. A server killed meanwhile leaves it for the next start's sweep.
   */
  async openNamedTmpfile(dirRel: string, mode = 0o666): Promise<{ fd: number; rel: string }> {
    const dir = relFor(dirRel, 'open');
    const flags = fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR;
    for (let attempt = 0; ; attempt++) {
      const name = `${TMP_PREFIX}${randomBytes(8).toString('hex')}`;
      const rel = joinRel(dir, name);
      const rc = await native.fsOpen(this.fd, rel, flags, mode);
      if (rc === -EEXIST && attempt < 4) continue;
      const fd = check(rc, 'open', { path: displayPath(rel) });
      lockTemporary(fd);
      return { fd, rel };
    }
  }

  /**
   * Starts writing back `nbytes` at `offset` of a file being written (sync_file_range(2)
   * SYNC_FILE_RANGE_WRITE), so the closing fsync only waits for the tail: a large upload's disk
   * writes overlap its transfer. A hint: file systems that cannot do it are simply not asked.
   */
  async startWriteback(fd: number, offset: number, nbytes: number): Promise<void> {
    await native.fsStartWriteback(fd, offset, nbytes);
  }

  /** fsync(2) of an fd (a file from `open`, or a directory opened O_RDONLY). */
  async fsync(fd: number): Promise<void> {
    await fsyncAsync(fd);
  }

  /**
   * syncfs(2) of the file system `rel` (a directory beneath the root) is on: everything written
   * to it so far is durable when this resolves, a writeback error reported (Linux 5.8+). For a
   * tree of many files, one call where an fsync per file would wait once per file.
   */
  async syncfs(rel: string): Promise<void> {
    const fd = await this.open(rel, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      check(await native.fsSyncfs(fd), 'syncfs', { path: displayPath(relFor(rel, 'syncfs'), true) });
    } finally {
      await closeAsync(fd);
    }
  }

  /** fsync of a directory beneath the root, to make the names in it durable (after rename/link). */
  async fsyncDir(rel: string): Promise<void> {
    const fd = await this.open(rel, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      await fsyncAsync(fd);
    } finally {
      await closeAsync(fd);
    }
  }

  /**
   * The entries of a directory, in batches of one getdents64 call each (at most `bufferBytes`
   * of directory records), in the file system's order: memory stays bounded however large the
   * directory. '.' and '..' are left out. Breaking out of the loop closes the directory.
   */
  async *readdirBatches(
    rel: string,
    options: { bufferBytes?: number } = {},
  ): AsyncGenerator<BeneathDirent[]> {
    const r = relFor(rel, 'scandir');
    const shown = displayPath(r);
    const fd = check(await native.fsOpen(this.fd, r, fsc.O_RDONLY | fsc.O_DIRECTORY, 0), 'scandir', {
      path: shown,
    });
    try {
      yield* readBatches(fd, options.bufferBytes ?? DEFAULT_DIR_BUFFER, shown);
    } finally {
      await closeAsync(fd);
    }
  }

  /** `readdirBatches`, one entry at a time. */
  async *readdir(rel: string, options: { bufferBytes?: number } = {}): AsyncGenerator<BeneathDirent> {
    for await (const batch of this.readdirBatches(rel, options)) yield* batch;
  }
}

/**
 * An open directory beneath the root, for a walk that a swap must not redirect: every call
 * resolves one name relative to this directory's fd (openat2 RESOLVE_BENEATH from it, so
 * nothing leaves it) and never follows that name if it is a symlink. A subdirectory is opened
 * from its parent's fd with O_DIRECTORY | O_NOFOLLOW: a directory swapped for a symlink since it
 * was listed is ENOTDIR (O_DIRECTORY | O_NOFOLLOW on a symlink; ELOOP on some kernels), never a walk of the link's target, and
 * nothing beneath it is looked up by a path from the root again. `rel` (the directory's path
 * beneath the root) names entries in errors; the fd is this object's, closed by `close`.
 */
export class BeneathDir {
  readonly fd: number;
  readonly rel: string;

  private constructor(fd: number, rel: string) {
    this.fd = fd;
    this.rel = rel;
  }

  /** The directory `rel` of `root`, resolved from the root (symlinks inside the root followed). */
  static async open(root: BeneathRoot, rel: string): Promise<BeneathDir> {
    const r = relFor(rel, 'opendir');
    const fd = await root.open(r, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NONBLOCK);
    return new BeneathDir(fd, r);
  }

  #name(name: string, syscall: string): string {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
      throw systemError(-EINVAL, syscall, { path: displayPath(joinRel(this.rel, name)) });
    }
    return name;
  }

  #shown(name: string): string {
    return displayPath(joinRel(this.rel, name));
  }

  /** The subdirectory `name`, opened from this one with O_NOFOLLOW (a symlink there is refused). */
  async openDir(name: string): Promise<BeneathDir> {
    const n = this.#name(name, 'opendir');
    const flags = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;
    const fd = check(await native.fsOpen(this.fd, n, flags, 0), 'opendir', { path: this.#shown(n) });
    return new BeneathDir(fd, joinRel(this.rel, n));
  }

  /** openat2 of the entry `name` (`flags` as for BeneathRoot.open); the fd is the caller's. */
  async open(name: string, flags: number): Promise<number> {
    const n = this.#name(name, 'open');
    return check(await native.fsOpen(this.fd, n, flags, 0), 'open', { path: this.#shown(n) });
  }

  /** lstat of the entry `name` itself. */
  async lstat(name: string): Promise<BeneathStat> {
    const n = this.#name(name, 'lstat');
    return toStat(check(await native.fsStat(this.fd, n, false), 'lstat', { path: this.#shown(n) }));
  }

  /** fstat of this directory. */
  async stat(): Promise<BeneathStat> {
    return toStat(
      check(await native.fsStat(this.fd, '', true), 'fstat', { path: displayPath(this.rel, true) }),
    );
  }

  /** The target of the symlink `name`, as stored. */
  async readlink(name: string): Promise<string> {
    const n = this.#name(name, 'readlink');
    return check(await native.fsReadlink(this.fd, n), 'readlink', { path: this.#shown(n) });
  }

  /** The extended attributes of the entry `name` itself, in byte order of their names. */
  async readXattrs(name: string): Promise<Xattr[]> {
    const n = this.#name(name, 'listxattr');
    return readXattrsAt(this.fd, n, this.#shown(n));
  }

  /** The extended attributes of this directory (read from its fd). */
  async ownXattrs(): Promise<Xattr[]> {
    return readXattrsAt(this.fd, '', displayPath(this.rel, true));
  }

  /** The entries of this directory in batches (BeneathRoot.readdirBatches), read once. */
  async *readdirBatches(bufferBytes = DEFAULT_DIR_BUFFER): AsyncGenerator<BeneathDirent[]> {
    yield* readBatches(this.fd, bufferBytes, displayPath(this.rel, true));
  }

  async close(): Promise<void> {
    await closeAsync(this.fd);
  }
}

/**
 * Marks a temporary (an open file or staging directory fd) as in use until the fd is closed:
 * `sweepTemporaries` of another server on the same root skips what it cannot flock. Best
 * effort: a file system without flock support only loses that protection.
 */
export function lockTemporary(fd: number): void {
  native.fsTryLock(fd);
}

/** Closes an fd this layer handed out (async: close can block on network file systems). */
export async function closeFd(fd: number): Promise<void> {
  await closeAsync(fd);
}

async function readXattrsAt(fd: number, rel: string, shown: string): Promise<Xattr[]> {
  const names = check(await native.fsListXattr(fd, rel), 'listxattr', { path: shown });
  const out: Xattr[] = [];
  for (const name of names.sort(compareNames)) {
    const rc = await native.fsGetXattr(fd, rel, name);
    if (rc === -ENODATA) continue;
    out.push({ name, value: check(rc, 'getxattr', { path: shown }) });
  }
  return out;
}

async function* readBatches(fd: number, bufferBytes: number, shown: string): AsyncGenerator<BeneathDirent[]> {
  for (;;) {
    const batch = check(await native.fsReadDir(fd, bufferBytes), 'scandir', { path: shown });
    if (batch.length === 0) return;
    yield batch.map((e) => ({ name: e.name, type: typeFromDtype(e.type) }));
  }
}

/**
 * Removes `name` in the directory `parentFd`; `rel` (the entry's path) names it in errors.
 * Directories are opened O_NOFOLLOW beneath their parent, so a symlink swapped in for a
 * directory fails (ELOOP) instead of being walked, and a symlink found in a listing is
 * unlinked, never entered.
 */
async function removeAt(parentFd: number, name: string, rel: string, recursive: boolean): Promise<void> {
  const shown = displayPath(rel);
  const st = check(await native.fsStat(parentFd, name, false), 'lstat', { path: shown });
  if (typeFromMode(st.mode) !== 'dir') {
    check(await native.fsUnlink(parentFd, name, false), 'unlink', { path: shown });
    return;
  }
  if (recursive) {
    // Removing entries while reading the directory may make getdents skip some; a few passes
    // settle it (and bound the work if something keeps adding entries).
    for (let pass = 0; ; pass++) {
      await emptyDir(parentFd, name, rel);
      const rc = await native.fsUnlink(parentFd, name, true);
      if (rc === -ENOTEMPTY && pass < 3) continue;
      check(rc, 'rmdir', { path: shown });
      return;
    }
  }
  check(await native.fsUnlink(parentFd, name, true), 'rmdir', { path: shown });
}

async function emptyDir(parentFd: number, name: string, rel: string): Promise<void> {
  const flags = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
  const shown = displayPath(rel);
  const fd = check(await native.fsOpen(parentFd, name, flags, 0), 'scandir', { path: shown });
  try {
    for await (const batch of readBatches(fd, DEFAULT_DIR_BUFFER, shown)) {
      for (const entry of batch) {
        const childRel = joinRel(rel, entry.name);
        if (entry.type === 'dir') {
          await removeAt(fd, entry.name, childRel, true);
          continue;
        }
        const rc = await native.fsUnlink(fd, entry.name, false);
        // EISDIR: it was replaced by a directory since the listing; walk it.
        if (rc === -EISDIR) await removeAt(fd, entry.name, childRel, true);
        else if (rc !== -ENOENT) check(rc, 'unlink', { path: displayPath(childRel) });
      }
    }
  } finally {
    await closeAsync(fd);
  }
}
