/** `nullgate get REMOTE [-o FILE | -O] [-C -] [-r RANGE]`: a file to stdout or to a local file. */
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { codeOf, usageError } from '../../core/errors.js';
import path from 'node:path';
import {
  type CommonOptions,
  type Env,
  commonOptions,
  expectPositionals,
  parseCommon,
  progressBar,
  toStdout,
  withFileClient,
} from './common.js';
import { formatAddress } from '../../core/address.js';
import { CommandError, LocalFileError } from '../client-error.js';
import { filesPath, progressStream } from '../file-client.js';

export interface GetArgs {
  readonly common: CommonOptions;
  readonly remote: string;
  /** undefined: standard output. */
  readonly output: string | undefined;
  /** `-o -`: standard output even when it is a terminal and the body is binary. */
  readonly forceStdout: boolean;
  readonly resume: boolean;
  /** As given to -r (`0-499`, `500-`, `-500`, `0-1,5-9`). */
  readonly range: string | undefined;
  /** `-p`: also the mtime, and as root the owner (cp -p); else the permission bits only. */
  readonly preserve: boolean;
}

export const getSpec = {
  name: 'get',
  usage: ['nullgate get REMOTE [-o FILE | -O] [-C -] [-r RANGE] [-p]'],
  summary:
    "Downloads a file of the served tree to standard output, or to a local file, which keeps the remote file's permission bits, as with cp.",
  operands: [['REMOTE', 'a file in the served tree: /etc/motd asks for GET /files/etc/motd']],
  options: {
    output: {
      type: 'string',
      short: 'o',
      value: 'FILE',
      help: 'write to FILE (- is standard output): to a temporary name, renamed over FILE when complete',
    },
    'remote-name': {
      type: 'boolean',
      short: 'O',
      help: "like -o, with the remote file's name, in the current directory",
    },
    'continue-at': {
      type: 'string',
      short: 'C',
      value: '-',
      help: 'resume: append to FILE from its current size (needs -o or -O; only - is accepted)',
    },
    range: {
      type: 'string',
      short: 'r',
      value: 'RANGE',
      help: 'only these bytes: 0-499, 500-, -500 (the last 500), or several, comma-separated; attach one that starts with -: -r-500',
    },
    preserve: {
      type: 'boolean',
      short: 'p',
      help: "with -o/-O: also keep the remote file's mtime, and as root its owner and set-id bits (cp -p, scp -p)",
    },
    ...commonOptions,
  },
} as const satisfies CommandSpec;

const RANGE = /^(\d+-\d*|-\d+)(,(\d+-\d*|-\d+))*$/;

export function parseGetArgs(argv: string[], env: Env = process.env): GetArgs {
  const { values, positionals } = parseCommand(getSpec, argv);
  const [remote] = expectPositionals('get', positionals, ['REMOTE']) as [string];
  const common = parseCommon(values, env);
  if (values.output !== undefined && values['remote-name'])
    throw usageError('get: give -o FILE or -O, not both');
  let output: string | undefined;
  if (values['remote-name']) {
    const base = path.posix.basename(remote);
    if (remote.endsWith('/') || base === '' || base === '.' || base === '..') {
      throw usageError(`get -O: "${remote}" has no file name to save as; use -o FILE`);
    }
    output = base;
  } else if (values.output !== undefined && values.output !== '-') {
    if (values.output === '') throw usageError('get -o: empty file name');
    output = values.output;
  }
  const resumeFlag = values['continue-at'];
  if (resumeFlag !== undefined && resumeFlag !== '-') {
    throw usageError(`get -C takes "-" (continue from the local file's size), got "${resumeFlag}"`);
  }
  const resume = resumeFlag === '-';
  if (resume && output === undefined)
    throw usageError('get -C -: needs -o FILE or -O (standard output cannot be resumed)');
  const range = values.range;
  if (range !== undefined && !RANGE.test(range)) {
    throw usageError(`get -r takes byte ranges like 0-499, 500- or -500 (comma-separated), got "${range}"`);
  }
  if (resume && range !== undefined) throw usageError('get: -C - and -r exclude each other');
  const preserve = values.preserve === true;
  if (preserve && output === undefined)
    throw usageError('get -p: needs -o FILE or -O (standard output has no mode)');
  return { common, remote, output, forceStdout: values.output === '-', resume, range, preserve };
}

export async function getCommand(argv: string[]): Promise<void> {
  const args = parseGetArgs(argv);
  return withFileClient(
    args.common,
    (socket) => `GET ${filesPath(args.remote)} on ${socket}`,
    async (client) => {
      const progress = progressBar(path.posix.basename(args.remote) || args.remote, args.common.silent);
      let note: string | undefined;
      try {
        if (args.output === undefined) {
          const res = await client.get(args.remote, { range: args.range });
          const body = progress
            ? res.body.pipe(progressStream(progress.update, res.contentLength))
            : res.body;
          if (body !== res.body) res.body.once('error', (err) => body.destroy(err));
          const out = args.forceStdout ? body : refuseBinaryToTerminal(body, process.stdout);
          await toStdout(out, process.stdout, res.contentLength);
        } else {
          const result = await client.download(args.remote, args.output, {
            resume: args.resume,
            range: args.range,
            keep: args.preserve ? 'all' : 'mode',
            onProgress: progress?.update,
          });
          if (result.restart !== undefined) note = restartNote(result.restart, args.remote, args.output);
        }
        progress?.done();
        if (note !== undefined && !args.common.silent) process.stderr.write(`nullgate: ${note}\n`);
      } catch (err) {
        if (codeOf(err) !== 'NG_ERR_IS_A_DIRECTORY') throw err;
        // Exit 22 (cli/exit.ts), in one line that says what to do instead.
        const r = args.remote;
        throw new CommandError(
          `GET ${filesPath(r)} on ${formatAddress(args.common.socket)}: ${r} is a directory: list it with "nullgate ls ${r}", or copy it with "nullgate pull ${r} DIR"`,
          { cause: err },
        );
      } finally {
        progress?.end();
      }
      return;
    },
  );
}

/** Why `get -C -` downloaded the whole file over a partial one, in one line for stderr. */
export function restartNote(why: 'changed' | 'unverifiable', remote: string, file: string): string {
  return why === 'changed'
    ? `${remote} is not the file ${file} holds the start of (it changed, or the server does not resume): downloaded it whole`
    : `${file}'s mtime is not a Last-Modified of ${remote}, so it cannot tell which version it holds the start of: downloaded it whole`;
}

/**
 * Binary bytes written to a terminal can change its state (curl refuses them the same way): when
 * stdout is a terminal, a body whose first chunk holds a NUL byte stops before anything is
 * written. `-o -` writes it anyway; `-o FILE` saves it.
 */
export async function* refuseBinaryToTerminal(
  body: AsyncIterable<Buffer>,
  out: { readonly isTTY?: boolean | undefined },
): AsyncGenerator<Buffer> {
  let first = true;
  for await (const chunk of body) {
    if (first && out.isTTY === true && chunk.includes(0)) {
      throw new LocalFileError(
        'write',
        'standard output',
        new Error(
          'binary output can mess up your terminal: use -o FILE to save it, or -o - to write it anyway',
        ),
      );
    }
    first = false;
    yield chunk;
  }
}
