// A user's own route on the gateway: register it on `gateway.app` (a Fastify instance) before
// listen(). Every request carries `request.peer`, the caller's credentials from SO_PEERCRED.
//
//   node docs/examples/custom-route.mjs                      # serves on @nullgate-example
//   node docs/examples/custom-route.mjs --socket @my-route   # or NULLGATE_EXAMPLE_SOCKET=@my-route
//   curl --abstract-unix-socket nullgate-example http://localhost/hello
//
// Its own flag and variable, not NULLGATE_SOCKET: that one tells the nullgate *client* where a
// server is, and a user who exported it for the client has a server on that name already.
import { parseArgs } from 'node:util';
import { createGateway } from 'nullgate';

let socket;
try {
  const { values } = parseArgs({ options: { socket: { type: 'string' } } });
  socket = values.socket ?? process.env.NULLGATE_EXAMPLE_SOCKET ?? '@nullgate-example';
} catch (err) {
  console.error(`custom-route: ${err.message} (usage: custom-route.mjs [--socket ADDRESS])`);
  process.exit(2);
}

const gateway = createGateway({ socket, root: '.', logLevel: 'warn' });

gateway.app.get('/hello', async (request) => ({
  hello: `uid ${request.peer.uid}`,
  pid: request.peer.pid,
}));

try {
  await gateway.listen();
} catch (err) {
  // One line, as a command's failure should be (`bind EADDRINUSE @nullgate-example`), not a stack.
  console.error(`custom-route: cannot listen on ${socket}: ${err.message}`);
  await gateway.close().catch(() => undefined);
  process.exit(1);
}
console.log(`listening on ${gateway.addressText}`);

for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => void gateway.close());
