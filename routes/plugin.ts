/**
 * What filesRoutes and archiveRoutes share: their options, and the set-up every one of them does
 * when registered — open the root beneath which it works (closed with the app), sweep what an
 * earlier server killed mid-upload left (writable only), and take request bodies as raw streams.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { BeneathRoot } from '../native/beneath.js';
import { DEFAULT_LIMITS, UploadSlots } from '../core/limits.js';

export interface RoutesOptions {
  /** The directory to serve; every access is confined beneath it by the kernel. */
  readonly root: string;
  /** Allow writes (default false: 403 NG_ERR_READ_ONLY). */
  readonly writable?: boolean | undefined;
  /** Bytes at most in one upload (default unlimited; 413 beyond). */
  readonly maxUpload?: number | undefined;
  /** Concurrent uploads at most (default 16); more get 429. */
  readonly maxUploads?: number | undefined;
  /** Upload slots to share with other routes (the gateway shares one for /files and /archive); overrides maxUploads. */
  readonly uploadSlots?: UploadSlots | undefined;
}

export interface RoutesContext {
  readonly root: BeneathRoot;
  readonly writable: boolean;
  readonly maxUpload: number;
  readonly uploads: UploadSlots;
}

export async function setUpRoutes(app: FastifyInstance, options: RoutesOptions): Promise<RoutesContext> {
  const root = await BeneathRoot.open(options.root);
  app.addHook('onClose', async () => root.close());
  const writable = options.writable === true;
  if (writable) await sweepTemporaries(root, app.log);
  // Bodies are streams the handlers consume themselves (to disk, or into tar), whatever their
  // Content-Type: inherited parsers such as JSON must not consume them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  return {
    root,
    writable,
    maxUpload: options.maxUpload ?? Number.MAX_SAFE_INTEGER,
    uploads: options.uploadSlots ?? new UploadSlots(options.maxUploads ?? DEFAULT_LIMITS.maxUploads),
  };
}

/**
 * The startup sweep of a writable server: temporaries of a server killed mid-upload (SIGKILL)
 * are removed before the first request (BeneathRoot.sweepTemporaries). A failure is logged and
 * does not stop the server: the leftovers are never served, listed or archived anyway.
 */
async function sweepTemporaries(root: BeneathRoot, log: FastifyBaseLogger): Promise<void> {
  try {
    const removed = await root.sweepTemporaries();
    if (removed.length > 0) log.info({ removed }, 'removed temporaries left by an earlier server');
  } catch (err) {
    log.warn({ err }, 'could not sweep the temporaries of an earlier server');
  }
}
