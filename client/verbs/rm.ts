/** `nullgate rm [-r] REMOTE...`: delete files, empty directories, or (with -r) trees. */
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { usageError } from '../../core/errors.js';
import { ClientError, CommandError } from '../client-error.js';
import { filesPath } from '../file-client.js';
import { type CommonOptions, type Env, commonOptions, parseCommon, withFileClient } from './common.js';

export interface RmArgs {
  readonly common: CommonOptions;
  readonly remotes: string[];
  readonly recursive: boolean;
}

export const rmSpec = {
  name: 'rm',
  usage: ['nullgate rm [-r] REMOTE...'],
  summary: 'Deletes files and empty directories of the served tree; the root cannot be deleted.',
  options: {
    recursive: { type: 'boolean', short: 'r', help: 'delete directories with everything in them' },
    ...commonOptions,
  },
} as const satisfies CommandSpec;

export function parseRmArgs(argv: string[], env: Env = process.env): RmArgs {
  const { values, positionals } = parseCommand(rmSpec, argv);
  if (positionals.length === 0) throw usageError('rm: missing REMOTE (usage: nullgate rm [-r] REMOTE)');
  if (positionals.includes('')) throw usageError('rm: empty REMOTE');
  return { common: parseCommon(values, env), remotes: positionals, recursive: values.recursive === true };
}

export async function rmCommand(argv: string[]): Promise<void> {
  const args = parseRmArgs(argv);
  let current = args.remotes[0]!;
  return withFileClient(
    args.common,
    (socket) => `DELETE ${filesPath(current)} on ${socket}`,
    async (client) => {
      for (const remote of args.remotes) {
        current = remote;
        try {
          await client.remove(remote, { recursive: args.recursive });
        } catch (err) {
          // The server's message speaks HTTP (?recursive=1); the CLI user needs the flag.
          if (err instanceof ClientError && err.statusCode === 409 && !args.recursive) {
            throw new CommandError(
              `${err.method} ${err.path} on ${err.socket}: 409 ${err.code} ${remote} is a directory that is not empty: use rm -r to delete it with its contents`,
              { cause: err },
            );
          }
          throw err;
        }
      }
      return;
    },
  );
}
