/**
 * The local side of `pull` and `push`: extracting the server's tar stream into a local
 * directory, safely, and packing a local directory into one. Loaded lazily (only these two
 * verbs need tar-stream).
 *
 * Extraction refuses what a hostile or confused archive could use to write outside LOCAL_DIR:
 * absolute names, `..`, symlinks pointing outside, entries that lead through a symlink that an
 * earlier entry (or the local tree) put there, devices and FIFOs — the server's rules for an
 * upload (core/tar-entry.ts), with LOCAL_DIR as the root. Files are created with
 * O_NOFOLLOW | O_EXCL after removing whatever non-directory stood there, so a planted symlink
 * at the final name is never followed.
 */
import { once } from 'node:events';
import { constants as fsc, createReadStream, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { ancestorsOf, joinRel, shortened } from '../core/rel-path.js';
import {
  checkSymlink,
  entryKind,
  entryPath,
  extractedMode,
  hardlinkTarget,
  unsafeEntry,
} from '../core/tar-entry.js';
import type { ProgressCallback } from './local-file.js';
import { LocalFileError } from './client-error.js';

type TarHeader = Parameters<tar.Pack['entry']>[0];

/** What a pull extracted. */
export interface PullResult {
  readonly files: number;
  readonly dirs: number;
  readonly symlinks: number;
  readonly bytes: number;
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new LocalFileError('write', p, err);
  }
}

class Extractor {
  readonly root: string;
  /** Directories known to be real directories (not symlinks), relative to root ('' is root). */
  readonly #dirs = new Set<string>(['']);
  readonly #dirTimes: [string, Date][] = [];
  files = 0;
  dirs = 0;
  symlinks = 0;
  bytes = 0;

  constructor(root: string) {
    this.root = root;
  }

  #at(rel: string): string {
    return path.join(this.root, rel);
  }

  /** Makes sure every parent of `rel` is a real directory (creating missing ones). */
  async parents(rel: string, name: string): Promise<void> {
    for (const dir of ancestorsOf(rel)) {
      if (this.#dirs.has(dir)) continue;
      const st = await lstatOrUndefined(this.#at(dir));
      if (st === undefined) {
        await this.#mkdir(this.#at(dir), 0o755);
      } else if (st.isSymbolicLink()) {
        throw unsafeEntry(name, `leads through a symlink (${shortened(dir)})`);
      } else if (!st.isDirectory()) {
        throw unsafeEntry(name, `a parent is not a directory (${shortened(dir)})`);
      }
      this.#dirs.add(dir);
    }
  }

  async #mkdir(dir: string, mode: number): Promise<void> {
    try {
      await fsp.mkdir(dir, { mode });
    } catch (err) {
      throw new LocalFileError('write', dir, err);
    }
  }

  /** Removes a non-directory at `rel` so the entry replaces it; a directory in the way is a conflict. */
  async #clear(rel: string, name: string): Promise<void> {
    const dest = this.#at(rel);
    const st = await lstatOrUndefined(dest);
    if (st === undefined) return;
    if (st.isDirectory()) throw unsafeEntry(name, 'a directory is in the way');
    try {
      await fsp.unlink(dest);
    } catch (err) {
      throw new LocalFileError('write', dest, err);
    }
  }

  async directory(rel: string, name: string, header: TarHeader): Promise<void> {
    const dest = this.#at(rel);
    const mode = extractedMode('dir', header.mode);
    const st = await lstatOrUndefined(dest);
    if (st?.isSymbolicLink() || (st && !st.isDirectory())) {
      await this.#clear(rel, name);
      await this.#mkdir(dest, mode);
    } else if (st === undefined) {
      await this.#mkdir(dest, mode);
      this.dirs++;
    }
    this.#dirs.add(rel);
    // Directory times are set last: writing entries into a directory changes its mtime.
    if (header.mtime) this.#dirTimes.push([dest, header.mtime]);
  }

  async file(
    rel: string,
    name: string,
    header: TarHeader,
    entry: AsyncIterable<Buffer>,
    onProgress: ProgressCallback | undefined,
  ): Promise<void> {
    const dest = this.#at(rel);
    await this.#clear(rel, name);
    let fh: FileHandle;
    try {
      const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
      fh = await fsp.open(dest, flags, extractedMode('file', header.mode));
    } catch (err) {
      throw new LocalFileError('write', dest, err);
    }
    try {
      for await (const chunk of entry) {
        try {
          await fh.write(chunk);
        } catch (err) {
          throw new LocalFileError('write', dest, err);
        }
        this.bytes += chunk.length;
        onProgress?.(this.bytes, undefined);
      }
    } finally {
      await fh.close();
    }
    if (header.mtime) await fsp.utimes(dest, header.mtime, header.mtime).catch(() => undefined);
    this.files++;
  }

  async symlink(rel: string, name: string, header: TarHeader): Promise<void> {
    const dest = this.#at(rel);
    const linkname = header.linkname ?? '';
    // LOCAL_DIR is the root the link must stay beneath.
    checkSymlink(name, rel, linkname);
    await this.#clear(rel, name);
    try {
      await fsp.symlink(linkname, dest);
    } catch (err) {
      throw new LocalFileError('write', dest, err);
    }
    if (header.mtime) await fsp.lutimes(dest, header.mtime, header.mtime).catch(() => undefined);
    this.symlinks++;
  }

  async hardlink(rel: string, name: string, header: TarHeader): Promise<void> {
    const dest = this.#at(rel);
    const targetRel = hardlinkTarget(name, header.linkname ?? '');
    await this.parents(targetRel, name);
    const target = this.#at(targetRel);
    const st = await lstatOrUndefined(target);
    if (!st?.isFile())
      throw unsafeEntry(
        name,
        `hard link to something that is not an extracted file (${shortened(header.linkname ?? '')})`,
      );
    await this.#clear(rel, name);
    try {
      await fsp.link(target, dest);
    } catch (err) {
      throw new LocalFileError('write', dest, err);
    }
    this.files++;
  }

  async finish(): Promise<void> {
    for (const [dir, mtime] of this.#dirTimes.reverse()) {
      await fsp.utimes(dir, mtime, mtime).catch(() => undefined);
    }
  }
}

/** Extracts a tar stream into `localDir` (created if missing). Never follows a link out of it. */
export async function extractTar(
  body: Readable,
  localDir: string,
  onProgress?: ProgressCallback,
): Promise<PullResult> {
  const root = path.resolve(localDir);
  try {
    await fsp.mkdir(root, { recursive: true });
  } catch (err) {
    throw new LocalFileError('write', root, err);
  }
  const x = new Extractor(path.resolve(await fsp.realpath(root)));
  const extract = tar.extract();
  body.once('error', (err) => extract.destroy(err));
  body.pipe(extract);
  try {
    for await (const entry of extract) {
      const { header } = entry;
      const name = header.name;
      const rel = entryPath(name);
      const kind = entryKind(name, header.type);
      if (rel === '') {
        if (kind !== 'dir') throw unsafeEntry(name, 'names the target directory itself');
        entry.resume();
        continue;
      }
      await x.parents(rel, name);
      switch (kind) {
        case 'dir':
          await x.directory(rel, name, header);
          break;
        case 'file':
          await x.file(rel, name, header, entry as AsyncIterable<Buffer>, onProgress);
          break;
        case 'symlink':
          await x.symlink(rel, name, header);
          break;
        case 'hardlink':
          await x.hardlink(rel, name, header);
          break;
      }
      entry.resume();
    }
  } catch (err) {
    body.destroy();
    extract.destroy();
    throw err;
  }
  await x.finish();
  return { files: x.files, dirs: x.dirs, symlinks: x.symlinks, bytes: x.bytes };
}

export interface PackedTar {
  /** The tar stream, to send as a request body. */
  readonly stream: Readable;
  /** The local error that stopped packing, if any (the stream is destroyed with it). */
  error(): Error | undefined;
  /** Entries that were neither files, directories nor symlinks. */
  readonly skipped: string[];
}

function writeEntry(pack: tar.Pack, header: TarHeader, file?: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (file === undefined) {
      pack.entry(header, done);
      return;
    }
    if (!header.size) {
      pack.entry(header, Buffer.alloc(0), done);
      return;
    }
    const sink = pack.entry(header, done);
    void (async () => {
      let source: Readable | undefined;
      try {
        source = createReadStream(file);
        for await (const chunk of source as AsyncIterable<Buffer>) {
          if (!sink.write(chunk)) await once(sink, 'drain');
        }
        sink.end(null);
      } catch (err) {
        source?.destroy();
        const failure = new LocalFileError('read', file, err);
        sink.destroy(failure);
        reject(failure);
      }
    })();
  });
}

/** Packs the tree under `localDir` (regular files, directories, symlinks as symlinks). */
export async function packTar(localDir: string, onProgress?: ProgressCallback): Promise<PackedTar> {
  const root = path.resolve(localDir);
  let st: Stats;
  try {
    st = await fsp.stat(root);
  } catch (err) {
    throw new LocalFileError('read', root, err);
  }
  if (!st.isDirectory()) {
    throw new LocalFileError('read', root, Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }));
  }
  const pack = tar.pack();
  const skipped: string[] = [];
  let failure: Error | undefined;
  let bytes = 0;

  const walk = async (rel: string): Promise<void> => {
    const dir = path.join(root, rel);
    let names: string[];
    try {
      names = (await fsp.readdir(dir)).sort();
    } catch (err) {
      throw new LocalFileError('read', dir, err);
    }
    for (const name of names) {
      const childRel = joinRel(rel, name);
      const full = path.join(root, childRel);
      let s: Stats;
      try {
        s = await fsp.lstat(full);
      } catch (err) {
        throw new LocalFileError('read', full, err);
      }
      const base = { name: childRel, mode: s.mode & 0o7777, mtime: s.mtime };
      if (s.isDirectory()) {
        await writeEntry(pack, { ...base, type: 'directory' });
        await walk(childRel);
      } else if (s.isFile()) {
        await writeEntry(pack, { ...base, type: 'file', size: s.size }, full);
        bytes += s.size;
        onProgress?.(bytes, undefined);
      } else if (s.isSymbolicLink()) {
        let linkname: string;
        try {
          linkname = await fsp.readlink(full);
        } catch (err) {
          throw new LocalFileError('read', full, err);
        }
        await writeEntry(pack, { ...base, type: 'symlink', linkname });
      } else {
        skipped.push(childRel);
      }
    }
  };

  walk('').then(
    () => pack.finalize(),
    (err: unknown) => {
      failure = err instanceof Error ? err : new Error(String(err));
      pack.destroy(failure);
    },
  );

  // undici takes Node streams; tar-stream's are streamx streams, which are async iterable.
  const stream = Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false });
  return { stream, error: () => failure, skipped };
}
