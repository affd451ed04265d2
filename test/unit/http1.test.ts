/**
 * client/http1.ts, the HTTP/1.1 the blocking transport reads by itself: request heads, response
 * heads, body framing (RFC 9112 §6.3) and chunked decoding, as tables, including what a lenient
 * parser would let through (obs-fold, bare LF, whitespace before a colon, conflicting lengths).
 */
import { describe, expect, it } from 'vitest';
import {
  ChunkedDecoder,
  MAX_HEAD_BYTES,
  framingOf,
  parseResponseHead,
  requestHead,
} from '../../client/http1.js';
import { headersOf } from '../../client/transport-shapes.js';

const head = (text: string) => {
  const buf = Buffer.from(text, 'latin1');
  return parseResponseHead(buf, buf.length);
};

describe('requestHead', () => {
  it('writes the request line, host, connection: close, the headers and a content-length for a body', () => {
    expect(requestHead('GET', '/files/a%20b', { range: 'bytes=0-1' }, undefined).toString('latin1')).toBe(
      'GET /files/a%20b HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nrange: bytes=0-1\r\n\r\n',
    );
    expect(requestHead('PUT', '/files/x', { 'x-a': ['1', '2'] }, 3).toString('latin1')).toBe(
      'PUT /files/x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 3\r\n\r\n',
    );
    // The caller's own length wins; its host and connection do not (one connection per request).
    expect(
      requestHead('PUT', '/x', { 'Content-Length': '3', Host: 'h', Connection: 'keep-alive' }, 3).toString(
        'latin1',
      ),
    ).toBe('PUT /x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nContent-Length: 3\r\n\r\n');
  });

  it.each([
    ['a method that is no token', 'G T', '/x', {}, 'ERR_INVALID_HTTP_TOKEN'],
    ['a space in the target', 'GET', '/a b', {}, 'ERR_UNESCAPED_CHARACTERS'],
    ['a CR in the target', 'GET', '/a\rb', {}, 'ERR_UNESCAPED_CHARACTERS'],
    ['a target not in origin form', 'GET', 'http://x/', {}, 'ERR_UNESCAPED_CHARACTERS'],
    ['a header name with a colon', 'GET', '/x', { 'a:b': '1' }, 'ERR_INVALID_HTTP_TOKEN'],
    ['a header value with CRLF', 'GET', '/x', { a: '1\r\nx-injected: 1' }, 'ERR_INVALID_CHAR'],
    ['a header value with NUL', 'GET', '/x', { a: '1\0' }, 'ERR_INVALID_CHAR'],
  ] as const)('refuses %s', (_what, method, target, headers, code) => {
    expect(() => requestHead(method, target, headers, undefined)).toThrow(expect.objectContaining({ code }));
  });
});

describe('parseResponseHead', () => {
  it('reads the status, the headers as sent, and where the body starts', () => {
    const text = 'HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nX-A:  1 \r\nx-a: 2\r\n\r\nhello';
    const parsed = head(text)!;
    expect(parsed).toEqual({
      statusCode: 206,
      rawHeaders: ['Content-Length', '5', 'X-A', '1', 'x-a', '2'],
      size: text.length - 5,
    });
    expect(headersOf(parsed.rawHeaders)).toEqual({ 'content-length': '5', 'x-a': ['1', '2'] });
  });

  it.each([
    ['no reason phrase', 'HTTP/1.1 204\r\n\r\n', 204],
    ['an empty reason phrase', 'HTTP/1.1 200 \r\n\r\n', 200],
    ['HTTP/1.0', 'HTTP/1.0 404 Not Found\r\n\r\n', 404],
    ['an empty header value', 'HTTP/1.1 200 OK\r\nx-empty:\r\n\r\n', 200],
  ])('takes %s', (_what, text, status) => {
    expect(head(text)?.statusCode).toBe(status);
  });

  it('waits for the empty line', () => {
    expect(head('HTTP/1.1 200 OK\r\ncontent-length: 1\r\n')).toBeUndefined();
    expect(head('')).toBeUndefined();
  });

  it.each([
    ['another protocol', 'HTTP/2 200\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['a two-digit status', 'HTTP/1.1 20 OK\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['garbage', 'hello\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['whitespace before the colon', 'HTTP/1.1 200 OK\r\nx-a : 1\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['no colon', 'HTTP/1.1 200 OK\r\nx-a\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['a bare LF in a line', 'HTTP/1.1 200 OK\r\nx-a: 1\nx-b: 2\r\n\r\n', 'HPE_LF_EXPECTED'],
    ['a bare CR in a value', 'HTTP/1.1 200 OK\r\nx-a: 1\rx\r\n\r\n', 'HPE_LF_EXPECTED'],
    ['a NUL in a value', 'HTTP/1.1 200 OK\r\nx-a: 1\0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ])('refuses %s', (_what, text, code) => {
    expect(() => head(text)).toThrow(expect.objectContaining({ name: 'HTTPParserError', code }));
  });

  it(`refuses a head longer than ${MAX_HEAD_BYTES} bytes, complete or not`, () => {
    const long = `HTTP/1.1 200 OK\r\nx-a: ${'a'.repeat(MAX_HEAD_BYTES)}`;
    expect(() => head(long)).toThrow(expect.objectContaining({ code: 'HPE_HEADER_OVERFLOW' }));
    expect(() => head(`${long}\r\n\r\n`)).toThrow(expect.objectContaining({ code: 'HPE_HEADER_OVERFLOW' }));
  });
});

describe('framingOf', () => {
  it.each([
    ['HEAD', 'HEAD', 200, { 'content-length': '5' }, { kind: 'none' }],
    ['204', 'GET', 204, {}, { kind: 'none' }],
    ['304', 'GET', 304, { 'content-length': '5' }, { kind: 'none' }],
    ['Content-Length: 0', 'GET', 200, { 'content-length': '0' }, { kind: 'none' }],
    ['a length', 'GET', 200, { 'content-length': '5' }, { kind: 'length', length: 5 }],
    ['the same length twice', 'GET', 200, { 'content-length': ['5', '5'] }, { kind: 'length', length: 5 }],
    ['a length listed twice', 'GET', 200, { 'content-length': '5, 5' }, { kind: 'length', length: 5 }],
    ['chunked', 'GET', 200, { 'transfer-encoding': 'chunked' }, { kind: 'chunked' }],
    ['gzip, chunked', 'GET', 200, { 'transfer-encoding': 'gzip, Chunked' }, { kind: 'chunked' }],
    [
      'chunked over a length',
      'GET',
      200,
      { 'transfer-encoding': 'chunked', 'content-length': '3' },
      { kind: 'chunked' },
    ],
    ['a coding not ending in chunked', 'GET', 200, { 'transfer-encoding': 'gzip' }, { kind: 'close' }],
    ['neither', 'GET', 200, {}, { kind: 'close' }],
  ] as const)('%s', (_what, method, status, headers, framing) => {
    expect(framingOf(method, status, headers)).toEqual(framing);
  });

  it.each([
    ['two lengths', { 'content-length': ['5', '6'] }],
    ['a list of two lengths', { 'content-length': '5, 6' }],
    ['a negative length', { 'content-length': '-1' }],
    ['a length with a sign', { 'content-length': '+5' }],
    ['a length too large', { 'content-length': '9999999999999999' }],
    ['an empty length', { 'content-length': '' }],
  ])('refuses %s', (_what, headers) => {
    expect(() => framingOf('GET', 200, headers)).toThrow(
      expect.objectContaining({ code: 'HPE_INVALID_CONTENT_LENGTH' }),
    );
  });
});

describe('ChunkedDecoder', () => {
  const decodeAll = (wire: string, step: number): { body: string; done: boolean } => {
    const decoder = new ChunkedDecoder();
    const bytes = Buffer.from(wire, 'latin1');
    const parts: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += step) parts.push(...decoder.push(bytes.subarray(i, i + step)));
    return { body: Buffer.concat(parts).toString('latin1'), done: decoder.done };
  };
  const wire = '5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n';

  it.each([1, 2, 3, 7, 1000])('decodes the same, fed %i bytes at a time', (step) => {
    expect(decodeAll(wire, step)).toEqual({ body: 'hello 0123456789', done: true });
  });

  it('is not done before the last chunk and the trailer section', () => {
    expect(decodeAll('5\r\nhello\r\n', 4)).toEqual({ body: 'hello', done: false });
    expect(decodeAll('5\r\nhello\r\n0\r\n', 4)).toEqual({ body: 'hello', done: false });
    expect(decodeAll('0\r\n\r\n', 1)).toEqual({ body: '', done: true });
  });

  it('ignores what comes after the end', () => {
    expect(decodeAll('0\r\n\r\nHTTP/1.1 200 OK\r\n', 100)).toEqual({ body: '', done: true });
  });

  it.each([
    ['a size that is not hex', 'x\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['an empty size', '\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['a negative size', '-1\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['a size too large', `${'f'.repeat(14)}\r\n`, 'HPE_INVALID_CHUNK_SIZE'],
    ['a size line ended by LF alone', '5\nhello\r\n', 'HPE_LF_EXPECTED'],
    ['data longer than its size', '2\r\nabc\r\n', 'HPE_STRICT'],
    ['a size line without end', `1${' '.repeat(5000)}`, 'HPE_INVALID_CHUNK_SIZE'],
  ])('refuses %s', (_what, text, code) => {
    expect(() => decodeAll(text, 1)).toThrow(expect.objectContaining({ code }));
  });
});
