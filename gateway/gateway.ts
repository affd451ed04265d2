/**
 * createGateway(options) → { app, listen(), close(), address }: the Fastify app on an
 * exact-length socket address, with the peer policy enforced per connection.
 */
import type { FastifyInstance } from 'fastify';
import { type Address, DEFAULT_ADDRESS, formatAddress, parseAddress } from './address.js';
import { buildApp, type AppOptions } from './app.js';
import { createPeerPolicy, type PeerPolicyOptions } from './peer-policy.js';
import { type DeniedPeer, listenAbstract } from './listen.js';
import { rateLimited, resolveLimits } from './limits.js';

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
/** A flood of denials or drops logs one line per window, with the count of the rest. */
const LOG_WINDOW_MS = 10_000;

export function createGateway(options: GatewayOptions = {}): Gateway {
  // Validate everything before anything is bound: a bad option must not leave a socket behind.
  const policy = createPeerPolicy(options);
  const target =
    typeof options.socket === 'object' ? options.socket : parseAddress(options.socket ?? DEFAULT_ADDRESS);
  const limits = resolveLimits(options.limits);
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
      let lastDenied: DeniedPeer | undefined;
      const logDenied = rateLimited(LOG_WINDOW_MS, (suppressed) =>
        app.log.warn({ peer: lastDenied, suppressed }, 'peer denied'),
      );
      let dropped = 0;
      const logDropped = rateLimited(LOG_WINDOW_MS, (suppressed) =>
        app.log.warn(
          { maxConnections: limits.maxConnections, dropped, suppressed },
          'connection limit reached: closing new connections',
        ),
      );
      app.server.maxConnections = limits.maxConnections;
      app.server.on('drop', () => {
        dropped++;
        logDropped();
      });
      const result = await listenAbstract(app.server, target, {
        peerPolicy: policy,
        backlog: options.backlog,
        netns: options.netns,
        onPeerDenied: (peer) => {
          lastDenied = peer;
          logDenied();
        },
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
