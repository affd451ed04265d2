/**
 * Every shell example in README.md and docs/*.md runs as written, against real servers (like
 * fastify's docs tests). The convention, for whoever writes docs:
 *
 * - A block fenced ```sh is run. Other languages (```console, ```text, ```json, a bare ```) are
 *   shown, never run: use them for output and for sketches.
 * - ```sh skip: REASON is shown and not run; the reason is required (a server in the
 *   foreground, a build, a tool the example assumes elsewhere).
 * - The blocks of one document run in order in one bash (`set -e -o pipefail`), so a block may
 *   use what an earlier one made, in a sandbox of its own: new mount, network and PID
 *   namespaces (abstract names, /tmp and /srv are its own, and every process it started dies
 *   with it), `nullgate` on PATH, the working directory a copy of the package (npm start works).
 * - What a document presumes without showing it is set up here, per document (STAGES): the
 *   README's read-only `npm start` server; for api.md and cli.md a writable server on
 *   @nullgate (and @exchange) over a tree with the files their examples name, `C` as api.md
 *   defines it (with --fail, so an HTTP error fails the example), and the local files the
 *   examples upload.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { itNeeds } from '../helpers/requirements.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const DOCUMENTS = [
  'README.md',
  'docs/api.md',
  'docs/cli.md',
  'docs/errors.md',
  'docs/security.md',
  'docs/performance.md',
  'docs/architecture.md',
];

export interface ShellBlock {
  readonly file: string;
  /** Line of the opening fence (1-based). */
  readonly line: number;
  /** The reason after `skip:`, when the block is not run. */
  readonly skip: string | undefined;
  readonly code: string;
}

/** The ```sh blocks of a Markdown text. */
export function shellBlocks(file: string, markdown: string): ShellBlock[] {
  const blocks: ShellBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*(.*)$/.exec(lines[i]!);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && !lines[end]!.startsWith('```')) end++;
    if (open[1] === 'sh') {
      const skip = /^skip:\s*(.*)$/.exec(open[2]!.trim());
      blocks.push({
        file,
        line: i + 1,
        skip: skip ? skip[1]!.trim() : open[2]!.trim() === 'skip' ? '' : undefined,
        code: lines.slice(i + 1, end).join('\n'),
      });
    }
    i = end;
  }
  return blocks;
}

const ALL = DOCUMENTS.flatMap((file) => shellBlocks(file, readFileSync(path.join(REPO, file), 'utf8')));

/** Set-up before a document's blocks (run in the sandbox, in the package copy). */
const SERVED_TREE = `
mkdir -p /srv/docs/etc/app /srv/docs/etc/skel /srv/docs/images /srv/docs/var/log \\
  /srv/docs/results/old /srv/docs/tmp/old
echo 'Welcome.' > /srv/docs/etc/motd
echo 'key = value' > /srv/docs/etc/app/app.conf
echo 'export PS1=$ ' > /srv/docs/etc/skel/.profile
head -c 4096 /dev/urandom > /srv/docs/big.img
head -c 4096 /dev/urandom > /srv/docs/images/base.img
seq 1 100 > /srv/docs/var/log/syslog
echo old > /srv/docs/results/old/x
echo tmp > /srv/docs/results/tmp.log
echo old > /srv/docs/tmp/old/x
echo 'build ok' > result.log; echo 'build log' > build.log; echo report > report.txt
echo 'key = other' > app.conf
mkdir -p out results && echo out > out/file && echo result > results/file
head -c 8192 /dev/urandom > big.iso
nullgate serve --root /srv/docs --writable --socket @nullgate --log-level warn &
nullgate serve --root /srv/docs --writable --socket @exchange --log-level warn &
nullgate request --wait 10 /health --socket @nullgate >/dev/null
nullgate request --wait 10 /health --socket @exchange >/dev/null
C() { curl --fail --silent --show-error --abstract-unix-socket nullgate "$@"; }
some-command() { echo 'some output'; }
`;

const STAGES: Record<string, string> = {
  // What the skipped `npm install && npm start` block leaves running.
  'README.md': `
npm start --silent -- --log-level warn &
nullgate request --wait 10 /health >/dev/null
`,
  'docs/api.md': SERVED_TREE,
  'docs/cli.md': SERVED_TREE,
};

/** The sandbox's own /tmp and /srv, nullgate on PATH, a copy of the package to work in. */
const PRELUDE = `
set -e -o pipefail
# The host's /tmp and /srv stay reachable under /mnt (a tmpfs of this namespace), so a checkout
# or a node binary that lives there (CI installs Node 22 and 24 under /tmp) still runs.
mkdir -p /mnt
mount -t tmpfs tmpfs /mnt
mkdir /mnt/tmp /mnt/srv
mount --rbind /tmp /mnt/tmp
mount --rbind /srv /mnt/srv
case "$REPO" in /tmp/* | /srv/*) REPO="/mnt$REPO" ;; esac
case "$NODE" in /tmp/* | /srv/*) NODE="/mnt$NODE" ;; esac
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /srv
mkdir -p /tmp/docs-bin /tmp/docs-work
printf '#!/bin/sh\\nexec %s %s "$@"\\n' "$NODE" "$REPO/bin/nullgate.js" > /tmp/docs-bin/nullgate
chmod +x /tmp/docs-bin/nullgate
export PATH="/tmp/docs-bin:$(dirname "$NODE"):$PATH"
cd /tmp/docs-work
cp "$REPO/package.json" "$REPO/README.md" .
ln -s "$REPO/bin" "$REPO/dist" "$REPO/node_modules" .
`;

function script(file: string): string {
  const blocks = ALL.filter((b) => b.file === file && b.skip === undefined);
  const parts = [PRELUDE, STAGES[file] ?? ''];
  for (const b of blocks) parts.push(`echo '>>> ${b.file}:${b.line}' >&2`, b.code);
  parts.push(`echo '>>> ${file}: all examples ran' >&2`);
  return parts.join('\n');
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runSandboxed(text: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    // New PID namespace: when bash (its init) ends, every server an example left running dies.
    const child = spawn(
      'unshare',
      ['--mount', '--net', '--pid', '--fork', '--mount-proc', 'bash', '-c', text],
      {
        env: {
          ...process.env,
          NODE: process.execPath,
          REPO,
          NULLGATE_SOCKET: '',
          npm_config_update_notifier: 'false',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('latin1')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('docs examples', () => {
  it('every ```sh block is run or says why not (```sh skip: REASON)', () => {
    expect(ALL.length).toBeGreaterThan(10);
    const unexplained = ALL.filter((b) => b.skip === '').map((b) => `${b.file}:${b.line}`);
    expect(unexplained).toEqual([]);
  });

  it('shellBlocks reads fences as the convention says', () => {
    const md =
      '```sh\necho a\n```\n```console\n$ x\n```\n```sh skip: a server\nserve\n```\n```\nplain\n```\n';
    expect(shellBlocks('x.md', md)).toEqual([
      { file: 'x.md', line: 1, skip: undefined, code: 'echo a' },
      { file: 'x.md', line: 7, skip: 'a server', code: 'serve' },
    ]);
  });

  const runnable = DOCUMENTS.filter((file) => ALL.some((b) => b.file === file && b.skip === undefined));
  // The documents run side by side (each in its own sandbox), started by the first that asks.
  let runs: Map<string, Promise<Ran>> | undefined;
  const ran = (file: string): Promise<Ran> => {
    runs ??= new Map(runnable.map((f) => [f, runSandboxed(script(f))]));
    return runs.get(file)!;
  };
  for (const file of runnable) {
    itNeeds(
      ['root', 'unshare', 'mount', 'chroot', 'curl', 'tar', 'openssl', 'npm'],
      `${file}: its shell examples run as written and succeed`,
      async () => {
        const r = await ran(file);
        const last = r.stderr
          .split('\n')
          .filter((l) => l.startsWith('>>> '))
          .pop();
        expect({ code: r.code, last }, r.stderr.slice(-4000)).toEqual({
          code: 0,
          last: `>>> ${file}: all examples ran`,
        });
      },
      60_000,
    );
  }
});
