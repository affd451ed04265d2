/**
 * `nullgate serve`: parse flags, build the gateway, listen, print one line saying what is
 * served where (with a curl command that works), drain on SIGINT/SIGTERM.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Address, curlArgs, formatAddress, parseAddress } from '../core/address.js';
import { errnoDescription } from '../native/binding.js';
import { parseExport } from '../routes/exports.js';
import { createGateway, DEFAULT_GRACE_MS } from '../gateway/gateway.js';
import { DEFAULT_LIMITS, type Limits } from '../core/limits.js';
import { findSocketOwner } from '../gateway/owner.js';
import { usageError } from '../core/errors.js';
import { CliError, ExitCode } from './exit.js';
import { parseSize } from './size.js';
import { activatedSocket, listenFdName, notify, takeListenFds } from '../gateway/systemd.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** `text` as one shell word (quoted only when it has to be), for commands the banner suggests. */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

function parseId(text: string, flag: string): number {
  if (!/^\d+$/.test(text)) throw usageError(`${flag} takes a numeric id, got "${text}"`);
  return Number(text);
}

function parseCount(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1)
    throw usageError(`${flag} takes a positive whole number, got "${text}"`);
  return n;
}

/** Seconds as the operator writes them (`10`, `0.5`) → ms; 0 only where it means "no limit". */
function parseSeconds(text: string, flag: string, zeroAllowed: boolean): number {
  const seconds = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  const ms = Math.round(seconds * 1000);
  if (!Number.isSafeInteger(ms) || (ms === 0 && !zeroAllowed) || (seconds > 0 && ms === 0))
    throw usageError(
      `${flag} takes ${zeroAllowed ? 'a number of seconds (0 = no limit)' : 'a positive number of seconds'}, got "${text}"`,
    );
  return ms;
}

/** The resource-limit flags (issue 7 item 3) → createGateway's `limits`; unset flags keep the defaults. */
function parseLimits(values: Readonly<Record<string, unknown>>): Partial<Limits> {
  const limits: { -readonly [K in keyof Limits]?: number } = {};
  const flag = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === 'string' ? v : undefined;
  };
  let text: string | undefined;
  if ((text = flag('max-connections')) !== undefined)
    limits.maxConnections = parseCount(text, '--max-connections');
  if ((text = flag('max-uploads')) !== undefined) limits.maxUploads = parseCount(text, '--max-uploads');
  if ((text = flag('max-header-size')) !== undefined) {
    const size = parseSize(text);
    if (size === undefined || size < 1)
      throw usageError(`--max-header-size takes a size like 16K or 64K, got "${text}"`);
    limits.maxHeaderSize = size;
  }
  if ((text = flag('headers-timeout')) !== undefined)
    limits.headersTimeoutMs = parseSeconds(text, '--headers-timeout', false);
  if ((text = flag('idle-timeout')) !== undefined)
    limits.idleTimeoutMs = parseSeconds(text, '--idle-timeout', false);
  if ((text = flag('keep-alive-timeout')) !== undefined)
    limits.keepAliveTimeoutMs = parseSeconds(text, '--keep-alive-timeout', false);
  if ((text = flag('request-timeout')) !== undefined) {
    limits.requestTimeoutMs = parseSeconds(text, '--request-timeout', true);
    // The header block is part of the request: a shorter request timeout also shortens the
    // default headers timeout, but an explicit longer one is the operator's mistake to hear about.
    if (limits.requestTimeoutMs > 0) {
      if (limits.headersTimeoutMs === undefined)
        limits.headersTimeoutMs = Math.min(DEFAULT_LIMITS.headersTimeoutMs, limits.requestTimeoutMs);
      else if (limits.headersTimeoutMs > limits.requestTimeoutMs)
        throw usageError(
          `--headers-timeout (${limits.headersTimeoutMs / 1000}s) must not exceed --request-timeout (${limits.requestTimeoutMs / 1000}s)`,
        );
    }
  }
  return limits;
}

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      socket: { type: 'string' },
      root: { type: 'string' },
      export: { type: 'string', multiple: true, default: [] },
      writable: { type: 'boolean', default: false },
      'allow-uid': { type: 'string', multiple: true, default: [] },
      'allow-gid': { type: 'string', multiple: true, default: [] },
      'allow-any-peer': { type: 'boolean', default: false },
      'max-upload': { type: 'string' },
      grace: { type: 'string' },
      netns: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'max-connections': { type: 'string' },
      'max-uploads': { type: 'string' },
      'max-header-size': { type: 'string' },
      'headers-timeout': { type: 'string' },
      'idle-timeout': { type: 'string' },
      'keep-alive-timeout': { type: 'string' },
      'request-timeout': { type: 'string' },
    },
  });

  const socketText = values.socket;
  // Read once and unset at once (sd_listen_fds(3) unset_environment), whatever is served.
  const listenFds = takeListenFds();
  if (listenFds.ignored !== undefined && socketText === undefined) {
    process.stderr.write(`nullgate: warning: ${listenFds.ignored}: not serving an inherited socket\n`);
  }
  const target: Address =
    socketText !== undefined
      ? parseAddress(socketText)
      : (activatedSocket(listenFds)?.address ?? parseAddress('@nullgate'));
  const fdName = target.kind === 'fd' ? listenFdName(listenFds, target.fd) : undefined;
  const exports = values.export.map((text) => {
    const spec = parseExport(text);
    const chroot = path.resolve(spec.chroot);
    const root = path.resolve(spec.root);
    for (const [what, dir] of [
      ['CHROOT_DIR', chroot],
      ['ROOT_DIR', root],
    ] as const) {
      const st = statSync(dir, { throwIfNoEntry: false });
      if (!st?.isDirectory()) {
        throw usageError(`--export ${text}: ${what} ${dir}: ${st ? 'not a directory' : 'no such directory'}`);
      }
    }
    return { chroot, root, writable: spec.writable === true };
  });
  // With exports, the plain root serves only peers outside them, and only when given.
  const rootText = values.root ?? (exports.length > 0 ? undefined : '.');
  const root = rootText === undefined ? undefined : path.resolve(rootText);
  if (root !== undefined) {
    const st = statSync(root, { throwIfNoEntry: false });
    if (!st?.isDirectory()) throw usageError(`--root ${rootText}: not a directory`);
  }
  const logLevel = values['log-level'];
  if (!LOG_LEVELS.includes(logLevel))
    throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  let maxUpload: number | undefined;
  if (values['max-upload'] !== undefined) {
    maxUpload = parseSize(values['max-upload']);
    if (maxUpload === undefined)
      throw usageError(`--max-upload takes a size like 512K, 100M or 2G, got "${values['max-upload']}"`);
  }
  let graceMs = DEFAULT_GRACE_MS;
  if (values.grace !== undefined) {
    const seconds = Number(values.grace);
    if (!Number.isFinite(seconds) || seconds < 0)
      throw usageError(`--grace takes seconds, got "${values.grace}"`);
    graceMs = seconds * 1000;
  }
  const limits = parseLimits(values);

  // Humans at a terminal get readable lines; pipes and journals get one JSON object per line.
  const logStream = process.stderr.isTTY
    ? (await import('pino-pretty')).default({
        colorize: true,
        sync: true,
        destination: 2,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'hostname',
        singleLine: true,
      })
    : undefined;
  const gateway = createGateway({
    logStream,
    socket: target,
    root,
    writable: values.writable,
    exports,
    maxUpload,
    graceMs,
    logLevel,
    limits,
    netns: values.netns,
    allowUids: values['allow-uid'].map((v) => parseId(v, '--allow-uid')),
    allowGids: values['allow-gid'].map((v) => parseId(v, '--allow-gid')),
    allowAnyPeer: values['allow-any-peer'],
  });

  try {
    await gateway.listen();
  } catch (err) {
    await gateway.app.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') {
      const owner = findSocketOwner(target);
      const held = owner ? ` (held by pid ${owner.pid}${owner.command ? ` ${owner.command}` : ''})` : '';
      throw new CliError(
        `cannot listen on ${formatAddress(target)}: address already in use${held}`,
        ExitCode.FAILURE,
        {
          cause: err,
        },
      );
    }
    if (typeof e.code === 'string' && e.code.startsWith('E') && e.code.length > 2) {
      throw new CliError(
        `cannot listen on ${formatAddress(target)}: ${errnoDescription(e.code) ?? e.code} (${e.message})`,
        ExitCode.FAILURE,
        { cause: err },
      );
    }
    throw err;
  }

  const printBanner = (): void => {
    const bound = gateway.address!;
    const shown = formatAddress(bound);
    const mode = values.writable ? 'read-write' : 'read-only';
    const curl = curlArgs(bound);
    if (values['allow-any-peer']) {
      process.stderr.write(
        'nullgate: warning: --allow-any-peer: every process in this network namespace may connect\n',
      );
    }
    // From systemd: which of its sockets (FileDescriptorName=, the socket unit's name by default).
    const from = target.kind === 'fd' ? ` (inherited fd:${target.fd}${fdName ? ` "${fdName}"` : ''})` : '';
    // In another network namespace the name is reachable only from there: say so, and how.
    const tryIt =
      curl === undefined
        ? ''
        : values.netns !== undefined
          ? ` in network namespace ${values.netns} — try: nsenter --net=${shellWord(values.netns)} curl ${curl} http://localhost/files/`
          : ` — try: curl ${curl} http://localhost/files/`;
    for (const spec of exports) {
      process.stderr.write(
        `nullgate: export: processes chrooted in ${spec.chroot} get ${spec.root} (${spec.writable ? 'read-write' : 'read-only'})\n`,
      );
    }
    const what =
      root === undefined
        ? 'no tree to processes outside the exports'
        : exports.length > 0
          ? `${root} to others`
          : root;
    process.stderr.write(`nullgate: serving ${what} (${mode}) on ${shown}${from}${tryIt}\n`);
  };

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // A second signal means "now": the operator gave up on the drain. The CLI's one exit
        // path cannot be awaited here, since a stuck request is exactly what is being cut.
        process.stderr.write(`nullgate: ${signal} again, exiting at once\n`);
        process.exit(ExitCode.FAILURE);
      }
      stopping = true;
      try {
        notify('STOPPING=1');
      } catch {
        // systemd went away; stopping is all that is left to do.
      }
      process.stderr.write(
        `nullgate: ${signal}: draining (up to ${graceMs / 1000}s), send again to exit at once\n`,
      );
      gateway.close().then(
        () => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve(ExitCode.OK);
        },
        (err: unknown) => {
          process.stderr.write(`nullgate: error while closing: ${String(err)}\n`);
          resolve(ExitCode.FAILURE);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // Nothing to reopen (logs go to stderr, configuration is argv): say so and keep serving.
    process.on('SIGHUP', () => gateway.app.log.info('SIGHUP: nothing to reload; restart to change flags'));
    try {
      notify(`READY=1\nMAINPID=${process.pid}\nSTATUS=serving ${formatAddress(gateway.address!)}`);
    } catch (err) {
      process.stderr.write(`nullgate: warning: cannot notify systemd: ${(err as Error).message}\n`);
    }
    // Printed only once the signal handlers are in place: whoever waits for this line may
    // signal us the moment they read it.
    printBanner();
  });
}
