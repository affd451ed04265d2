/**
 * Well-formed HTTP carrying hostile values: malformed Range and conditional headers, percent-
 * encoding edge cases, and clients that half-close after sending. The server answers each one
 * normally or with a 4xx in the contract's shape, never a 5xx, a crash or a hang.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseResponse, type RawResponse } from '../helpers/sockets.js';
import {
  expectErrorShape,
  expectRecovered,
  type HostileServer,
  MiB,
  sendHostile,
  startHostile,
} from './harness.js';

const PROMPT_MS = 3000;
const TEXT = 'hello, hostile world\n';
const big = randomBytes(4 * MiB);
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function get(
  server: HostileServer,
  path: string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return sendHostile(
    server.name,
    `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}Connection: close\r\n\r\n`,
    PROMPT_MS,
  );
}

/** What any answer to a GET of a.txt must be: the file, a valid part of it, or a shaped error. */
function expectSane(res: RawResponse, label: string): void {
  expect(res.status, label).toBeGreaterThanOrEqual(200);
  expect(res.status, label).toBeLessThan(500);
  if (res.status === 200) expect(res.body.toString(), label).toBe(TEXT);
  else if (res.status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers['content-range'] ?? '');
    if (m) {
      expect(Number(m[3]), label).toBe(TEXT.length);
      expect(res.body.toString(), label).toBe(TEXT.slice(Number(m[1]), Number(m[2]) + 1));
    } else {
      expect(res.headers['content-type'], label).toMatch(/^multipart\/byteranges; boundary=/);
    }
  } else if (res.status === 304) expect(res.body.length, label).toBe(0);
  else expectErrorShape(res);
  if (res.status === 416) expect(res.headers['content-range'], label).toBe(`bytes */${TEXT.length}`);
}

describe('hostile header values and URLs', () => {
  let server: HostileServer;
  let etag: string;
  beforeAll(async () => {
    server = await startHostile('requests', (dir) => {
      writeFileSync(join(dir, 'a.txt'), TEXT);
      writeFileSync(join(dir, 'big.bin'), big);
    });
    etag = (await get(server, '/files/a.txt')).headers.etag!;
    expect(etag).toMatch(/^"/);
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    await expectRecovered(server);
  });

  it('malformed Range headers are served whole, as a valid part, or 416 in the JSON shape', async () => {
    const ranges = [
      '',
      'bytes',
      'bytes=',
      'bytes=-',
      'bytes=--1',
      'bytes=5-1',
      'bytes=abc',
      'bytes=0-0,',
      'bytes=,',
      'bytes=-0',
      'bytes=0x1-0x5',
      'bytes=1e3-',
      'bytes= 0 - 1',
      'bytes=0-1;0-2',
      'BYTES=0-1',
      'items=0-1',
      'bytes=99999999999999999999-',
      'bytes=0-18446744073709551616',
      'bytes=-99999999999999999999',
      'bytes=9007199254740993-9007199254740994',
      'bytes=1000-2000',
      `bytes=${Array.from({ length: 1500 }, (_, i) => `${i % 20}-${i % 20}`).join(',')}`,
      `bytes=${'0-0,'.repeat(3000)}0-0`,
      'bytes=\u00ff-1',
    ];
    for (const range of ranges) {
      const res = await get(server, '/files/a.txt', { Range: range });
      expectSane(res, `Range: ${range.slice(0, 40)}`);
    }
  }, 30_000);

  it('many overlapping ranges of a 4 MiB file do not multiply the response', async () => {
    // 200 ranges, each the whole file: a naive server would send 800 MiB.
    const res = await sendHostile(
      server.name,
      `GET /files/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=${'0-,'.repeat(199)}0-\r\nConnection: close\r\n\r\n`,
      10_000,
    );
    expect(res.status).toBeLessThan(500);
    expect(res.raw.length).toBeLessThan(16 * MiB);
    if (res.status >= 400) expectErrorShape(res);
  }, 15_000);

  it('malformed conditional headers are ignored or answered 304/412 (never a 5xx)', async () => {
    const cases: [string, string][] = [
      ['If-None-Match', ''],
      ['If-None-Match', '"'],
      ['If-None-Match', 'W/'],
      ['If-None-Match', 'W/"'],
      ['If-None-Match', 'garbage'],
      ['If-None-Match', ',,,,'],
      ['If-None-Match', '"a", "b'],
      ['If-None-Match', Array.from({ length: 1000 }, (_, i) => `"e${i}"`).join(', ')],
      ['If-Match', ''],
      ['If-Match', '"'],
      ['If-Match', 'garbage'],
      ['If-Match', 'W/"x"'],
      ['If-Match', '**'],
      ['If-Modified-Since', 'garbage'],
      ['If-Modified-Since', '-1'],
      ['If-Modified-Since', 'Thu, 01 Jan 1970 00:00:00 GMT'],
      ['If-Modified-Since', 'Fri, 31 Dec 275759 23:59:59 GMT'],
      ['If-Modified-Since', '99999999999999999999'],
      ['If-Unmodified-Since', 'garbage'],
      ['If-Unmodified-Since', 'Thu, 01 Jan 1970 00:00:00 GMT'],
      ['If-Unmodified-Since', '\u00ff\u00fe'],
      ['If-Range', 'garbage'],
      ['If-Range', 'W/"x"'],
      ['If-Range', '"'],
      ['If-Range', 'Thu, 01 Jan 1970 00:00:00 GMT'],
    ];
    for (const [name, value] of cases) {
      const headers: Record<string, string> = { [name]: value };
      if (name === 'If-Range') headers.Range = 'bytes=0-4';
      const res = await get(server, '/files/a.txt', headers);
      expectSane(res, `${name}: ${value.slice(0, 40)}`);
    }
    // And the well-formed ones still work.
    expect((await get(server, '/files/a.txt', { 'If-None-Match': etag })).status).toBe(304);
    expectErrorShape(await get(server, '/files/a.txt', { 'If-Match': '"nope"' }), 412);
  }, 30_000);

  it('a hostile Want-Repr-Digest is ignored or refused in the JSON shape', async () => {
    for (const value of [
      '',
      'sha-256',
      'sha-256=',
      'sha-256=abc',
      'md5=1',
      'sha-256=10, sha-256=10',
      ','.repeat(4000),
    ]) {
      const res = await get(server, '/files/a.txt', { 'Want-Repr-Digest': value });
      expectSane(res, `Want-Repr-Digest: ${value.slice(0, 20)}`);
    }
  }, 15_000);

  it('percent-encoding edge cases are 400 in the JSON shape (or a plain 404), never a 5xx or a leak', async () => {
    const bad = ['%', '%%', '%zz', '%00', 'a.txt%00', 'a.txt%00.jpg', '%2', 'a%2'];
    for (const path of bad) {
      const res = await get(server, `/files/${path}`);
      expectErrorShape(res, 400);
    }
    const refused = [
      '%2e%2e/%2e%2e/etc/passwd',
      '..%2f..%2f..%2fetc%2fpasswd',
      '%2fetc%2fpasswd',
      '%252e%252e/%252e%252e/etc/passwd',
      '%5c..%5c..%5cetc%5cpasswd',
      '%u002e%u002e/etc/passwd',
      '.%2e/.%2e/.%2e/etc/passwd',
      '%ef%bc%8e%ef%bc%8e/etc/passwd',
      // Bytes that are not UTF-8 name files by those bytes (an overlong "." is not a "."): 404.
      '%c0%ae',
      '%c0%ae%c0%ae/etc/passwd',
      '%ff',
      '%e0%80%ae',
      '%f8%80%80%80%ae',
    ];
    for (const path of refused) {
      const res = await get(server, `/files/${path}`);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBeLessThan(500);
      expectErrorShape(res);
      expect(res.body.toString(), path).not.toContain('root:');
    }
    // Escapes that decode to ordinary names still work.
    expect((await get(server, '/files/a%2etxt')).body.toString()).toBe(TEXT);
    expect((await get(server, '/files/%61.txt')).body.toString()).toBe(TEXT);
    // A query string with bad escapes must not break the file route.
    const q = await get(server, '/files/a.txt?%zz=%&x=%00');
    expect(q.status).toBeLessThan(500);
    if (q.status !== 200) expectErrorShape(q);
  }, 30_000);

  it('a client that half-closes after sending still gets its whole response', async () => {
    // socket.end(request): the request goes out, then shutdown(SHUT_WR); no Connection: close.
    const small = await sendHostile(server.name, 'GET /files/a.txt HTTP/1.1\r\nHost: x\r\n\r\n', PROMPT_MS);
    expect(small.status).toBe(200);
    expect(small.body.toString()).toBe(TEXT);

    const whole = await sendHostile(server.name, 'GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n', 10_000);
    expect(whole.status).toBe(200);
    expect(whole.body.length).toBe(big.length);
    expect(sha256(whole.body)).toBe(sha256(big));

    const head = await sendHostile(server.name, 'HEAD /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n', PROMPT_MS);
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(big.length));
    expect(head.body.length).toBe(0);

    // Two pipelined requests, then the half-close: both are answered, in order.
    const two = await sendHostile(
      server.name,
      'GET /files/a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n',
      PROMPT_MS,
    );
    expect(two.status).toBe(200);
    const second = parseResponse(two.body.subarray(TEXT.length));
    expect(two.body.subarray(0, TEXT.length).toString()).toBe(TEXT);
    expect(second.status).toBe(200);
    expect(JSON.parse(second.body.toString())).toEqual({ status: 'ok' });

    // A 404 answer, too.
    expectErrorShape(
      await sendHostile(server.name, 'GET /files/nope HTTP/1.1\r\nHost: x\r\n\r\n', PROMPT_MS),
      404,
    );
  }, 20_000);

  it('a Host-less HTTP/1.1 request is a 400 in the JSON shape; HTTP/1.0 needs no Host', async () => {
    expectErrorShape(await sendHostile(server.name, 'GET /health HTTP/1.1\r\n\r\n', PROMPT_MS), 400);
    const old = await sendHostile(server.name, 'GET /health HTTP/1.0\r\n\r\n', PROMPT_MS);
    expect(old.status).toBe(200);
  }, 10_000);
});
