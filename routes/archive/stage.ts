/**
 * `PUT /archive/<dir>`'s first half: the request body (a tar stream, gzipped or not) extracted
 * into a hidden staging directory (`.nullgate-tmp-<random>`), which routes/archive/merge.ts then
 * moves into place — only when every entry succeeded; any failure removes it.
 *
 * The staging directory is made at the top of the root when that is on the target's mount, so
 * that a server killed mid-upload leaves it where the next start's sweep looks
 * (BeneathRoot.sweepTemporaries, which reads the root directory only); a target on another
 * mount stages beside itself, where a rename into place still works and the leftover of a kill
 * is never served, listed or archived.
 *
 * Everything on disk goes through the beneath-root layer (native/beneath.ts), so the kernel
 * confines every lookup to the served root, also against symlinks swapped in while a request
 * runs. tar-stream does the format; the entry rules are core/tar-entry.ts's.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';

import { fsError, isNullgateError, ngError, type NullgateError } from '../../core/errors.js';
import { displayPath, isTempName, joinRel, shortened, TEMP_NAME_PREFIX } from '../../core/rel-path.js';
import type { Ids, SetRule } from '../../core/set-rule.js';
import { entryLabel, entryPath, unsafeEntry } from '../../core/tar-entry.js';
import { readTar, type TarMember } from '../../core/tar-read.js';
import { type BeneathRoot, lockTemporary } from '../../native/beneath.js';
import { BodyMemory } from '../../native/memory.js';
import { TreeWriter } from '../../native/tree-writer.js';

/**
 * The answer to a PUT: CONTRACT.md's `{files, dirs, bytes}`, plus `symlinks` (an extra key
 * clients that know only the contract's three simply ignore). Hard links, FIFOs and device
 * nodes count as files.
 */
export interface ArchiveResult {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  /** A sync push (`?sync=1`): the entries its deletion records removed (a directory counts once). */
  deleted?: number;
}

/** A new staging directory in `near` (relative to the root) and the fd that locks it. */
export interface Staging {
  readonly dir: string;
  /** Held until the request is over: another server's startup sweep leaves a locked one alone. */
  readonly lockFd: number;
}

/** Makes (and locks) a staging directory for a tree that is to end up in or below `near`. */
export async function makeStaging(root: BeneathRoot, near: string): Promise<Staging> {
  const dir = joinRel(await root.tempDirFor(near), `${TEMP_NAME_PREFIX}${randomBytes(8).toString('hex')}`);
  await root.mkdir(dir, 0o700);
  const lockFd = await root.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  lockTemporary(lockFd);
  return { dir, lockFd };
}

/** Counts bytes through, failing once `limit` is passed; remembers the first two bytes. */
class ByteCounter extends Transform {
  bytes = 0;
  readonly #limit: number;
  readonly #onLimit: () => Error;
  readonly #memory = new BodyMemory();
  #head = Buffer.alloc(0);
  #resolveHead: ((head: Buffer) => void) | undefined;
  /** The first (up to) two bytes of the stream, for the gzip magic check. */
  readonly head: Promise<Buffer>;

  constructor(limit: number, onLimit: () => Error) {
    super();
    this.#limit = limit;
    this.#onLimit = onLimit;
    this.head = new Promise((resolve) => (this.#resolveHead = resolve));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.#memory.streamed(chunk.length);
    if (this.bytes > this.#limit) {
      cb(this.#onLimit());
      return;
    }
    if (this.#resolveHead !== undefined) {
      this.#head = Buffer.concat([this.#head, chunk.subarray(0, 2 - this.#head.length)]);
      if (this.#head.length >= 2) this.#settleHead();
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#settleHead();
    cb();
  }

  #settleHead(): void {
    const resolve = this.#resolveHead;
    this.#resolveHead = undefined;
    resolve?.(this.#head);
  }
}

export function tooLarge(limit: number): NullgateError {
  return ngError('NG_ERR_PAYLOAD_TOO_LARGE', `archive larger than the upload limit (${limit} bytes)`);
}

/**
 * Extracts one archive into `staging` (relative to the root), under the rule of what the peer
 * may set (core/set-rule.ts), with native/tree-writer.ts. `finalBase` is where the staged tree
 * will live, for messages.
 */
export class Stager {
  readonly #writer: TreeWriter;
  readonly #finalBase: string;

  constructor(
    root: BeneathRoot,
    staging: string,
    finalBase: string,
    maxBytes: number,
    who: { rule: SetRule; writer: Ids },
    sync = false,
  ) {
    this.#finalBase = finalBase;
    this.#writer = new TreeWriter(root, staging, true, {
      ...who,
      deletions: sync ? 'collect' : 'refuse',
      maxBytes,
      tooLarge: () => tooLarge(maxBytes),
      devices: 'refuse',
      // A link into a temporary would serve a half-written upload under an ordinary name.
      checkLink: (name, linkname) => {
        if (linkname.split('/').some(isTempName)) {
          throw unsafeEntry(name, `symlink into a name reserved for the server (${shortened(linkname)})`);
        }
      },
    });
  }

  get result(): ArchiveResult {
    return { ...this.#writer.counts };
  }

  /** The paths the archive's deletion records name (relative to the target). */
  get deleted(): readonly string[] {
    return this.#writer.deleted;
  }

  async entry(member: TarMember): Promise<void> {
    try {
      await this.#writer.entry(member);
    } catch (err) {
      if (isNullgateError(err)) throw err;
      const name = member.header.name;
      let shown: string;
      try {
        shown = displayPath(joinRel(this.#finalBase, entryPath(name)));
      } catch {
        shown = name;
      }
      // ENAMETOOLONG: a name over NAME_MAX (255 bytes) or a path over PATH_MAX (4096) here.
      throw fsError(err, shortened(shown), {
        ENAMETOOLONG: {
          code: 'NG_ERR_BAD_PATH',
          message: `archive entry ${entryLabel(name)}: name too long (at most 255 bytes a name, 4096 a path)`,
        },
      });
    }
  }

  /**
   * Gives the staged directories their owners, modes and times, deepest first (so a read-only
   * parent does not block its children, and filling a directory no longer changes its mtime).
   * `skip` are directories that will be merged into existing ones instead of moved. Nothing is
   * fsynced here: commit (merge.ts) makes the whole staged tree durable with one syncfs(2).
   */
  async finish(skip: ReadonlySet<string> = new Set()): Promise<void> {
    await this.#writer.finish(skip);
  }

  /** After a merge: the archive's directories that met existing ones get their metadata there. */
  async retouch(target: string, merged: Iterable<string>): Promise<void> {
    await this.#writer.retouch(target, merged);
  }
}

/** Body → (gunzip) → tar members → the stager. Resolves when the whole archive is staged. */
export async function extract(req: IncomingMessage, stager: Stager, maxUpload: number): Promise<void> {
  const body = new ByteCounter(maxUpload, () => tooLarge(maxUpload));
  const tarBytes = new PassThrough();
  // The first failure wins; it reaches the loop below through the tar stream's iterator, or
  // through `failed` while the gzip check still waits for the first bytes.
  let failure: Error | undefined;
  let rejectFailed: (err: Error) => void = () => undefined;
  const failed = new Promise<never>((_resolve, reject) => (rejectFailed = reject));
  failed.catch(() => undefined);
  tarBytes.on('error', () => undefined);
  const fail = (err: Error): void => {
    failure ??= err;
    rejectFailed(err);
    tarBytes.destroy(err);
  };
  // A client that disconnects mid-body ends the request without 'end' (Node: 'aborted', then
  // 'close'), which must fail the extraction rather than look like a short archive.
  const onClose = (): void => {
    if (!req.readableEnded)
      fail(ngError('NG_ERR_ARCHIVE_INVALID', 'the client disconnected before the archive ended'));
  };
  req.once('close', onClose);
  req.once('error', (err) => fail(ngError('NG_ERR_ARCHIVE_INVALID', 'the request body failed', err)));
  // The client may have gone before this handler ran (its 'close' is then already past).
  if (req.destroyed) onClose();
  body.once('error', fail);
  req.pipe(body);

  try {
    // gzip is recognised by its magic bytes (RFC 1952 §2.3.1), not by headers: curl -T and
    // most scripts send no useful Content-Type.
    const head = await Promise.race([body.head, failed]);
    if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
      const gunzip = createGunzip();
      gunzip.once('error', (err) =>
        fail(ngError('NG_ERR_ARCHIVE_INVALID', `not a valid gzip stream: ${err.message}`, err)),
      );
      body.pipe(gunzip).pipe(tarBytes);
    } else {
      body.pipe(tarBytes);
    }
    if (failure !== undefined) throw failure;
    for await (const member of readTar(tarBytes)) await stager.entry(member);
  } catch (err) {
    if (failure !== undefined && !isNullgateError(err)) throw failure;
    if (isNullgateError(err)) throw err;
    throw ngError(
      'NG_ERR_ARCHIVE_INVALID',
      `not a readable tar archive: ${err instanceof Error ? err.message : String(err)}`,
      err,
    );
  } finally {
    req.removeListener('close', onClose);
    body.unpipe();
  }
}
