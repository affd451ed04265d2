#!/usr/bin/env node
// The one exit path of the CLI: commands return an exit code, this sets it. `serve` runs from
// bundle/server.mjs (scripts/bundle.mjs: Fastify inside, which makes each request cheaper) when
// it is there; every other verb, and `serve` without that bundle, from the compiled sources.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const serverBundle = new URL('../bundle/server.mjs', import.meta.url);
const entry =
  process.argv[2] === 'serve' && existsSync(serverBundle) ? serverBundle.href : '../dist/cli/main.js';
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));
