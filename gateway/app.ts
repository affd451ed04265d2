/**
 * buildApp(options): the Fastify instance with nullgate's core endpoints, error shape and peer
 * decoration. It never listens: gateway.ts (or the user) puts its server on a socket.
 */
import type { Socket } from 'node:net';
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import type { PeerCredentials } from '../native/binding.js';
import { inFlightResponse, requireFromFastify } from '../native/node-internals.js';
import { codeForStatus, type ErrorCode, errorBody, isNullgateError } from '../core/errors.js';
import { closeWithError, rawErrorResponse } from '../routes/raw-error.js';
import { closeAfterResponse } from '../routes/linger.js';
import { framingRefusal, refuseConnect } from './framing.js';
import { peerOf } from './listen.js';
import {
  type Limits,
  MAX_HEADER_FIELDS,
  MAX_PIPELINED_REQUESTS,
  RateLimitedLog,
  resolveLimits,
  UploadSlots,
} from '../core/limits.js';
import { pipelineTurn } from './pipelining.js';
import { archiveRoutes } from '../routes/archive/plugin.js';
import { filesRoutes } from '../routes/files.js';
import { type ExportSpec, ExportTable } from '../routes/exports.js';
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

/** Bytes already counted in an access line, per connection (see the onRequest hook). */
const loggedBytes = Symbol('nullgate.loggedBytes');
type CountedSocket = Socket & { [loggedBytes]?: number };

/** Connections whose parser failed while a response was in flight: closed once it is sent. */
const closingAfterResponse = new WeakSet<Socket>();
/** Connections answered with a parser error, draining the client's input before closing. */
const lingering = new WeakSet<Socket>();

/** A request refused by a limit or the parser, as logged (rate-limited per status and uid). */
interface LimitHit {
  readonly status: number;
  readonly reason: string;
  readonly peer: PeerCredentials | undefined;
}

/** A flood of limit hits logs one line per window, status and uid (with the count of the rest). */
const LIMIT_LOG_WINDOW_MS = 10_000;

function clientErrorBody(err: NodeJS.ErrnoException): [number, ErrorCode, string] {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'NG_ERR_TIMEOUT', 'request timed out'];
  if (err.code === 'HPE_HEADER_OVERFLOW')
    return [431, 'NG_ERR_HEADERS_TOO_LARGE', 'request headers too large'];
  return [400, 'NG_ERR_BAD_REQUEST', `malformed request (${err.code ?? 'parse error'})`];
}

type SerializerFactory = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildSerializer']
>;
type SerializerCompiler = ReturnType<SerializerFactory>;

/**
 * Fastify's default response serializer compiler (fast-json-stringify), loaded the first time a
 * route declares a response schema rather than when the app is built: nullgate's own routes
 * have none, and loading it costs ~6 MiB of resident memory in every idle server. Only the
 * loading is deferred; what it compiles is what Fastify's default would. (The validator
 * compiler stays Fastify's own: replacing it changes how header schemas are read.)
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

/** One access line per request, written when the response is over (see the onRequest hook). */
function accessLine(request: FastifyRequest, reply: FastifyReply, socket: CountedSocket): void {
  // What this response put on the wire, headers included (nginx's $bytes_sent), however it
  // was sent: the socket's bytesWritten from here to the response's last write (inject()
  // sockets have no count: 0). 'prefinish' is that last write; waiting for 'close' would also
  // count a pipelined successor, which Node starts writing before this one's 'close'.
  const startBytes = socket.bytesWritten ?? 0;
  const res = reply.raw;
  let bytes = -1;
  const settle = (): void => {
    if (bytes >= 0) return;
    const endBytes = socket.bytesWritten ?? 0;
    // Pipelined responses share the socket: each counts from where the previous one's ended.
    bytes = endBytes - Math.max(startBytes, socket[loggedBytes] ?? 0);
    socket[loggedBytes] = endBytes;
  };
  res.on('prefinish', settle);
  // One access line per request, written when the response is over — also for responses
  // that leave Fastify's lifecycle (zero-copy downloads hijack the reply) or are cut short.
  res.on('close', () => {
    settle();
    const { pid, uid, gid, root } = request.peer;
    const finished = res.writableFinished;
    if (finished && request.method !== 'HEAD' && res.statusCode !== 304) {
      // A zero-copy body (sendfile, routes/zero-copy.ts) goes around the socket's count. A
      // finished response that wrote fewer bytes than its Content-Length through Node can only
      // be one of those, and it was sent whole.
      const length = Number(res.getHeader('content-length') ?? 0);
      if (bytes < length) bytes += length;
    }
    const url = request.url;
    const query = url.indexOf('?');
    request.log.info(
      {
        peer: { pid, uid, gid },
        ...(root === undefined ? {} : { export: root }),
        method: request.method,
        path: query === -1 ? url : url.slice(0, query),
        status: res.statusCode,
        bytes,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ...(finished ? {} : { aborted: true }),
      },
      'access',
    );
  });
}

export function buildApp(options: AppOptions = {}): FastifyInstance {
  const logLevel = options.logLevel ?? 'info';
  const limits = resolveLimits(options.limits);
  // Parser errors and limit hits, logged through `app` (its logger exists by the time one comes).
  const limitLog = new RateLimitedLog<LimitHit>(LIMIT_LOG_WINDOW_MS, ({ status, reason, peer }, suppressed) =>
    app.log.warn(
      { peer, status, reason, suppressed },
      suppressed === 0
        ? `request refused: ${reason}`
        : `request refused: ${suppressed} more like the last one`,
    ),
  );
  const limitHit = (status: number, reason: string, peer: PeerCredentials | undefined): void =>
    limitLog.event(`${status}:${peer?.uid ?? '-'}`, { status, reason, peer });
  const app = Fastify({
    schemaController: { compilersFactory: { buildSerializer: lazySerializerFactory } },
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    http: {
      maxHeaderSize: limits.maxHeaderSize,
      headersTimeout: limits.headersTimeoutMs,
      // Check the header/request timers every second (Node's default, 30 s, lets a slowloris
      // flood hold connections far past headersTimeout).
      connectionsCheckingInterval: 1000,
      // Node answers a Host-less HTTP/1.1 request with an empty 400; the onRequest hook below
      // refuses it in the contract's JSON shape instead.
      requireHostHeader: false,
    },
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
    // One access line per request (see onRequest below) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // While draining, requests on open keep-alive connections are still served (with
    // `Connection: close`, which Fastify adds); only the listener stops accepting.
    return503OnClosing: false,
    // Errors in the HTTP parser (before Fastify has a request) get the nullgate error shape too.
    clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket) {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const inflight = inFlightResponse(socket);
      if (inflight?.req.complete && err.code !== 'ERR_HTTP_REQUEST_TIMEOUT') {
        // Bad bytes pipelined after a whole request: that request's response is on the socket
        // (or about to be). A raw 400 written now would be read as its answer, or land in the
        // middle of its body; let it finish, then close (RFC 9112 §9.3.2: answers keep order).
        if (!closingAfterResponse.has(socket)) {
          closingAfterResponse.add(socket);
          limitHit(
            400,
            `malformed request after a complete one (${err.code ?? 'parse error'})`,
            peerOf(socket),
          );
          // end() first: destroy() would drop response bytes still queued in userland.
          inflight.once('close', () => socket.end(() => socket.destroy()));
        }
        return;
      }
      // Already answered: the parser reports each further chunk the client sends while lingering.
      if (lingering.has(socket)) return;
      if (!inflight && !socket.writable) {
        // Our side is closed already, after a response that refused its request's body (curl -T
        // refused 403 or 413 sends no body and hangs up; routes/linger.ts): the parser reports
        // the end of that body never sent (HPE_INVALID_EOF_STATE), which is no malformed request
        // to answer or log. Whoever ended the socket closes it; once our answer is out, now.
        if (socket.writableFinished) socket.destroy();
        return;
      }
      const [status, code, message] = clientErrorBody(err);
      limitHit(status, message, peerOf(socket));
      if (inflight) {
        // The request being answered is itself broken (a bad or too slow body): its handler may
        // still write, so cut the connection now, with the error only if nothing was sent yet.
        if (socket.writable && !inflight.headersSent) socket.write(rawErrorResponse(status, code, message));
        socket.destroy();
        return;
      }
      // Lingering close (what nginx does): answer, send FIN, and read and discard what the
      // client is still sending for a bounded time. Destroying at once, with the rest of a 1 MiB
      // header unread, resets the connection and the client never reads the 431.
      lingering.add(socket);
      closeWithError(socket, status, code, message);
    },
  });

  app.addHook('onClose', (_instance, done) => {
    limitLog.flush();
    done();
  });

  // One more than the limit, so that a request over it is seen whole enough to be refused
  // (Node 20 would otherwise cut it to exactly the limit; see the onRequest hook).
  app.server.maxHeadersCount = MAX_HEADER_FIELDS + 1;
  app.decorateRequest('peer', null as unknown as PeerCredentials);
  // With exports, the peer also says which chroot it is in: looked up once per connection.
  const exports = new ExportTable(
    (options.exports ?? []).map((spec) => ({ chroot: spec.chroot, value: spec })),
  );
  const exportPeers = new WeakMap<Socket, FastifyRequest['peer']>();
  const exportPeer = (socket: Socket): FastifyRequest['peer'] => {
    let peer = exportPeers.get(socket);
    if (peer === undefined) {
      peer = Object.freeze({ ...(peerOf(socket) ?? selfPeer), root: exports.match(socket)?.chroot ?? '/' });
      exportPeers.set(socket, peer);
    }
    return peer;
  };
  const exportOf = (request: FastifyRequest): ExportSpec | undefined =>
    options.exports?.find((spec) => spec.chroot === request.peer.root);
  app.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket as CountedSocket;
    request.peer = exports.size === 0 ? (peerOf(socket) ?? selfPeer) : exportPeer(socket);
    // The access line costs two listeners a request: none when it would not be written.
    if ((request.log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info') === true) {
      accessLine(request, reply, socket);
    }
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
      return;
    }
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host field.
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      void reply
        .code(400)
        .send(errorBody(400, 'NG_ERR_BAD_REQUEST', 'HTTP/1.1 request without a Host header'));
      return;
    }
    // A transfer coding or an expectation nullgate does not do (gateway/framing.ts).
    const refused = framingRefusal(request.headers, request.raw.httpVersion);
    if (refused !== undefined) {
      if (!request.raw.complete) closeAfterResponse(reply);
      void reply.code(refused.statusCode).send(refused.toJSON());
      return;
    }
    done();
  });
  // At most MAX_PIPELINED_REQUESTS requests of a connection run at once, and what a closed
  // connection leaves queued is closed with it (gateway/pipelining.ts).
  app.addHook('onRequest', (request, reply, done) => {
    pipelineTurn(request.raw.socket, reply.raw, MAX_PIPELINED_REQUESTS, (run) => {
      if (!run) void reply.hijack();
      done();
    });
  });

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
          `no route for ${request.method} ${request.url.split('?')[0]}`,
        ),
      );
  });

  const writable = options.writable === true;
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

  // Expect: 100-continue (curl -T sends it) is answered by the upload handler once it has
  // accepted the request, so a refused upload (403, 413, 412) is refused before the body is sent.
  app.server.on('checkContinue', (req, res) => app.server.emit('request', req, res));
  // Other expectations too, to be refused 417 in the JSON shape (gateway/framing.ts), and CONNECT
  // (which Node would otherwise close without a word).
  app.server.on('checkExpectation', (req, res) => app.server.emit('request', req, res));
  app.server.on('connect', refuseConnect);

  if (options.root !== undefined || exports.size > 0) {
    // One pool of upload slots for both, so --max-uploads bounds PUT /files and PUT /archive together.
    const uploadSlots = new UploadSlots(limits.maxUploads);
    const mounted = {
      root: options.root,
      writable,
      exports: options.exports,
      maxUpload: options.maxUpload,
      uploadSlots,
    };
    void app.register(filesRoutes, { prefix: '/files', ...mounted });
    void app.register(archiveRoutes, { prefix: '/archive', ...mounted });
  }

  return app;
}
