/**
 * The CLI's transport for a short command (get, ls, rm, mkdir, mv): one request on a connection
 * of its own, written and read with plain blocking system calls on the socket's fd. A chroot
 * script runs `nullgate get` hundreds of times, and most of such a command's time was Node
 * starting its network stack: node:net, node:http and the functions of a request, compiled on
 * first use (docs/performance.md, "Client start-up"). This path loads neither: it writes the
 * request head with one write(2), reads the answer with read(2) and parses it itself
 * (client/http1.ts), so a 1 KiB `get` is a connect, a write, a read or two, and the file.
 *
 * Blocking is the right shape for a process that does one thing: nothing else waits on its event
 * loop while it reads. Silence is bounded in the kernel (SO_RCVTIMEO and SO_SNDTIMEO, undici's
 * 300 s), and ends as undici's HeadersTimeoutError or BodyTimeoutError would. The same dial as
 * every transport (client/dial.ts: exact-length connect, the server vetted before a byte is
 * sent); the same error shapes (client/transport-shapes.ts), so a verb's messages and exit codes
 * do not depend on the transport it ran on. An answer of up to 64 KiB with a Content-Length is
 * read whole before it is returned (TransportResponse.whole: a small download is written without
 * any stream, so node:stream is not loaded either); a larger body is a Readable that reads the
 * socket when it is read, and one of 1 MiB or more into a file moves on a native thread
 * (client/native-receive.ts).
 *
 * Not for a process that must keep its event loop turning while it waits (the library, a server):
 * those use undici. Requests with a streamed body or an abort signal go to `fallback`
 * (client/http-transport.ts, node:http), loaded only then.
 */
import { readSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { native } from '../native/binding.js';
import { setBlocking } from '../native/socket.js';
import { type Dialer, dialFd } from './dial.js';
import { ChunkedDecoder, type Framing, framingOf, parseResponseHead, requestHead } from './http1.js';
import type {
  BodyReceipt,
  ResponseBody,
  Transport,
  TransportRequest,
  TransportResponse,
} from './transport.js';
import {
  IDLE_TIMEOUT_MS,
  bodyTimeout,
  dumpBody,
  headersOf,
  headersTimeout,
  nativeLength,
  otherSideClosed,
  receiptOf,
} from './transport-shapes.js';

/** How much one read(2) of a body asks for. */
const READ_BYTES = 64 * 1024;

/** The error of a failed read or write of the connection, as undici would report it. */
function connectionError(err: unknown, timeout: () => Error): Error {
  const code = (err as NodeJS.ErrnoException).code;
  // SO_RCVTIMEO / SO_SNDTIMEO expired: the connection was silent for the idle timeout.
  if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return timeout();
  if (code === 'ECONNRESET' || code === 'EPIPE') return otherSideClosed();
  return err as Error;
}

/** read(2) into `buf` at `offset`: the byte count, 0 at the end of the stream. EINTR is retried. */
function readSome(fd: number, buf: Buffer, offset: number, timeout: () => Error): number {
  for (;;) {
    try {
      return readSync(fd, buf, offset, buf.length - offset, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINTR') continue;
      throw connectionError(err, timeout);
    }
  }
}

function writeAll(fd: number, data: Buffer): void {
  for (let at = 0; at < data.length;) {
    try {
      at += writeSync(fd, data, at, data.length - at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINTR') continue;
      throw connectionError(err, headersTimeout);
    }
  }
}

function closeFd(fd: number): void {
  if (fd >= 0) native.close(fd);
}

/** A response body of this transport: a ResponseBody that knows whether its connection is open. */
interface BlockingBody extends ResponseBody {
  /** True until the body has closed its connection. */
  readonly connected: boolean;
}

type BodyArgs = [
  fd: number,
  framing: Framing,
  pending: Buffer,
  idleMs: number,
  nativeBytes: number | undefined,
  onDone: (body: BlockingBody) => void,
  endError?: Error,
];

let BodyClass: (new (...args: BodyArgs) => BlockingBody) | undefined;

/**
 * A response body that reads its connection as it is read. The class is made on the first body
 * that is read as a stream: node:stream is loaded then, not by a `get -o` of a small file, whose
 * answer is taken whole (TransportResponse.whole).
 */
function newBody(...args: BodyArgs): BlockingBody {
  BodyClass ??= defineBody(process.getBuiltinModule('node:stream').Readable);
  return new BodyClass(...args);
}

function defineBody(Base: typeof Readable): new (...args: BodyArgs) => BlockingBody {
  /**
   * `pending` holds the body's bytes that arrived with the head; with `fd` -1, all that will
   * come (an answer read whole, or as much of it as came before `endError`). The fd is closed
   * when the body ends, fails or is destroyed.
   */
  return class extends Base implements BlockingBody {
    private fd: number;
    private pending: Buffer | undefined;
    /** Bytes still to come of a body with a Content-Length. */
    private left: number;
    private readonly decoder: ChunkedDecoder | undefined;
    /** Set while a native thread has the connection: cancels it. */
    private cancelReceive: (() => void) | undefined;
    private ended = false;

    constructor(
      fd: number,
      private readonly framing: Framing,
      pending: Buffer,
      private readonly idleMs: number,
      nativeBytes: number | undefined,
      /** Called once, when the connection is closed. */
      private readonly onDone: (body: BlockingBody) => void,
      /** With `fd` -1: why the body ends after `pending` (else: the connection ended). */
      private readonly endError?: Error,
    ) {
      super({ highWaterMark: READ_BYTES });
      this.fd = fd;
      this.pending = pending.length > 0 ? pending : undefined;
      this.left = framing.kind === 'length' ? framing.length : 0;
      this.decoder = framing.kind === 'chunked' ? new ChunkedDecoder() : undefined;
      if (framing.kind === 'none') this.finish();
      if (nativeBytes !== undefined) this.receiveInto = (fileFd) => this.receive(fileFd);
    }

    receiveInto?(fd: number): Promise<BodyReceipt | undefined>;

    /** True until the body has closed its connection. */
    get connected(): boolean {
      return this.fd >= 0;
    }

    override _read(): void {
      try {
        // Until something is pushed or the body ends: a chunk-size line alone yields no bytes.
        while (!this.ended) {
          const bytes = this.next();
          if (bytes === undefined) {
            // The connection ended. Only a body delimited by its end is complete then.
            if (this.endError !== undefined) throw this.endError;
            if (this.framing.kind !== 'close') throw otherSideClosed();
            this.finish();
            return;
          }
          if (this.pushBody(bytes)) return;
        }
      } catch (err) {
        this.destroy(err as Error);
      }
    }

    /** The next bytes from the connection (those that came with the head first), or undefined at its end. */
    private next(): Buffer | undefined {
      const held = this.pending;
      if (held !== undefined) {
        this.pending = undefined;
        return held;
      }
      if (this.fd < 0) return undefined;
      const buf = Buffer.allocUnsafe(
        this.framing.kind === 'length' ? Math.min(READ_BYTES, this.left) : READ_BYTES,
      );
      const n = readSome(this.fd, buf, 0, bodyTimeout);
      return n === 0 ? undefined : buf.subarray(0, n);
    }

    /** Pushes the body's part of `bytes`; true when something was pushed or the body ended. */
    private pushBody(bytes: Buffer): boolean {
      if (this.decoder !== undefined) {
        const parts = this.decoder.push(bytes);
        for (const part of parts) this.push(part);
        if (this.decoder.done) this.finish();
        return parts.length > 0 || this.decoder.done;
      }
      if (this.framing.kind === 'length') {
        const part = bytes.length > this.left ? bytes.subarray(0, this.left) : bytes;
        this.left -= part.length;
        this.push(part);
        if (this.left === 0) this.finish();
        return true;
      }
      this.push(bytes);
      return true;
    }

    private closeConnection(): void {
      if (this.fd < 0) return;
      closeFd(this.fd);
      this.fd = -1;
      this.onDone(this);
    }

    private finish(): void {
      this.ended = true;
      this.closeConnection();
      this.push(null);
    }

    override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
      // A native thread still has the connection: it stops, and receive() closes it.
      if (this.cancelReceive !== undefined) this.cancelReceive();
      else this.closeConnection();
      callback(err);
    }

    /** undici's BodyReadable.dump(). */
    dump(): Promise<void> {
      return dumpBody(this, this.framing.kind === 'length' ? this.left : undefined);
    }

    /**
     * The rest of an identity body into `fileFd` on a native thread (ResponseBody.receiveInto):
     * what came with the head first, then the socket, non-blocking again for the thread's poll.
     */
    private async receive(fileFd: number): Promise<BodyReceipt | undefined> {
      if (this.readableDidRead || this.readableLength > 0 || this.destroyed || this.fd < 0) return undefined;
      const held = this.pending ?? Buffer.alloc(0);
      const prefix = held.length > this.left ? held.subarray(0, this.left) : held;
      const rest = this.left - prefix.length;
      if (rest <= 0) return undefined;
      const { receiveFromSocket } = await import('./native-receive.js');
      try {
        setBlocking(this.fd, false);
      } catch {
        // Declined, nothing taken: the body is read on this thread, still blocking.
        return undefined;
      }
      this.pending = undefined;
      const outcome = await receiveFromSocket(this.fd, fileFd, prefix, rest, this.idleMs, (cancel) => {
        this.cancelReceive = cancel;
        if (this.destroyed) cancel();
        return () => (this.cancelReceive = undefined);
      });
      if (outcome.ended === 'complete') {
        this.left = 0;
        this.finish();
        // Nothing is left to read: the stream ends as a read one does.
        this.resume();
      } else {
        this.closeConnection();
        this.destroy();
      }
      return receiptOf(outcome);
    }
  };
}

/** Answers with a Content-Length up to this are read whole before the response is returned. */
const WHOLE_MAX = 64 * 1024;

/**
 * The rest of a body of `length` bytes, after the `first` that came with the head: all of it, or
 * what came before the connection failed (`error`: ended, silent, reset).
 */
function readWhole(fd: number, first: Buffer, length: number): { bytes: Buffer; error?: Error } {
  const bytes = Buffer.allocUnsafe(length);
  let got = first.copy(bytes, 0, 0, Math.min(first.length, length));
  while (got < length) {
    let n: number;
    try {
      n = readSome(fd, bytes, got, bodyTimeout);
    } catch (err) {
      return { bytes: bytes.subarray(0, got), error: err as Error };
    }
    if (n === 0) return { bytes: bytes.subarray(0, got), error: otherSideClosed() };
    got += n;
  }
  return { bytes };
}

/** A response, and its body when that still reads the connection (close() waits for it). */
interface Exchanged {
  readonly response: TransportResponse;
  readonly reading: BlockingBody | undefined;
}

/**
 * Sends `r` on the connected, blocking `fd` and reads the answer's head; a small answer with a
 * Content-Length (or none) is read whole, and the connection closed, before this returns.
 */
function exchange(
  fd: number,
  r: TransportRequest,
  idleMs: number,
  onDone: (body: BlockingBody) => void,
): Exchanged {
  const sent = typeof r.body === 'string' ? Buffer.from(r.body) : (r.body as Uint8Array | null | undefined);
  const head = requestHead(r.method, r.path, r.headers, sent == null ? undefined : sent.length);
  writeAll(fd, sent == null || sent.length === 0 ? head : Buffer.concat([head, sent]));
  // A head longer than MAX_HEAD_BYTES fails to parse long before this fills.
  const buf = Buffer.allocUnsafe(READ_BYTES);
  let end = 0;
  for (;;) {
    const n = readSome(fd, buf, end, headersTimeout);
    // The connection ended before the answer did.
    if (n === 0) throw otherSideClosed();
    end += n;
    let parsed = parseResponseHead(buf, end);
    // An interim answer (1xx, RFC 9110 §15.2) is followed by the final one.
    while (parsed !== undefined && parsed.statusCode < 200) {
      buf.copy(buf, 0, parsed.size, end);
      end -= parsed.size;
      parsed = end > 0 ? parseResponseHead(buf, end) : undefined;
    }
    if (parsed === undefined) continue;
    const { statusCode } = parsed;
    const headers = headersOf(parsed.rawHeaders);
    const framing = framingOf(r.method, statusCode, headers);
    const first = buf.subarray(parsed.size, end);
    const length = framing.kind === 'none' ? 0 : framing.kind === 'length' ? framing.length : -1;
    if (length < 0 || length > WHOLE_MAX) {
      const nativeBytes = framing.kind === 'length' ? nativeLength(headers) : undefined;
      const body = newBody(fd, framing, Buffer.from(first), idleMs, nativeBytes, onDone);
      return { response: { statusCode, headers, body }, reading: body.connected ? body : undefined };
    }
    const { bytes, error } = readWhole(fd, first, length);
    closeFd(fd);
    let body: BlockingBody | undefined;
    // The stream over the same bytes (or over what came, then the failure) only when asked for.
    const streamed = (): BlockingBody =>
      (body ??= newBody(-1, framing, bytes, idleMs, undefined, onDone, error));
    const response: TransportResponse =
      error === undefined
        ? {
            statusCode,
            headers,
            whole: bytes,
            get body() {
              return streamed();
            },
          }
        : { statusCode, headers, body: streamed() };
    return { response, reading: undefined };
  }
}

function needsFallback(r: TransportRequest): boolean {
  const streamed = r.body !== null && typeof r.body === 'object' && !(r.body instanceof Uint8Array);
  return streamed || r.signal !== undefined;
}

/**
 * A Transport that dials `d` for each request and exchanges it with blocking calls; `fallback`
 * makes the transport for requests it does not take (a streamed body, an abort signal).
 */
export function blockingTransport(
  d: Dialer,
  fallback: () => Promise<Transport>,
  idleMs = IDLE_TIMEOUT_MS,
): Transport {
  let other: Promise<Transport> | undefined;
  /** The bodies whose connection is open, each with what close() waits on. */
  const open = new Map<BlockingBody, () => void>();
  const onDone = (body: BlockingBody): void => {
    open.get(body)?.();
    open.delete(body);
  };
  const waiters: Promise<void>[] = [];
  const closed = async (): Promise<void> => {
    await Promise.all([other?.then((t) => t.close()), ...waiters]);
  };
  return {
    async request(r) {
      if (needsFallback(r)) return (await (other ??= fallback())).request(r);
      const fd = await dialFd(d);
      let exchanged: Exchanged;
      try {
        setBlocking(fd, true, idleMs);
        exchanged = exchange(fd, r, idleMs, onDone);
      } catch (err) {
        closeFd(fd);
        throw err;
      }
      const { reading } = exchanged;
      if (reading !== undefined) waiters.push(new Promise((resolve) => open.set(reading, resolve)));
      return exchanged.response;
    },
    close: closed,
    async destroy() {
      for (const body of open.keys()) body.destroy();
      await Promise.all([other?.then((t) => t.destroy()), closed()]);
    },
  };
}
