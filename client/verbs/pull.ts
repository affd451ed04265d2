/** `nullgate pull REMOTE_DIR LOCAL_DIR` and `nullgate push LOCAL_DIR REMOTE_DIR`: whole trees as tar streams. */
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { usageError } from '../../core/errors.js';
import path from 'node:path';
import { archivePath } from '../file-client.js';
import type { PullResult } from '../archive.js';
import { escapeControls } from '../../core/terminal-text.js';
import { listingLine } from '../../core/sync-plan.js';
import type { SyncResult } from '../sync.js';
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
  /** `--sync` and its options; undefined for a plain copy. */
  readonly sync?: { readonly delete: boolean; readonly checksum: boolean; readonly dryRun: boolean };
}

const syncOptions = {
  sync: {
    type: 'boolean',
    help: 'make the destination equal to the source, sending only entries that differ (type, size, mtime, mode, owner, link target, xattrs); unchanged files are not rewritten',
  },
  delete: { type: 'boolean', help: 'with --sync: also delete destination entries the source lacks' },
  checksum: {
    type: 'boolean',
    help: 'with --sync: compare file contents by sha-256 instead of size and mtime',
  },
  'dry-run': {
    type: 'boolean',
    short: 'n',
    help: 'with --sync: print what would change (send PATH, delete PATH), change nothing',
  },
} as const;

export const pullSpec = {
  name: 'pull',
  usage: ['nullgate pull [--sync [--delete] [--checksum] [--dry-run]] REMOTE_DIR LOCAL_DIR'],
  summary:
    'Copies the contents of a directory of the served tree into LOCAL_DIR (created if missing), in one tar stream: modes exactly as sent (no umask), nanosecond mtimes, hard links, sparse files, FIFOs and symlinks as written. As root also owners, set-id bits, every extended attribute and device nodes (like tar -xp); otherwise user.* attributes only, set-id bits dropped, devices skipped with a warning. Entries that would be written through a symlink, absolute names and .. are refused.',
  options: { ...syncOptions, ...commonOptions },
} as const satisfies CommandSpec;

export const pushSpec = {
  name: 'push',
  usage: ['nullgate push [--sync [--delete] [--checksum] [--dry-run]] LOCAL_DIR REMOTE_DIR'],
  summary:
    'Copies the contents of LOCAL_DIR into a directory of the served tree, in one tar stream that the server extracts all or nothing: numeric owners, every permission bit, nanosecond mtimes, hard links, extended attributes, holes of sparse files, FIFOs, devices and symlinks as written (what the server applies depends on who you are: see docs/security.md). Sockets are skipped with a warning.',
  options: { ...syncOptions, ...commonOptions },
} as const satisfies CommandSpec;

/** `--sync` and its options; --delete, --checksum and --dry-run mean nothing without it. */
function syncOf(
  verb: string,
  values: { sync?: boolean; delete?: boolean; checksum?: boolean; 'dry-run'?: boolean },
): Pick<TreeArgs, 'sync'> {
  if (values.sync !== true) {
    const lone = (['delete', 'checksum', 'dry-run'] as const).find((o) => values[o] === true);
    if (lone !== undefined) throw usageError(`${verb}: --${lone} needs --sync`);
    return {};
  }
  return {
    sync: {
      delete: values.delete === true,
      checksum: values.checksum === true,
      dryRun: values['dry-run'] === true,
    },
  };
}

/** The plan's lines on stdout: what a dry run would do, or (none) what a sync did not need. */
function printPlan(plan: SyncResult['plan']): void {
  const lines = plan.listing.map((item) => `${escapeControls(listingLine(item))}\n`);
  if (lines.length > 0) process.stdout.write(lines.join(''));
}

export function parsePullArgs(argv: string[], env: Env = process.env): TreeArgs {
  const { values, positionals } = parseCommand(pullSpec, argv);
  const [remote, local] = expectPositionals('pull', positionals, ['REMOTE_DIR', 'LOCAL_DIR']) as [
    string,
    string,
  ];
  if (remote === '' || local === '') throw usageError('pull: empty REMOTE_DIR or LOCAL_DIR');
  return { common: parseCommon(values, env), remote, local, ...syncOf('pull', values) };
}

export function parsePushArgs(argv: string[], env: Env = process.env): TreeArgs {
  const { values, positionals } = parseCommand(pushSpec, argv);
  const [local, remote] = expectPositionals('push', positionals, ['LOCAL_DIR', 'REMOTE_DIR']) as [
    string,
    string,
  ];
  if (remote === '' || local === '') throw usageError('push: empty LOCAL_DIR or REMOTE_DIR');
  return { common: parseCommon(values, env), remote, local, ...syncOf('push', values) };
}

export async function pullCommand(argv: string[]): Promise<void> {
  const args = parsePullArgs(argv);
  if (args.sync !== undefined) return syncCommand('pull', args, args.sync);
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
  if (args.sync !== undefined) return syncCommand('push', args, args.sync);
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

/** `pull --sync` / `push --sync`. A dry run prints the plan on stdout; a real one is quiet, as rsync without -v. */
async function syncCommand(
  verb: 'pull' | 'push',
  args: TreeArgs,
  sync: NonNullable<TreeArgs['sync']>,
): Promise<void> {
  return withClient(
    args.common,
    (socket) => `${verb === 'pull' ? 'POST' : 'PUT'} ${archivePath(args.remote)} on ${socket}`,
    async (client) => {
      const name = path.basename(path.resolve(args.local));
      const progress = sync.dryRun ? undefined : progressBar(name, args.common.silent);
      const options = {
        delete: sync.delete,
        checksum: sync.checksum,
        dryRun: sync.dryRun,
        onProgress: progress?.update,
      };
      let result: SyncResult;
      try {
        result =
          verb === 'pull'
            ? await client.pullSync(args.remote, args.local, options)
            : await client.pushSync(args.local, args.remote, options);
        progress?.done();
      } finally {
        progress?.end();
      }
      if (sync.dryRun) printPlan(result.plan);
      if (!args.common.silent) {
        for (const { name: skippedName, why } of result.skipped)
          process.stderr.write(`nullgate: pull: skipped ${escapeControls(skippedName)} (${why})\n`);
        for (const socketName of result.unsendable)
          process.stderr.write(
            `nullgate: push: skipped ${escapeControls(socketName)} (a socket cannot be archived)\n`,
          );
      }
    },
  );
}
