// nullgate as `npm run bench` runs it: createGateway from the compiled library (dist/), serving
// ROOT writable on ADDRESS, logs off. Prints "ready" once listening.
import { createGateway } from '../../dist/gateway/index.js';

const [address, root] = process.argv.slice(2);
if (!address || !root) throw new Error('usage: nullgate.mjs ADDRESS ROOT');
const gateway = createGateway({
  socket: address,
  root,
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
