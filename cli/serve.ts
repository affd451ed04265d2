/**
 * `nullgate serve`: options (cli/serve-options.ts) → the gateway → listen → one line saying
 * what is served where (with a curl command that works) → drain on SIGINT/SIGTERM.
 */
import { type Address, curlArgs, formatAddress, parseAddress } from '../core/address.js';
import { errnoDescription } from '../native/binding.js';
import { createGateway, type Gateway } from '../gateway/gateway.js';
import { findSocketOwner } from '../gateway/owner.js';
import { CliError, ExitCode } from './exit.js';
import type { Verb } from './run.js';
import { parseServeArgs, type ServeConfig, serveSpec } from './serve-options.js';
import { activatedSocket, listenFdName, notify, takeListenFds } from '../gateway/systemd.js';

/** `text` as one shell word (quoted only when it has to be), for commands the banner suggests. */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Where to listen: --socket, else the socket systemd passed, else @nullgate. */
interface Target {
  readonly address: Address;
  /** systemd's FileDescriptorName= for an inherited fd (the socket unit's name by default). */
  readonly fdName: string | undefined;
}

function resolveTarget(config: ServeConfig): Target {
  // Read once and unset at once (sd_listen_fds(3) unset_environment), whatever is served.
  const listenFds = takeListenFds();
  if (listenFds.ignored !== undefined && config.socket === undefined) {
    process.stderr.write(`nullgate: warning: ${listenFds.ignored}: not serving an inherited socket\n`);
  }
  const address = config.socket ?? activatedSocket(listenFds)?.address ?? parseAddress('@nullgate');
  return { address, fdName: address.kind === 'fd' ? listenFdName(listenFds, address.fd) : undefined };
}

/** Humans at a terminal get readable lines; pipes and journals get one JSON object per line. */
async function logStream(): Promise<NodeJS.WritableStream | undefined> {
  if (!process.stderr.isTTY) return undefined;
  return (await import('pino-pretty')).default({
    colorize: true,
    sync: true,
    destination: 2,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'hostname',
    singleLine: true,
  });
}

/** listen(), with a failure said in one line (who holds a name in use, when /proc shows it). */
async function listenOrExplain(gateway: Gateway, target: Address): Promise<void> {
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
        { cause: err },
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
}

/** The line that says what is served where, and a curl command that reaches it. */
export function bannerLine(config: ServeConfig, target: Target, bound: Address): string {
  const mode = config.writable ? 'read-write' : 'read-only';
  const curl = curlArgs(bound);
  const from =
    target.address.kind === 'fd'
      ? ` (inherited fd:${target.address.fd}${target.fdName ? ` "${target.fdName}"` : ''})`
      : '';
  // In another network namespace the name is reachable only from there: say so, and how.
  const tryIt =
    curl === undefined
      ? ''
      : config.netns !== undefined
        ? ` in network namespace ${config.netns} — try: nsenter --net=${shellWord(config.netns)} curl ${curl} http://localhost/files/`
        : ` — try: curl ${curl} http://localhost/files/`;
  const what =
    config.root === undefined
      ? 'no tree to processes outside the exports'
      : config.exports.length > 0
        ? `${config.root} to others`
        : config.root;
  return `nullgate: serving ${what} (${mode}) on ${formatAddress(bound)}${from}${tryIt}`;
}

/** One line per export, before the banner. */
function exportLines(config: ServeConfig): string {
  return config.exports
    .map(
      (spec) =>
        `nullgate: export: processes chrooted in ${spec.chroot} get ${spec.root} (${spec.writable ? 'read-write' : 'read-only'})\n`,
    )
    .join('');
}

/** Tells systemd we are ready (Type=notify); its absence is no failure. */
function notifyReady(gateway: Gateway): void {
  try {
    notify(`READY=1\nMAINPID=${process.pid}\nSTATUS=serving ${formatAddress(gateway.address!)}`);
  } catch (err) {
    process.stderr.write(`nullgate: warning: cannot notify systemd: ${(err as Error).message}\n`);
  }
}

/**
 * Serves until SIGINT/SIGTERM, then drains (bounded by the grace) and resolves with the exit
 * code; a second signal exits at once. `ready` runs once the handlers are in place.
 */
function serveUntilSignalled(gateway: Gateway, graceMs: number, ready: () => void): Promise<number> {
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
    ready();
  });
}

export async function serveCommand(argv: string[]): Promise<number> {
  const config = parseServeArgs(argv);
  const target = resolveTarget(config);
  const gateway = createGateway({
    logStream: await logStream(),
    socket: target.address,
    root: config.root,
    writable: config.writable,
    exports: config.exports,
    maxUpload: config.maxUpload,
    uploadExpiryMs: config.uploadExpiryMs,
    graceMs: config.graceMs,
    logLevel: config.logLevel,
    limits: config.limits,
    netns: config.netns,
    allowUids: config.allowUids,
    allowGids: config.allowGids,
    allowAnyPeer: config.allowAnyPeer,
  });
  await listenOrExplain(gateway, target.address);
  return serveUntilSignalled(gateway, config.graceMs, () => {
    notifyReady(gateway);
    if (config.allowAnyPeer) {
      process.stderr.write(
        'nullgate: warning: --allow-any-peer: every process in this network namespace may connect\n',
      );
    }
    // Printed only once the signal handlers are in place: whoever waits for this line may
    // signal us the moment they read it.
    process.stderr.write(`${exportLines(config)}${bannerLine(config, target, gateway.address!)}\n`);
  });
}

export const serveVerb: Verb = { spec: serveSpec, run: serveCommand };
