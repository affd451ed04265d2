/**
 * The /files API as a Fastify plugin: `app.register(filesRoutes, { prefix: '/files', root })`.
 * Handlers are thin: decode the raw path, check the mode, call one function of file-read.ts or
 * file-write.ts. Paths come from the raw URL (not Fastify's decoded params) so that they are
 * percent-decoded exactly once and `..` is judged on what the client really sent.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { ngError } from '../core/errors.js';
import { closeAfterResponse } from './linger.js';
import { DigestCache } from './digest.js';
import { DEFAULT_CACHE_BYTES, DEFAULT_CACHE_FILES, SmallFileCache } from './small-file-cache.js';
import { getPath, type ReadContext } from './file-read.js';
import { mkcol, move, remove, upload, type WriteContext } from './file-write.js';
import { type RoutesOptions, setUpRoutes } from './plugin.js';
import { type FilePath, requestPaths } from './url-path.js';
import {
  createUpload,
  DEFAULT_MAX_RESUMABLE,
  discovery,
  DEFAULT_UPLOAD_EXPIRY_MS,
  type ResumableContext,
  type ResumableOptions,
  wantsResumable,
} from './resumable.js';

/** Options of filesRoutes (routes/plugin.ts). */
export interface FilesOptions extends RoutesOptions {
  /**
   * Offer resumable uploads: a PUT with `Upload-Complete` creates an upload resource under
   * `resumable.prefix`, where `uploadsRoutes` must be registered with the same options. Without
   * it `Upload-Complete` is ignored (the draft's fallback: a plain upload).
   */
  readonly resumable?: ResumableOptions | undefined;
}

const WRITE_METHODS = ['PUT', 'MKCOL', 'DELETE', 'MOVE'];
/** The methods of every /files resource (the `Allow` of a 405 and of OPTIONS). */
export const FILES_METHODS: readonly string[] = ['GET', 'HEAD', 'PUT', 'DELETE', 'MKCOL', 'MOVE', 'OPTIONS'];

export const filesRoutes: FastifyPluginAsync<FilesOptions> = async (app, options) => {
  const { trees, treeOf, maxUpload, uploads } = await setUpRoutes(app, options);
  const prefix = app.prefix;
  // The small-file caches of all trees share one budget: a server with many exports keeps no
  // more in memory than one with a single root.
  const cacheShare = {
    maxBytes: Math.floor(DEFAULT_CACHE_BYTES / trees.length),
    maxFiles: Math.ceil(DEFAULT_CACHE_FILES / trees.length),
  };
  // Each tree's contexts, made once: a request picks its connection's (routes/exports.ts).
  const contexts = new Map(
    trees.map((tree) => {
      const read: ReadContext = {
        root: tree.root,
        digests: new DigestCache(),
        small: new SmallFileCache(tree.root, cacheShare),
      };
      const write: WriteContext = { root: tree.root, maxUpload, uploads };
      const { resumable } = options;
      const resume: ResumableContext | undefined = resumable && {
        ...write,
        prefix: resumable.prefix,
        expiryMs: resumable.expiryMs ?? DEFAULT_UPLOAD_EXPIRY_MS,
        maxResources: resumable.maxResources ?? DEFAULT_MAX_RESUMABLE,
      };
      return [tree, { read, write, resume, writable: tree.writable }] as const;
    }),
  );

  for (const method of ['MKCOL', 'MOVE']) {
    if (!app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: method === 'MKCOL' });
  }
  // The raw target: origin-form, or absolute-form (RFC 9112 §3.2.2) cut to its path.
  const pathFor = requestPaths(prefix);
  const pathOf = (request: FastifyRequest): FilePath => pathFor(request.originalUrl);
  const guard = (request: FastifyRequest, writable: boolean): FilePath => {
    const path = pathOf(request);
    if (!writable && WRITE_METHODS.includes(request.method)) {
      throw ngError(
        'NG_ERR_READ_ONLY',
        `${request.method} refused: the server is read-only (start it with --writable)`,
      );
    }
    return path;
  };

  // Synchronous while dispatch is (a small file from the caches): no promise on the hot path.
  const handler = (request: FastifyRequest, reply: FastifyReply) => {
    failOnEarlyEnd(request, reply);
    try {
      const answer = dispatch(request, reply);
      if (!(answer instanceof Promise)) return undefined;
      return answer.catch((err: unknown) => refused(request, reply, err));
    } catch (err) {
      return refused(request, reply, err);
    }
  };
  // Refused before the body was read whole (413 by Content-Length, 403, 412, …): reading the
  // rest only to discard it could mean gigabytes, and on a kept-alive connection the unread
  // body would be parsed as the next request. Close after the answer (RFC 9112 §9.6).
  const closeUnlessWhole = (request: FastifyRequest, reply: FastifyReply): void => {
    if (!request.raw.complete) closeAfterResponse(reply);
  };
  const refused = (request: FastifyRequest, reply: FastifyReply, err: unknown): never => {
    closeUnlessWhole(request, reply);
    throw err;
  };
  // The same for an answer made after the handler returned (a kept small file is answered at
  // the end of the event loop's turn, routes/file-read.ts): told to Fastify through the reply.
  const refusedLater = (request: FastifyRequest, reply: FastifyReply, err: unknown): void => {
    closeUnlessWhole(request, reply);
    void reply.send(err);
  };
  const dispatch = (
    request: FastifyRequest,
    reply: FastifyReply,
  ): FastifyReply | Promise<unknown> | undefined => {
    const { read, write, resume, writable } = contexts.get(treeOf(request))!;
    const path = guard(request, writable);
    switch (request.method) {
      case 'GET':
      case 'HEAD':
        return getPath(read, path, request, reply, refusedLater);
      case 'PUT':
        if (resume && wantsResumable(request)) return createUpload(resume, path, request, reply);
        return upload(write, path, request, reply);
      case 'MKCOL':
        return mkcol(write, path, reply);
      case 'DELETE':
        return remove(write, path, request, reply);
      case 'MOVE':
        return move(write, path, request, reply, prefix);
      case 'OPTIONS':
        return answerOptions(reply, FILES_METHODS, writable ? resume : undefined);
      default:
        return methodNotAllowed(request, reply, FILES_METHODS, prefix);
    }
  };
  app.route({ method: [...FILES_METHODS], url: '/', handler });
  app.route({ method: [...FILES_METHODS], url: '/*', handler });
  // Every other method Fastify knows is answered 405 with the Allow list (RFC 9110 §15.5.6),
  // not the 404 "no route" the gateway gives unknown URLs: the resource exists.
  const others = app.supportedMethods.filter((m) => !FILES_METHODS.includes(m));
  const refuse = (request: FastifyRequest, reply: FastifyReply) =>
    methodNotAllowed(request, reply, FILES_METHODS, prefix);
  app.route({ method: others, url: '/', handler: refuse });
  app.route({ method: others, url: '/*', handler: refuse });
};

/**
 * OPTIONS (RFC 9110 §9.3.7): 204 with `Allow`, and where resumable uploads can be created
 * (`resume`: a writable tree that offers them) the discovery of the resumable-upload draft
 * (§4.1.4): `Accept-Patch: application/partial-upload` and `Upload-Limit`.
 */
export function answerOptions(
  reply: FastifyReply,
  allowed: readonly string[],
  resume: ResumableContext | undefined,
): FastifyReply {
  void reply.code(204).header('allow', allowed.join(', '));
  if (resume) for (const [name, value] of discovery(resume)) void reply.header(name, value);
  return reply.send();
}

/** 405 NG_ERR_METHOD_NOT_ALLOWED with `Allow` (RFC 9110 §10.2.1, §15.5.6). */
export function methodNotAllowed(
  request: FastifyRequest,
  reply: FastifyReply,
  allowed: readonly string[],
  prefix: string,
): never {
  void reply.header('allow', allowed.join(', '));
  if (!request.raw.complete) closeAfterResponse(reply);
  throw ngError(
    'NG_ERR_METHOD_NOT_ALLOWED',
    `${request.method} is not allowed on ${prefix}/ (allowed: ${allowed.join(', ')})`,
  );
}

/**
 * The listener keeps half-closed connections open (gateway/listen.ts), so a client that sends
 * its whole request and then shuts down its side still gets the answer. One that goes away
 * before its body is complete can never complete it: fail the request now, so the upload ends
 * (its temporary file and upload slot with it) instead of lingering until the request timeout.
 * Called by the handler rather than as an onRequest hook: GETs, the hot path, pay one check.
 */
export function failOnEarlyEnd(request: FastifyRequest, reply: FastifyReply): void {
  const { raw } = request;
  // Only a request with a body can be left incomplete (RFC 9112 §6.3).
  const { 'content-length': length, 'transfer-encoding': chunked } = raw.headers;
  if (chunked === undefined && (length === undefined || length === '0')) return;
  // Captured: the response detaches the socket (raw.socket becomes null) when it is done.
  const socket = raw.socket as typeof raw.socket | null;
  if (raw.complete || !socket) return;
  const onEnd = () => {
    if (!raw.complete) {
      raw.destroy(
        Object.assign(new Error('the client closed the connection before the body was complete'), {
          code: 'ECONNRESET',
        }),
      );
    }
  };
  socket.once('end', onEnd);
  reply.raw.once('close', () => socket.off('end', onEnd));
}
