/**
 * buildApp(options): the Fastify instance with nullgate's core endpoints, error shape and peer
 * decoration. It never listens: gateway.ts (or the user) puts its server on a socket.
 *
 * buildApp only puts the parts together, each a function below (or a file beside this one):
 * Fastify's options (limits, timeouts, logging, framework and parser errors), the per-request
 * hooks (peer, access log, malformed requests, pipelining), the error handlers, the core
 * endpoints and the file routes.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import type { PeerCredentials } from '../native/binding.js';
import { GatewayResponse, markDefaultValidator, requireFromFastify } from '../native/node-internals.js';
import { codeForStatus, type ErrorCode, errorBody, isNullgateError } from '../core/errors.js';
import { closeAfterResponse } from '../routes/linger.js';
import { framingRefusal, refuseConnect } from './framing.js';
import { peerOf } from './listen.js';
import {
  type Limits,
  MAX_HEADER_FIELDS,
  MAX_PIPELINED_REQUESTS,
  resolveLimits,
  UploadSlots,
} from '../core/limits.js';
import { accessLine, accessLogged } from './access-log.js';
import { clientErrorHandler, cutRequest } from './client-error.js';
import { watchBody } from './body-rate.js';
import { type LimitHit, limitLog } from './limit-log.js';
import { pipelineTurn } from './pipelining.js';
import { archiveRoutes } from '../routes/archive/plugin.js';
import { filesRoutes } from '../routes/files.js';
import { uploadsRoutes } from '../routes/uploads.js';
import { type ExportSpec, ExportTable } from '../routes/exports.js';
import { routableUrl } from '../routes/url-path.js';
import { setBodyRate } from '../routes/receive.js';
import { version } from '../core/version.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * SO_PEERCRED of the connection this request came on; with exports, `root` is the matched
     * CHROOT_DIR (or '/' for a peer outside every export).
     */
    peer: PeerCredentials & { readonly root?: string };
  }
}

export interface AppOptions {
  /** Directory to serve; when set, the file routes are mounted under /files and /archive. */
  readonly root?: string | undefined;
  readonly writable?: boolean | undefined;
  /** One server, many chroots (routes/exports.ts): each export's chroot gets its own tree. */
  readonly exports?: readonly ExportSpec[] | undefined;
  readonly maxUpload?: number | undefined;
  /**
   * Resumable uploads (served under /uploads): an upload resource idle this long is removed
   * (default 24 h, routes/resumable.ts DEFAULT_UPLOAD_EXPIRY_MS).
   */
  readonly uploadExpiryMs?: number | undefined;
  /** A pino level, or false for no logs. */
  readonly logLevel?: string | false | undefined;
  /** Where logs go (defaults to stderr). */
  readonly logStream?: NodeJS.WritableStream | undefined;
  /** Connection and request limits; every one has a bounded default (core/limits.ts). */
  readonly limits?: Partial<Limits> | undefined;
  /** Extra Fastify options (timeouts, limits) for the operator. */
  readonly fastify?: Omit<FastifyServerOptions, 'logger' | 'loggerInstance'> | undefined;
}

/** The code of an error that carries no nullgate code: its status's generic code (core/errors.ts). */
function statusCode(status: number): ErrorCode {
  return codeForStatus(status) ?? (status >= 500 ? 'NG_ERR_INTERNAL' : 'NG_ERR_BAD_REQUEST');
}

/** The process itself: what `inject()` requests (no socket, same process) report as peer. */
const selfPeer: PeerCredentials = Object.freeze({
  pid: process.pid,
  uid: process.getuid?.() ?? 0,
  gid: process.getgid?.() ?? 0,
});

type CompilersFactory = NonNullable<
  NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']
>;
type SerializerFactory = NonNullable<CompilersFactory['buildSerializer']>;
type SerializerCompiler = ReturnType<SerializerFactory>;
type ValidatorFactory = NonNullable<CompilersFactory['buildValidator']>;

/**
 * Fastify's default response serializer compiler (fast-json-stringify), loaded the first time a
 * route declares a response schema rather than when the app is built: nullgate's own routes
 * have none, and loading it costs ~6 MiB of resident memory in every idle server. Only the
 * loading is deferred; what it compiles is what Fastify's default would.
 */
const lazySerializerFactory: SerializerFactory = (externalSchemas, serializerOptions) => {
  let compile: SerializerCompiler | undefined;
  return (route) => {
    if (compile === undefined) {
      const { SerializerSelector } = requireFromFastify('@fastify/fast-json-stringify-compiler') as {
        SerializerSelector: () => SerializerFactory;
      };
      compile = SerializerSelector()(externalSchemas, serializerOptions);
    }
    return compile(route);
  };
};

/**
 * The same for the validator compiler (ajv, through @fastify/ajv-compiler): loaded the first time
 * a route declares a body, query, params or headers schema, which Fastify asks for when the route
 * is added; ~3.5 MiB of an idle server's resident memory otherwise (docs/performance.md). One per
 * app, as Fastify makes its default (its pool of ajv instances is per app). buildApp tells Fastify
 * that the compiler is still its default (markDefaultValidator), so header schemas keep their
 * case-insensitive property names.
 */
function lazyValidatorFactory(): ValidatorFactory {
  let build: ValidatorFactory | undefined;
  return (externalSchemas, ajvOptions) => {
    build ??= (requireFromFastify('@fastify/ajv-compiler') as () => ValidatorFactory)();
    return build(externalSchemas, ajvOptions);
  };
}

/**
 * Fastify's options: the limits and timeouts, the logger, and the nullgate error shape for the
 * errors Fastify and the HTTP parser raise before a route runs. The operator's `fastify` options
 * go over the defaults, but not over logging, draining or the parser's error shape.
 */
function fastifyOptions(options: AppOptions, limits: Limits, limitHit: LimitHit): FastifyHttpOptions<Server> {
  const logLevel = options.logLevel ?? 'info';
  return {
    schemaController: {
      compilersFactory: { buildSerializer: lazySerializerFactory, buildValidator: lazyValidatorFactory() },
    },
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    http: {
      // Writes the checked header block a route offers (a small file's 200) as it is.
      ServerResponse: GatewayResponse,
      maxHeaderSize: limits.maxHeaderSize,
      headersTimeout: limits.headersTimeoutMs,
      // Check the header/request timers every second (Node's default, 30 s, lets a slowloris
      // flood hold connections far past headersTimeout).
      connectionsCheckingInterval: 1000,
      // Node answers a Host-less HTTP/1.1 request with an empty 400; refuseMalformed below
      // refuses it in the contract's JSON shape instead.
      requireHostHeader: false,
    },
    // Names are bytes: a path with escapes that are not UTF-8 is routed (routes/url-path.ts).
    rewriteUrl: routableUrl,
    // A URL find-my-way cannot decode (e.g. a bad %-escape) gets the nullgate shape too.
    frameworkErrors(error, _request, reply) {
      const bad = error.code === 'FST_ERR_BAD_URL';
      const status = bad ? 400 : (error.statusCode ?? 400);
      void (reply as FastifyReply)
        .code(status)
        .send(
          errorBody(
            status,
            bad ? 'NG_ERR_BAD_PATH' : statusCode(status),
            bad ? 'malformed URL path' : error.message,
          ),
        );
    },
    ...options.fastify,
    logger: logLevel === false ? false : { level: logLevel, stream: options.logStream ?? process.stderr },
    // One access line per request (gateway/access-log.ts) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // While draining, requests on open keep-alive connections are still served (with
    // `Connection: close`, which Fastify adds); only the listener stops accepting.
    return503OnClosing: false,
    // Errors in the HTTP parser (before Fastify has a request) get the nullgate error shape too.
    clientErrorHandler: clientErrorHandler(limitHit),
  };
}

/**
 * What request.peer is for a connection: its SO_PEERCRED (the process itself for inject()); with
 * exports also the chroot it is in, looked up once per connection.
 */
function peerLookup(exports: ExportTable<ExportSpec>): (socket: Socket) => FastifyRequest['peer'] {
  if (exports.size === 0) return (socket) => peerOf(socket) ?? selfPeer;
  const exportPeers = new WeakMap<Socket, FastifyRequest['peer']>();
  return (socket) => {
    let peer = exportPeers.get(socket);
    if (peer === undefined) {
      peer = Object.freeze({ ...(peerOf(socket) ?? selfPeer), root: exports.match(socket)?.chroot ?? '/' });
      exportPeers.set(socket, peer);
    }
    return peer;
  };
}

/**
 * Refuses what Node's parser lets through but the contract does not (true when it answered):
 * more than MAX_HEADER_FIELDS header fields, an HTTP/1.1 request without Host, a transfer coding
 * or an expectation nullgate does not do.
 */
function refuseMalformed(request: FastifyRequest, reply: FastifyReply, limitHit: LimitHit): boolean {
  // Too many header fields: Node 22+ refuses them in the parser (431, via the client error
  // handler), Node 20 keeps the first maxHeadersCount and drops the rest silently. One rule on
  // every version: more than MAX_HEADER_FIELDS is 431, and the connection is closed.
  if (request.raw.rawHeaders.length > 2 * MAX_HEADER_FIELDS) {
    limitHit(431, 'too many header fields', request.peer);
    void reply
      .code(431)
      .header('connection', 'close')
      .send(
        errorBody(431, 'NG_ERR_HEADERS_TOO_LARGE', `more than ${MAX_HEADER_FIELDS} request header fields`),
      );
    return true;
  }
  // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host field.
  if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
    void reply.code(400).send(errorBody(400, 'NG_ERR_BAD_REQUEST', 'HTTP/1.1 request without a Host header'));
    return true;
  }
  // A transfer coding or an expectation nullgate does not do (gateway/framing.ts).
  const refused = framingRefusal(request.headers, request.raw.httpVersion);
  if (refused !== undefined) {
    if (!request.raw.complete) closeAfterResponse(reply);
    void reply.code(refused.statusCode).send(refused.toJSON());
    return true;
  }
  return false;
}

/**
 * The onRequest hook: peer, access line and refusals first, the body's watch, then the
 * connection's pipelining turn. One hook, not one per concern: each costs a step of Fastify's
 * hook runner on every request.
 */
function addRequestHooks(
  app: FastifyInstance,
  peerFor: (socket: Socket) => FastifyRequest['peer'],
  limits: Limits,
  limitHit: LimitHit,
): void {
  // One more than the limit, so that a request over it is seen whole enough to be refused
  // (Node 20 would otherwise cut it to exactly the limit; see refuseMalformed).
  app.server.maxHeadersCount = MAX_HEADER_FIELDS + 1;
  app.decorateRequest('peer', null as unknown as PeerCredentials);
  app.addHook('onRequest', (request, reply, done) => {
    const { raw } = request;
    const socket = raw.socket;
    request.peer = peerFor(socket);
    // The access line costs two listeners a request: none when it would not be written.
    if (accessLogged(request)) accessLine(request, reply);
    if (refuseMalformed(request, reply, limitHit)) return;
    if (raw.headers['content-length'] !== undefined || raw.headers['transfer-encoding'] !== undefined) {
      watchRequestBody(request, reply, limits, limitHit);
    }
    // At most MAX_PIPELINED_REQUESTS requests of a connection run at once, and what a closed
    // connection leaves queued is closed with it (gateway/pipelining.ts).
    pipelineTurn(socket, reply.raw, MAX_PIPELINED_REQUESTS, (run) => {
      if (!run) void reply.hijack();
      done();
    });
  });
}

/** A body too slow, or not whole in time, is 408 and the connection closed (gateway/body-rate.ts). */
function watchRequestBody(
  request: FastifyRequest,
  reply: FastifyReply,
  limits: Limits,
  limitHit: LimitHit,
): void {
  const socket = request.raw.socket;
  const tooSlow = (message: string): void => {
    // Two rules (the rate, on a native thread; the total time, here) may both run out: whichever
    // comes second finds the connection cut already and has nothing left to refuse, or to log.
    if (socket.destroyed) return;
    limitHit(408, message, request.peer);
    if (!reply.raw.headersSent) reply.raw.statusCode = 408;
    cutRequest(socket, 408, 'NG_ERR_TIMEOUT', message);
  };
  const readingNatively = watchBody(request.raw, socket, limits, tooSlow);
  // The bytes of a body received natively bypass Node, and so the watch's rate: the native
  // thread applies the minimum rate itself (routes/receive.ts); the total time stays the watch's.
  if (
    (limits.bodyMinRate > 0 || limits.bodyTimeoutMs > 0) &&
    request.headers['content-length'] !== undefined
  ) {
    setBodyRate(request.raw, {
      minRate: limits.bodyMinRate,
      windowMs: limits.bodyRateWindowMs,
      tooSlow,
      reading: readingNatively,
    });
  }
}

/** Every error a route throws, and every unknown route, in the `{statusCode, code, error, message}` shape. */
function setErrorHandlers(app: FastifyInstance, limitHit: LimitHit): void {
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    let status: number;
    let code: string;
    let message: string;
    if (isNullgateError(error)) {
      ({ statusCode: status, code, message } = error);
    } else {
      const fe = error as FastifyError;
      status = typeof fe.statusCode === 'number' && fe.statusCode >= 400 ? fe.statusCode : 500;
      code = statusCode(status);
      message = status >= 500 ? 'internal server error' : fe.message;
    }
    if (status >= 500) request.log.error({ err: error, cause: error.cause }, 'request failed');
    // Limits an operator sizes (--max-uploads, --max-upload) are logged, not only counted.
    else if (status === 429 || status === 413) limitHit(status, message, request.peer);
    if (reply.sent || reply.raw.headersSent) {
      // Mid-body failure: the status line is gone; cutting the connection is the only honest signal.
      reply.raw.destroy();
      return;
    }
    void reply
      .code(status)
      .type('application/json; charset=utf-8')
      .send(errorBody(status, code, message));
  });

  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .send(
        errorBody(
          404,
          'NG_ERR_ROUTE_NOT_FOUND',
          `no route for ${request.method} ${request.originalUrl.split('?')[0]}`,
        ),
      );
  });
}

/** GET / (what this server is), /health and /whoami. */
function coreRoutes(app: FastifyInstance, options: AppOptions, exports: ExportTable<ExportSpec>): void {
  const writable = options.writable === true;
  const exportOf = (request: FastifyRequest): ExportSpec | undefined =>
    options.exports?.find((spec) => spec.chroot === request.peer.root);
  app.get('/', (request) => ({
    name: 'nullgate',
    version,
    writable:
      exports.size === 0
        ? writable
        : (exportOf(request)?.writable ?? (options.root !== undefined && writable)),
    root: '/',
    peer: request.peer,
  }));
  app.get('/health', () => ({ status: 'ok' }));
  app.get('/whoami', (request) => {
    const { root, ...peer } = request.peer;
    return { ...peer, allowed: true, ...(exports.size === 0 ? {} : { chroot: root }) };
  });
}

/** Requests Node's http.Server would answer on its own, handed to the app or refused in the JSON shape. */
function routeServerEvents(app: FastifyInstance): void {
  // Expect: 100-continue (curl -T sends it) is answered by the upload handler once it has
  // accepted the request, so a refused upload (403, 413, 412) is refused before the body is sent.
  app.server.on('checkContinue', (req, res) => app.server.emit('request', req, res));
  // Other expectations too, to be refused 417 in the JSON shape (gateway/framing.ts), and CONNECT
  // (which Node would otherwise close without a word).
  app.server.on('checkExpectation', (req, res) => app.server.emit('request', req, res));
  app.server.on('connect', refuseConnect);
}

/** /files and /archive, when there is a root or an export to serve. */
function fileRoutes(
  app: FastifyInstance,
  options: AppOptions,
  limits: Limits,
  exports: ExportTable<ExportSpec>,
): void {
  if (options.root === undefined && exports.size === 0) return;
  // One pool of upload slots for both, so --max-uploads bounds PUT /files and PUT /archive together.
  const uploadSlots = new UploadSlots(limits.maxUploads);
  const mounted = {
    root: options.root,
    writable: options.writable === true,
    exports: options.exports,
    maxUpload: options.maxUpload,
    uploadSlots,
  };
  // PUT /files with Upload-Complete creates the resources /uploads serves (routes/resumable.ts).
  const resumable = { prefix: '/uploads', expiryMs: options.uploadExpiryMs };
  void app.register(filesRoutes, { prefix: '/files', ...mounted, resumable });
  void app.register(uploadsRoutes, { prefix: '/uploads', ...mounted, resumable });
  void app.register(archiveRoutes, { prefix: '/archive', ...mounted });
}

export function buildApp(options: AppOptions = {}): FastifyInstance {
  const limits = resolveLimits(options.limits);
  // Parser errors and limit hits, logged through `app` (its logger exists by the time one comes).
  const refusals = limitLog(() => app.log);
  const app = Fastify(fastifyOptions(options, limits, refusals.hit));
  // Before any plugin: child contexts copy the mark when they are made.
  markDefaultValidator(app);
  app.addHook('onClose', (_instance, done) => {
    refusals.flush();
    done();
  });
  const exports = new ExportTable(
    (options.exports ?? []).map((spec) => ({ chroot: spec.chroot, value: spec })),
  );
  addRequestHooks(app, peerLookup(exports), limits, refusals.hit);
  setErrorHandlers(app, refusals.hit);
  coreRoutes(app, options, exports);
  routeServerEvents(app);
  fileRoutes(app, options, limits, exports);
  return app;
}
