/**
 * The client's typed errors: ClientError for an HTTP error answer (the server's `code` from its
 * `{statusCode, code, error, message}` body), LocalFileError for a failure on the local side of
 * a transfer (the CLI maps them to curl's exit codes 23 and 26).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { getSystemErrorMap } from 'node:util';
import { codeForStatus } from '../core/errors.js';
import type { ResponseBody } from './transport.js';

/** An error body larger than this is not nullgate's; read no further. */
const MAX_ERROR_BODY = 64 * 1024;

/**
 * Lets go of a response body nobody will read. `destroy()` on an undici body that was not read
 * emits UND_ERR_ABORTED as an 'error' event with no listener, which crashes the process;
 * `dump()` reads a small rest and closes the body quietly (a large rest: the connection).
 */
export async function discardBody(body: { dump(): Promise<unknown> }): Promise<void> {
  await body.dump().catch(() => undefined);
}

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

/** The system's description of an errno code (`ENOSPC` → "no space left on device"). */
function errnoText(cause: unknown): string | undefined {
  const e = cause as NodeJS.ErrnoException | null;
  if (typeof e?.code !== 'string' || typeof e.errno !== 'number') return undefined;
  return getSystemErrorMap().get(e.errno)?.[1];
}

/**
 * A local file could not be read (`op: 'read'`) or written (`op: 'write'`); the fs error is the
 * cause. The message names `file` as the user gave it and says what went wrong in words, not
 * Node's `ENOENT: …, open '<path>'` (whose path may be an internal temporary name).
 */
/**
 * A client verb's failure in one line for the user. What kind of failure it was (HTTP, local
 * file, connection) is its `cause`; the CLI maps that to an exit code (cli/exit.ts).
 */
export class CommandError extends Error {
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'CommandError';
  }
}

export class LocalFileError extends Error {
  readonly op: 'read' | 'write';
  readonly path: string;
  readonly code: string;

  constructor(op: 'read' | 'write', file: string, cause: unknown, reason?: string) {
    const code = (cause as NodeJS.ErrnoException | null)?.code ?? 'EIO';
    const why = reason ?? errnoText(cause) ?? (cause as Error | null)?.message ?? String(cause);
    super(`cannot ${op} ${file}: ${why}`, { cause });
    this.name = 'LocalFileError';
    this.op = op;
    this.path = file;
    this.code = code;
  }
}

/**
 * The server on the address runs as a uid the client does not trust (CONTRACT.md, "The client
 * checks the server too"): the connection was closed before a byte was sent. The CLI exits 7, as
 * for no server at all: the name is held by someone else, so there is no server to talk to.
 */
export class UntrustedServerError extends Error {
  readonly code = 'NG_ERR_SERVER_UNTRUSTED';
  /** The address as users write it (`@nullgate`). */
  readonly socket: string;
  /** What the kernel reported for the listening socket (SO_PEERCRED); pid 0: not in our PID namespace. */
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;

  constructor(
    socket: string,
    server: { readonly uid: number; readonly gid: number; readonly pid: number },
    trusted: readonly number[],
  ) {
    const own = process.geteuid?.() ?? 0;
    const others = [...new Set(trusted)].filter((uid) => uid !== 0 && uid !== own);
    const yours = own === 0 ? '' : `, as your uid ${own}`;
    const extra = others.length === 0 ? '' : ` or as uid ${others.join(', ')}`;
    const pid = server.pid > 0 ? `pid ${server.pid}` : 'its pid is not visible here';
    super(
      `refusing the server on ${socket}: it runs as uid ${server.uid} (${pid}), not as root${yours}${extra}`,
    );
    this.name = 'UntrustedServerError';
    this.socket = socket;
    this.uid = server.uid;
    this.gid = server.gid;
    this.pid = server.pid;
  }
}

/**
 * The connection failed in the middle of a response body: fewer bytes arrived than the
 * response announced (curl's CURLE_PARTIAL_FILE, exit 18). `code` is the underlying error's
 * (`UND_ERR_SOCKET`, …), which rides on `cause`.
 */
export class PartialTransferError extends Error {
  readonly code: string;
  /** Bytes of the body that did arrive, when counted. */
  readonly received: number | undefined;
  /** The body's announced length (Content-Length), when there was one. */
  readonly expected: number | undefined;

  constructor(received: number | undefined, expected: number | undefined, cause: unknown) {
    const why = (cause as Error | null)?.message ?? String(cause);
    const of = expected === undefined ? '' : ` of ${expected}`;
    const after = received === undefined ? '' : ` after ${received}${of} bytes`;
    super(`transfer cut short${after}: ${why}`, { cause });
    this.name = 'PartialTransferError';
    const code = (cause as { code?: unknown } | null)?.code;
    this.code = typeof code === 'string' ? code : 'UND_ERR_SOCKET';
    this.received = received;
    this.expected = expected;
  }
}

/** True for the errors of an abort the caller asked for (AbortSignal), which are never "partial". */
export function isAbort(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e?.name === 'AbortError' || e?.code === 'ABORT_ERR' || e?.code === 'UND_ERR_ABORTED';
}

/**
 * A failure to create or write `file` (a download's destination): ENOENT there means a missing
 * directory, which is what the user needs to hear (`directory /etc does not exist`).
 */
export function writeError(file: string, cause: unknown): LocalFileError {
  const code = (cause as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') {
    const dir = path.dirname(path.resolve(file));
    if (!existsSync(dir)) {
      return new LocalFileError('write', file, cause, `directory ${path.dirname(file)} does not exist`);
    }
  }
  return new LocalFileError('write', file, cause);
}

async function readBounded(body: ResponseBody): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Leaving the loop early destroys the body; its abort error must not go unheard.
  body.on('error', () => undefined);
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_ERROR_BODY) break;
    }
  } catch {
    // A broken error body still leaves the status to report.
  }
  await discardBody(body);
  return Buffer.concat(chunks).toString('utf8');
}

/** Turns an answer that is not a success (a 3xx, 4xx or 5xx) into a ClientError, consuming a bounded part of its body. */
export async function responseError(
  res: { readonly statusCode: number; readonly body: ResponseBody },
  method: string,
  urlPath: string,
  socket: string,
): Promise<ClientError> {
  const head = method === 'HEAD';
  const text = head ? '' : await readBounded(res.body);
  if (head) await discardBody(res.body);
  // A HEAD answer has no body (RFC 9110 §9.3.2), so the server's code cannot arrive: the status
  // alone says which code the same GET would have carried, when it is one the registry has.
  let code: string = (head ? codeForStatus(res.statusCode) : undefined) ?? 'NG_ERR_HTTP';
  // node:http for its table only when an answer failed: a command that succeeds never loads it.
  const { STATUS_CODES } = process.getBuiltinModule('node:http');
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
