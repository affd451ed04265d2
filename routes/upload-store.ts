/**
 * The on-disk state of resumable uploads (routes/resumable.ts): one directory beneath each
 * writable tree's root, `.nullgate-tmp-uploads` (mode 0700). Its name carries the temporary-name
 * prefix (core/rel-path.ts), so no request can name it, listings and archives skip it, and the
 * startup sweep of temporaries is told to leave it alone (routes/plugin.ts); what is in it is
 * swept here, by idle time.
 *
 * For an upload resource `<id>` (32 random hex digits):
 *   `<id>.part`  the bytes received so far; its size is the offset, its mtime the last activity
 *   `<id>.json`  what the creating request asked for (UploadMeta), written once (tmp + rename)
 *   `<id>.done`  after completion, instead of the other two: who completed it and what came of
 *                it (DoneMarker), so a client that lost the final answer can learn it with HEAD;
 *                a symlink whose target is the marker's JSON, so that its name and its content
 *                are one metadata operation (no file data to sync)
 * Nothing is kept in memory, so a server restarted (or killed and started again) carries on.
 * Every access goes through the beneath-root layer by relative path, never a host path.
 *
 * Durability (a crash of the machine, not only of the server): the files are written without
 * fsync, so a restarted server finds them (the page cache outlives the process), and `persist`
 * makes a resource durable — its data, its metadata and both names — before an offset other than
 * 0 is reported or kept: an upload resource that holds no data yet costs no fsync, and one that
 * completes in the request that brings its data needs none of its state durable (the completion
 * fsyncs the data and the target's directory, as a plain PUT does). A crash can lose a resource
 * that holds nothing (the client starts again: HEAD is 404) but never acknowledged bytes. The
 * marker of a completed upload is durable before the completion is answered (`markDone`,
 * `syncDone`): it is made right after the rename that completes the upload, before the target's
 * directory is fsynced, so on a journaling file system (ext4, xfs) that one commit carries both
 * and the uploads directory's own fsync after it finds nothing left to write.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc, readFile, writeFile } from 'node:fs';
import { promisify } from 'node:util';
import { type BeneathRoot, closeFd } from '../native/beneath.js';
import { joinRel, TEMP_NAME_PREFIX } from '../core/rel-path.js';

/** The directory of upload resources at the top of a tree's root. */
export const UPLOADS_DIR = `${TEMP_NAME_PREFIX}uploads`;

const readFileAsync = promisify(readFile);
const writeFileAsync = promisify(writeFile);

/** What the request that created an upload resource asked for; never changes afterwards but for `length`. */
export interface UploadMeta {
  readonly id: string;
  /** The path of the PUT, relative to the root. */
  readonly target: string;
  /** The uid of the peer that created it: no one else may see or touch it. */
  readonly uid: number;
  /** The length of the whole representation, once a request declared it (Upload-Length, or Content-Length with Upload-Complete: ?1). */
  readonly length?: number | undefined;
  /** Milliseconds since the epoch. */
  readonly created: number;
  /** The precondition fields of the creating request (If-Match, If-None-Match, If-Unmodified-Since), judged again at completion. */
  readonly conditions: Readonly<Record<string, string>>;
  /** Digest fields that cover the whole representation (Repr-Digest; Content-Digest of a request with Upload-Complete: ?1), verified at completion. */
  readonly digests: readonly string[];
  /** The creating peer's gid: an owner asked for is the peer's with a root server (core/set-rule.ts). */
  readonly gid?: number | undefined;
  /** The metadata fields of the creating request (X-Nullgate-Mode, -Uid, -Gid, -Mtime), applied at completion. */
  readonly keep?: Readonly<Record<string, string>> | undefined;
}

/** What is left of a completed upload resource, until it expires (its mtime: the completion). */
export interface DoneMarker {
  readonly uid: number;
  readonly size: number;
  readonly etag: string;
}

const ID_PATTERN = /^[0-9a-f]{32}$/;

export function isUploadId(id: string): boolean {
  return ID_PATTERN.test(id);
}

export function newUploadId(): string {
  return randomBytes(16).toString('hex');
}

export function partPath(id: string): string {
  return joinRel(UPLOADS_DIR, `${id}.part`);
}

function metaPath(id: string): string {
  return joinRel(UPLOADS_DIR, `${id}.json`);
}

function donePath(id: string): string {
  return joinRel(UPLOADS_DIR, `${id}.done`);
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException).code ?? '');
}

/** Makes the uploads directory if it is missing (0700: the partial data is nobody else's). */
async function ensureDir(root: BeneathRoot): Promise<void> {
  try {
    await root.mkdir(UPLOADS_DIR, 0o700);
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
  }
}

/**
 * Writes a small JSON file whole or not at all, for readers in this process and after a restart
 * of it: a temporary beside it, renamed over. Not fsynced (see the top: `persist`).
 */
async function writeJson(root: BeneathRoot, rel: string, value: unknown): Promise<void> {
  const tmp = `${rel}.new`;
  const fd = await root.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o600);
  try {
    await writeFileAsync(fd, `${JSON.stringify(value)}\n`);
  } finally {
    await closeFd(fd);
  }
  await root.rename(tmp, rel);
}

/**
 * The resources whose metadata and names this process made durable (`persist`) and has not
 * changed since; forgotten when they go (completion: markDone; expiry, DELETE, a failed
 * completion or creation, a body past the limit: removeResource), so it holds live resources
 * only, at most the per-tree limit of each tree. A restarted server starts empty, so the first
 * `persist` after a restart syncs them again.
 */
const durable = new Set<string>();

async function readJson<T>(root: BeneathRoot, rel: string): Promise<T | undefined> {
  let fd: number;
  try {
    fd = await root.open(rel, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
    throw err;
  }
  try {
    const text = (await readFileAsync(fd)).toString('utf8');
    try {
      return JSON.parse(text) as T;
    } catch {
      // Half a state is no state (the draft: a server that lost part of it deactivates the resource).
      return undefined;
    }
  } finally {
    await closeFd(fd);
  }
}

/** The live (incomplete) upload resources of a tree. */
export async function countLive(root: BeneathRoot): Promise<number> {
  let n = 0;
  try {
    for await (const e of root.readdir(UPLOADS_DIR)) if (e.name.endsWith('.json')) n++;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0;
    throw err;
  }
  return n;
}

/**
 * Creates the resource: its data file (opened O_RDWR | O_APPEND, returned: the caller's to close),
 * then its metadata. Nothing is fsynced: `persist` does once the resource holds data.
 */
export async function createResource(root: BeneathRoot, meta: UploadMeta): Promise<number> {
  await ensureDir(root);
  const fd = await root.open(partPath(meta.id), fsc.O_RDWR | fsc.O_APPEND | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  try {
    await writeJson(root, metaPath(meta.id), meta);
    return fd;
  } catch (err) {
    await closeFd(fd);
    await removeResource(root, meta.id);
    throw err;
  }
}

export function readMeta(root: BeneathRoot, id: string): Promise<UploadMeta | undefined> {
  return readJson<UploadMeta>(root, metaPath(id));
}

export async function readDone(root: BeneathRoot, id: string): Promise<DoneMarker | undefined> {
  let text: string;
  try {
    text = await root.readlink(donePath(id));
  } catch (err) {
    if (isErrno(err, 'ENOTDIR')) return undefined;
    // ENOENT is also what reading a regular file as a link says (readlinkat(2) of an O_PATH fd):
    // the marker as servers before this one wrote it, or none.
    if (isErrno(err, 'ENOENT', 'EINVAL')) return readJson<DoneMarker>(root, donePath(id));
    throw err;
  }
  try {
    return JSON.parse(text) as DoneMarker;
  } catch {
    return undefined;
  }
}

/** Replaces the metadata (a length declared later); durable with the next `persist`. */
export async function writeMeta(root: BeneathRoot, meta: UploadMeta): Promise<void> {
  durable.delete(meta.id);
  await writeJson(root, metaPath(meta.id), meta);
}

/**
 * Makes the resource durable as it is: its data (`fd`, its data file), and, unless they already
 * are, its metadata and the names of both in the uploads directory. Called before an offset
 * other than 0 is reported, or kept after a request that did not complete the upload.
 */
export async function persist(root: BeneathRoot, id: string, fd: number): Promise<void> {
  await root.fsync(fd);
  if (durable.has(id)) return;
  const meta = await root.open(metaPath(id), fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    await root.fsync(meta);
  } finally {
    await closeFd(meta);
  }
  await root.fsyncDir(UPLOADS_DIR);
  durable.add(id);
}

/** The data file of a live resource, O_RDWR | O_APPEND (the caller's to close); undefined when it is gone. */
export async function openPart(root: BeneathRoot, id: string): Promise<number | undefined> {
  try {
    return await root.open(partPath(id), fsc.O_RDWR | fsc.O_APPEND | fsc.O_NOFOLLOW);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

/**
 * After completion: the marker replaces the metadata, and the data file when it was copied to
 * its target (`partLeft`; renamed, it is the target already). The marker is a symlink holding
 * its JSON: name and content come into being in one operation, durable with the uploads
 * directory (`syncDone`), with no file of its own to fsync. Called right after the rename or
 * link that completes the upload (file-write.ts commitTemporary `linked`), so that whatever
 * finds the marker finds the target in place.
 */
export async function markDone(
  root: BeneathRoot,
  id: string,
  marker: DoneMarker,
  partLeft: boolean,
): Promise<void> {
  durable.delete(id);
  await root.symlink(JSON.stringify(marker), donePath(id));
  await unlinkQuietly(root, metaPath(id));
  if (partLeft) await unlinkQuietly(root, partPath(id));
}

/**
 * Makes the marker of a completion (and the other names markDone changed) durable: a client
 * that lost the completion's answer learns it from HEAD also after a crash of the machine.
 */
export function syncDone(root: BeneathRoot): Promise<void> {
  return root.fsyncDir(UPLOADS_DIR);
}

async function unlinkQuietly(root: BeneathRoot, rel: string): Promise<void> {
  try {
    await root.unlink(rel);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

/** Removes every file of a resource, live or done. */
export async function removeResource(root: BeneathRoot, id: string): Promise<void> {
  durable.delete(id);
  for (const suffix of ['.json', '.json.new', '.part', '.done', '.done.new']) {
    await unlinkQuietly(root, joinRel(UPLOADS_DIR, `${id}${suffix}`));
  }
}

/**
 * Removes the resources idle for longer than `expiryMs` (last activity: the newest mtime of
 * their files — the data file's changes with every byte appended), except those `busy` names.
 * Resolves with the ids removed.
 */
export async function sweepExpired(
  root: BeneathRoot,
  expiryMs: number,
  busy: (id: string) => boolean,
  now = Date.now(),
): Promise<string[]> {
  const newest = new Map<string, number>();
  try {
    for await (const e of root.readdir(UPLOADS_DIR)) {
      const id = e.name.slice(0, 32);
      if (!isUploadId(id)) continue;
      let mtime: number;
      try {
        mtime = (await root.lstat(joinRel(UPLOADS_DIR, e.name))).mtimeMs;
      } catch (err) {
        if (isErrno(err, 'ENOENT')) continue;
        throw err;
      }
      newest.set(id, Math.max(newest.get(id) ?? 0, mtime));
    }
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
  const removed: string[] = [];
  for (const [id, mtime] of newest) {
    if (now - mtime <= expiryMs || busy(id)) continue;
    await removeResource(root, id);
    removed.push(id);
  }
  return removed;
}
