/** docs/cli.md's exit-code table and cli/exit.ts's ExitCode list the same codes. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EXIT_CODE_SUMMARY, ExitCode } from '../../cli/exit.js';

/** The `| code | meaning |` rows of the table under `## Exit codes`. */
function documentedCodes(): Map<number, string> {
  const docs = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
  const section = /\n## Exit codes\n([\s\S]*?)(?=\n## |$)/.exec(docs)?.[1];
  if (section === undefined) throw new Error('docs/cli.md has no "## Exit codes" section');
  // The first table of the section: its lines, up to the first that is not a row.
  const lines = section.split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  const end = lines.findIndex((line, i) => i > first && !line.startsWith('|'));
  const rows = new Map<number, string>();
  for (const line of lines.slice(first, end === -1 ? undefined : end)) {
    const m = /^\|\s*(\d+)\s*\|\s*(.*?)\s*\|$/.exec(line);
    if (m) rows.set(Number(m[1]), m[2]!);
  }
  return rows;
}

describe('exit codes', () => {
  it('docs/cli.md documents every code of ExitCode, and no other', () => {
    const documented = [...documentedCodes().keys()].sort((a, b) => a - b);
    const code = Object.values(ExitCode).sort((a, b) => a - b);
    expect(documented).toEqual(code);
  });

  it('each documented meaning starts as --help says it in a few words', () => {
    for (const [code, meaning] of documentedCodes()) {
      const summary = EXIT_CODE_SUMMARY[code as ExitCode];
      expect(meaning.toLowerCase(), `exit ${code}`).toContain(summary.toLowerCase());
    }
  });
});
