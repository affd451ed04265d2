/**
 * The client verbs. Kept apart from the server's so that the chroot bundle (client-main.ts),
 * which esbuild follows import by import, never contains Fastify.
 */
import { setFlagsFromString } from 'node:v8';
import type { CommandTable, Verb } from './run.js';

/**
 * A client verb is a short-lived process. V8 tiers hot wasm functions (undici's llhttp parser)
 * up to optimised code on background threads, and Node waits for those jobs before it exits:
 * ~100 ms after the work is done, for a 1 KiB get (3× `node -e 0` in all). An unreachable
 * tiering budget keeps the baseline (Liftoff) code, which a transfer never notices: llhttp only
 * parses headers and skips over bodies. `--no-wasm-tier-up` does not do this (it is ignored
 * under dynamic tiering); `--liftoff-only` does, but turns any Liftoff bail-out into a crash.
 * It must be set before undici compiles the parser, at its first connection: so, here (and
 * first thing in the install-client launcher, for the compile cache's sake: cli/install-client.ts).
 */
export const SHORT_LIVED_V8_FLAGS = '--wasm-tiering-budget=2147483647';

function clientVerb(load: () => Promise<Verb>): () => Promise<Verb> {
  return () => {
    setFlagsFromString(SHORT_LIVED_V8_FLAGS);
    return load();
  };
}

export const clientCommands: CommandTable = {
  get: clientVerb(async () => {
    const m = await import('../client/verbs/get.js');
    return { spec: m.getSpec, run: m.getCommand };
  }),
  put: clientVerb(async () => {
    const m = await import('../client/verbs/put.js');
    return { spec: m.putSpec, run: m.putCommand };
  }),
  ls: clientVerb(async () => {
    const m = await import('../client/verbs/ls.js');
    return { spec: m.lsSpec, run: m.lsCommand };
  }),
  rm: clientVerb(async () => {
    const m = await import('../client/verbs/rm.js');
    return { spec: m.rmSpec, run: m.rmCommand };
  }),
  mkdir: clientVerb(async () => {
    const m = await import('../client/verbs/mkdir.js');
    return { spec: m.mkdirSpec, run: m.mkdirCommand };
  }),
  mv: clientVerb(async () => {
    const m = await import('../client/verbs/mv.js');
    return { spec: m.mvSpec, run: m.mvCommand };
  }),
  pull: clientVerb(async () => {
    const m = await import('../client/verbs/pull.js');
    return { spec: m.pullSpec, run: m.pullCommand };
  }),
  push: clientVerb(async () => {
    const m = await import('../client/verbs/pull.js');
    return { spec: m.pushSpec, run: m.pushCommand };
  }),
  request: clientVerb(async () => {
    const m = await import('../client/verbs/request.js');
    return { spec: m.requestSpec, run: m.requestCommand };
  }),
};
