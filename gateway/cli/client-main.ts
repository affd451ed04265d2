/**
 * Entry of the chroot client bundle (scripts/bundle.mjs): the client verbs only. Without
 * `serve` and `install-client` nothing pulls Fastify or the server into the bundle.
 */
import { clientCommands } from './client-commands.js';
import { run } from './run.js';

export function main(argv: string[]): Promise<number> {
  return run(argv, clientCommands);
}
