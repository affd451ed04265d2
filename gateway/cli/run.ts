/**
 * The CLI's dispatcher: picks the verb and loads only that verb's module, so a client verb never
 * pays for Fastify and the server never loads undici. Returns the exit code; never calls
 * process.exit (bin/nullgate.js and the client bundle's launcher are the one exit path).
 */
import { CliError, ExitCode, usageError } from './exit.js';

export const USAGE = `Usage:
  nullgate serve [--socket @NAME] [--root DIR] [--writable] [--allow-uid N]... [--allow-gid N]...
                 [--allow-any-peer] [--max-upload SIZE] [--grace SECONDS] [--log-level L]
  nullgate get REMOTE [-o FILE | -O] [-C -] [-r RANGE]
  nullgate put LOCAL REMOTE | nullgate put - REMOTE
  nullgate ls [-l] [--json] REMOTE
  nullgate rm [-r] REMOTE  |  nullgate mkdir REMOTE  |  nullgate mv FROM TO
  nullgate pull REMOTE_DIR LOCAL_DIR  |  nullgate push LOCAL_DIR REMOTE_DIR
  nullgate request [-X METHOD] [-H 'K: V']... [-d DATA | --data-binary @FILE | -T FILE] [-o FILE]
                   [-i] [-I] [-f] [-s] [-v] PATH
  nullgate install-client DIR [--with-node]
Client commands take --socket @NAME (or --abstract-unix-socket NAME, --unix-socket PATH,
NULLGATE_SOCKET; default @nullgate) and --wait SECONDS.
See docs/cli.md for every flag and exit code.`;

export type Command = (argv: string[]) => Promise<number>;
export type CommandTable = Readonly<Record<string, () => Promise<Command>>>;

export async function run(argv: string[], commands: CommandTable): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    if (verb === undefined || verb === '-h' || verb === '--help' || verb === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return verb === undefined ? ExitCode.USAGE : ExitCode.OK;
    }
    if (verb === '--version' || verb === '-V') {
      process.stdout.write(`${(await import('../version.js')).version}\n`);
      return ExitCode.OK;
    }
    const load = commands[verb];
    if (!load) throw usageError(`unknown command "${verb}" (try nullgate --help)`);
    return await (
      await load()
    )(rest);
  } catch (err) {
    return reportError(err);
  }
}

export function reportError(err: unknown): number {
  if (err instanceof CliError) {
    process.stderr.write(`nullgate: ${err.message}\n`);
    return err.exitCode;
  }
  const e = err as { code?: string; message?: string };
  if (typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`nullgate: ${e.message ?? String(err)}\n`);
    return ExitCode.USAGE;
  }
  if (e.code === 'NG_ERR_ADDRESS_INVALID' || e.code === 'NG_ERR_INVALID_OPTION') {
    process.stderr.write(`nullgate: ${e.message ?? String(err)}\n`);
    return ExitCode.USAGE;
  }
  process.stderr.write(`nullgate: ${e.message ?? String(err)}\n`);
  return ExitCode.FAILURE;
}
