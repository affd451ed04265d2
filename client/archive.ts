/**
 * The local side of `pull` and `push`: extracting the server's tar stream into a local
 * directory, safely, and packing a local directory into one. Loaded lazily (only these two
 * verbs need it).
 *
 * Extraction is the server's own (native/tree-writer.ts over core/tar-read.ts), beneath
 * LOCAL_DIR opened as a root of the beneath-root layer: every lookup is confined by the kernel
 * (openat2 RESOLVE_BENEATH), so a symlink leading out of LOCAL_DIR is created as the archive
 * says but never written through, also when one is swapped in while the pull runs. What the
 * local user may set follows core/set-rule.ts: root restores owners, set-id bits, every
 * extended attribute and device nodes (like `tar -xp` as root); anyone else keeps modes minus
 * set-id bits and `user.*` attributes, and device nodes are skipped with a warning.
 */
import { constants as fsc, promises as fsp, read as readCb, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import path from 'node:path';
import { Readable } from 'node:stream';
import { codeOf, isNullgateError } from '../core/errors.js';
import { createHash } from 'node:crypto';
import {
  type ManifestEntry,
  type XattrScope,
  manifestEntry,
  manifestTypeOfMode,
  xattrDigest,
} from '../core/manifest.js';
import { compareNames, fsPath } from '../core/name-bytes.js';
import { ancestorsOf, joinRel } from '../core/rel-path.js';
import { processIds, setRule } from '../core/set-rule.js';
import { entryPath, unsafeEntry } from '../core/tar-entry.js';
import { readTar, type SparseSegment } from '../core/tar-read.js';
import {
  encodeHeader,
  END_OF_ARCHIVE,
  paddingOf,
  sparseMapBlock,
  sparseMapOf,
  TYPEFLAG,
} from '../core/tar-header.js';
import { BeneathRoot, type BeneathStat, closeFd, type Xattr } from '../native/beneath.js';
import { TreeWriter } from '../native/tree-writer.js';
import type { ProgressCallback } from './local-file.js';
import { LocalFileError } from './client-error.js';

const readAsync = promisify(readCb);

/** What a pull extracted. */
export interface PullResult {
  readonly files: number;
  readonly dirs: number;
  readonly symlinks: number;
  readonly bytes: number;
  /** Entries not extracted, each with the reason (device nodes, for a user who is not root). */
  readonly skipped: readonly { readonly name: string; readonly why: string }[];
}

/** LOCAL_DIR made (with its parents) if missing; true when it was made by this call. */
async function makeLocalDir(dir: string): Promise<boolean> {
  try {
    await fsp.mkdir(fsPath(path.dirname(dir)), { recursive: true });
    await fsp.mkdir(fsPath(dir), { mode: 0o700 });
    return true;
  } catch (err) {
    if (codeOf(err) !== 'EEXIST') throw new LocalFileError('write', dir, err);
    return false;
  }
}

/**
 * Extracts a tar stream into `localDir` (created if missing). Never writes outside it: entries
 * leading through a symlink are refused, and the kernel confines every lookup beneath it.
 */
export async function extractTar(
  body: Readable,
  localDir: string,
  onProgress?: ProgressCallback,
): Promise<PullResult> {
  // The transfer failing (not a local write) is reported as it is, for the caller to tell apart.
  // Listened for before anything is awaited: a body that fails while LOCAL_DIR is being made
  // would otherwise throw its error at the process.
  let cut: unknown;
  body.on('error', (err) => (cut ??= err));
  const dir = path.resolve(localDir);
  let created: boolean;
  let root: BeneathRoot;
  try {
    created = await makeLocalDir(dir);
    try {
      root = await BeneathRoot.open(dir);
    } catch (err) {
      throw new LocalFileError('write', dir, err);
    }
  } catch (err) {
    body.destroy();
    throw err;
  }
  const writer = processIds();
  const skipped: { name: string; why: string }[] = [];
  const tree = new TreeWriter(root, '', created, {
    writer,
    rule: setRule(writer, writer),
    devices: 'skip',
    onSkip: (name, why) => skipped.push({ name, why }),
    ...(onProgress && { onBytes: (bytes: number) => onProgress(bytes, undefined) }),
  });
  let name = '';
  try {
    for await (const member of readTar(body)) {
      name = member.header.name;
      await tree.entry(member);
    }
    name = '';
    await tree.finish();
  } catch (err) {
    body.destroy();
    if (err === cut || (err !== null && err === body.errored)) throw err;
    throw localError(err, dir, name);
  } finally {
    await root.close();
  }
  return { ...tree.counts, skipped };
}

/** A failure of the local side, named by its local path; refusals and transfer errors as they are. */
function localError(err: unknown, dir: string, name: string): unknown {
  if (
    isNullgateError(err) ||
    !(err instanceof Error) ||
    typeof (err as { syscall?: unknown }).syscall !== 'string'
  ) {
    return err;
  }
  const code = codeOf(err);
  // RESOLVE_BENEATH: the lookup met a symlink (or '..') leading out of LOCAL_DIR, which can
  // only be there when something changed the tree while the pull ran.
  if (name !== '' && (code === 'EXDEV' || code === 'ELOOP')) {
    return unsafeEntry(name, 'leads out of the destination through a symlink', err);
  }
  let rel = '';
  try {
    rel = name === '' ? '' : entryPath(name);
  } catch {
    rel = '';
  }
  const shown = (err as { path?: unknown }).path;
  const local = typeof shown === 'string' ? path.join(dir, shown) : path.join(dir, joinRel('', rel));
  return new LocalFileError('write', local, err);
}

/**
 * Sends a packed tree as the body of the request `send` makes, and returns its response once the
 * tree was read whole. A local read failure is reported as the cause, before the request's own
 * error or answer, which it brought about (the body cut short: "entry destroyed", a 400).
 */
export async function sendPacked<R extends { body: { dump(): Promise<unknown> } }>(
  packed: PackedTar,
  send: (body: Readable) => Promise<R>,
): Promise<R> {
  let res: R;
  try {
    res = await send(packed.stream);
  } catch (err) {
    packed.stream.destroy();
    const localErr = packed.error();
    if (localErr instanceof LocalFileError) throw localErr;
    throw err;
  }
  const localErr = packed.error();
  if (localErr !== undefined) {
    await res.body.dump();
    throw localErr;
  }
  return res;
}

export interface PackedTar {
  /** The tar stream, to send as a request body. */
  readonly stream: Readable;
  /** The local error that stopped packing, if any (the stream is destroyed with it). */
  error(): Error | undefined;
  /** Entries that cannot be archived (sockets), by their path in LOCAL_DIR. */
  readonly skipped: string[];
}

/** Bytes read from a file at a time. */
const READ_CHUNK = 256 * 1024;

/**
 * The data segments of a file that has holes (fewer blocks allocated than its size says), found
 * with SEEK_DATA/SEEK_HOLE; undefined for a file without holes.
 */
async function sparseSegments(
  root: BeneathRoot,
  fd: number,
  rel: string,
  st: BeneathStat,
): Promise<SparseSegment[] | undefined> {
  if (st.size === 0 || st.blocks * 512 >= st.size) return undefined;
  const map: SparseSegment[] = [];
  let at = 0;
  while (at < st.size) {
    const data = await root.nextData(fd, at, rel);
    if (data === null || data >= st.size) break;
    const hole = Math.min((await root.nextHole(fd, data, rel)) ?? st.size, st.size);
    map.push({ offset: data, size: hole - data });
    at = hole;
  }
  return map;
}

/** `length` bytes of `fd` from `position`, in chunks; a file that shrank meanwhile is an error. */
async function* readRange(
  fd: number,
  position: number,
  length: number,
  file: string,
): AsyncGenerator<Buffer> {
  let left = length;
  let at = position;
  while (left > 0) {
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
    const { bytesRead } = await readAsync(fd, buf, 0, buf.length, at);
    if (bytesRead === 0)
      throw new LocalFileError('read', file, new Error('the file shrank while it was read'));
    yield buf.subarray(0, bytesRead);
    left -= bytesRead;
    at += bytesRead;
  }
}

/** The local tree opened for reading: LOCAL_DIR checked to be a directory, as a beneath-root. */
async function openLocalTree(dir: string): Promise<BeneathRoot> {
  let st: Stats;
  try {
    st = await fsp.stat(fsPath(dir));
  } catch (err) {
    throw new LocalFileError('read', dir, err);
  }
  if (!st.isDirectory()) {
    throw new LocalFileError('read', dir, Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }));
  }
  try {
    return await BeneathRoot.open(dir);
  } catch (err) {
    throw new LocalFileError('read', dir, err);
  }
}

/** One entry of the local walk: its path relative to LOCAL_DIR ('' is LOCAL_DIR) and its lstat. */
interface LocalEntry {
  readonly rel: string;
  readonly st: BeneathStat;
}

/**
 * The local tree in archive order: LOCAL_DIR itself, then each directory's entries in byte
 * order of their names, a directory before its contents (as GET /archive walks). With `enter`,
 * only those directories are read (the way to a selection). The one walk of pack and manifest.
 */
async function* localWalk(root: BeneathRoot, enter?: ReadonlySet<string>): AsyncGenerator<LocalEntry> {
  yield { rel: '', st: await root.stat('') };
  async function* dir(rel: string): AsyncGenerator<LocalEntry> {
    const names: string[] = [];
    for await (const d of root.readdir(rel)) names.push(d.name);
    const children = names
      .sort(compareNames)
      .map((name) => joinRel(rel, name))
      .filter((child) => enter === undefined || enter.has(child));
    // The lstats of a batch are asked for at once (the thread pool works on several), then
    // yielded in order.
    for (let at = 0; at < children.length; at += BATCH) {
      const batch = children.slice(at, at + BATCH);
      const stats = await Promise.all(
        batch.map((child) =>
          root.lstat(child).catch((err: unknown) => {
            if (codeOf(err) === 'ENOENT') return undefined; // removed since the listing
            throw err;
          }),
        ),
      );
      for (const [i, child] of batch.entries()) {
        const st = stats[i];
        if (st === undefined) continue;
        yield { rel: child, st };
        if (st.type === 'dir') yield* dir(child);
      }
    }
  }
  yield* dir('');
}

/** Entries whose system calls a walk has in flight at once. */
const BATCH = 64;

/** The directories on the way to each selected path (and the selected ones): the walk enters these. */
function waysTo(select: ReadonlySet<string>): Set<string> {
  const enter = new Set<string>();
  for (const p of select) {
    enter.add(p);
    for (const a of ancestorsOf(p)) enter.add(a);
  }
  return enter;
}

function localXattrs(root: BeneathRoot) {
  return async (rel: string): Promise<Xattr[]> => {
    try {
      return await root.readXattrs(rel);
    } catch (err) {
      if (codeOf(err) === 'EOPNOTSUPP' || codeOf(err) === 'ENOTSUP') return [];
      throw err;
    }
  };
}

/** sha-256 (hex) of a local file's content. */
async function fileSha256(root: BeneathRoot, rel: string, file: string): Promise<string> {
  const fd = await root.open(rel, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = await root.fstat(fd, rel);
    const hash = createHash('sha256');
    for await (const chunk of readRange(fd, 0, st.size, file)) hash.update(chunk);
    return hash.digest('hex');
  } finally {
    await closeFd(fd);
  }
}

export interface LocalManifestOptions {
  /** Which extended attributes the digests cover (what the receiver applies). */
  readonly xattrs: XattrScope;
  /** Add the sha-256 of each regular file's content (`--checksum`). */
  readonly checksum?: boolean;
  /** Sockets found (they cannot be archived), by their path in LOCAL_DIR. */
  readonly sockets?: string[];
}

/**
 * The manifest of LOCAL_DIR (core/manifest.ts), the same entries and order as GET
 * /archive/<dir>?manifest=1 gives of a served tree; an empty one when LOCAL_DIR does not exist.
 * Sockets are left out (no archive carries them).
 */
export async function localManifest(
  localDir: string,
  options: LocalManifestOptions,
): Promise<ManifestEntry[]> {
  const dir = path.resolve(localDir);
  try {
    await fsp.lstat(fsPath(dir));
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return [];
    throw new LocalFileError('read', dir, err);
  }
  const root = await openLocalTree(dir);
  const xattrsOf = localXattrs(root);
  const out: ManifestEntry[] = [];
  const links = new Map<string, string>();
  let rel = '';
  // Entries are described a batch at a time (their attributes, targets and checksums read
  // concurrently), and kept in walk order; hard links are told in order, before.
  const pending: Promise<ManifestEntry>[] = [];
  const flush = async (): Promise<void> => {
    out.push(...(await Promise.all(pending)));
    pending.length = 0;
  };
  try {
    for await (const e of localWalk(root)) {
      if (pending.length >= BATCH) await flush();
      rel = e.rel;
      const { st } = e;
      const type = manifestTypeOfMode(st.mode);
      if (type === undefined) {
        if ((st.mode & fsc.S_IFMT) === fsc.S_IFSOCK) options.sockets?.push(e.rel);
        continue;
      }
      let link: string | undefined;
      if (type !== 'dir' && st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        link = links.get(key);
        if (link !== undefined) {
          pending.push(Promise.resolve(manifestEntry({ ...facts(e), type, link })));
          continue;
        }
        links.set(key, e.rel);
        link = e.rel;
      }
      const describe = async (): Promise<ManifestEntry> =>
        manifestEntry({
          ...facts(e),
          type,
          link,
          target: type === 'symlink' ? await root.readlink(e.rel) : undefined,
          rdev: type === 'char' || type === 'block' ? [st.rdevMajor, st.rdevMinor] : undefined,
          xattrs: xattrDigest(await xattrsOf(e.rel), options.xattrs),
          sha256:
            type === 'file' && options.checksum === true
              ? await fileSha256(root, e.rel, path.join(dir, e.rel))
              : undefined,
        });
      pending.push(describe());
    }
    await flush();
  } catch (err) {
    // The others in flight are settled before the tree is closed under them.
    await Promise.allSettled(pending);
    throw err instanceof LocalFileError ? err : new LocalFileError('read', path.join(dir, rel), err);
  } finally {
    await root.close();
  }
  return out;
}

function facts(e: LocalEntry) {
  return {
    path: e.rel,
    size: e.st.size,
    mtimeNs: e.st.mtimeNs,
    mode: e.st.mode,
    uid: e.st.uid,
    gid: e.st.gid,
  };
}

export interface PackOptions {
  /**
   * Only these entries (relative to LOCAL_DIR, '' for LOCAL_DIR itself as `./`): a sync push.
   * Hard links are made between selected names only.
   */
  readonly select?: ReadonlySet<string>;
  /** Deletion records (`NULLGATE.delete=1`) for these paths, before the entries: a sync push. */
  readonly deletions?: readonly string[];
}

/**
 * Packs the tree under `localDir` as GET /archive does (CONTRACT.md "Trees arrive as they
 * left"): `./` (LOCAL_DIR itself) first, then entries in byte order of their names, numeric owners, every permission bit, ns mtimes,
 * hard links (second and later names of an inode), extended attributes, holes of sparse files
 * (GNU sparse 1.0), FIFOs and devices; symlinks as written, wherever they point. Sockets cannot
 * be archived: they are listed in `skipped`. Read beneath LOCAL_DIR with the beneath-root layer.
 */
export async function packTar(
  localDir: string,
  onProgress?: ProgressCallback,
  options: PackOptions = {},
): Promise<PackedTar> {
  const dir = path.resolve(localDir);
  const root = await openLocalTree(dir);
  const skipped: string[] = [];
  let failure: Error | undefined;
  let bytes = 0;
  const inodes = new Map<string, string>();
  const xattrsOf = localXattrs(root);
  const select = options.select;

  async function* entry(rel: string, s: BeneathStat): AsyncGenerator<Buffer> {
    const base = { name: rel, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, mtimeNs: s.mtimeNs, size: 0 };
    const fmt = s.mode & fsc.S_IFMT;
    if (fmt === fsc.S_IFSOCK) {
      skipped.push(rel);
      return;
    }
    if (s.type !== 'dir' && s.nlink > 1) {
      const key = `${s.dev}:${s.ino}`;
      const first = inodes.get(key);
      if (first !== undefined) {
        yield encodeHeader({ ...base, typeflag: TYPEFLAG.hardlink, linkname: first });
        return;
      }
      inodes.set(key, rel);
    }
    const xattrs = await xattrsOf(rel);
    if (s.type === 'dir') {
      yield encodeHeader({ ...base, name: rel === '' ? './' : `${rel}/`, typeflag: TYPEFLAG.dir, xattrs });
      return;
    }
    if (s.type === 'symlink') {
      yield encodeHeader({ ...base, typeflag: TYPEFLAG.symlink, linkname: await root.readlink(rel), xattrs });
      return;
    }
    if (s.type === 'other') {
      const typeflag =
        fmt === fsc.S_IFIFO ? TYPEFLAG.fifo : fmt === fsc.S_IFCHR ? TYPEFLAG.char : TYPEFLAG.block;
      yield encodeHeader({ ...base, typeflag, devmajor: s.rdevMajor, devminor: s.rdevMinor, xattrs });
      return;
    }
    const fd = await root.open(rel, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    try {
      const data = await sparseSegments(root, fd, rel, s);
      const segments = data ?? [{ offset: 0, size: s.size }];
      const map = data && sparseMapBlock(sparseMapOf(data, s.size));
      const size = segments.reduce((n, seg) => n + seg.size, 0) + (map?.length ?? 0);
      yield encodeHeader({
        ...base,
        typeflag: TYPEFLAG.file,
        size,
        xattrs,
        ...(data && { sparse: { realSize: s.size } }),
      });
      if (map) yield map;
      for (const seg of segments) {
        for await (const chunk of readRange(fd, seg.offset, seg.size, path.join(dir, rel))) {
          yield chunk;
          bytes += chunk.length;
          onProgress?.(bytes, undefined);
        }
      }
      yield Buffer.alloc(paddingOf(size));
    } finally {
      await closeFd(fd);
    }
  }

  async function* archive(): AsyncGenerator<Buffer> {
    let rel = '';
    try {
      for (const gone of options.deletions ?? []) {
        rel = gone;
        yield encodeHeader({
          name: gone,
          typeflag: TYPEFLAG.file,
          mode: 0,
          uid: 0,
          gid: 0,
          size: 0,
          mtimeNs: 0n,
          delete: true,
        });
      }
      for await (const e of localWalk(root, select && waysTo(select))) {
        rel = e.rel;
        // `./` first (LOCAL_DIR's own metadata travels too, as with GET /archive); a sync sends
        // only what it selected.
        if (select !== undefined && !select.has(e.rel)) continue;
        yield* entry(e.rel, e.st);
      }
      yield END_OF_ARCHIVE;
    } catch (err) {
      failure = err instanceof LocalFileError ? err : new LocalFileError('read', path.join(dir, rel), err);
      throw failure;
    } finally {
      await root.close();
    }
  }

  return { stream: Readable.from(archive(), { objectMode: false }), error: () => failure, skipped };
}
