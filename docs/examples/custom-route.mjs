// A user's own route on the gateway: register it on `gateway.app` (a Fastify instance) before
// listen(). Every request carries `request.peer`, the caller's credentials from SO_PEERCRED.
//
//   node docs/examples/custom-route.mjs            # serves on @nullgate-example
//   curl --abstract-unix-socket nullgate-example http://localhost/hello
import { createGateway } from 'nullgate';

const gateway = createGateway({
  socket: process.env.NULLGATE_SOCKET ?? '@nullgate-example',
  root: '.',
  logLevel: 'warn',
});

gateway.app.get('/hello', async (request) => ({
  hello: `uid ${request.peer.uid}`,
  pid: request.peer.pid,
}));

await gateway.listen();
console.log(`listening on ${gateway.addressText}`);

for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => void gateway.close());
