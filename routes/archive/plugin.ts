/**
 * `GET /archive/<dir>` and `PUT /archive/<dir>`: whole trees as one tar stream (CONTRACT.md
 * "HTTP API"; Docker's `/containers/{id}/archive` is the model users know). A Fastify plugin,
 * registered with prefix '/archive'; the work is in its parts beside it:
 *
 * - pack.ts: GET's tar writer, the tree walked with backpressure from the socket;
 * - stage.ts: PUT's extraction of the body into a hidden staging directory;
 * - merge.ts: PUT's move of the staged tree into place (a rename, or a merge undone on failure).
 */
import { createHash } from 'node:crypto';
import { Readable, pipeline } from 'node:stream';
import { createGzip } from 'node:zlib';

import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

import { codeOf, fsError, ngError } from '../../core/errors.js';
import { APPLY_HEADER, MANIFEST_TYPE, XATTRS_HEADER, type XattrScope } from '../../core/manifest.js';
import { baseOf, displayPath, isTempName, normalizeRel } from '../../core/rel-path.js';
import { type Ids, processIds, setRule } from '../../core/set-rule.js';
import { type BeneathRoot, type BeneathStat, closeFd } from '../../native/beneath.js';
import { contentDisposition } from '../content-disposition.js';
import { DigestCache } from '../digest.js';
import { strongEtag } from '../etag.js';
import { methodNotAllowed } from '../files.js';
import { closeAfterResponse } from '../linger.js';
import { continueBody, type RoutesOptions, setUpRoutes } from '../plugin.js';
import { requestPath } from '../url-path.js';
import { zeroCopyAvailable } from '../zero-copy.js';
import { commit, locate } from './merge.js';
import { type PackOptions, packPieces, packTree, pieceBytes, readFileRange } from './pack.js';
import { sendArchive } from './send.js';
import { type ArchiveResult, Stager, extract, makeStaging, tooLarge } from './stage.js';

export type { ArchiveResult } from './stage.js';

/** Options of archiveRoutes (routes/plugin.ts). */
export type ArchiveRoutesOptions = RoutesOptions;

function truthyQuery(value: unknown): boolean {
  return value === '1' || value === 'true' || value === '';
}

/** The methods of every /archive resource (the `Allow` of a 405). */
export const ARCHIVE_METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT'];

/** The largest selection `POST /archive/<dir>?select=1` reads (one JSON string per line). */
export const MAX_SELECTION_BYTES = 64 * 1024 * 1024;

/** The paths of a selection body, each checked to be a clean relative path; 400 otherwise. */
export function parseSelection(body: Buffer): Set<string> {
  const bad = (why: string) => ngError('NG_ERR_BAD_REQUEST', `selection: ${why}`);
  const out = new Set<string>();
  for (const line of body.toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    let p: unknown;
    try {
      p = JSON.parse(line);
    } catch {
      throw bad('a line is not a JSON string');
    }
    if (typeof p !== 'string') throw bad('a line is not a JSON string');
    if (p.includes('\0') || normalizeRel(p) !== p || p.split('/').some(isTempName)) {
      throw bad(`not a clean relative path: ${JSON.stringify(p).slice(0, 100)}`);
    }
    out.add(p);
  }
  return out;
}

/** The request body, up to `max` bytes (413 past it). */
async function readSmallBody(request: FastifyRequest, max: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? 0);
  const tooBig = () => ngError('NG_ERR_PAYLOAD_TOO_LARGE', `selection larger than ${max} bytes`);
  if (declared > max) throw tooBig();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request.raw as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw tooBig();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

export const archiveRoutes: FastifyPluginAsync<ArchiveRoutesOptions> = async (app, options) => {
  const { treeOf, maxUpload, uploads: slots } = await setUpRoutes(app, options);
  const prefix = app.prefix;
  // sha-256 of file contents for manifests with checksum=1, by ETag: a repeat sync is cheap.
  const digests = new DigestCache();
  const checksum = async (fd: number, st: BeneathStat, rel: string): Promise<string> => {
    const etag = strongEtag(st);
    const cached = digests.get('sha-256', etag);
    if (cached) return cached.toString('hex');
    const hash = createHash('sha256');
    const never = new AbortController().signal;
    for await (const buf of readFileRange({ fd, offset: 0, length: st.size, rel }, never, app.log))
      hash.update(buf);
    const digest = hash.digest();
    digests.set('sha-256', etag, digest);
    return digest.toString('hex');
  };

  /** The directory a GET or POST names, checked to be one. */
  const treeDir = async (request: FastifyRequest): Promise<{ root: BeneathRoot; rel: string }> => {
    const { root } = treeOf(request);
    const { rel } = requestPath(prefix, request.originalUrl);
    let st: BeneathStat;
    try {
      st = await root.stat(rel);
    } catch (err) {
      throw fsError(err, displayPath(rel, true));
    }
    if (st.type !== 'dir') throw ngError('NG_ERR_CONFLICT', `not a directory: ${displayPath(rel)}`);
    return { root, rel };
  };

  /** `?manifest=1`: the tree's manifest (core/manifest.ts), streamed as NDJSON. */
  const sendManifest = (
    request: FastifyRequest,
    reply: FastifyReply,
    root: BeneathRoot,
    rel: string,
  ): FastifyReply => {
    const query = request.query as Record<string, unknown>;
    const peer = (request as { peer?: Ids }).peer;
    // What a PUT from this peer would keep, so that the client compares only that.
    const rule = setRule(processIds(), peer);
    const scope: XattrScope = query.xattrs === 'all' || query.xattrs === 'user' ? query.xattrs : rule.xattrs;
    const abort = new AbortController();
    const pieces = packPieces(root, rel, abort.signal, request.log, {
      withoutTrusted: peer !== undefined && peer.uid !== 0,
      manifest: { xattrs: scope, ...(truthyQuery(query.checksum) && { checksum }) },
    });
    const stream = Readable.from(pieceBytes(pieces, abort.signal, request.log), { objectMode: false });
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      abort.abort(new Error('client disconnected'));
      stream.destroy();
    });
    return reply
      .header('cache-control', 'no-store')
      .header(APPLY_HEADER, rule.owner === 'archive' ? 'all' : 'user')
      .header(XATTRS_HEADER, scope)
      .type(MANIFEST_TYPE)
      .send(stream);
  };

  const getArchive = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const { root, rel } = await treeDir(request);
    if (truthyQuery((request.query as Record<string, unknown>).manifest)) {
      return sendManifest(request, reply, root, rel);
    }
    return sendTar(request, reply, root, rel, undefined);
  };

  /** `POST /archive/<dir>?select=1`: the archive of only the entries the body lists. */
  const postArchive = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    let select: Set<string>;
    let dir: { root: BeneathRoot; rel: string };
    try {
      if (!truthyQuery((request.query as Record<string, unknown>).select)) {
        throw ngError('NG_ERR_BAD_REQUEST', 'POST /archive takes a selection: POST /archive/<dir>?select=1');
      }
      dir = await treeDir(request);
      continueBody(request, reply);
      select = parseSelection(await readSmallBody(request, MAX_SELECTION_BYTES));
    } catch (err) {
      if (!request.raw.complete) closeAfterResponse(reply);
      throw err;
    }
    return sendTar(request, reply, dir.root, dir.rel, select);
  };

  const sendTar = async (
    request: FastifyRequest,
    reply: FastifyReply,
    root: BeneathRoot,
    rel: string,
    select: ReadonlySet<string> | undefined,
  ): Promise<FastifyReply> => {
    const gzip = truthyQuery((request.query as Record<string, unknown>).gzip);

    // trusted.* attributes need CAP_SYS_ADMIN to read: a root server keeps them for root peers
    // (and for callers without a peer: the process itself).
    const peer = (request as { peer?: Ids }).peer;
    const packOptions: PackOptions = {
      withoutTrusted: peer !== undefined && peer.uid !== 0,
      ...(select !== undefined && { select }),
    };
    const abort = new AbortController();
    const piped: { stream?: Readable } = {};
    // A client that goes away stops the walk at the next entry; destroying the stream (Fastify
    // does when the response closes) ends the walk and closes the file it had open.
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      abort.abort(new Error('client disconnected'));
      piped.stream?.destroy();
    });
    const name = rel === '' ? 'root' : baseOf(rel);
    void reply
      .header('content-disposition', contentDisposition(`${name}.tar${gzip ? '.gz' : ''}`))
      .header('cache-control', 'no-store')
      .type(gzip ? 'application/gzip' : 'application/x-tar');
    if (!gzip && request.method !== 'HEAD' && zeroCopyAvailable()) {
      // Member data by sendfile, headers and padding by Node (routes/archive/send.ts).
      reply.hijack();
      // setHeader (not writeHead's argument) keeps them readable for the access log.
      for (const [header, value] of Object.entries(reply.getHeaders()))
        if (value !== undefined) reply.raw.setHeader(header, value);
      reply.raw.writeHead(200);
      try {
        await sendArchive(
          reply.raw,
          packPieces(root, rel, abort.signal, request.log, packOptions),
          abort.signal,
          request.log,
        );
      } catch (err) {
        // The client went away, or the walk failed (logged where it failed): the response is
        // cut, nothing more to tell the client.
        request.log.debug({ err }, 'archive cut short');
      }
      return reply;
    }
    const tarStream = packTree(root, rel, abort.signal, request.log, packOptions);
    piped.stream = tarStream;
    if (!gzip) return reply.send(tarStream);
    const gz = pipeline(tarStream, createGzip(), () => undefined);
    return reply.send(gz);
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
      rel = requestPath(prefix, request.originalUrl).rel;
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
      const sync = truthyQuery((request.query as Record<string, unknown>).sync);
      return await stageAndCommit(root, maxUpload, request, reply, rel, sync);
    } finally {
      release();
    }
  };

  app.get('/', getArchive);
  app.get('/*', getArchive);
  app.post('/', postArchive);
  app.post('/*', postArchive);
  app.put('/', putArchive);
  app.put('/*', putArchive);
  // Other methods: 405 with Allow (GET brings HEAD along), not the gateway's 404 "no route".
  const others = app.supportedMethods.filter((m) => !ARCHIVE_METHODS.includes(m));
  const refuse = (request: FastifyRequest, reply: FastifyReply) =>
    methodNotAllowed(request, reply, ARCHIVE_METHODS, prefix);
  app.route({ method: others, url: '/', handler: refuse });
  app.route({ method: others, url: '/*', handler: refuse });
};

/** A PUT once admitted: the body staged, then moved into place; 201 when the target is new. */
async function stageAndCommit(
  root: BeneathRoot,
  maxUpload: number,
  request: FastifyRequest,
  reply: FastifyReply,
  rel: string,
  sync: boolean,
): Promise<ArchiveResult> {
  let exists: boolean;
  let staging: string;
  let lockFd: number;
  try {
    let near: string;
    ({ exists, near } = await locate(root, rel));
    ({ dir: staging, lockFd } = await makeStaging(root, near));
  } catch (err) {
    // Refused before the body was asked for (409 a file in the way, 403 leading out): close
    // after the answer, as for the refusals above.
    if (!request.raw.complete) closeAfterResponse(reply);
    throw fsError(err, displayPath(rel, true));
  }
  const req = request.raw;
  try {
    const writer = processIds();
    const stager = new Stager(
      root,
      staging,
      rel,
      maxUpload,
      { writer, rule: setRule(writer, (request as { peer?: Ids }).peer) },
      sync,
    );
    continueBody(request, reply);
    await extract(req, stager, maxUpload);
    const { created, deleted } = await commit(root, stager, staging, rel, exists, request.log);
    void reply.code(created ? 201 : 200);
    return sync ? { ...stager.result, deleted } : stager.result;
  } catch (err) {
    await root.rm(staging, { recursive: true, force: true }).catch((cleanupErr: unknown) => {
      request.log.error({ err: cleanupErr }, 'archive: could not remove the staging directory');
    });
    // Read and discard what the client is still sending, so it gets to read our answer;
    // past the upload limit, close instead.
    if (codeOf(err) === 'NG_ERR_PAYLOAD_TOO_LARGE' || !req.readable) {
      closeAfterResponse(reply);
    } else {
      req.unpipe();
      req.resume();
    }
    throw fsError(err, displayPath(rel, true));
  } finally {
    await closeFd(lockFd);
  }
}
