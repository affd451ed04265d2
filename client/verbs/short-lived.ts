/**
 * The V8 flag of the verbs on undici (withClient, client/verbs/common.ts). A client verb is a
 * short-lived process. V8 tiers hot wasm functions (undici's llhttp parser) up to optimised code
 * on background threads, and Node waits for those jobs before it exits: ~100 ms after the work
 * is done, for a 1 KiB request (3× `node -e 0` in all). An unreachable tiering budget keeps the
 * baseline (Liftoff) code, which a transfer never notices: llhttp only parses headers and skips
 * over bodies. `--no-wasm-tier-up` does not do this (it is ignored under dynamic tiering);
 * `--liftoff-only` does, but turns any Liftoff bail-out into a crash. It must be set before
 * undici compiles the parser, at its first connection: so, when a verb opens its undici Client.
 * Not before, and not in the install-client launcher: any V8 flag changes V8's flag hash, and
 * Node then compiles its own built-in modules from source instead of from the code cache in its
 * binary (cli/install-client.ts). The verbs on node:http (withFileClient) have no wasm, and do
 * not load node:v8 for it.
 */
export const SHORT_LIVED_V8_FLAGS = '--wasm-tiering-budget=2147483647';
