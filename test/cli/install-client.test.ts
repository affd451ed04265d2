/** `nullgate install-client DIR`: DIR is made when missing; a file in the way is a usage error. */
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

describe('install-client DIR', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'ng-install-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('creates a DIR that does not exist, with its parents (mkdir -p), and installs into it', async () => {
    const dir = path.join(work, 'new', 'chroot');
    const r = await runCli(['install-client', dir]);
    expect(r.stderr).toContain(`installed the client into ${dir}`);
    expect(r.code).toBe(0);
    expect(statSync(path.join(dir, 'usr/local/bin/nullgate')).mode & 0o111).not.toBe(0);
    expect(existsSync(path.join(dir, 'usr/local/lib/nullgate/nullgate.cjs'))).toBe(true);
  });

  it.each([
    ['a file', 'file', 'file'],
    ['a file on the way', 'file/below', 'file/below'],
  ])('%s is "not a directory", exit 2, one line', async (_, rel, shown) => {
    writeFileSync(path.join(work, 'file'), 'x');
    const r = await runCli(['install-client', path.join(work, rel)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`nullgate: ${path.join(work, shown)}: not a directory\n`);
  });
});
