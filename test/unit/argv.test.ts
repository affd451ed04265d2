/** The argument-table validator (core/argv.ts): parsing, one-line usage errors, --help text. */
import { describe, expect, it } from 'vitest';
import { type CommandSpec, formatHelp, parseCommand, wantsHelp } from '../../core/argv.js';
import { ExitCode, exitCodeOf } from '../../cli/exit.js';

const spec = {
  name: 'demo',
  usage: ['nullgate demo [-l] [-o FILE] [-d DATA]... THING'],
  summary:
    'Does a demonstration of every kind of option, with a summary long enough to be filled over two lines.',
  operands: [['THING', 'what to demonstrate']],
  options: {
    long: { type: 'boolean', short: 'l', help: 'the long form' },
    output: { type: 'string', short: 'o', value: 'FILE', help: 'write to FILE' },
    data: { type: 'string', short: 'd', multiple: true, value: 'DATA', help: 'some data (repeatable)' },
    socket: { type: 'string', value: 'ADDRESS', help: 'where the server is', group: 'Finding the server' },
    quiet: { type: 'boolean', short: 'S', help: 'never shown', hidden: true },
  },
} as const satisfies CommandSpec;

function usageMessage(argv: string[]): string {
  try {
    parseCommand(spec, argv);
  } catch (err) {
    expect(exitCodeOf(err)).toBe(ExitCode.USAGE);
    return (err as Error).message;
  }
  throw new Error(`expected a usage error for ${JSON.stringify(argv)}`);
}

describe('parseCommand', () => {
  it.each([
    [['-l', 'x'], { long: true }, ['x']],
    [['-lo', 'f', 'x'], { long: true, output: 'f' }, ['x']],
    [['-o-', 'x'], { output: '-' }, ['x']],
    [['-o', '-', 'x'], { output: '-' }, ['x']],
    [['--output=-x', 'x'], { output: '-x' }, ['x']],
    [['-d-h', '-d', 'b', 'x'], { data: ['-h', 'b'] }, ['x']],
    [['-S', '--socket', '@s', 'x'], { quiet: true, socket: '@s' }, ['x']],
    [['--', '-l'], {}, ['-l']],
  ])('%j → %o %j', (argv, values, positionals) => {
    const parsed = parseCommand(spec, argv);
    expect(parsed.values).toEqual(values);
    expect(parsed.positionals).toEqual(positionals);
  });

  it.each([
    [['--bogus'], 'demo: unknown option --bogus (see nullgate demo --help)'],
    [['-x'], 'demo: unknown option -x (see nullgate demo --help)'],
    [['--help'], 'demo: unknown option --help (see nullgate demo --help)'],
    [['--long=yes'], 'demo: --long takes no value, got "yes"'],
    [['-o'], 'demo: -o (--output) needs a value (FILE)'],
    [['--output'], 'demo: --output needs a value (FILE)'],
    [
      ['-d', '-h'],
      "demo: -d -h: a value that starts with '-' must be attached (-d-h); or did you leave out DATA?",
    ],
    [
      ['--data', '-l'],
      "demo: --data -l: a value that starts with '-' must be attached (--data=-l); or did you leave out DATA?",
    ],
  ])('%j: %s', (argv, message) => {
    expect(usageMessage(argv)).toBe(message);
  });

  it('every message is one line, without the unpaired quotes of node:util', () => {
    for (const argv of [['--bogus'], ['-o'], ['-d', '-x'], ['--long=1']]) {
      const message = usageMessage(argv);
      expect(message).not.toContain('\n');
      expect(message.split("'").length % 2).toBe(1);
    }
  });
});

describe('wantsHelp', () => {
  it.each([
    [['--help'], true],
    [['-h'], true],
    [['x', '-h'], true],
    [['--bogus', '--help'], true],
    [['-lh'], true],
    [['-d', '-h'], false],
    [['-d-h'], false],
    [['--', '--help'], false],
    [['--help=1'], false],
    [['x'], false],
  ])('%j → %s', (argv, wanted) => {
    expect(wantsHelp(spec, argv)).toBe(wanted);
  });
});

describe('formatHelp', () => {
  const help = formatHelp(spec, ['See also: elsewhere.']);
  const lines = help.trimEnd().split('\n');

  it('opens with the usage, then the summary', () => {
    expect(lines[0]).toBe('Usage: nullgate demo [-l] [-o FILE] [-d DATA]... THING');
    expect(lines[2]).toMatch(/^Does a demonstration/);
  });

  it('lists the operands, every option but the hidden ones, and --help, by group', () => {
    expect(help).toMatch(/\nOperands:\n {2}THING +what to demonstrate\n/);
    expect(help).toMatch(/\nOptions:\n {2}-l, --long +the long form\n/);
    expect(help).toMatch(/ {2}-o, --output FILE +write to FILE\n/);
    expect(help).toMatch(/ {2}-d, --data DATA +some data \(repeatable\)\n/);
    expect(help).toMatch(/ {2}-h, --help +show this help and exit\n/);
    expect(help).toMatch(/\nFinding the server:\n {6}--socket ADDRESS +where the server is\n/);
    expect(help).not.toMatch(/quiet|-S/);
    expect(lines.at(-1)).toBe('See also: elsewhere.');
  });

  it('fits 80 columns', () => {
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(80);
  });
});
