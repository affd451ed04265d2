/** `nullgate put LOCAL REMOTE` / `nullgate put - REMOTE`: upload a file or standard input. */
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { usageError } from '../../core/errors.js';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { type FileClient, filesPath } from '../file-client.js';
import {
  type CommonOptions,
  type Env,
  commonOptions,
  expectPositionals,
  parseCommon,
  progressBar,
  withClient,
  withFileClient,
} from './common.js';

export interface PutArgs {
  readonly common: CommonOptions;
  /** A local path, or '-' for standard input. */
  readonly local: string;
  /** The remote file (a trailing '/' in REMOTE was completed with LOCAL's name). */
  readonly remote: string;
  /** Fail instead of replacing an existing file (`If-None-Match: *`). */
  readonly noClobber: boolean;
  /** `-p`: also the mtime, and as root the owner (cp -p); else the permission bits only. */
  readonly preserve: boolean;
}

/** Files this large or larger are uploaded resumably (client/resumable.ts). */
export const RESUMABLE_MIN_SIZE = 64 * 1024 * 1024;

/** Byte counts in resumption notes: whole MiB once large. */
function bytesText(n: number): string {
  return n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1)} MiB` : `${n} bytes`;
}

export const putSpec = {
  name: 'put',
  usage: ['nullgate put [-n] [-p] LOCAL REMOTE', 'nullgate put [-n] - REMOTE'],
  summary:
    "Uploads a local file, or standard input, into the served tree. The server writes it atomically and creates missing parent directories; the file keeps LOCAL's permission bits, as with cp. A file of 64 MiB or more is sent resumably: when the connection breaks or the server restarts (give --wait to wait for it), the upload goes on from where the server got to.",
  operands: [
    ['LOCAL', 'a local file; - reads standard input'],
    ['REMOTE', "the file in the served tree; one that ends in / takes LOCAL's name"],
  ],
  options: {
    'no-clobber': {
      type: 'boolean',
      short: 'n',
      help: 'fail (412, exit 22) instead of replacing an existing file',
    },
    preserve: {
      type: 'boolean',
      short: 'p',
      help: "also keep LOCAL's mtime, and as root its owner and set-id bits (cp -p, scp -p)",
    },
    ...commonOptions,
  },
} as const satisfies CommandSpec;

export function parsePutArgs(argv: string[], env: Env = process.env): PutArgs {
  const { values, positionals } = parseCommand(putSpec, argv);
  const [local, remoteArg] = expectPositionals('put', positionals, ['LOCAL', 'REMOTE']) as [string, string];
  const common = parseCommon(values, env);
  if (local === '') throw usageError('put: empty LOCAL (use - for standard input)');
  let remote = remoteArg;
  if (remote === '') throw usageError('put: empty REMOTE');
  if (remote.endsWith('/')) {
    // Like scp and curl -T: a directory target takes the local file's name.
    if (local === '-') throw usageError('put - REMOTE: REMOTE must name a file when reading standard input');
    remote += path.basename(local);
  }
  return {
    common,
    local,
    remote,
    noClobber: values['no-clobber'] === true,
    preserve: values.preserve === true,
  };
}

export async function putCommand(argv: string[]): Promise<void> {
  const args = parsePutArgs(argv);
  const size =
    args.local === '-'
      ? undefined
      : await stat(args.local).then(
          (st) => (st.isFile() ? st.size : undefined),
          () => undefined,
        );
  const resumable = size !== undefined && size >= RESUMABLE_MIN_SIZE;
  // A resumable upload is undici's (the library Client); a small one goes over node:http.
  return (resumable ? withClient : withFileClient)(
    args.common,
    (socket) => `PUT ${filesPath(args.remote)} on ${socket}`,
    async (client: FileClient) => {
      const progress = progressBar(
        path.basename(args.local === '-' ? args.remote : args.local),
        args.common.silent,
      );
      try {
        await client.put(args.local === '-' ? process.stdin : args.local, args.remote, {
          noClobber: args.noClobber,
          keep: args.preserve ? 'all' : 'mode',
          onProgress: progress?.update,
          resumable,
          onResume: (offset, cause) => {
            if (args.common.silent) return;
            const why = cause instanceof Error ? cause.message : String(cause);
            // On its own line: a progress bar on the terminal goes on below it.
            if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
            process.stderr.write(
              `nullgate: put ${args.remote}: ${why}; resuming at ${bytesText(offset)} of ${bytesText(size ?? 0)}\n`,
            );
          },
        });
        progress?.done();
      } finally {
        progress?.end();
      }
      return;
    },
  );
}
