/**
 * `nullgate install-client DIR [--with-node]`: puts the client into a chroot so that
 * `chroot DIR nullgate get …` works there. It copies the bundle (one CommonJS file plus the addon)
 * to DIR/usr/local/lib/nullgate/ and a launcher to DIR/usr/local/bin/nullgate; with
 * --with-node also this node binary, every shared library `ldd` lists for it, and the few
 * device nodes Node expects (/dev/null and friends).
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CommandSpec, parseCommand } from '../core/argv.js';
import { usageError } from '../core/errors.js';
import { CliError, ExitCode } from './exit.js';
import { SHORT_LIVED_V8_FLAGS } from '../client/verbs/short-lived.js';
import type { Verb } from './run.js';

export const installClientSpec = {
  name: 'install-client',
  usage: ['nullgate install-client DIR [--with-node]'],
  summary:
    'Puts the client into a chroot, so that `chroot DIR nullgate get …` works there: the bundle (one CommonJS file and the addon) in DIR/usr/local/lib/nullgate/ and a launcher in DIR/usr/local/bin/nullgate.',
  operands: [['DIR', 'the chroot; created (with its parents) when it does not exist']],
  options: {
    'with-node': {
      type: 'boolean',
      help: 'also copy this node, the libraries ldd lists for it, /dev/null, zero, random, urandom and /tmp: enough for an empty chroot',
    },
  },
} as const satisfies CommandSpec;

const LIB_DIR = '/usr/local/lib/nullgate';
const BIN = '/usr/local/bin/nullgate';
const NODE = '/usr/local/bin/node';
/**
 * With --with-node the launcher starts node through this copy of the host's env(1), which clears
 * the variables that name host paths a chroot cannot see: node reads them before any script runs,
 * so a JavaScript launcher is too late (NODE_EXTRA_CA_CERTS: "Warning: Ignoring extra certs" on
 * every call; NODE_OPTIONS: a --require of a host file fails the start).
 */
const ENV = `${LIB_DIR}/env`;
export const CLEARED_VARIABLES = ['NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS'] as const;
/** Devices Node (and the libraries it loads) may open at start-up: mem major 1. */
const DEVICES: readonly [string, number][] = [
  ['null', 3],
  ['zero', 5],
  ['random', 8],
  ['urandom', 9],
];

/** The bundle: bundle/ at the package root, or the directory of a running bundle itself. */
export function findBundle(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    here,
    path.join(here, '..', '..', 'bundle'),
    path.join(here, '..', '..', '..', 'bundle'),
  ];
  for (const dir of candidates) {
    if (existsSync(path.join(dir, 'nullgate.cjs')) && existsSync(path.join(dir, 'nullgate.node'))) return dir;
  }
  throw new CliError(
    'the client bundle is missing: run `npm run bundle` in the nullgate package',
    ExitCode.FAILURE,
  );
}

/** Library paths from `ldd` output: "libc.so.6 => /lib/…/libc.so.6 (0x…)" and "/lib64/ld-linux… (0x…)". */
export function parseLdd(output: string): string[] {
  const libs: string[] = [];
  for (const line of output.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return [...new Set(libs)];
}

function copyInto(dir: string, hostPath: string, inside: string, mode?: number): void {
  const target = path.join(dir, inside);
  mkdirSync(path.dirname(target), { recursive: true });
  // Library names are often symlinks (libc.so.6 → libc-2.36.so): copy the real bytes under the name.
  copyFileSync(realpathSync(hostPath), target);
  if (mode !== undefined) chmodSync(target, mode);
}

/** Copies the host's env(1) with its libraries, if it splits a shebang line (`-S`, GNU coreutils 8.30+). */
function installEnv(dir: string): boolean {
  const host = '/usr/bin/env';
  try {
    execFileSync(host, ['-S', '-u NODE_OPTIONS true'], { stdio: 'ignore' });
    copyInto(dir, host, ENV, 0o755);
    for (const lib of parseLdd(execFileSync('ldd', [host], { encoding: 'utf8' }))) copyInto(dir, lib, lib);
    return true;
  } catch {
    return false;
  }
}

/** The launcher's first line: node, through the copied env(1) when there is one. */
export function shebang(node: string | undefined, env: boolean): string {
  if (node === undefined) return '#!/usr/bin/env node';
  if (!env) return `#!${node}`;
  return `#!${ENV} -S ${CLEARED_VARIABLES.map((name) => `-u ${name}`).join(' ')} ${node}`;
}

function installNode(dir: string): string[] {
  const notes: string[] = [];
  copyInto(dir, process.execPath, NODE, 0o755);
  let ldd: string;
  try {
    ldd = execFileSync('ldd', [process.execPath], { encoding: 'utf8' });
  } catch (err) {
    throw new CliError(`cannot list node's libraries with ldd: ${(err as Error).message}`, ExitCode.FAILURE, {
      cause: err,
    });
  }
  const libs = parseLdd(ldd);
  for (const lib of libs) copyInto(dir, lib, lib);
  notes.push(`node and ${libs.length} libraries`);
  if (!installEnv(dir))
    notes.push('no env(1) with -S on this host: the launcher keeps NODE_EXTRA_CA_CERTS and NODE_OPTIONS');
  mkdirSync(path.join(dir, 'dev'), { recursive: true });
  for (const [name, minor] of DEVICES) {
    const dev = path.join(dir, 'dev', name);
    if (existsSync(dev)) continue;
    try {
      execFileSync('mknod', ['-m', '666', dev, 'c', '1', String(minor)], { stdio: 'ignore' });
    } catch {
      notes.push(`could not create /dev/${name} (needs root)`);
    }
  }
  const tmp = path.join(dir, 'tmp');
  if (!existsSync(tmp)) {
    mkdirSync(tmp);
    chmodSync(tmp, 0o1777);
  }
  return notes;
}

/**
 * The launcher: CommonJS (no extension, no package.json beside it) that requires the bundle. A
 * bundle that cannot load (missing, or a node too old for it) is one line, exit 1.
 *
 * Node 22.1+ keeps V8's compiled code of the bundle between runs (module.enableCompileCache;
 * Node 20 has no such call). Not in Node's default directory, os.tmpdir()/node-compile-cache: it
 * is shared by every user, and whoever makes it first decides what code V8 loads from it for the
 * others (V8's code cache is not made to be read from untrusted files). The launcher uses
 * TMPDIR/nullgate-compile-cache-UID, made 0700, and only when it is a directory of its own uid
 * that nobody else may write; else, or if anything fails (a chroot without /tmp), it runs
 * without a cache, silently. NODE_COMPILE_CACHE, when set, is the user's choice and wins (Node
 * enabled it before the launcher runs). V8 takes cached code only under the flags it was made
 * with, and the verbs on undici set one at run time (client/verbs/common.ts): so the launcher sets
 * it first, before anything is compiled, and every run sees the same flags.
 */
export function launcher(firstLine: string): string {
  return [
    firstLine,
    '// nullgate client launcher, written by `nullgate install-client`.',
    "'use strict';",
    `require('node:v8').setFlagsFromString(${JSON.stringify(SHORT_LIVED_V8_FLAGS)});`,
    "const { enableCompileCache } = require('node:module');",
    'if (enableCompileCache && !process.env.NODE_COMPILE_CACHE) {',
    '  try {',
    "    const fs = require('node:fs');",
    '    const uid = process.geteuid();',
    "    const tmp = (process.env.TMPDIR || '/tmp').replace(/\\/+$/, '');",
    '    const dir = `${tmp}/nullgate-compile-cache-${uid}`;',
    '    try {',
    '      fs.mkdirSync(dir, { mode: 0o700 });',
    '    } catch (err) {',
    "      if (err.code !== 'EEXIST') throw err;",
    '    }',
    '    const st = fs.lstatSync(dir);',
    '    if (st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0) enableCompileCache(dir);',
    '  } catch {',
    '    // No cache: the bundle is compiled as without one.',
    '  }',
    '}',
    'let client;',
    'try {',
    `  client = require(${JSON.stringify(`${LIB_DIR}/nullgate.cjs`)});`,
    '} catch (err) {',
    // require's message goes on with its "Require stack": the first line says it.
    "  const why = String(err && err.message ? err.message : err).split('\\n')[0];",
    '  process.stderr.write(`nullgate: cannot load the client: ${why}\\n`);',
    '  process.exitCode = 1;',
    '}',
    'if (client) {',
    '  client.main(process.argv.slice(2)).then((code) => {',
    '    process.exitCode = code;',
    '  });',
    '}',
    '',
  ].join('\n');
}

/** DIR, created like `mkdir -p` (as debootstrap does with its target) when it does not exist. */
function makeTarget(text: string): string {
  const dir = path.resolve(text);
  try {
    if (statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return dir;
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EEXIST: a file where DIR would be; ENOTDIR: a file on the way to it.
    if (code === 'EEXIST' || code === 'ENOTDIR') throw usageError(`${text}: not a directory`);
    throw new CliError(`cannot create ${text}: ${(err as Error).message}`, ExitCode.FAILURE, { cause: err });
  }
  return dir;
}

/** A node already inside the chroot, as the chroot will see it. */
function nodeInside(dir: string): string | undefined {
  return ['/usr/local/bin/node', '/usr/bin/node', '/bin/node'].find((p) => existsSync(path.join(dir, p)));
}

export async function installClientCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(installClientSpec, argv);
  if (positionals.length !== 1)
    throw usageError('install-client takes one directory: nullgate install-client DIR [--with-node]');
  const bundle = findBundle();
  const dir = makeTarget(positionals[0]!);

  const notes = values['with-node'] === true ? installNode(dir) : [];
  copyInto(dir, path.join(bundle, 'nullgate.cjs'), `${LIB_DIR}/nullgate.cjs`, 0o644);
  // The ESM bundle an earlier install-client left: the launcher no longer loads it.
  rmSync(path.join(dir, LIB_DIR, 'nullgate.mjs'), { force: true });
  copyInto(dir, path.join(bundle, 'nullgate.node'), `${LIB_DIR}/nullgate.node`, 0o755);
  const node = nodeInside(dir);
  if (!node)
    notes.push('no node in the chroot yet: the launcher uses `/usr/bin/env node` (or use --with-node)');
  mkdirSync(path.join(dir, path.dirname(BIN)), { recursive: true });
  writeFileSync(
    path.join(dir, BIN),
    launcher(shebang(node, node === NODE && existsSync(path.join(dir, ENV)))),
    {
      mode: 0o755,
    },
  );
  chmodSync(path.join(dir, BIN), 0o755);
  process.stderr.write(
    `nullgate: installed the client into ${dir}${notes.length ? ` (${notes.join('; ')})` : ''}: try chroot ${dir} ${BIN} request /health --socket @NAME (the name serve prints; default @nullgate)\n`,
  );
  return ExitCode.OK;
}

export const installClientVerb: Verb = { spec: installClientSpec, run: installClientCommand };
