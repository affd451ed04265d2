/** `nullgate install-client DIR`: DIR is made when missing; a file in the way is a usage error. */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { launcher } from '../../cli/install-client.js';
import { runCli, runNode } from '../helpers/cli.js';

const BUNDLE = fileURLToPath(new URL('../../bundle/nullgate.cjs', import.meta.url));

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
    // No node in DIR to make a code cache with: the launcher requires the bundle as it is.
    expect(r.stderr).toContain('no code cache without a node in the chroot');
    expect(existsSync(path.join(dir, 'usr/local/lib/nullgate/nullgate.cache'))).toBe(false);
  });

  it("makes a code cache only for this very node, and runs no program of the chroot's", async () => {
    const dir = path.join(work, 'other-node');
    const node = path.join(dir, 'usr/local/bin/node');
    mkdirSync(path.dirname(node), { recursive: true });
    // Another node (here: not even one; install-client must not run it to find out).
    writeFileSync(node, '#!/bin/sh\ntouch "$0.ran"\n', { mode: 0o755 });
    const other = await runCli(['install-client', dir]);
    expect(other.code, other.stderr).toBe(0);
    expect(other.stderr).toContain(`no code cache: /usr/local/bin/node in the chroot is not this node`);
    expect(existsSync(path.join(dir, 'usr/local/lib/nullgate/nullgate.cache'))).toBe(false);
    expect(existsSync(`${node}.ran`)).toBe(false);
    // The same bytes as this node: made, for that file and this bundle (its first line).
    copyFileSync(process.execPath, node);
    const same = await runCli(['install-client', dir]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stderr).not.toContain('no code cache');
    const cache = readFileSync(path.join(dir, 'usr/local/lib/nullgate/nullgate.cache'));
    const bundle = statSync(path.join(dir, 'usr/local/lib/nullgate/nullgate.cjs'));
    const { size, mtimeMs } = statSync(node);
    expect(cache.subarray(0, cache.indexOf(10)).toString()).toBe(
      [process.version, process.arch, size, mtimeMs, bundle.size, bundle.mtimeMs].join(' '),
    );
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

  it("the launcher's compile cache (Node 22.1+) is a directory of the caller's own, never a shared or writable one", async () => {
    // Node 20 has no module.enableCompileCache: a stub stands in for it and says where it was asked.
    const stub = path.join(work, 'stub.cjs');
    writeFileSync(
      stub,
      "require('node:module').enableCompileCache = (dir) => { process.stderr.write(`cache ${dir}\\n`); return { status: 1 }; };\n",
    );
    const script = path.join(work, 'launcher.cjs');
    // bundle/ has no code cache: the launcher requires the bundle, as it does in a chroot without one.
    writeFileSync(script, launcher('// test', path.dirname(BUNDLE)));
    const tmp = mkdtempSync(path.join(work, 'tmp-'));
    const env = { TMPDIR: tmp, NODE_COMPILE_CACHE: '' };
    const dir = path.join(tmp, `nullgate-compile-cache-${process.geteuid!()}`);

    const first = await runNode(['-r', stub, script, '--version'], { env });
    expect(first.stderr).toBe(`cache ${dir}\n`);
    expect(first.stdout.toString()).toMatch(/^\d+\.\d+\.\d+/);
    expect(statSync(dir).mode & 0o777).toBe(0o700);

    chmodSync(dir, 0o777);
    const shared = await runNode(['-r', stub, script, '--version'], { env });
    expect(shared.stderr).toBe('');
    expect(shared.code).toBe(0);

    const none = await runNode(['-r', stub, script, '--version'], {
      env: { ...env, TMPDIR: path.join(work, 'missing') },
    });
    expect(none.stderr).toBe('');
    expect(none.code).toBe(0);
  });
});
