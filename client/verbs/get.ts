/** `nullgate get REMOTE [-o FILE | -O] [-C -] [-r RANGE]`: a file to stdout or to a local file. */
import { usageError } from '../../core/errors.js';
import path from 'node:path';
import {
  type CommonOptions,
  type Env,
  commonOptions,
  expectPositionals,
  parseCommon,
  parseVerb,
  progressBar,
  toStdout,
  withClient,
} from './common.js';
import { LocalFileError } from '../client-error.js';
import { filesPath, progressStream } from '../client.js';

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
}

const RANGE = /^(\d+-\d*|-\d+)(,(\d+-\d*|-\d+))*$/;

export function parseGetArgs(argv: string[], env: Env = process.env): GetArgs {
  const { values, positionals } = parseVerb('get', argv, {
    ...commonOptions,
    output: { type: 'string', short: 'o' },
    'remote-name': { type: 'boolean', short: 'O' },
    'continue-at': { type: 'string', short: 'C' },
    range: { type: 'string', short: 'r' },
  });
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
  return { common, remote, output, forceStdout: values.output === '-', resume, range };
}

export async function getCommand(argv: string[]): Promise<void> {
  const args = parseGetArgs(argv);
  return withClient(
    args.common,
    (socket) => `GET ${filesPath(args.remote)} on ${socket}`,
    async (client) => {
      const progress = progressBar(path.posix.basename(args.remote) || args.remote, args.common.silent);
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
          await client.download(args.remote, args.output, {
            resume: args.resume,
            range: args.range,
            onProgress: progress?.update,
          });
        }
        progress?.done();
      } finally {
        progress?.end();
      }
      return;
    },
  );
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
