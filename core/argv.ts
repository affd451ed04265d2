/**
 * The one argument-table validator. Every command declares its options once, in a table that
 * is node:util parseArgs's config plus what `--help` shows (the value's name, one line of help,
 * a heading for shared groups); parsing, the one-line usage errors and the help text all come
 * from that table. Here in core/ because both sides have verbs: the client's (client/verbs/)
 * and the CLI's own (serve, install-client).
 */
import { parseArgs } from 'node:util';
import { usageError } from './errors.js';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** The value's name in help and messages (`FILE`); string options only. */
  readonly value?: string;
  /** One line for --help. */
  readonly help: string;
  /** The heading --help lists it under (shared options); own options go under "Options". */
  readonly group?: string;
  /** Accepted, not listed (curl's -S, which changes nothing here). */
  readonly hidden?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

export interface CommandSpec<O extends OptionTable = OptionTable> {
  /** The verb: `get`. */
  readonly name: string;
  /** Its synopses (`nullgate get REMOTE …`), as the general usage shows them. */
  readonly usage: readonly string[];
  /** What it does, in a sentence or two. */
  readonly summary: string;
  /** The operands named in `usage`, with a line each. */
  readonly operands?: readonly (readonly [string, string])[];
  readonly options: O;
}

/** What parseArgs makes of a table: a string or boolean (or an array, `multiple`) per option. */
export type ParsedValues<O extends OptionTable> = ReturnType<
  typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>
>['values'];

/** Every command takes these, and the dispatcher answers them before the command runs. */
const HELP_OPTION = { type: 'boolean', short: 'h', help: 'show this help and exit' } as const;

/** A value that looks like an option must be attached to its flag (`-r-500`, `--range=-500`). */
function looksLikeOption(value: string): boolean {
  return value.length > 1 && value.startsWith('-');
}

function tokensOf(
  options: OptionTable,
  argv: readonly string[],
): ReturnType<typeof parseArgs<{ options: OptionTable; tokens: true; strict: false }>>['tokens'] {
  return parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true }).tokens;
}

/** `-o, --output` as a message names it: the way the user wrote it first, then the long form. */
function shownName(name: string, rawName: string): string {
  return rawName === `--${name}` ? rawName : `${rawName} (--${name})`;
}

/**
 * argv checked against the table, with one-line usage errors that name the command, the option
 * and what was wrong (node's own messages are several sentences, with quotes that do not pair).
 */
export function parseCommand<const S extends CommandSpec>(
  spec: S,
  argv: readonly string[],
): {
  values: ParsedValues<S['options']>;
  positionals: string[];
  /** In command-line order, for options whose order matters (curl joins -d values in order). */
  tokens: { kind: string; name?: string; value?: string | undefined }[];
} {
  const verb = spec.name;
  for (const token of tokensOf(spec.options, argv)) {
    if (token.kind !== 'option') continue;
    const option = Object.hasOwn(spec.options, token.name) ? spec.options[token.name] : undefined;
    if (option === undefined) {
      throw usageError(`${verb}: unknown option ${token.rawName} (see nullgate ${verb} --help)`);
    }
    const value = option.value ?? 'VALUE';
    if (option.type === 'boolean' && token.value !== undefined) {
      throw usageError(
        `${verb}: ${shownName(token.name, token.rawName)} takes no value, got "${token.value}"`,
      );
    }
    if (option.type === 'string' && token.value === undefined) {
      throw usageError(`${verb}: ${shownName(token.name, token.rawName)} needs a value (${value})`);
    }
    if (
      option.type === 'string' &&
      token.value !== undefined &&
      !token.inlineValue &&
      looksLikeOption(token.value)
    ) {
      const attached = token.rawName.startsWith('--')
        ? `${token.rawName}=${token.value}`
        : `${token.rawName}${token.value}`;
      throw usageError(
        `${verb}: ${token.rawName} ${token.value}: a value that starts with '-' must be attached (${attached}); or did you leave out ${value}?`,
      );
    }
  }
  try {
    const { values, positionals, tokens } = parseArgs({
      args: [...argv],
      options: spec.options,
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
    // parseArgs types values from a literal table; here the table is generic.
    return { values: values as ParsedValues<S['options']>, positionals, tokens };
  } catch (err) {
    // The checks above cover what parseArgs refuses; should a Node version refuse more, its
    // first sentence is still one line.
    const e = err as { code?: string; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) {
      throw usageError(`${verb}: ${(e.message ?? String(err)).split(/\.\s|\n/)[0]}`);
    }
    throw err;
  }
}

/**
 * True when argv asks for help (`-h`, `--help`, also among other flags, as git and curl read
 * it), and not as a value (`request -d -h` sends "-h") or after `--`.
 */
export function wantsHelp(spec: CommandSpec, argv: readonly string[]): boolean {
  return tokensOf({ ...spec.options, help: HELP_OPTION }, argv).some(
    (token) => token.kind === 'option' && token.name === 'help' && token.value === undefined,
  );
}

/** Words filled into lines of at most `width` characters (a longer word gets a line of its own). */
function fill(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines;
}

/** Columns of `label  help`, the help filled under its column; a longer label gets a line of its own. */
function table(rows: readonly (readonly [string, string])[], labelWidth: number, width: number): string[] {
  const indent = ' '.repeat(2 + labelWidth + 2);
  const lines: string[] = [];
  for (const [label, help] of rows) {
    const wrapped = fill(help, width - indent.length);
    if (label.length > labelWidth) lines.push(`  ${label}`);
    else lines.push(`  ${label.padEnd(labelWidth)}  ${wrapped.shift() ?? ''}`);
    for (const rest of wrapped) lines.push(`${indent}${rest}`);
  }
  return lines;
}

function optionLabel(name: string, option: OptionSpec): string {
  const flag = option.short === undefined ? `    --${name}` : `-${option.short}, --${name}`;
  return option.type === 'string' ? `${flag} ${option.value ?? 'VALUE'}` : flag;
}

/** A command's --help: usage, what it does, its operands, its options by group. */
export function formatHelp(spec: CommandSpec, footer: readonly string[] = [], width = 80): string {
  const out: string[] = [];
  const operands = spec.operands ?? [];
  // Each synopsis may go on over lines of its own, indented to follow `nullgate `.
  spec.usage.forEach((synopsis, i) =>
    synopsis
      .split('\n')
      .forEach((line, j) => out.push(`${i === 0 && j === 0 ? 'Usage: ' : '       '}${line}`)),
  );
  out.push('', ...fill(spec.summary, width));
  const groups = new Map<string, [string, string][]>([['Options', []]]);
  for (const [name, option] of Object.entries(spec.options)) {
    if (option.hidden === true) continue;
    const heading = option.group ?? 'Options';
    if (!groups.has(heading)) groups.set(heading, []);
    groups.get(heading)!.push([optionLabel(name, option), option.help]);
  }
  groups.get('Options')!.push([optionLabel('help', HELP_OPTION), HELP_OPTION.help]);
  const labels = [...operands, ...[...groups.values()].flat()].map(([label]) => label.length);
  const labelWidth = Math.min(Math.max(...labels), 26);
  if (operands.length > 0) out.push('', 'Operands:', ...table(operands, labelWidth, width));
  for (const [heading, rows] of groups) out.push('', `${heading}:`, ...table(rows, labelWidth, width));
  if (footer.length > 0) out.push('', ...footer);
  return `${out.join('\n')}\n`;
}
