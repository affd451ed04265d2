/**
 * The client's typed errors: ClientError for an HTTP error answer (the server's `code` from its
 * `{statusCode, code, error, message}` body), LocalFileError for a failure on the local side of
 * a transfer (the CLI maps them to curl's exit codes 23 and 26).
 */
import { STATUS_CODES } from 'node:http';
import type { Dispatcher } from 'undici';

/** An error body larger than this is not nullgate's; read no further. */
const MAX_ERROR_BODY = 64 * 1024;

export class ClientError extends Error {
  /** The HTTP status. */
  readonly statusCode: number;
  /** The server's stable code (`NG_ERR_NOT_FOUND`), or `NG_ERR_HTTP` when the body had none. */
  readonly code: string;
  readonly method: string;
  /** The URL path asked for (`/files/etc/motd`). */
  readonly path: string;
  /** The socket address as text (`@nullgate`). */
  readonly socket: string;
  /** The server's own message, without the request context that `message` adds. */
  readonly serverMessage: string;

  constructor(init: {
    statusCode: number;
    code: string;
    method: string;
    path: string;
    socket: string;
    serverMessage: string;
  }) {
    super(
      `${init.method} ${init.path} on ${init.socket}: ${init.statusCode} ${init.code} ${init.serverMessage}`,
    );
    this.name = 'ClientError';
    this.statusCode = init.statusCode;
    this.code = init.code;
    this.method = init.method;
    this.path = init.path;
    this.socket = init.socket;
    this.serverMessage = init.serverMessage;
  }
}

/** A local file could not be read (`op: 'read'`) or written (`op: 'write'`); the fs error is the cause. */
export class LocalFileError extends Error {
  readonly op: 'read' | 'write';
  readonly path: string;
  readonly code: string;

  constructor(op: 'read' | 'write', file: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | null)?.code ?? 'EIO';
    const why = (cause as Error | null)?.message ?? String(cause);
    super(`cannot ${op} ${file}: ${why}`, { cause });
    this.name = 'LocalFileError';
    this.op = op;
    this.path = file;
    this.code = code;
  }
}

async function readBounded(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_ERROR_BODY) break;
    }
  } catch {
    // A broken error body still leaves the status to report.
  }
  body.destroy();
  return Buffer.concat(chunks).toString('utf8');
}

/** Turns an error response (status >= 400) into a ClientError, consuming a bounded part of its body. */
export async function responseError(
  res: Dispatcher.ResponseData,
  method: string,
  urlPath: string,
  socket: string,
): Promise<ClientError> {
  const text = method === 'HEAD' ? '' : await readBounded(res.body);
  if (method === 'HEAD') res.body.destroy();
  let code = 'NG_ERR_HTTP';
  let serverMessage = STATUS_CODES[res.statusCode] ?? 'HTTP error';
  try {
    const parsed = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof parsed.code === 'string' && parsed.code !== '') code = parsed.code;
    if (typeof parsed.message === 'string' && parsed.message !== '') serverMessage = parsed.message;
  } catch {
    const line = text.trim().split('\n')[0]?.slice(0, 200);
    if (line) serverMessage = line;
  }
  return new ClientError({ statusCode: res.statusCode, code, method, path: urlPath, socket, serverMessage });
}
