/** `nullgate`: every verb, the server's included (bin/nullgate.js). */
import { clientCommands } from './client-commands.js';
import { type CommandTable, run } from './run.js';

const commands: CommandTable = {
  serve: async () => (await import('./serve.js')).serveCommand,
  'install-client': async () => (await import('./install-client.js')).installClientCommand,
  ...clientCommands,
};

export function main(argv: string[]): Promise<number> {
  return run(argv, commands);
}
