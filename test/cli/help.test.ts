/**
 * Per-command help: every verb's table is its --help, `nullgate CMD --help`, `-h` and
 * `nullgate help CMD` print it on stdout and exit 0, and the tables agree with the synopsis
 * that docs/cli.md opens with.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { commands } from '../../cli/main.js';
import { SYNOPSIS, type Verb } from '../../cli/run.js';
import { runCli, runFile } from '../helpers/cli.js';

const BUNDLE = fileURLToPath(new URL('../../bundle/nullgate.cjs', import.meta.url));
const DOCS = fileURLToPath(new URL('../../docs/cli.md', import.meta.url));
const VERBS = Object.keys(commands);
const squeeze = (text: string): string => text.replace(/\s+/g, ' ');

async function verb(name: string): Promise<Verb> {
  return commands[name]!();
}

describe('the tables', () => {
  it('cover serve, install-client and every client verb', () => {
    expect(VERBS.sort()).toEqual(
      ['get', 'install-client', 'ls', 'mkdir', 'mv', 'pull', 'push', 'put', 'request', 'rm', 'serve'].sort(),
    );
  });

  it.each(VERBS)('%s: its usage is in the synopsis (and so in docs/cli.md)', async (name) => {
    const { spec } = await verb(name);
    expect(spec.name).toBe(name);
    const synopsis = squeeze(
      SYNOPSIS.filter((entry) => entry.verbs.includes(name))
        .map((e) => e.text)
        .join(' '),
    );
    for (const usage of spec.usage) expect(synopsis).toContain(squeeze(usage));
  });

  it("serve's synopsis names every option it has", async () => {
    const { spec } = await verb('serve');
    for (const option of Object.keys(spec.options)) expect(spec.usage.join(' ')).toContain(`[--${option}`);
  });

  it.each(VERBS)('%s: every option has a line of help, string options a value name', async (name) => {
    const { spec } = await verb(name);
    for (const [option, o] of Object.entries(spec.options)) {
      expect(o.help.length, option).toBeGreaterThan(5);
      expect(o.help, option).not.toContain('\n');
      if (o.type === 'string') expect(o.value, option).toBeDefined();
      expect(o.short, `${name} -h is --help`).not.toBe('h');
    }
  });
});

describe('nullgate CMD --help, -h, nullgate help CMD', () => {
  it.each(VERBS)('%s --help: its usage and options on stdout, exit 0', async (name) => {
    const { spec } = await verb(name);
    const r = await runCli([name, '--help']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout.toString();
    expect(out.startsWith(`Usage: nullgate ${name}`)).toBe(true);
    for (const [option, o] of Object.entries(spec.options)) {
      if (o.hidden !== true) expect(out).toContain(`--${option}`);
    }
    expect(out).toContain('-h, --help');
  });

  it('-h and help CMD print the same text, also among other arguments', async () => {
    const help = (await runCli(['serve', '--help'])).stdout.toString();
    for (const argv of [
      ['serve', '-h'],
      ['help', 'serve'],
      ['serve', '--root', '/nonexistent', '--help'],
    ]) {
      const r = await runCli(argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.stdout.toString()).toBe(help);
    }
  });

  it('a value that is -h is a value, not a help request', async () => {
    const r = await runCli(['request', '-d-h', '/health', '--socket', '@ng-no-such-help-server-5e1']);
    expect(r.code).toBe(7);
    expect(r.stdout.length).toBe(0);
  });

  it('help of an unknown command, and help with two, are usage errors (one line, exit 2)', async () => {
    const unknown = await runCli(['help', 'frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('nullgate: unknown command "frobnicate" (try nullgate --help)\n');
    const two = await runCli(['help', 'get', 'put']);
    expect(two.code).toBe(2);
    expect(two.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('an unknown option is one line naming it and where help is, exit 2', async () => {
    const serve = await runCli(['serve', '--frobnicate']);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toBe('nullgate: serve: unknown option --frobnicate (see nullgate serve --help)\n');
    const get = await runCli(['get', '--help=yes', '/x']);
    expect(get.code).toBe(2);
    expect(get.stderr).toBe('nullgate: get: unknown option --help (see nullgate get --help)\n');
  });

  it('help names the reference only where it exists', async () => {
    const r = await runCli(['--help']);
    expect(existsSync(DOCS)).toBe(true);
    expect(r.stdout.toString()).toContain(`The full reference: ${DOCS}`);
    expect(r.stdout.toString()).toMatch(
      /Exit codes: 0 success, 1 other failure, 2 usage error, 7 cannot connect/,
    );
    expect(r.stdout.toString()).toContain('nullgate help CMD');
  });

  it('the client bundle has the same per-command help', async () => {
    const r = await runFile(BUNDLE, ['help', 'get']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe((await runCli(['get', '--help'])).stdout.toString());
    const serve = await runFile(BUNDLE, ['help', 'serve']);
    expect(serve.code).toBe(2);
  });
});
