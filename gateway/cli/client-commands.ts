/**
 * The client verbs. Kept apart from the server's so that the chroot bundle (client-main.ts),
 * which esbuild follows import by import, never contains Fastify.
 */
import type { CommandTable } from './run.js';

export const clientCommands: CommandTable = {
  get: async () => (await import('../client/cli/get.js')).getCommand,
  put: async () => (await import('../client/cli/put.js')).putCommand,
  ls: async () => (await import('../client/cli/ls.js')).lsCommand,
  rm: async () => (await import('../client/cli/rm.js')).rmCommand,
  mkdir: async () => (await import('../client/cli/mkdir.js')).mkdirCommand,
  mv: async () => (await import('../client/cli/mv.js')).mvCommand,
  pull: async () => (await import('../client/cli/pull.js')).pullCommand,
  push: async () => (await import('../client/cli/pull.js')).pushCommand,
  request: async () => (await import('../client/cli/request.js')).requestCommand,
};
