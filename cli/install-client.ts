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
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
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

/** The code cache beside the bundle, made by install-client (makeCodeCache). */
const CODE_CACHE = 'nullgate.cache';
/** The start of undici's chunk at the end of the bundle (scripts/bundle.mjs). */
const UNDICI_MARK = '/*@nullgate-undici-base64';

/**
 * Where the launcher and the code-cache maker (below) compile the bundle, so that both compile
 * the very same source: V8 takes a code cache only for a source of the length it was made from.
 * The code is the bundle up to undici's chunk, a comment at its end that only the verbs on
 * undici read, from the file itself (scripts/bundle.mjs); a 380 KiB string less to make on every
 * start. Wrapped as Node wraps a CommonJS module, and run as one, with the launcher's require
 * (the bundle requires only node:… built-ins; it finds the addon and the chunk from __filename).
 */
const COMPILE_BUNDLE = `function compileBundle(lib, cachedData) {
  const file = lib + '/nullgate.cjs';
  const bytes = require('node:fs').readFileSync(file);
  const chunk = bytes.lastIndexOf(${JSON.stringify(UNDICI_MARK)});
  const code = bytes.toString('utf8', 0, chunk === -1 ? bytes.length : chunk);
  const script = new (require('node:vm').Script)(
    '(function (exports, require, module, __filename, __dirname) {' + code + '\\n})',
    { filename: file, cachedData },
  );
  const module = { exports: {} };
  script.runInThisContext().call(module.exports, module.exports, require, module, file, lib);
  return { script, client: module.exports };
}

function cacheKey(node, lib) {
  const fs = require('node:fs');
  const n = fs.statSync(node);
  const b = fs.statSync(lib + '/nullgate.cjs');
  return [process.version, process.arch, n.size, n.mtimeMs, b.size, b.mtimeMs].join(' ');
}`;

/**
 * Makes the code cache the launcher compiles the bundle with (its own process: `node -e`). The
 * cache holds what V8 compiled, and V8 compiles a function when it first runs: so the maker
 * runs a `get` first, of 1 KiB into a file, from a server of its own (a canned answer of
 * nullgate's shape on a socket file in LIB: a chroot may have no /tmp), and writes the cache
 * after it (to a temporary name, renamed over nullgate.cache). Exits non-zero on any failure.
 */
const CODE_CACHE_MAKER = `'use strict';
${COMPILE_BUNDLE}
const fs = require('node:fs');
const [lib, node] = process.argv.slice(1);
const key = cacheKey(node, lib);
process.chdir(lib);
const socket = './.code-cache-' + process.pid + '.sock';
const out = './.code-cache-' + process.pid + '.out';
const head = [
  'HTTP/1.1 200 OK',
  'etag: "1-1-400-1"',
  'last-modified: Thu, 01 Jan 1970 00:00:01 GMT',
  'accept-ranges: bytes',
  'x-nullgate-mode: 0644',
  'x-nullgate-uid: 0',
  'x-nullgate-gid: 0',
  'x-nullgate-mtime: 1',
  'content-type: application/octet-stream',
  'content-length: 1024',
  'Connection: keep-alive',
  '', '',
].join('\\r\\n');
// The server runs on a thread of its own: the client reads its connection with blocking calls
// (client/blocking-transport.ts), which would stall a server on this thread's event loop.
const serve = (socket, head) => {
  const { parentPort } = require('node:worker_threads');
  const server = require('node:net').createServer((conn) => {
    let seen = '';
    conn.on('error', () => {});
    conn.on('data', (bytes) => {
      seen += bytes.toString('latin1');
      if (!seen.includes('\\r\\n\\r\\n')) return;
      seen = '';
      conn.write(head);
      conn.write(Buffer.alloc(1024, 120));
    });
  });
  server.on('error', (err) => parentPort.postMessage(err.message));
  server.listen(socket, () => parentPort.postMessage('listening'));
};
const fail = (why) => {
  fs.rmSync(socket, { force: true });
  fs.rmSync(out, { force: true });
  process.stderr.write(why + '\\n');
  process.exit(1);
};
const { Worker } = require('node:worker_threads');
const server = new Worker('(' + serve + ')(...require("node:worker_threads").workerData)', {
  eval: true,
  workerData: [socket, head],
});
server.on('error', (err) => fail(err.message));
server.once('message', (state) => {
  if (state !== 'listening') fail(state);
  const { script, client } = compileBundle(lib, undefined);
  client.main(['get', '-s', '--socket', socket, '/code-cache', '-o', out]).then((code) => {
    if (code !== 0) fail('the warm-up get failed: exit ' + code);
    fs.rmSync(socket, { force: true });
    fs.rmSync(out, { force: true });
    const temporary = './.${CODE_CACHE}.' + process.pid;
    const data = Buffer.concat([Buffer.from(key + '\\n', 'latin1'), script.createCachedData()]);
    fs.writeFileSync(temporary, data, { mode: 0o644 });
    fs.renameSync(temporary, './${CODE_CACHE}');
    process.exit(0);
  }, (err) => fail(String(err)));
});
`;

/** True when two files hold the same bytes (compared a MiB at a time: node is ~100 MiB). */
function sameBytes(a: string, b: string): boolean {
  if (statSync(a).size !== statSync(b).size) return false;
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  try {
    const ba = Buffer.alloc(1 << 20);
    const bb = Buffer.alloc(1 << 20);
    for (;;) {
      const n = readSync(fa, ba);
      if (readSync(fb, bb) !== n || !ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
      if (n === 0) return true;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

/**
 * The code cache for the node the launcher runs, the only one whose cache V8 takes. It is made
 * by this node (the maker above, in a process of its own), so only when the chroot's node is this
 * node: copied by --with-node, or found there with the same bytes. install-client runs no program
 * of the chroot's: that would run, as whoever installs (root, usually), a binary that whoever
 * wrote the chroot chose. Returns why there is no cache, or undefined when it was made.
 */
function makeCodeCache(dir: string, node: string | undefined): string | undefined {
  if (node === undefined) return 'no code cache without a node in the chroot';
  const inside = path.join(dir, node);
  try {
    if (!sameBytes(inside, process.execPath))
      return `no code cache: ${node} in the chroot is not this node (${process.execPath}), the one that makes it`;
  } catch (err) {
    return `no code cache: ${(err as Error).message}`;
  }
  // As the launcher runs node: NODE_OPTIONS may hold V8 flags, and V8 takes a cache only
  // under the flags it was made with.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !(CLEARED_VARIABLES as readonly string[]).includes(name)),
  );
  try {
    execFileSync(process.execPath, ['-e', CODE_CACHE_MAKER, path.join(dir, LIB_DIR), inside], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 60_000,
    });
    return undefined;
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    const why = (stderr || (err as Error).message).split('\n')[0];
    return `no code cache (the client starts without one): ${why}`;
  }
}

/**
 * The launcher: CommonJS (no extension, no package.json beside it) that loads the bundle. A
 * bundle that cannot load (missing, or a node too old for it) is one line, exit 1.
 *
 * Most of a client's start is V8 compiling the bundle's code: so install-client leaves a V8 code
 * cache of it beside the bundle (makeCodeCache), made by the node the launcher runs, and the
 * launcher compiles the bundle with it (vm.Script's cachedData). V8 checks that the cache was
 * made by the same V8 version, under the same flags, for a source of the same length, and
 * compiles the code as without a cache when not (another node in the chroot since, or V8 flags
 * in NODE_OPTIONS): silently, the client works as before. It is trusted as the bundle is:
 * install-client writes both, as whoever may write DIR/usr/local/lib (a shared tmp directory
 * would not do: V8's code cache is not made to be read from untrusted files).
 * NULLGATE_CODE_CACHE=off ignores it; NULLGATE_CODE_CACHE=report says on stderr whether it was
 * used (used, rejected, none), for tests and for whoever wonders.
 *
 * Without a cache file, the launcher requires the bundle as before, and Node 22.1+ keeps V8's
 * compiled code of it between runs (module.enableCompileCache; Node 20 has no such call). Not in
 * Node's default directory, os.tmpdir()/node-compile-cache: it is shared by every user, and
 * whoever makes it first decides what code V8 loads from it for the others. The launcher uses
 * TMPDIR/nullgate-compile-cache-UID, made 0700, and only when it is a directory of its own uid
 * that nobody else may write; else, or if anything fails (a chroot without /tmp), it runs
 * without a cache, silently. NODE_COMPILE_CACHE, when set, is the user's choice and wins (Node
 * enabled it before the launcher runs).
 *
 * The launcher sets no V8 flag: any flag changes V8's flag hash, and Node's own built-in
 * modules (net, http, stream: most of what a `get` loads) are then compiled from source instead
 * of from the code cache inside the node binary (+20% instructions for a 1 KiB `get`).
 */
export function launcher(firstLine: string, lib = LIB_DIR): string {
  return [
    firstLine,
    '// nullgate client launcher, written by `nullgate install-client`.',
    "'use strict';",
    `const lib = ${JSON.stringify(lib)};`,
    'let client;',
    'try {',
    '  client = load();',
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
    'function load() {',
    '  const mode = process.env.NULLGATE_CODE_CACHE;',
    '  let cachedData;',
    "  let state = 'none';",
    "  if (mode !== 'off') {",
    '    try {',
    `      const file = require('node:fs').readFileSync(lib + '/${CODE_CACHE}');`,
    '      const line = file.indexOf(10);',
    "      if (line !== -1 && file.toString('latin1', 0, line) === cacheKey(process.execPath, lib))",
    '        cachedData = file.subarray(line + 1);',
    "      else state = 'stale';",
    '    } catch {',
    '      // None (install-client could not make one), or no node or bundle to stat.',
    '    }',
    '  }',
    '  if (cachedData === undefined) {',
    "    if (mode === 'report') process.stderr.write(`nullgate: code cache: ${state}\\n`);",
    '    return requireBundle();',
    '  }',
    '  const { script, client } = compileBundle(lib, cachedData);',
    "  if (mode === 'report')",
    "    process.stderr.write(`nullgate: code cache: ${script.cachedDataRejected ? 'rejected' : 'used'}\\n`);",
    '  return client;',
    '}',
    '',
    COMPILE_BUNDLE,
    '',
    'function requireBundle() {',
    "  const { enableCompileCache } = require('node:module');",
    '  if (enableCompileCache && !process.env.NODE_COMPILE_CACHE) {',
    '    try {',
    "      const fs = require('node:fs');",
    '      const uid = process.geteuid();',
    "      const tmp = (process.env.TMPDIR || '/tmp').replace(/\\/+$/, '');",
    '      const dir = `${tmp}/nullgate-compile-cache-${uid}`;',
    '      try {',
    '        fs.mkdirSync(dir, { mode: 0o700 });',
    '      } catch (err) {',
    "        if (err.code !== 'EEXIST') throw err;",
    '      }',
    '      const st = fs.lstatSync(dir);',
    '      if (st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0) enableCompileCache(dir);',
    '    } catch {',
    '      // No cache: the bundle is compiled as without one.',
    '    }',
    '  }',
    "  return require(lib + '/nullgate.cjs');",
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
  // A code cache is for the bundle it was made from (V8 checks only the source's length): the
  // old one goes before the new bundle comes, and a new one is made after.
  rmSync(path.join(dir, LIB_DIR, CODE_CACHE), { force: true });
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
  const uncached = makeCodeCache(dir, node);
  if (uncached !== undefined) notes.push(uncached);
  process.stderr.write(
    `nullgate: installed the client into ${dir}${notes.length ? ` (${notes.join('; ')})` : ''}: try chroot ${dir} ${BIN} request /health --socket @NAME (the name serve prints; default @nullgate)\n`,
  );
  return ExitCode.OK;
}

export const installClientVerb: Verb = { spec: installClientSpec, run: installClientCommand };
