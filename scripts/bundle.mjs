#!/usr/bin/env node
// `npm run bundle`: the chroot client as one CommonJS file plus the compiled addon, in bundle/:
//   bundle/nullgate.cjs   every client verb (get, put, ls, …, request), undici included
//   bundle/nullgate.node  the Node-API addon (loads in Node 20 and every later Node)
//   bundle/server.mjs     what `nullgate serve` runs: that verb with Fastify inside (see below)
// native/binding.ts finds nullgate.node beside the script, so the pair works from any directory.
//
// CommonJS, not ESM, for start-up time (docs/performance.md, "Client start-up"): an ESM bundle
// loads every `import 'node:…'` of every module before any code runs, so a `get` paid for
// node:crypto, fs/promises (and readline with it), os and the rest that only other verbs use;
// in CommonJS each becomes a require() inside the lazily run module that needs it. The ESM
// loader itself is not started either, and Node 22+ can cache the compiled code
// (module.enableCompileCache in the install-client launcher).
import { Buffer } from 'node:buffer';
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

// undici is three quarters of the client's code, and V8 reads all of a script before it runs
// any of it: a `get`, which goes over node:http (client/http-transport.ts), spent most of its
// compile time on undici. So undici (what client/undici-core.ts exports) is bundled on its own
// and carried at the end of the bundle in a comment, base64 (its code has `*/` in it), which V8
// skips at the speed of a search for `*/`. The first verb that loads client/undici-core.ts (the
// streaming ones, on the library's Client) reads it back from the bundle's own file and compiles
// it then. undici shares nothing with our modules but Node's built-ins: nothing loads twice.
const UNDICI_MARK = '@nullgate-undici-base64';
/** What both halves of the bundle are built with. */
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  // import() of a built-in (`await import('node:v8')`) as a require() in a promise: a real
  // import() would start the ES module loader, and the install-client launcher compiles the
  // bundle with vm.Script (its code cache), where an import() has no loader to call.
  supported: { 'dynamic-import': false },
};
const undiciChunk = await build({
  ...common,
  entryPoints: [path.join(root, 'client/undici-core.ts')],
  plugins: [lazyHttp2],
  write: false,
  logLevel: 'warning',
});
const undiciCode = `'use strict';${undiciChunk.outputFiles[0].text}`;
const lazyUndici = {
  name: 'nullgate-lazy-undici',
  setup(b) {
    b.onResolve({ filter: /[\\/]undici-core\.js$/ }, () => ({
      path: 'undici-core',
      namespace: 'lazy-undici',
    }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-undici' }, () => ({
      contents: `
        const text = require('node:fs').readFileSync(__filename, 'latin1');
        const mark = '/*' + ${JSON.stringify(UNDICI_MARK)} + '\\n';
        const at = text.lastIndexOf(mark);
        const end = text.lastIndexOf('*/');
        if (at === -1 || end < at) throw new Error(__filename + ': no undici at its end (a damaged bundle?)');
        const code = Buffer.from(text.slice(at + mark.length, end), 'base64').toString('utf8');
        const run = require('node:vm').compileFunction(code, ['module', 'exports', 'require'], {
          filename: __filename + ' (undici)',
        });
        run(module, exports, require);
      `,
      loader: 'js',
    }));
  },
};
// 76-column lines, as base64 is usually written.
const undiciFooter = `/*${UNDICI_MARK}\n${Buffer.from(undiciCode).toString('base64').replace(/.{76}/g, '$&\n')}\n*/`;

await build({
  ...common,
  entryPoints: [path.join(root, 'cli/client-main.ts')],
  outfile: path.join(out, 'nullgate.cjs'),
  // Our sources are ESM and locate files beside themselves with import.meta.url (the addon, the
  // docs): in the CommonJS bundle that is the bundle's own URL. Strict mode, as the ESM sources
  // had it (and as undici's files ask for).
  define: { NULLGATE_VERSION: JSON.stringify(version), 'import.meta.url': '__ngUrl' },
  banner: { js: "'use strict';\nconst __ngUrl = require('node:url').pathToFileURL(__filename).href;" },
  footer: { js: undiciFooter },
  plugins: [lazyUndici],
  logLevel: 'warning',
});

// The server: bundle/server.mjs, what `nullgate serve` runs (bin/nullgate.js), ESM with Fastify
// and its dependencies inside: a server started from it spends about a quarter less CPU per small
// request than the same code loaded from dist/ and node_modules (docs/performance.md, "Bundling
// decides much of what is left"). One file: split into chunks at each import(), the gain was
// gone. It holds `serve` alone (cli/server-entry.ts); the library (`createGateway` from the
// package) and the other verbs stay dist/. Its sources find the addon, the docs and
// package.json from import.meta.url, one level below the package root. pino-pretty (a
// terminal's log lines) stays a package of its own.
await build({
  entryPoints: [path.join(root, 'cli/server-entry.ts')],
  outfile: path.join(out, 'server.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Fastify loads its schema compilers (ajv, fast-json-stringify: a third of what it brings) only
  // when no compiler is given; gateway/app.ts gives its own, which load them from node_modules
  // on a route's first schema. Left out, they cost the server's memory nothing until then.
  external: ['pino-pretty', '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler'],
  // V8 keeps a script's source for as long as its functions live: without the whitespace the
  // server idles 4 MiB lower (62 → 58 MiB), at the same CPU per request. Names are kept, for
  // stack traces and for what reads a function's name (Fastify's plugin names).
  minifyWhitespace: true,
  minifySyntax: true,
  // The CommonJS packages inside call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __ngCreateRequire } from 'node:module';\nconst require = __ngCreateRequire(import.meta.url);",
  },
  define: { NULLGATE_VERSION: JSON.stringify(version) },
  legalComments: 'none',
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
  `bundle: bundle/nullgate.cjs (${kib('nullgate.cjs')} KiB) + bundle/nullgate.node (${kib('nullgate.node')} KiB), ` +
    `bundle/server.mjs (${kib('server.mjs')} KiB)\n`,
);
