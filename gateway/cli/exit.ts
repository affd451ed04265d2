/**
 * Exit codes and the one error type the CLI maps to them (npm/cli's exit-handler in spirit:
 * commands throw or return, only bin/nullgate.js sets the process's exit code). The numbers
 * follow curl where they overlap.
 */
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

export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, ExitCode.USAGE);
}
