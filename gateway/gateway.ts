/**
 * createGateway(options) → { app, listen(), close(), address }: the Fastify app on an
 * exact-length socket address, with the peer policy enforced per connection.
 */
import type { FastifyInstance } from 'fastify';
import { type Address, DEFAULT_ADDRESS, formatAddress, parseAddress } from './address.js';
import { buildApp, type AppOptions } from './app.js';
import { createPeerPolicy, type PeerPolicyOptions } from './peer-policy.js';
import { listenAbstract } from './listen.js';

export interface GatewayOptions extends AppOptions, PeerPolicyOptions {
  /** Address in the contract's syntax (`@name`, `@`, a path, `fd:N`); default `@nullgate`. */
  readonly socket?: string | Address | undefined;
  readonly backlog?: number | undefined;
  /** Bind inside another network namespace (a /proc/PID/ns/net or /run/netns/NAME file). */
  readonly netns?: string | undefined;
  /** How long close() lets requests in flight finish before cutting connections (ms). */
  readonly graceMs?: number | undefined;
}

export interface Gateway {
  readonly app: FastifyInstance;
  /** Binds, listens and resolves with the bound address (autobind resolved). */
  listen(): Promise<Address>;
  /** Stops accepting, lets requests in flight finish (bounded by graceMs), runs onClose hooks. */
  close(): Promise<void>;
  /** The bound address once listening. */
  readonly address: Address | undefined;
  /** The bound address as text (`@name`), once listening. */
  readonly addressText: string | undefined;
}

export const DEFAULT_GRACE_MS = 10_000;

export function createGateway(options: GatewayOptions = {}): Gateway {
  // Validate everything before anything is bound: a bad option must not leave a socket behind.
  const policy = createPeerPolicy(options);
  const target =
    typeof options.socket === 'object' ? options.socket : parseAddress(options.socket ?? DEFAULT_ADDRESS);
  const app = buildApp(options);
  let bound: Address | undefined;
  let closing: Promise<void> | undefined;

  return {
    app,
    get address() {
      return bound;
    },
    get addressText() {
      return bound && formatAddress(bound);
    },
    async listen() {
      await app.ready();
      const result = await listenAbstract(app.server, target, {
        peerPolicy: policy,
        backlog: options.backlog,
        netns: options.netns,
        onPeerDenied: (peer) => app.log.warn({ peer }, 'peer denied'),
      });
      bound = result.address;
      return bound;
    },
    close() {
      closing ??= (async () => {
        const grace = setTimeout(() => app.server.closeAllConnections(), options.graceMs ?? DEFAULT_GRACE_MS);
        try {
          // Fastify marks itself closing (responses get `Connection: close`), closes the
          // listener and idle connections, and waits for requests in flight.
          await app.close();
        } finally {
          clearTimeout(grace);
        }
      })();
      return closing;
    },
  };
}
