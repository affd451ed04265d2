/**
 * A connection cut mid-request closes lingering on a duplicate of its fd (routes/linger.ts
 * cutLingering: the 408 of a slow body, a bad chunk, the request timeout). Until that duplicate
 * closes, the connection is open: it counts against the connection limit, the server's close
 * waits for it within the grace, and the grace's end cuts it. Real sockets; the cut is made by a
 * route with an answer larger than the socket buffers and a linger of a minute, so a client that
 * does not read holds it open for as long as the test needs, with no timing involved.
 */
import { writeSync } from 'node:fs';
import { type Socket } from 'node:net';
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../gateway/app.js';
import { createGateway, type Gateway } from '../../gateway/gateway.js';
import { listenAbstract } from '../../gateway/listen.js';
import { socketFd } from '../../native/node-internals.js';
import { cutLingering } from '../../routes/linger.js';
import { settlesWithin } from '../helpers/bounds.js';
import { connectSocket, openFdCount, rawGet, uniqueName } from '../helpers/sockets.js';

/** Far more than a unix socket buffers: a client that does not read keeps it unsent. */
const ANSWER_BYTES = 8 * 1024 * 1024;
const BIG_ANSWER = `HTTP/1.1 200 OK\r\nContent-Length: ${ANSWER_BYTES}\r\n\r\n${'x'.repeat(ANSWER_BYTES)}`;
/** The cut's linger, far beyond any bound below: only the client or the server's close ends it. */
const LONG_LINGER_MS = 60_000;

/** Adds GET /cut, which cuts its connection lingering; `cuts` resolves at each cut. */
function addCutRoute(app: FastifyInstance): { next(): Promise<void> } {
  let signal: (() => void) | undefined;
  app.get('/cut', (request, reply) => {
    void reply.hijack();
    cutLingering(request.raw.socket, BIG_ANSWER, LONG_LINGER_MS);
    signal?.();
  });
  return {
    next: () =>
      new Promise<void>((resolve) => {
        signal = resolve;
      }),
  };
}

/** A client whose request is cut, and that reads nothing of the answer until told to. */
async function cutClient(address: string, cuts: { next(): Promise<void> }): Promise<Socket> {
  const socket = connectSocket(address);
  socket.on('error', () => undefined);
  const cut = cuts.next();
  socket.write('GET /cut HTTP/1.1\r\nHost: x\r\n\r\n');
  await settlesWithin(cut, 10_000, 'the request to be cut');
  return socket;
}

/** Resolves once nothing accepts on `address` any more (the listener is closed). */
async function listenerClosed(address: string): Promise<void> {
  for (;;) {
    try {
      connectSocket(address).destroy();
    } catch {
      return;
    }
    await sleep(20);
  }
}

describe('a connection cut mid-request is counted until its lingering close ends', () => {
  let app: FastifyInstance | undefined;
  let gateway: Gateway | undefined;
  const clients: Socket[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await app?.close();
    await gateway?.close();
    app = undefined;
    gateway = undefined;
  });

  it('it counts against maxConnections: a new connection is 429 until it really closes', async () => {
    app = buildApp({ logLevel: false });
    const cuts = addCutRoute(app);
    await app.ready();
    const address = uniqueName('linger-count');
    await listenAbstract(app.server, address, { maxConnections: 1 });
    expect((await rawGet(address, '/health')).status).toBe(200);
    const fds = openFdCount();
    const held = await cutClient(address, cuts);
    clients.push(held);
    // The request's socket is gone; the connection is not, and it is the one allowed.
    const refused = await rawGet(address, '/health');
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body.toString())).toMatchObject({ code: 'NG_ERR_TOO_MANY_REQUESTS' });
    // The client goes away: the lingering close ends (EPIPE), and with it the count.
    held.destroy();
    const served = async (): Promise<boolean> => {
      while ((await rawGet(address, '/health')).status !== 200) await sleep(20);
      return true;
    };
    expect(await settlesWithin(served(), 10_000, 'a connection to be served again')).toBe(true);
    expect(await settlesWithin(fdsBackTo(fds), 10_000, 'the fds to be released')).toBe(true);
  });

  it('close() waits for it within the grace: it ends when the client has read its answer', async () => {
    const address = uniqueName('linger-close');
    gateway = createGateway({ socket: address, logLevel: false, graceMs: LONG_LINGER_MS * 2 });
    const cuts = addCutRoute(gateway.app);
    await gateway.listen();
    const held = await cutClient(address, cuts);
    clients.push(held);
    const order: string[] = [];
    const closing = gateway.close().then(() => order.push('close() resolved'));
    await settlesWithin(listenerClosed(address), 10_000, 'the listener to close');
    for (let i = 0; i < 20; i++) await turn();
    expect(order).toEqual([]);
    // The client reads its whole answer and hangs up: the linger ends, and close() with it.
    let received = 0;
    held.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    const ended = new Promise((resolve) => held.once('end', resolve));
    await settlesWithin(ended, 20_000, 'the answer to be read whole');
    expect(received).toBe(BIG_ANSWER.length);
    order.push('client read its answer');
    held.end();
    await settlesWithin(closing, 10_000, 'close() to resolve');
    expect(order).toEqual(['client read its answer', 'close() resolved']);
    gateway = undefined;
  });

  it('the end of the grace cuts it: close() resolves and the client sees the close', async () => {
    const address = uniqueName('linger-grace');
    gateway = createGateway({ socket: address, logLevel: false, graceMs: 100 });
    const cuts = addCutRoute(gateway.app);
    await gateway.listen();
    const held = await cutClient(address, cuts);
    clients.push(held);
    await settlesWithin(gateway.close(), 10_000, 'close() to resolve');
    gateway = undefined;
    // Closed on the server's side by then: nothing reads what the client sends any more.
    let failure: NodeJS.ErrnoException | undefined;
    try {
      writeSync(socketFd(held), 'x');
    } catch (err) {
      failure = err as NodeJS.ErrnoException;
    }
    expect(failure?.code).toMatch(/^(EPIPE|ECONNRESET)$/);
    // The client reads what was sent before the cut, then the close.
    const closed = new Promise((resolve) => held.once('close', resolve));
    held.resume();
    await settlesWithin(closed, 10_000, 'the client to see the connection closed');
  });
});

/** Resolves true once this process holds no more fds than `count`. */
async function fdsBackTo(count: number): Promise<boolean> {
  while (openFdCount() > count) await sleep(50);
  return true;
}
