/** `nullgate mkdir REMOTE...`: create directories with their parents (like mkdir -p). */
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { usageError } from '../../core/errors.js';
import { filesPath } from '../file-client.js';
import { type CommonOptions, type Env, commonOptions, parseCommon, withFileClient } from './common.js';

export interface MkdirArgs {
  readonly common: CommonOptions;
  readonly remotes: string[];
}

export const mkdirSpec = {
  name: 'mkdir',
  usage: ['nullgate mkdir REMOTE...'],
  summary:
    'Creates directories of the served tree with their parents, like mkdir -p; an existing directory is fine.',
  options: {
    // mkdir -p is what the server always does; accepted so muscle memory works.
    parents: { type: 'boolean', short: 'p', help: 'accepted for habit: parents are always created' },
    ...commonOptions,
  },
} as const satisfies CommandSpec;

export function parseMkdirArgs(argv: string[], env: Env = process.env): MkdirArgs {
  const { values, positionals } = parseCommand(mkdirSpec, argv);
  if (positionals.length === 0) throw usageError('mkdir: missing REMOTE (usage: nullgate mkdir REMOTE)');
  if (positionals.includes('')) throw usageError('mkdir: empty REMOTE');
  return { common: parseCommon(values, env), remotes: positionals };
}

export async function mkdirCommand(argv: string[]): Promise<void> {
  const args = parseMkdirArgs(argv);
  let current = args.remotes[0]!;
  const shown = (p: string): string => filesPath(p.endsWith('/') ? p : `${p}/`);
  return withFileClient(
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
