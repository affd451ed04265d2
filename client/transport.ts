/**
 * What the file methods of the client (client/file-client.ts) need of HTTP: one request, its
 * status, headers and streamed body. Two implement it: undici's Agent (the library's Client,
 * which keeps connections alive and serves the streaming verbs) and a small HTTP/1.1 path over
 * node:http (client/http-transport.ts), which the CLI's simple verbs use because it starts in a
 * third of undici's time (docs/performance.md, "Client start-up"). Types only: importing this
 * loads nothing.
 */
import type { Readable } from 'node:stream';

/** Header names lower-cased; a header sent more than once is an array (undici's shape). */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** A response body: a stream to read, or to let go of with dump() (undici's BodyReadable has both). */
export interface ResponseBody extends Readable {
  /** Reads a small rest and closes the body quietly (a large rest: the connection). */
  dump(): Promise<unknown>;
  /**
   * Only on the node:http transport, for a large identity body with a Content-Length: moves the
   * whole body into the file `fd` (at its offset; a duplicate of it is written, the caller
   * keeps and closes `fd`) on a native thread, without reading it through JS
   * (client/native-body.ts). The connection is closed afterwards. Resolves with what was
   * written and what failed, or with undefined when the body cannot be taken that way (it is
   * being read already): nothing was taken then, read the stream.
   */
  receiveInto?(fd: number): Promise<BodyReceipt | undefined>;
}

/** What ResponseBody.receiveInto did. */
export interface BodyReceipt {
  /** Bytes of the body written to the file. */
  readonly bytes: number;
  /** The body was cut: the error reading the stream would have failed with (the connection's, an abort). */
  readonly connectionError?: Error;
  /** Writing the file failed: a Node-shaped system error (ENOSPC, EIO…). */
  readonly fileError?: Error;
}

export interface TransportResponse {
  readonly statusCode: number;
  readonly headers: ResponseHeaders;
  readonly body: ResponseBody;
  /**
   * The whole body, when the transport already holds all of it (the blocking transport's small
   * answers): a consumer that takes it never touches `body`, which is then never made, and
   * node:stream is not loaded for it. `body` still gives the same bytes as a stream.
   */
  readonly whole?: Buffer;
}

export interface TransportRequest {
  readonly method: string;
  /** The URL path and query (`/files/x?recursive=1`). */
  readonly path: string;
  readonly headers?: Record<string, string | string[]> | undefined;
  readonly body?: string | Buffer | Uint8Array | Readable | null | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface Transport {
  request(req: TransportRequest): Promise<TransportResponse>;
  /** Waits for requests in flight, then closes the connections. */
  close(): Promise<void>;
  /** Closes at once, failing requests in flight. */
  destroy(): Promise<void>;
}
