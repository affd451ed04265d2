/**
 * `GET /archive/<dir>` and `PUT /archive/<dir>`: whole trees as one tar stream (CONTRACT.md
 * "HTTP API"; Docker's `/containers/{id}/archive` is the model users know). A Fastify plugin,
 * registered with prefix '/archive'.
 *
 * Everything on disk goes through the beneath-root layer (native/beneath.ts), so the kernel
 * confines every lookup to the served root, also against symlinks swapped in while a request
 * runs. tar-stream does the format; the entry rules are ours (core/tar-entry.ts).
 *
 * GET walks depth-first in the file system's order, one directory fd per level and one file
 * at a time, with backpressure from the socket: memory stays bounded however large the tree.
 *
 * PUT extracts into a hidden staging directory (`.nullgate-tmp-<random>`) and moves it into
 * place only when every entry succeeded; any failure removes it. The staging directory is made
 * at the top of the root when that is on the target's mount, so that a server killed mid-upload
 * leaves it where the next start's sweep looks (BeneathRoot.sweepTemporaries, which reads the
 * root directory only); a target on another mount stages beside itself, where a rename into
 * place still works and the leftover of a kill is never served, listed or archived.
 */
import { randomBytes } from 'node:crypto';
import {
  constants as fsc,
  createReadStream,
  close as closeCb,
  fchmod as fchmodCb,
  fsync as fsyncCb,
  ftruncate as ftruncateCb,
  futimes as futimesCb,
  write as writeCb,
} from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip, createGzip } from 'node:zlib';

import type { FastifyBaseLogger, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import tar from 'tar-stream';

import {
  BeneathRoot,
  type BeneathStat,
  TMP_PREFIX,
  beneathConstants,
  lockTemporary,
} from '../../native/beneath.js';
import { fsError, isNullgateError, ngError, type NullgateError } from '../../core/errors.js';
import { closeAfterResponse } from '../linger.js';
import { BodyMemory } from '../../native/memory.js';
import {
  blockAlign,
  checkSymlink,
  entryKind,
  entryLabel,
  entryPath,
  extractedMode,
  hasEndOfArchive,
  invalidEntry,
  isAllZero,
  paxRecords,
  symlinkPrefix,
  unsafeEntry,
} from '../../core/tar-entry.js';
import { methodNotAllowed } from '../files.js';
import { type RoutesOptions, setUpRoutes } from '../plugin.js';
import { baseOf, displayPath, joinRel, parentOf, shortened } from '../../core/rel-path.js';
import { requestPath } from '../url-path.js';

const closeAsync = promisify(closeCb);
const fchmodAsync = promisify(fchmodCb);
const fsyncAsync = promisify(fsyncCb);
const ftruncateAsync = promisify(ftruncateCb);
const futimesAsync = promisify(futimesCb);
const writeAsync = promisify(writeCb);

/** Options of archiveRoutes (routes/plugin.ts). */
export type ArchiveRoutesOptions = RoutesOptions;

/**
 * The answer to a PUT: CONTRACT.md's `{files, dirs, bytes}`, plus `symlinks` (an extra key
 * clients that know only the contract's three simply ignore). Hard links count as files.
 */
export interface ArchiveResult {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

/**
 * tar-stream's header as it really is: `pax` holds the records it read (or is to write),
 * `byteOffset` is where the entry's data starts, and `type` is null for types it does not know.
 */
type TarHeader = Omit<Partial<tar.Header>, 'type' | 'pax'> & {
  name: string;
  type?: tar.Header['type'] | null;
  pax?: Record<string, string> | null;
  byteOffset?: number;
};

/** An entry of tar.extract(): its header and its data (a streamx Readable). */
type TarEntry = tar.ExtractEvents['entry'][1];

/** The event surface shared by Node and streamx streams. */
interface Emitter {
  on(event: string, fn: () => void): unknown;
  removeListener(event: string, fn: () => void): unknown;
}

/** What a file's bytes are written into: a tar-stream entry sink. */
interface EntrySink {
  write(chunk: Buffer): boolean;
  end(): unknown;
  destroy(err?: Error): unknown;
}

const READ_HIGH_WATER = 64 * 1024;
const PAD = Buffer.alloc(READ_HIGH_WATER);

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/**
 * The URL path after the plugin's prefix, still percent-encoded (decoded once, by
 * decodeFilePath); an absolute-form target (RFC 9112 §3.2.2) is cut to its path first.
 */
function truthyQuery(value: unknown): boolean {
  return value === '1' || value === 'true' || value === '';
}

// ---------------------------------------------------------------------------------------------
// GET: the tree as a tar stream
// ---------------------------------------------------------------------------------------------

/**
 * Resolves once a streamx writable can take more; rejects when it is torn down or the request
 * is aborted (a destroyed pack does not always close the entry sink that is waiting).
 */
function drained(sink: Emitter, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(signal.aborted ? signal.reason : new Error('archive stream closed'));
    };
    const cleanup = (): void => {
      sink.removeListener('drain', onDrain);
      sink.removeListener('close', onClose);
      sink.removeListener('error', onClose);
      signal.removeEventListener('abort', onClose);
    };
    if (signal.aborted) {
      onClose();
      return;
    }
    sink.on('drain', onDrain);
    sink.on('close', onClose);
    sink.on('error', onClose);
    signal.addEventListener('abort', onClose, { once: true });
  });
}

function entryDone(pack: tar.Pack, header: TarHeader, body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (body === undefined) pack.entry(header as tar.Header, done);
    else pack.entry(header as tar.Header, body, done);
  });
}

class TreeWriter {
  readonly #root: BeneathRoot;
  readonly #pack: tar.Pack;
  readonly #signal: AbortSignal;
  readonly #log: FastifyBaseLogger;

  constructor(root: BeneathRoot, pack: tar.Pack, signal: AbortSignal, log: FastifyBaseLogger) {
    this.#root = root;
    this.#pack = pack;
    this.#signal = signal;
    this.#log = log;
  }

  #header(name: string, st: BeneathStat, type: tar.Header['type'], size: number): TarHeader {
    const mtimeSec = Math.floor(st.mtimeMs / 1000);
    const header: TarHeader = {
      name,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size,
      mtime: new Date(mtimeSec * 1000),
    };
    const pax = paxRecords({ size, uid: st.uid, gid: st.gid, mtimeSec });
    if (pax !== undefined) header.pax = pax;
    return header;
  }

  /** Writes the contents of `dirRel` (names relative to `prefix` in the archive). */
  async walk(dirRel: string, prefix: string): Promise<void> {
    for await (const batch of this.#root.readdirBatches(dirRel)) {
      for (const dirent of batch) {
        this.#signal.throwIfAborted();
        // A PUT in progress stages here; half-extracted trees are not part of the tree.
        if (dirent.name.startsWith(TMP_PREFIX)) continue;
        await this.#entry(joinRel(dirRel, dirent.name), joinRel(prefix, dirent.name));
      }
    }
  }

  async #entry(rel: string, name: string): Promise<void> {
    let st: BeneathStat;
    try {
      st = await this.#root.lstat(rel);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return; // removed since the listing
      throw err;
    }
    switch (st.type) {
      case 'dir':
        await entryDone(this.#pack, this.#header(name, st, 'directory', 0));
        await this.walk(rel, name);
        return;
      case 'symlink': {
        let linkname: string;
        try {
          linkname = await this.#root.readlink(rel);
        } catch (err) {
          if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'EINVAL') return; // replaced meanwhile
          throw err;
        }
        await entryDone(this.#pack, { ...this.#header(name, st, 'symlink', 0), linkname });
        return;
      }
      case 'file':
        await this.#file(rel, name);
        return;
      default:
        this.#log.debug({ path: displayPath(rel) }, 'archive: skipping a special file');
    }
  }

  async #file(rel: string, name: string): Promise<void> {
    // O_NOFOLLOW: a symlink swapped in since the lstat is not followed (ELOOP, skipped);
    // O_NONBLOCK: a FIFO swapped in does not block the thread pool. The header comes from the
    // fd, so it describes exactly what is read.
    let fd: number;
    try {
      fd = await this.#root.open(rel, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ELOOP') return;
      throw err;
    }
    let st: BeneathStat;
    try {
      st = await this.#root.fstat(fd, rel);
    } catch (err) {
      await closeAsync(fd);
      throw err;
    }
    if (st.type !== 'file') {
      await closeAsync(fd);
      return;
    }
    const size = st.size;
    const header = this.#header(name, st, 'file', size);
    if (size === 0) {
      await closeAsync(fd);
      await entryDone(this.#pack, header, Buffer.alloc(0));
      return;
    }
    const done = new Promise<void>((resolve, reject) => {
      const sink = this.#pack.entry(header as tar.Header, (err) => (err ? reject(err) : resolve()));
      void this.#copy(fd, size, rel, sink as unknown as EntrySink & Emitter).catch((err: unknown) => {
        sink.destroy(err instanceof Error ? err : new Error(String(err)));
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    });
    await done;
  }

  /** Streams `size` bytes of fd into the entry (JS owns the fd: the stream closes it). */
  async #copy(fd: number, size: number, rel: string, sink: EntrySink & Emitter): Promise<void> {
    const source = createReadStream(displayPath(rel), {
      fd,
      start: 0,
      end: size - 1,
      autoClose: true,
      highWaterMark: READ_HIGH_WATER,
    });
    let copied = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      copied += chunk.length;
      if (!sink.write(chunk)) await drained(sink, this.#signal);
    }
    if (copied < size) {
      // The file shrank while being read: the header already promised `size` bytes, so pad
      // with zeros to keep the archive readable (what GNU tar does, with the same warning).
      this.#log.warn({ path: displayPath(rel), size, read: copied }, 'archive: file shrank while read');
      while (copied < size) {
        const n = Math.min(PAD.length, size - copied);
        copied += n;
        if (!sink.write(PAD.subarray(0, n))) await drained(sink, this.#signal);
      }
    }
    sink.end();
  }
}

// ---------------------------------------------------------------------------------------------
// PUT: extract into a staging directory, then move into place
// ---------------------------------------------------------------------------------------------

/** Counts bytes through, failing once `limit` is passed; remembers the first two bytes. */
class ByteCounter extends Transform {
  bytes = 0;
  readonly #limit: number;
  readonly #onLimit: () => Error;
  readonly #memory = new BodyMemory();
  #head = Buffer.alloc(0);
  #resolveHead: ((head: Buffer) => void) | undefined;
  /** The first (up to) two bytes of the stream, for the gzip magic check. */
  readonly head: Promise<Buffer>;

  constructor(limit: number, onLimit: () => Error) {
    super();
    this.#limit = limit;
    this.#onLimit = onLimit;
    this.head = new Promise((resolve) => (this.#resolveHead = resolve));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.#memory.streamed(chunk.length);
    if (this.bytes > this.#limit) {
      cb(this.#onLimit());
      return;
    }
    if (this.#resolveHead !== undefined) {
      this.#head = Buffer.concat([this.#head, chunk.subarray(0, 2 - this.#head.length)]);
      if (this.#head.length >= 2) this.#settleHead();
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#settleHead();
    cb();
  }

  #settleHead(): void {
    const resolve = this.#resolveHead;
    this.#resolveHead = undefined;
    resolve?.(this.#head);
  }
}

function tooLarge(limit: number): NullgateError {
  return ngError('NG_ERR_PAYLOAD_TOO_LARGE', `archive larger than the upload limit (${limit} bytes)`);
}

interface DirMeta {
  mode: number;
  mtime?: Date;
}

/**
 * Extracts one archive into `staging` (relative to the root). `finalBase` is where the
 * staged tree will live, so symlink targets are judged from their final location.
 */
class Stager {
  readonly #root: BeneathRoot;
  readonly #staging: string;
  readonly #finalBase: string;
  readonly #maxBytes: number;
  /** Entry paths that are symlinks now (made by this archive). */
  readonly #symlinks = new Set<string>();
  /** Entry paths that are directories now ('' is the staging directory). */
  readonly #dirs = new Set<string>(['']);
  /** Mode and mtime to give each directory once everything is in it. */
  readonly #dirMeta = new Map<string, DirMeta>();
  rootMeta: DirMeta | undefined;
  readonly result: ArchiveResult = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  #declared = 0;

  constructor(root: BeneathRoot, staging: string, finalBase: string, maxBytes: number) {
    this.#root = root;
    this.#staging = staging;
    this.#finalBase = finalBase;
    this.#maxBytes = maxBytes;
  }

  #at(rel: string): string {
    return joinRel(this.#staging, rel);
  }

  #shown(rel: string): string {
    return displayPath(joinRel(this.#finalBase, rel));
  }

  async entry(entry: TarEntry): Promise<void> {
    const header = entry.header as TarHeader;
    const name = header.name;
    const rel = entryPath(name);
    const kind = entryKind(name, header.type);
    const mtime = mtimeOf(header);
    if (rel === '') {
      if (kind !== 'dir') throw unsafeEntry(name, 'names the target directory itself');
      this.rootMeta = { mode: extractedMode('dir', header.mode), ...(mtime && { mtime }) };
      return;
    }
    const through = symlinkPrefix(rel, this.#symlinks);
    if (through !== undefined) {
      throw unsafeEntry(name, `leads through the symlink "${through}" made by an earlier entry`);
    }
    try {
      await this.#parents(rel, name);
      switch (kind) {
        case 'dir':
          await this.#dir(rel, name, header, mtime);
          return;
        case 'file':
          await this.#file(rel, name, header, mtime, entry);
          return;
        case 'symlink':
          await this.#symlink(rel, name, header.linkname ?? '', mtime);
          return;
        case 'hardlink':
          await this.#hardlink(rel, name, header.linkname ?? '');
          return;
      }
    } catch (err) {
      if (isNullgateError(err)) throw err;
      // ENAMETOOLONG: a name over NAME_MAX (255 bytes) or a path over PATH_MAX (4096) here.
      throw fsError(err, shortened(this.#shown(rel)), {
        ENAMETOOLONG: {
          code: 'NG_ERR_BAD_PATH',
          message: `archive entry ${entryLabel(name)}: name too long (at most 255 bytes a name, 4096 a path)`,
        },
      });
    }
  }

  /** Creates the missing parents of `rel` (each a real directory: checked, or made here). */
  async #parents(rel: string, name: string): Promise<void> {
    const parent = parentOf(rel);
    if (this.#dirs.has(parent)) return;
    let at = 0;
    for (;;) {
      const slash = rel.indexOf('/', at);
      if (slash < 0) return;
      const dir = rel.slice(0, slash);
      at = slash + 1;
      if (this.#dirs.has(dir)) continue;
      try {
        await this.#root.mkdir(this.#at(dir), 0o700);
        this.result.dirs++;
        // A directory the archive implies but never lists gets the usual default mode.
        this.#dirMeta.set(dir, { mode: 0o755 });
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw err;
        throw invalidEntry(name, `"${dir}" is a file from an earlier entry, not a directory`);
      }
      this.#dirs.add(dir);
    }
  }

  /** Removes a non-directory an earlier entry left at `rel`, so this entry replaces it (as tar does). */
  async #clear(rel: string, name: string): Promise<void> {
    if (this.#dirs.has(rel)) throw invalidEntry(name, 'a directory from an earlier entry is in the way');
    try {
      await this.#root.unlink(this.#at(rel));
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
    this.#symlinks.delete(rel);
  }

  async #dir(rel: string, name: string, header: TarHeader, mtime: Date | undefined): Promise<void> {
    const meta: DirMeta = { mode: extractedMode('dir', header.mode), ...(mtime && { mtime }) };
    if (!this.#dirs.has(rel)) {
      await this.#clear(rel, name);
      await this.#root.mkdir(this.#at(rel), 0o700);
      this.#dirs.add(rel);
      this.result.dirs++;
    }
    this.#dirMeta.set(rel, meta);
  }

  async #file(
    rel: string,
    name: string,
    header: TarHeader,
    mtime: Date | undefined,
    entry: TarEntry,
  ): Promise<void> {
    const size = header.size ?? 0;
    this.#declared += size;
    if (this.#declared > this.#maxBytes) throw tooLarge(this.#maxBytes);
    await this.#clear(rel, name);
    // O_EXCL | O_NOFOLLOW: never opens something already there, least of all through a link.
    const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
    const fd = await this.#root.open(this.#at(rel), flags, 0o600);
    try {
      let pos = 0;
      for await (const chunk of readEntry(entry, name)) {
        // All-zero chunks become holes: a sparse file stays sparse across a round trip.
        if (!isAllZero(chunk)) {
          for (let off = 0; off < chunk.length;) {
            off += (await writeAsync(fd, chunk, off, chunk.length - off, pos + off)).bytesWritten;
          }
        }
        pos += chunk.length;
      }
      if (pos !== size)
        throw ngError('NG_ERR_ARCHIVE_INVALID', `archive ends inside entry ${entryLabel(name)}`);
      await ftruncateAsync(fd, size);
      await fchmodAsync(fd, extractedMode('file', header.mode));
      if (mtime) await futimesAsync(fd, mtime, mtime);
      await fsyncAsync(fd);
    } finally {
      await closeAsync(fd);
    }
    this.result.files++;
    this.result.bytes += size;
  }

  async #symlink(rel: string, name: string, linkname: string, mtime: Date | undefined): Promise<void> {
    checkSymlink(name, joinRel(this.#finalBase, rel), linkname);
    await this.#clear(rel, name);
    // symlinkat and utimensat(AT_SYMLINK_NOFOLLOW) in the parent opened beneath the root.
    const at = this.#at(rel);
    await this.#root.symlink(linkname, at);
    // A link's own time is cosmetic: a file system that cannot set it keeps the archive whole.
    if (mtime) await this.#root.lutimes(at, mtime, mtime).catch(() => undefined);
    this.#symlinks.add(rel);
    this.result.symlinks++;
  }

  async #hardlink(rel: string, name: string, linkname: string): Promise<void> {
    // GNU tar and pax name a hard link's target by its member name, relative to the archive's
    // top, so it must be a file this archive already put in the staging directory.
    let target: string;
    try {
      target = entryPath(linkname);
    } catch (err) {
      throw unsafeEntry(name, `hard link leading outside the target (${shortened(linkname)})`, err);
    }
    if (target === '') throw unsafeEntry(name, 'hard link to the target directory');
    if (symlinkPrefix(target, this.#symlinks) !== undefined || this.#symlinks.has(target)) {
      throw unsafeEntry(name, `hard link through or to a symlink (${shortened(linkname)})`);
    }
    let fd: number;
    try {
      fd = await this.#root.open(this.#at(target), beneathConstants.O_PATH | fsc.O_NOFOLLOW);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'ENOTDIR') throw err;
      throw unsafeEntry(name, `hard link to a file not in this archive (${shortened(linkname)})`);
    }
    try {
      const st = await this.#root.fstat(fd, target);
      if (st.type !== 'file')
        throw unsafeEntry(name, `hard link to something not a file (${shortened(linkname)})`);
      await this.#clear(rel, name);
      await this.#root.linkTmpfile(fd, this.#at(rel));
    } finally {
      await closeAsync(fd);
    }
    this.result.files++;
  }

  /**
   * Gives directories their modes and times, deepest first (so a read-only parent does not
   * block its children, and filling a directory no longer changes its mtime), and fsyncs each
   * so the names in it are durable before the tree is moved into place. `skip` are
   * directories that will be merged into existing ones instead of moved.
   */
  async finish(skip: ReadonlySet<string> = new Set()): Promise<void> {
    const dirs = [...this.#dirMeta].filter(([rel]) => !skip.has(rel));
    dirs.sort(([a], [b]) => b.split('/').length - a.split('/').length);
    for (const [rel, meta] of dirs) await this.#applyDir(rel, meta);
  }

  async applyRoot(meta: DirMeta): Promise<void> {
    await this.#applyDir('', meta);
  }

  async #applyDir(rel: string, meta: DirMeta): Promise<void> {
    const flags = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
    const fd = await this.#root.open(this.#at(rel), flags);
    try {
      await fchmodAsync(fd, meta.mode);
      if (meta.mtime) await futimesAsync(fd, meta.mtime, meta.mtime);
      await fsyncAsync(fd);
    } finally {
      await closeAsync(fd);
    }
  }
}

/** An entry's data; a stream that fails mid-entry (truncated, aborted) names the entry. */
async function* readEntry(entry: TarEntry, name: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of entry as AsyncIterable<Buffer>) yield chunk;
  } catch (err) {
    if (isNullgateError(err)) throw err;
    throw invalidEntry(name, `the archive ends inside this entry (${(err as Error).message})`);
  }
}

function mtimeOf(header: TarHeader): Date | undefined {
  const pax = header.pax?.mtime;
  if (pax !== undefined) {
    const sec = Number.parseFloat(pax);
    if (Number.isFinite(sec)) return new Date(sec * 1000);
  }
  return header.mtime;
}

/**
 * Where a PUT goes: whether the target directory exists, and the directory the staged tree is
 * moved from into place — the target itself, else its nearest existing ancestor. A file in the
 * way is 409, a path leading out of the root 403.
 */
async function locate(root: BeneathRoot, rel: string): Promise<{ exists: boolean; near: string }> {
  let found: { rel: string; stat: BeneathStat };
  try {
    found = await root.nearestExisting(rel);
  } catch (err) {
    throw fsError(err, displayPath(rel, true));
  }
  if (found.stat.type !== 'dir') {
    throw ngError(
      'NG_ERR_CONFLICT',
      found.rel === rel
        ? `not a directory: ${displayPath(rel)}`
        : `not a directory: a file is in the way of ${displayPath(rel)}`,
    );
  }
  return { exists: found.rel === rel, near: found.rel };
}

/** One rename of a merge: `from` (in the staging tree) to `to`, which it may replace. */
interface MergeMove {
  readonly from: string;
  readonly to: string;
  readonly replaces: boolean;
}

/**
 * Plans moving the staged tree into an existing directory `target`: entries missing there are
 * renamed in, non-directories replace non-directories, and directories present on both sides
 * are merged recursively. A directory meeting a non-directory is a conflict. Everything is
 * checked before anything moves.
 */
async function planMerge(
  root: BeneathRoot,
  staging: string,
  target: string,
  rel: string,
  moves: MergeMove[],
  merged: Set<string>,
): Promise<void> {
  for await (const dirent of root.readdir(joinRel(staging, rel))) {
    const childRel = joinRel(rel, dirent.name);
    const from = joinRel(staging, childRel);
    const to = joinRel(target, childRel);
    const stagedIsDir = dirent.type === 'dir';
    let existing: BeneathStat;
    try {
      existing = await root.lstat(to);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
      moves.push({ from, to, replaces: false });
      continue;
    }
    if (stagedIsDir && existing.type === 'dir') {
      merged.add(childRel);
      await planMerge(root, staging, target, childRel, moves, merged);
    } else if (stagedIsDir || existing.type === 'dir') {
      throw ngError(
        'NG_ERR_CONFLICT',
        `archive entry ${entryLabel(childRel)} is ${stagedIsDir ? 'a directory' : 'not a directory'} but ${shortened(displayPath(to))} ${
          stagedIsDir ? 'is not' : 'is'
        }`,
      );
    } else {
      moves.push({ from, to, replaces: true });
    }
  }
}

/** How a move was made, so that it can be undone. */
type DoneMove = MergeMove & { readonly how: 'new' | 'exchange' | 'aside'; readonly aside?: string };

/**
 * Makes the moves of a merge, all or nothing as far as rename(2) allows. A new name is renamed
 * in with RENAME_NOREPLACE. A replaced entry is swapped with its staged successor in one
 * renameat2(RENAME_EXCHANGE), so readers see the old entry or the new one and the old one lands
 * in the staging tree; where the file system cannot exchange (EINVAL), the old entry is renamed
 * aside into the staging directory first (a reader may then miss the name for an instant).
 * When a move fails, the ones made are undone in reverse order — the old entries come back from
 * the staging tree — before the error is thrown. Undoing is renames again, so it can only fail
 * where the target is changed by someone else meanwhile; such a failure is logged.
 */
async function applyMoves(
  root: BeneathRoot,
  moves: readonly MergeMove[],
  staging: string,
  log: FastifyBaseLogger,
): Promise<void> {
  const done: DoneMove[] = [];
  let exchange = true;
  // Renames change their directories' mtime: an undone merge puts those back too.
  const parents = [...new Set(moves.map((m) => parentOf(m.to)))];
  const mtimes = new Map<string, number>();
  for (const dir of parents) {
    const st = await root.lstat(dir).catch(() => undefined);
    if (st) mtimes.set(dir, st.mtimeMs);
  }
  try {
    for (const move of moves) {
      if (!move.replaces) {
        await root.rename(move.from, move.to, { noReplace: true });
        done.push({ ...move, how: 'new' });
        continue;
      }
      if (exchange) {
        try {
          await root.rename(move.from, move.to, { exchange: true });
          done.push({ ...move, how: 'exchange' });
          continue;
        } catch (err) {
          if (errnoOf(err) !== 'EINVAL') throw err;
          exchange = false;
        }
      }
      // Names beginning with TMP_PREFIX never come from an archive (entryPath refuses them).
      const aside = joinRel(staging, `${TMP_PREFIX}aside-${done.length}`);
      await root.rename(move.to, aside, { noReplace: true });
      try {
        await root.rename(move.from, move.to, { noReplace: true });
      } catch (err) {
        await root.rename(aside, move.to).catch((undoErr: unknown) => {
          log.error(
            { err: undoErr, path: displayPath(move.to) },
            'archive: could not restore a replaced entry',
          );
        });
        throw err;
      }
      done.push({ ...move, how: 'aside', aside });
    }
  } catch (err) {
    for (const move of done.reverse()) {
      try {
        if (move.how === 'exchange') {
          await root.rename(move.from, move.to, { exchange: true });
        } else {
          await root.rename(move.to, move.from, { noReplace: true });
          if (move.aside !== undefined) await root.rename(move.aside, move.to, { noReplace: true });
        }
      } catch (undoErr) {
        log.error({ err: undoErr, path: displayPath(move.to) }, 'archive: could not undo a merged entry');
      }
    }
    for (const [dir, mtimeMs] of mtimes) {
      await root.lutimes(dir, null, new Date(mtimeMs)).catch((undoErr: unknown) => {
        log.error({ err: undoErr, path: displayPath(dir, true) }, 'archive: could not restore a mtime');
      });
    }
    throw err;
  }
}

/** The methods of every /archive resource (the `Allow` of a 405). */
export const ARCHIVE_METHODS: readonly string[] = ['GET', 'HEAD', 'PUT'];

export const archiveRoutes: FastifyPluginAsync<ArchiveRoutesOptions> = async (app, options) => {
  const { treeOf, maxUpload, uploads: slots } = await setUpRoutes(app, options);
  const prefix = app.prefix;

  const getArchive = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const { root } = treeOf(request);
    const { rel } = requestPath(prefix, request.raw.url ?? '/');
    const shown = displayPath(rel, true);
    let st: BeneathStat;
    try {
      st = await root.stat(rel);
    } catch (err) {
      throw fsError(err, shown);
    }
    if (st.type !== 'dir') throw ngError('NG_ERR_CONFLICT', `not a directory: ${displayPath(rel)}`);
    const gzip = truthyQuery((request.query as Record<string, unknown>).gzip);

    const pack = tar.pack();
    const abort = new AbortController();
    // A client that goes away stops the walk at the next entry (and its pending write fails).
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      abort.abort(new Error('client disconnected'));
      pack.destroy();
    });
    const writer = new TreeWriter(root, pack, abort.signal, request.log);
    writer.walk(rel, '').then(
      () => pack.finalize(),
      (err: unknown) => {
        if (!abort.signal.aborted) request.log.error({ err, path: shown }, 'archive: walk failed');
        pack.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
    // tar-stream's streams are streamx streams; Readable.from makes a Node stream of it, and
    // destroying that (Fastify does when the response closes) destroys the pack.
    const tarStream = Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false });
    const name = rel === '' ? 'root' : baseOf(rel);
    void reply
      .header(
        'content-disposition',
        `attachment; filename="${encodeURIComponent(name)}.tar${gzip ? '.gz' : ''}"`,
      )
      .header('cache-control', 'no-store');
    if (!gzip) return reply.type('application/x-tar').send(tarStream);
    const gz = pipeline(tarStream, createGzip(), () => undefined);
    return reply.type('application/gzip').send(gz);
  };

  const putArchive = async (request: FastifyRequest, reply: FastifyReply): Promise<ArchiveResult> => {
    let release: () => void;
    let rel: string;
    let root: BeneathRoot;
    try {
      const tree = treeOf(request);
      root = tree.root;
      if (!tree.writable)
        throw ngError('NG_ERR_READ_ONLY', 'the server is read-only (start it with --writable)');
      rel = requestPath(prefix, request.raw.url ?? '/').rel;
      const declared = Number(request.headers['content-length'] ?? 0);
      if (declared > maxUpload) throw tooLarge(maxUpload);
      release = slots.acquire();
    } catch (err) {
      // Refused before reading the body: reading it only to discard it could mean gigabytes,
      // and on a kept-alive connection it would be parsed as the next request (RFC 9112 §9.6).
      if (!request.raw.complete) closeAfterResponse(reply);
      throw err;
    }
    try {
      return await stageAndCommit(request, reply, root, rel);
    } finally {
      release();
    }
  };

  const stageAndCommit = async (
    request: FastifyRequest,
    reply: FastifyReply,
    root: BeneathRoot,
    rel: string,
  ): Promise<ArchiveResult> => {
    const { exists, near } = await locate(root, rel);
    let staging: string;
    let lockFd: number;
    try {
      staging = joinRel(await root.tempDirFor(near), `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
      await root.mkdir(staging, 0o700);
      // Held until the request is over: another server's startup sweep leaves a locked one alone.
      lockFd = await root.open(staging, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      lockTemporary(lockFd);
    } catch (err) {
      throw fsError(err, displayPath(rel, true));
    }
    const req = request.raw;
    try {
      const stager = new Stager(root, staging, rel, maxUpload);
      await extract(req, stager, maxUpload);
      const created = await commit(root, stager, staging, rel, exists, request.log);
      void reply.code(created ? 201 : 200);
      return stager.result;
    } catch (err) {
      await root.rm(staging, { recursive: true, force: true }).catch((cleanupErr: unknown) => {
        request.log.error({ err: cleanupErr }, 'archive: could not remove the staging directory');
      });
      // Read and discard what the client is still sending, so it gets to read our answer;
      // past the upload limit, close instead.
      if (errnoOf(err) === 'NG_ERR_PAYLOAD_TOO_LARGE' || !req.readable) {
        closeAfterResponse(reply);
      } else {
        req.unpipe();
        req.resume();
      }
      throw fsError(err, displayPath(rel, true));
    } finally {
      await closeAsync(lockFd);
    }
  };

  app.get('/', getArchive);
  app.get('/*', getArchive);
  app.put('/', putArchive);
  app.put('/*', putArchive);
  // Other methods: 405 with Allow (GET brings HEAD along), not the gateway's 404 "no route".
  const others = app.supportedMethods.filter((m) => !ARCHIVE_METHODS.includes(m));
  const refuse = (request: FastifyRequest, reply: FastifyReply) =>
    methodNotAllowed(request, reply, ARCHIVE_METHODS, prefix);
  app.route({ method: others, url: '/', handler: refuse });
  app.route({ method: others, url: '/*', handler: refuse });
};

/** Body → (gunzip) → tar entries → the stager. Resolves when the whole archive is staged. */
async function extract(req: IncomingMessage, stager: Stager, maxUpload: number): Promise<void> {
  const body = new ByteCounter(maxUpload, () => tooLarge(maxUpload));
  const tarBytes = new ByteCounter(Number.MAX_SAFE_INTEGER, () => new Error('unreachable'));
  const extractor = tar.extract();
  // The first failure wins; it reaches the loop below through the extractor's iterator, or
  // through `failed` while the gzip check still waits for the first bytes.
  let failure: Error | undefined;
  let rejectFailed: (err: Error) => void = () => undefined;
  const failed = new Promise<never>((_resolve, reject) => (rejectFailed = reject));
  failed.catch(() => undefined);
  extractor.on('error', () => undefined);
  const fail = (err: Error): void => {
    failure ??= err;
    rejectFailed(err);
    extractor.destroy(err);
  };
  // A client that disconnects mid-body ends the request without 'end' (Node: 'aborted', then
  // 'close'), which must fail the extraction rather than look like a short archive.
  const onClose = (): void => {
    if (!req.readableEnded)
      fail(ngError('NG_ERR_ARCHIVE_INVALID', 'the client disconnected before the archive ended'));
  };
  req.once('close', onClose);
  req.once('error', (err) => fail(ngError('NG_ERR_ARCHIVE_INVALID', 'the request body failed', err)));
  // The client may have gone before this handler ran (its 'close' is then already past).
  if (req.destroyed) onClose();
  body.once('error', fail);
  tarBytes.once('error', fail);
  req.pipe(body);

  let lastEnd = 0;
  try {
    // gzip is recognised by its magic bytes (RFC 1952 §2.3.1), not by headers: curl -T and
    // most scripts send no useful Content-Type.
    const head = await Promise.race([body.head, failed]);
    if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
      const gunzip = createGunzip();
      gunzip.once('error', (err) =>
        fail(ngError('NG_ERR_ARCHIVE_INVALID', `not a valid gzip stream: ${err.message}`, err)),
      );
      body.pipe(gunzip).pipe(tarBytes);
    } else {
      body.pipe(tarBytes);
    }
    tarBytes.pipe(extractor as unknown as NodeJS.WritableStream);
    // A destroyed extractor's iterator would wait forever: fail before entering it.
    if (failure !== undefined) throw failure;

    for await (const entry of extractor) {
      const header = entry.header as TarHeader;
      // Where this entry's data ends (tar-stream skips data for directories only).
      const data = header.type === 'directory' ? 0 : (header.size ?? 0);
      lastEnd = (header.byteOffset ?? 0) + blockAlign(data);
      await stager.entry(entry);
      entry.resume();
    }
  } catch (err) {
    if (isNullgateError(err)) throw err;
    throw ngError(
      'NG_ERR_ARCHIVE_INVALID',
      `not a readable tar archive: ${err instanceof Error ? err.message : String(err)}`,
      err,
    );
  } finally {
    req.removeListener('close', onClose);
    body.unpipe();
    tarBytes.unpipe();
  }
  if (!hasEndOfArchive(tarBytes.bytes, lastEnd)) {
    throw ngError('NG_ERR_ARCHIVE_INVALID', 'the archive is truncated (no end-of-archive blocks)');
  }
}

/** Moves the staged tree into place; true when the target directory was created. */
async function commit(
  root: BeneathRoot,
  stager: Stager,
  staging: string,
  target: string,
  exists: boolean,
  log: FastifyBaseLogger,
): Promise<boolean> {
  if (!exists) {
    await stager.finish();
    await stager.applyRoot(stager.rootMeta ?? { mode: 0o755 });
    await root.mkdirp(parentOf(target));
    try {
      await root.rename(staging, target, { noReplace: true });
      await root.fsyncDir(parentOf(target));
      return true;
    } catch (err) {
      // Someone created the target meanwhile: merge into it like into any existing directory.
      if (errnoOf(err) !== 'EEXIST' && errnoOf(err) !== 'ENOTEMPTY') throw err;
    }
  }
  const moves: MergeMove[] = [];
  const merged = new Set<string>();
  await planMerge(root, staging, target, '', moves, merged);
  await stager.finish(merged);
  await applyMoves(root, moves, staging, log);
  // The new names are durable once each directory that received one is fsynced.
  for (const dir of new Set(moves.map((m) => parentOf(m.to)))) await root.fsyncDir(dir);
  // What is left in the staging tree is the replaced entries and the merged directories'
  // shells. The merge is done: a failure here is the server's to log, not the client's error
  // (and the sweep of the next start removes a staging directory at the top of the root).
  await root.rm(staging, { recursive: true }).catch((err: unknown) => {
    log.error({ err }, 'archive: could not remove the staging directory');
  });
  return false;
}
