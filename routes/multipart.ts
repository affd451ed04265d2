/**
 * multipart/byteranges bodies (RFC 9110 §14.6) laid out ahead of time, so the route knows the
 * exact Content-Length before it streams the first byte (a length lets curl show progress and
 * lets the client detect truncation, which chunked encoding would not).
 */
import { randomBytes } from 'node:crypto';
import { contentRange, type ByteRange } from './range.js';

export interface MultipartPart {
  /** Delimiter and part header fields, ending in the blank line; send, then the file bytes. */
  readonly header: Buffer;
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

export interface MultipartBody {
  readonly parts: readonly MultipartPart[];
  /** The close-delimiter, sent after the last part's bytes. */
  readonly closing: Buffer;
}

/**
 * A random boundary: 24 hex digits after a fixed prefix, well inside RFC 2046 §5.1.1's 70
 * characters and its bchars set, and random so it cannot plausibly occur in the file (§14.6
 * relies on the boundary not appearing in any part).
 */
export function createBoundary(): string {
  return `nullgate-${randomBytes(12).toString('hex')}`;
}

/** The response's Content-Type for a multipart 206 (RFC 9110 §14.6). */
export function multipartContentType(boundary: string): string {
  return `multipart/byteranges; boundary=${boundary}`;
}

/**
 * Lays out the parts: each part is `--boundary`, its Content-Type and Content-Range (§14.6 asks
 * for both), a blank line, then the bytes. Per RFC 2046 §5.1.1 the CRLF before a delimiter belongs
 * to the delimiter, so every part after the first, and the closing `--boundary--`, starts with one.
 */
export function multipartParts(
  ranges: readonly ByteRange[],
  size: number,
  contentType: string,
  boundary: string,
): MultipartBody {
  const parts = ranges.map(({ start, end }, i) => ({
    header: Buffer.from(
      `${i === 0 ? '' : '\r\n'}--${boundary}\r\n` +
        `Content-Type: ${contentType}\r\n` +
        `Content-Range: ${contentRange(start, end, size)}\r\n\r\n`,
      'latin1',
    ),
    start,
    end,
  }));
  return { parts, closing: Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1') };
}

/** The exact Content-Length of the body multipartParts laid out. */
export function multipartLength(body: MultipartBody): number {
  let length = body.closing.length;
  for (const part of body.parts) length += part.header.length + (part.end - part.start + 1);
  return length;
}
