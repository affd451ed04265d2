/**
 * Bytes that are not (quite) HTTP, sent to the real server over its abstract socket: whatever
 * arrives, the answer is a 4xx in the contract's JSON shape or a closed connection, never a
 * crash, a 5xx or a connection held open; and the server is as it was afterwards.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  expectErrorShape,
  expectRecovered,
  expectRefusedOrClosed,
  type HostileServer,
  KiB,
  MiB,
  sendHostile,
  startHostile,
} from './harness.js';

/** Well under the 10 s headers timeout: a refusal must be immediate, not a timeout. */
const PROMPT_MS = 3000;

describe('hostile bytes on the wire', () => {
  let server: HostileServer;
  beforeAll(async () => {
    server = await startHostile('parser', (dir) => writeFileSync(join(dir, 'a.txt'), 'hello\n'));
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    await expectRecovered(server);
  });

  it('garbage bytes are refused or dropped', async () => {
    const fixed: [string, Buffer][] = [
      ['NUL bytes', Buffer.alloc(64)],
      ['bare CRLFs', Buffer.from('\r\n\r\n\r\n\r\n')],
      ['a TLS ClientHello', Buffer.from('1603010200010001fc0303', 'hex')],
      ['the HTTP/2 preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
      [
        'a binary request line',
        Buffer.concat([Buffer.from('GET /'), randomBytes(32), Buffer.from(' HTTP/1.1\r\n\r\n')]),
      ],
      ['a bad version', Buffer.from('GET / HTTP/9.9\r\nHost: x\r\n\r\n')],
      ['a header without a colon', Buffer.from('GET /health HTTP/1.1\r\nHost x\r\n\r\n')],
      ['a bare LF in a header', Buffer.from('GET /health HTTP/1.1\r\nHost: a\nb\r\n\r\n')],
      ['space before the colon', Buffer.from('GET /health HTTP/1.1\r\nHost : x\r\n\r\n')],
      ['a NUL in a header value', Buffer.from('GET /health HTTP/1.1\r\nX-A: a\0b\r\n\r\n')],
      ['an obs-fold header', Buffer.from('GET /health HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n')],
      ['a bad Content-Length', Buffer.from('POST /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n')],
      [
        'two Content-Lengths',
        Buffer.from('POST /health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'),
      ],
      [
        'CL and TE together (smuggling)',
        Buffer.from(
          'POST /health HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        ),
      ],
      [
        'a bad chunk size',
        Buffer.from('POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n'),
      ],
      ['an unknown transfer coding', Buffer.from('POST /health HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n')],
    ];
    for (const [label, bytes] of fixed) {
      const res = await sendHostile(server.name, bytes, PROMPT_MS);
      expect(() => expectRefusedOrClosed(res), label).not.toThrow();
    }
    // llhttp reads an HTTP/0.9-style line as a request for / (service info): fine, not a crash.
    const old = await sendHostile(server.name, 'GET /\r\n\r\n', PROMPT_MS);
    if (old.status !== 200) expectRefusedOrClosed(old);
    // Random noise, 40 rounds of up to 8 KiB each.
    for (let i = 0; i < 40; i++) {
      const noise = randomBytes(1 + Math.floor(Math.random() * 8 * KiB));
      const res = await sendHostile(server.name, noise, PROMPT_MS);
      expect(() => expectRefusedOrClosed(res), noise.subarray(0, 16).toString('hex')).not.toThrow();
    }
  }, 60_000);

  it('garbage pipelined after a good request does not corrupt the good response', async () => {
    const res = await sendHostile(
      server.name,
      'GET /files/a.txt HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02 garbage \xff\r\n\r\n',
      PROMPT_MS,
    );
    // The first response is whole; whatever follows it is a separate (4xx) answer or nothing.
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe('6');
    expect(res.body.subarray(0, 6).toString()).toBe('hello\n');
    const rest = res.body.subarray(6);
    if (rest.length > 0) expect(rest.subarray(0, 9).toString('latin1')).toBe('HTTP/1.1 ');
  }, 10_000);

  it('truncated requests are answered 400 or closed at once when the client half-closes', async () => {
    const cuts = [
      'G',
      'GET',
      'GET /health',
      'GET /health HTTP/1.1',
      'GET /health HTTP/1.1\r\n',
      'GET /health HTTP/1.1\r\nHost: x',
      'GET /health HTTP/1.1\r\nHost: x\r\n',
      'GET /health HTTP/1.1\r\nHost: x\r\n\r',
      'POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc',
      'POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc',
    ];
    for (const cut of cuts) {
      const res = await sendHostile(server.name, cut, PROMPT_MS);
      if (res.raw.length > 0 && res.status !== 404) {
        expect(() => expectRefusedOrClosed(res), JSON.stringify(cut)).not.toThrow();
      }
    }
  }, 30_000);

  it('a 1 MiB header line is 431 in the JSON shape', async () => {
    const res = await sendHostile(
      server.name,
      `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(MiB)}\r\n\r\n`,
      PROMPT_MS,
    );
    expectErrorShape(res, 431);
    expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'NG_ERR_HEADERS_TOO_LARGE' });
  }, 10_000);

  it('a 1 MiB request line (URL) is 431 too', async () => {
    const res = await sendHostile(
      server.name,
      `GET /files/${'b'.repeat(MiB)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      PROMPT_MS,
    );
    expectErrorShape(res);
    expect([414, 431]).toContain(res.status);
  }, 10_000);

  it('10,000 headers are 431 in the JSON shape', async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
    const res = await sendHostile(server.name, `GET /health HTTP/1.1\r\nHost: x\r\n${many}\r\n`, PROMPT_MS);
    expectErrorShape(res, 431);
  }, 10_000);

  it('1,000 header fields are served; 3,000 tiny ones under the size limit are 431, on every Node', async () => {
    // "a:\r\n" is 4 bytes: 3,000 of them fit in 16 KiB. Node 20 would keep the first ones and
    // drop the rest, Node 22+ refuses them: nullgate refuses them on both (MAX_HEADER_FIELDS).
    const fields = (n: number) => 'a:\r\n'.repeat(n);
    const ok = await sendHostile(
      server.name,
      `GET /health HTTP/1.1\r\nHost: x\r\n${fields(998)}Connection: close\r\n\r\n`,
      PROMPT_MS,
    );
    expect(ok.status).toBe(200);
    for (const n of [999, 3000]) {
      const res = await sendHostile(
        server.name,
        `GET /health HTTP/1.1\r\nHost: x\r\n${fields(n)}Connection: close\r\n\r\n`,
        PROMPT_MS,
      );
      expect(res.status).toBe(431);
      expect(JSON.parse(res.body.toString())).toMatchObject({
        statusCode: 431,
        code: 'NG_ERR_HEADERS_TOO_LARGE',
      });
    }
  }, 10_000);

  it('invalid and unknown methods get a 4xx in the JSON shape', async () => {
    const methods = [
      'FOO',
      'get',
      'G\x00T',
      'GET\tX',
      'BREW',
      'PROPFIND',
      'TRACE',
      'CONNECT',
      'PATCH',
      'M'.repeat(4 * KiB),
      '',
    ];
    for (const method of methods) {
      const res = await sendHostile(
        server.name,
        `${method} /files/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        PROMPT_MS,
      );
      const label = JSON.stringify(method.slice(0, 16));
      expect(() => expectRefusedOrClosed(res), label).not.toThrow();
      expect(res.raw.length, label).toBeGreaterThan(0);
    }
    // CONNECT (Node hands the socket over for a tunnel; nullgate is no proxy): 405 with the
    // target's Allow, for a path of ours and for an authority-form target (a proxy client's).
    const connects: [string, string][] = [
      ['/files/a.txt', 'GET, HEAD, PUT, DELETE, MKCOL, MOVE, OPTIONS'],
      ['/archive/', 'GET, HEAD, POST, PUT'],
      ['example.com:443', 'GET, HEAD'],
    ];
    for (const [target, allow] of connects) {
      const res = await sendHostile(
        server.name,
        `CONNECT ${target} HTTP/1.1\r\nHost: example.com:443\r\n\r\nbytes of a tunnel`,
        PROMPT_MS,
      );
      expectErrorShape(res, 405);
      expect(JSON.parse(res.body.toString()), target).toMatchObject({ code: 'NG_ERR_METHOD_NOT_ALLOWED' });
      expect(res.headers.allow, target).toBe(allow);
    }
    // An absolute-form and an asterisk-form target.
    for (const target of ['http://evil.example/files/a.txt', '*']) {
      const r = await sendHostile(
        server.name,
        `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        PROMPT_MS,
      );
      if (r.status !== 200) expectRefusedOrClosed(r);
    }
  }, 30_000);

  it('an Expect other than 100-continue is 417 in the JSON shape (RFC 9110 §10.1.1); HTTP/1.0 ignores it', async () => {
    for (const expectation of ['999-x', '100-continue, 999-x', '']) {
      const res = await sendHostile(
        server.name,
        `GET /files/a.txt HTTP/1.1\r\nHost: x\r\nExpect: ${expectation}\r\n\r\n`,
        PROMPT_MS,
      );
      expectErrorShape(res, 417);
      expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'NG_ERR_EXPECTATION_FAILED' });
    }
    // With a body the server did not read: answered, then closed (not read as a next request).
    const withBody = await sendHostile(
      server.name,
      'PUT /files/b.txt HTTP/1.1\r\nHost: x\r\nExpect: 999-x\r\nContent-Length: 5\r\n\r\nGET /',
      PROMPT_MS,
    );
    expectErrorShape(withBody, 417);
    expect(withBody.headers.connection).toBe('close');
    const old = await sendHostile(
      server.name,
      'GET /files/a.txt HTTP/1.0\r\nExpect: 999-x\r\n\r\n',
      PROMPT_MS,
    );
    expect(old.status).toBe(200);
    expect(old.body.toString()).toBe('hello\n');
  });

  it('a transfer coding other than chunked is 501 in the JSON shape (RFC 9112 §6.1)', async () => {
    for (const coding of ['gzip, chunked', 'deflate,chunked', 'chunked, chunked']) {
      const res = await sendHostile(
        server.name,
        `PUT /files/b.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${coding}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
        PROMPT_MS,
      );
      expectErrorShape(res, coding === 'chunked, chunked' ? 400 : 501);
      expect(res.headers.connection).toBe('close');
    }
  });
});
