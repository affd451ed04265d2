/** `nullgate`: every verb, the server's included (bin/nullgate.js). */
import { clientCommands } from './client-commands.js';
import { type CommandTable, run } from './run.js';

export const commands: CommandTable = {
  serve: async () => (await import('./serve.js')).serveVerb,
  'install-client': async () => (await import('./install-client.js')).installClientVerb,
  ...clientCommands,
};

export function main(argv: string[]): Promise<number> {
  return run(argv, commands);
}
