/** `nullgate mv [-n] FROM TO`: rename within the served tree. */
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { usageError } from '../../core/errors.js';
import { filesPath } from '../client.js';
import {
  type CommonOptions,
  type Env,
  commonOptions,
  expectPositionals,
  parseCommon,
  withClient,
} from './common.js';

export interface MvArgs {
  readonly common: CommonOptions;
  readonly from: string;
  readonly to: string;
  /** -n: fail (412) rather than replace an existing TO (`Overwrite: F`). */
  readonly noClobber: boolean;
}

export const mvSpec = {
  name: 'mv',
  usage: ['nullgate mv [-n] FROM TO'],
  summary: 'Renames FROM to TO within the served tree (HTTP MOVE), replacing TO.',
  options: {
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
  return { common: parseCommon(values, env), from, to, noClobber: values['no-clobber'] === true };
}

export async function mvCommand(argv: string[]): Promise<void> {
  const args = parseMvArgs(argv);
  return withClient(
    args.common,
    (socket) => `MOVE ${filesPath(args.from)} on ${socket}`,
    async (client) => {
      await client.move(args.from, args.to, { overwrite: !args.noClobber });
      return;
    },
  );
}
