// nullgate as `npm run bench` runs it: createGateway from the compiled library (dist/), serving
// ROOT writable on ADDRESS, logs off. Prints "ready" once listening. With `exports`, it also
// exports an empty chroot directory: the load client is outside it, so every connection pays the
// peer-root lookup (pidfd, /proc/PID/root) and then gets ROOT, which is what that figure measures.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createGateway } from '../../dist/gateway/index.js';

const [address, root, mode] = process.argv.slice(2);
if (!address || !root) throw new Error('usage: nullgate.mjs ADDRESS ROOT [exports]');
const exports =
  mode === 'exports'
    ? [{ chroot: mkdtempSync(path.join(tmpdir(), 'ng-bench-jail-')), root, writable: true }]
    : [];
const gateway = createGateway({
  socket: address,
  root,
  exports,
  writable: true,
  maxUpload: 4 * 1024 ** 3,
  logLevel: false,
});
await gateway.listen();
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  gateway.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
