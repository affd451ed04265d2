/** `nullgate rm [-r] REMOTE...`: delete files, empty directories, or (with -r) trees. */
import { ExitCode, usageError } from '../../cli/exit.js';
import { filesPath } from '../client.js';
import { type CommonOptions, type Env, commonOptions, parseCommon, parseVerb, withClient } from './common.js';

export interface RmArgs {
  readonly common: CommonOptions;
  readonly remotes: string[];
  readonly recursive: boolean;
}

export function parseRmArgs(argv: string[], env: Env = process.env): RmArgs {
  const { values, positionals } = parseVerb('rm', argv, {
    ...commonOptions,
    recursive: { type: 'boolean', short: 'r' },
  });
  if (positionals.length === 0) throw usageError('rm: missing REMOTE (usage: nullgate rm [-r] REMOTE)');
  if (positionals.includes('')) throw usageError('rm: empty REMOTE');
  return { common: parseCommon(values, env), remotes: positionals, recursive: values.recursive === true };
}

export async function rmCommand(argv: string[]): Promise<number> {
  const args = parseRmArgs(argv);
  let current = args.remotes[0]!;
  return withClient(
    args.common,
    (socket) => `DELETE ${filesPath(current)} on ${socket}`,
    async (client) => {
      for (const remote of args.remotes) {
        current = remote;
        await client.remove(remote, { recursive: args.recursive });
      }
      return ExitCode.OK;
    },
  );
}
