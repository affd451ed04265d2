/**
 * The entry of bundle/server.mjs (scripts/bundle.mjs), which `nullgate serve` runs
 * (bin/nullgate.js): the server's verb with Fastify and its dependencies in one file. A server
 * started from it spends about a quarter less CPU per small request than the same code loaded from
 * dist/ and node_modules (docs/performance.md, "Bundling decides much of what is left"). It holds
 * `serve` alone: the client verbs and undici would be a third of its source, which V8 keeps in
 * memory. createGateway is exported too, so that `npm run bench` measures the server as `nullgate
 * serve` runs it.
 */
import { type CommandTable, run } from './run.js';

const commands: CommandTable = {
  serve: async () => (await import('./serve.js')).serveVerb,
};

/** bin/nullgate.js calls it for `nullgate serve …` only. */
export function main(argv: string[]): Promise<number> {
  return run(argv, commands);
}

export { createGateway } from '../gateway/gateway.js';
