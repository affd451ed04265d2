/**
 * The upload resources of resumable uploads as a Fastify plugin:
 * `app.register(uploadsRoutes, { prefix: '/uploads', root, writable, resumable })`, beside
 * filesRoutes given the same `resumable` options (PUT /files/<path> with `Upload-Complete` creates
 * the resources this plugin serves). HEAD, PATCH and DELETE on `<prefix>/<id>`, thin handlers over
 * routes/resumable.ts; it also sweeps each writable tree's expired resources, at start and then
 * periodically.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { ngError } from '../core/errors.js';
import { answerOptions, failOnEarlyEnd, methodNotAllowed } from './files.js';
import { closeAfterResponse } from './linger.js';
import { type RoutesOptions, setUpRoutes } from './plugin.js';
import {
  DEFAULT_MAX_RESUMABLE,
  DEFAULT_UPLOAD_EXPIRY_MS,
  deleteUpload,
  headUpload,
  isBusy,
  patchUpload,
  type ResumableContext,
  type ResumableOptions,
} from './resumable.js';
import { isUploadId, sweepExpired } from './upload-store.js';

export interface UploadsOptions extends RoutesOptions {
  /** The same options filesRoutes is given; `prefix` must be where this plugin is registered. */
  readonly resumable: ResumableOptions;
}

/** The methods of an upload resource (the `Allow` of a 405 and of OPTIONS). */
export const UPLOAD_METHODS: readonly string[] = ['HEAD', 'PATCH', 'DELETE', 'OPTIONS'];

/** How often the expiry sweep runs: a quarter of the expiry time, within 1 s … 1 h. */
function sweepEvery(expiryMs: number): number {
  return Math.min(Math.max(Math.floor(expiryMs / 4), 1000), 60 * 60 * 1000);
}

export const uploadsRoutes: FastifyPluginAsync<UploadsOptions> = async (app, options) => {
  const { trees, treeOf, maxUpload, uploads } = await setUpRoutes(app, options);
  const prefix = app.prefix;
  const expiryMs = options.resumable.expiryMs ?? DEFAULT_UPLOAD_EXPIRY_MS;
  const maxResources = options.resumable.maxResources ?? DEFAULT_MAX_RESUMABLE;
  const contexts = new Map(
    trees.map((tree) => {
      const ctx: ResumableContext = { root: tree.root, maxUpload, uploads, prefix, expiryMs, maxResources };
      return [tree, { ctx, writable: tree.writable }] as const;
    }),
  );

  const sweep = async () => {
    for (const { ctx, writable } of contexts.values()) {
      if (!writable) continue;
      try {
        const removed = await sweepExpired(ctx.root, expiryMs, isBusy);
        if (removed.length > 0) app.log.info({ removed }, 'removed expired resumable uploads');
      } catch (err) {
        app.log.warn({ err }, 'could not sweep the expired resumable uploads');
      }
    }
  };
  await sweep();
  let sweeping: Promise<void> | undefined;
  const timer = setInterval(() => {
    sweeping ??= sweep().finally(() => (sweeping = undefined));
  }, sweepEvery(expiryMs));
  timer.unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await sweeping;
  });

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    failOnEarlyEnd(request, reply);
    try {
      const { ctx, writable } = contexts.get(treeOf(request))!;
      const url = request.raw.url ?? '/';
      const id = url.slice(prefix.length + 1).split('?')[0] ?? '';
      if (request.method !== 'HEAD' && request.method !== 'OPTIONS' && !writable) {
        throw ngError(
          'NG_ERR_READ_ONLY',
          `${request.method} refused: the server is read-only (start it with --writable)`,
        );
      }
      if (!isUploadId(id)) throw ngError('NG_ERR_NOT_FOUND', `no upload resource ${prefix}/${id}`);
      switch (request.method) {
        case 'HEAD':
          return await headUpload(ctx, id, request, reply);
        case 'PATCH':
          return await patchUpload(ctx, id, request, reply);
        case 'DELETE':
          return await deleteUpload(ctx, id, request, reply);
        case 'OPTIONS':
          // Any well-formed id, existing or not, another uid's or not: the answer reveals nothing.
          return answerOptions(reply, UPLOAD_METHODS, writable ? ctx : undefined);
        default:
          return methodNotAllowed(request, reply, UPLOAD_METHODS, prefix);
      }
    } catch (err) {
      // As for /files: a body refused before it was read whole is not read (routes/files.ts).
      if (!request.raw.complete) closeAfterResponse(reply);
      throw err;
    }
  };
  app.route({ method: ['HEAD', 'PATCH', 'DELETE', 'OPTIONS', 'GET'], url: '/*', handler });
};
