/**
 * An undici `connect` function for nullgate addresses (undici's lib/core/connect.js is the
 * model: a small `(options, callback)` function, its options validated once, up front).
 *
 * The fd comes from client/dial.ts (exact-length connect, retries, the server vetted before a
 * byte is written) and is handed to a `net.Socket`, which owns it from then on. Use it as
 * `new Agent({ connect: connector('@name') })`; the URL host is irrelevant (`http://localhost`).
 */
import net from 'node:net';
import { inspect } from 'node:util';
import type { buildConnector } from 'undici';
import type { Address } from '../core/address.js';
import { native } from '../native/binding.js';
import { ngError } from '../core/errors.js';
import { type ConnectorOptions, dial, dialer } from './dial.js';

export type { ConnectorOptions } from './dial.js';

export type Connector = buildConnector.connector;

export function connector(address: string | Address, opts: ConnectorOptions = {}): Connector {
  const d = dialer(address, opts);
  return function connect(options, callback) {
    if (options.protocol !== 'http:') {
      process.nextTick(
        callback,
        ngError(
          'NG_ERR_INVALID_OPTION',
          `nullgate speaks plain HTTP/1.1 on ${d.shown}: use http://localhost, got protocol ${inspect(options.protocol)}`,
        ),
        null,
      );
      return;
    }
    dial(d, (err, fd) => {
      if (err !== null) {
        callback(err, null);
        return;
      }
      let socket: net.Socket;
      try {
        socket = new net.Socket({ fd, readable: true, writable: true });
      } catch (socketErr) {
        native.close(fd);
        callback(socketErr as Error, null);
        return;
      }
      // From here the net.Socket owns the fd; it is already connected, so there is no
      // 'connect' event to wait for.
      callback(null, socket);
    });
  };
}
