#!/usr/bin/env node
// Builds the native addon with node-gyp against the headers of the Node that runs this script.
// npm's `nodedir` config (npm_config_nodedir) wins; otherwise we point node-gyp at the running
// Node's own prefix when its headers are there, so no header download is ever attempted
// (the machines this builds on reach the npm registry only).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));

function nodeDir() {
  const fromNpm = process.env.npm_config_nodedir;
  if (fromNpm) return fromNpm;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return undefined;
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

const dir = nodeDir();
const args = [nodeGypBin(), 'rebuild', ...(dir ? [`--nodedir=${dir}`] : [])];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
