/**
 * The client verbs. Kept apart from the server's so that the chroot bundle (client-main.ts),
 * which esbuild follows import by import, never contains Fastify.
 */
import { setFlagsFromString } from 'node:v8';
import type { Command, CommandTable } from './run.js';

/**
 * A client verb is a short-lived process. V8 tiers hot wasm functions (undici's llhttp parser)
 * up to optimised code on background threads, and Node waits for those jobs before it exits:
 * ~100 ms after the work is done, for a 1 KiB get (3× `node -e 0` in all). An unreachable
 * tiering budget keeps the baseline (Liftoff) code, which a transfer never notices: llhttp only
 * parses headers and skips over bodies. `--no-wasm-tier-up` does not do this (it is ignored
 * under dynamic tiering); `--liftoff-only` does, but turns any Liftoff bail-out into a crash.
 * It must be set before undici compiles the parser, at its first connection: so, here.
 */
const SHORT_LIVED_V8_FLAGS = '--wasm-tiering-budget=2147483647';

function clientVerb(load: () => Promise<Command>): () => Promise<Command> {
  return () => {
    setFlagsFromString(SHORT_LIVED_V8_FLAGS);
    return load();
  };
}

export const clientCommands: CommandTable = {
  get: clientVerb(async () => (await import('../client/verbs/get.js')).getCommand),
  put: clientVerb(async () => (await import('../client/verbs/put.js')).putCommand),
  ls: clientVerb(async () => (await import('../client/verbs/ls.js')).lsCommand),
  rm: clientVerb(async () => (await import('../client/verbs/rm.js')).rmCommand),
  mkdir: clientVerb(async () => (await import('../client/verbs/mkdir.js')).mkdirCommand),
  mv: clientVerb(async () => (await import('../client/verbs/mv.js')).mvCommand),
  pull: clientVerb(async () => (await import('../client/verbs/pull.js')).pullCommand),
  push: clientVerb(async () => (await import('../client/verbs/pull.js')).pushCommand),
  request: clientVerb(async () => (await import('../client/verbs/request.js')).requestCommand),
};
