#!/usr/bin/env node
// `npm run bundle`: the chroot client as one ESM file plus the compiled addon, in bundle/:
//   bundle/nullgate.mjs   every client verb (get, put, ls, …, request), undici included
//   bundle/nullgate.node  the Node-API addon (loads in Node 20 and every later Node)
// gateway/binding.ts finds nullgate.node beside the script, so the pair works from any directory.
import { copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'bundle');
const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [path.join(root, 'gateway/cli/client-main.ts')],
  outfile: path.join(out, 'nullgate.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  define: { NULLGATE_VERSION: JSON.stringify(version) },
  // undici and friends are CommonJS: give the ESM bundle a require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __ngRequire } from 'node:module'; const require = __ngRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
copyFileSync(path.join(root, 'build/Release/nullgate.node'), path.join(out, 'nullgate.node'));
const kib = (f) => Math.round(statSync(path.join(out, f)).size / 1024);
process.stdout.write(
  `bundle: bundle/nullgate.mjs (${kib('nullgate.mjs')} KiB) + bundle/nullgate.node (${kib('nullgate.node')} KiB)\n`,
);
