/**
 * The local side of `pull` and `push`: extracting the server's tar stream into a local
 * directory, safely, and packing a local directory into one. Loaded lazily (only these two
 * verbs need tar-stream).
 *
 * Extraction refuses what a hostile or confused archive could use to write outside LOCAL_DIR:
 * absolute names, `..`, symlinks pointing outside, entries that lead through a symlink that an
 * earlier entry (or the local tree) put there, devices and FIFOs. Files are created with
 * O_NOFOLLOW | O_EXCL after removing whatever non-directory stood there, so a planted symlink
 * at the final name is never followed.
 */
import { once } from 'node:events';
import { constants as fsc, createReadStream, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { ngError } from '../core/errors.js';
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

function unsafe(name: string, why: string): Error {
  return ngError('NG_ERR_ARCHIVE_UNSAFE', `refusing archive entry "${name}": ${why}`);
}

/** The entry name as a clean relative path ('' for the directory itself); throws when unsafe. */
export function safeRelative(name: string): string {
  if (name.includes('\0')) throw unsafe(name, 'NUL byte in name');
  if (name.startsWith('/')) throw unsafe(name, 'absolute path');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafe(name, "'..' in path");
  return parts.join('/');
}

/** True when `target` is `root` or beneath it (both absolute and normalised). */
function within(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** A symlink's target must stay inside LOCAL_DIR when resolved from the link's directory. */
export function safeLinkTarget(root: string, rel: string, linkname: string): void {
  if (linkname.includes('\0')) throw unsafe(rel, 'NUL byte in link target');
  if (path.isAbsolute(linkname)) throw unsafe(rel, `link to an absolute path (${linkname})`);
  const resolved = path.resolve(root, path.dirname(rel), linkname);
  if (!within(root, resolved)) throw unsafe(rel, `link leads outside the target directory (${linkname})`);
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
  /** Directories known to be real directories (not symlinks) under root. */
  readonly #dirs = new Set<string>();
  readonly #dirTimes: [string, Date][] = [];
  files = 0;
  dirs = 0;
  symlinks = 0;
  bytes = 0;

  constructor(root: string) {
    this.root = root;
    this.#dirs.add(root);
  }

  /** Makes sure every parent of `rel` is a real directory (creating missing ones). */
  async parents(rel: string): Promise<void> {
    const parts = rel.split('/').slice(0, -1);
    let dir = this.root;
    for (const part of parts) {
      dir = path.join(dir, part);
      if (this.#dirs.has(dir)) continue;
      const st = await lstatOrUndefined(dir);
      if (st === undefined) {
        await this.#mkdir(dir, 0o755);
      } else if (st.isSymbolicLink()) {
        throw unsafe(rel, `leads through a symlink (${path.relative(this.root, dir)})`);
      } else if (!st.isDirectory()) {
        throw unsafe(rel, `a parent is not a directory (${path.relative(this.root, dir)})`);
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

  /** Removes a non-directory at `dest` so the entry replaces it; a directory in the way is a conflict. */
  async #clear(dest: string, rel: string): Promise<void> {
    const st = await lstatOrUndefined(dest);
    if (st === undefined) return;
    if (st.isDirectory()) throw unsafe(rel, 'a directory is in the way');
    try {
      await fsp.unlink(dest);
    } catch (err) {
      throw new LocalFileError('write', dest, err);
    }
  }

  async directory(rel: string, dest: string, header: TarHeader): Promise<void> {
    const mode = (header.mode ?? 0o755) & 0o777;
    const st = await lstatOrUndefined(dest);
    if (st?.isSymbolicLink() || (st && !st.isDirectory())) {
      await this.#clear(dest, rel);
      await this.#mkdir(dest, mode);
    } else if (st === undefined) {
      await this.#mkdir(dest, mode);
      this.dirs++;
    }
    this.#dirs.add(dest);
    // Directory times are set last: writing entries into a directory changes its mtime.
    if (header.mtime) this.#dirTimes.push([dest, header.mtime]);
  }

  async file(
    dest: string,
    rel: string,
    header: TarHeader,
    entry: AsyncIterable<Buffer>,
    onProgress: ProgressCallback | undefined,
  ): Promise<void> {
    await this.#clear(dest, rel);
    const mode = (header.mode ?? 0o644) & 0o777;
    let fh: FileHandle;
    try {
      fh = await fsp.open(dest, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
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

  async symlink(dest: string, rel: string, header: TarHeader): Promise<void> {
    const linkname = header.linkname ?? '';
    safeLinkTarget(this.root, rel, linkname);
    await this.#clear(dest, rel);
    try {
      await fsp.symlink(linkname, dest);
    } catch (err) {
      throw new LocalFileError('write', dest, err);
    }
    if (header.mtime) await fsp.lutimes(dest, header.mtime, header.mtime).catch(() => undefined);
    this.symlinks++;
  }

  async hardlink(dest: string, rel: string, header: TarHeader): Promise<void> {
    const targetRel = safeRelative(header.linkname ?? '');
    if (targetRel === '') throw unsafe(rel, 'hard link to the directory itself');
    await this.parents(targetRel);
    const target = path.join(this.root, targetRel);
    const st = await lstatOrUndefined(target);
    if (!st?.isFile())
      throw unsafe(rel, `hard link to something that is not an extracted file (${header.linkname})`);
    await this.#clear(dest, rel);
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
      const rel = safeRelative(header.name);
      const type = header.type ?? 'file';
      if (rel === '') {
        if (type !== 'directory') throw unsafe(header.name, 'names the target directory itself');
        entry.resume();
        continue;
      }
      await x.parents(rel);
      const dest = path.join(x.root, rel);
      switch (type) {
        case 'directory':
          await x.directory(rel, dest, header);
          break;
        case 'file':
        case 'contiguous-file':
          await x.file(dest, rel, header, entry as AsyncIterable<Buffer>, onProgress);
          break;
        case 'symlink':
          await x.symlink(dest, rel, header);
          break;
        case 'link':
          await x.hardlink(dest, rel, header);
          break;
        default:
          throw unsafe(header.name, `${type} entries are not extracted`);
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
    const dir = rel === '' ? root : path.join(root, rel);
    let names: string[];
    try {
      names = (await fsp.readdir(dir)).sort();
    } catch (err) {
      throw new LocalFileError('read', dir, err);
    }
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
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
