/**
 * `nullgate serve` runs from bundle/server.mjs (Fastify inside: docs/performance.md, "Bundling
 * decides much of what is left"), which `npm test` builds first; the other verbs from dist/.
 * Which modules a process loads is read with an ES loader hook (test/helpers/record-loads.mjs).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startServe } from '../helpers/cli.js';

const HOOK = fileURLToPath(new URL('../helpers/record-loads.mjs', import.meta.url));
const BUNDLE = pathToFileURL(fileURLToPath(new URL('../../bundle/server.mjs', import.meta.url))).href;
const dir = mkdtempSync(path.join(tmpdir(), 'ng-serve-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tracing(name: string): { env: NodeJS.ProcessEnv; loaded: () => string[] } {
  const log = path.join(dir, `${name}.log`);
  writeFileSync(log, '');
  return {
    env: { NODE_OPTIONS: `--import ${HOOK}`, NG_LOAD_LOG: log },
    loaded: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
  };
}

describe('where the CLI runs from', () => {
  it('serve: bundle/server.mjs, with no Fastify from node_modules, and it answers', async () => {
    writeFileSync(path.join(dir, 'hello.txt'), 'hello\n');
    const { env, loaded } = tracing('serve');
    const socket = `@ng-serve-bundle-${process.pid}`;
    const served = await startServe(['--root', dir, '--socket', socket], { env });
    try {
      const got = await runCli(['get', '--socket', socket, '/hello.txt']);
      expect(got.stderr).toBe('');
      expect(got.stdout.toString()).toBe('hello\n');
    } finally {
      await served.stop();
    }
    const urls = loaded();
    expect(urls).toContain(BUNDLE);
    expect(urls.filter((u) => u.includes('/node_modules/fastify/') || u.includes('/dist/'))).toEqual([]);
  });

  it('another verb: dist/, not the server bundle', async () => {
    const { env, loaded } = tracing('version');
    const r = await runCli(['--version'], { env });
    expect(r.code).toBe(0);
    const urls = loaded();
    expect(urls.some((u) => u.endsWith('/dist/cli/main.js'))).toBe(true);
    expect(urls).not.toContain(BUNDLE);
  });
});
