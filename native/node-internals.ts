/**
 * The one place that reaches into Node's and Fastify's private internals: fields and files that
 * no documented API offers, each behind a small named function. Nothing else in the product may
 * read an underscore field of a Node object or resolve a package from inside another one; a
 * Node or Fastify upgrade that moves one of these breaks here alone, and
 * test/native/node-internals.test.ts checks every shape used below on the Node version it runs
 * under (CI runs it under Node 20, 22 and 24), so the upgrade fails there first.
 *
 * It lives in native/ because that is the layer that deals with what sits beneath the public
 * API (the fds, the addon) and the lowest folder that every side importing it may use (routes/,
 * gateway/); core/ stays rules every side shares, with no tie to a runtime's private state.
 * undici's internals are not here: the client may import only native/ and core/, and its one
 * reach into undici (client/undici-core.ts) already has a file of its own (the test above
 * checks that one too).
 */
import { type IncomingMessage, ServerResponse, validateHeaderName, validateHeaderValue } from 'node:http';
import { createRequire } from 'node:module';
import { type Server, Socket } from 'node:net';

/** A libuv handle as net.Socket keeps it on `_handle` (Pipe or TCP from pipe_wrap/tcp_wrap). */
interface HandleWithFd {
  readonly fd?: number;
  /** Set by net.Socket and http.Server while the handle reads (readStart), cleared by readStop. */
  reading?: boolean;
  /** Stops libuv reading the handle (stream_wrap's readStop); returns 0 or a negative errno. */
  readStop?(): number;
  /** Starts libuv reading the handle (stream_wrap's readStart); returns 0 or a negative errno. */
  readStart?(): number;
}

/** The connection's HTTP parser (node_http_parser.cc's Parser, set up by _http_server.js). */
interface HttpParser {
  execute(data: Buffer): number | Error;
  resume(): void;
  /** The callbacks by index; the class has the indexes (kOnBody). */
  [callback: number]: unknown;
  readonly constructor: { readonly kOnBody?: number };
}

/** The private fields of net.Socket that http.Server sets on a connection (_http_server.js). */
interface HttpServerSocket extends Socket {
  /** The libuv handle; null once closed. */
  _handle?: HandleWithFd | null;
  /** The response being written on the connection (its socket is this one). */
  _httpMessage?: ServerResponse | null;
  /** Set while http.Server has stopped reading (pipelined responses piled up). */
  _paused?: boolean;
  /** The connection's HTTP parser while http.Server owns the socket. */
  parser?: HttpParser | null;
}

function internal(socket: Socket): HttpServerSocket {
  return socket as HttpServerSocket;
}

/** The private fields of net.Server that its accept path keeps (net.js onconnection). */
interface ServerInternals extends Server {
  /** The listening libuv handle; null once closed. */
  _handle?: HandleWithFd | null;
  /** Open connections: close() emits 'close' once this is back at 0. */
  _connections: number;
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
}

/** The fd `server` listens on, or -1 when it is not listening (or is not a server of fds). */
export function listenerFd(server: Server): number {
  const fd = (server as ServerInternals)._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/**
 * A connection of `server` made from an fd accepted outside libuv, set up as net.js's
 * onconnection sets up the one libuv accepts: a Socket on the fd with the server's
 * allowHalfOpen and pauseOnConnect, counted in `_connections` (the Socket counts itself out
 * through `_server` when destroyed, and close() waits for the count), `server` set. The caller
 * emits 'connection' with it.
 */
export function adoptConnection(server: Server, fd: number): Socket {
  const inner = server as ServerInternals;
  const socket = new Socket({
    fd,
    readable: true,
    writable: true,
    allowHalfOpen: inner.allowHalfOpen === true,
    // Not in @types/node's SocketConstructorOpts: net.Socket reads it to start paused.
    ...({ pauseOnCreate: inner.pauseOnConnect === true } as object),
  });
  inner._connections++;
  (socket as Socket & { server: Server; _server: Server }).server = server;
  (socket as Socket & { _server: Server })._server = server;
  return socket;
}

/**
 * The server that accepted `socket` (`socket._server`, set by net.js's onconnection and by
 * adoptConnection; its destroy() counts itself out of that server's `_connections`), if any.
 */
export function connectionServer(socket: Socket): Server | undefined {
  return (socket as Socket & { _server?: Server | null })._server ?? undefined;
}

/**
 * The connection's own fd, or -1 when it has none: a TLS socket (its bytes are not the fd's),
 * a mock socket (inject()), a closed handle. net.Socket keeps its libuv handle on `_handle`,
 * whose `fd` getter is defined on Unix (libuv's uv_fileno).
 */
export function socketFd(socket: Socket): number {
  if ('encrypted' in socket) return -1;
  const fd = internal(socket)._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/**
 * The response http.Server is writing on `socket` (`socket._httpMessage`), if any. Responses
 * queued behind it by pipelining are not it: their `socket` is still null.
 */
export function inFlightResponse(socket: Socket): ServerResponse | undefined {
  return internal(socket)._httpMessage ?? undefined;
}

/**
 * Stops reading a server connection the way http.Server does when responses pile up: its own
 * `_paused` flag, so its other resume paths (a request body being read) leave the socket
 * paused too and its parser pauses after the buffer it is in. Undone by resumeHttpReading.
 * Returns false for a socket that cannot pause (inject()'s mock).
 */
export function pauseHttpReading(socket: Socket): boolean {
  if (typeof socket.pause !== 'function') return false;
  internal(socket)._paused = true;
  socket.pause();
  return true;
}

/**
 * Resumes what pauseHttpReading stopped, as http.Server's socketOnDrain does: not while the
 * socket's own write buffer is still full (its 'drain' handler resumes then) or when http.Server
 * did not pause it. Returns whether reading was resumed.
 */
export function resumeHttpReading(socket: Socket): boolean {
  const s = internal(socket);
  if (s._paused !== true || socket.writableNeedDrain) return false;
  s._paused = false;
  s.parser?.resume();
  socket.resume();
  return true;
}

/** Whether reading is stopped by http.Server's own pause flag (pauseHttpReading, or Node's backpressure). */
export function httpReadingPaused(socket: Socket): boolean {
  return internal(socket)._paused === true;
}

/**
 * Whether nothing reads `socket` now: its libuv handle is stopped (http.Server's parser reads
 * the handle directly, bypassing the stream, so the stream's own paused state does not tell).
 */
export function handleStopped(socket: Socket): boolean {
  const handle = internal(socket)._handle;
  return handle !== null && handle !== undefined && handle.reading !== true;
}

/**
 * Stops the libuv handle of `socket` reading, the way net.Socket does when its own buffer is full
 * (stream_base_commons.js onStreamRead: `reading` cleared, then readStop): nothing more comes
 * off the kernel's socket into Node until someone starts the handle again (the stream's _read,
 * socket.resume()). For a client connection, whose HTTP parser reads the stream's 'data' rather
 * than the handle, pausing the stream alone does not stop it. Returns whether the handle is
 * stopped now (false for a closed socket or a mock).
 */
export function stopHandleReading(socket: Socket): boolean {
  const handle = internal(socket)._handle;
  if (handle === null || handle === undefined || typeof handle.readStop !== 'function') return false;
  if (handle.reading === true) {
    handle.reading = false;
    if (handle.readStop() !== 0) return false;
  }
  return handleStopped(socket);
}

/** Starts held back by holdReading (the tests' proof that one came during a native receive). */
export const heldReadingStats = { starts: 0 };

/**
 * Keeps `socket`'s libuv handle from reading until the returned release() is called: while a
 * native thread reads the socket (routes/receive.ts), nothing of Node may read it too. Pausing
 * is not enough: http.Server resumes a connection it paused itself when its write buffer drains
 * (_http_server.js socketOnDrain: `_paused` cleared, parser and socket resumed), and a pipelined
 * response finishing its write during a native receive did that, so Node's parser read part of
 * the body the thread was waiting for. While held, a start (stream_base_commons tryReadStart,
 * which sets `reading` first) is recorded, not made; release() makes it then, if one was asked
 * for and the socket is still open. Returns a no-op for a socket without a handle (a mock).
 */
export function holdReading(socket: Socket): () => void {
  const handle = internal(socket)._handle;
  if (handle === null || handle === undefined || typeof handle.readStart !== 'function')
    return () => undefined;
  const held = handle;
  const start = handle.readStart;
  const own = Object.hasOwn(held, 'readStart');
  held.readStart = () => {
    heldReadingStats.starts++;
    return 0;
  };
  return () => {
    if (own) held.readStart = start;
    else delete held.readStart;
    if (held.reading === true && internal(socket)._handle === held && !socket.destroyed) {
      if (start.call(held) !== 0) socket.destroy();
    }
  };
}

/** A zero-filled buffer the parser walks over (never read: the body callback is off). */
let filler: Buffer | undefined;
const FILLER_BYTES = 1024 * 1024;

/**
 * Tells the connection's HTTP parser that `bytes` more bytes of the body it is parsing were read
 * by someone else (a native receive, routes/receive.ts), so that it ends the request exactly as
 * if it had read them: `req.complete`, 'end', keep-alive, then the next pipelined request from
 * the socket. llhttp has no "skip N bytes", so the parser executes that many filler bytes with
 * its body callback removed: node_http_parser.cc's on_body returns at once when the callback is
 * not a function, and llhttp only counts a Content-Length body's bytes, so this reads no memory
 * and copies nothing (a 1 GiB body is 1,024 calls). `bytes` must not exceed what the body still
 * lacks, or the filler would be parsed as the next request. Returns false when the parser is
 * missing or refused (then the caller closes the connection).
 */
export function skipBodyInParser(socket: Socket, bytes: number): boolean {
  const parser = internal(socket).parser;
  const onBodyIndex = parser?.constructor.kOnBody;
  if (!parser || typeof onBodyIndex !== 'number' || typeof parser.execute !== 'function') return false;
  filler ??= Buffer.alloc(FILLER_BYTES);
  const onBody = parser[onBodyIndex];
  parser[onBodyIndex] = undefined;
  // A parser that http.Server paused (llhttp_pause: pipelined responses piled up) refuses every
  // byte with HPE_PAUSED; it resumes when reading does anyway.
  parser.resume();
  try {
    let left = bytes;
    while (left > 0) {
      const n = Math.min(left, FILLER_BYTES);
      const ret = parser.execute(n === FILLER_BYTES ? filler : filler.subarray(0, n));
      if (typeof ret !== 'number' || ret !== n) return false;
      left -= n;
    }
    return true;
  } finally {
    parser[onBodyIndex] = onBody;
  }
}

/**
 * Closes a response the way http.Server closes the one it was writing when its connection
 * closes (emitCloseNT in _http_server.js): destroyed, `closed` (the `_closed` field behind the
 * read-only getter, which stream.finished reads), then 'close'.
 */
export function closeResponse(res: ServerResponse): void {
  res.destroy();
  (res as ServerResponse & { _closed: boolean })._closed = true;
  res.emit('close');
}

/**
 * Writes an interim (1xx) response head the way `writeEarlyHints` writes its 103 (_http_server.js:
 * the head string through OutgoingMessage's `_writeRaw`): Node's public API sends only 100, 102
 * and 103, and resumable uploads need 104 (routes/resumable.ts). `fields` must hold no CR or LF.
 * Returns false (nothing written) when the response has no `_writeRaw` or has sent its head.
 */
export function writeInformational(
  res: ServerResponse,
  status: number,
  reason: string,
  fields: readonly (readonly [string, string])[],
): boolean {
  const raw = res as ServerResponse & { _writeRaw?: (data: string, encoding: BufferEncoding) => boolean };
  if (typeof raw._writeRaw !== 'function' || res.headersSent) return false;
  let head = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const [name, value] of fields) head += `${name}: ${value}\r\n`;
  raw._writeRaw(`${head}\r\n`, 'latin1');
  return true;
}

/**
 * Replaces how http.Server closes `socket` after its last response (`socket.destroySoon()`,
 * net.Socket's undocumented end-then-destroy) with `close`.
 */
export function replaceDestroySoon(socket: Socket, close: () => void): void {
  socket.destroySoon = close;
}

/**
 * A package Fastify itself depends on (`@fastify/fast-json-stringify-compiler`), loaded from
 * where Fastify resolves it: it is not nullgate's dependency, so npm may nest it under
 * node_modules/fastify/ rather than hoist it.
 */
export function requireFromFastify(id: string): unknown {
  const fastifyEntry = createRequire(import.meta.url).resolve('fastify');
  return createRequire(fastifyEntry)(id);
}

/** Fastify's store of a reply's header fields (lib/reply.js: `this[kReplyHeaders] = {}`). */
let replyHeadersKey: symbol | undefined;

/**
 * Sets every field of `fields` (lower-case names, string values, no set-cookie) on a Fastify
 * reply, as `reply.headers(fields)` does, in one step when the reply has no field yet: its store
 * becomes a copy of `fields`. Fastify hands that store to `res.writeHead` as it is. `reply.header`
 * adds one property per call to the store through a megamorphic keyed store, and V8 takes each
 * such addition to its runtime (a map transition); a copy of an object of a known shape is one
 * allocation. A reply that already has fields (a user's hook set some) gets them one by one.
 */
export function setReplyFields(
  reply: { headers(fields: Record<string, string>): unknown },
  fields: Readonly<Record<string, string>>,
): void {
  const key = (replyHeadersKey ??= Object.getOwnPropertySymbols(reply).find(
    (s) => s.description === 'fastify.reply.headers',
  ));
  const store = key === undefined ? undefined : (reply as Record<symbol, unknown>)[key];
  if (store !== undefined && store !== null && typeof store === 'object' && isEmpty(store)) {
    (reply as Record<symbol, unknown>)[key!] = { ...fields };
    return;
  }
  reply.headers(fields);
}

function isEmpty(object: object): boolean {
  for (const _ in object) return false;
  return true;
}

/**
 * Tells a Fastify instance that its validator compiler is Fastify's default (ajv) although it came
 * as the `schemaController.compilersFactory.buildValidator` option (gateway/app.ts defers loading
 * ajv that way). Fastify marks a compiler given as an option as custom, and reads the header
 * schemas of routes with a custom compiler as they are written instead of with lowercased
 * property names (lib/schema-controller.js `isCustomValidatorCompiler`, lib/validation.js).
 * Call it before any plugin is registered: child contexts copy the mark when they are made.
 * Returns false when the instance has no such mark (a Fastify that changed).
 */
export function markDefaultValidator(app: object): boolean {
  const key = Object.getOwnPropertySymbols(app).find((s) => s.description === 'fastify.schemaController');
  if (key === undefined) return false;
  const controller = (app as Record<symbol, { isCustomValidatorCompiler?: unknown } | undefined>)[key];
  if (typeof controller?.isCustomValidatorCompiler !== 'boolean') return false;
  controller.isCustomValidatorCompiler = false;
  return true;
}

/**
 * A response's header fields written as one checked block: what a route answers the same way
 * many times (a small file's 200) skips Node's per-field work. `writeHead` hands
 * `OutgoingMessage._storeHeader` the fields object, and Node checks every name and value with two
 * regular expressions, lowercases each name and appends each line, on every response
 * (docs/performance.md, "Where the rest goes, bundled"). Here the names and values are checked
 * once, with Node's own validateHeaderName/Value, when the block is made.
 */
export class PrebuiltFields {
  /** The lines of every field but Content-Length, each ending in CRLF. */
  readonly #lines: string;
  readonly #fields: Readonly<Record<string, string>>;
  readonly #count: number;

  /** `fields`: lower-case names, string values, a content-length among them. Throws when Node would refuse one. */
  constructor(fields: Readonly<Record<string, string>>) {
    let lines = '';
    let count = 0;
    for (const [name, value] of Object.entries(fields)) {
      validateHeaderName(name);
      validateHeaderValue(name, value);
      count++;
      if (name !== 'content-length') lines += `${name}: ${value}\r\n`;
    }
    if (fields['content-length'] === undefined) throw new TypeError('PrebuiltFields: no content-length');
    this.#lines = lines;
    this.#fields = fields;
    this.#count = count;
  }

  /** True when `headers` holds exactly these fields (a hook added, removed or changed none). */
  matches(headers: unknown): headers is Record<string, string> {
    if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return false;
    const own = this.#fields;
    let count = 0;
    for (const name in headers) {
      if ((headers as Record<string, unknown>)[name] !== own[name]) return false;
      count++;
    }
    return count === this.#count;
  }

  get lines(): string {
    return this.#lines;
  }
}

/** Node's `_storeHeader(firstLine, headers)`: builds the header block writeHead sends. */
type StoreHeader = (this: ServerResponse, firstLine: string, headers: unknown) => void;
const storeHeader = (ServerResponse.prototype as unknown as { _storeHeader: StoreHeader })._storeHeader;

/** How often a prebuilt block was written (tests). */
export const prebuiltStats = { used: 0 };

/**
 * http.Server's response class for the gateway (`http.createServer({ ServerResponse })`): when a
 * route offered a PrebuiltFields (offerPrebuilt) and writeHead gets exactly those fields, their
 * block goes out as it is, and only Content-Length goes through Node's own handling (which also
 * decides keep-alive and framing from it). Anything else — a hook that added, changed or removed
 * a field, fields set on the raw response — takes Node's path unchanged.
 */
export class GatewayResponse<
  Request extends IncomingMessage = IncomingMessage,
> extends ServerResponse<Request> {
  prebuilt: PrebuiltFields | undefined = undefined;

  _storeHeader(firstLine: string, headers: unknown): void {
    const prebuilt = this.prebuilt;
    if (prebuilt !== undefined && prebuilt.matches(headers)) {
      prebuiltStats.used++;
      storeHeader.call(this, firstLine + prebuilt.lines, [['content-length', headers['content-length']]]);
      return;
    }
    storeHeader.call(this, firstLine, headers);
  }
}

/** Offers `fields` for the block of `res`'s header (a no-op on a response of another server). */
export function offerPrebuilt(res: ServerResponse, fields: PrebuiltFields): void {
  if (res instanceof GatewayResponse) res.prebuilt = fields;
}
