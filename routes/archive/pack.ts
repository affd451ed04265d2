/**
 * `GET /archive/<dir>`'s tar writer: the tree beneath the root as a pax tar stream that keeps
 * what `tar --xattrs --sparse --numeric-owner -p` keeps (CONTRACT.md "Trees arrive as they
 * left"): numeric owners, every mode bit, nanosecond mtimes, hard links as link members,
 * extended attributes, sparse files as GNU sparse 1.0 members, FIFOs and device nodes. Sockets
 * cannot be archived: they are skipped, and named in one warning line at the end.
 *
 * The first member is `./`, the top directory itself (as GNU tar `-C dir .` writes it). Then
 * deterministic: each directory's entries go out in byte order of their names, a directory
 * before its contents (GNU tar --sort=name), and nothing that reading changes (atime) is
 * written, so the same tree gives the same bytes twice.
 *
 * Streaming with bounded memory: an async generator read by a Node Readable, so the walk only
 * advances when the socket takes more (backpressure). It holds one file open at a time and the
 * sorted names of the directories on the current path (a directory's names must all be read to
 * sort them, as GNU tar --sort=name does); hard-link bookkeeping keeps an inode only until its
 * last name has been seen. Everything on disk goes through the beneath-root layer
 * (native/beneath.ts): each directory is opened from its parent's fd with O_DIRECTORY |
 * O_NOFOLLOW (BeneathDir) and its entries are looked up from that fd, files are opened
 * O_NOFOLLOW, and every header comes from the open fd (fstat), so a directory or file swapped
 * for a symlink during the walk is skipped, never followed or walked under the wrong name. The header
 * encoding is core/tar-header.ts's.
 */
import { constants as fsc, read as readCb } from 'node:fs';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';

import type { FastifyBaseLogger } from 'fastify';

import { codeOf } from '../../core/errors.js';
import {
  type ManifestType,
  type XattrScope,
  manifestEntry,
  manifestLine,
  manifestTypeOfMode,
  xattrDigest,
} from '../../core/manifest.js';
import { nameToBytes } from '../../core/name-bytes.js';
import { ancestorsOf, displayPath, isTempName, joinRel } from '../../core/rel-path.js';
import {
  END_OF_ARCHIVE,
  type HeaderSpec,
  type SparseSegment,
  TYPEFLAG,
  encodeHeader,
  paddingOf,
  sparseMapBlock,
  sparseMapOf,
} from '../../core/tar-header.js';
import { BeneathDir, type BeneathRoot, type BeneathStat, type Xattr, closeFd } from '../../native/beneath.js';

const readAsync = promisify(readCb);

/** Bytes read from a file per chunk. */
const READ_CHUNK = 256 * 1024;
const ZEROS = Buffer.alloc(READ_CHUNK);
/** A sparse map longer than this ends in one data segment (zeros stored): memory stays bounded. */
const MAX_SPARSE_SEGMENTS = 65536;
/** Socket names kept for the warning line (the count is always exact). */
const MAX_SOCKETS_NAMED = 100;

/**
 * A range of an open file that goes into the archive as it is: a member's data, or one segment
 * of a sparse file's. The fd belongs to the walk and stays open until the next piece is asked
 * for; the consumer reads it (`readFileRange`) or sends it with sendfile (routes/archive/send.ts).
 */
export interface FileRange {
  readonly fd: number;
  readonly offset: number;
  readonly length: number;
  /** The file, for messages. */
  readonly rel: string;
}

/** The archive as it is produced: bytes made by Node (headers, maps, padding) and file ranges. */
export type Piece = Buffer | FileRange;

/**
 * The tree at `rel` as tar pieces, names relative to `rel`. The walk stops at the next entry
 * once `signal` aborts; leaving the iteration early (`return()`) closes the open file. A walk
 * that fails throws its error (logged unless the request was aborted).
 */
export function packPieces(
  root: BeneathRoot,
  rel: string,
  signal: AbortSignal,
  log: FastifyBaseLogger,
  options: PackOptions = {},
): AsyncGenerator<Piece> {
  return new TreeWriter(root, signal, log, options).archive(rel);
}

export interface PackOptions {
  /**
   * Leave out `trusted.*` extended attributes: only a process with CAP_SYS_ADMIN can read them,
   * so a server running as root must not hand them to a peer that is not root.
   */
  readonly withoutTrusted?: boolean;
  /**
   * Only these entries (paths relative to the archived directory, '' for the directory itself,
   * archived as `./`): `POST /archive/<dir>?select=1`. The walk enters only the directories on
   * the way to a selected path. Hard links are made between selected names only.
   */
  readonly select?: ReadonlySet<string>;
  /**
   * Instead of tar members, one manifest line per entry (core/manifest.ts), the directory itself
   * first: `GET /archive/<dir>?manifest=1`. The same walk, so the same order and the same
   * entries as the archive.
   */
  readonly manifest?: ManifestOptions;
}

export interface ManifestOptions {
  /** Which extended attributes the digests cover. */
  readonly xattrs: XattrScope;
  /** The sha-256 (hex) of a regular file's content, from its open fd: `checksum=1`. */
  readonly checksum?: (fd: number, st: BeneathStat, rel: string) => Promise<string>;
}

/**
 * The tree at `rel` as a tar byte stream, file data read through JS: for `?gzip=1` and for
 * responses that cannot take sendfile. Destroying the stream stops the walk and closes the
 * file it had open.
 */
export function packTree(
  root: BeneathRoot,
  rel: string,
  signal: AbortSignal,
  log: FastifyBaseLogger,
  options: PackOptions = {},
): Readable {
  return Readable.from(pieceBytes(packPieces(root, rel, signal, log, options), signal, log), {
    objectMode: false,
    highWaterMark: READ_CHUNK,
  });
}

/** The pieces as bytes: file ranges read through JS. */
export async function* pieceBytes(
  pieces: AsyncGenerator<Piece>,
  signal: AbortSignal,
  log: FastifyBaseLogger,
): AsyncGenerator<Buffer> {
  for await (const piece of pieces) {
    if (Buffer.isBuffer(piece)) yield piece;
    else yield* readFileRange(piece, signal, log);
  }
}

/**
 * The bytes of a file range, read with pread in chunks. A file that shrank while being read is
 * padded with zeros: its header already promised the size (what GNU tar does, with the same
 * warning).
 */
export async function* readFileRange(
  range: FileRange,
  signal: AbortSignal,
  log: FastifyBaseLogger,
): AsyncGenerator<Buffer> {
  let done = 0;
  while (done < range.length) {
    signal.throwIfAborted();
    const want = Math.min(READ_CHUNK, range.length - done);
    const buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await readAsync(range.fd, buf, 0, want, range.offset + done);
    if (bytesRead === 0) {
      shrank(range, done, log);
      yield* zeros(range.length - done);
      return;
    }
    yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
    done += bytesRead;
  }
}

/** Logs that a file ended before the size its header promised. */
export function shrank(range: FileRange, read: number, log: FastifyBaseLogger): void {
  log.warn(
    { path: displayPath(range.rel), offset: range.offset, length: range.length, read },
    'archive: file shrank while read',
  );
}

/** `n` zero bytes, in chunks of one shared buffer. */
export function* zeros(n: number): Generator<Buffer> {
  for (let left = n; left > 0; left -= ZEROS.length) yield ZEROS.subarray(0, Math.min(left, ZEROS.length));
}

/** A byte-order sort key for a name (strcmp order of its UTF-8 bytes, as `LC_ALL=C sort`). */
function byBytes(a: { key: Buffer }, b: { key: Buffer }): number {
  return Buffer.compare(a.key, b.key);
}

function isMissing(err: unknown): boolean {
  return codeOf(err) === 'ENOENT';
}

/** Entries of a manifest looked up at once (TreeWriter's #prefetch). */
const PREFETCH = 64;

interface Prefetched {
  readonly st: BeneathStat;
  readonly xattrs: Xattr[];
}

class TreeWriter {
  readonly #root: BeneathRoot;
  readonly #signal: AbortSignal;
  readonly #log: FastifyBaseLogger;
  readonly #withoutTrusted: boolean;
  readonly #select: ReadonlySet<string> | undefined;
  /** The directories on the way to a selected path (and the selected ones): the walk enters these. */
  readonly #enter: ReadonlySet<string> | undefined;
  readonly #manifest: ManifestOptions | undefined;
  /** dev:ino of entries with more links than seen so far → first name, names still to come. */
  readonly #links = new Map<string, { name: string; left: number }>();
  readonly #sockets: string[] = [];
  #socketCount = 0;

  constructor(root: BeneathRoot, signal: AbortSignal, log: FastifyBaseLogger, options: PackOptions) {
    this.#root = root;
    this.#signal = signal;
    this.#log = log;
    this.#withoutTrusted = options.withoutTrusted === true;
    this.#manifest = options.manifest;
    this.#select = options.select;
    if (options.select !== undefined) {
      const enter = new Set<string>(['']);
      for (const p of options.select) {
        enter.add(p);
        for (const a of ancestorsOf(p)) enter.add(a);
      }
      this.#enter = enter;
    }
  }

  /** Is the entry `name` (its path in the archive) part of the output? */
  #selected(name: string): boolean {
    return this.#select === undefined || this.#select.has(name);
  }

  async *archive(rel: string): AsyncGenerator<Piece> {
    try {
      const top = await BeneathDir.open(this.#root, rel);
      try {
        // The `./` member (or manifest line) first; a selection has it only when it lists ''.
        if (this.#selected('')) yield await this.#top(top);
        yield* this.#walk(top, '');
      } finally {
        await top.close();
      }
      if (this.#manifest === undefined) yield END_OF_ARCHIVE;
      if (this.#socketCount > 0) {
        this.#log.warn(
          { path: displayPath(rel), count: this.#socketCount, sockets: this.#sockets },
          'archive: sockets skipped (tar cannot carry them)',
        );
      }
    } catch (err) {
      if (!this.#signal.aborted)
        this.#log.error({ err, path: displayPath(rel, true) }, 'archive: walk failed');
      throw err;
    }
  }

  /**
   * The `./` member (in a manifest, the line with path ''): the top directory's own mode, owner,
   * mtime and attributes, first, as GNU
   * tar `-C dir .` writes it, so they travel too (an extraction applies them to its target
   * directory after its contents). Read from the open directory, like a file's header.
   */
  async #top(dir: BeneathDir): Promise<Buffer> {
    const st = await dir.stat();
    const xattrs = await this.#xattrs(() => dir.ownXattrs());
    if (this.#manifest !== undefined) return this.#line('', 'dir', st, xattrs);
    return encodeHeader({ ...this.#spec('./', st, xattrs), typeflag: TYPEFLAG.dir, size: 0 });
  }

  /** One manifest line. */
  #line(
    name: string,
    type: ManifestType,
    st: BeneathStat,
    xattrs: readonly Xattr[] | undefined,
    extra: { target?: string; link?: string; sha256?: string } = {},
  ): Buffer {
    return manifestLine(
      manifestEntry({
        path: name,
        type,
        size: st.size,
        mtimeNs: st.mtimeNs,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        rdev: type === 'char' || type === 'block' ? [st.rdevMajor, st.rdevMinor] : undefined,
        xattrs: xattrs && xattrDigest(xattrs, this.#manifest?.xattrs ?? 'all'),
        ...extra,
      }),
    );
  }

  /** The names in `dir`, in byte order, without the server's temporaries. */
  async #sortedNames(dir: BeneathDir): Promise<string[]> {
    const names: { key: Buffer; name: string }[] = [];
    for await (const batch of dir.readdirBatches()) {
      this.#signal.throwIfAborted();
      // A PUT in progress stages here; half-extracted trees are not part of the tree.
      for (const e of batch) if (!isTempName(e.name)) names.push({ key: nameToBytes(e.name), name: e.name });
    }
    return names.sort(byBytes).map((n) => n.name);
  }

  /**
   * The members for the contents of the open directory `dir` (names relative to `prefix` in
   * the archive). Every entry is looked up from `dir`'s fd, never by a path from the root, so
   * a directory on the way swapped for a symlink meanwhile cannot redirect the walk.
   */
  async *#walk(dir: BeneathDir, prefix: string): AsyncGenerator<Piece> {
    let names: string[];
    try {
      names = await this.#sortedNames(dir);
    } catch (err) {
      // Removed since it was opened (getdents of a deleted directory): as GNU tar, go on.
      if (prefix !== '' && isMissing(err)) return;
      throw err;
    }
    const chosen =
      this.#enter === undefined ? names : names.filter((name) => this.#enter!.has(joinRel(prefix, name)));
    for (let at = 0; at < chosen.length; at += PREFETCH) {
      const batch = chosen.slice(at, at + PREFETCH);
      const pre = this.#manifest === undefined ? [] : await this.#prefetch(dir, batch);
      for (const [i, name] of batch.entries()) {
        this.#signal.throwIfAborted();
        yield* this.#entry(dir, name, joinRel(prefix, name), pre[i]);
      }
    }
  }

  /**
   * A manifest's lstats and attribute lists of a batch of names, asked for all at once (the
   * thread pool works on several, as a listing's stats are): one entry after the other, each
   * waiting on its syscalls, a 10,000-entry tree took four times as long. Entries are still
   * described in order from these (hard links are told in walk order); a failed prefetch is
   * left undefined and asked again in order.
   */
  async #prefetch(dir: BeneathDir, names: string[]): Promise<(Prefetched | undefined)[]> {
    return Promise.all(
      names.map(async (name) => {
        try {
          const st = await dir.lstat(name);
          const fmt = st.mode & fsc.S_IFMT;
          if (fmt === fsc.S_IFDIR || fmt === fsc.S_IFSOCK) return { st, xattrs: [] };
          return { st, xattrs: await this.#xattrs(() => dir.readXattrs(name)) };
        } catch {
          return undefined;
        }
      }),
    );
  }

  /** The header fields every member shares, from a stat. */
  #spec(name: string, st: BeneathStat, xattrs: readonly Xattr[]): Omit<HeaderSpec, 'typeflag' | 'size'> {
    return { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtimeNs: st.mtimeNs, xattrs };
  }

  /**
   * A link member when `st` is an inode already archived under another name; else remembers
   * this name as its first when more names are to come.
   */
  #hardlink(name: string, st: BeneathStat): Buffer | undefined {
    if (st.nlink < 2) return undefined;
    const key = `${st.dev}:${st.ino}`;
    const first = this.#links.get(key);
    if (first === undefined) {
      this.#links.set(key, { name, left: st.nlink - 1 });
      return undefined;
    }
    if (--first.left <= 0) this.#links.delete(key);
    if (this.#manifest !== undefined) {
      return this.#line(name, manifestTypeOfMode(st.mode) ?? 'file', st, undefined, { link: first.name });
    }
    return encodeHeader({
      ...this.#spec(name, st, []),
      typeflag: TYPEFLAG.hardlink,
      size: 0,
      linkname: first.name,
    });
  }

  /** The extended attributes of `rel` itself (none where the file system has none). */
  async #xattrs(read: () => Promise<Xattr[]>): Promise<Xattr[]> {
    let all: Xattr[];
    try {
      all = await read();
    } catch (err) {
      if (codeOf(err) === 'ENOTSUP' || codeOf(err) === 'EOPNOTSUPP') return [];
      throw err;
    }
    return this.#withoutTrusted ? all.filter((x) => !x.name.startsWith('trusted.')) : all;
  }

  async *#entry(dir: BeneathDir, base: string, name: string, pre?: Prefetched): AsyncGenerator<Piece> {
    const rel = joinRel(dir.rel, base);
    let st: BeneathStat;
    try {
      st = pre?.st ?? (await dir.lstat(base));
    } catch (err) {
      if (isMissing(err)) return; // removed since the listing
      throw err;
    }
    const format = st.mode & fsc.S_IFMT;
    if (format === fsc.S_IFDIR) {
      // A directory that is not selected itself may still be on the way to selected entries.
      yield* this.#dir(dir, base, name);
      return;
    }
    if (!this.#selected(name)) return;
    // A manifest without checksums needs no open file: the lstat says it all.
    if (format === fsc.S_IFREG && (this.#manifest === undefined || this.#manifest.checksum !== undefined)) {
      yield* this.#file(dir, base, name);
      return;
    }
    if (format === fsc.S_IFSOCK) {
      this.#socketCount++;
      if (this.#sockets.length < MAX_SOCKETS_NAMED) this.#sockets.push(displayPath(rel));
      return;
    }
    let xattrs: Xattr[];
    let linkname = '';
    try {
      xattrs = pre?.xattrs ?? (await this.#xattrs(() => dir.readXattrs(base)));
      if (format === fsc.S_IFLNK) linkname = await dir.readlink(base);
    } catch (err) {
      // Removed, or replaced by something else (readlink of a non-link is EINVAL) meanwhile.
      if (isMissing(err) || codeOf(err) === 'EINVAL') return;
      throw err;
    }
    const link = this.#hardlink(name, st);
    if (link !== undefined) {
      yield link;
      return;
    }
    if (this.#manifest !== undefined) {
      const type = manifestTypeOfMode(st.mode);
      if (type === undefined) return;
      yield this.#line(name, type, st, xattrs, {
        ...(type === 'symlink' && { target: linkname }),
        ...(st.nlink > 1 && { link: name }),
      });
      return;
    }
    const spec = this.#spec(name, st, xattrs);
    switch (format) {
      case fsc.S_IFLNK:
        yield encodeHeader({ ...spec, typeflag: TYPEFLAG.symlink, size: 0, linkname });
        return;
      case fsc.S_IFIFO:
        yield encodeHeader({ ...spec, typeflag: TYPEFLAG.fifo, size: 0 });
        return;
      case fsc.S_IFCHR:
      case fsc.S_IFBLK:
        yield encodeHeader({
          ...spec,
          typeflag: format === fsc.S_IFCHR ? TYPEFLAG.char : TYPEFLAG.block,
          size: 0,
          devmajor: st.rdevMajor,
          devminor: st.rdevMinor,
        });
        return;
      default:
        this.#log.warn({ path: displayPath(rel) }, 'archive: skipping an entry of unknown type');
    }
  }

  /**
   * A directory member and then its contents. The directory is opened from its parent's fd with
   * O_DIRECTORY | O_NOFOLLOW, and its header comes from that fd: a directory swapped for a
   * symlink since the listing is refused (ENOTDIR or ELOOP) and skipped, as a file
   * swapped the same way is, never walked under the directory's name.
   */
  async *#dir(parent: BeneathDir, base: string, name: string): AsyncGenerator<Piece> {
    let dir: BeneathDir;
    try {
      dir = await parent.openDir(base);
    } catch (err) {
      if (isMissing(err) || codeOf(err) === 'ELOOP' || codeOf(err) === 'ENOTDIR') return;
      throw err;
    }
    try {
      const st = await dir.stat();
      if (this.#selected(name)) {
        const xattrs = await this.#xattrs(() => dir.ownXattrs());
        yield this.#manifest !== undefined
          ? this.#line(name, 'dir', st, xattrs)
          : encodeHeader({ ...this.#spec(`${name}/`, st, xattrs), typeflag: TYPEFLAG.dir, size: 0 });
      }
      yield* this.#walk(dir, name);
    } finally {
      await dir.close();
    }
  }

  async *#file(dir: BeneathDir, base: string, name: string): AsyncGenerator<Piece> {
    const rel = joinRel(dir.rel, base);
    // O_NOFOLLOW: a symlink swapped in since the lstat is not followed (ELOOP, skipped);
    // O_NONBLOCK: a FIFO swapped in does not block the thread pool. The header comes from the
    // fd, so it describes exactly what is read.
    let fd: number;
    try {
      fd = await dir.open(base, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    } catch (err) {
      if (isMissing(err) || codeOf(err) === 'ELOOP') return;
      throw err;
    }
    try {
      const st = await this.#root.fstat(fd, rel);
      if (st.type !== 'file') return;
      const link = this.#hardlink(name, st);
      if (link !== undefined) {
        yield link;
        return;
      }
      const xattrs = await this.#xattrs(() => this.#root.freadXattrs(fd, rel));
      if (this.#manifest !== undefined) {
        const sha256 = await this.#manifest.checksum?.(fd, st, rel);
        yield this.#line(name, 'file', st, xattrs, {
          ...(sha256 !== undefined && { sha256 }),
          ...(st.nlink > 1 && { link: name }),
        });
        return;
      }
      const spec = this.#spec(name, st, xattrs);
      const data = await this.#sparseData(fd, st, rel);
      if (data === undefined) {
        yield encodeHeader({ ...spec, typeflag: TYPEFLAG.file, size: st.size });
        if (st.size > 0) yield { fd, offset: 0, length: st.size, rel };
        const pad = paddingOf(st.size);
        if (pad > 0) yield ZEROS.subarray(0, pad);
        return;
      }
      const mapBlock = sparseMapBlock(sparseMapOf(data, st.size));
      const stored = mapBlock.length + data.reduce((n, s) => n + s.size, 0);
      yield encodeHeader({ ...spec, typeflag: TYPEFLAG.file, size: stored, sparse: { realSize: st.size } });
      yield mapBlock;
      for (const seg of data) if (seg.size > 0) yield { fd, offset: seg.offset, length: seg.size, rel };
      const pad = paddingOf(stored);
      if (pad > 0) yield ZEROS.subarray(0, pad);
    } finally {
      await closeFd(fd);
    }
  }

  /**
   * The data segments of a sparse file, found with SEEK_DATA/SEEK_HOLE (never by reading
   * zeros), or undefined when the file is not sparse: GNU tar's test, fewer blocks allocated
   * than its size needs, and then a map with at least one hole.
   */
  async #sparseData(fd: number, st: BeneathStat, rel: string): Promise<SparseSegment[] | undefined> {
    if (st.size === 0 || st.blocks * 512 >= st.size) return undefined;
    const segments: SparseSegment[] = [];
    let at = 0;
    while (at < st.size) {
      const data = await this.#root.nextData(fd, at, rel);
      if (data === null || data >= st.size) break;
      const hole = Math.min((await this.#root.nextHole(fd, data, rel)) ?? st.size, st.size);
      if (segments.length === MAX_SPARSE_SEGMENTS - 1) {
        segments.push({ offset: data, size: st.size - data });
        break;
      }
      segments.push({ offset: data, size: hole - data });
      at = hole;
    }
    const first = segments[0];
    if (segments.length === 1 && first!.offset === 0 && first!.size === st.size) return undefined;
    return segments;
  }
}
