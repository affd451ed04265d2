/**
 * `nullgate serve`'s options: the one table (parsing and --help come from it) and the checks
 * that turn argv into a typed ServeConfig. Nothing here listens or touches the environment.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { type CommandSpec, parseCommand } from '../core/argv.js';
import { type Address, parseAddress } from '../core/address.js';
import { usageError } from '../core/errors.js';
import { DEFAULT_LIMITS, type Limits } from '../core/limits.js';
import { DEFAULT_GRACE_MS } from '../gateway/gateway.js';
import { parseExport } from '../routes/exports.js';
import { parseSize } from './size.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const LIMITS = 'Limits (every one bounded by default)';
const seconds = (ms: number): string => String(ms / 1000);

export const serveSpec = {
  name: 'serve',
  usage: [
    `nullgate serve [--socket @NAME] [--root DIR] [--writable] [--export CHROOT_DIR=ROOT_DIR[:rw]]...
               [--allow-uid N]... [--allow-gid N]... [--allow-any-peer] [--max-upload SIZE] [--netns PATH]
               [--grace SECONDS] [--log-level L] [--max-connections N] [--max-uploads N]
               [--max-header-size SIZE] [--headers-timeout S] [--request-timeout S] [--idle-timeout S]
               [--keep-alive-timeout S] [--body-min-rate RATE] [--body-rate-window S] [--body-timeout S]
               [--upload-expiry S]`,
  ],
  summary:
    "Serves DIR over HTTP/1.1 on a unix socket, to root and the server's own uid unless more are allowed. Prints one line saying what it serves where, with a curl command that works. SIGTERM/SIGINT drain (a second one exits at once); SIGHUP is ignored.",
  options: {
    socket: {
      type: 'string',
      value: 'ADDR',
      help: '@NAME (abstract; \\xHH escapes any byte), @ (the kernel picks a free name), a socket file path, or fd:N (an inherited listening socket). Default: the socket systemd passed, else @nullgate',
    },
    root: {
      type: 'string',
      value: 'DIR',
      help: 'the directory served under /files and /archive (default ., none with --export)',
    },
    export: {
      type: 'string',
      multiple: true,
      value: 'CHROOT_DIR=ROOT_DIR[:rw]',
      help: 'a process chrooted in CHROOT_DIR gets ROOT_DIR as its tree, read-write with :rw (repeatable); with exports, --root serves only the processes outside them',
    },
    writable: {
      type: 'boolean',
      help: 'allow PUT, MKCOL, DELETE, MOVE and PUT /archive (else 403 NG_ERR_READ_ONLY)',
    },
    'allow-uid': {
      type: 'string',
      multiple: true,
      value: 'N',
      help: "also serve peers with uid N (repeatable); root and the server's uid always are, 65534 never",
    },
    'allow-gid': {
      type: 'string',
      multiple: true,
      value: 'N',
      help: 'also serve peers with gid N (repeatable)',
    },
    'allow-any-peer': { type: 'boolean', help: 'serve every peer except uid 65534 (printed as a warning)' },
    'max-upload': {
      type: 'string',
      value: 'SIZE',
      help: 'the largest upload: bytes or 512K, 100M, 2G (default unlimited)',
    },
    'upload-expiry': {
      type: 'string',
      value: 'S',
      help: 'a resumable upload idle S seconds is removed (default 86400: one day)',
    },
    netns: {
      type: 'string',
      value: 'PATH',
      help: 'bind inside the network namespace at PATH (/proc/PID/ns/net, /run/netns/NAME); needs CAP_SYS_ADMIN',
    },
    grace: {
      type: 'string',
      value: 'SECONDS',
      help: `how long SIGTERM/SIGINT let requests in flight finish (default ${seconds(DEFAULT_GRACE_MS)})`,
    },
    'log-level': {
      type: 'string',
      value: 'L',
      help: `${LOG_LEVELS.join(', ')} (default info): one access line per request, JSON unless stderr is a terminal`,
    },
    'max-connections': {
      type: 'string',
      value: 'N',
      help: `more connections get 429 and are closed (default ${DEFAULT_LIMITS.maxConnections})`,
      group: LIMITS,
    },
    'max-uploads': {
      type: 'string',
      value: 'N',
      help: `concurrent uploads; more get 429 (default ${DEFAULT_LIMITS.maxUploads})`,
      group: LIMITS,
    },
    'max-header-size': {
      type: 'string',
      value: 'SIZE',
      help: `request line and headers; more get 431 (default ${DEFAULT_LIMITS.maxHeaderSize / 1024}K)`,
      group: LIMITS,
    },
    'headers-timeout': {
      type: 'string',
      value: 'S',
      help: `the header block must arrive within S seconds (default ${seconds(DEFAULT_LIMITS.headersTimeoutMs)})`,
      group: LIMITS,
    },
    'request-timeout': {
      type: 'string',
      value: 'S',
      help: 'the whole request, body included, within S seconds (default 0: none)',
      group: LIMITS,
    },
    'idle-timeout': {
      type: 'string',
      value: 'S',
      help: `a connection with no traffic is closed (default ${seconds(DEFAULT_LIMITS.idleTimeoutMs)})`,
      group: LIMITS,
    },
    'keep-alive-timeout': {
      type: 'string',
      value: 'S',
      help: `an idle keep-alive connection is closed (default ${seconds(DEFAULT_LIMITS.keepAliveTimeoutMs)})`,
      group: LIMITS,
    },
    'body-min-rate': {
      type: 'string',
      value: 'RATE',
      help: `bytes a second a request body must average over each window the server waits for it, like 500 or 4K; slower is 408 (default ${DEFAULT_LIMITS.bodyMinRate}, 0: none)`,
      group: LIMITS,
    },
    'body-rate-window': {
      type: 'string',
      value: 'S',
      help: `the window --body-min-rate is averaged over (default ${seconds(DEFAULT_LIMITS.bodyRateWindowMs)})`,
      group: LIMITS,
    },
    'body-timeout': {
      type: 'string',
      value: 'S',
      help: `a request body must be whole within S seconds of its first byte read; later is 408 (default ${seconds(DEFAULT_LIMITS.bodyTimeoutMs)}, 0: none)`,
      group: LIMITS,
    },
  },
} as const satisfies CommandSpec;

/** What `serve` was asked to do, checked. */
export interface ServeConfig {
  /** undefined: the socket systemd passed, else @nullgate (decided when the environment is read). */
  readonly socket: Address | undefined;
  /** Absolute; undefined with exports and no --root (peers outside every export get 403). */
  readonly root: string | undefined;
  readonly exports: { readonly chroot: string; readonly root: string; readonly writable: boolean }[];
  readonly writable: boolean;
  readonly allowUids: number[];
  readonly allowGids: number[];
  readonly allowAnyPeer: boolean;
  readonly maxUpload: number | undefined;
  /** --upload-expiry in ms; undefined keeps the default (routes/resumable.ts). */
  readonly uploadExpiryMs: number | undefined;
  readonly graceMs: number;
  readonly netns: string | undefined;
  readonly logLevel: string;
  readonly limits: Partial<Limits>;
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
  const value = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  const ms = Math.round(value * 1000);
  if (!Number.isSafeInteger(ms) || (ms === 0 && !zeroAllowed) || (value > 0 && ms === 0))
    throw usageError(
      `${flag} takes ${zeroAllowed ? 'a number of seconds (0 = no limit)' : 'a positive number of seconds'}, got "${text}"`,
    );
  return ms;
}

/** An existing directory, made absolute, or a usage error that says what is there instead. */
function existingDirectory(text: string, what: string): string {
  const dir = path.resolve(text);
  let isDirectory: boolean | undefined;
  try {
    isDirectory = statSync(dir, { throwIfNoEntry: false })?.isDirectory();
  } catch (err) {
    // ENOTDIR: a component on the way is a file, so there is no such directory either.
    if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') {
      throw usageError(`${what}: ${(err as Error).message}`);
    }
  }
  if (isDirectory === undefined) throw usageError(`${what}: no such directory`);
  if (!isDirectory) throw usageError(`${what}: not a directory`);
  return dir;
}

function parseExports(texts: readonly string[]): ServeConfig['exports'] {
  return texts.map((text) => {
    const spec = parseExport(text);
    return {
      chroot: existingDirectory(spec.chroot, `--export ${text}: CHROOT_DIR ${path.resolve(spec.chroot)}`),
      root: existingDirectory(spec.root, `--export ${text}: ROOT_DIR ${path.resolve(spec.root)}`),
      writable: spec.writable === true,
    };
  });
}

type LimitFlags = Readonly<Partial<Record<keyof typeof serveSpec.options, unknown>>>;

/** The resource-limit flags → createGateway's `limits`; unset flags keep the defaults. */
function parseLimits(values: LimitFlags): Partial<Limits> {
  const limits: { -readonly [K in keyof Limits]?: number } = {};
  const flag = (name: keyof typeof serveSpec.options): string | undefined => {
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
  if ((text = flag('body-min-rate')) !== undefined) {
    const rate = parseSize(text);
    if (rate === undefined)
      throw usageError(`--body-min-rate takes bytes per second like 500 or 4K (0 = none), got "${text}"`);
    limits.bodyMinRate = rate;
  }
  if ((text = flag('body-rate-window')) !== undefined)
    limits.bodyRateWindowMs = parseSeconds(text, '--body-rate-window', false);
  if ((text = flag('body-timeout')) !== undefined)
    limits.bodyTimeoutMs = parseSeconds(text, '--body-timeout', true);
  return limits;
}

export function parseServeArgs(argv: string[]): ServeConfig {
  const { values, positionals } = parseCommand(serveSpec, argv);
  if (positionals.length > 0) {
    throw usageError(`serve: unexpected argument "${positionals[0]}" (the directory is --root DIR)`);
  }
  const logLevel = values['log-level'] ?? 'info';
  if (!LOG_LEVELS.includes(logLevel))
    throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  let maxUpload: number | undefined;
  if (values['max-upload'] !== undefined) {
    maxUpload = parseSize(values['max-upload']);
    if (maxUpload === undefined)
      throw usageError(`--max-upload takes a size like 512K, 100M or 2G, got "${values['max-upload']}"`);
  }
  const exports = parseExports(values.export ?? []);
  const rootText = values.root ?? (exports.length > 0 ? undefined : '.');
  let graceMs = DEFAULT_GRACE_MS;
  if (values.grace !== undefined) {
    const graceSeconds = Number(values.grace);
    if (!Number.isFinite(graceSeconds) || graceSeconds < 0)
      throw usageError(`--grace takes seconds, got "${values.grace}"`);
    graceMs = graceSeconds * 1000;
  }
  return {
    socket: values.socket === undefined ? undefined : parseAddress(values.socket),
    exports,
    // With exports, the plain root serves only peers outside them, and only when given.
    root: rootText === undefined ? undefined : existingDirectory(rootText, `--root ${rootText}`),
    writable: values.writable === true,
    allowUids: (values['allow-uid'] ?? []).map((v) => parseId(v, '--allow-uid')),
    allowGids: (values['allow-gid'] ?? []).map((v) => parseId(v, '--allow-gid')),
    allowAnyPeer: values['allow-any-peer'] === true,
    maxUpload,
    uploadExpiryMs:
      values['upload-expiry'] === undefined
        ? undefined
        : parseSeconds(values['upload-expiry'], '--upload-expiry', false),
    graceMs,
    netns: values.netns,
    logLevel,
    limits: parseLimits(values),
  };
}
