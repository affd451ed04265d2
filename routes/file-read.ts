/**
 * GET/HEAD of /files: one file (Range, conditionals, digests) or a directory listing. Every open
 * goes through the beneath-root layer; the fd opened here is the one that is fstat'ed and read,
 * so what is described is exactly what is sent.
 */
import { createReadStream, constants as fsc, read as readCb } from 'node:fs';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type BeneathRoot, type BeneathStat, closeFd } from '../native/beneath.js';
import { offerPrebuilt, PrebuiltFields, setReplyFields } from '../native/node-internals.js';
import { fsError, ngError } from '../core/errors.js';
import { evaluatePreconditions, ifRangeAllows, type Representation } from './conditional.js';
import { contentTypeFor } from './content-type.js';
import {
  createDigestHash,
  type DigestAlgorithm,
  type DigestCache,
  formatDigest,
  parseWantDigest,
} from './digest.js';
import { lastModifiedHeader, strongEtag } from './etag.js';
import {
  GID_HEADER,
  MODE_HEADER,
  MTIME_HEADER,
  TYPE_HEADER,
  UID_HEADER,
  formatMode,
  formatMtime,
} from '../core/file-meta.js';
import { createBoundary, multipartContentType, multipartLength, multipartParts } from './multipart.js';
import { contentRange, parseRange, unsatisfiedContentRange } from './range.js';
import { displayPath, isTempName, joinRel } from '../core/rel-path.js';
import type { SmallFileCache } from './small-file-cache.js';
import type { CachedFile } from '../native/small-file.js';
import type { FilePath } from './url-path.js';
import { sendFileRange, ZERO_COPY_MIN_BYTES, zeroCopyAvailable } from './zero-copy.js';

/** Large enough for throughput on a unix socket, small enough for hundreds of downloads at once. */
const READ_CHUNK = 256 * 1024;
/** Directory entries stat'ed per step of a streamed listing. */
const LISTING_BATCH = 256;

/** What a response is made from: the open fd (streamed or sendfile'd), or the bytes already read. */
type Source = { readonly fd: number } | { readonly data: Buffer };

export interface ReadContext {
  readonly root: BeneathRoot;
  readonly digests: DigestCache;
  /** Small files served often, revalidated on every request (routes/small-file-cache.ts). */
  readonly small: SmallFileCache;
}

/**
 * Answers synchronously (a small file from the caches), with a promise of the answer, or, for a
 * file the small-file cache keeps, at the end of this turn of the event loop (undefined: the
 * reply is sent then, and `failed` told what that answer throws).
 */
export function getPath(
  ctx: ReadContext,
  path: FilePath,
  request: FastifyRequest,
  reply: FastifyReply,
  failed: (request: FastifyRequest, reply: FastifyReply, err: unknown) => void,
): FastifyReply | Promise<FastifyReply> | undefined {
  const shown = displayPath(path.rel);
  if (path.trailingSlash) return openAndSend(ctx, path, shown, request, reply);
  // Most requests of a busy server are for small files that are in the caches: answer them on
  // this thread. A kept file is revalidated once for all the requests for it that this turn of
  // the event loop reads (one fstatat for all, routes/small-file-cache.ts); any other small
  // file is read in one native call (PERFORMANCE-NOTES: ~4 µs against ~90 µs through fs.promises).
  if (ctx.small.keeps(path.rel)) {
    ctx.small.later(path.rel, (cached) => {
      try {
        const answer = fromCache(ctx, cached, path, shown, request, reply);
        if (answer instanceof Promise) answer.catch((err: unknown) => failed(request, reply, err));
      } catch (err) {
        failed(request, reply, err);
      }
    });
    return undefined;
  }
  return fromCache(ctx, ctx.small.get(path.rel), path, shown, request, reply);
}

/** The answer from what the small-file cache gave (undefined: open the file). */
function fromCache(
  ctx: ReadContext,
  cached: CachedFile | undefined,
  path: FilePath,
  shown: string,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply | Promise<FastifyReply> {
  if (cached === undefined) return openAndSend(ctx, path, shown, request, reply);
  const { headers } = request;
  // The whole file, answered synchronously: no promise on the hot path.
  if (headers.range === undefined && headers['want-repr-digest'] === undefined) {
    return sendWhole(cached.data, cached.stat, shown, request, reply);
  }
  return sendFile(ctx, { data: cached.data }, cached.stat, shown, request, reply);
}

async function openAndSend(
  ctx: ReadContext,
  path: FilePath,
  shown: string,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer, nor a device for its line (both are
    // refused below anyway); O_NOCTTY: a terminal must not become the server's controlling one.
    fd = await ctx.root.open(path.rel, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (err) {
    // open(2) of a unix socket, or of a device no driver answers, is ENXIO (ENODEV for some
    // devices): not a file to serve, as the FIFO and devices that do open are refused below.
    const notRegular = { code: 'NG_ERR_FORBIDDEN', message: `not a regular file: ${shown}` } as const;
    throw fsError(err, shown, { ENXIO: notRegular, ENODEV: notRegular });
  }
  let owned = true;
  try {
    const st = await ctx.root.fstat(fd, path.rel);
    if (st.type === 'dir') {
      await closeFd(fd);
      owned = false;
      return sendListing(ctx, path.rel, request, reply);
    }
    if (st.type !== 'file') throw ngError('NG_ERR_FORBIDDEN', `not a regular file: ${shown}`);
    if (path.trailingSlash) throw ngError('NG_ERR_NOT_FOUND', `not a directory: ${shown}/`);
    owned = false;
    return await sendFile(ctx, { fd }, st, shown, request, reply);
  } finally {
    if (owned) await closeFd(fd);
  }
}

type FileRepresentation = Representation & { readonly etag: string };

/**
 * What a file's status says about it: its validators (RFC 9110 §8.8) and the header fields of
 * every answer about it. Made once per status object: a cached file's repeats.
 */
interface Described {
  readonly rep: FileRepresentation;
  readonly fields: Record<string, string>;
  /** The fields of a 200 with the whole file, for the name they were made for (wholeFields). */
  whole?: {
    readonly shown: string;
    readonly fields: Record<string, string>;
    /** The same fields as one checked header block (native/node-internals.ts). */
    readonly prebuilt: PrebuiltFields | undefined;
  };
}

const describedMemo = new WeakMap<BeneathStat, Described>();

function described(st: BeneathStat): Described {
  let known = describedMemo.get(st);
  if (known === undefined) {
    const etag = strongEtag(st);
    known = {
      rep: { exists: true, etag, lastModified: st.mtimeMs },
      fields: {
        etag,
        'last-modified': lastModifiedHeader(st.mtimeMs),
        'accept-ranges': 'bytes',
        // What `get` needs to keep the mode (and with -p the owner and mtime), as cp and scp do.
        [MODE_HEADER]: formatMode(st.mode),
        [UID_HEADER]: String(st.uid),
        [GID_HEADER]: String(st.gid),
        [MTIME_HEADER]: formatMtime(st.mtimeNs),
      },
    };
    describedMemo.set(st, known);
  }
  return known;
}

/**
 * Sets the validators and metadata fields and judges the request's preconditions (RFC 9110
 * §13.2.2): the representation, or undefined when that answered the request (304); a failed
 * precondition throws 412.
 */
function describe(
  st: BeneathStat,
  shown: string,
  request: FastifyRequest,
  reply: FastifyReply,
): FileRepresentation | undefined {
  const { rep, fields } = described(st);
  void reply.headers(fields);
  const verdict = evaluatePreconditions(request.method, request.headers, rep);
  if (verdict === 'not-modified') {
    void reply.code(304).send();
    return undefined;
  }
  if (verdict === 'precondition-failed') {
    throw ngError('NG_ERR_PRECONDITION_FAILED', `precondition failed for ${shown}`);
  }
  return rep;
}

/** 200 with all of `data` (HEAD: none of it), or what the preconditions answered. */
function sendWhole(
  data: Buffer,
  st: BeneathStat,
  shown: string,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const known = described(st);
  // The common case, no precondition or one that passes: every field of the answer at once.
  if (evaluatePreconditions(request.method, request.headers, known.rep) === 'proceed') {
    const whole = wholeFields(known, st, shown);
    setReplyFields(reply, whole.fields);
    if (whole.prebuilt !== undefined) offerPrebuilt(reply.raw, whole.prebuilt);
    return reply.code(200).send(request.method === 'HEAD' ? undefined : data);
  }
  if (describe(st, shown, request, reply) === undefined) return reply;
  void reply.code(200).type(contentTypeFor(shown)).header('content-length', st.size);
  return reply.send(request.method === 'HEAD' ? undefined : data);
}

/**
 * The fields of a 200 with the whole file: the status's, its type and its length, in the order
 * the other answers set them, and their header block. Made once per status object and name (a
 * cached file's repeat).
 */
function wholeFields(known: Described, st: BeneathStat, shown: string): NonNullable<Described['whole']> {
  if (known.whole?.shown !== shown) {
    const fields = {
      ...known.fields,
      'content-type': contentTypeFor(shown),
      'content-length': String(st.size),
    };
    let prebuilt: PrebuiltFields | undefined;
    try {
      prebuilt = new PrebuiltFields(fields);
    } catch {
      // A field Node would refuse: the answer takes Node's path, which reports it.
    }
    known.whole = { shown, fields, prebuilt };
  }
  return known.whole;
}

/** Takes ownership of the source's fd: it is closed when the response is done, whatever happens. */
async function sendFile(
  ctx: ReadContext,
  source: Source,
  st: BeneathStat,
  shown: string,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  let streamed = false;
  try {
    const rep = describe(st, shown, request, reply);
    if (rep === undefined) return reply;
    const headers = request.headers;

    // RFC 9530 §4: the digest of the whole representation, also on 206 and HEAD.
    const algorithm = parseWantDigest(headers['want-repr-digest']);
    if (algorithm !== undefined) {
      const digest = await reprDigest(ctx, source, st, rep.etag, algorithm);
      void reply.header('repr-digest', formatDigest(algorithm, digest));
    }

    const type = contentTypeFor(shown);
    const ranged = headers.range !== undefined && ifRangeAllows(headers, rep);
    const range = ranged ? parseRange(headers.range, st.size) : ({ kind: 'none' } as const);
    const head = request.method === 'HEAD';

    switch (range.kind) {
      case 'unsatisfiable':
        void reply.header('content-range', unsatisfiedContentRange(st.size));
        throw ngError(
          'NG_ERR_RANGE_NOT_SATISFIABLE',
          `range not satisfiable for ${shown} (${st.size} bytes)`,
        );
      case 'single': {
        const { start, end } = range.range;
        void reply
          .code(206)
          .type(type)
          .header('content-range', contentRange(start, end, st.size))
          .header('content-length', end - start + 1);
        if (head) return reply.send();
        streamed = true;
        return await sendBody(source, start, end, request, reply);
      }
      case 'multiple': {
        const boundary = createBoundary();
        const body = multipartParts(range.ranges, st.size, type, boundary);
        void reply
          .code(206)
          .header('content-type', multipartContentType(boundary))
          .header('content-length', multipartLength(body));
        if (head) return reply.send();
        streamed = true;
        return reply.send(Readable.from(multipartStream(source, body)));
      }
      case 'none': {
        void reply.code(200).type(type).header('content-length', st.size);
        if (head || st.size === 0) return reply.send(head ? undefined : '');
        streamed = true;
        return await sendBody(source, 0, st.size - 1, request, reply);
      }
    }
  } finally {
    if (!streamed && 'fd' in source) await closeFd(source.fd);
  }
}

/**
 * Sends bytes start..end (inclusive) of the source as the body, owning its fd. Large bodies go
 * zero-copy: the headers are written, then the kernel moves the file to the socket with
 * sendfile(2) on a native thread (routes/zero-copy.ts); smaller ones are streamed.
 */
async function sendBody(
  source: Source,
  start: number,
  end: number,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  if ('data' in source) return reply.send(source.data.subarray(start, end + 1));
  const { fd } = source;
  if (end - start + 1 < ZERO_COPY_MIN_BYTES || !zeroCopyAvailable())
    return reply.send(fileStream(fd, start, end, true));
  reply.hijack();
  try {
    // setHeader (not writeHead's argument) keeps them readable for the access log.
    for (const [name, value] of Object.entries(reply.getHeaders()))
      if (value !== undefined) reply.raw.setHeader(name, value);
    reply.raw.writeHead(reply.statusCode);
    await sendFileRange(reply.raw, fd, start, end);
  } catch (err) {
    // The client went away or stalled: the response is already cut, nothing more to tell it.
    request.log.debug({ err }, 'download cut short');
  } finally {
    await closeFd(fd);
  }
  return reply;
}

function fileStream(fd: number, start: number, end: number, autoClose: boolean) {
  return createReadStream('', { fd, start, end, autoClose, highWaterMark: READ_CHUNK });
}

const readAsync = promisify(readCb);

/**
 * Bytes start..end (inclusive) of an fd this BORROWS, by pread. Not fs.createReadStream with
 * autoClose false: leaving its iterator early (a client that goes away mid-multipart) destroys
 * the stream, which closes the fd anyway, and the owner's close then hits EBADF or closes an fd
 * number another request has just been given.
 */
async function* readRange(fd: number, start: number, end: number): AsyncGenerator<Buffer> {
  for (let at = start; at <= end;) {
    const want = Math.min(READ_CHUNK, end - at + 1);
    const { bytesRead, buffer } = await readAsync(fd, Buffer.allocUnsafe(want), 0, want, at);
    // The file shrank under us: stop; the client sees a short body against Content-Length.
    if (bytesRead === 0) return;
    yield buffer.subarray(0, bytesRead);
    at += bytesRead;
  }
}

async function* multipartStream(source: Source, body: ReturnType<typeof multipartParts>) {
  try {
    for (const part of body.parts) {
      yield part.header;
      if ('data' in source) yield source.data.subarray(part.start, part.end + 1);
      else yield* readRange(source.fd, part.start, part.end);
    }
    yield body.closing;
  } finally {
    if ('fd' in source) await closeFd(source.fd);
  }
}

async function reprDigest(
  ctx: ReadContext,
  source: Source,
  st: BeneathStat,
  etag: string,
  algorithm: DigestAlgorithm,
): Promise<Buffer> {
  const cached = ctx.digests.get(algorithm, etag);
  if (cached) return cached;
  const hash = createDigestHash(algorithm);
  if ('data' in source) hash.update(source.data);
  else if (st.size > 0) for await (const chunk of readRange(source.fd, 0, st.size - 1)) hash.update(chunk);
  const digest = hash.digest();
  ctx.digests.set(algorithm, etag, digest);
  return digest;
}

export interface ListingEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mtime: string;
  mode: number;
  /** Numeric owner (never a name: the chroot's /etc/passwd is not the server's). */
  uid: number;
  gid: number;
}

/**
 * `{"path":"/dir/","entries":[…]}` sorted by name (code unit order, like `ls` in the C locale).
 * Only names are held in memory; stats are taken and written a batch at a time as the client
 * reads, so a directory of 100,000 entries never becomes one big array of stats.
 */
async function sendListing(ctx: ReadContext, rel: string, request: FastifyRequest, reply: FastifyReply) {
  const names: string[] = [];
  try {
    for await (const batch of ctx.root.readdirBatches(rel)) {
      for (const entry of batch) if (!isTempName(entry.name)) names.push(entry.name);
    }
  } catch (err) {
    throw fsError(err, displayPath(rel, true));
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  // The header, not the content type, says "listing": a file named x.json is application/json too.
  void reply.code(200).type('application/json; charset=utf-8').header(TYPE_HEADER, 'dir');
  if (request.method === 'HEAD') return reply.send();
  return reply.send(Readable.from(listingChunks(ctx.root, rel, names)));
}

async function* listingChunks(root: BeneathRoot, rel: string, names: string[]): AsyncGenerator<string> {
  yield `{"path":${JSON.stringify(displayPath(rel, true))},"entries":[`;
  let first = true;
  for (let i = 0; i < names.length; i += LISTING_BATCH) {
    const batch = names.slice(i, i + LISTING_BATCH);
    const entries = await Promise.all(batch.map((name) => listEntry(root, joinRel(rel, name), name)));
    const text = entries
      .filter((e): e is ListingEntry => e !== undefined)
      .map((e) => JSON.stringify(e))
      .join(',');
    if (text) {
      yield (first ? '' : ',') + text;
      first = false;
    }
  }
  yield ']}';
}

async function listEntry(root: BeneathRoot, rel: string, name: string): Promise<ListingEntry | undefined> {
  try {
    const st = await root.lstat(rel);
    return {
      name,
      type: st.type,
      size: st.size,
      mtime: new Date(st.mtimeMs).toISOString(),
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
    };
  } catch {
    // Removed between readdir and lstat: it is simply not there any more.
    return undefined;
  }
}
