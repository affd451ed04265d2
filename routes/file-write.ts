/**
 * PUT (atomic upload), PUT dir/ and MKCOL, DELETE and MOVE of /files. Every name is created,
 * replaced or removed through the beneath-root layer (openat2 + *at calls), never by host path,
 * and every errno reaches the client through `fsError` (core/errors.ts), with the wording
 * of the operation at hand.
 *
 * Uploads are written into an anonymous O_TMPFILE inode, fsynced, verified, and only then linked
 * over the target (then the directory is fsynced): readers see the old file or the new one, never
 * a part, and a client that disconnects — or a server killed with SIGKILL — leaves nothing with a
 * name. File systems without O_TMPFILE get a named `.nullgate-tmp-*` file instead, at the top of
 * the root when that is on the target's mount (the next start's sweep removes it after a
 * SIGKILL: BeneathRoot.sweepTemporaries), else beside the target; never listed or served.
 *
 * "Nothing changes" on a failed upload includes the parent directories: none is created before
 * the body is complete and verified. Until then the temporary lives in the nearest existing
 * ancestor of the target's directory (an O_TMPFILE inode can be linked anywhere on its mount,
 * a named temporary renamed), and the missing parents are made just before the link. Making
 * them first and removing them on failure would show them to other clients meanwhile, and the
 * removal could race with another request that has just started to use them.
 *
 * A final symlink that stays beneath the root is written through, as nginx's and Apache's DAV
 * modules do: the preconditions are judged on the file it leads to (the ETag GET sent), that
 * file is replaced, and the link stays a link. One leading out is 403 NG_ERR_OUTSIDE_ROOT.
 */
import { write as writeCb, writev as writevCb } from 'node:fs';
import { constants as osc } from 'node:os';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type BeneathRoot, type BeneathStat, closeFd } from '../native/beneath.js';
import { BodyMemory } from '../native/memory.js';
import { type ErrnoOverride, fsError, ngError, NullgateError } from '../core/errors.js';
import type { UploadSlots } from '../core/limits.js';
import { continueBody } from './plugin.js';
import { evaluatePreconditions, type Representation } from './conditional.js';
import { createDigestHash, type DigestAlgorithm, parseDigestHeader, type ParsedDigest } from './digest.js';
import { strongEtag } from './etag.js';
import { applyMtime, applyOwnerAndMode, uploadMeta } from './file-meta.js';
import { ancestorsOf, baseOf, displayPath, isWithin, joinRel, parentOf } from '../core/rel-path.js';
import { decodeFilePath, type FilePath, targetPath } from './url-path.js';
import { nativeBodyLength, type ReceiveError, receiveNative } from './receive.js';

export interface WriteContext {
  readonly root: BeneathRoot;
  readonly maxUpload: number;
  /** Concurrent uploads, shared with the archive routes when the gateway mounts both. */
  readonly uploads: UploadSlots;
}

const { EOPNOTSUPP, EISDIR } = osc.errno;

async function lstatOrUndefined(root: BeneathRoot, rel: string): Promise<BeneathStat | undefined> {
  try {
    return await root.lstat(rel);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Does `rel` (already lstat'ed as `st`) name a directory, a symlink to one included? */
async function namesDirectory(root: BeneathRoot, rel: string, st: BeneathStat): Promise<boolean> {
  if (st.type === 'dir') return true;
  if (st.type !== 'symlink') return false;
  return (await root.stat(rel).catch(() => undefined))?.type === 'dir';
}

export function currentRep(st: BeneathStat | undefined): Representation {
  return st ? { exists: true, etag: strongEtag(st), lastModified: st.mtimeMs } : { exists: false };
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return request.headers['transfer-encoding'] !== undefined;
}

function conflict(message: string): ErrnoOverride {
  return { code: 'NG_ERR_CONFLICT', message };
}

/** mkdir -p; a file in the way is a conflict (409), not "not found". */
async function makeDirs(root: BeneathRoot, rel: string): Promise<boolean> {
  try {
    return await root.mkdirp(rel);
  } catch (err) {
    const shown = displayPath(rel, true);
    const inTheWay = conflict(`a file is in the way of directory ${shown}`);
    throw fsError(err, shown, { ENOTDIR: inTheWay, EEXIST: inTheWay });
  }
}

export async function mkcol(ctx: WriteContext, path: FilePath, reply: FastifyReply) {
  if (path.rel === '') return reply.code(200).send({ path: '/', created: false });
  const created = await makeDirs(ctx.root, path.rel);
  return reply.code(created ? 201 : 200).send({ path: displayPath(path.rel, true), created });
}

/**
 * Counts a body's bytes, feeds the digests asked for, and fails the body with `overLimit()` once
 * it passes `limit`. PUT /files and the resumable uploads' appends (routes/resumable.ts) meter
 * their bodies with it.
 */
export class UploadMeter extends Transform {
  bytes = 0;
  readonly hashes: Map<DigestAlgorithm, ReturnType<typeof createDigestHash>>;
  constructor(
    private readonly limit: number,
    private readonly overLimit: () => NullgateError,
    algorithms: DigestAlgorithm[],
  ) {
    super();
    this.hashes = new Map(algorithms.map((a) => [a, createDigestHash(a)]));
  }
  override _transform(
    chunk: Buffer,
    _enc: BufferEncoding,
    done: (err?: Error | null, data?: Buffer) => void,
  ) {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      done(this.overLimit());
      return;
    }
    for (const hash of this.hashes.values()) hash.update(chunk);
    done(null, chunk);
  }
}

const writeAsync = promisify(writeCb);
const writevAsync = promisify(writevCb);
/** Bytes buffered before the writer waits for the disk (consecutive chunks go in one writev). */
const WRITE_CHUNK = 1024 * 1024;
/** Writeback is started after every this many bytes (see BeneathRoot.startWriteback). */
const WRITEBACK_STEP = 8 * 1024 * 1024;

/** Writes all of `chunks` at the fd's offset: one writev(2), then the rest of a short write. */
async function writeAll(fd: number, chunks: Buffer[]): Promise<number> {
  let total = 0;
  for (const c of chunks) total += c.length;
  let done =
    chunks.length === 1
      ? (await writeAsync(fd, chunks[0]!)).bytesWritten
      : (await writevAsync(fd, chunks)).bytesWritten;
  while (done < total) {
    const rest = Buffer.concat(chunks).subarray(done);
    done += (await writeAsync(fd, rest)).bytesWritten;
  }
  return total;
}

/**
 * Writes the body to an fd it BORROWS. Not fs.createWriteStream: destroying that stream (which
 * pipeline does on any error: client gone, ENOSPC, 413) closes the fd whatever autoClose says,
 * and the upload's own close then hits EBADF, hiding the real error, or worse, closes an fd
 * number another request has just been given. Every few MiB it starts the writeback of what it
 * wrote, so the upload's closing fsync does not wait for the whole file.
 */
export function fdWriter(root: BeneathRoot, fd: number): Writable {
  let written = 0;
  let flushed = 0;
  const memory = new BodyMemory();
  const wrote = async (bytes: number): Promise<void> => {
    written += bytes;
    memory.streamed(bytes);
    if (written - flushed >= WRITEBACK_STEP) {
      await root.startWriteback(fd, flushed, written - flushed);
      flushed = written;
    }
  };
  return new Writable({
    highWaterMark: WRITE_CHUNK,
    write(chunk: Buffer, _enc, done) {
      writeAll(fd, [chunk])
        .then(wrote)
        .then(() => done(), done);
    },
    writev(chunks, done) {
      writeAll(
        fd,
        chunks.map((c) => c.chunk as Buffer),
      )
        .then(wrote)
        .then(() => done(), done);
    },
  });
}

/** What `receiveBody` wrote, also when it failed part-way (resumable appends keep it). */
export interface BodyProgress {
  bytes: number;
}

/**
 * Receives the request's body into `fd` (at its offset): natively when it is an identity body
 * with a Content-Length (routes/receive.ts: splice on a native thread), else through the
 * UploadMeter and fdWriter. Resolves with the digests of `algorithms`; `progress.bytes` is the
 * bytes taken, also after a throw. Throws as the pipeline would: `overLimit()`'s error past
 * `limit`, a system error (ECONNRESET and the like when the client left: see endedEarly), an
 * fs error.
 */
export async function receiveBody(
  root: BeneathRoot,
  fd: number,
  request: FastifyRequest,
  limit: number,
  overLimit: () => NullgateError,
  algorithms: DigestAlgorithm[],
  progress: BodyProgress,
): Promise<Map<DigestAlgorithm, Buffer>> {
  const length = nativeBodyLength(request.raw, limit);
  if (length !== undefined) {
    try {
      const receipt = await receiveNative(request.raw, length, fd, algorithms);
      if (receipt !== undefined) {
        progress.bytes = receipt.bytes;
        return receipt.digests;
      }
    } catch (err) {
      progress.bytes = (err as ReceiveError).bytesWritten;
      throw err;
    }
  }
  const meter = new UploadMeter(limit, overLimit, algorithms);
  try {
    await pipeline(request.raw, meter, fdWriter(root, fd));
  } finally {
    progress.bytes = meter.bytes;
  }
  return new Map([...meter.hashes].map(([algorithm, hash]) => [algorithm, hash.digest()]));
}

function verifyDigests(expected: ParsedDigest[], digests: Map<DigestAlgorithm, Buffer>, shown: string): void {
  for (const { algorithm, bytes } of expected) {
    const actual = digests.get(algorithm)!;
    if (!actual.equals(bytes)) {
      throw ngError(
        'NG_ERR_DIGEST_MISMATCH',
        `${algorithm} digest of the body does not match for ${shown}; nothing was changed`,
      );
    }
  }
}

export async function upload(
  ctx: WriteContext,
  path: FilePath,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  if (path.trailingSlash || path.rel === '') {
    if (hasBody(request))
      throw ngError(
        'NG_ERR_CONFLICT',
        `cannot upload a body to a directory path ${displayPath(path.rel, true)}`,
      );
    return mkcol(ctx, path, reply);
  }
  const shown = displayPath(path.rel);
  const declared = request.headers['content-length'];
  if (declared !== undefined && Number(declared) > ctx.maxUpload) {
    // Refused before a byte of the body is read (and before 100 Continue is sent).
    throw ngError(
      'NG_ERR_PAYLOAD_TOO_LARGE',
      `upload of ${declared} bytes to ${shown} exceeds the limit of ${ctx.maxUpload}`,
    );
  }
  // Content-Digest (RFC 9530 §2) and Repr-Digest (§3) are the same bytes for an identity upload.
  const expected = [
    ...parseDigestHeader(request.headers['content-digest']),
    ...parseDigestHeader(request.headers['repr-digest']),
  ];
  const release = ctx.uploads.acquire();
  try {
    return await atomicUpload(ctx, path.rel, shown, expected, request, reply);
  } finally {
    release();
  }
}

/**
 * Where a PUT to `rel` writes, and what is there now. A final symlink is followed while it stays
 * beneath the root (see the top of this file); the file it leads to may not exist yet, and is
 * then created.
 */
export async function writeTarget(
  root: BeneathRoot,
  rel: string,
  shown: string,
): Promise<{ target: string; before: BeneathStat | undefined }> {
  try {
    const st = await lstatOrUndefined(root, rel);
    if (st?.type !== 'symlink') return { target: rel, before: st };
    const target = await root.resolveLinks(rel);
    return { target, before: await lstatOrUndefined(root, target) };
  } catch (err) {
    // ENOTDIR: a file where a parent directory should be.
    throw fsError(err, shown, { ENOTDIR: conflict(`a file is in the way of ${shown}`) });
  }
}

/** The nearest existing directory of `dir` and its ancestors (a file in the way is 409). */
export async function existingDir(root: BeneathRoot, dir: string, shown: string): Promise<string> {
  let found: { rel: string; stat: BeneathStat };
  try {
    found = await root.nearestExisting(dir);
  } catch (err) {
    throw fsError(err, shown);
  }
  if (found.stat.type !== 'dir') throw ngError('NG_ERR_CONFLICT', `a file is in the way of ${shown}`);
  return found.rel;
}

/** The temporary an upload is written into: O_TMPFILE in `dir`, else a named one (`named`). */
export async function openTemporary(
  root: BeneathRoot,
  dir: string,
  shown: string,
): Promise<{ fd: number; named?: string }> {
  try {
    return { fd: await root.openTmpfile(dir, 0o644) };
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).errno;
    // EOPNOTSUPP: no O_TMPFILE on this file system; EISDIR: a kernel without it at all.
    if (errno !== -EOPNOTSUPP && errno !== -EISDIR) throw fsError(err, shown);
  }
  try {
    const { fd, rel } = await root.openNamedTmpfile(await root.tempDirFor(dir), 0o644);
    return { fd, named: rel };
  } catch (err) {
    throw fsError(err, shown);
  }
}

/**
 * `from`, then each ancestor of `to` below it (`to` a descendant of `from`, or equal): the
 * directories that hold a name made on the way from `from` down to `to`.
 */
function dirChain(from: string, to: string): string[] {
  return [from, ...ancestorsOf(to).filter((dir) => dir.length > from.length)];
}

async function atomicUpload(
  ctx: WriteContext,
  rel: string,
  shown: string,
  expected: ParsedDigest[],
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const { root } = ctx;
  const { target, before } = await writeTarget(root, rel, shown);
  if (before?.type === 'dir') throw ngError('NG_ERR_CONFLICT', `is a directory: ${shown}`);
  if (evaluatePreconditions('PUT', request.headers, currentRep(before)) === 'precondition-failed') {
    throw ngError('NG_ERR_PRECONDITION_FAILED', `precondition failed for ${shown}`);
  }
  const mustBeNew = request.headers['if-none-match']?.trim() === '*';
  const meta = uploadMeta(request.headers);
  const parent = parentOf(target);
  // Nothing is created before the body is verified: the temporary waits in the nearest
  // existing ancestor, and missing parents are made just before the link (see the top).
  const near = before ? parent : await existingDir(root, parent, shown);
  const staged = await openTemporary(root, near, shown);
  const { fd, named } = staged;

  let linked = false;
  try {
    continueBody(request, reply);
    let digests: Map<DigestAlgorithm, Buffer>;
    try {
      digests = await receiveBody(
        root,
        fd,
        request,
        ctx.maxUpload,
        () => ngError('NG_ERR_PAYLOAD_TOO_LARGE', `upload to ${shown} exceeds ${ctx.maxUpload} bytes`),
        [...new Set(expected.map((d) => d.algorithm))],
        { bytes: 0 },
      );
    } catch (err) {
      if (err instanceof NullgateError) throw err;
      if (endedEarly(err)) {
        throw ngError('NG_ERR_BAD_REQUEST', `upload to ${shown} ended early; nothing was changed`, err);
      }
      throw fsError(err, shown);
    }
    verifyDigests(expected, digests, shown);
    try {
      await applyOwnerAndMode(fd, meta, (request as { peer?: { uid: number; gid: number } }).peer);
    } catch (err) {
      throw fsError(err, shown);
    }
    let after = await commitTemporary(root, { rel, shown, target, parent, near, mustBeNew }, staged);
    linked = true;
    if (meta.mtimeNs !== undefined) {
      try {
        await applyMtime(root, target, meta);
      } catch (err) {
        throw fsError(err, shown);
      }
      after = await root.fstat(fd, rel);
    }
    const etag = strongEtag(after);
    return reply
      .code(before ? 200 : 201)
      .header('etag', etag)
      .send({ path: shown, size: after.size, etag });
  } finally {
    await closeFd(fd);
    if (named !== undefined && !linked) await root.unlink(named).catch(() => undefined);
  }
}

/** Did a body pipeline fail because the client went away (or the request was cut)? */
export function endedEarly(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  // ECANCELED, ETIMEDOUT, ETIME: a native receive (routes/receive.ts) stopped by the
  // connection's close, the idle timeout or the body-rate rule.
  return (
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    code === 'ECONNRESET' ||
    code === 'ERR_STREAM_DESTROYED' ||
    code === 'ECANCELED' ||
    code === 'ETIMEDOUT' ||
    code === 'ETIME'
  );
}

/** Where a verified temporary goes: see `commitTemporary`. */
export interface CommitPlace {
  /** The path the client asked for, and as it is shown. */
  readonly rel: string;
  readonly shown: string;
  /** `rel` with a final symlink resolved (writeTarget), its parent, and the nearest existing ancestor of that. */
  readonly target: string;
  readonly parent: string;
  readonly near: string;
  /** `If-None-Match: *`: the name must not exist. */
  readonly mustBeNew: boolean;
}

/**
 * The end of every upload (a plain PUT and a completed resumable one): fsync the temporary
 * (unless the caller did: `synced`), make the missing parents, link (O_TMPFILE) or rename
 * (`named`) it over the target, fsync the directories whose names changed. Resolves with the new
 * file's stat. On a throw the caller still owns `fd` and `named` (unless the link was made: then
 * the error came after it).
 *
 * `linked` runs once the new name is in place, before the directories are fsynced, with the new
 * file's stat: what it records then (a completed upload's marker) goes into the same journal
 * commit as the name on a journaling file system (ext4, xfs), so a crash keeps both or neither.
 * It must not throw.
 */
export async function commitTemporary(
  root: BeneathRoot,
  place: CommitPlace,
  staged: {
    readonly fd: number;
    readonly named?: string | undefined;
    readonly synced?: boolean;
    readonly linked?: ((linked: BeneathStat) => Promise<void>) | undefined;
  },
): Promise<BeneathStat> {
  const { rel, shown, target, parent, near, mustBeNew } = place;
  const { fd, named } = staged;
  try {
    if (staged.synced !== true) await root.fsync(fd);
    if (near !== parent) await makeDirs(root, parent);
    if (named === undefined) {
      await root.linkTmpfile(fd, target, { replace: !mustBeNew });
    } else {
      await root.rename(named, target, { noReplace: mustBeNew });
    }
    // The name is in place: nothing after this may fail the commit but its own fsyncs.
    if (staged.linked) await root.fstat(fd, rel).then(staged.linked, () => undefined);
    await root.fsyncDir(parent);
    // The names of the directories made for this upload, each in its parent.
    if (near !== parent) for (const dir of dirChain(near, parent).reverse()) await root.fsyncDir(dir);
  } catch (err) {
    const goneAway = conflict(`the directory of ${shown} went away`);
    throw fsError(err, shown, {
      EEXIST: mustBeNew
        ? { code: 'NG_ERR_PRECONDITION_FAILED', message: `already exists: ${shown}` }
        : `already exists: ${shown}`,
      EISDIR: `is a directory: ${shown}`,
      ENOENT: goneAway,
      ENOTDIR: goneAway,
    });
  }
  return root.fstat(fd, rel);
}

/**
 * A trailing slash names a directory (RFC 3986 §3.3 path, and what GET does): on anything else,
 * a symlink to a directory aside, the path does not exist (404), as for `rm f.txt/`.
 */
async function checkTrailingSlash(root: BeneathRoot, path: FilePath, st: BeneathStat): Promise<void> {
  if (path.trailingSlash && !(await namesDirectory(root, path.rel, st))) {
    throw ngError('NG_ERR_NOT_FOUND', `not a directory: ${displayPath(path.rel, true)}`);
  }
}

export async function remove(
  ctx: WriteContext,
  path: FilePath,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const shown = displayPath(path.rel);
  if (path.rel === '') throw ngError('NG_ERR_FORBIDDEN', 'the served root cannot be deleted');
  const query = request.query as Record<string, string | undefined>;
  const recursive = query.recursive === '1' || query.recursive === 'true';
  try {
    const st = await ctx.root.lstat(path.rel);
    await checkTrailingSlash(ctx.root, path, st);
    if (evaluatePreconditions('DELETE', request.headers, currentRep(st)) === 'precondition-failed') {
      throw ngError('NG_ERR_PRECONDITION_FAILED', `precondition failed for ${shown}`);
    }
    if (st.type !== 'dir') await ctx.root.unlink(path.rel);
    else if (recursive) await ctx.root.rm(path.rel, { recursive: true });
    else await ctx.root.rmdir(path.rel);
  } catch (err) {
    throw fsError(err, shown, {
      ENOTEMPTY: conflict(`directory not empty: ${displayPath(path.rel, true)} (use ?recursive=1)`),
    });
  }
  return reply.code(204).send();
}

/** The Destination header (RFC 4918 §10.3): an absolute URI or an absolute path, within /files. */
export function destinationPath(header: string | undefined, prefix: string): FilePath {
  if (!header) throw ngError('NG_ERR_BAD_REQUEST', 'MOVE needs a Destination header');
  const pathname = targetPath(header.trim());
  if (pathname !== prefix && !pathname.startsWith(`${prefix}/`)) {
    throw ngError('NG_ERR_BAD_REQUEST', `Destination must be a path under ${prefix}/, got "${header}"`);
  }
  return decodeFilePath(pathname.slice(prefix.length));
}

/** Is `to`, its symlinks resolved, `from` or beneath it? (false when either cannot be resolved) */
async function leadsInto(root: BeneathRoot, from: string, to: string): Promise<boolean> {
  try {
    const realFrom = joinRel(await root.resolveLinks(parentOf(from)), baseOf(from));
    const realTo = joinRel(await root.resolveLinks(parentOf(to)), baseOf(to));
    return isWithin(realTo, realFrom);
  } catch {
    return false;
  }
}

export async function move(
  ctx: WriteContext,
  from: FilePath,
  request: FastifyRequest,
  reply: FastifyReply,
  prefix: string,
) {
  const to = destinationPath(request.headers.destination as string | undefined, prefix);
  const shownFrom = displayPath(from.rel);
  const shownTo = displayPath(to.rel);
  if (from.rel === '' || to.rel === '')
    throw ngError('NG_ERR_FORBIDDEN', 'the served root cannot be moved or replaced');
  if (isWithin(to.rel, from.rel)) {
    throw ngError('NG_ERR_CONFLICT', `cannot move ${shownFrom} into itself (${shownTo})`);
  }
  const overwrite = (request.headers.overwrite as string | undefined)?.trim().toUpperCase() !== 'F';
  let source: BeneathStat;
  try {
    source = await ctx.root.lstat(from.rel);
    await checkTrailingSlash(ctx.root, from, source);
  } catch (err) {
    throw fsError(err, shownFrom);
  }
  if (to.trailingSlash && !(await namesDirectory(ctx.root, from.rel, source))) {
    throw ngError(
      'NG_ERR_CONFLICT',
      `cannot move ${shownFrom}, not a directory, to a directory path ${shownTo}/`,
    );
  }
  let existed: BeneathStat | undefined;
  try {
    existed = await lstatOrUndefined(ctx.root, to.rel);
  } catch (err) {
    throw fsError(err, shownTo, { ENOTDIR: conflict(`the parent of ${shownTo} is not a directory`) });
  }
  if (existed && !overwrite)
    throw ngError('NG_ERR_PRECONDITION_FAILED', `destination exists: ${shownTo} (Overwrite: F)`);
  try {
    await ctx.root.rename(from.rel, to.rel, { noReplace: !overwrite });
    await ctx.root.fsyncDir(parentOf(to.rel));
  } catch (err) {
    // rename(2) is EINVAL for a directory moved beneath itself, which the check above cannot
    // see when the Destination gets there through a symlink (`d` to `dl/x`, with dl -> d).
    if ((err as NodeJS.ErrnoException).code === 'EINVAL' && (await leadsInto(ctx.root, from.rel, to.rel))) {
      throw ngError('NG_ERR_CONFLICT', `cannot move ${shownFrom} into itself (${shownTo})`, err);
    }
    const cannotReplace = conflict(`cannot replace ${shownTo} with ${shownFrom}`);
    const noParent = conflict(`the parent directory of ${shownTo} does not exist`);
    throw fsError(err, shownTo, {
      EEXIST: overwrite
        ? cannotReplace
        : { code: 'NG_ERR_PRECONDITION_FAILED', message: `destination exists: ${shownTo} (Overwrite: F)` },
      ENOENT: noParent,
      ENOTDIR: existed ? cannotReplace : noParent,
      EISDIR: cannotReplace,
      ENOTEMPTY: cannotReplace,
    });
  }
  return reply.code(existed ? 204 : 201).send();
}
