/**
 * `GET /archive/<dir>` and `PUT /archive/<dir>`: whole trees as one tar stream (CONTRACT.md
 * "HTTP API"; Docker's `/containers/{id}/archive` is the model users know). A Fastify plugin,
 * registered with prefix '/archive'; the work is in its parts beside it:
 *
 * - pack.ts: GET's tar writer, the tree walked with backpressure from the socket;
 * - stage.ts: PUT's extraction of the body into a hidden staging directory;
 * - merge.ts: PUT's move of the staged tree into place (a rename, or a merge undone on failure).
 */
import { type Readable, pipeline } from 'node:stream';
import { createGzip } from 'node:zlib';

import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

import { codeOf, fsError, ngError } from '../../core/errors.js';
import { encodeNameComponent } from '../../core/name-bytes.js';
import { baseOf, displayPath } from '../../core/rel-path.js';
import { type Ids, processIds, setRule } from '../../core/set-rule.js';
import { type BeneathRoot, type BeneathStat, closeFd } from '../../native/beneath.js';
import { methodNotAllowed } from '../files.js';
import { closeAfterResponse } from '../linger.js';
import { continueBody, type RoutesOptions, setUpRoutes } from '../plugin.js';
import { requestPath } from '../url-path.js';
import { zeroCopyAvailable } from '../zero-copy.js';
import { commit, locate } from './merge.js';
import { packPieces, packTree } from './pack.js';
import { sendArchive } from './send.js';
import { type ArchiveResult, Stager, extract, makeStaging, tooLarge } from './stage.js';

export type { ArchiveResult } from './stage.js';

/** Options of archiveRoutes (routes/plugin.ts). */
export type ArchiveRoutesOptions = RoutesOptions;

function truthyQuery(value: unknown): boolean {
  return value === '1' || value === 'true' || value === '';
}

/** The methods of every /archive resource (the `Allow` of a 405). */
export const ARCHIVE_METHODS: readonly string[] = ['GET', 'HEAD', 'PUT'];

export const archiveRoutes: FastifyPluginAsync<ArchiveRoutesOptions> = async (app, options) => {
  const { treeOf, maxUpload, uploads: slots } = await setUpRoutes(app, options);
  const prefix = app.prefix;

  const getArchive = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const { root } = treeOf(request);
    const { rel } = requestPath(prefix, request.originalUrl);
    let st: BeneathStat;
    try {
      st = await root.stat(rel);
    } catch (err) {
      throw fsError(err, displayPath(rel, true));
    }
    if (st.type !== 'dir') throw ngError('NG_ERR_CONFLICT', `not a directory: ${displayPath(rel)}`);
    const gzip = truthyQuery((request.query as Record<string, unknown>).gzip);

    // trusted.* attributes need CAP_SYS_ADMIN to read: a root server keeps them for root peers
    // (and for callers without a peer: the process itself).
    const peer = (request as { peer?: Ids }).peer;
    const packOptions = { withoutTrusted: peer !== undefined && peer.uid !== 0 };
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
      .header(
        'content-disposition',
        `attachment; filename="${encodeNameComponent(name)}.tar${gzip ? '.gz' : ''}"`,
      )
      .header('cache-control', 'no-store')
      .type(gzip ? 'application/gzip' : 'application/x-tar');
    if (!gzip && request.method === 'GET' && zeroCopyAvailable()) {
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
      return await stageAndCommit(root, maxUpload, request, reply, rel);
    } finally {
      release();
    }
  };

  app.get('/', getArchive);
  app.get('/*', getArchive);
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
    const stager = new Stager(root, staging, rel, maxUpload, {
      writer,
      rule: setRule(writer, (request as { peer?: Ids }).peer),
    });
    continueBody(request, reply);
    await extract(req, stager, maxUpload);
    const created = await commit(root, stager, staging, rel, exists, request.log);
    void reply.code(created ? 201 : 200);
    return stager.result;
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
