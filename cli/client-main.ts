/**
 * Entry of the chroot client bundle (scripts/bundle.mjs): the client verbs only. Without
 * `serve` and `install-client` nothing pulls Fastify or the server into the bundle.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { clientCommands } from './client-commands.js';
import { run } from './run.js';

export function main(argv: string[]): Promise<number> {
  return run(argv, clientCommands);
}

/** True when this module is the script node was started with (`node bundle/nullgate.mjs get …`). */
function isEntryScript(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

// The install-client launcher imports main(); run directly, the bundle is the CLI itself.
if (isEntryScript()) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
