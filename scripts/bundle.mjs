#!/usr/bin/env node
// `npm run bundle`: the chroot client as one CommonJS file plus the compiled addon, in bundle/:
//   bundle/nullgate.cjs   every client verb (get, put, ls, …, request), undici included
//   bundle/nullgate.node  the Node-API addon (loads in Node 20 and every later Node)
// native/binding.ts finds nullgate.node beside the script, so the pair works from any directory.
//
// CommonJS, not ESM, for start-up time (docs/performance.md, "Client start-up"): an ESM bundle
// loads every `import 'node:…'` of every module before any code runs, so a `get` paid for
// node:crypto, fs/promises (and readline with it), os and the rest that only other verbs use;
// in CommonJS each becomes a require() inside the lazily run module that needs it. The ESM
// loader itself is not started either, and Node 22+ can cache the compiled code
// (module.enableCompileCache in the install-client launcher).
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'bundle');
const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
mkdirSync(out, { recursive: true });

// undici's dispatcher/client.js requires its HTTP/2 half when it loads, and with it node:http2
// and node:tls: 7-10 ms of every client start (`node -e 0` is ~30 ms). nullgate speaks
// HTTP/1.1 on a unix socket, where HTTP/2 is never negotiated (that takes ALPN over TLS), so the
// require waits for the first HTTP/2 connection. The check fails the build when undici's source
// no longer has the line, instead of silently bundling the eager version.
const EAGER_H2 = "const connectH2 = require('./client-h2.js')";
const lazyHttp2 = {
  name: 'undici-lazy-http2',
  setup(b) {
    b.onLoad({ filter: /[\\/]undici[\\/]lib[\\/]dispatcher[\\/]client\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes(EAGER_H2)) {
        throw new Error(`${args.path}: no "${EAGER_H2}" (undici changed: update scripts/bundle.mjs)`);
      }
      const lazy =
        "let connectH2Impl\nconst connectH2 = (...args) => (connectH2Impl ??= require('./client-h2.js'))(...args)";
      return { contents: source.replace(EAGER_H2, lazy), loader: 'js' };
    });
  },
};

await build({
  entryPoints: [path.join(root, 'cli/client-main.ts')],
  outfile: path.join(out, 'nullgate.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  // Our sources are ESM and locate files beside themselves with import.meta.url (the addon, the
  // docs): in the CommonJS bundle that is the bundle's own URL. Strict mode, as the ESM sources
  // had it (and as undici's files ask for).
  define: { NULLGATE_VERSION: JSON.stringify(version), 'import.meta.url': '__ngUrl' },
  banner: { js: "'use strict';\nconst __ngUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [lazyHttp2],
  logLevel: 'warning',
});
// The ESM bundle of earlier builds: nothing loads it any more.
rmSync(path.join(out, 'nullgate.mjs'), { force: true });
// The addon this checkout or package uses: build/Release when built here, else the prebuild
// (node-gyp-build's own search, as native/binding.ts does).
const addon = createRequire(path.join(root, 'package.json'))('node-gyp-build').path(root);
copyFileSync(addon, path.join(out, 'nullgate.node'));
const kib = (f) => Math.round(statSync(path.join(out, f)).size / 1024);
process.stdout.write(
  `bundle: bundle/nullgate.cjs (${kib('nullgate.cjs')} KiB) + bundle/nullgate.node (${kib('nullgate.node')} KiB)\n`,
);
