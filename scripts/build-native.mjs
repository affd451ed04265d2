#!/usr/bin/env node
// `npm install`'s step for the native addon (and `npm run build`'s, with --force).
//
// An installed package carries a prebuilt addon (prebuilds/linux-x64/, made by
// scripts/prebuild.mjs when the package is packed): Node-API is ABI-stable, so one build loads in
// Node 20 and every later Node. When it loads here, there is nothing to compile, and hosts
// without a C++ toolchain can install nullgate. Otherwise (another platform, a git checkout,
// --force) node-gyp builds build/Release/nullgate.node against the headers of the Node that runs
// this script, never downloading them (scripts/node-headers.mjs).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeDir } from './node-headers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));

/** The shipped prebuild for this machine, when there is one and it loads in this Node. */
function usablePrebuild() {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir) || readdirSync(dir).length === 0) return undefined;
  let file;
  try {
    file = require('node-gyp-build').path(root);
  } catch {
    return undefined;
  }
  if (!file.startsWith(dir)) return undefined;
  const probe = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', file], { stdio: 'ignore' });
  return probe.status === 0 ? file : undefined;
}

function nodeGypBin() {
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // Installed as a dependency without our devDependencies: npm ships its own node-gyp.
    const bundled = process.env.npm_config_node_gyp;
    if (bundled) return bundled;
    throw new Error('node-gyp not found: run npm install in the project root');
  }
}

const prebuild = process.argv.includes('--force') ? undefined : usablePrebuild();
if (prebuild) {
  process.stdout.write(`nullgate: using the prebuilt addon ${path.relative(root, prebuild)}\n`);
} else {
  const dir = nodeDir();
  const args = [nodeGypBin(), 'rebuild', ...(dir ? [`--nodedir=${dir}`] : [])];
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  process.exitCode = result.status ?? 1;
}
