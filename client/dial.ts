/**
 * Opening a connection to a nullgate server, as a plain fd: the exact-length native connect
 * (native/socket.ts; Node 20's own `net.connect('\0name')` pads abstract names to 108 bytes),
 * the retries of a full backlog and, on request, of a server that is not there yet, and the
 * vetting of the server (CONTRACT.md, "The client checks the server too"): an abstract name has
 * no file to own, so any user can bind it first. The kernel reports who made the listening
 * socket (SO_PEERCRED, fixed at its listen(2)); only root, this process's own uid or a uid in
 * `serverUids` is talked to. Anything else is closed before a byte is written
 * (NG_ERR_SERVER_UNTRUSTED).
 *
 * Loads neither node:net nor node:http: client/connector.ts hands the fd to a net.Socket (undici,
 * node:http), client/blocking-transport.ts reads and writes it with blocking calls.
 */
import { inspect } from 'node:util';
import { type Address, formatAddress, parseAddress } from '../core/address.js';
import { native, systemError } from '../native/binding.js';
import { ngError } from '../core/errors.js';
import { connectFd } from '../native/socket.js';
import { UntrustedServerError } from './client-error.js';

export interface ConnectorOptions {
  /**
   * How long to keep retrying while nobody listens (ECONNREFUSED, ENOENT), in milliseconds:
   * the "seed problem" of a client and a server that start independently. Default 0.
   */
  readonly waitMs?: number | undefined;
  /** How long to retry a full listen backlog (EAGAIN), in milliseconds. Default 2000. */
  readonly busyMs?: number | undefined;
  /**
   * Uids besides root and this process's own uid whose server this connector talks to (the
   * uid that created the listening socket, as SO_PEERCRED reports it). Default none.
   */
  readonly serverUids?: readonly number[] | undefined;
}

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

/** The largest uid: (uid_t)-1 is "no uid" to the kernel, never a process's. */
const MAX_UID = 0xfffffffe;

function checkUids(value: unknown): readonly number[] {
  if (value === undefined) return [];
  const ok =
    Array.isArray(value) &&
    value.every((uid) => typeof uid === 'number' && Number.isInteger(uid) && uid >= 0 && uid <= MAX_UID);
  if (!ok) {
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      `invalid serverUids: expected an array of uids (integers 0-${MAX_UID}), got ${inspect(value)}`,
    );
  }
  return [...(value as number[])];
}

/**
 * Root and the client's own (effective) uid are always trusted: root could read and write
 * anything the server serves anyway, and a server of one's own uid is one's own. SO_PEERCRED
 * reports the effective uid of the process that called listen(2) (unix(7)).
 */
export function trustedServerUids(serverUids: readonly number[] = []): ReadonlySet<number> {
  return new Set([0, process.geteuid?.() ?? 0, ...serverUids]);
}

/**
 * Vets the server at the other end of the connected `fd`: returns undefined when its uid is
 * trusted, else the error to fail the connection with (also when the kernel cannot say who it is).
 */
function vetServer(fd: number, trusted: ReadonlySet<number>, shown: string): Error | undefined {
  const cred = native.peerCred(fd);
  if (typeof cred === 'number') {
    return ngError(
      'NG_ERR_SERVER_UNTRUSTED',
      `cannot tell who runs the server on ${shown}`,
      systemError(cred, 'getsockopt', { address: shown }),
    );
  }
  if (trusted.has(cred.uid)) return undefined;
  return new UntrustedServerError(shown, cred, [...trusted]);
}

/** True for the connect errors that mean "nobody listens there (yet)". */
function isNoServer(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ECONNREFUSED' || code === 'ENOENT';
}

/** A validated connection target: what dial() needs, checked once, up front. */
export interface Dialer {
  readonly target: Address;
  readonly waitMs: number;
  readonly busyMs: number;
  readonly trusted: ReadonlySet<number>;
  /** The address as messages show it (`@name`). */
  readonly shown: string;
}

export function dialer(address: string | Address, opts: ConnectorOptions = {}): Dialer {
  if (opts === null || typeof opts !== 'object') {
    throw ngError(
      'NG_ERR_INVALID_OPTION',
      `invalid connector options: expected an object, got ${inspect(opts)}`,
    );
  }
  const target = toAddress(address);
  return {
    target,
    waitMs: checkMs('waitMs', opts.waitMs) ?? 0,
    busyMs: checkMs('busyMs', opts.busyMs) ?? DEFAULT_BUSY_MS,
    trusted: trustedServerUids(checkUids(opts.serverUids)),
    shown: formatAddress(target),
  };
}

/**
 * Connects to `d`'s server and vets it: `callback` gets the connected fd (non-blocking, the
 * caller's to close) or the error, always asynchronously (undici's own connector does).
 */
export function dial(d: Dialer, callback: (err: Error | null, fd: number) => void): void {
  const started = Date.now();
  let delay = FIRST_DELAY_MS;
  const attempt = (): void => {
    let fd: number;
    try {
      fd = connectFd(d.target);
    } catch (err) {
      const elapsed = Date.now() - started;
      const code = (err as NodeJS.ErrnoException).code;
      // A full backlog (EAGAIN on a non-blocking AF_UNIX connect) is transient: retry briefly.
      // Nobody listening is retried only when the caller asked to wait for the server.
      const retry = (code === 'EAGAIN' && elapsed < d.busyMs) || (isNoServer(err) && elapsed < d.waitMs);
      if (retry) {
        setTimeout(attempt, delay);
        delay = Math.min(delay * 2, MAX_DELAY_MS);
        return;
      }
      callback(
        isNoServer(err) ? ngError('NG_ERR_NO_SERVER', `no server on ${d.shown}`, err) : (err as Error),
        -1,
      );
      return;
    }
    const untrusted = vetServer(fd, d.trusted, d.shown);
    if (untrusted !== undefined) {
      native.close(fd);
      callback(untrusted, -1);
      return;
    }
    callback(null, fd);
  };
  process.nextTick(attempt);
}

/** dial() as a promise. */
export function dialFd(d: Dialer): Promise<number> {
  return new Promise((resolve, reject) => dial(d, (err, fd) => (err === null ? resolve(fd) : reject(err))));
}
