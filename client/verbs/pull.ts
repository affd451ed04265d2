/** `nullgate pull REMOTE_DIR LOCAL_DIR` and `nullgate push LOCAL_DIR REMOTE_DIR`: whole trees as tar streams. */
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { usageError } from '../../core/errors.js';
import path from 'node:path';
import { archivePath } from '../client.js';
import type { PullResult } from '../archive.js';
import { escapeControls } from '../../core/terminal-text.js';
import {
  type CommonOptions,
  type Env,
  commonOptions,
  expectPositionals,
  parseCommon,
  progressBar,
  withClient,
} from './common.js';

export interface TreeArgs {
  readonly common: CommonOptions;
  readonly remote: string;
  readonly local: string;
}

export const pullSpec = {
  name: 'pull',
  usage: ['nullgate pull REMOTE_DIR LOCAL_DIR'],
  summary:
    'Copies the contents of a directory of the served tree into LOCAL_DIR (created if missing), in one tar stream: modes exactly as sent (no umask), nanosecond mtimes, hard links, sparse files, FIFOs and symlinks as written. As root also owners, set-id bits, every extended attribute and device nodes (like tar -xp); otherwise user.* attributes only, set-id bits dropped, devices skipped with a warning. Entries that would be written through a symlink, absolute names and .. are refused.',
  options: commonOptions,
} as const satisfies CommandSpec;

export const pushSpec = {
  name: 'push',
  usage: ['nullgate push LOCAL_DIR REMOTE_DIR'],
  summary:
    'Copies the contents of LOCAL_DIR into a directory of the served tree, in one tar stream that the server extracts all or nothing: numeric owners, every permission bit, nanosecond mtimes, hard links, extended attributes, holes of sparse files, FIFOs, devices and symlinks as written (what the server applies depends on who you are: see docs/security.md). Sockets are skipped with a warning.',
  options: commonOptions,
} as const satisfies CommandSpec;

export function parsePullArgs(argv: string[], env: Env = process.env): TreeArgs {
  const { values, positionals } = parseCommand(pullSpec, argv);
  const [remote, local] = expectPositionals('pull', positionals, ['REMOTE_DIR', 'LOCAL_DIR']) as [
    string,
    string,
  ];
  if (remote === '' || local === '') throw usageError('pull: empty REMOTE_DIR or LOCAL_DIR');
  return { common: parseCommon(values, env), remote, local };
}

export function parsePushArgs(argv: string[], env: Env = process.env): TreeArgs {
  const { values, positionals } = parseCommand(pushSpec, argv);
  const [local, remote] = expectPositionals('push', positionals, ['LOCAL_DIR', 'REMOTE_DIR']) as [
    string,
    string,
  ];
  if (remote === '' || local === '') throw usageError('push: empty LOCAL_DIR or REMOTE_DIR');
  return { common: parseCommon(values, env), remote, local };
}

export async function pullCommand(argv: string[]): Promise<void> {
  const args = parsePullArgs(argv);
  return withClient(
    args.common,
    (socket) => `GET ${archivePath(args.remote)} on ${socket}`,
    async (client) => {
      const progress = progressBar(path.basename(args.local), args.common.silent);
      let skipped: PullResult['skipped'];
      try {
        ({ skipped } = await client.pull(args.remote, args.local, { onProgress: progress?.update }));
        progress?.done();
      } finally {
        progress?.end();
      }
      if (!args.common.silent) {
        for (const { name, why } of skipped)
          process.stderr.write(`nullgate: pull: skipped ${escapeControls(name)} (${why})\n`);
      }
      return;
    },
  );
}

export async function pushCommand(argv: string[]): Promise<void> {
  const args = parsePushArgs(argv);
  return withClient(
    args.common,
    (socket) => `PUT ${archivePath(args.remote)} on ${socket}`,
    async (client) => {
      const progress = progressBar(path.basename(path.resolve(args.local)), args.common.silent);
      let skipped: string[];
      try {
        ({ skipped } = await client.push(args.local, args.remote, { onProgress: progress?.update }));
        progress?.done();
      } finally {
        progress?.end();
      }
      if (!args.common.silent) {
        for (const name of skipped)
          process.stderr.write(
            `nullgate: push: skipped ${escapeControls(name)} (a socket cannot be archived)\n`,
          );
      }
      return;
    },
  );
}
