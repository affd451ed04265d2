/**
 * What every client verb shares: the socket flags (`--socket @NAME`, curl's
 * `--abstract-unix-socket NAME` / `--unix-socket PATH`, NULLGATE_SOCKET, default `@nullgate`),
 * `--wait`, `-s`; the mapping of client errors to curl's exit codes; stdout writing; the
 * progress bar. Parsing is pure (argv and env in, options out) so it is table-tested.
 */
import type { OptionTable } from '../../core/argv.js';
import { isNullgateError, usageError } from '../../core/errors.js';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  type Address,
  DEFAULT_ADDRESS,
  MAX_NAME_BYTES,
  formatAddress,
  parseAddress,
} from '../../core/address.js';
import {
  ClientError,
  CommandError,
  LocalFileError,
  PartialTransferError,
  UntrustedServerError,
  isAbort,
} from '../client-error.js';
import type { Client } from '../client.js';
import { blockingTransport } from '../blocking-transport.js';
import { dialer } from '../dial.js';
import { FileClient, type ProgressCallback } from '../file-client.js';
import type { Transport } from '../transport.js';
import { parseServerUids } from './server-uids.js';
import { SHORT_LIVED_V8_FLAGS } from './short-lived.js';

const SERVER = 'Finding the server (every client verb)';

export const commonOptions = {
  socket: {
    type: 'string',
    value: 'ADDRESS',
    help: '@NAME (abstract, \\xHH escapes, as serve prints it) or a socket file; default $NULLGATE_SOCKET, else @nullgate',
    group: SERVER,
  },
  'abstract-unix-socket': {
    type: 'string',
    value: 'NAME',
    help: "curl's flag: the abstract name, taken literally (no @, no escapes)",
    group: SERVER,
  },
  'unix-socket': { type: 'string', value: 'PATH', help: "curl's flag: a socket file", group: SERVER },
  wait: {
    type: 'string',
    value: 'SECONDS',
    help: 'keep retrying while nobody listens yet (without it a missing server fails at once)',
    group: SERVER,
  },
  'server-uid': {
    type: 'string',
    multiple: true,
    value: 'N',
    help: 'also talk to a server run by uid N (repeatable; default $NULLGATE_SERVER_UID); root and your own uid always are trusted',
    group: SERVER,
  },
  silent: { type: 'boolean', short: 's', help: 'no progress bar (errors are still printed)', group: SERVER },
  // curl's -S (--show-error): nullgate always shows errors, so it is accepted and changes nothing.
  'show-error': { type: 'boolean', short: 'S', help: "curl's -S: errors are always shown", hidden: true },
} as const satisfies OptionTable;

export interface CommonOptions {
  readonly socket: Address;
  /** Seconds to wait for the server (0: fail at once). */
  readonly wait: number;
  /** Uids besides root and the client's own whose server is trusted (--server-uid, NULLGATE_SERVER_UID). */
  readonly serverUids: readonly number[];
  readonly silent: boolean;
}

export type Env = Readonly<Record<string, string | undefined>>;

function abstractFromCurl(name: string): Address {
  // curl passes the name as a C string, no escapes: the bytes are the name.
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0) throw usageError('--abstract-unix-socket: empty name');
  if (bytes.length > MAX_NAME_BYTES) {
    throw usageError(`--abstract-unix-socket: name is ${bytes.length} bytes, at most ${MAX_NAME_BYTES} fit`);
  }
  return { kind: 'abstract', name: bytes };
}

function clientAddress(text: string, from: string): Address {
  let address: Address;
  try {
    address = parseAddress(text);
  } catch (err) {
    throw usageError(`${from}: ${(err as Error).message}`);
  }
  if (address.kind !== 'abstract' && address.kind !== 'path') {
    throw usageError(`${from}: a client connects to @NAME or a socket path, got "${text}"`);
  }
  return address;
}

export function parseWait(text: string | undefined): number {
  if (text === undefined) return 0;
  const seconds = Number(text);
  if (text.trim() === '' || !Number.isFinite(seconds) || seconds < 0) {
    throw usageError(`--wait takes a number of seconds, got "${text}"`);
  }
  return seconds;
}

export function parseCommon(
  values: {
    socket?: string | undefined;
    'abstract-unix-socket'?: string | undefined;
    'unix-socket'?: string | undefined;
    wait?: string | undefined;
    'server-uid'?: string[] | undefined;
    silent?: boolean | undefined;
  },
  env: Env,
): CommonOptions {
  const given = (['socket', 'abstract-unix-socket', 'unix-socket'] as const).filter(
    (k) => values[k] !== undefined,
  );
  if (given.length > 1) throw usageError(`give one of --${given.join(', --')}, not several`);
  let socket: Address;
  if (values.socket !== undefined) socket = clientAddress(values.socket, '--socket');
  else if (values['abstract-unix-socket'] !== undefined)
    socket = abstractFromCurl(values['abstract-unix-socket']);
  else if (values['unix-socket'] !== undefined) {
    const p = values['unix-socket'];
    if (p === '') throw usageError('--unix-socket: empty path');
    if (Buffer.byteLength(p) > MAX_NAME_BYTES)
      throw usageError(`--unix-socket: path longer than ${MAX_NAME_BYTES} bytes`);
    socket = { kind: 'path', path: p };
  } else if (env.NULLGATE_SOCKET !== undefined && env.NULLGATE_SOCKET !== '') {
    socket = clientAddress(env.NULLGATE_SOCKET, 'NULLGATE_SOCKET');
  } else socket = parseAddress(DEFAULT_ADDRESS);
  return {
    socket,
    wait: parseWait(values.wait),
    serverUids: parseServerUids(values['server-uid'], env),
    silent: values.silent === true,
  };
}

/** Exactly `count` positionals, or a usage error naming what is missing or extra. */
export function expectPositionals(verb: string, positionals: string[], names: string[]): string[] {
  if (positionals.length < names.length) {
    throw usageError(
      `${verb}: missing ${names.slice(positionals.length).join(' ')} (usage: nullgate ${verb} ${names.join(' ')})`,
    );
  }
  if (positionals.length > names.length) {
    throw usageError(
      `${verb}: unexpected argument "${positionals[names.length]}" (usage: nullgate ${verb} ${names.join(' ')})`,
    );
  }
  return positionals;
}

function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e !== undefined && e !== null && chain.length < 8; e = (e as { cause?: unknown }).cause) {
    chain.push(e);
  }
  return chain;
}

/** `context: message`, unless the message already starts with the context (Client messages do). */
function inContext(context: string, message: string): string {
  return message.startsWith(`${context}:`) ? message : `${context}: ${message}`;
}

/**
 * The one line a user reads for a failed client verb, or undefined when the error speaks for
 * itself. The kind of failure stays on the cause chain: cli/exit.ts maps it to curl's exit codes.
 */
export function describeFailure(err: unknown, context: string): string | undefined {
  for (const e of causeChain(err)) {
    if (e instanceof ClientError || e instanceof LocalFileError) return e.message;
    if (e instanceof PartialTransferError) return inContext(context, e.message);
    if (e instanceof UntrustedServerError) {
      return inContext(context, `${e.message} (if you trust it: --server-uid ${e.uid})`);
    }
    const code = (e as { code?: unknown } | null)?.code;
    if (code === 'NG_ERR_NO_SERVER' || code === 'NG_ERR_SERVER_UNTRUSTED')
      return inContext(context, (e as Error).message);
    if ((e as { syscall?: unknown } | null)?.syscall === 'connect') {
      return `${context}: cannot connect: ${(e as Error).message}`;
    }
  }
  const e = err as { code?: unknown; message?: unknown } | null;
  // undici's errors, and a malformed answer (HPE_*, llhttp's codes: client/http1.ts).
  if (typeof e?.code === 'string' && (e.code.startsWith('UND_ERR') || e.code.startsWith('HPE_')))
    return inContext(context, String(e.message));
  if (e?.code === 'NG_ERR_ARCHIVE_UNSAFE' || e?.code === 'NG_ERR_HTTP' || e?.code === 'NG_ERR_IS_A_DIRECTORY')
    return inContext(context, String(e.message));
  return undefined;
}

/** True when the failure is that no server could be reached (the CLI's exit 7). */
export function isConnectFailure(err: unknown): boolean {
  return causeChain(err).some(
    (e) =>
      (e as { code?: unknown } | null)?.code === 'NG_ERR_NO_SERVER' ||
      (e as { syscall?: unknown } | null)?.syscall === 'connect',
  );
}

/**
 * `NULLGATE_SOCKET=name` means the socket file ./name; unless there is a socket there, the user
 * most likely meant the abstract name. A directory or a file of that name is no answer (the
 * README's own layout has /srv/exchange beside the @exchange socket).
 */
export function socketHint(socket: Address, cwd = process.cwd()): string | undefined {
  if (socket.kind !== 'path' || socket.path.includes('/')) return undefined;
  let isSocket = false;
  try {
    isSocket = statSync(path.resolve(cwd, socket.path), { throwIfNoEntry: false })?.isSocket() === true;
  } catch {
    // Unreadable: no socket we could have used either.
  }
  return isSocket ? undefined : `did you mean @${socket.path}?`;
}

/**
 * Runs `fn` with a client from `open`, closes it, and words a failure in one line
 * (CommandError, its cause the original error, from which cli/exit.ts takes the exit code).
 */
async function withSession<C extends FileClient>(
  common: CommonOptions,
  context: (socket: string) => string,
  open: () => Promise<C>,
  fn: (client: C) => Promise<void>,
): Promise<void> {
  let client: C | undefined;
  try {
    client = await open();
    await fn(client);
  } catch (err) {
    if (err instanceof CommandError) throw err;
    const message = describeFailure(err, context(formatAddress(common.socket)));
    if (message === undefined) throw err;
    const tip = isConnectFailure(err) ? socketHint(common.socket) : undefined;
    throw new CommandError(tip === undefined ? message : `${message} (${tip})`, { cause: err });
  } finally {
    await client?.destroy();
  }
}

/**
 * The library's Client (undici) for the verbs that stream (pull, push, request, a resumable put).
 * undici is loaded here, not before: the simple verbs never load it (withFileClient).
 */
export function withClient(
  common: CommonOptions,
  context: (socket: string) => string,
  fn: (client: Client) => Promise<void>,
): Promise<void> {
  const open = async (): Promise<Client> => {
    (await import('node:v8')).setFlagsFromString(SHORT_LIVED_V8_FLAGS);
    const { Client } = await import('../client.js');
    return new Client({ socket: common.socket, wait: common.wait, serverUids: common.serverUids });
  };
  return withSession(common, context, open, fn);
}

/**
 * The file methods for the simple verbs (get, ls, rm, mkdir, mv, put of a small file) over
 * blocking system calls (client/blocking-transport.ts; an upload's streamed body over node:http,
 * client/http-transport.ts): the same dial, the same answers and errors as the Client's, without
 * undici's start-up or node:http's (docs/performance.md, "Client start-up").
 */
export function withFileClient(
  common: CommonOptions,
  context: (socket: string) => string,
  fn: (client: FileClient) => Promise<void>,
): Promise<void> {
  const open = (): Promise<FileClient> => {
    const options = { waitMs: common.wait * 1000, serverUids: common.serverUids };
    const fallback = async (): Promise<Transport> => {
      const [{ connector }, { httpTransport }] = await Promise.all([
        import('../connector.js'),
        import('../http-transport.js'),
      ]);
      return httpTransport(connector(common.socket, options));
    };
    const transport = blockingTransport(dialer(common.socket, options), fallback);
    return Promise.resolve(new FileClient(transport, formatAddress(common.socket)));
  };
  return withSession(common, context, open, fn);
}

/**
 * Writes a body to stdout with backpressure; a failing stdout (a full disk) is exit 23, a body
 * that fails midway (the connection) a PartialTransferError (exit 18). A reader that closes its
 * end early (EPIPE: `| head -c 10`) chose to stop reading: the body is dropped (the connection
 * with it, so the rest is not downloaded) and this returns quietly, for exit 0. `expected` is
 * the announced length, for the message of a cut transfer.
 */
export async function toStdout(
  body: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  out: NodeJS.WritableStream = process.stdout,
  expected?: number,
): Promise<number> {
  let failure: unknown;
  const onError = (err: unknown): void => {
    failure ??= err;
  };
  out.on('error', onError);
  // Leaving the loop early destroys an undici body, which then emits UND_ERR_ABORTED: heard here.
  (body as Partial<Readable>).on?.('error', () => undefined);
  let bytes = 0;
  try {
    for await (const chunk of body) {
      if (failure !== undefined) break;
      bytes += chunk.length;
      if (!out.write(chunk)) {
        await Promise.race([once(out, 'drain'), once(out, 'error')]).catch(() => undefined);
      }
    }
  } catch (err) {
    if (failure === undefined) {
      // An abort, the body refused on our side (refuseBinaryToTerminal), or an error that
      // already says what it is (a malformed listing, a cut one) is not called a cut transfer.
      if (
        isAbort(err) ||
        err instanceof LocalFileError ||
        err instanceof PartialTransferError ||
        isNullgateError(err)
      )
        throw err;
      throw new PartialTransferError(bytes, expected, err);
    }
  } finally {
    out.off('error', onError);
  }
  if (failure !== undefined) {
    (body as Partial<Readable>).destroy?.();
    if ((failure as { code?: unknown }).code === 'EPIPE') return bytes;
    throw new LocalFileError('write', 'standard output', failure);
  }
  return bytes;
}

/** Transfers smaller than this get no progress bar. */
export const PROGRESS_THRESHOLD = 1024 * 1024;

function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export interface Progress {
  readonly update: ProgressCallback;
  /** The transfer succeeded: draw the final line (100%, size, time, rate) and end it with a newline. */
  done(): void;
  /** The transfer is over either way: erase a bar that was not finished by done(). */
  end(): void;
}

function seconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60
    ? `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** `label`, cut to `width` columns with a trailing '…' when longer (code points, not bytes). */
function fitLabel(label: string, width: number): string {
  const chars = [...label];
  if (chars.length <= width) return label;
  return width <= 1 ? '…'.slice(0, width) : `${chars.slice(0, width - 1).join('')}…`;
}

/**
 * One frame of the progress bar, never wider than `columns - 1` (writing the last column makes
 * some terminals wrap): the numbers keep their place, the bar shrinks first, then the name is cut.
 * `final` is the closing line curl also leaves: 100%, size, elapsed time and mean rate.
 */
export function progressLine(p: {
  readonly label: string;
  readonly done: number;
  readonly total: number | undefined;
  readonly elapsed: number;
  readonly columns: number;
  readonly final?: boolean;
}): string {
  const rate = p.done / Math.max(p.elapsed, 0.001);
  const known = p.total !== undefined && p.total > 0;
  const frac = known ? Math.min(p.done / p.total!, 1) : 1;
  const pct = known || p.final ? `${String(Math.floor(frac * 100)).padStart(3)}% ` : '';
  const size = p.final || !known ? human(p.done) : `${human(p.done)} / ${human(p.total!)}`;
  const tail = p.final
    ? `${pct}${size}  ${seconds(p.elapsed)}  ${human(rate)}/s`
    : `${pct}${size}  ${human(rate)}/s`;
  const room = Math.max(p.columns - 1, 20);
  // label + ' ' + [bar] + ' ' + tail; the bar gets what is left beyond a 12-column name, 30 at most.
  const barWidth = known || p.final ? Math.min(30, room - tail.length - 2 - 12 - 3) : 0;
  const bar =
    barWidth >= 5
      ? `[${'#'.repeat(Math.round(frac * barWidth))}${'.'.repeat(barWidth - Math.round(frac * barWidth))}] `
      : '';
  const labelWidth = Math.max(room - tail.length - bar.length - 1, 0);
  const line = `${fitLabel(p.label, labelWidth)} ${bar}${tail}`;
  return [...line].length > room ? [...line].slice(0, room).join('') : line;
}

/**
 * A one-line progress bar on stderr, redrawn at most ten times a second; only when stderr is a
 * terminal, not silenced, and the transfer is large. It fits the terminal's width as it is at
 * each frame, and a finished transfer leaves one final line (done()), as curl does.
 */
export function progressBar(label: string, silent: boolean, to?: NodeJS.WriteStream): Progress | undefined {
  // With -s, process.stderr is not even created (a stream object, at every short command's start).
  if (silent) return undefined;
  const stream = to ?? process.stderr;
  if (!stream.isTTY) return undefined;
  const started = Date.now();
  let last = 0;
  let shown = false;
  let finished = false;
  let latest = { done: 0, total: undefined as number | undefined };
  const frame = (final: boolean): string =>
    progressLine({
      label,
      done: latest.done,
      total: latest.total,
      elapsed: (Date.now() - started) / 1000,
      columns: stream.columns || 80,
      final,
    });
  return {
    update(done, total) {
      latest = { done, total };
      const now = Date.now();
      if ((total ?? done) < PROGRESS_THRESHOLD || now - last < 100) return;
      last = now;
      shown = true;
      stream.write(`\r\x1b[K${frame(false)}`);
    },
    done() {
      if (!shown || finished) return;
      finished = true;
      stream.write(`\r\x1b[K${frame(true)}\n`);
    },
    end() {
      if (shown && !finished) stream.write('\r\x1b[K');
      finished = true;
    },
  };
}
