/**
 * Resumable uploads, as "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload,
 * read at -09 and the editors' copy after it) describes them:
 *
 *   PUT /files/<path> with `Upload-Complete`  creates an upload resource (§4.2) at
 *                                             `<prefix>/<id>`, announced in a 104 interim
 *                                             response (§5) and, for `?0`, in the 201 `Location`
 *   HEAD   <prefix>/<id>                      its offset (§4.3): Upload-Offset, Upload-Complete,
 *                                             Upload-Length, Upload-Limit, Cache-Control: no-store
 *   PATCH  <prefix>/<id>                      appends an `application/partial-upload` body at
 *                                             `Upload-Offset` (§4.4); 409 with the right offset
 *                                             when it is not the resource's; `Upload-Complete: ?1`
 *                                             completes it
 *   DELETE <prefix>/<id>                      cancels it (§4.5): 204
 *
 * Completion is the plain upload's end (file-write.ts commitTemporary): the preconditions of the
 * creating request are judged again and the digests that cover the whole representation verified,
 * then the data file is renamed over the target (or copied into a temporary beside it when the
 * target is on another mount) and the directories fsynced; nothing is visible before. The state
 * is on disk (upload-store.ts), so a restarted server carries on; a resource is its creator's
 * uid's alone (anyone else gets 404, as if it did not exist), bounded in size by the upload limit
 * (`Upload-Limit: max-size`) and in number per tree, and swept once idle for the expiry time
 * (`Upload-Limit: max-age`).
 */
import { ftruncate as ftruncateCb, read as readCb } from 'node:fs';
import { Socket } from 'node:net';
import { promisify } from 'node:util';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type BeneathRoot, type BeneathStat, closeFd } from '../native/beneath.js';
import { writeInformational } from '../native/node-internals.js';
import { fsError, ngError, NullgateError } from '../core/errors.js';
import { displayPath, parentOf } from '../core/rel-path.js';
import { continueBody } from './plugin.js';
import { evaluatePreconditions } from './conditional.js';
import { createDigestHash, type DigestAlgorithm, parseDigestHeader, type ParsedDigest } from './digest.js';
import { strongEtag } from './etag.js';
import { applyMtime, applyOwnerAndMode, uploadMeta } from './file-meta.js';
import { GID_HEADER, MODE_HEADER, MTIME_HEADER, UID_HEADER } from '../core/file-meta.js';
import {
  commitTemporary,
  currentRep,
  endedEarly,
  existingDir,
  fdWriter,
  openTemporary,
  receiveBody,
  upload,
  type WriteContext,
  writeTarget,
} from './file-write.js';
import {
  countLive,
  createResource,
  type DoneMarker,
  markDone,
  newUploadId,
  openPart,
  partPath,
  persist,
  readDone,
  readMeta,
  removeResource,
  syncDone,
  UPLOADS_DIR,
  type UploadMeta,
  writeMeta,
} from './upload-store.js';
import type { FilePath } from './url-path.js';

/** How resumable uploads are offered: where their resources live, how long, how many. */
export interface ResumableOptions {
  /** The URL prefix of the upload resources (where `uploadsRoutes` is registered), e.g. '/uploads'. */
  readonly prefix: string;
  /** An upload resource idle this long is removed (default 24 h); announced as `Upload-Limit: max-age`. */
  readonly expiryMs?: number | undefined;
  /** Incomplete upload resources per tree at most (default 64); creating one more is 429. */
  readonly maxResources?: number | undefined;
}

export const DEFAULT_UPLOAD_EXPIRY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_MAX_RESUMABLE = 64;

export interface ResumableContext extends WriteContext {
  readonly prefix: string;
  readonly expiryMs: number;
  readonly maxResources: number;
}

/** The media type of a PATCH body (draft §7). */
export const PARTIAL_UPLOAD_TYPE = 'application/partial-upload';

// ---- Structured fields (RFC 9651): the draft's fields are Items with parameters allowed ----

function single(value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value;
}

/** Upload-Complete (§4.1.2): an sf-boolean; anything else makes the field ignored (undefined). */
export function parseSfBoolean(value: string | string[] | undefined): boolean | undefined {
  const m = /^\?([01])(?:;[^,]*)?$/.exec(single(value)?.trim() ?? '');
  return m ? m[1] === '1' : undefined;
}

/** Upload-Offset, Upload-Length (§4.1.1, §4.1.3): a non-negative sf-integer (at most 15 digits). */
export function parseSfInteger(value: string | string[] | undefined): number | undefined {
  const m = /^(\d{1,15})(?:;[^,]*)?$/.exec(single(value)?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Upload-Limit (§4.1.4), a Dictionary: `max-size` (when there is a limit) and `max-age` in seconds. */
export function uploadLimit(maxUpload: number, maxAgeMs: number): string {
  const parts: string[] = [];
  if (maxUpload < Number.MAX_SAFE_INTEGER) parts.push(`max-size=${maxUpload}`);
  parts.push(`max-age=${Math.max(0, Math.floor(maxAgeMs / 1000))}`);
  return parts.join(', ');
}

/**
 * What an OPTIONS answer carries where resumable uploads can be created, and on an upload
 * resource (§4.1.4): `Accept-Patch` with the full `application/partial-upload` (a MUST), and the
 * limits (`Upload-Limit`, a SHOULD), the same as a creation announces.
 */
export function discovery(ctx: ResumableContext): [string, string][] {
  return [
    ['accept-patch', PARTIAL_UPLOAD_TYPE],
    ['upload-limit', uploadLimit(ctx.maxUpload, ctx.expiryMs)],
  ];
}

/** Does a PUT ask for a resumable upload (a valid `Upload-Complete`)? */
export function wantsResumable(request: FastifyRequest): boolean {
  return parseSfBoolean(request.headers['upload-complete']) !== undefined;
}

/** The metadata fields a creating request may carry (core/file-meta.ts). */
const KEEP_FIELDS = [MODE_HEADER, UID_HEADER, GID_HEADER, MTIME_HEADER] as const;

/** The gid of the request's peer, as peerUid. */
function peerGid(request: FastifyRequest): number {
  const peer = (request as unknown as { peer?: { gid?: number } | null }).peer;
  return peer?.gid ?? process.getgid?.() ?? 0;
}

/** The uid of the request's peer (the gateway sets request.peer; a bare Fastify app is one process). */
function peerUid(request: FastifyRequest): number {
  const peer = (request as unknown as { peer?: { uid?: number } | null }).peer;
  return peer?.uid ?? process.getuid?.() ?? 0;
}

// ---- One request at a time per resource (§4.6) ----

interface Active {
  readonly request: FastifyRequest;
  readonly finished: Promise<void>;
}

/** Requests receiving a body into a resource, by id (ids are random: one map serves every tree). */
const active = new Map<string, Active>();

export function isBusy(id: string): boolean {
  return active.has(id);
}

/**
 * The draft's recommended approach (§4.6): a new request on a resource whose previous transfer
 * is still running (the client saw it fail, the server has not noticed yet) ends that one first
 * (its connection is cut; what it received stays), then waits until its data is on disk.
 */
async function endPrevious(id: string): Promise<void> {
  for (let prev = active.get(id); prev !== undefined; prev = active.get(id)) {
    prev.request.raw.destroy(
      Object.assign(new Error('a newer request took over this upload resource'), { code: 'ECONNRESET' }),
    );
    await prev.finished;
  }
}

/** Runs `work` as the resource's one active body transfer. */
async function asActive<T>(id: string, request: FastifyRequest, work: () => Promise<T>): Promise<T> {
  await endPrevious(id);
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  active.set(id, { request, finished });
  try {
    return await work();
  } finally {
    active.delete(id);
    done();
  }
}

// ---- Receiving a body ----

function algorithmsOf(digests: ParsedDigest[]): DigestAlgorithm[] {
  return [...new Set(digests.map((d) => d.algorithm))];
}

/**
 * Appends the request's body to the data file (`fd`, at `offset`). A body cut short keeps what
 * arrived (§4.4.2: "append as much … as possible") and resolves `interrupted`; a body whose own
 * `Content-Digest` does not match is taken back (truncated to `offset`) and refused. Before this
 * returns, what the resource keeps is durable: the data alone when the request `completes` the
 * upload (the completion links it: nothing else of the resource needs to survive a crash),
 * else the whole resource (upload-store.ts persist), so that an offset reported afterwards
 * survives a crash; a resource that still holds nothing is not synced at all.
 */
async function receive(
  ctx: ResumableContext,
  fd: number,
  offset: number,
  request: FastifyRequest,
  limits: {
    readonly id: string;
    readonly limit: number;
    readonly overLimit: () => NullgateError;
    readonly content: ParsedDigest[];
    /** Also hash the content with these (digests of the whole, when it all comes in this request). */
    readonly hash?: DigestAlgorithm[] | undefined;
    /** The request asks to complete the upload (Upload-Complete: ?1). */
    readonly completes: boolean;
    /** Runs before the resource is made durable when the request leaves it incomplete. */
    readonly beforeKeep?: (() => Promise<void>) | undefined;
  },
): Promise<{ bytes: number; interrupted: boolean; digests: Map<DigestAlgorithm, Buffer> }> {
  let over: NullgateError | undefined;
  const overLimit = () => (over = limits.overLimit());
  const algorithms = [...new Set([...algorithmsOf(limits.content), ...(limits.hash ?? [])])];
  const progress = { bytes: 0 };
  // The resource stays incomplete, holding `size` bytes.
  const keep = async (size: number): Promise<void> => {
    await limits.beforeKeep?.();
    if (size > 0) await persist(ctx.root, limits.id, fd);
  };
  let digests = new Map<DigestAlgorithm, Buffer>();
  let interrupted = false;
  try {
    digests = await receiveBody(ctx.root, fd, request, limits.limit, overLimit, algorithms, progress);
  } catch (err) {
    if (err instanceof NullgateError) {
      // Past --max-upload or the declared length mid-body: the draft has the resource
      // deactivated ("marking the upload resource invalid"), so nothing of it stays.
      if (err === over) await removeResource(ctx.root, limits.id).catch(() => undefined);
      else await keep(offset + progress.bytes);
      throw err;
    }
    if (!endedEarly(err)) {
      // ENOSPC and the like: what was written stays, as for a body cut short.
      await keep(offset + progress.bytes).catch(() => undefined);
      throw fsError(err, displayPath(UPLOADS_DIR));
    }
    interrupted = true;
  }
  if (!interrupted) {
    for (const { algorithm, bytes } of limits.content) {
      if (!digests.get(algorithm)!.equals(bytes)) {
        await ftruncateAsync(fd, offset);
        await keep(offset);
        throw ngError(
          'NG_ERR_DIGEST_MISMATCH',
          `${algorithm} Content-Digest of this request's content does not match; nothing of it was appended (offset ${offset})`,
        );
      }
    }
  }
  // Completing: the data must be durable before it is linked (file-write.ts commitTemporary,
  // told it is synced already); the rest of the resource goes with the completion.
  if (limits.completes && !interrupted) await ctx.root.fsync(fd);
  else await keep(offset + progress.bytes);
  return { bytes: progress.bytes, interrupted, digests: interrupted ? new Map() : digests };
}

const ftruncateAsync = promisify(ftruncateCb);
const readAsync = promisify(readCb);

/** The digests of the whole data file (read back at completion: hash state cannot be kept on disk). */
async function digestFile(fd: number, algorithms: DigestAlgorithm[]): Promise<Map<DigestAlgorithm, Buffer>> {
  const hashes = algorithms.map((a) => [a, createDigestHash(a)] as const);
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  for (let position = 0; ;) {
    const { bytesRead } = await readAsync(fd, buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    for (const [, h] of hashes) h.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return new Map(hashes.map(([a, h]) => [a, h.digest()]));
}

// ---- Creation (PUT /files/<path> with Upload-Complete) ----

/** The precondition fields a resource keeps, judged again at completion. */
const CONDITION_FIELDS = ['if-match', 'if-none-match', 'if-unmodified-since'] as const;

function inconsistentLength(message: string): NullgateError {
  return ngError('NG_ERR_UPLOAD_LENGTH_INCONSISTENT', message);
}

function tooLarge(ctx: ResumableContext, reply: FastifyReply, message: string): NullgateError {
  // §4.1.4: a 413 because of the upload limits carries Upload-Limit.
  void reply.header('upload-limit', uploadLimit(ctx.maxUpload, ctx.expiryMs));
  return ngError('NG_ERR_PAYLOAD_TOO_LARGE', message);
}

/** Content-Length as a number, when the request has one. */
function contentLength(request: FastifyRequest): number | undefined {
  const cl = request.headers['content-length'];
  return cl === undefined ? undefined : Number(cl);
}

/**
 * The length a request declares (§4.1.3): Upload-Length, and `offset + Content-Length` when it
 * completes the upload; two that disagree (with each other or with `known`) are 400.
 */
function declaredLength(
  request: FastifyRequest,
  offset: number,
  complete: boolean,
  known: number | undefined,
) {
  const fromField = parseSfInteger(request.headers['upload-length']);
  const cl = contentLength(request);
  const fromContent = complete && cl !== undefined ? offset + cl : undefined;
  const values = [known, fromField, fromContent].filter((v): v is number => v !== undefined);
  if (values.some((v) => v !== values[0])) {
    throw inconsistentLength(`the upload's length is given as ${[...new Set(values)].join(' and ')}`);
  }
  if (cl !== undefined && values[0] !== undefined && offset + cl > values[0]) {
    throw inconsistentLength(`${cl} more bytes at offset ${offset} exceed the upload's length ${values[0]}`);
  }
  return values[0];
}

function location(ctx: ResumableContext, id: string): string {
  return `${ctx.prefix}/${id}`;
}

/** Sends 104 Upload Resumption Supported (§5) on a real HTTP/1.1 connection; see writeInformational. */
function announce(request: FastifyRequest, reply: FastifyReply, fields: [string, string][]): void {
  if (request.raw.httpVersion !== '1.1' || !(request.raw.socket instanceof Socket)) return;
  writeInformational(reply.raw, 104, 'Upload Resumption Supported', fields);
}

/**
 * `PUT /files/<path>` with `Upload-Complete`: creates the upload resource, announces it (104 with
 * `Location` and `Upload-Limit`), and takes the body into it. With `?1` and the whole body
 * received the upload completes at once and the answer is a plain PUT's (plus `Upload-Complete:
 * ?1`); with `?0` it is 201 with `Location`, `Upload-Offset`, `Upload-Complete: ?0`. A body cut
 * short leaves the resource with what arrived, for the client to resume (§4.2.2).
 */
export async function createUpload(
  ctx: ResumableContext,
  path: FilePath,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  // A directory path (PUT dir/) is no upload: the plain route answers it.
  if (path.trailingSlash || path.rel === '') return upload(ctx, path, request, reply);
  const complete = parseSfBoolean(request.headers['upload-complete']) === true;
  const shown = displayPath(path.rel);
  const length = declaredLength(request, 0, complete, undefined);
  const cl = contentLength(request);
  if ((length ?? cl ?? 0) > ctx.maxUpload) {
    throw tooLarge(
      ctx,
      reply,
      `upload of ${length ?? cl} bytes to ${shown} exceeds the limit of ${ctx.maxUpload}`,
    );
  }
  // The preconditions are judged now (refused before the body travels) and again at completion.
  const { before } = await writeTarget(ctx.root, path.rel, shown);
  if (before?.type === 'dir') throw ngError('NG_ERR_CONFLICT', `is a directory: ${shown}`);
  if (evaluatePreconditions('PUT', request.headers, currentRep(before)) === 'precondition-failed') {
    throw ngError('NG_ERR_PRECONDITION_FAILED', `precondition failed for ${shown}`);
  }
  // Content-Digest covers this request's content: with ?1 that is the whole representation.
  const content = parseDigestHeader(request.headers['content-digest']);
  // Parsed now so that a malformed one is refused before the body travels; kept as sent.
  parseDigestHeader(request.headers['repr-digest']);
  const digests: string[] = [];
  for (const field of [
    request.headers['repr-digest'],
    complete ? request.headers['content-digest'] : undefined,
  ]) {
    if (typeof field === 'string') digests.push(field);
  }
  if ((await countLive(ctx.root).catch(() => 0)) >= ctx.maxResources) {
    throw ngError(
      'NG_ERR_TOO_MANY_REQUESTS',
      `${ctx.maxResources} resumable uploads are open on this tree; complete or cancel one (DELETE) first`,
    );
  }
  const release = ctx.uploads.acquire();
  try {
    const conditions: Record<string, string> = {};
    for (const name of CONDITION_FIELDS) {
      const value = request.headers[name];
      if (typeof value === 'string') conditions[name] = value;
    }
    // What to keep of the file (routes/file-meta.ts): checked now (400 before the body), applied at completion.
    uploadMeta(request.headers);
    const keep: Record<string, string> = {};
    for (const name of KEEP_FIELDS) {
      const value = request.headers[name];
      if (typeof value === 'string') keep[name] = value;
    }
    const meta: UploadMeta = {
      id: newUploadId(),
      target: path.rel,
      uid: peerUid(request),
      gid: peerGid(request),
      length,
      created: Date.now(),
      conditions,
      digests,
      keep,
    };
    let fd: number;
    try {
      fd = await createResource(ctx.root, meta);
    } catch (err) {
      throw fsError(err, shown);
    }
    const where = location(ctx, meta.id);
    const limit = uploadLimit(ctx.maxUpload, ctx.expiryMs);
    try {
      return await asActive(meta.id, request, async () => {
        continueBody(request, reply);
        announce(request, reply, [
          ['Location', where],
          ['Upload-Limit', limit],
        ]);
        const {
          bytes,
          interrupted,
          digests: whole,
        } = await receive(ctx, fd, 0, request, {
          id: meta.id,
          limit: Math.min(ctx.maxUpload, length ?? Infinity),
          overLimit: () => overLimit(ctx, reply, meta, shown),
          content: complete ? [] : content,
          // The whole representation in this one request: its digests need no read-back.
          hash: complete
            ? algorithmsOf(meta.digests.flatMap((field) => parseDigestHeader(field)))
            : undefined,
          completes: complete,
        });
        if (interrupted) throw endedEarlyError(shown, where, bytes);
        if (complete) return await completeUpload(ctx, meta, fd, bytes, reply, whole);
        return reply
          .code(201)
          .header('location', where)
          .header('upload-limit', limit)
          .header('upload-offset', String(bytes))
          .header('upload-complete', '?0')
          .send({ path: shown, location: where, offset: bytes, complete: false });
      });
    } finally {
      await closeFd(fd);
    }
  } finally {
    release();
  }
}

function endedEarlyError(shown: string, where: string, offset: number): NullgateError {
  return ngError(
    'NG_ERR_BAD_REQUEST',
    `upload to ${shown} ended early; the ${offset} bytes that arrived wait at ${where} (HEAD it, then PATCH the rest)`,
  );
}

/** Past the upload limit or the declared length, mid-body. */
function overLimit(
  ctx: ResumableContext,
  reply: FastifyReply,
  meta: UploadMeta,
  shown: string,
): NullgateError {
  if (meta.length !== undefined && meta.length < ctx.maxUpload) {
    return inconsistentLength(`upload to ${shown} goes past its declared length ${meta.length}`);
  }
  return tooLarge(ctx, reply, `upload to ${shown} exceeds the limit of ${ctx.maxUpload} bytes`);
}

// ---- Completion ----

/**
 * The upload is complete (§4.1.2): the representation becomes the target exactly as a plain PUT
 * would have made it. A failure here is final (the draft: resuming would not help), so the
 * resource goes with it; every answer carries `Upload-Complete: ?1`.
 */
async function completeUpload(
  ctx: ResumableContext,
  meta: UploadMeta,
  fd: number,
  size: number,
  reply: FastifyReply,
  /** Digests of the whole, hashed as it arrived (a creation that completed in one request). */
  hashed?: ReadonlyMap<DigestAlgorithm, Buffer>,
) {
  const { root } = ctx;
  const shown = displayPath(meta.target);
  void reply.header('upload-complete', '?1');
  let done = false;
  try {
    if (meta.length !== undefined && size !== meta.length) {
      throw inconsistentLength(
        `upload to ${shown} completed at ${size} bytes, its declared length is ${meta.length}`,
      );
    }
    const { target, before } = await writeTarget(root, meta.target, shown);
    if (before?.type === 'dir') throw ngError('NG_ERR_CONFLICT', `is a directory: ${shown}`);
    if (evaluatePreconditions('PUT', meta.conditions, currentRep(before)) === 'precondition-failed') {
      throw ngError('NG_ERR_PRECONDITION_FAILED', `precondition failed for ${shown}`);
    }
    const expected = meta.digests.flatMap((field) => parseDigestHeader(field));
    if (expected.length > 0) {
      const algorithms = algorithmsOf(expected);
      const actual = algorithms.every((a) => hashed?.has(a)) ? hashed! : await digestFile(fd, algorithms);
      for (const { algorithm, bytes } of expected) {
        if (!actual.get(algorithm)!.equals(bytes)) {
          throw ngError(
            'NG_ERR_DIGEST_MISMATCH',
            `${algorithm} digest of the upload does not match for ${shown}; nothing was changed`,
          );
        }
      }
    }
    const mustBeNew = meta.conditions['if-none-match']?.trim() === '*';
    const parent = parentOf(target);
    const near = before ? parent : await existingDir(root, parent, shown);
    const place = { rel: meta.target, shown, target, parent, near, mustBeNew };
    const keep = uploadMeta(meta.keep ?? {});
    const prepare = async (file: number): Promise<void> => {
      try {
        await applyOwnerAndMode(file, keep, { uid: meta.uid, gid: meta.gid ?? -1 });
      } catch (err) {
        throw fsError(err, shown);
      }
    };
    // The marker that answers a HEAD after the completion (a client that lost this answer) is
    // made as soon as the target is in place, before its directory is fsynced (upload-store.ts),
    // unless an mtime still changes the ETag; made or not, nothing of it may fail the upload.
    let marked = false;
    let partLeft = false;
    const mark = async (st: BeneathStat): Promise<void> => {
      const marker: DoneMarker = { uid: meta.uid, size: st.size, etag: strongEtag(st) };
      marked = await markDone(root, meta.id, marker, partLeft).then(
        () => true,
        () => false,
      );
    };
    const linked = keep.mtimeNs === undefined ? mark : undefined;
    let after;
    if (await root.sameMount(UPLOADS_DIR, near).catch(() => false)) {
      await prepare(fd);
      // The data was fsynced as it was received (receive: `completes`).
      after = await commitTemporary(root, place, { fd, named: partPath(meta.id), synced: true, linked });
    } else {
      partLeft = true;
      after = await copyAndCommit(root, place, fd, shown, prepare, linked);
    }
    if (keep.mtimeNs !== undefined) {
      try {
        await applyMtime(root, target, keep);
        after = await root.lstat(target);
      } catch (err) {
        throw fsError(err, shown);
      }
      await mark(after);
    }
    if (marked) await syncDone(root).catch(() => undefined);
    const etag = strongEtag(after);
    done = true;
    return reply
      .code(before ? 200 : 201)
      .header('etag', etag)
      .send({ path: shown, size: after.size, etag });
  } finally {
    if (!done) await removeResource(root, meta.id).catch(() => undefined);
  }
}

/** A target on another mount than the uploads directory: its bytes go into a temporary beside it first. */
async function copyAndCommit(
  root: BeneathRoot,
  place: Parameters<typeof commitTemporary>[1],
  fd: number,
  shown: string,
  prepare: (fd: number) => Promise<void>,
  onLinked: ((st: BeneathStat) => Promise<void>) | undefined,
) {
  const staged = await openTemporary(root, place.near, shown);
  let linked = false;
  try {
    const writer = fdWriter(root, staged.fd);
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    for (let position = 0; ;) {
      const { bytesRead } = await readAsync(fd, buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      const chunk = Buffer.from(buffer.subarray(0, bytesRead));
      if (!writer.write(chunk)) await new Promise((resolve) => writer.once('drain', resolve));
      position += bytesRead;
    }
    await new Promise<void>((resolve, reject) =>
      writer.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    await prepare(staged.fd);
    const after = await commitTemporary(root, place, { ...staged, linked: onLinked });
    linked = true;
    return after;
  } catch (err) {
    throw fsError(err, shown);
  } finally {
    await closeFd(staged.fd);
    if (staged.named !== undefined && !linked) await root.unlink(staged.named).catch(() => undefined);
  }
}

// ---- The upload resource: HEAD, PATCH, DELETE <prefix>/<id> ----

type Found =
  | { readonly kind: 'live'; readonly meta: UploadMeta }
  | { readonly kind: 'done'; readonly marker: DoneMarker };

/** The resource `id` as the requesting peer may see it: another uid's is not found (404), like a missing one. */
async function find(ctx: ResumableContext, id: string, request: FastifyRequest): Promise<Found> {
  const uid = peerUid(request);
  const [meta, marker] = await Promise.all([readMeta(ctx.root, id), readDone(ctx.root, id)]);
  // The marker first: it is made once the target is in place, just before the metadata goes.
  if (marker !== undefined && marker.uid === uid) return { kind: 'done', marker };
  if (meta !== undefined && meta.uid === uid) return { kind: 'live', meta };
  throw ngError('NG_ERR_NOT_FOUND', `no upload resource ${location(ctx, id)}`);
}

/** The offset of a live resource: its data file's size (made durable before a request that keeps it ends). */
async function withPart<T>(
  ctx: ResumableContext,
  id: string,
  work: (fd: number, offset: number) => Promise<T>,
) {
  const fd = await openPart(ctx.root, id);
  if (fd === undefined) throw ngError('NG_ERR_NOT_FOUND', `no upload resource ${location(ctx, id)}`);
  try {
    return await work(fd, (await ctx.root.fstat(fd)).size);
  } finally {
    await closeFd(fd);
  }
}

/** HEAD: the offset retrieval of §4.3 (204, no body). */
export async function headUpload(
  ctx: ResumableContext,
  id: string,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  await endPrevious(id);
  const found = await find(ctx, id, request);
  void reply.header('cache-control', 'no-store');
  if (found.kind === 'done') {
    return reply
      .code(204)
      .header('upload-complete', '?1')
      .header('upload-offset', String(found.marker.size))
      .header('upload-length', String(found.marker.size))
      .header('etag', found.marker.etag)
      .send();
  }
  const { meta } = found;
  return withPart(ctx, id, async (fd, offset) => {
    // max-age is what is left of the lifetime (§4.1.4): the expiry counts from the last append.
    const idle = Date.now() - (await ctx.root.fstat(fd)).mtimeMs;
    void reply
      .code(204)
      .header('upload-complete', '?0')
      .header('upload-offset', String(offset))
      .header('upload-limit', uploadLimit(ctx.maxUpload, ctx.expiryMs - Math.max(0, idle)));
    if (meta.length !== undefined) void reply.header('upload-length', String(meta.length));
    return reply.send();
  });
}

/** PATCH: the upload append of §4.4. */
export async function patchUpload(
  ctx: ResumableContext,
  id: string,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const type = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (type !== PARTIAL_UPLOAD_TYPE) {
    throw ngError(
      'NG_ERR_UNSUPPORTED_MEDIA_TYPE',
      `PATCH of an upload resource takes Content-Type: ${PARTIAL_UPLOAD_TYPE}`,
    );
  }
  const provided = parseSfInteger(request.headers['upload-offset']);
  const complete = parseSfBoolean(request.headers['upload-complete']);
  if (provided === undefined || complete === undefined) {
    throw ngError(
      'NG_ERR_BAD_REQUEST',
      'PATCH of an upload resource needs Upload-Offset (an integer) and Upload-Complete (?0 or ?1)',
    );
  }
  const content = parseDigestHeader(request.headers['content-digest']);
  await endPrevious(id);
  const found = await find(ctx, id, request);
  if (found.kind === 'done') {
    void reply.header('upload-complete', '?1');
    throw ngError('NG_ERR_UPLOAD_COMPLETED', `the upload ${location(ctx, id)} is already complete`);
  }
  let { meta } = found;
  const shown = displayPath(meta.target);
  const release = ctx.uploads.acquire();
  try {
    return await asActive(id, request, () =>
      withPart(ctx, id, async (fd, offset) => {
        if (provided !== offset) {
          void reply.header('upload-offset', String(offset)).header('upload-complete', '?0');
          throw ngError(
            'NG_ERR_UPLOAD_OFFSET_MISMATCH',
            `Upload-Offset ${provided} does not match the upload's offset ${offset} (expected-offset ${offset}, provided-offset ${provided})`,
          );
        }
        const length = declaredLength(request, offset, complete, meta.length);
        // A length declared now is kept on disk for the requests after this one: there are none
        // when this one completes the upload, unless it is cut short.
        const declared = length !== meta.length;
        if (declared) meta = { ...meta, length };
        if (declared && !complete) await writeMeta(ctx.root, meta);
        const cl = contentLength(request);
        if (cl !== undefined && offset + cl > ctx.maxUpload) {
          throw tooLarge(
            ctx,
            reply,
            `${cl} more bytes at offset ${offset} exceed the upload limit of ${ctx.maxUpload}`,
          );
        }
        continueBody(request, reply);
        const { bytes, interrupted, digests } = await receive(ctx, fd, offset, request, {
          id,
          limit: Math.min(ctx.maxUpload, meta.length ?? Infinity) - offset,
          overLimit: () => overLimit(ctx, reply, meta, shown),
          content,
          // All of the representation in this one request (a creation without data, then one
          // append from 0): its digests are hashed as it arrives, not read back at completion.
          hash:
            complete && offset === 0
              ? algorithmsOf(meta.digests.flatMap((field) => parseDigestHeader(field)))
              : undefined,
          completes: complete,
          beforeKeep: declared && complete ? () => writeMeta(ctx.root, meta) : undefined,
        });
        if (interrupted) throw endedEarlyError(shown, location(ctx, id), offset + bytes);
        // From offset 0 the digests of this request's content are those of the whole.
        const whole = offset === 0 ? digests : undefined;
        if (complete) return completeUpload(ctx, meta, fd, offset + bytes, reply, whole);
        return reply
          .code(204)
          .header('upload-complete', '?0')
          .header('upload-offset', String(offset + bytes))
          .header('upload-limit', uploadLimit(ctx.maxUpload, ctx.expiryMs))
          .send();
      }),
    );
  } finally {
    release();
  }
}

/** DELETE: the upload cancellation of §4.5; a completed one's record goes too. */
export async function deleteUpload(
  ctx: ResumableContext,
  id: string,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  await endPrevious(id);
  await find(ctx, id, request);
  try {
    await removeResource(ctx.root, id);
  } catch (err) {
    throw fsError(err, location(ctx, id));
  }
  return reply.code(204).send();
}
