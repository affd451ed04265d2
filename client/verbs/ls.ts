/**
 * `nullgate ls [-l] [--json] [REMOTE]`: list a directory of the served tree (default `/`); a file
 * is shown as ls(1) shows a file operand: its own line.
 */
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { usageError } from '../../core/errors.js';
import { escapeControls, escapeJsonControls } from '../../core/terminal-text.js';
import path from 'node:path';
import { ClientError } from '../client-error.js';
import { type FileClient, type ListEntry, type ListingStream, filesPath } from '../file-client.js';
import {
  type CommonOptions,
  type Env,
  commonOptions,
  parseCommon,
  toStdout,
  withFileClient,
} from './common.js';

export interface LsArgs {
  readonly common: CommonOptions;
  readonly remote: string;
  readonly long: boolean;
  readonly json: boolean;
}

export const lsSpec = {
  name: 'ls',
  usage: ['nullgate ls [-l] [--json] [REMOTE]'],
  summary:
    'Lists a directory of the served tree, sorted by name; directories end in /. A file is shown on its own line, as ls shows one.',
  operands: [['REMOTE', 'a directory (default /) or a file in the served tree']],
  options: {
    long: {
      type: 'boolean',
      short: 'l',
      help: 'mode, numeric owner and group, size, mtime and name, like ls -ln --time-style=long-iso',
    },
    json: {
      type: 'boolean',
      help: "the server's listing as JSON: {path, entries: [{name, type, size, mtime, mode, uid, gid}]}",
    },
    ...commonOptions,
  },
} as const satisfies CommandSpec;

export function parseLsArgs(argv: string[], env: Env = process.env): LsArgs {
  const { values, positionals } = parseCommand(lsSpec, argv);
  if (positionals.length > 1)
    throw usageError(`ls: unexpected argument "${positionals[1]}" (usage: nullgate ls [-l] [--json] REMOTE)`);
  const common = parseCommon(values, env);
  return { common, remote: positionals[0] ?? '/', long: values.long === true, json: values.json === true };
}

const TYPE_CHAR: Record<string, string> = { file: '-', dir: 'd', symlink: 'l', other: '?' };

/** `drwxr-xr-x` from the entry's type and permission bits (with setuid, setgid, sticky as ls shows them). */
export function modeString(type: string, mode: number): string {
  const rwx = (bits: number, special: boolean, on: string, off: string): string =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? on : off) : bits & 1 ? 'x' : '-'}`;
  return (
    (Object.hasOwn(TYPE_CHAR, type) ? TYPE_CHAR[type]! : '?') +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's', 'S') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's', 'S') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't', 'T')
  );
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Local time as `ls --time-style=long-iso` writes it. */
export function formatTime(mtime: string | number): string {
  const d = new Date(mtime);
  if (Number.isNaN(d.getTime())) return '????-??-?? ??:??';
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** The name as printed: control characters escaped (the server chose them), directories with a '/'. */
function shownName(e: ListEntry): string {
  const name = escapeControls(String(e.name));
  return e.type === 'dir' ? `${name}/` : name;
}

/** A number as printed: itself, or '?' for whatever else (or nothing) a server sent. */
function shownNumber(n: unknown): string {
  return Number.isSafeInteger(n) ? String(n) : '?';
}

export function formatListing(entries: readonly ListEntry[], long: boolean): string {
  if (!long) return entries.map((e) => `${shownName(e)}\n`).join('');
  // Numeric columns right-aligned over all entries, as `ls -ln` aligns them.
  const columns = entries.map((e) => [shownNumber(e.uid), shownNumber(e.gid), shownNumber(e.size)] as const);
  const widths = [0, 1, 2].map((i) => Math.max(0, ...columns.map((c) => c[i]!.length)));
  return entries
    .map((e, i) => {
      const [uid, gid, size] = columns[i]!.map((text, c) => text.padStart(widths[c]!));
      return `${modeString(e.type, e.mode)} ${uid} ${gid} ${size} ${formatTime(e.mtime)} ${shownName(e)}\n`;
    })
    .join('');
}

/** JSON text safe for a terminal (see escapeJsonControls). */
function json(value: unknown): string {
  return escapeJsonControls(JSON.stringify(value));
}

/**
 * The lines of `ls` and `ls --json` as the listing streams in: nothing but the entry at hand is
 * held, so a directory of any size (or a server whose listing never ends) prints in bounded
 * memory. `--json` writes `{"path":…,"entries":[…]}` again from the parsed entries.
 */
async function* streamedLines(listing: ListingStream, dir: string, asJson: boolean): AsyncGenerator<string> {
  // One write per group of entries that arrived together, not one per entry.
  if (!asJson) {
    for await (const batch of listing.batches()) yield batch.map((entry) => `${shownName(entry)}\n`).join('');
    return;
  }
  let first = true;
  for await (const batch of listing.batches()) {
    const entries = batch.map(json).join(',');
    yield first ? `{"path":${json(listing.path ?? dir)},"entries":[${entries}` : `,${entries}`;
    first = false;
  }
  yield first ? `{"path":${json(listing.path ?? dir)},"entries":[]}\n` : ']}\n';
}

/**
 * `REMOTE` as a file, when listing it as a directory failed with `listFailure`: ls(1) shows a
 * file operand on its own line. The listing asks for `REMOTE/`, which is 404 for a file; a HEAD
 * of `REMOTE` then tells whether it is one (its mode, owner and mtime in the X-Nullgate-* headers).
 * Anything else (no such path, `REMOTE/` written by the user) is the listing's own failure.
 */
async function fileEntry(client: FileClient, remote: string, listFailure: unknown): Promise<ListEntry> {
  if (!(listFailure instanceof ClientError) || listFailure.statusCode !== 404 || remote.endsWith('/'))
    throw listFailure;
  const st = await client.stat(remote).catch(() => undefined);
  if (st?.type !== 'file') throw listFailure;
  return {
    name: path.posix.basename(remote),
    type: 'file',
    size: st.size ?? 0,
    mtime: st.mtime?.toISOString() ?? '',
    mode: st.mode ?? 0,
    ...(st.uid === undefined ? {} : { uid: st.uid }),
    ...(st.gid === undefined ? {} : { gid: st.gid }),
  };
}

/** What `ls FILE` prints: the operand as given (plain, -l), or a listing of that one entry (--json). */
function fileLines(entry: ListEntry, args: LsArgs): string {
  if (args.json) return `{"path":${json(args.remote)},"entries":[${json(entry)}]}\n`;
  return formatListing([{ ...entry, name: args.remote }], args.long);
}

export async function lsCommand(argv: string[]): Promise<void> {
  const args = parseLsArgs(argv);
  const dir = args.remote.endsWith('/') ? args.remote : `${args.remote}/`;
  return withFileClient(
    args.common,
    (socket) => `GET ${filesPath(dir)} on ${socket}`,
    async (client) => {
      let out: AsyncIterable<Buffer | string> | Iterable<Buffer | string>;
      try {
        // -l aligns the size column over all entries, as ls does: it needs the whole listing,
        // which list() holds up to its entry limit; the other forms print entries as they come.
        out = args.long
          ? [formatListing((await client.list(args.remote)).entries, true)]
          : streamedLines(await client.listStream(args.remote), dir, args.json);
      } catch (err) {
        // Not a directory: `ls FILE` shows the file, as ls(1) does (or rethrows the failure).
        out = [fileLines(await fileEntry(client, args.remote, err), args)];
      }
      await toStdout(out);
    },
  );
}
