/**
 * The client verbs. Kept apart from the server's so that the chroot bundle (client-main.ts),
 * which esbuild follows import by import, never contains Fastify. Each verb's module is loaded
 * when that verb runs, and only the verbs that stream load undici (client/verbs/common.ts).
 */
import type { CommandTable } from './run.js';

export const clientCommands: CommandTable = {
  get: async () => {
    const m = await import('../client/verbs/get.js');
    return { spec: m.getSpec, run: m.getCommand };
  },
  put: async () => {
    const m = await import('../client/verbs/put.js');
    return { spec: m.putSpec, run: m.putCommand };
  },
  ls: async () => {
    const m = await import('../client/verbs/ls.js');
    return { spec: m.lsSpec, run: m.lsCommand };
  },
  rm: async () => {
    const m = await import('../client/verbs/rm.js');
    return { spec: m.rmSpec, run: m.rmCommand };
  },
  mkdir: async () => {
    const m = await import('../client/verbs/mkdir.js');
    return { spec: m.mkdirSpec, run: m.mkdirCommand };
  },
  mv: async () => {
    const m = await import('../client/verbs/mv.js');
    return { spec: m.mvSpec, run: m.mvCommand };
  },
  pull: async () => {
    const m = await import('../client/verbs/pull.js');
    return { spec: m.pullSpec, run: m.pullCommand };
  },
  push: async () => {
    const m = await import('../client/verbs/pull.js');
    return { spec: m.pushSpec, run: m.pushCommand };
  },
  request: async () => {
    const m = await import('../client/verbs/request.js');
    return { spec: m.requestSpec, run: m.requestCommand };
  },
};
