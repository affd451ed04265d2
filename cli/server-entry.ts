/**
 * The entry of bundle/server.mjs (scripts/bundle.mjs), which `nullgate serve` runs
 * (bin/nullgate.js): the CLI with Fastify and its dependencies in one file. A server started from
 * it spends about a third less CPU per small request than the same code loaded from dist/ and
 * node_modules (docs/performance.md, "Bundling decides much of what is left"). createGateway is
 * exported too, so that `npm run bench` measures the server as `nullgate serve` runs it.
 */
export { main } from './main.js';
export { createGateway } from '../gateway/gateway.js';
