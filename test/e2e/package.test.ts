/**
 * The package as users get it: `npm pack` ships the addon prebuilt (prebuilds/linux-x64, made by
 * scripts/prebuild.mjs), so installing it needs no compiler. Installed with --ignore-scripts (no
 * install step at all, as with npm's allowScripts or a host without python3/make/g++) into an
 * empty prefix, it serves a file that curl fetches.
 *
 * The pack runs in a copy of the checkout: packing rebuilds the addon, and the other test files
 * running meanwhile load build/Release/nullgate.node.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { itNeeds } from '../helpers/requirements.js';
import { uniqueName } from '../helpers/sockets.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = mkdtempSync(path.join(tmpdir(), 'ng-package-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The checkout's files (tracked and new, not ignored) in `dest`, node_modules shared by a link. */
function copyCheckout(dest: string): void {
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: repo,
    encoding: 'utf8',
  })
    .split('\0')
    .filter((f) => f !== '' && existsSync(path.join(repo, f)));
  for (const file of files) {
    mkdirSync(path.dirname(path.join(dest, file)), { recursive: true });
    cpSync(path.join(repo, file), path.join(dest, file));
  }
  symlinkSync(path.join(repo, 'node_modules'), path.join(dest, 'node_modules'));
}

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('the npm package', () => {
  it('package.json "files" names each entry once', () => {
    const { files } = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as {
      files: string[];
    };
    expect(files.filter((f, i) => files.indexOf(f) !== i)).toEqual([]);
  });

  itNeeds(
    ['curl'],
    'installs without scripts (prebuilt addon, no compiler) and serves a file to curl',
    async () => {
      const src = path.join(work, 'src');
      copyCheckout(src);
      run('npm', ['pack', '--pack-destination', work, '--no-audit', '--no-fund'], src);
      const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
      expect(tarball).toBeDefined();
      const listing = run('tar', ['tzf', path.join(work, tarball!)], work).split('\n');
      expect(listing).toContain('package/prebuilds/linux-x64/nullgate.glibc.node');
      // What `nullgate serve` runs (bin/nullgate.js), beside the addon it loads.
      expect(listing).toContain('package/bundle/server.mjs');
      expect(listing).toContain('package/bundle/nullgate.node');

      const prefix = path.join(work, 'prefix');
      mkdirSync(prefix);
      run(
        'npm',
        [
          'install',
          '--ignore-scripts',
          '--no-audit',
          '--no-fund',
          '--prefix',
          prefix,
          path.join(work, tarball!),
        ],
        prefix,
      );
      const installed = path.join(prefix, 'node_modules', 'nullgate');
      expect(existsSync(path.join(installed, 'build'))).toBe(false);

      const root = path.join(work, 'root');
      mkdirSync(root);
      writeFileSync(path.join(root, 'hello.txt'), 'hello from the package\n');
      const address = uniqueName('pkg');
      const server = spawn(
        process.execPath,
        [path.join(installed, 'bin', 'nullgate.js'), 'serve', '--socket', address, '--root', root],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      try {
        let stderr = '';
        await new Promise<void>((resolve, reject) => {
          server.stderr.on('data', (chunk: Buffer) => {
            stderr += chunk.toString();
            if (stderr.includes('serving')) resolve();
          });
          server.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
        });
        const body = run(
          'curl',
          ['-sS', '--fail', '--abstract-unix-socket', address.slice(1), 'http://localhost/files/hello.txt'],
          work,
        );
        expect(body).toBe('hello from the package\n');
      } finally {
        const exited = new Promise((resolve) => server.once('exit', resolve));
        server.kill('SIGTERM');
        await exited;
      }
    },
    300_000,
  );
});
