/**
 * The CLI's dispatcher: picks the verb and loads only that verb's module, so a client verb never
 * pays for Fastify and the server never loads undici. Returns the exit code; never calls
 * process.exit (bin/nullgate.js and the client bundle's launcher are the one exit path).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type CommandSpec, formatHelp, wantsHelp } from '../core/argv.js';
import { usageError } from '../core/errors.js';
import { escapeControls } from '../core/terminal-text.js';
import { EXIT_CODE_SUMMARY, ExitCode, exitCodeOf } from './exit.js';
import { rawArgs } from './raw-argv.js';

/**
 * The synopsis, one entry per line group, each with the verbs it documents: a dispatcher shows
 * the entries whose verbs it has, so the chroot bundle (client verbs only) never offers `serve`.
 * docs/cli.md opens with the same lines (test/cli/client-cli.test.ts keeps them equal).
 */
export const SYNOPSIS: readonly { readonly verbs: readonly string[]; readonly text: string }[] = [
  {
    verbs: ['serve'],
    text: `nullgate serve [--socket @NAME] [--root DIR] [--writable] [--export CHROOT_DIR=ROOT_DIR[:rw]]...
               [--allow-uid N]... [--allow-gid N]... [--allow-any-peer] [--max-upload SIZE] [--netns PATH]
               [--grace SECONDS] [--log-level L] [--max-connections N] [--max-uploads N]
               [--max-header-size SIZE] [--headers-timeout S] [--request-timeout S] [--idle-timeout S]
               [--keep-alive-timeout S] [--body-min-rate RATE] [--body-rate-window S] [--body-timeout S]
               [--upload-expiry S]`,
  },
  { verbs: ['install-client'], text: 'nullgate install-client DIR [--with-node]' },
  { verbs: ['get'], text: 'nullgate get REMOTE [-o FILE | -O] [-C -] [-r RANGE] [-p]' },
  { verbs: ['put'], text: 'nullgate put [-n] [-p] LOCAL REMOTE | nullgate put [-n] - REMOTE' },
  { verbs: ['ls'], text: 'nullgate ls [-l] [--json] [REMOTE]' },
  {
    verbs: ['rm', 'mkdir', 'mv'],
    text: 'nullgate rm [-r] REMOTE...    nullgate mkdir REMOTE...    nullgate mv [-n] [-T] FROM TO',
  },
  {
    verbs: ['pull', 'push'],
    text: `nullgate pull [--sync [--delete] [--checksum] [--dry-run]] REMOTE_DIR LOCAL_DIR
nullgate push [--sync [--delete] [--checksum] [--dry-run]] LOCAL_DIR REMOTE_DIR`,
  },
  {
    verbs: ['request'],
    text: `nullgate request [-X METHOD] [-H 'K: V']... [-d DATA | --data-binary @FILE | -T FILE] [-o FILE]
                 [-i] [-I] [-f] [-s] [-v] PATH`,
  },
];

/** The reference beside this install (dist/cli/ or bundle/ in the package), if it is there. */
function referenceDoc(): string | undefined {
  for (const rel of ['../../docs/cli.md', '../docs/cli.md']) {
    const file = fileURLToPath(new URL(rel, import.meta.url));
    try {
      // A chroot has the bundle alone: whatever sits at these paths there is not ours.
      if (readFileSync(file, 'utf8').startsWith('# nullgate command line')) return file;
    } catch {
      // Not at this level.
    }
  }
  return undefined;
}

/** Where to read more, from a command's help or the general one. */
function moreHelp(general: boolean): string[] {
  const doc = referenceDoc();
  const lines = general
    ? ["nullgate help CMD (or nullgate CMD --help) shows a command's options and operands."]
    : ['nullgate --help lists every command and the exit codes.'];
  if (doc !== undefined) lines.push(`The full reference: ${doc}`);
  return lines;
}

/** `0 success, 1 other failure, …`, wrapped. */
function exitCodeLines(width = 96): string[] {
  const lines: string[] = [];
  let line = 'Exit codes:';
  const items = Object.entries(EXIT_CODE_SUMMARY).map(([code, meaning]) => `${code} ${meaning}`);
  items.forEach((item, i) => {
    const text = `${item}${i === items.length - 1 ? '.' : ','}`;
    if (line.length + 1 + text.length > width) {
      lines.push(line);
      line = text;
    } else line = `${line} ${text}`;
  });
  lines.push(line);
  return lines;
}

/** The help text for a dispatcher with these verbs. */
export function usage(commands: CommandTable): string {
  const lines = SYNOPSIS.filter((entry) => entry.verbs.every((verb) => verb in commands))
    .flatMap((entry) => entry.text.split('\n'))
    .map((line) => `  ${line}`);
  return [
    'Usage:',
    ...lines,
    'Client commands take --socket @NAME (or --abstract-unix-socket NAME, --unix-socket PATH,',
    'NULLGATE_SOCKET; default @nullgate), --wait SECONDS and -s.',
    ...exitCodeLines(),
    ...moreHelp(true),
  ].join('\n');
}

/** `nullgate CMD --help` and `nullgate help CMD`. */
export function commandHelp(spec: CommandSpec): string {
  return formatHelp(spec, moreHelp(false));
}

/** A verb: its table (for --help) and what runs it, resolving to its exit code or to nothing. */
export interface Verb {
  readonly spec: CommandSpec;
  readonly run: (argv: string[]) => Promise<number> | Promise<void>;
}
export type CommandTable = Readonly<Record<string, () => Promise<Verb>>>;

function load(commands: CommandTable, verb: string): Promise<Verb> {
  const loader = Object.hasOwn(commands, verb) ? commands[verb] : undefined;
  if (!loader) throw usageError(`unknown command "${verb}" (try nullgate --help)`);
  return loader();
}

/**
 * Standard output's errors outside a verb's own writing (help text, a late error after the last
 * write). A reader that closed its end (EPIPE: `nullgate --help | head -1`) chose to stop: no
 * failure, as with a verb's output (toStdout). Anything else (a full disk) is one line and exit
 * 23, unless a verb is writing and hears it itself.
 */
function onStdoutError(err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE' || process.stdout.listenerCount('error') > 1) return;
  process.stderr.write(`nullgate: cannot write standard output: ${escapeControls(err.message)}\n`);
  process.exitCode = ExitCode.WRITE;
}

/**
 * Without a listener, an error on stdout is an uncaught exception with a stack trace. Node makes
 * process.stdout on first use (for a pipe, a net.Socket: node:net loaded, ~2 ms of a `get -o`
 * that never writes there), so the listener is added when something first asks for it.
 */
function guardStdout(): void {
  const attach = (out: NodeJS.WriteStream): void => {
    if (!out.listeners('error').includes(onStdoutError)) out.on('error', onStdoutError);
  };
  const desc = Object.getOwnPropertyDescriptor(process, 'stdout');
  const get = desc?.get;
  if (desc === undefined || get === undefined || desc.configurable !== true) {
    attach(process.stdout);
    return;
  }
  Object.defineProperty(process, 'stdout', {
    ...desc,
    get() {
      Object.defineProperty(process, 'stdout', desc);
      const out = get.call(process) as NodeJS.WriteStream;
      attach(out);
      return out;
    },
  });
}

export async function run(argv: string[], commands: CommandTable): Promise<number> {
  const [verb, ...rest] = rawArgs(argv);
  guardStdout();
  try {
    if (verb === '-h' || verb === '--help' || (verb === 'help' && rest.length === 0)) {
      process.stdout.write(`${usage(commands)}\n`);
      return ExitCode.OK;
    }
    if (verb === 'help') {
      if (rest.length > 1) throw usageError(`help takes one command, got ${rest.length}: nullgate help CMD`);
      process.stdout.write(commandHelp((await load(commands, rest[0]!)).spec));
      return ExitCode.OK;
    }
    if (verb === undefined) {
      // A usage error: the help goes with the diagnostics, not into a pipe that expects data.
      process.stderr.write(`${usage(commands)}\n`);
      return ExitCode.USAGE;
    }
    if (verb === '--version' || verb === '-V') {
      process.stdout.write(`${(await import('../core/version.js')).version}\n`);
      return ExitCode.OK;
    }
    const command = await load(commands, verb);
    if (wantsHelp(command.spec, rest)) {
      process.stdout.write(commandHelp(command.spec));
      return ExitCode.OK;
    }
    const code = await command.run(rest);
    return typeof code === 'number' ? code : ExitCode.OK;
  } catch (err) {
    return reportError(err);
  }
}

/**
 * Prints the one line of a failure and returns its exit code. Messages carry text from the server
 * (its error message, archive entry names): control characters in it are escaped, so it can
 * neither drive the terminal nor forge more lines.
 */
export function reportError(err: unknown): number {
  const message = (err as { message?: unknown } | null)?.message ?? String(err);
  process.stderr.write(`nullgate: ${escapeControls(String(message))}\n`);
  return exitCodeOf(err);
}
