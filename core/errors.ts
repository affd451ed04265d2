/**
 * The one registry of nullgate error codes. The code is the API; messages may change.
 * docs/errors.md documents every code here, and test/unit/errors.test.ts keeps the two in sync
 * (the way fastify's lib/errors.js and its errors test do).
 */

interface ErrorSpec {
  /** HTTP status when the error reaches a client; 0 for errors that never leave the process. */
  readonly statusCode: number;
  /** One line for docs and for the catalogue test. */
  readonly description: string;
}

export const errorCodes = {
  NG_ERR_BAD_REQUEST: {
    statusCode: 400,
    description: 'The request is malformed (bad header, bad query, bad body).',
  },
  NG_ERR_BAD_PATH: {
    statusCode: 400,
    description:
      'The URL path has a NUL byte, a malformed percent escape, a `..` segment, or a name reserved for the server (`.nullgate-tmp-*`).',
  },
  NG_ERR_DIGEST_MISMATCH: {
    statusCode: 400,
    description: 'The uploaded body does not match its `Content-Digest`/`Repr-Digest`; nothing was changed.',
  },
  NG_ERR_UPLOAD_LENGTH_INCONSISTENT: {
    statusCode: 400,
    description:
      "A resumable upload got two different lengths (`Upload-Length`, `Content-Length` with `Upload-Complete: ?1`, earlier requests), or more bytes than its length (the draft's problem type `inconsistent-upload-length`).",
  },
  NG_ERR_UPLOAD_COMPLETED: {
    statusCode: 400,
    description:
      "A `PATCH` to a resumable upload that is already complete (the draft's problem type `completed-upload`); nothing was changed.",
  },
  NG_ERR_ARCHIVE_INVALID: {
    statusCode: 400,
    description: 'The uploaded archive is not a readable tar or tar.gz stream.',
  },
  NG_ERR_ARCHIVE_UNSAFE: {
    statusCode: 400,
    description:
      'An archive entry is unsafe (absolute name, `..`, an entry reached through a symlink, a hard link to anything but an earlier entry, a device node from a peer other than root); nothing of the archive was kept, or, for `pull`, nothing more was extracted.',
  },
  NG_ERR_PEER_DENIED: {
    statusCode: 403,
    description:
      "The connecting process's credentials (SO_PEERCRED) are not on the allow-list; the connection is closed.",
  },
  NG_ERR_NO_EXPORT: {
    statusCode: 403,
    description:
      'The connecting process is inside no exported chroot (`--export`) and the server serves no tree (`--root`) to others.',
  },
  NG_ERR_READ_ONLY: {
    statusCode: 403,
    description: 'A write was asked of a server started without `--writable`.',
  },
  NG_ERR_OUTSIDE_ROOT: {
    statusCode: 403,
    description:
      'The path resolves outside the served root (for example through a symlink); the kernel refused it.',
  },
  NG_ERR_FORBIDDEN: {
    statusCode: 403,
    description:
      'The operating system denied the operation (EACCES, EPERM), or it is never allowed (deleting the root).',
  },
  NG_ERR_NOT_FOUND: { statusCode: 404, description: 'No such file or directory under the root.' },
  NG_ERR_ROUTE_NOT_FOUND: { statusCode: 404, description: 'No endpoint has this method and URL.' },
  NG_ERR_METHOD_NOT_ALLOWED: {
    statusCode: 405,
    description: 'The endpoint exists but not with this method; `Allow` lists the methods it has.',
  },
  NG_ERR_TIMEOUT: { statusCode: 408, description: 'The client was too slow sending its request.' },
  NG_ERR_CONFLICT: {
    statusCode: 409,
    description:
      'The operation conflicts with what is on disk: a file is in the way, a directory is not empty, or a type differs.',
  },
  NG_ERR_UPLOAD_OFFSET_MISMATCH: {
    statusCode: 409,
    description:
      "A `PATCH` to a resumable upload whose `Upload-Offset` is not the resource's offset (the draft's problem type `mismatching-upload-offset`); the answer's `Upload-Offset` has the right one.",
  },
  NG_ERR_PRECONDITION_FAILED: {
    statusCode: 412,
    description:
      'An `If-Match`, `If-Unmodified-Since`, `If-None-Match: *` or `Overwrite: F` precondition failed.',
  },
  NG_ERR_PAYLOAD_TOO_LARGE: {
    statusCode: 413,
    description: 'The body is larger than `--max-upload` (or the file system allows).',
  },
  NG_ERR_UNSUPPORTED_MEDIA_TYPE: {
    statusCode: 415,
    description: 'The request body has a content type this endpoint does not take.',
  },
  NG_ERR_RANGE_NOT_SATISFIABLE: {
    statusCode: 416,
    description: 'No requested range overlaps the file; `Content-Range: bytes */size` tells the size.',
  },
  NG_ERR_EXPECTATION_FAILED: {
    statusCode: 417,
    description:
      'The request has an `Expect` other than `100-continue`, the only expectation the server meets.',
  },
  NG_ERR_TOO_MANY_REQUESTS: {
    statusCode: 429,
    description: 'A server limit (connections, concurrent uploads) is reached; try again.',
  },
  NG_ERR_HEADERS_TOO_LARGE: {
    statusCode: 431,
    description: 'The request headers are larger than the server accepts.',
  },
  NG_ERR_INTERNAL: {
    statusCode: 500,
    description: 'An unexpected failure; the server logs the cause, the response never carries host paths.',
  },
  NG_ERR_NOT_IMPLEMENTED: {
    statusCode: 501,
    description:
      'The request uses a `Transfer-Encoding` other than `chunked` (send the body as is); nothing was read or kept.',
  },
  NG_ERR_SERVICE_UNAVAILABLE: { statusCode: 503, description: 'The server is shutting down.' },
  NG_ERR_INSUFFICIENT_STORAGE: {
    statusCode: 507,
    description: 'The disk or quota is full (ENOSPC, EDQUOT); nothing was kept.',
  },
  NG_ERR_ADDRESS_INVALID: {
    statusCode: 0,
    description:
      'A socket address is malformed: bad `\\xHH` escape, empty or longer than 107 bytes, bad `fd:N`.',
  },
  NG_ERR_INVALID_OPTION: {
    statusCode: 0,
    description: 'A library or command-line option has an invalid value.',
  },
  NG_ERR_USAGE: {
    statusCode: 0,
    description:
      'A command line is malformed: an unknown option, a missing or extra argument (the CLI exits 2).',
  },
  NG_ERR_SOCKET_ACTIVATION: {
    statusCode: 0,
    description:
      'An inherited socket (systemd `LISTEN_FDS`, `fd:N`) is missing or is not a listening AF_UNIX stream socket.',
  },
  NG_ERR_NO_SERVER: { statusCode: 0, description: 'The client found no server listening on the address.' },
  NG_ERR_SERVER_UNTRUSTED: {
    statusCode: 0,
    description:
      'The server runs as a uid the client does not trust (not root, its own uid or a `--server-uid`); nothing was sent.',
  },
  NG_ERR_RESPONSE_TOO_LARGE: {
    statusCode: 0,
    description:
      'An answer is larger than the client holds: a listing over its entry limit (`ls -l`), a write answer over 1 MiB.',
  },
  NG_ERR_IS_A_DIRECTORY: {
    statusCode: 0,
    description:
      'A file was asked for and the server answered with a directory listing (`get` of a directory: use `ls` or `pull`).',
  },
  NG_ERR_HTTP: {
    statusCode: 0,
    description: 'The client got an HTTP error whose body carried no nullgate code.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorCodes;

/**
 * The generic code of each status the registry has: what an answer with that status carries when
 * nothing more specific was raised (a Fastify or framework error, a HEAD answer whose body could
 * not carry its code). A specific code of the same status — a peer denial, a read-only server, a
 * path leading outside the root — is always raised with its code, never guessed from a status.
 */
const GENERIC_CODES: Readonly<Partial<Record<number, ErrorCode>>> = {
  400: 'NG_ERR_BAD_REQUEST',
  403: 'NG_ERR_FORBIDDEN',
  404: 'NG_ERR_NOT_FOUND',
  405: 'NG_ERR_METHOD_NOT_ALLOWED',
  408: 'NG_ERR_TIMEOUT',
  409: 'NG_ERR_CONFLICT',
  412: 'NG_ERR_PRECONDITION_FAILED',
  413: 'NG_ERR_PAYLOAD_TOO_LARGE',
  415: 'NG_ERR_UNSUPPORTED_MEDIA_TYPE',
  416: 'NG_ERR_RANGE_NOT_SATISFIABLE',
  417: 'NG_ERR_EXPECTATION_FAILED',
  429: 'NG_ERR_TOO_MANY_REQUESTS',
  431: 'NG_ERR_HEADERS_TOO_LARGE',
  500: 'NG_ERR_INTERNAL',
  501: 'NG_ERR_NOT_IMPLEMENTED',
  503: 'NG_ERR_SERVICE_UNAVAILABLE',
  507: 'NG_ERR_INSUFFICIENT_STORAGE',
};

/**
 * The one status → code fallback (the server's error handler and the client's HEAD answers use
 * it): the generic code of `status`, or undefined for a status no registry code has.
 */
export function codeForStatus(status: number): ErrorCode | undefined {
  return GENERIC_CODES[status];
}

export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
}

export class NullgateError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NullgateError';
    this.code = code;
    this.statusCode = errorCodes[code].statusCode;
  }

  toJSON(): ErrorBody {
    return errorBody(this.statusCode, this.code, this.message);
  }
}

export function ngError(code: ErrorCode, message: string, cause?: unknown): NullgateError {
  return new NullgateError(code, message, cause === undefined ? undefined : { cause });
}

/** A malformed command line (the CLI prints the message and exits 2). */
export function usageError(message: string): NullgateError {
  return new NullgateError('NG_ERR_USAGE', message);
}

export function errorBody(statusCode: number, code: string, message: string): ErrorBody {
  // node:http only when an error body is made (a server's): the client, which imports this
  // registry, does not load Node's HTTP stack for it.
  const { STATUS_CODES } = process.getBuiltinModule('node:http');
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message };
}

export function isNullgateError(err: unknown): err is NullgateError {
  return err instanceof NullgateError;
}

/** How one call site words an errno (and, where the operation gives it another meaning, codes it). */
export type ErrnoOverride = string | { readonly code: ErrorCode; readonly message: string };

/**
 * The one fs-errno → HTTP mapping (STYLE.md "Errors"). `shown` is the path as the client sees
 * it (relative to the root, never a host path). ELOOP/EXDEV come from openat2's RESOLVE_BENEATH
 * and RESOLVE_NO_MAGICLINKS when a lookup would leave the root (openat2(2)).
 *
 * `overrides` lets a call site say what an errno means for its operation, keyed by errno code:
 * a string replaces the message, `{ code, message }` also the code (EEXIST on a link with
 * `If-None-Match: *` is a failed precondition, ENOTDIR while creating parents is a file in the
 * way). EXDEV and ELOOP are never overridden: leaving the root is always 403. A NullgateError
 * passes through unchanged, so a catch block can hand any error here.
 */
export function fsError(
  err: unknown,
  shown: string,
  overrides?: Readonly<Record<string, ErrnoOverride>>,
): NullgateError {
  if (err instanceof NullgateError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'EXDEV' || code === 'ELOOP') {
    return ngError('NG_ERR_OUTSIDE_ROOT', `path leads outside the served root: ${shown}`, err);
  }
  const override = code === undefined ? undefined : overrides?.[code];
  if (typeof override === 'string') return ngError(defaultError(code).code, override, err);
  if (override !== undefined) return ngError(override.code, override.message, err);
  const { code: ngCode, message } = defaultError(code);
  return ngError(ngCode, `${message}: ${shown}`, err);
}

function defaultError(code: string | undefined): { code: ErrorCode; message: string } {
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return { code: 'NG_ERR_NOT_FOUND', message: 'no such file' };
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return { code: 'NG_ERR_FORBIDDEN', message: 'permission denied' };
    case 'EEXIST':
      return { code: 'NG_ERR_CONFLICT', message: 'already exists' };
    case 'ENOTEMPTY':
      return { code: 'NG_ERR_CONFLICT', message: 'directory not empty' };
    case 'EISDIR':
      return { code: 'NG_ERR_CONFLICT', message: 'is a directory' };
    case 'ENAMETOOLONG':
      return { code: 'NG_ERR_BAD_PATH', message: 'name too long' };
    case 'ENOSPC':
    case 'EDQUOT':
      return { code: 'NG_ERR_INSUFFICIENT_STORAGE', message: 'no space left for' };
    case 'EFBIG':
      return { code: 'NG_ERR_PAYLOAD_TOO_LARGE', message: 'file too large' };
    default:
      return { code: 'NG_ERR_INTERNAL', message: 'internal error on' };
  }
}

/** The `code` of any thrown value: an errno name ('ENOENT') or an NG_ERR_* code; else undefined. */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
