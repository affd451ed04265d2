/**
 * What the CLI's two transports (client/blocking-transport.ts, client/http-transport.ts) share,
 * so that a user cannot tell which one a verb ran on: undici's error shapes and timeouts, its
 * header shape, how an unread body is let go of, and when a body goes to a file natively.
 * Imports nothing: the blocking transport must not load node:http or node:net.
 */
import type { BodyReceipt, ResponseHeaders } from './transport.js';
import type { NativeOutcome } from './native-receive.js';

/** undici's default headersTimeout and bodyTimeout: how long a connection may stay silent. */
export const IDLE_TIMEOUT_MS = 300_000;
/** A rest this small is read to its end by dump(); a larger one closes the connection (undici's limit). */
export const DUMP_LIMIT = 128 * 1024;
/**
 * Bodies this large or larger are moved into a file natively (client/native-receive.ts) when a
 * download asks (ResponseBody.receiveInto): below it, loading that module and starting a thread
 * cost more than the copies they save, and a small `get` loads nothing it does not need.
 */
export const NATIVE_BODY_MIN_BYTES = 1024 * 1024;

/** What dumpBody() needs of a body: a Readable's events and state. */
interface DumpableBody {
  readonly readableEnded: boolean;
  readonly destroyed: boolean;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'error', listener: () => void): unknown;
  once(event: 'end' | 'close', listener: () => void): unknown;
  destroy(): unknown;
}

/**
 * undici's BodyReadable.dump(): a small rest (at most DUMP_LIMIT bytes, `rest` when known) is
 * read and dropped, a larger one closes the connection.
 */
export function dumpBody(body: DumpableBody, rest: number | undefined): Promise<void> {
  if (body.readableEnded || body.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    body.on('error', () => undefined);
    body.once('end', resolve);
    body.once('close', resolve);
    if (rest !== undefined && rest > DUMP_LIMIT) {
      body.destroy();
      return;
    }
    let read = 0;
    body.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > DUMP_LIMIT) body.destroy();
    });
  });
}

/** An error shaped as undici's own of that name (its `name`, `code` and default message). */
export function undiciShaped(name: string, code: string, message: string): Error {
  const err = new Error(message);
  err.name = name;
  return Object.assign(err, { code });
}

export const otherSideClosed = (): Error =>
  undiciShaped('SocketError', 'UND_ERR_SOCKET', 'other side closed');
export const headersTimeout = (): Error =>
  undiciShaped('HeadersTimeoutError', 'UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error');
export const bodyTimeout = (): Error =>
  undiciShaped('BodyTimeoutError', 'UND_ERR_BODY_TIMEOUT', 'Body Timeout Error');

export function aborted(signal: AbortSignal): Error {
  const err = new Error('This operation was aborted', { cause: signal.reason });
  err.name = 'AbortError';
  return Object.assign(err, { code: 'ABORT_ERR' });
}

/** Lower-cased names, a repeated header as an array: the shape undici gives (node:http joins some with ', '). */
export function headersOf(raw: readonly string[]): ResponseHeaders {
  const headers: ResponseHeaders = Object.create(null) as ResponseHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const had = headers[name];
    headers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  return headers;
}

/**
 * `NULLGATE_ZERO_COPY_DOWNLOADS`: `0` takes every body through JS (to compare both paths),
 * `always` takes any body with a Content-Length natively (tests); anything else, or unset, the
 * default: natively from NATIVE_BODY_MIN_BYTES on. Read per response.
 */
function nativeMode(): 'off' | 'always' | 'auto' {
  const value = process.env.NULLGATE_ZERO_COPY_DOWNLOADS;
  if (value === '0' || value === 'off') return 'off';
  if (value === 'always') return 'always';
  return 'auto';
}

/**
 * The length of a body a native receive can take: an identity body (no Transfer-Encoding, no
 * Content-Encoding) with a Content-Length, over the threshold. Else undefined (JS only).
 */
export function nativeLength(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): number | undefined {
  const mode = nativeMode();
  if (mode === 'off') return undefined;
  if (headers['transfer-encoding'] !== undefined || headers['content-encoding'] !== undefined)
    return undefined;
  const declared = headers['content-length'];
  if (typeof declared !== 'string' || !/^\d+$/.test(declared)) return undefined;
  const length = Number(declared);
  if (!Number.isSafeInteger(length) || length === 0) return undefined;
  return mode === 'always' || length >= NATIVE_BODY_MIN_BYTES ? length : undefined;
}

/** A native receive's outcome as ResponseBody.receiveInto reports it: as the stream would have failed. */
export function receiptOf(outcome: NativeOutcome, signal?: AbortSignal): BodyReceipt {
  const { bytes } = outcome;
  switch (outcome.ended) {
    case 'complete':
      return { bytes };
    case 'file':
      return { bytes, fileError: outcome.error };
    case 'idle':
      return { bytes, connectionError: bodyTimeout() };
    case 'cancelled':
      return { bytes, connectionError: signal?.aborted ? aborted(signal) : otherSideClosed() };
    case 'closed':
      return { bytes, connectionError: otherSideClosed() };
  }
}
