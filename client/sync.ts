/**
 * `push --sync` and `pull --sync` (CONTRACT.md "Sync: send only what changed"): the
 * destination's manifest against the source's, planned by core/sync-plan.ts, then one archive of
 * only what differs. Loaded lazily, like client/archive.ts.
 *
 * push: GET /archive/<dir>?manifest=1 (a missing directory is an empty tree), the local
 * manifest, the plan, then PUT /archive/<dir>?sync=1 with the changed entries, their parent
 * directories and a deletion record per deleted path: the server applies it all or nothing.
 *
 * pull: the server's manifest, the local one, the plan; then POST /archive/<dir>?select=1 with
 * the paths to send, extracted like a plain pull (directory modes and times set last). Deletions
 * are made locally (beneath LOCAL_DIR, never through a symlink): an entry whose type changes
 * between a directory and anything else before the extraction, which puts the new one in its
 * place; an entry the server lacks (--delete) only after the extraction succeeded, so that a pull
 * that fails (server gone, connection cut, local error) deletes nothing it did not need to.
 */
import path from 'node:path';

import type { Dispatcher } from 'undici';

import { ngError } from '../core/errors.js';
import {
  APPLY_HEADER,
  type ManifestEntry,
  ManifestFormatError,
  ManifestSplitter,
  XATTRS_HEADER,
  type XattrScope,
  selectionBody,
} from '../core/manifest.js';
import { ancestorsOf, parentOf } from '../core/rel-path.js';
import { processIds, setRule } from '../core/set-rule.js';
import { type SyncPlan, planSync } from '../core/sync-plan.js';
import { unsafeEntry } from '../core/tar-entry.js';
import { BeneathRoot } from '../native/beneath.js';
import { extractTar, localManifest, packTar, type PullResult, sendPacked } from './archive.js';
import { LocalFileError, PartialTransferError, discardBody, isAbort, responseError } from './client-error.js';
import type { ProgressCallback } from './local-file.js';

/** What a sync needs of the client: raw requests and the socket's name for messages. */
export interface SyncClient {
  readonly socket: string;
  request(
    method: string,
    urlPath: string,
    options?: {
      headers?: Record<string, string>;
      body?: Buffer | import('node:stream').Readable;
      signal?: AbortSignal | undefined;
    },
  ): Promise<Dispatcher.ResponseData>;
}

export interface SyncOptions {
  /** Delete destination entries the source lacks (`--delete`). */
  readonly delete?: boolean | undefined;
  /** Compare content by sha-256 instead of size and mtime (`--checksum`). */
  readonly checksum?: boolean | undefined;
  /** Plan only: change nothing on either side (`--dry-run`). */
  readonly dryRun?: boolean | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ProgressCallback | undefined;
}

export interface SyncResult {
  /** What was (or, in a dry run, would be) sent and deleted. */
  readonly plan: SyncPlan;
  /** Entries not extracted on a pull (device nodes for a user who is not root). */
  readonly skipped: readonly { readonly name: string; readonly why: string }[];
  /** Local entries that cannot be archived (sockets), on a push. */
  readonly unsendable: readonly string[];
}

export interface RemoteManifest {
  /** The entries, read as they stream in (the caller walks its own tree meanwhile). */
  readonly entries: Promise<ManifestEntry[]>;
  /** The rule a PUT from this client gets on the server. */
  readonly apply: 'all' | 'user';
  /** Which extended attributes the digests cover. */
  readonly xattrs: XattrScope;
}

function header(res: Dispatcher.ResponseData, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The manifest of a served directory, read as it streams in; undefined when the directory does
 * not exist (404) and `missingOk`.
 */
export async function remoteManifest(
  client: SyncClient,
  urlPath: string,
  query: Record<string, string>,
  options: { missingOk: boolean; signal?: AbortSignal | undefined },
): Promise<RemoteManifest | undefined> {
  const url = `${urlPath}?${new URLSearchParams({ manifest: '1', ...query }).toString()}`;
  const res = await client.request('GET', url, { signal: options.signal });
  if (res.statusCode === 404 && options.missingOk) {
    await discardBody(res.body);
    return undefined;
  }
  if (res.statusCode < 200 || res.statusCode > 299) throw await responseError(res, 'GET', url, client.socket);
  const where = `GET ${url} on ${client.socket}`;
  const type = header(res, 'content-type') ?? '';
  if (!/ndjson/i.test(type)) {
    await discardBody(res.body);
    throw ngError(
      'NG_ERR_HTTP',
      `${where}: not a manifest (${type || 'no content type'}); does the server support --sync?`,
    );
  }
  const read = async (): Promise<ManifestEntry[]> => {
    const splitter = new ManifestSplitter();
    const entries: ManifestEntry[] = [];
    let received = 0;
    res.body.on('error', () => undefined);
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        received += chunk.length;
        for (const e of splitter.push(chunk)) entries.push(e);
      }
      splitter.end();
    } catch (err) {
      res.body.destroy();
      if (err instanceof ManifestFormatError)
        throw ngError('NG_ERR_HTTP', `${where}: not a manifest (${err.message})`, err);
      if (isAbort(err)) throw err;
      throw new PartialTransferError(received, undefined, err);
    }
    return entries;
  };
  const entries = read();
  // Awaited by the caller, possibly after its own walk failed: never an unhandled rejection.
  entries.catch(() => undefined);
  const apply = header(res, APPLY_HEADER) === 'all' ? 'all' : 'user';
  const xattrs = header(res, XATTRS_HEADER) === 'all' ? 'all' : 'user';
  return { entries, apply, xattrs };
}

/** The remote entries and the local manifest, the two walks running at the same time. */
async function bothManifests(
  remote: Promise<ManifestEntry[]>,
  local: Promise<ManifestEntry[]>,
): Promise<[ManifestEntry[], ManifestEntry[]]> {
  // Either may fail while the other is awaited: neither is an unhandled rejection.
  local.catch(() => undefined);
  remote.catch(() => undefined);
  try {
    return [await remote, await local];
  } finally {
    // Whichever failed first, the other is settled before the error goes on.
    await Promise.allSettled([remote, local]);
  }
}

/** The plan's options for a receiver that applies `rule` ('all': root for root). */
function planOptions(options: SyncOptions, receiver: 'all' | 'user') {
  return {
    delete: options.delete === true,
    checksum: options.checksum === true,
    owners: receiver === 'all',
    modeMask: receiver === 'all' ? 0o7777 : 0o1777,
  };
}

/** `push --sync LOCAL_DIR REMOTE_DIR`. */
export async function pushSync(
  client: SyncClient,
  localDir: string,
  urlPath: string,
  options: SyncOptions = {},
): Promise<SyncResult> {
  const query = options.checksum === true ? { checksum: '1' } : {};
  const remote = await remoteManifest(client, urlPath, query, { missingOk: true, signal: options.signal });
  const apply = remote?.apply ?? 'user';
  // Before the server's first answer the rule is not known; a missing directory has nothing to compare.
  const xattrs = remote?.xattrs ?? 'user';
  const sockets: string[] = [];
  const [remoteEntries, local] = await bothManifests(
    remote?.entries ?? Promise.resolve([]),
    localManifest(localDir, { xattrs, checksum: options.checksum === true, sockets }),
  );
  if (local.length === 0) {
    throw new LocalFileError(
      'read',
      path.resolve(localDir),
      Object.assign(new Error('no such directory'), { code: 'ENOENT' }),
    );
  }
  const plan = planSync(local, remoteEntries, planOptions(options, apply));
  const result = { plan, skipped: [], unsendable: sockets };
  if (options.dryRun === true || (plan.send.length === 0 && plan.delete.length === 0)) return result;
  const packed = await packTar(localDir, options.onProgress, {
    select: new Set(plan.send),
    deletions: plan.delete,
  });
  const url = `${urlPath}?sync=1`;
  const res = await sendPacked(packed, (body) =>
    client.request('PUT', url, {
      headers: { 'content-type': 'application/x-tar' },
      body,
      signal: options.signal,
    }),
  );
  if (res.statusCode < 200 || res.statusCode > 299) throw await responseError(res, 'PUT', url, client.socket);
  await discardBody(res.body);
  return result;
}

/** `pull --sync REMOTE_DIR LOCAL_DIR`. */
export async function pullSync(
  client: SyncClient,
  urlPath: string,
  localDir: string,
  options: SyncOptions = {},
): Promise<SyncResult> {
  const writer = processIds();
  const rule = setRule(writer, writer);
  const receiver = rule.owner === 'archive' ? 'all' : 'user';
  const query: Record<string, string> = { xattrs: rule.xattrs };
  if (options.checksum === true) query.checksum = '1';
  const remote = (await remoteManifest(client, urlPath, query, {
    missingOk: false,
    signal: options.signal,
  }))!;
  const [remoteEntries, local] = await bothManifests(
    remote.entries,
    localManifest(localDir, { xattrs: rule.xattrs, checksum: options.checksum === true }),
  );
  const plan = planSync(remoteEntries, local, planOptions(options, receiver));
  if (options.dryRun === true) return { plan, skipped: [], unsendable: [] };
  // A deleted entry the server has is one whose type changes (core/sync-plan.ts): it goes first.
  const remotePaths = new Set(remoteEntries.map((e) => e.path));
  const replaced = plan.delete.filter((p) => remotePaths.has(p));
  const extra = plan.delete.filter((p) => !remotePaths.has(p));
  if (replaced.length > 0) await deleteLocal(localDir, replaced);
  const skipped = plan.send.length === 0 ? [] : await pullSelected(client, urlPath, localDir, plan, options);
  // The extraction set the directories' times as the server's; deleting an entry changes its
  // directory's mtime, so each keeps the times the extraction gave it.
  if (extra.length > 0) await deleteLocal(localDir, extra, { keepParentTimes: true });
  return { plan, skipped, unsendable: [] };
}

/** POST /archive/<dir>?select=1 with the plan's paths, extracted into LOCAL_DIR: what was skipped. */
async function pullSelected(
  client: SyncClient,
  urlPath: string,
  localDir: string,
  plan: SyncPlan,
  options: SyncOptions,
): Promise<PullResult['skipped']> {
  const url = `${urlPath}?select=1`;
  const res = await client.request('POST', url, {
    headers: { 'content-type': 'application/x-ndjson' },
    body: selectionBody(plan.send),
    signal: options.signal,
  });
  if (res.statusCode < 200 || res.statusCode > 299)
    throw await responseError(res, 'POST', url, client.socket);
  let cut: unknown;
  res.body.once('error', (err) => (cut ??= err));
  let result: PullResult;
  try {
    result = await extractTar(res.body, localDir, options.onProgress);
  } catch (err) {
    cut ??= res.body.errored ?? undefined;
    if (cut !== undefined && err === cut && !isAbort(err))
      throw new PartialTransferError(undefined, undefined, err);
    throw err;
  }
  return result.skipped;
}

/**
 * Deletes `paths` (relative to LOCAL_DIR, outermost first) beneath LOCAL_DIR: each reached
 * through real directories only (a symlink on the way, which can only be there when the tree
 * changed since its manifest was made, is refused), removed with everything in it, never
 * following a symlink (BeneathRoot.rm). With `keepParentTimes`, the directory that held each
 * keeps its modification time.
 */
export async function deleteLocal(
  localDir: string,
  paths: readonly string[],
  options: { keepParentTimes?: boolean } = {},
): Promise<void> {
  const dir = path.resolve(localDir);
  let root: BeneathRoot;
  try {
    root = await BeneathRoot.open(dir);
  } catch (err) {
    throw new LocalFileError('write', dir, err);
  }
  try {
    for (const rel of paths) {
      for (const a of ancestorsOf(rel)) {
        const st = await root.lstat(a).catch(() => undefined);
        if (st?.type === 'symlink') throw unsafeEntry(rel, `leads through the symlink "${a}" in LOCAL_DIR`);
      }
      const parent = parentOf(rel);
      try {
        const before = options.keepParentTimes === true ? await root.lstat(parent) : undefined;
        await root.rm(rel, { recursive: true, force: true });
        if (before !== undefined) await root.lutimesNs(parent, null, before.mtimeNs);
      } catch (err) {
        throw new LocalFileError('write', path.join(dir, rel), err);
      }
    }
  } finally {
    await root.close();
  }
}
