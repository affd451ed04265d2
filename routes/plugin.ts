/**
 * What filesRoutes and archiveRoutes share: their options, and the set-up every one of them does
 * when registered — open the root beneath which it works (closed with the app), sweep what an
 * earlier server killed mid-upload left (writable only), and take request bodies as raw streams.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ngError } from '../core/errors.js';
import { BeneathRoot } from '../native/beneath.js';
import { DEFAULT_LIMITS, UploadSlots } from '../core/limits.js';
import { type ExportSpec, ExportTable, noExport } from './exports.js';
import { UPLOADS_DIR } from './upload-store.js';

export interface RoutesOptions {
  /**
   * The directory to serve; every access is confined beneath it by the kernel. With `exports`,
   * the tree of peers outside every exported chroot (none: they get 403 NG_ERR_NO_EXPORT).
   */
  readonly root?: string | undefined;
  /** Allow writes to `root` (default false: 403 NG_ERR_READ_ONLY). */
  readonly writable?: boolean | undefined;
  /** One server, many chroots: a peer whose root directory is an export's `chroot` gets its `root`. */
  readonly exports?: readonly ExportSpec[] | undefined;
  /** Bytes at most in one upload (default unlimited; 413 beyond). */
  readonly maxUpload?: number | undefined;
  /** Concurrent uploads at most (default 16); more get 429. */
  readonly maxUploads?: number | undefined;
  /** Upload slots to share with other routes (the gateway shares one for /files and /archive); overrides maxUploads. */
  readonly uploadSlots?: UploadSlots | undefined;
}

/** A served tree: its root, opened once, and whether it takes writes. */
export interface Tree {
  readonly root: BeneathRoot;
  readonly writable: boolean;
  /** The export's CHROOT_DIR; undefined for the plain `root`. */
  readonly chroot: string | undefined;
}

export interface RoutesContext {
  /** Every tree, each opened once when the plugin is registered. */
  readonly trees: readonly Tree[];
  /** The tree of a request's connection (throws 403 NG_ERR_NO_EXPORT when it has none). */
  treeOf(request: FastifyRequest): Tree;
  readonly maxUpload: number;
  readonly uploads: UploadSlots;
}

export async function setUpRoutes(app: FastifyInstance, options: RoutesOptions): Promise<RoutesContext> {
  const exports = options.exports ?? [];
  if (options.root === undefined && exports.length === 0) {
    throw ngError('NG_ERR_INVALID_OPTION', 'routes: give `root`, `exports`, or both');
  }
  const open = async (dir: string, writable: boolean, chroot: string | undefined): Promise<Tree> => {
    const root = await BeneathRoot.open(dir);
    app.addHook('onClose', async () => root.close());
    if (writable) await sweepTemporaries(root, app.log);
    return { root, writable, chroot };
  };
  const fallback =
    options.root === undefined ? undefined : await open(options.root, options.writable === true, undefined);
  const exported: { chroot: string; value: Tree }[] = [];
  for (const spec of exports) {
    exported.push({ chroot: spec.chroot, value: await open(spec.root, spec.writable === true, spec.chroot) });
  }
  const table = new ExportTable(exported);
  const treeOf =
    table.size === 0
      ? () => fallback!
      : (request: FastifyRequest): Tree => {
          const tree = table.match(request.raw.socket)?.value ?? fallback;
          if (tree === undefined) throw noExport();
          return tree;
        };
  // Bodies are streams the handlers consume themselves (to disk, or into tar), whatever their
  // Content-Type: inherited parsers such as JSON must not consume them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  return {
    trees: [...(fallback ? [fallback] : []), ...exported.map((e) => e.value)],
    treeOf,
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
    // The resumable uploads live on across restarts; their own sweep is by idle time (routes/uploads.ts).
    const removed = await root.sweepTemporaries([UPLOADS_DIR]);
    if (removed.length > 0) log.info({ removed }, 'removed temporaries left by an earlier server');
  } catch (err) {
    log.warn({ err }, 'could not sweep the temporaries of an earlier server');
  }
}

/**
 * Asks for the body once the request is admitted: a client that sent `Expect: 100-continue`
 * (curl -T does) waits for this before sending it, so a request refused earlier (403, 409, 413,
 * 429) is refused before its body travels. Only to HTTP/1.1: RFC 9110 §10.1.1 forbids a 1xx to
 * HTTP/1.0 (any other expectation was refused with 417 before the route, gateway/framing.ts).
 */
export function continueBody(request: FastifyRequest, reply: FastifyReply): void {
  if (request.raw.httpVersion !== '1.1' || request.headers.expect === undefined) return;
  if (request.headers.expect.trim().toLowerCase() === '100-continue') reply.raw.writeContinue();
}
