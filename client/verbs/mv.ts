/** `nullgate mv [-n] FROM TO`: rename within the served tree. */
import { usageError } from '../../core/errors.js';
import { filesPath } from '../client.js';
import {
  type CommonOptions,
  type Env,
  commonOptions,
  expectPositionals,
  parseCommon,
  parseVerb,
  withClient,
} from './common.js';

export interface MvArgs {
  readonly common: CommonOptions;
  readonly from: string;
  readonly to: string;
  /** -n: fail (412) rather than replace an existing TO (`Overwrite: F`). */
  readonly noClobber: boolean;
}

export function parseMvArgs(argv: string[], env: Env = process.env): MvArgs {
  const { values, positionals } = parseVerb('mv', argv, {
    ...commonOptions,
    'no-clobber': { type: 'boolean', short: 'n' },
  });
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
