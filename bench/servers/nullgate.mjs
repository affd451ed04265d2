// nullgate as `npm run bench` runs it: createGateway from bundle/server.mjs, the code `nullgate
// serve` runs (Fastify inside; `npm run build` makes it), serving ROOT writable on ADDRESS, logs
// off; with NULLGATE_BENCH_DIST=1 from the compiled library (dist/) that `import 'nullgate'`
// loads. Prints "ready" once listening. With `exports`, it also exports an empty chroot directory:
// the load client is outside it, so every connection pays the peer-root lookup (pidfd,
// /proc/PID/root) and then gets ROOT, which is what that figure measures.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const { createGateway } = await import(
  process.env.NULLGATE_BENCH_DIST === '1' ? '../../dist/gateway/index.js' : '../../bundle/server.mjs'
);

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
  const done = (code) => {
    for (const { chroot } of exports) rmSync(chroot, { recursive: true, force: true });
    process.exit(code);
  };
  gateway.close().then(
    () => done(0),
    () => done(1),
  );
});
