/**
 * Exit codes and the one map from errors to them (npm/cli's exit-handler in spirit: commands
 * throw or return, only bin/nullgate.js sets the process's exit code). The numbers follow curl
 * where they overlap; docs/cli.md's table lists the same (test/cli/exit-codes.test.ts).
 */
import { ClientError, LocalFileError, PartialTransferError } from '../client/client-error.js';

export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  CONNECT: 7,
  /** curl's CURLE_PARTIAL_FILE: the body ended before its Content-Length. */
  PARTIAL: 18,
  HTTP: 22,
  WRITE: 23,
  READ: 26,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Each code in a few words, for --help (docs/cli.md's table says more). */
export const EXIT_CODE_SUMMARY: Readonly<Record<ExitCode, string>> = {
  0: 'success',
  1: 'other failure',
  2: 'usage error',
  7: 'cannot connect',
  18: 'partial transfer',
  22: 'HTTP error',
  23: 'local write error',
  26: 'local read error',
};

/** A failure of the CLI itself (serve, install-client) with the exit code it means. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

const USAGE_CODES: ReadonlySet<unknown> = new Set([
  'NG_ERR_USAGE',
  'NG_ERR_ADDRESS_INVALID',
  'NG_ERR_INVALID_OPTION',
]);

/** The exit code of an error: the first error on its cause chain that says which kind it is. */
export function exitCodeOf(err: unknown): ExitCode {
  for (
    let e = err, depth = 0;
    e !== undefined && e !== null && depth < 8;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    if (e instanceof CliError) return e.exitCode;
    if (e instanceof ClientError) return ExitCode.HTTP;
    if (e instanceof LocalFileError) return e.op === 'read' ? ExitCode.READ : ExitCode.WRITE;
    if (e instanceof PartialTransferError) return ExitCode.PARTIAL;
    const code = (e as { code?: unknown }).code;
    if (USAGE_CODES.has(code) || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      return ExitCode.USAGE;
    }
    // The server answered, with something that is not the file asked for: an HTTP-level failure.
    if (code === 'NG_ERR_IS_A_DIRECTORY') return ExitCode.HTTP;
    // A name held by an untrusted uid is no server to talk to: "cannot connect" too.
    if (
      code === 'NG_ERR_NO_SERVER' ||
      code === 'NG_ERR_SERVER_UNTRUSTED' ||
      (e as { syscall?: unknown }).syscall === 'connect'
    )
      return ExitCode.CONNECT;
  }
  return ExitCode.FAILURE;
}
