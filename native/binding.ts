/**
 * The only importer of the compiled addon (build/Release/nullgate.node, or nullgate.node beside
 * the client bundle). It types the native surface and turns the native convention — a
 * non-negative result or a negative errno — into Node-shaped system errors:
 * `bind EADDRINUSE @name` with errno, code, syscall and address, like Node's own net errors.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** The root directory the peer of a connection sees (native/peer_root.h). */
export interface PeerRoot {
  /** The peer's pid as this process's /proc sees it. */
  readonly pid: number;
  /** st_dev and st_ino of its root directory (/proc/PID/root). */
  readonly dev: bigint;
  readonly ino: bigint;
  /** Found through SO_PEERPIDFD (race-free), not SO_PEERCRED's pid (kernels before 6.5). */
  readonly viaPidfd: boolean;
}

export interface SocketInfo {
  readonly domain: number;
  readonly type: number;
  readonly listening: boolean;
}

/** What fsStat reports of an entry (st_* fields; times in ms and ns). */
export interface NativeStat {
  readonly dev: number;
  readonly ino: number;
  /** st_mode, file type bits included. */
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly mtimeNs: bigint;
  readonly atimeNs: bigint;
  readonly ctimeNs: bigint;
  /** st_rdev (device nodes; 0 otherwise), and its major and minor numbers. */
  readonly rdev: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  /** st_blocks: 512-byte units allocated (fewer than size / 512 for a sparse file). */
  readonly blocks: number;
}

/**
 * The native module's exports, exactly (native/addon*.cc): test/native/binding-exports.test.ts
 * fails when the two differ.
 */
export interface NativeBinding {
  socket(): number;
  bind(fd: number, sunPath: Buffer): number;
  listen(fd: number, backlog: number): number;
  /** One pending connection of a listening fd, non-blocking: its fd, or -EAGAIN when none waits. */
  accept(fd: number): number;
  connect(fd: number, sunPath: Buffer): number;
  /**
   * Blocking: clears O_NONBLOCK and bounds each read and write by `timeoutMs` (SO_RCVTIMEO,
   * SO_SNDTIMEO; 0 is no bound), after which it fails with EAGAIN. Not blocking: O_NONBLOCK
   * again. 0 or a negative errno.
   */
  setBlocking(fd: number, blocking: boolean, timeoutMs: number): number;
  sockName(fd: number): Buffer | number;
  peerCred(fd: number): PeerCredentials | number;
  /**
   * The peer's root directory, found race-free through its pidfd; -ESRCH when the peer has
   * exited, -EREMOTE when its pid namespace is not visible from here, -EACCES without the
   * right to read its /proc entry.
   */
  peerRoot(fd: number): PeerRoot | number;
  sockInfo(fd: number): SocketInfo | number;
  close(fd: number): number;
  /** A close-on-exec duplicate of `fd` (F_DUPFD_CLOEXEC), or a negative errno; the caller owns it. */
  dup(fd: number): number;
  /** A listening fd made inside another network namespace, or the failing errno and syscall. */
  listenInNetns(
    nsPath: string,
    sunPath: Buffer,
    backlog: number,
  ): number | { errno: number; syscall: string };
  sendDatagram(sunPath: Buffer, data: Buffer): number;
  /**
   * napi_adjust_external_memory(+bytes) then (-bytes): tells V8 that much memory outside its
   * heap came and went, which brings its collection of dead ArrayBuffers sooner (uploads).
   */
  reportTransientMemory(bytes: number): void;
  /**
   * Small-file fast path (native/small_file.h, native/small-file.ts): open `rel` beneath
   * `dirFd`, fstat it and read it whole into `buf` — from the kernel's caches only. Returns the
   * bytes read, or a negative errno: -EAGAIN when the caches cannot answer (take the async
   * path); -EISDIR, -ENXIO (not a regular file) or -EFBIG (larger than `buf`) with `stat` filled
   * (14 slots: dev, ino, mode, nlink, uid, gid, size, mtime s, mtime ns, atime s, atime ns,
   * ctime s, ctime ns, blocks).
   */
  readSmallCached(dirFd: number, rel: string, buf: Buffer, stat: Float64Array): number;
  /**
   * fstatat(2) of `rel` under `dirFd` into the same 14 slots: 0, or a negative errno. One system
   * call, not confined: it only revalidates a file readSmallCached read beneath the root
   * (routes/small-file-cache.ts).
   */
  statAt(dirFd: number, rel: string, stat: Float64Array): number;
  // --- beneath-root filesystem layer (native/addon_fs.cc) ---
  // Every fs* call runs on the libuv thread pool and resolves to its value or a negative errno
  // (it never rejects). Paths are relative to `dirFd` and resolve beneath it with openat2(2)
  // RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS; a path with a NUL byte resolves to -EINVAL.
  // Returned fds belong to JS; fd arguments are borrowed until the promise settles.
  fsOpen(dirFd: number, rel: string, flags: number, mode: number): Promise<number>;
  fsOpenRoot(path: string): Promise<number>;
  fsStat(dirFd: number, rel: string, follow: boolean): Promise<NativeStat | number>;
  fsMkdir(dirFd: number, rel: string, mode: number): Promise<number>;
  fsUnlink(dirFd: number, rel: string, removeDir: boolean): Promise<number>;
  fsRename(dirFd: number, from: string, to: string, flags: number): Promise<number>;
  fsReadlink(dirFd: number, rel: string): Promise<string | number>;
  fsLinkTmpfile(fd: number, dirFd: number, rel: string, replace: boolean): Promise<number>;
  /** symlinkat(target, parent of `rel`): `target` is stored as is, never resolved. */
  fsSymlink(dirFd: number, target: string, rel: string): Promise<number>;
  /** utimensat(…, AT_SYMLINK_NOFOLLOW) of `rel` itself (a symlink is not followed); times in ms. */
  fsLutimes(dirFd: number, rel: string, atimeMs: number | null, mtimeMs: number): Promise<number>;
  /** statx STATX_MNT_ID of `rel` ('' is `dirFd` itself); -ENOSYS where the kernel has none. */
  fsMountId(dirFd: number, rel: string): Promise<number>;
  /**
   * flock(fd, LOCK_EX | LOCK_NB), synchronous (it never waits): 0, or -EWOULDBLOCK when another
   * open file holds the lock. Marks a temporary as in use for other servers' startup sweeps.
   */
  fsTryLock(fd: number): number;
  /** sync_file_range(SYNC_FILE_RANGE_WRITE): start writing back `nbytes` at `offset` of `fd`. */
  fsStartWriteback(fd: number, offset: number, nbytes: number): Promise<number>;
  /** syncfs(2) of the file system `fd` is on. */
  fsSyncfs(fd: number): Promise<number>;
  /** The next entries (one getdents64 of at most `bufferBytes` bytes); `type` is DT_*; [] at the end. */
  fsReadDir(
    dirFd: number,
    bufferBytes: number,
  ): Promise<{ readonly name: string; readonly type: number }[] | number>;
  // --- metadata (native/fs_ops.h): each acts on `rel` itself, never through a final symlink;
  // rel '' is `dirFd` itself where said.
  /** utimensat(…, AT_SYMLINK_NOFOLLOW) with nanosecond times (BigInt ns since the epoch); a null atime is kept. */
  fsLutimesNs(dirFd: number, rel: string, atimeNs: bigint | null, mtimeNs: bigint): Promise<number>;
  /** fchownat(…, AT_SYMLINK_NOFOLLOW); -1 keeps that id; rel '' is `dirFd` itself. */
  fsLchown(dirFd: number, rel: string, uid: number, gid: number): Promise<number>;
  /** chmod of `rel` itself (07777 bits); -EOPNOTSUPP for a symlink; rel '' is `dirFd` itself. */
  fsLchmod(dirFd: number, rel: string, mode: number): Promise<number>;
  /** mknodat; `mode` holds S_IFIFO, S_IFCHR or S_IFBLK and the permission bits (else -EINVAL). */
  fsMknod(dirFd: number, rel: string, mode: number, major: number, minor: number): Promise<number>;
  /** linkat(from, to) without AT_SYMLINK_FOLLOW: a new name for `from` itself. */
  fsLink(dirFd: number, from: string, to: string): Promise<number>;
  /** The names of `rel`'s own extended attributes (rel '' is `dirFd` itself). */
  fsListXattr(dirFd: number, rel: string): Promise<string[] | number>;
  /** One attribute's value (at most 64 KiB); -ENODATA when `rel` has no such attribute. */
  fsGetXattr(dirFd: number, rel: string, name: string): Promise<Buffer | number>;
  /** setxattr; `flags` 0, XATTR_CREATE or XATTR_REPLACE. */
  fsSetXattr(dirFd: number, rel: string, name: string, value: Buffer, flags: number): Promise<number>;
  /** lseek(fd, offset, SEEK_DATA | SEEK_HOLE): the next data or hole offset; -ENXIO at the end. */
  fsSeek(fd: number, offset: number, whence: number): Promise<number>;
  // --- zero-copy transfer (native/addon_sendfile.cc) ---
  /**
   * Sends `length` bytes of `fileFd` from `offset` to `socketFd` with sendfile(2) on a dedicated
   * thread, working on duplicates of both fds (the caller keeps owning its fds). Returns a transfer
   * id (> 0) or a negative errno. `callback(err, sent)` runs once, after the thread closed its fds:
   * `err` is 0 or a negative errno (-ECANCELED after sendfileCancel, -EPIPE when the reader left,
   * -ETIMEDOUT when the socket stayed full for `idleTimeoutMs`; 0 or omitted: no limit).
   * Optional: an addon built before it existed lacks it.
   */
  sendfileStart?(
    socketFd: number,
    fileFd: number,
    offset: number,
    length: number,
    callback: (err: number, sent: number) => void,
    idleTimeoutMs?: number,
  ): number;
  /** Cancels a running transfer (its callback then gets -ECANCELED); false if it already ended. */
  sendfileCancel?(id: number): boolean;
  // --- zero-copy receive (native/addon_receive.cc) ---
  /**
   * Writes `prefix` to `fileFd` (at its offset), then moves exactly `length` more bytes from
   * `socketFd` into it with splice(2) through a pipe on a dedicated thread (read + write into a
   * reused buffer where splice is EINVAL, when `copyOnly`, or when `algorithms` asks for digests:
   * 'sha256', 'sha512', computed over prefix + body with OpenSSL's EVP). Works on duplicates of
   * both fds; never reads past `length`. Returns a transfer id (> 0) or a negative errno.
   * `callback(err, written, digests)` runs once, after the thread closed its fds: `err` is 0 or a
   * negative errno (-ECANCELED after receiveCancel, -ECONNRESET when the sender ended early,
   * -ETIMEDOUT when the socket brought nothing for `idleTimeoutMs`, -ETIME when a window of
   * `rateWindowMs` in which it waited at least half the time brought under `minRate` bytes per
   * second of waiting, -ENOSPC…), `written` the
   * bytes written to the file (prefix included), `digests` one Buffer per algorithm on success.
   */
  receiveStart(
    socketFd: number,
    fileFd: number,
    prefix: Buffer,
    length: number,
    algorithms: readonly string[],
    /** `windowBytes`, `windowMs`: after -ETIME, the last body-rate window's bytes and wait (else 0). */
    callback: (
      err: number,
      written: number,
      digests: Buffer[],
      windowBytes: number,
      windowMs: number,
    ) => void,
    idleTimeoutMs?: number,
    copyOnly?: boolean,
    minRate?: number,
    rateWindowMs?: number,
    /**
     * Start writeback (sync_file_range) after every this many bytes (default 8 MiB), so that a
     * closing fsync waits for the tail only; 0: never (a download, which does not fsync).
     */
    writebackBytes?: number,
  ): number;
  /** Cancels a running receive (its callback then gets -ECANCELED); false if it already ended. */
  receiveCancel(id: number): boolean;
  /** Linux flags Node's fs.constants lacks, and the temporary-name prefix. */
  readonly fsConstants: {
    readonly O_PATH: number;
    readonly O_TMPFILE: number;
    readonly O_NOFOLLOW: number;
    readonly O_DIRECTORY: number;
    readonly RENAME_NOREPLACE: number;
    readonly RENAME_EXCHANGE: number;
    readonly SEEK_DATA: number;
    readonly SEEK_HOLE: number;
    readonly XATTR_CREATE: number;
    readonly XATTR_REPLACE: number;
    readonly TMP_PREFIX: string;
  };
}

/**
 * Where the addon is, first match wins: NULLGATE_ADDON; nullgate.node beside the script (the
 * client bundle ships it there); else node-gyp-build's search of the package root (sources in
 * native/, compiled output in dist/native/): build/Release (built here by `npm install`), then
 * prebuilds/linux-x64 (shipped in the npm package, so no compiler is needed to install it).
 */
function findAddon(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const candidate of [process.env.NULLGATE_ADDON, path.join(here, 'nullgate.node')]) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  // node:module only here: the client bundle finds its addon above, without loading it.
  const { createRequire } = process.getBuiltinModule('node:module');
  const nodeGypBuild = createRequire(import.meta.url)('node-gyp-build') as { path(dir: string): string };
  for (const root of [path.join(here, '..'), path.join(here, '..', '..')]) {
    if (!existsSync(path.join(root, 'binding.gyp'))) continue;
    try {
      return nodeGypBuild.path(root);
    } catch {
      // Neither a build nor a matching prebuild under this root.
    }
  }
  throw new Error(
    'nullgate native addon not found: no prebuilt addon matches this machine; run `npm install` with python3, make and g++ installed (it builds build/Release/nullgate.node)',
  );
}

/**
 * What require() does for a .node file, without node:module (whose load brings the ES module
 * loader with it: client start-up, docs/performance.md). Node-API addons may be opened more than
 * once in a process (each gets its own exports).
 */
function loadAddon(file: string): NativeBinding {
  const module = { exports: {} };
  process.dlopen(module, file);
  return module.exports as NativeBinding;
}

export const native = loadAddon(findAddon());

export interface SystemError extends Error {
  errno: number;
  code: string;
  syscall: string;
  address?: string;
  path?: string;
}

/**
 * A Node-shaped system error. `errno` may be given negative (the native convention) or
 * positive; Node's own errors carry it negative, so that is what we store.
 */
export function systemError(
  errno: number,
  syscall: string,
  target?: { address?: string; path?: string },
): SystemError {
  const neg = -Math.abs(errno);
  const code = getSystemErrorName(neg);
  const where = target?.address ?? target?.path;
  const err = new Error(`${syscall} ${code}${where === undefined ? '' : ` ${where}`}`) as SystemError;
  err.errno = neg;
  err.code = code;
  err.syscall = syscall;
  if (target?.address !== undefined) err.address = target.address;
  if (target?.path !== undefined) err.path = target.path;
  Error.captureStackTrace(err, systemError);
  return err;
}

/** The human description libuv has for an errno ("address already in use"). */
export function errnoDescription(code: string): string | undefined {
  for (const [, [name, description]] of getSystemErrorMap()) if (name === code) return description;
  return undefined;
}

/** Returns `rc` when it is a success value, throws the system error otherwise. */
export function check<T>(rc: T | number, syscall: string, target?: { address?: string; path?: string }): T {
  if (typeof rc === 'number' && rc < 0) throw systemError(rc, syscall, target);
  return rc as T;
}
