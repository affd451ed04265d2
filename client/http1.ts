/**
 * The HTTP/1.1 a client needs to read a response by itself (RFC 9112), for
 * client/blocking-transport.ts: the request head it sends, the response head it receives, how
 * the body is delimited, and chunked transfer coding. Pure: bytes in, values out; errors are
 * shaped as undici's HTTPParserError (name, `HPE_*` code of llhttp, the parser node and undici
 * both use), so a malformed answer reads the same on any transport. Strict where a lenient
 * parser has been a smuggling vector: no obs-fold, no bare LF, no whitespace before a colon,
 * one Content-Length value, Transfer-Encoding over Content-Length (§6.3).
 */
/** The largest response head read (node's --max-http-header-size and undici's default). */
export const MAX_HEAD_BYTES = 16 * 1024;

export function parserError(code: string, reason: string): Error {
  const err = new Error(`Response does not match the HTTP/1.1 protocol (${reason})`);
  err.name = 'HTTPParserError';
  return Object.assign(err, { code: `HPE_${code}` });
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value: visible ASCII, obs-text, space and tab (RFC 9110 §5.5); no CR, LF or NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REQUEST_TARGET = /^\/[\x21-\x7e]*$/;

/**
 * A request head, its bytes. `target` must be origin-form without spaces or controls, names
 * tokens, values free of CR, LF and NUL: what node:http refuses (ERR_UNESCAPED_CHARACTERS,
 * ERR_INVALID_HTTP_TOKEN, ERR_INVALID_CHAR) is refused here with a TypeError of the same code.
 * `Host` and `Connection: close` are added (one connection per request), and Content-Length
 * when `bodyLength` is given and the headers have none.
 */
export function requestHead(
  method: string,
  target: string,
  headers: Readonly<Record<string, string | readonly string[]>> | undefined,
  bodyLength: number | undefined,
): Buffer {
  if (!TOKEN.test(method))
    throw codedTypeError('ERR_INVALID_HTTP_TOKEN', `Method must be a valid HTTP token ["${method}"]`);
  if (!REQUEST_TARGET.test(target))
    throw codedTypeError('ERR_UNESCAPED_CHARACTERS', 'Request path contains unescaped characters');
  const lines = [`${method} ${target} HTTP/1.1`, 'host: localhost', 'connection: close'];
  let hasLength = false;
  for (const [name, given] of Object.entries(headers ?? {})) {
    if (!TOKEN.test(name))
      throw codedTypeError('ERR_INVALID_HTTP_TOKEN', `Header name must be a valid HTTP token ["${name}"]`);
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'connection') continue;
    if (lower === 'content-length') hasLength = true;
    for (const value of typeof given === 'string' ? [given] : given) {
      if (!FIELD_VALUE.test(value))
        throw codedTypeError('ERR_INVALID_CHAR', `Invalid character in header content ["${name}"]`);
      lines.push(`${name}: ${value}`);
    }
  }
  if (bodyLength !== undefined && !hasLength) lines.push(`content-length: ${bodyLength}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

function codedTypeError(code: string, message: string): TypeError {
  return Object.assign(new TypeError(message), { code });
}

export interface ResponseHead {
  readonly statusCode: number;
  /** Names as sent, each followed by its value (node's rawHeaders). */
  readonly rawHeaders: string[];
  /** Bytes of the head, its empty line included: the body starts there. */
  readonly size: number;
}

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [\t\x20-\x7e\x80-\xff]*)?$/;

/**
 * The response head at the start of `buf[0, end)`, or undefined while its empty line has not
 * arrived. Throws HPE_HEADER_OVERFLOW once MAX_HEAD_BYTES hold no complete head, and an
 * HTTPParserError for a malformed one.
 */
export function parseResponseHead(buf: Buffer, end: number): ResponseHead | undefined {
  const stop = buf.subarray(0, Math.min(end, MAX_HEAD_BYTES)).indexOf('\r\n\r\n', 0, 'latin1');
  if (stop === -1) {
    if (end >= MAX_HEAD_BYTES) throw parserError('HEADER_OVERFLOW', 'Header overflow');
    return undefined;
  }
  const text = buf.toString('latin1', 0, stop);
  const lines = text.split('\r\n');
  const status = STATUS_LINE.exec(lines[0]!);
  if (status === null) throw parserError('INVALID_CONSTANT', 'Expected HTTP/');
  const rawHeaders: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.includes('\n') || line.includes('\r'))
      throw parserError('LF_EXPECTED', 'Missing expected LF after header value');
    const colon = line.indexOf(':');
    const name = colon <= 0 ? '' : line.slice(0, colon);
    if (!TOKEN.test(name)) throw parserError('INVALID_HEADER_TOKEN', 'Invalid header token');
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw parserError('INVALID_HEADER_TOKEN', 'Invalid header value char');
    rawHeaders.push(name, value);
  }
  return { statusCode: Number(status[1]), rawHeaders, size: stop + 4 };
}

/** How a response's body ends (RFC 9112 §6.3). */
export type Framing =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  | { readonly kind: 'close' };

/** The framing of an answer to `method` with `statusCode` and `headers` (lower-cased names). */
export function framingOf(
  method: string,
  statusCode: number,
  headers: Readonly<Record<string, string | readonly string[] | undefined>>,
): Framing {
  if (method === 'HEAD' || statusCode === 204 || statusCode === 304 || statusCode < 200)
    return { kind: 'none' };
  const te = headers['transfer-encoding'];
  if (te !== undefined) {
    const codings = (typeof te === 'string' ? te : te.join(','))
      .split(',')
      .map((c) => c.trim().toLowerCase());
    // Chunked last: its chunks delimit the body. Anything else: the body ends with the connection.
    return codings.at(-1) === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  const cl = headers['content-length'];
  if (cl === undefined) return { kind: 'close' };
  const values = (typeof cl === 'string' ? cl : cl.join(',')).split(',').map((v) => v.trim());
  const first = values[0]!;
  if (!/^\d{1,15}$/.test(first) || values.some((v) => v !== first))
    throw parserError('INVALID_CONTENT_LENGTH', 'Invalid Content-Length');
  const length = Number(first);
  return length === 0 ? { kind: 'none' } : { kind: 'length', length };
}

/** The longest chunk-size line (size, extensions) or trailer line accepted. */
const MAX_LINE = 4096;

/**
 * Decodes chunked transfer coding (RFC 9112 §7.1) as bytes arrive: push() returns the body's
 * bytes among them (subarrays of the input), `done` turns true after the last chunk and its
 * trailer section (trailers are read and dropped). Bytes after the end are ignored.
 */
export class ChunkedDecoder {
  private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  private line = '';
  private left = 0;

  get done(): boolean {
    return this.state === 'done';
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.left, chunk.length - i);
        out.push(chunk.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = 'data-end';
        continue;
      }
      // A line: up to CRLF.
      const lf = chunk.indexOf(10, i);
      const upto = lf === -1 ? chunk.length : lf + 1;
      this.line += chunk.toString('latin1', i, upto);
      i = upto;
      if (this.line.length > MAX_LINE) throw parserError('INVALID_CHUNK_SIZE', 'Chunk size line too long');
      if (lf === -1) continue;
      if (!this.line.endsWith('\r\n')) throw parserError('LF_EXPECTED', 'Expected LF after chunk size');
      const line = this.line.slice(0, -2);
      this.line = '';
      this.endLine(line);
    }
    return out;
  }

  private endLine(line: string): void {
    switch (this.state) {
      case 'size': {
        const m = /^([0-9A-Fa-f]{1,13})[ \t]*(?:;.*)?$/.exec(line);
        if (m === null) throw parserError('INVALID_CHUNK_SIZE', 'Invalid character in chunk size');
        this.left = parseInt(m[1]!, 16);
        this.state = this.left === 0 ? 'trailer' : 'data';
        return;
      }
      case 'data-end':
        if (line !== '') throw parserError('STRICT', 'Expected CRLF after chunk');
        this.state = 'size';
        return;
      case 'trailer':
        if (line === '') this.state = 'done';
        return;
      default:
        return;
    }
  }
}
