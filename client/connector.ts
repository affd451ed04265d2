/**
 * An undici `connect` function for nullgate addresses (undici's lib/core/connect.js is the
 * model: a small `(options, callback)` function, its options validated once, up front).
 *
 * Node 20's own `net.connect('\0name')` pads abstract names to 108 bytes, so the fd is made by
 * the native exact-length connect (socket.ts) and handed to a `net.Socket`, which owns it from
 * then on. Use it as `new Agent({ connect: connector('@name') })`; the URL host is irrelevant
 * (`http://localhost`).
 */
import net from 'node:net';
import { inspect } from 'node:util';
import type { buildConnector } from 'undici';
import { type Address, formatAddress, parseAddress } from '../core/address.js';
import { native } from '../native/binding.js';
import { ngError } from '../core/errors.js';
import { connectFd } from '../native/socket.js';

export interface ConnectorOptions {
  /**
   * How long to keep retrying while nobody listens (ECONNREFUSED, ENOENT), in milliseconds:
   * the "seed problem" of a client and a server that start independently. Default 0.
   */
  readonly waitMs?: number | undefined;
  /** How long to retry a full listen backlog (EAGAIN), in milliseconds. Default 2000. */
  readonly busyMs?: number | undefined;
}

export type Connector = buildConnector.connector;

const DEFAULT_BUSY_MS = 2000;
/** Backoff bounds between attempts: short at first (a backlog drains fast), capped so --wait stays responsive. */
const FIRST_DELAY_MS = 5;
const MAX_DELAY_MS = 250;

function checkMs(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      `invalid ${name}: expected a non-negative number of milliseconds, got ${inspect(value)}`,
    );
  }
  return value;
}

function toAddress(address: string | Address): Address {
  const parsed = typeof address === 'string' ? parseAddress(address) : address;
  if (parsed.kind !== 'abstract' && parsed.kind !== 'path') {
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      `invalid address: a client connects to @name or a socket path, got ${inspect(formatAddress(parsed))}`,
    );
  }
  return parsed;
}

/** True for the connect errors that mean "nobody listens there (yet)". */
function isNoServer(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ECONNREFUSED' || code === 'ENOENT';
}

export function connector(address: string | Address, opts: ConnectorOptions = {}): Connector {
  if (opts === null || typeof opts !== 'object') {
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      `invalid connector options: expected an object, got ${inspect(opts)}`,
    );
  }
  const target = toAddress(address);
  const waitMs = checkMs('waitMs', opts.waitMs) ?? 0;
  const busyMs = checkMs('busyMs', opts.busyMs) ?? DEFAULT_BUSY_MS;
  const shown = formatAddress(target);

  return function connect(options, callback) {
    if (options.protocol !== 'http:') {
      process.nextTick(
        callback,
        ngError(
          'NG_ERR_INVALID_OPTION',
          `nullgate speaks plain HTTP/1.1 on ${shown}: use http://localhost, got protocol ${inspect(options.protocol)}`,
        ),
        null,
      );
      return;
    }
    const started = Date.now();
    let delay = FIRST_DELAY_MS;

    const attempt = (): void => {
      let fd: number;
      try {
        fd = connectFd(target);
      } catch (err) {
        const elapsed = Date.now() - started;
        const code = (err as NodeJS.ErrnoException).code;
        // A full backlog (EAGAIN on a non-blocking AF_UNIX connect) is transient: retry briefly.
        // Nobody listening is retried only when the caller asked to wait for the server.
        const retry = (code === 'EAGAIN' && elapsed < busyMs) || (isNoServer(err) && elapsed < waitMs);
        if (retry) {
          setTimeout(attempt, delay);
          delay = Math.min(delay * 2, MAX_DELAY_MS);
          return;
        }
        callback(
          isNoServer(err) ? ngError('NG_ERR_NO_SERVER', `no server on ${shown}`, err) : (err as Error),
          null,
        );
        return;
      }
      let socket: net.Socket;
      try {
        socket = new net.Socket({ fd, readable: true, writable: true });
      } catch (err) {
        native.close(fd);
        callback(err as Error, null);
        return;
      }
      // From here the net.Socket owns the fd; it is already connected, so there is no
      // 'connect' event to wait for.
      callback(null, socket);
    };
    // undici's own connector always answers asynchronously; keep that contract.
    process.nextTick(attempt);
  };
}
