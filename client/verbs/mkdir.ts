/** `nullgate mkdir REMOTE...`: create directories with their parents (like mkdir -p). */
import { usageError } from '../../core/errors.js';
import { filesPath } from '../client.js';
import { type CommonOptions, type Env, commonOptions, parseCommon, parseVerb, withClient } from './common.js';

export interface MkdirArgs {
  readonly common: CommonOptions;
  readonly remotes: string[];
}

export function parseMkdirArgs(argv: string[], env: Env = process.env): MkdirArgs {
  const { values, positionals } = parseVerb('mkdir', argv, {
    ...commonOptions,
    // mkdir -p is what the server always does; accepted so muscle memory works.
    parents: { type: 'boolean', short: 'p' },
  });
  if (positionals.length === 0) throw usageError('mkdir: missing REMOTE (usage: nullgate mkdir REMOTE)');
  if (positionals.includes('')) throw usageError('mkdir: empty REMOTE');
  return { common: parseCommon(values, env), remotes: positionals };
}

export async function mkdirCommand(argv: string[]): Promise<void> {
  const args = parseMkdirArgs(argv);
  let current = args.remotes[0]!;
  const shown = (p: string): string => filesPath(p.endsWith('/') ? p : `${p}/`);
  return withClient(
    args.common,
    (socket) => `PUT ${shown(current)} on ${socket}`,
    async (client) => {
      for (const remote of args.remotes) {
        current = remote;
        await client.mkdir(remote);
      }
      return;
    },
  );
}
