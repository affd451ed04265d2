/**
 * `GET /archive/<dir>`'s tar writer: the tree beneath the root as a tar stream.
 *
 * It walks depth-first in the file system's order, one directory fd per level and one file at
 * a time, with backpressure from the socket: memory stays bounded however large the tree.
 * Everything on disk goes through the beneath-root layer (native/beneath.ts); the header rules
 * are core/tar-entry.ts's.
 */
import { constants as fsc, createReadStream, close as closeCb } from 'node:fs';
import { promisify } from 'node:util';

import type { FastifyBaseLogger } from 'fastify';
import tar from 'tar-stream';

import { codeOf } from '../../core/errors.js';
import { displayPath, isTempName, joinRel } from '../../core/rel-path.js';
import { paxRecords } from '../../core/tar-entry.js';
import type { BeneathRoot, BeneathStat } from '../../native/beneath.js';

const closeAsync = promisify(closeCb);

/** A header as tar-stream's pack takes it (`pax` holds the extra records to write). */
type PackHeader = Parameters<tar.Pack['entry']>[0];

/** The event surface shared by Node and streamx streams. */
interface Emitter {
  on(event: string, fn: () => void): unknown;
  removeListener(event: string, fn: () => void): unknown;
}

/** What a file's bytes are written into: a tar-stream entry sink. */
interface EntrySink {
  write(chunk: Buffer): boolean;
  end(): unknown;
  destroy(err?: Error): unknown;
}

const READ_HIGH_WATER = 64 * 1024;
const PAD = Buffer.alloc(READ_HIGH_WATER);

/**
 * The tree at `rel` as a tar stream (a streamx Readable), names relative to `rel`. The walk
 * stops at the next entry once `signal` aborts; destroying the pack also stops it. A walk that
 * fails destroys the pack with its error (logged unless the request was aborted).
 */
export function packTree(
  root: BeneathRoot,
  rel: string,
  signal: AbortSignal,
  log: FastifyBaseLogger,
): tar.Pack {
  const pack = tar.pack();
  const writer = new TreeWriter(root, pack, signal, log);
  writer.walk(rel, '').then(
    () => pack.finalize(),
    (err: unknown) => {
      if (!signal.aborted) log.error({ err, path: displayPath(rel, true) }, 'archive: walk failed');
      pack.destroy(err instanceof Error ? err : new Error(String(err)));
    },
  );
  return pack;
}

/**
 * Resolves once a streamx writable can take more; rejects when it is torn down or the request
 * is aborted (a destroyed pack does not always close the entry sink that is waiting).
 */
function drained(sink: Emitter, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(signal.aborted ? signal.reason : new Error('archive stream closed'));
    };
    const cleanup = (): void => {
      sink.removeListener('drain', onDrain);
      sink.removeListener('close', onClose);
      sink.removeListener('error', onClose);
      signal.removeEventListener('abort', onClose);
    };
    if (signal.aborted) {
      onClose();
      return;
    }
    sink.on('drain', onDrain);
    sink.on('close', onClose);
    sink.on('error', onClose);
    signal.addEventListener('abort', onClose, { once: true });
  });
}

function entryDone(pack: tar.Pack, header: PackHeader, body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (body === undefined) pack.entry(header, done);
    else pack.entry(header, body, done);
  });
}

class TreeWriter {
  readonly #root: BeneathRoot;
  readonly #pack: tar.Pack;
  readonly #signal: AbortSignal;
  readonly #log: FastifyBaseLogger;

  constructor(root: BeneathRoot, pack: tar.Pack, signal: AbortSignal, log: FastifyBaseLogger) {
    this.#root = root;
    this.#pack = pack;
    this.#signal = signal;
    this.#log = log;
  }

  #header(name: string, st: BeneathStat, type: tar.Header['type'], size: number): PackHeader {
    const mtimeSec = Math.floor(st.mtimeMs / 1000);
    const header: PackHeader = {
      name,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size,
      mtime: new Date(mtimeSec * 1000),
    };
    const pax = paxRecords({ size, uid: st.uid, gid: st.gid, mtimeSec });
    if (pax !== undefined) header.pax = pax;
    return header;
  }

  /** Writes the contents of `dirRel` (names relative to `prefix` in the archive). */
  async walk(dirRel: string, prefix: string): Promise<void> {
    for await (const batch of this.#root.readdirBatches(dirRel)) {
      for (const dirent of batch) {
        this.#signal.throwIfAborted();
        // A PUT in progress stages here; half-extracted trees are not part of the tree.
        if (isTempName(dirent.name)) continue;
        await this.#entry(joinRel(dirRel, dirent.name), joinRel(prefix, dirent.name));
      }
    }
  }

  async #entry(rel: string, name: string): Promise<void> {
    let st: BeneathStat;
    try {
      st = await this.#root.lstat(rel);
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return; // removed since the listing
      throw err;
    }
    switch (st.type) {
      case 'dir':
        await entryDone(this.#pack, this.#header(name, st, 'directory', 0));
        await this.walk(rel, name);
        return;
      case 'symlink': {
        let linkname: string;
        try {
          linkname = await this.#root.readlink(rel);
        } catch (err) {
          if (codeOf(err) === 'ENOENT' || codeOf(err) === 'EINVAL') return; // replaced meanwhile
          throw err;
        }
        await entryDone(this.#pack, { ...this.#header(name, st, 'symlink', 0), linkname });
        return;
      }
      case 'file':
        await this.#file(rel, name);
        return;
      default:
        this.#log.debug({ path: displayPath(rel) }, 'archive: skipping a special file');
    }
  }

  async #file(rel: string, name: string): Promise<void> {
    // O_NOFOLLOW: a symlink swapped in since the lstat is not followed (ELOOP, skipped);
    // O_NONBLOCK: a FIFO swapped in does not block the thread pool. The header comes from the
    // fd, so it describes exactly what is read.
    let fd: number;
    try {
      fd = await this.#root.open(rel, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    } catch (err) {
      if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ELOOP') return;
      throw err;
    }
    let st: BeneathStat;
    try {
      st = await this.#root.fstat(fd, rel);
    } catch (err) {
      await closeAsync(fd);
      throw err;
    }
    if (st.type !== 'file') {
      await closeAsync(fd);
      return;
    }
    const size = st.size;
    const header = this.#header(name, st, 'file', size);
    if (size === 0) {
      await closeAsync(fd);
      await entryDone(this.#pack, header, Buffer.alloc(0));
      return;
    }
    const done = new Promise<void>((resolve, reject) => {
      const sink = this.#pack.entry(header, (err) => (err ? reject(err) : resolve()));
      void this.#copy(fd, size, rel, sink as unknown as EntrySink & Emitter).catch((err: unknown) => {
        sink.destroy(err instanceof Error ? err : new Error(String(err)));
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    });
    await done;
  }

  /** Streams `size` bytes of fd into the entry (JS owns the fd: the stream closes it). */
  async #copy(fd: number, size: number, rel: string, sink: EntrySink & Emitter): Promise<void> {
    const source = createReadStream(displayPath(rel), {
      fd,
      start: 0,
      end: size - 1,
      autoClose: true,
      highWaterMark: READ_HIGH_WATER,
    });
    let copied = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      copied += chunk.length;
      if (!sink.write(chunk)) await drained(sink, this.#signal);
    }
    if (copied < size) {
      // The file shrank while being read: the header already promised `size` bytes, so pad
      // with zeros to keep the archive readable (what GNU tar does, with the same warning).
      this.#log.warn({ path: displayPath(rel), size, read: copied }, 'archive: file shrank while read');
      while (copied < size) {
        const n = Math.min(PAD.length, size - copied);
        copied += n;
        if (!sink.write(PAD.subarray(0, n))) await drained(sink, this.#signal);
      }
    }
    sink.end();
  }
}
