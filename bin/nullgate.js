#!/usr/bin/env node
// The one exit path of the CLI: commands return an exit code, this sets it. `serve` runs from
// bundle/server.mjs (scripts/bundle.mjs: Fastify inside, which makes each request cheaper) when
// it is there and no older than the compiled sources (a checkout rebuilt with tsc alone); every
// other verb, and `serve` otherwise, from the compiled sources, dist/.
import { statSync } from 'node:fs';
import { URL } from 'node:url';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
const serverBundle = new URL('../bundle/server.mjs', import.meta.url);
const modified = (url) => statSync(url, { throwIfNoEntry: false })?.mtimeMs ?? -1;
const bundled = process.argv[2] === 'serve' && modified(serverBundle) >= modified(compiled);
const { main } = await import(bundled ? serverBundle.href : compiled.href);
process.exitCode = await main(process.argv.slice(2));
