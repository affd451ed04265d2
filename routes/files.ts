/**
 * The /files API as a Fastify plugin: `app.register(filesRoutes, { prefix: '/files', root })`.
 * Handlers are thin: decode the raw path, check the mode, call one function of file-read.ts or
 * file-write.ts. Paths come from the raw URL (not Fastify's decoded params) so that they are
 * percent-decoded exactly once and `..` is judged on what the client really sent.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { BeneathRoot } from '../gateway/beneath.js';
import { ngError } from '../gateway/errors.js';
import { DEFAULT_LIMITS, UploadSlots } from '../gateway/limits.js';
import { DigestCache } from './digest.js';
import { getPath, type ReadContext } from './file-read.js';
import { mkcol, move, remove, upload, type WriteContext } from './file-write.js';
import { decodeFilePath, type FilePath } from './url-path.js';

export interface FilesOptions {
  /** The directory to serve; every access is confined beneath it by the kernel. */
  readonly root: string;
  /** Allow PUT, MKCOL, DELETE and MOVE (default false: 403 NG_ERR_READ_ONLY). */
  readonly writable?: boolean | undefined;
  /** Largest upload in bytes (default unlimited). */
  readonly maxUpload?: number | undefined;
  /** Concurrent uploads at most (default 16); more get 429. */
  readonly maxUploads?: number | undefined;
  /** Upload slots to share with other routes (the gateway shares one with archiveRoutes); overrides maxUploads. */
  readonly uploadSlots?: UploadSlots | undefined;
}

const WRITE_METHODS = ['PUT', 'MKCOL', 'DELETE', 'MOVE'];

export const filesRoutes: FastifyPluginAsync<FilesOptions> = async (app, options) => {
  const root = await BeneathRoot.open(options.root);
  app.addHook('onClose', async () => root.close());
  const writable = options.writable === true;
  const prefix = app.prefix;
  const read: ReadContext = { root, digests: new DigestCache() };
  const write: WriteContext = {
    root,
    maxUpload: options.maxUpload ?? Number.MAX_SAFE_INTEGER,
    uploads: options.uploadSlots ?? new UploadSlots(options.maxUploads ?? DEFAULT_LIMITS.maxUploads),
  };

  for (const method of ['MKCOL', 'MOVE']) {
    if (!app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: method === 'MKCOL' });
  }
  // Bodies are streams the handlers consume themselves (uploads go straight to disk).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  // The listener keeps half-closed connections open (gateway/listen.ts), so a client that sends
  // its whole request and then shuts down its side still gets the answer. One that goes away
  // before its body is complete can never complete it: fail the request now, so the upload ends
  // (its temporary file and upload slot with it) instead of lingering until the request timeout.
  app.addHook('onRequest', (request, reply, done) => {
    const { raw } = request;
    // Captured: the response detaches the socket (raw.socket becomes null) when it is done.
    const socket = raw.socket as typeof raw.socket | null;
    if (!raw.complete && socket) {
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
    done();
  });

  const pathOf = (request: FastifyRequest): FilePath => {
    const url = request.raw.url ?? '/';
    const q = url.indexOf('?');
    return decodeFilePath((q === -1 ? url : url.slice(0, q)).slice(prefix.length));
  };
  const guard = (request: FastifyRequest): FilePath => {
    const path = pathOf(request);
    if (!writable && WRITE_METHODS.includes(request.method)) {
      throw ngError(
        'NG_ERR_READ_ONLY',
        `${request.method} refused: the server is read-only (start it with --writable)`,
      );
    }
    return path;
  };

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      return await dispatch(request, reply);
    } catch (err) {
      // Refused before the body was read whole (413 by Content-Length, 403, 412, …): reading the
      // rest only to discard it could mean gigabytes, and on a kept-alive connection the unread
      // body would be parsed as the next request. Close after the answer (RFC 9112 §9.6).
      if (!request.raw.complete) void reply.header('connection', 'close');
      throw err;
    }
  };
  const dispatch = async (request: FastifyRequest, reply: FastifyReply) => {
    const path = guard(request);
    switch (request.method) {
      case 'GET':
      case 'HEAD':
        return getPath(read, path, request, reply);
      case 'PUT':
        return upload(write, path, request, reply);
      case 'MKCOL':
        return mkcol(write, path, reply);
      case 'DELETE':
        return remove(write, path, request, reply);
      case 'MOVE':
        return move(write, path, request, reply, prefix);
      default:
        throw ngError('NG_ERR_METHOD_NOT_ALLOWED', `${request.method} is not supported on ${prefix}`);
    }
  };
  const methods = ['GET', 'HEAD', 'PUT', 'DELETE', 'MKCOL', 'MOVE'];
  app.route({ method: methods, url: '/', handler });
  app.route({ method: methods, url: '/*', handler });
};
