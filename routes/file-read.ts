/**
 * GET/HEAD of /files: one file (Range, conditionals, digests) or a directory listing. Every open
 * goes through the beneath-root layer; the fd opened here is the one that is fstat'ed and read,
 * so what is described is exactly what is sent.
 */
import { createReadStream, constants as fsc } from 'node:fs';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type BeneathRoot, type BeneathStat, closeFd, TMP_PREFIX } from '../gateway/beneath.js';
import { fsError, ngError } from '../gateway/errors.js';
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
import { createBoundary, multipartContentType, multipartLength, multipartParts } from './multipart.js';
import { contentRange, parseRange, unsatisfiedContentRange } from './range.js';
import { displayPath, type FilePath } from './url-path.js';

/** Large enough for throughput on a unix socket, small enough for hundreds of downloads at once. */
const READ_CHUNK = 256 * 1024;
/** Directory entries stat'ed per step of a streamed listing. */
const LISTING_BATCH = 256;

export interface ReadContext {
  readonly root: BeneathRoot;
  readonly digests: DigestCache;
}

export async function getPath(
  ctx: ReadContext,
  path: FilePath,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const shown = displayPath(path.rel);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below anyway).
    fd = await ctx.root.open(path.rel, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (err) {
    throw fsError(err, shown);
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
    return await sendFile(ctx, fd, st, shown, request, reply);
  } finally {
    if (owned) await closeFd(fd);
  }
}

function representation(st: BeneathStat): Representation & { etag: string } {
  return { exists: true, etag: strongEtag(st), lastModified: st.mtimeMs };
}

/** Takes ownership of `fd`: it is closed when the response is done, whatever happens. */
async function sendFile(
  ctx: ReadContext,
  fd: number,
  st: BeneathStat,
  shown: string,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  let streamed = false;
  try {
    const rep = representation(st);
    const headers = request.headers;
    void reply
      .header('etag', rep.etag)
      .header('last-modified', lastModifiedHeader(st.mtimeMs))
      .header('accept-ranges', 'bytes');

    const verdict = evaluatePreconditions(request.method, headers, rep);
    if (verdict === 'not-modified') return reply.code(304).send();
    if (verdict === 'precondition-failed') {
      throw ngError('NG_ERR_PRECONDITION_FAILED', `precondition failed for ${shown}`);
    }

    // RFC 9530 §4: the digest of the whole representation, also on 206 and HEAD.
    const algorithm = parseWantDigest(headers['want-repr-digest']);
    if (algorithm !== undefined) {
      const digest = await reprDigest(ctx, fd, st, rep.etag, algorithm);
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
        return reply.send(fileStream(fd, start, end, true));
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
        return reply.send(Readable.from(multipartStream(fd, body)));
      }
      case 'none': {
        void reply.code(200).type(type).header('content-length', st.size);
        if (head || st.size === 0) return reply.send(head ? undefined : '');
        streamed = true;
        return reply.send(fileStream(fd, 0, st.size - 1, true));
      }
    }
  } finally {
    if (!streamed) await closeFd(fd);
  }
}

function fileStream(fd: number, start: number, end: number, autoClose: boolean) {
  return createReadStream('', { fd, start, end, autoClose, highWaterMark: READ_CHUNK });
}

async function* multipartStream(fd: number, body: ReturnType<typeof multipartParts>) {
  try {
    for (const part of body.parts) {
      yield part.header;
      for await (const chunk of fileStream(fd, part.start, part.end, false)) yield chunk as Buffer;
    }
    yield body.closing;
  } finally {
    await closeFd(fd);
  }
}

async function reprDigest(
  ctx: ReadContext,
  fd: number,
  st: BeneathStat,
  etag: string,
  algorithm: DigestAlgorithm,
): Promise<Buffer> {
  const cached = ctx.digests.get(algorithm, etag);
  if (cached) return cached;
  const hash = createDigestHash(algorithm);
  if (st.size > 0)
    for await (const chunk of fileStream(fd, 0, st.size - 1, false)) hash.update(chunk as Buffer);
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
      for (const entry of batch) if (!entry.name.startsWith(TMP_PREFIX)) names.push(entry.name);
    }
  } catch (err) {
    throw fsError(err, displayPath(rel, true));
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  void reply.code(200).type('application/json; charset=utf-8');
  if (request.method === 'HEAD') return reply.send();
  return reply.send(Readable.from(listingChunks(ctx.root, rel, names)));
}

async function* listingChunks(root: BeneathRoot, rel: string, names: string[]): AsyncGenerator<string> {
  yield `{"path":${JSON.stringify(displayPath(rel, true))},"entries":[`;
  let first = true;
  for (let i = 0; i < names.length; i += LISTING_BATCH) {
    const batch = names.slice(i, i + LISTING_BATCH);
    const entries = await Promise.all(
      batch.map((name) => listEntry(root, rel === '' ? name : `${rel}/${name}`, name)),
    );
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
    };
  } catch {
    // Removed between readdir and lstat: it is simply not there any more.
    return undefined;
  }
}
