/**
 * createGateway(options) → { app, listen(), close(), address }: the Fastify app on an
 * exact-length socket address, with the peer policy enforced per connection.
 */
import type { FastifyInstance } from 'fastify';
import { type Address, DEFAULT_ADDRESS, formatAddress, parseAddress } from '../core/address.js';
import { buildApp, type AppOptions } from './app.js';
import { createPeerPolicy, type PeerPolicyOptions } from './peer-policy.js';
import { cutRemaining, type DeniedPeer, drainStep, listenAbstract } from './listen.js';
import { RateLimitedLog, resolveLimits } from '../core/limits.js';
import type { PeerCredentials } from '../native/binding.js';

export interface GatewayOptions extends AppOptions, PeerPolicyOptions {
  /** Address in the contract's syntax (`@name`, `@`, a path, `fd:N`); default `@nullgate`. */
  readonly socket?: string | Address | undefined;
  readonly backlog?: number | undefined;
  /** Bind inside another network namespace (a /proc/PID/ns/net or /run/netns/NAME file). */
  readonly netns?: string | undefined;
  /**
   * How long close() lets requests in flight, and connections closing lingering after a cut
   * request (routes/linger.ts, LINGER_MS at most), finish before cutting what is left (ms).
   */
  readonly graceMs?: number | undefined;
}

export interface Gateway {
  readonly app: FastifyInstance;
  /** Binds, listens and resolves with the bound address (autobind resolved). */
  listen(): Promise<Address>;
  /**
   * Stops accepting, lets requests in flight and lingering closes finish (bounded by graceMs),
   * runs onClose hooks; resolves once every connection is closed.
   */
  close(): Promise<void>;
  /** The bound address once listening. */
  readonly address: Address | undefined;
  /** The bound address as text (`@name`), once listening. */
  readonly addressText: string | undefined;
}

export const DEFAULT_GRACE_MS = 10_000;
/** A flood of denials or drops logs one line per window and key, with the count of the rest. */
export const LOG_WINDOW_MS = 10_000;
/** While draining, how often connections that went idle (or never spoke) are cut. */
const DRAIN_SWEEP_MS = 50;

export function createGateway(options: GatewayOptions = {}): Gateway {
  // Validate everything before anything is bound: a bad option must not leave a socket behind.
  const policy = createPeerPolicy(options);
  const target =
    typeof options.socket === 'object' ? options.socket : parseAddress(options.socket ?? DEFAULT_ADDRESS);
  const limits = resolveLimits(options.limits);
  const app = buildApp(options);
  let bound: Address | undefined;
  let closing: Promise<void> | undefined;
  const logs: { flush(): void }[] = [];

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
      const logDenied = new RateLimitedLog<DeniedPeer>(LOG_WINDOW_MS, (peer, suppressed) => {
        const { reason, ...cred } = peer;
        app.log.warn(
          { peer: cred, reason, suppressed },
          suppressed === 0 ? 'peer denied' : `peer denied: ${suppressed} more like the last one`,
        );
      });
      const logDropped = new RateLimitedLog<PeerCredentials>(LOG_WINDOW_MS, (peer, suppressed) =>
        app.log.warn(
          { peer, reason: 'max connections', maxConnections: limits.maxConnections, suppressed },
          'connection limit reached: new connections are refused (429)',
        ),
      );
      logs.push(logDenied, logDropped);
      const result = await listenAbstract(app.server, target, {
        peerPolicy: policy,
        backlog: options.backlog,
        netns: options.netns,
        maxConnections: limits.maxConnections,
        onPeerDenied: (peer) => logDenied.event(`${peer.uid}:${peer.reason}`, peer),
        onDropped: (peer) => logDropped.event(String(peer.uid), peer),
      });
      bound = result.address;
      return bound;
    },
    close() {
      closing ??= (async () => {
        const server = app.server;
        // At the end of the grace everything still open is cut, connections closing lingering
        // after a cut request among them (they end on their own within LINGER_MS before that).
        const grace = setTimeout(() => cutRemaining(server), options.graceMs ?? DEFAULT_GRACE_MS);
        // Node's close() cuts the connections idle at that moment and waits for the rest; each
        // step cuts those no request is coming on as they become so (see drainStep), so the
        // drain lasts as long as the requests in flight, not as long as the idlest client.
        const sweep = setInterval(() => {
          if (!server.listening) drainStep(server);
        }, DRAIN_SWEEP_MS).unref();
        try {
          // Fastify marks itself closing (responses get `Connection: close`), closes the
          // listener and idle connections, and waits for requests in flight.
          await app.close();
        } finally {
          clearTimeout(grace);
          clearInterval(sweep);
          for (const log of logs) log.flush();
        }
      })();
      return closing;
    },
  };
}
