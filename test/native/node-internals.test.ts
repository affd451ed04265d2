/**
 * Every private shape of Node, Fastify and undici that nullgate relies on, checked on the Node
 * version this runs under (CI: 20, 22 and 24), so that an upgrade that moves one fails here
 * first, by name, rather than somewhere in the gateway. Node's and Fastify's are reached through
 * native/node-internals.ts; undici's through client/undici-core.ts. Real sockets throughout:
 * an http.Server on an abstract socket, spoken to in raw HTTP.
 */
import { createServer, IncomingMessage, request, type Server, ServerResponse } from 'node:http';
import { readSync } from 'node:fs';
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyServerOptions } from 'fastify';
import * as undici from 'undici';
import { parseAddress } from '../../core/address.js';
import { native } from '../../native/binding.js';
import {
  adoptConnection,
  closeResponse,
  GatewayResponse,
  PrebuiltFields,
  offerPrebuilt,
  prebuiltStats,
  connectionServer,
  handleStopped,
  heldReadingStats,
  holdReading,
  httpReadingPaused,
  listenerFd,
  skipBodyInParser,
  writeInformational,
  inFlightResponse,
  markDefaultValidator,
  pauseHttpReading,
  replaceDestroySoon,
  requireFromFastify,
  resumeHttpReading,
  socketFd,
  stopHandleReading,
} from '../../native/node-internals.js';
import { connectFd } from '../../native/socket.js';
import { listenAbstract } from '../../gateway/listen.js';
import { rawRequest, uniqueName } from '../helpers/sockets.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let server: Server;
let address = '';
/** The handler for the next requests; each test sets its own. */
let handler: Handler = (_req, res) => res.end();

beforeAll(async () => {
  server = createServer((req, res) => handler(req, res));
  address = uniqueName('internals');
  await listenAbstract(server, address);
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

function get(path: string, close = true): string {
  return `GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
}

describe(`Node ${process.version}: the shapes native/node-internals.ts relies on`, () => {
  it('socketFd: a net.Socket over an fd has it on _handle.fd; -1 once closed and for a mock', async () => {
    const fd = connectFd(parseAddress(address));
    const socket = new Socket({ fd, readable: true, writable: true });
    expect(socketFd(socket)).toBe(fd);
    socket.destroy();
    await new Promise((resolve) => socket.once('close', resolve));
    expect(socketFd(socket)).toBe(-1);
    expect(socketFd({} as Socket)).toBe(-1);
  });

  it("socketFd: a connection http.Server accepted has its fd, the one the peer gate's SO_PEERCRED reads", async () => {
    let seen: unknown;
    handler = (req, res) => {
      seen = native.peerCred(socketFd(req.socket));
      res.end();
    };
    expect((await rawRequest(address, get('/'))).status).toBe(200);
    expect(seen).toEqual({ pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
  });

  it('listenerFd / adoptConnection: a listening server has its fd on _handle.fd and counts _connections', async () => {
    const fd = listenerFd(server);
    expect(native.sockInfo(fd)).toMatchObject({ listening: true });
    const other = createServer();
    expect(listenerFd(other)).toBe(-1);
    const count = (): Promise<number> =>
      new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    const before = await count();
    const client = connectFd(parseAddress(address));
    // Taken here, in the same turn, before libuv looks: as the gate's batch accept does.
    const accepted = native.accept(fd);
    expect(accepted).toBeGreaterThan(0);
    const socket = adoptConnection(server, accepted);
    expect(socketFd(socket)).toBe(accepted);
    expect(await count()).toBe(before + 1);
    socket.destroy();
    await new Promise((r) => socket.once('close', r));
    expect(await count()).toBe(before);
    native.close(client);
  });

  it('connectionServer: a connection libuv accepted, and one adopted, know their server', async () => {
    let seen: unknown;
    handler = (req, res) => {
      seen = connectionServer(req.socket);
      res.end();
    };
    expect((await rawRequest(address, get('/'))).status).toBe(200);
    expect(seen).toBe(server);
    const client = connectFd(parseAddress(address));
    const accepted = native.accept(listenerFd(server));
    const socket = adoptConnection(server, accepted);
    expect(connectionServer(socket)).toBe(server);
    socket.destroy();
    native.close(client);
    expect(connectionServer(new Socket())).toBeUndefined();
  });

  it('inFlightResponse: the response being written; a pipelined one waits with no socket', async () => {
    const seen: { first?: ServerResponse; inFlight?: ServerResponse | undefined; queuedSocket?: unknown } =
      {};
    handler = (req, res) => {
      if (req.url === '/first') {
        seen.first = res;
        seen.inFlight = inFlightResponse(req.socket);
        // Answered once the second request is seen, so that one is queued behind it.
        return;
      }
      seen.queuedSocket = res.socket;
      expect(inFlightResponse(req.socket)).toBe(seen.first);
      res.end('second');
      seen.first?.end('first');
    };
    const reply = await rawRequest(address, get('/first', false) + get('/second'));
    expect(reply.raw.toString('latin1')).toMatch(/first[\s\S]*second$/);
    expect(seen.inFlight).toBe(seen.first);
    expect(seen.queuedSocket).toBeNull();
    expect(inFlightResponse(new Socket())).toBeUndefined();
  });

  it('pauseHttpReading / resumeHttpReading: http.Server keeps _paused and parser on its connections', async () => {
    const seen: { flag?: unknown; parser?: unknown; paused?: boolean; resumed?: boolean; after?: unknown } =
      {};
    handler = (req, res) => {
      const socket = req.socket as Socket & { _paused?: unknown; parser?: { resume?: unknown } | null };
      seen.flag = socket._paused;
      seen.parser = typeof socket.parser?.resume;
      pauseHttpReading(socket);
      seen.paused = socket.isPaused();
      seen.resumed = resumeHttpReading(socket);
      seen.after = socket._paused;
      res.end();
    };
    expect((await rawRequest(address, get('/'))).status).toBe(200);
    expect(seen).toEqual({ flag: false, parser: 'function', paused: true, resumed: true, after: false });
  });

  it('handleStopped / skipBodyInParser: the handle stops; the parser ends a body it is told was read, then parses the next request', async () => {
    const seen: { stopped?: boolean; paused?: boolean; skipped?: boolean; complete?: boolean; data: number } =
      {
        data: 0,
      };
    let got: () => void = () => undefined;
    const headersIn = new Promise<void>((resolve) => (got = resolve));
    handler = (req, res) => {
      if (req.method !== 'PUT') {
        res.end('next');
        return;
      }
      const socket = req.socket;
      pauseHttpReading(socket);
      seen.stopped = handleStopped(socket);
      seen.paused = httpReadingPaused(socket);
      req.on('data', (c: Buffer) => (seen.data += c.length));
      got();
      // The client sends the next request only now: the 10 body bytes never come, the parser
      // is told they were read.
      setTimeout(() => {
        seen.skipped = skipBodyInParser(socket, 10);
        seen.complete = req.complete;
        resumeHttpReading(socket);
        res.end('put');
      }, 50);
    };
    const socket = new Socket({ fd: connectFd(parseAddress(address)), readable: true, writable: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.write('PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n');
    await headersIn;
    socket.end(get('/next'));
    await closed;
    const text = Buffer.concat(chunks).toString();
    expect(text.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(text).toMatch(/put[\s\S]*next/);
    expect(seen).toEqual({ stopped: true, paused: true, skipped: true, complete: true, data: 0 });
  });

  it("holdReading: while held, http.Server's own resume (its drain handler's: _paused cleared, parser and socket resumed) reads nothing; release() starts the reading it asked for", async () => {
    const seen: { stopped?: boolean; heldStarts?: number; dataWhileHeld?: number; data: number } = {
      data: 0,
    };
    let got: () => void = () => undefined;
    const headersIn = new Promise<void>((resolve) => (got = resolve));
    handler = (req, res) => {
      if (req.method !== 'PUT') {
        res.end('next');
        return;
      }
      const socket = req.socket as Socket & { _paused?: boolean; parser?: { resume(): void } | null };
      pauseHttpReading(socket);
      seen.stopped = handleStopped(socket);
      req.on('data', (c: Buffer) => (seen.data += c.length));
      const release = holdReading(socket);
      const before = heldReadingStats.starts;
      got();
      // The body's 10 bytes arrive now; a native thread would be reading them.
      setTimeout(() => {
        // What _http_server.js socketOnDrain does for a connection it paused.
        socket._paused = false;
        socket.parser?.resume();
        socket.resume();
        setTimeout(() => {
          seen.heldStarts = heldReadingStats.starts - before;
          // Nothing of the body reached Node: the bytes are still the kernel's.
          seen.dataWhileHeld = seen.data;
          expect(skipBodyInParser(socket, 10)).toBe(true);
          // A real receive would have taken them; this test reads them off the socket itself.
          const drained = Buffer.alloc(10);
          for (let n = 0; n < 10;) {
            try {
              n += readSync(socketFd(socket), drained, n, 10 - n, null);
            } catch {
              // EAGAIN: not there yet.
            }
          }
          release();
          res.end('put');
        }, 50);
      }, 50);
    };
    const socket = new Socket({ fd: connectFd(parseAddress(address)), readable: true, writable: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.write('PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n');
    await headersIn;
    socket.write('0123456789');
    socket.end(get('/next'));
    await closed;
    const text = Buffer.concat(chunks).toString();
    expect(text.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(text).toMatch(/put[\s\S]*next/);
    expect(seen).toEqual({ stopped: true, heldStarts: 1, dataWhileHeld: 0, data: 0 });
  });

  it("stopHandleReading / skipBodyInParser on a node:http client connection: the handle stops, the response's reads leave it stopped, its parser ends a body it is told was read", async () => {
    let served: ServerResponse | undefined;
    handler = (_req, res) => {
      served = res;
      res.on('error', () => undefined);
      res.writeHead(200, { 'content-length': '10' });
      // Half the body; the rest never comes (the client is told it was read).
      res.write('01234');
    };
    const socket = new Socket({ fd: connectFd(parseAddress(address)), readable: true, writable: true });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ path: '/', createConnection: () => socket }, resolve);
      req.on('error', reject);
      req.end();
    });
    // What the body brought so far is in the response (or still in the socket's stream): parsed,
    // it is the five bytes.
    let body = '';
    await new Promise<void>((resolve) => {
      const readable = (): void => {
        for (let c = res.read() as Buffer | null; c !== null; c = res.read() as Buffer | null)
          body += c.toString();
        if (body.length >= 5) {
          res.off('readable', readable);
          resolve();
        }
      };
      res.on('readable', readable);
    });
    expect(pauseHttpReading(socket)).toBe(true);
    expect(stopHandleReading(socket)).toBe(true);
    expect(handleStopped(socket)).toBe(true);
    // http.Server's pause flag keeps the response's _read from restarting the socket.
    expect(res.read()).toBe(null);
    expect(handleStopped(socket)).toBe(true);
    expect(skipBodyInParser(socket, 5)).toBe(true);
    expect(res.complete).toBe(true);
    res.resume();
    await new Promise((resolve) => res.once('end', resolve));
    expect(body).toBe('01234');
    socket.destroy();
    served?.destroy();
    expect(stopHandleReading(socket)).toBe(false);
  });

  it("closeResponse: a response's closed getter reads _closed; it ends destroyed and emits 'close'", () => {
    const res = new ServerResponse(new IncomingMessage(new Socket()));
    let closes = 0;
    res.on('close', () => closes++);
    expect(res.closed).toBe(false);
    closeResponse(res);
    expect({ closed: res.closed, destroyed: res.destroyed, closes }).toEqual({
      closed: true,
      destroyed: true,
      closes: 1,
    });
  });

  it('writeInformational: _writeRaw puts a 1xx head before the final response (as writeEarlyHints does)', async () => {
    const sent: boolean[] = [];
    handler = (_req, res) => {
      sent.push(writeInformational(res, 104, 'Upload Resumption Supported', [['Location', '/uploads/x']]));
      res.end('done');
      sent.push(writeInformational(res, 104, 'Upload Resumption Supported', []));
    };
    const reply = await rawRequest(address, get('/'));
    expect(reply.raw.toString('latin1')).toMatch(
      /^HTTP\/1\.1 104 Upload Resumption Supported\r\nLocation: \/uploads\/x\r\n\r\nHTTP\/1\.1 200 OK\r\n/,
    );
    expect(sent).toEqual([true, false]);
  });

  it('replaceDestroySoon: http.Server closes a Connection: close connection through socket.destroySoon', async () => {
    let called = 0;
    handler = (req, res) => {
      const socket = req.socket;
      const original = socket.destroySoon.bind(socket);
      replaceDestroySoon(socket, () => {
        called++;
        original();
      });
      res.end('bye');
    };
    const reply = await rawRequest(address, get('/'));
    expect(reply.body.toString()).toBe('bye');
    expect(called).toBe(1);
  });
});

type ValidatorFactory = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator']
>;

describe(`Node ${process.version}: GatewayResponse's prebuilt header block (OutgoingMessage._storeHeader)`, () => {
  const fields = {
    etag: '"1-2-400-3"',
    'x-nullgate-mode': '0644',
    'content-type': 'application/octet-stream',
    'content-length': '5',
  };
  const prebuilt = new PrebuiltFields(fields);
  /** What a handler does to the response (Fastify: writeHead with its fields object, write, end). */
  type Answer = (res: ServerResponse, head: boolean) => void;
  const answers: Record<string, Answer> = {
    same: (res, head) => {
      res.writeHead(200, { ...fields });
      res.end(head ? undefined : 'hello');
    },
    added: (res) => {
      res.writeHead(200, { ...fields, 'x-added': 'yes' });
      res.end('hello');
    },
    changed: (res) => {
      res.writeHead(200, { ...fields, etag: '"other"' });
      res.end('hello');
    },
    setHeader: (res) => {
      res.setHeader('x-set', 'yes');
      res.writeHead(200, { ...fields });
      res.end('hello');
    },
  };

  /** The bytes two servers write for `request` (the Date lines dropped): Node's own, and with the block offered. */
  async function both(answer: Answer, request: string): Promise<[string, string]> {
    const out: string[] = [];
    for (const Response of [ServerResponse, GatewayResponse]) {
      const s = createServer({ ServerResponse: Response }, (req, res) => {
        offerPrebuilt(res, prebuilt);
        answer(res, req.method === 'HEAD');
      });
      const name = uniqueName('prebuilt');
      await listenAbstract(s, name);
      const r = await rawRequest(name, request);
      await new Promise((resolve) => s.close(resolve));
      out.push(r.raw.toString('latin1').replace(/^Date: .*\r\n/gm, ''));
    }
    return [out[0]!, out[1]!];
  }

  it('the same bytes as Node writes, keep-alive, pipelining, HEAD and HTTP/1.0 included; the block only for the very fields it was made of', async () => {
    const pipelined =
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const before = prebuiltStats.used;
    const [node, gateway] = await both(answers.same!, pipelined);
    expect(gateway).toBe(node);
    expect(node.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
    expect(node).toContain('etag: "1-2-400-3"\r\nx-nullgate-mode: 0644\r\n');
    expect(prebuiltStats.used).toBe(before + 3);
    const [node10, gateway10] = await both(answers.same!, 'GET /a HTTP/1.0\r\n\r\n');
    expect(gateway10).toBe(node10);
    expect(prebuiltStats.used).toBe(before + 4);
    for (const other of ['added', 'changed', 'setHeader']) {
      const [n, g] = await both(answers[other]!, get('/x'));
      expect(g, other).toBe(n);
      expect(n, other).toMatch(/x-added: yes|etag: "other"|x-set: yes/);
    }
    expect(prebuiltStats.used).toBe(before + 4);
  });

  it('a field Node would refuse is refused when the block is made', () => {
    expect(() => new PrebuiltFields({ 'bad name': 'x', 'content-length': '1' })).toThrow();
    expect(() => new PrebuiltFields({ etag: 'a\r\nb', 'content-length': '1' })).toThrow();
    expect(() => new PrebuiltFields({ etag: 'x' })).toThrow();
  });
});

describe("Fastify's validator mark", () => {
  it('markDefaultValidator: a buildValidator option no longer counts as a custom compiler', async () => {
    const { default: Fastify } = await import('fastify');
    // Fastify's own default, given as an option (as gateway/app.ts gives a lazy one).
    const buildValidator = (requireFromFastify('@fastify/ajv-compiler') as () => ValidatorFactory)();
    const app = Fastify({ schemaController: { compilersFactory: { buildValidator } } });
    const key = Object.getOwnPropertySymbols(app).find((s) => s.description === 'fastify.schemaController')!;
    const controller = (app as unknown as Record<symbol, { isCustomValidatorCompiler: boolean }>)[key]!;
    expect(controller.isCustomValidatorCompiler).toBe(true);
    expect(markDefaultValidator(app)).toBe(true);
    expect(controller.isCustomValidatorCompiler).toBe(false);
    expect(markDefaultValidator({})).toBe(false);
    await app.close();
  });
});

describe("Fastify's nested package", () => {
  it('requireFromFastify: @fastify/fast-json-stringify-compiler resolves and has SerializerSelector', () => {
    const compiler = requireFromFastify('@fastify/fast-json-stringify-compiler') as {
      SerializerSelector?: unknown;
    };
    expect(typeof compiler.SerializerSelector).toBe('function');
  });
});

describe("undici's lib/* files that client/undici-core.ts imports", () => {
  it('exist and export what the index does: Agent, Dispatcher and the request API', async () => {
    const { default: agent } = await import('undici/lib/dispatcher/agent.js');
    const { default: dispatcher } = await import('undici/lib/dispatcher/dispatcher.js');
    const { default: api } = await import('undici/lib/api/index.js');
    expect(agent).toBe(undici.Agent);
    expect(dispatcher).toBe(undici.Dispatcher);
    for (const name of ['request', 'stream', 'pipeline', 'upgrade', 'connect'] as const) {
      expect(typeof api[name], name).toBe('function');
      expect(dispatcher.prototype[name], name).toBe(api[name]);
    }
    const { Agent } = await import('../../client/undici-core.js');
    expect(Agent).toBe(undici.Agent);
  });
});
