/**
 * `PUT /archive/<dir>`'s first half: the request body (a tar stream, gzipped or not) extracted
 * into a hidden staging directory (`.nullgate-tmp-<random>`), which routes/archive/merge.ts then
 * moves into place — only when every entry succeeded; any failure removes it.
 *
 * The staging directory is made at the top of the root when that is on the target's mount, so
 * that a server killed mid-upload leaves it where the next start's sweep looks
 * (BeneathRoot.sweepTemporaries, which reads the root directory only); a target on another
 * mount stages beside itself, where a rename into place still works and the leftover of a kill
 * is never served, listed or archived.
 *
 * Everything on disk goes through the beneath-root layer (native/beneath.ts), so the kernel
 * confines every lookup to the served root, also against symlinks swapped in while a request
 * runs. tar-stream does the format; the entry rules are core/tar-entry.ts's.
 */
import { randomBytes } from 'node:crypto';
import {
  constants as fsc,
  close as closeCb,
  fchmod as fchmodCb,
  fsync as fsyncCb,
  ftruncate as ftruncateCb,
  futimes as futimesCb,
  write as writeCb,
} from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';

import tar from 'tar-stream';

import { codeOf, fsError, isNullgateError, ngError, type NullgateError } from '../../core/errors.js';
import {
  ancestorsOf,
  displayPath,
  joinRel,
  parentOf,
  shortened,
  TEMP_NAME_PREFIX,
} from '../../core/rel-path.js';
import {
  blockAlign,
  checkSymlink,
  entryKind,
  entryLabel,
  entryPath,
  extractedMode,
  hardlinkTarget,
  hasEndOfArchive,
  invalidEntry,
  isAllZero,
  symlinkPrefix,
  unsafeEntry,
} from '../../core/tar-entry.js';
import { type BeneathRoot, beneathConstants, lockTemporary } from '../../native/beneath.js';
import { BodyMemory } from '../../native/memory.js';

const closeAsync = promisify(closeCb);
const fchmodAsync = promisify(fchmodCb);
const fsyncAsync = promisify(fsyncCb);
const ftruncateAsync = promisify(ftruncateCb);
const futimesAsync = promisify(futimesCb);
const writeAsync = promisify(writeCb);

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
 * tar-stream's header as it really is: `pax` holds the records it read, `byteOffset` is where
 * the entry's data starts, and `type` is null for types it does not know.
 */
type TarHeader = Omit<Partial<tar.Header>, 'type' | 'pax'> & {
  name: string;
  type?: tar.Header['type'] | null;
  pax?: Record<string, string> | null;
  byteOffset?: number;
};

/** An entry of tar.extract(): its header and its data (a streamx Readable). */
type TarEntry = tar.ExtractEvents['entry'][1];

/** A new staging directory in `near` (relative to the root) and the fd that locks it. */
export interface Staging {
  readonly dir: string;
  /** Held until the request is over: another server's startup sweep leaves a locked one alone. */
  readonly lockFd: number;
}

/** Makes (and locks) a staging directory for a tree that is to end up in or below `near`. */
export async function makeStaging(root: BeneathRoot, near: string): Promise<Staging> {
  const dir = joinRel(await root.tempDirFor(near), `${TEMP_NAME_PREFIX}${randomBytes(8).toString('hex')}`);
  await root.mkdir(dir, 0o700);
  const lockFd = await root.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  lockTemporary(lockFd);
  return { dir, lockFd };
}

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

export function tooLarge(limit: number): NullgateError {
  return ngError('NG_ERR_PAYLOAD_TOO_LARGE', `archive larger than the upload limit (${limit} bytes)`);
}

export interface DirMeta {
  mode: number;
  mtime?: Date;
}

/**
 * Extracts one archive into `staging` (relative to the root). `finalBase` is where the
 * staged tree will live, so symlink targets are judged from their final location.
 */
export class Stager {
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
    for (const dir of ancestorsOf(rel)) {
      if (this.#dirs.has(dir)) continue;
      try {
        await this.#root.mkdir(this.#at(dir), 0o700);
        this.result.dirs++;
        // A directory the archive implies but never lists gets the usual default mode.
        this.#dirMeta.set(dir, { mode: 0o755 });
      } catch (err) {
        if (codeOf(err) !== 'EEXIST') throw err;
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
      if (codeOf(err) !== 'ENOENT') throw err;
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
    // The target must be a file this archive already put in the staging directory.
    const target = hardlinkTarget(name, linkname);
    if (symlinkPrefix(target, this.#symlinks) !== undefined || this.#symlinks.has(target)) {
      throw unsafeEntry(name, `hard link through or to a symlink (${shortened(linkname)})`);
    }
    let fd: number;
    try {
      fd = await this.#root.open(this.#at(target), beneathConstants.O_PATH | fsc.O_NOFOLLOW);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT' && codeOf(err) !== 'ENOTDIR') throw err;
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

/** Body → (gunzip) → tar entries → the stager. Resolves when the whole archive is staged. */
export async function extract(req: IncomingMessage, stager: Stager, maxUpload: number): Promise<void> {
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
