/**
 * `nullgate mv [-n] [-T] FROM TO`: rename within the served tree, like mv(1): a TO that is an
 * existing directory receives FROM under its own name (`-T`: TO is the new name, whatever it is).
 */
import path from 'node:path';
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { usageError } from '../../core/errors.js';
import { escapeControls } from '../../core/terminal-text.js';
import { ClientError } from '../client-error.js';
import { type FileClient, filesPath } from '../file-client.js';
import {
  type CommonOptions,
  type Env,
  commonOptions,
  expectPositionals,
  parseCommon,
  withFileClient,
} from './common.js';

export interface MvArgs {
  readonly common: CommonOptions;
  readonly from: string;
  readonly to: string;
  /** -n: fail (412) rather than replace an existing TO (`Overwrite: F`). */
  readonly noClobber: boolean;
  /** -T: TO is the new name even when it is an existing directory. */
  readonly noTargetDirectory: boolean;
}

export const mvSpec = {
  name: 'mv',
  usage: ['nullgate mv [-n] [-T] FROM TO'],
  summary:
    'Renames FROM to TO within the served tree (HTTP MOVE), replacing TO; a TO that is an existing directory receives FROM under its own name, as with mv(1).',
  options: {
    'no-target-directory': {
      type: 'boolean',
      short: 'T',
      help: 'treat TO as the new name, also when it is an existing directory',
    },
    'no-clobber': {
      type: 'boolean',
      short: 'n',
      help: 'fail (412, exit 22) instead of replacing an existing TO',
    },
    ...commonOptions,
  },
} as const satisfies CommandSpec;

export function parseMvArgs(argv: string[], env: Env = process.env): MvArgs {
  const { values, positionals } = parseCommand(mvSpec, argv);
  const [from, to] = expectPositionals('mv', positionals, ['FROM', 'TO']) as [string, string];
  if (from === '' || to === '') throw usageError('mv: empty FROM or TO');
  return {
    common: parseCommon(values, env),
    from,
    to,
    noClobber: values['no-clobber'] === true,
    noTargetDirectory: values['no-target-directory'] === true,
  };
}

/** Where FROM goes: into TO under FROM's own name when TO is a directory (mv(1)), else TO itself. */
export function moveTarget(from: string, to: string, toIsDirectory: boolean): string {
  if (!toIsDirectory) return to;
  const name = path.posix.basename(from.replace(/\/+$/, ''));
  return `${to.replace(/\/+$/, '')}/${name}`;
}

/** Is REMOTE an existing directory? `HEAD REMOTE/` is 2xx only for one (a file gives ENOTDIR: 404). */
async function isRemoteDirectory(client: FileClient, remote: string): Promise<boolean> {
  try {
    await client.stat(remote.endsWith('/') ? remote : `${remote}/`);
    return true;
  } catch (err) {
    if (err instanceof ClientError && err.statusCode === 404) return false;
    throw err;
  }
}

export async function mvCommand(argv: string[]): Promise<void> {
  const args = parseMvArgs(argv);
  return withFileClient(
    args.common,
    (socket) => `MOVE ${filesPath(args.from)} on ${socket}`,
    async (client) => {
      const target = args.noTargetDirectory
        ? args.to
        : moveTarget(args.from, args.to, await isRemoteDirectory(client, args.to));
      const { replaced } = await client.move(args.from, target, { overwrite: !args.noClobber });
      if (!args.common.silent) {
        process.stderr.write(
          `nullgate: moved ${escapeControls(args.from)} to ${escapeControls(target)}${replaced ? ' (replacing it)' : ''}\n`,
        );
      }
    },
  );
}
