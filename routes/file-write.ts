/**
 * PUT (atomic upload), PUT dir/ and MKCOL, DELETE and MOVE of /files. Every name is created,
 * replaced or removed through the beneath-root layer (openat2 + *at calls), never by host path.
 *
 * Uploads are written into an anonymous O_TMPFILE inode in the target directory, fsynced,
 * verified, and only then linked over the target (then the directory is fsynced): readers see
 * the old file or the new one, never a part, and a client that disconnects — or a server killed
 * with SIGKILL — leaves nothing with a name. File systems without O_TMPFILE get a named
 * `.nullgate-tmp-*` file instead, hidden from listings.
 */
import { write as writeCb } from 'node:fs';
import { constants as osc } from 'node:os';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type BeneathRoot, type BeneathStat, closeFd } from '../gateway/beneath.js';
import { fsError, ngError, NullgateError } from '../gateway/errors.js';
import type { UploadSlots } from '../gateway/limits.js';
import { evaluatePreconditions, type Representation } from './conditional.js';
import { createDigestHash, type DigestAlgorithm, parseDigestHeader, type ParsedDigest } from './digest.js';
import { strongEtag } from './etag.js';
import { decodeFilePath, displayPath, type FilePath } from './url-path.js';

export interface WriteContext {
  readonly root: BeneathRoot;
  readonly maxUpload: number;
  /** Concurrent uploads, shared with the archive routes when the gateway mounts both. */
  readonly uploads: UploadSlots;
}

const { EOPNOTSUPP, EISDIR, EEXIST, ENOENT, ENOTDIR } = osc.errno;

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i === -1 ? '' : rel.slice(0, i);
}

async function lstatOrUndefined(root: BeneathRoot, rel: string): Promise<BeneathStat | undefined> {
  try {
    return await root.lstat(rel);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function currentRep(st: BeneathStat | undefined): Representation {
  return st ? { exists: true, etag: strongEtag(st), lastModified: st.mtimeMs } : { exists: false };
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return request.headers['transfer-encoding'] !== undefined;
}

/** mkdir -p; a file in the way is a conflict (409), not "not found". */
async function makeDirs(root: BeneathRoot, rel: string): Promise<boolean> {
  try {
    return await root.mkdirp(rel);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EEXIST') {
      throw ngError('NG_ERR_CONFLICT', `a file is in the way of directory ${displayPath(rel, true)}`, err);
    }
    throw fsError(err, displayPath(rel, true));
  }
}

export async function mkcol(ctx: WriteContext, path: FilePath, reply: FastifyReply) {
  if (path.rel === '') return reply.code(200).send({ path: '/', created: false });
  const created = await makeDirs(ctx.root, path.rel);
  return reply.code(created ? 201 : 200).send({ path: displayPath(path.rel, true), created });
}

/** Counts bytes, feeds the digests, and stops the body at maxUpload. */
class UploadMeter extends Transform {
  bytes = 0;
  readonly hashes: Map<DigestAlgorithm, ReturnType<typeof createDigestHash>>;
  constructor(
    private readonly limit: number,
    private readonly shown: string,
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
      done(ngError('NG_ERR_PAYLOAD_TOO_LARGE', `upload to ${this.shown} exceeds ${this.limit} bytes`));
      return;
    }
    for (const hash of this.hashes.values()) hash.update(chunk);
    done(null, chunk);
  }
}

const writeAsync = promisify(writeCb);
/** Bytes handed to one write(2) at most: consecutive small chunks are joined up to this. */
const WRITE_CHUNK = 1024 * 1024;

async function writeAll(fd: number, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length;) {
    const { bytesWritten } = await writeAsync(fd, data, at, data.length - at, null);
    at += bytesWritten;
  }
}

/**
 * Writes the body to an fd it BORROWS. Not fs.createWriteStream: destroying that stream (which
 * pipeline does on any error: client gone, ENOSPC, 413) closes the fd whatever autoClose says,
 * and the upload's own close then hits EBADF, hiding the real error, or worse, closes an fd
 * number another request has just been given.
 */
function fdWriter(fd: number): Writable {
  return new Writable({
    highWaterMark: WRITE_CHUNK,
    write(chunk: Buffer, _enc, done) {
      writeAll(fd, chunk).then(() => done(), done);
    },
    writev(chunks, done) {
      writeAll(fd, Buffer.concat(chunks.map((c) => c.chunk as Buffer))).then(() => done(), done);
    },
  });
}

function verifyDigests(expected: ParsedDigest[], meter: UploadMeter, shown: string): void {
  for (const { algorithm, bytes } of expected) {
    const actual = meter.hashes.get(algorithm)!.digest();
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

async function atomicUpload(
  ctx: WriteContext,
  rel: string,
  shown: string,
  expected: ParsedDigest[],
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const { root } = ctx;
  const parent = parentOf(rel);
  let before: BeneathStat | undefined;
  try {
    before = await lstatOrUndefined(root, rel);
  } catch (err) {
    // ENOTDIR: a file where a parent directory should be.
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw ngError('NG_ERR_CONFLICT', `a file is in the way of ${shown}`, err);
    }
    throw fsError(err, shown);
  }
  if (before?.type === 'dir') throw ngError('NG_ERR_CONFLICT', `is a directory: ${shown}`);
  if (evaluatePreconditions('PUT', request.headers, currentRep(before)) === 'precondition-failed') {
    throw ngError('NG_ERR_PRECONDITION_FAILED', `precondition failed for ${shown}`);
  }
  const mustBeNew = request.headers['if-none-match']?.trim() === '*';
  await makeDirs(root, parent);

  let fd: number;
  let namedTmp: string | undefined;
  try {
    fd = await root.openTmpfile(parent, 0o644);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).errno;
    if (errno !== -EOPNOTSUPP && errno !== -EISDIR) throw fsError(err, shown);
    try {
      ({ fd, rel: namedTmp } = await root.openNamedTmpfile(parent, 0o644));
    } catch (err2) {
      throw fsError(err2, shown);
    }
  }

  let linked = false;
  try {
    if (request.headers.expect?.toLowerCase() === '100-continue') reply.raw.writeContinue();
    const meter = new UploadMeter(ctx.maxUpload, shown, [...new Set(expected.map((d) => d.algorithm))]);
    try {
      await pipeline(request.raw, meter, fdWriter(fd));
    } catch (err) {
      if (err instanceof NullgateError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'ERR_STREAM_DESTROYED') {
        throw ngError('NG_ERR_BAD_REQUEST', `upload to ${shown} ended early; nothing was changed`, err);
      }
      throw fsError(err, shown);
    }
    verifyDigests(expected, meter, shown);
    try {
      await root.fsync(fd);
      if (namedTmp === undefined) {
        await root.linkTmpfile(fd, rel, { replace: !mustBeNew });
      } else {
        await root.rename(namedTmp, rel, { noReplace: mustBeNew });
      }
      linked = true;
      await root.fsyncDir(parent);
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).errno;
      if (mustBeNew && errno === -EEXIST)
        throw ngError('NG_ERR_PRECONDITION_FAILED', `already exists: ${shown}`, err);
      if (errno === -EISDIR) throw ngError('NG_ERR_CONFLICT', `is a directory: ${shown}`, err);
      if (errno === -ENOENT || errno === -ENOTDIR)
        throw ngError('NG_ERR_CONFLICT', `the directory of ${shown} went away`, err);
      throw fsError(err, shown);
    }
    const after = await root.fstat(fd, rel);
    const etag = strongEtag(after);
    return reply
      .code(before ? 200 : 201)
      .header('etag', etag)
      .send({ path: shown, size: after.size, etag });
  } finally {
    await closeFd(fd);
    if (namedTmp !== undefined && !linked) await root.unlink(namedTmp).catch(() => undefined);
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
  let st: BeneathStat;
  try {
    st = await ctx.root.lstat(path.rel);
    if (evaluatePreconditions('DELETE', request.headers, currentRep(st)) === 'precondition-failed') {
      throw ngError('NG_ERR_PRECONDITION_FAILED', `precondition failed for ${shown}`);
    }
    if (st.type !== 'dir') await ctx.root.unlink(path.rel);
    else if (recursive) await ctx.root.rm(path.rel, { recursive: true });
    else await ctx.root.rmdir(path.rel);
  } catch (err) {
    if (err instanceof NullgateError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY') {
      throw ngError(
        'NG_ERR_CONFLICT',
        `directory not empty: ${displayPath(path.rel, true)} (use ?recursive=1)`,
        err,
      );
    }
    throw fsError(err, shown);
  }
  return reply.code(204).send();
}

/** The Destination header (RFC 4918 §10.3): an absolute URI or an absolute path, within /files. */
export function destinationPath(header: string | undefined, prefix: string): FilePath {
  if (!header) throw ngError('NG_ERR_BAD_REQUEST', 'MOVE needs a Destination header');
  let pathname = header.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(pathname)) {
    const start = pathname.indexOf('/', pathname.indexOf('//') + 2);
    pathname = start === -1 ? '/' : pathname.slice(start);
  }
  pathname = pathname.split('?')[0]!.split('#')[0]!;
  if (pathname !== prefix && !pathname.startsWith(`${prefix}/`)) {
    throw ngError('NG_ERR_BAD_REQUEST', `Destination must be a path under ${prefix}/, got "${header}"`);
  }
  return decodeFilePath(pathname.slice(prefix.length));
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
  if (to.rel === from.rel || to.rel.startsWith(`${from.rel}/`)) {
    throw ngError('NG_ERR_CONFLICT', `cannot move ${shownFrom} into itself (${shownTo})`);
  }
  const overwrite = (request.headers.overwrite as string | undefined)?.trim().toUpperCase() !== 'F';
  try {
    await ctx.root.lstat(from.rel);
  } catch (err) {
    throw fsError(err, shownFrom);
  }
  let existed: BeneathStat | undefined;
  try {
    existed = await lstatOrUndefined(ctx.root, to.rel);
  } catch (err) {
    throw ngError('NG_ERR_CONFLICT', `the parent of ${shownTo} is not a directory`, err);
  }
  if (existed && !overwrite)
    throw ngError('NG_ERR_PRECONDITION_FAILED', `destination exists: ${shownTo} (Overwrite: F)`);
  try {
    await ctx.root.rename(from.rel, to.rel, { noReplace: !overwrite });
    await ctx.root.fsyncDir(parentOf(to.rel));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && !overwrite)
      throw ngError('NG_ERR_PRECONDITION_FAILED', `destination exists: ${shownTo} (Overwrite: F)`, err);
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw ngError('NG_ERR_CONFLICT', `the parent directory of ${shownTo} does not exist`, err);
    if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST')
      throw ngError('NG_ERR_CONFLICT', `cannot replace ${shownTo} with ${shownFrom}`, err);
    throw fsError(err, shownTo);
  }
  return reply.code(existed ? 204 : 201).send();
}
