#!/usr/bin/env node
// `npm pack` / `npm publish` (prepack): the addon prebuilt for the package, as the Node-API
// ecosystem ships it: prebuildify --napi --strip --tag-libc writes
// prebuilds/linux-x64/nullgate.glibc.node, which node-gyp-build finds at run time (native/binding.ts)
// and scripts/build-native.mjs uses instead of compiling. One build serves every Node version
// (Node-API is ABI-stable), built against this Node's own headers (scripts/node-headers.mjs),
// never downloaded. `--clean` (postpack) removes it again: a checkout builds from source.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeDir } from './node-headers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));

rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
if (!process.argv.includes('--clean')) {
  const dir = nodeDir();
  const env = { ...process.env, ...(dir ? { npm_config_nodedir: dir } : {}) };
  const args = [
    require.resolve('prebuildify/bin.js'),
    '--napi',
    '--strip',
    '--tag-libc',
    // The running Node: its headers are the ones at hand (a Node-API build loads in any later Node).
    `--target=${process.versions.node}`,
  ];
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env });
  process.exitCode = result.status ?? 1;
  // prebuildify's node-gyp rebuild leaves build/Release without the addon it moved away: put
  // the same build back, so the checkout that was packed keeps working.
  if (result.status === 0) {
    const built = require('node-gyp-build').path(root);
    mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
    copyFileSync(built, path.join(root, 'build', 'Release', 'nullgate.node'));
  }
}
