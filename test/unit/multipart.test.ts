import { describe, expect, it } from 'vitest';
import type { ByteRange } from '../../routes/range.js';
import {
  createBoundary,
  multipartContentType,
  multipartLength,
  multipartParts,
  type MultipartBody,
} from '../../routes/multipart.js';

const FILE = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');

/** What the route will stream: header, file bytes, …, closing. */
function assemble(body: MultipartBody, file: Buffer): Buffer {
  const chunks: Buffer[] = [];
  for (const part of body.parts) chunks.push(part.header, file.subarray(part.start, part.end + 1));
  chunks.push(body.closing);
  return Buffer.concat(chunks);
}

describe('multipart/byteranges, RFC 9110 §14.6', () => {
  it('lays out the RFC 9110 §14.6 example shape exactly', () => {
    const body = multipartParts(
      [
        { start: 0, end: 3 },
        { start: 10, end: 11 },
      ],
      FILE.length,
      'text/plain; charset=utf-8',
      'THIS_STRING_SEPARATES',
    );
    expect(assemble(body, FILE).toString()).toBe(
      '--THIS_STRING_SEPARATES\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        'Content-Range: bytes 0-3/36\r\n' +
        '\r\n' +
        '0123' +
        '\r\n--THIS_STRING_SEPARATES\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        'Content-Range: bytes 10-11/36\r\n' +
        '\r\n' +
        'ab' +
        '\r\n--THIS_STRING_SEPARATES--\r\n',
    );
    expect(body.parts.map(({ start, end }) => [start, end])).toEqual([
      [0, 3],
      [10, 11],
    ]);
  });

  it.each<[string, ByteRange[]]>([
    [
      'two one-byte parts',
      [
        { start: 0, end: 0 },
        { start: 35, end: 35 },
      ],
    ],
    [
      'the whole file in two halves',
      [
        { start: 0, end: 17 },
        { start: 18, end: 35 },
      ],
    ],
    [
      'three parts out of order',
      [
        { start: 30, end: 35 },
        { start: 0, end: 4 },
        { start: 10, end: 19 },
      ],
    ],
    ['one part', [{ start: 5, end: 9 }]],
    ['no parts', []],
  ])('multipartLength equals the bytes streamed: %s', (_what, ranges) => {
    const body = multipartParts(ranges, FILE.length, 'application/octet-stream', createBoundary());
    expect(multipartLength(body)).toBe(assemble(body, FILE).length);
  });

  it.each<[number, number]>([
    [0, 9],
    [1_000_000, 4_999_999_999],
  ])('counts range bytes without reading them (%i-%i of a large file)', (start, end) => {
    const size = 10_000_000_000;
    const body = multipartParts([{ start, end }], size, 'video/mp4', 'b');
    const header = `--b\r\nContent-Type: video/mp4\r\nContent-Range: bytes ${start}-${end}/${size}\r\n\r\n`;
    expect(multipartLength(body)).toBe(header.length + (end - start + 1) + '\r\n--b--\r\n'.length);
  });

  it('createBoundary is random, short and made of RFC 2046 §5.1.1 bchars', () => {
    const a = createBoundary();
    const b = createBoundary();
    expect(a).not.toBe(b);
    expect(a).toMatch(/^[0-9A-Za-z'()+_,\-./:=?]{1,70}$/);
    expect(multipartContentType(a)).toBe(`multipart/byteranges; boundary=${a}`);
  });
});
