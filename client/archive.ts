/**
 * The local side of `pull` and `push`: extracting the server's tar stream into a local
 * directory, safely, and packing a local directory into one. Loaded lazily (only these two
 * verbs need it).
 *
 * Extraction is the server's own (native/tree-writer.ts over core/tar-read.ts), beneath
 * LOCAL_DIR opened as a root of the beneath-root layer: every lookup is confined by the kernel
 * (openat2 RESOLVE_BENEATH), so a symlink leading out of LOCAL_DIR is created as the archive
 * says but never written through, also when one is swapped in while the pull runs. What the
 * local user may set follows core/set-rule.ts: root restores owners, set-id bits, every
 * extended attribute and device nodes (like `tar -xp` as root); anyone else keeps modes minus
 * set-id bits and `user.*` attributes, and device nodes are skipped with a warning.
 */
import { once } from 'node:events';
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { codeOf, isNullgateError } from '../core/errors.js';
import { joinRel } from '../core/rel-path.js';
import { setRule } from '../core/set-rule.js';
import { entryPath, unsafeEntry } from '../core/tar-entry.js';
import { readTar } from '../core/tar-read.js';
import { BeneathRoot } from '../native/beneath.js';
import { TreeWriter } from '../native/tree-writer.js';
import type { ProgressCallback } from './local-file.js';
import { LocalFileError } from './client-error.js';

type TarHeader = Parameters<tar.Pack['entry']>[0];

/** What a pull extracted. */
export interface PullResult {
  readonly files: number;
  readonly dirs: number;
  readonly symlinks: number;
  readonly bytes: number;
  /** Entries not extracted, each with the reason (device nodes, for a user who is not root). */
  readonly skipped: readonly { readonly name: string; readonly why: string }[];
}

/** LOCAL_DIR made (with its parents) if missing; true when it was made by this call. */
async function makeLocalDir(dir: string): Promise<boolean> {
  try {
    await fsp.mkdir(path.dirname(dir), { recursive: true });
    await fsp.mkdir(dir, { mode: 0o700 });
    return true;
  } catch (err) {
    if (codeOf(err) !== 'EEXIST') throw new LocalFileError('write', dir, err);
    return false;
  }
}

/**
 * Extracts a tar stream into `localDir` (created if missing). Never writes outside it: entries
 * leading through a symlink are refused, and the kernel confines every lookup beneath it.
 */
export async function extractTar(
  body: Readable,
  localDir: string,
  onProgress?: ProgressCallback,
): Promise<PullResult> {
  const dir = path.resolve(localDir);
  const created = await makeLocalDir(dir);
  let root: BeneathRoot;
  try {
    root = await BeneathRoot.open(dir);
  } catch (err) {
    throw new LocalFileError('write', dir, err);
  }
  const writer = { uid: process.geteuid?.() ?? -1, gid: process.getegid?.() ?? -1 };
  const skipped: { name: string; why: string }[] = [];
  const tree = new TreeWriter(root, '', created, {
    writer,
    rule: setRule(writer, writer),
    devices: 'skip',
    onSkip: (name, why) => skipped.push({ name, why }),
    ...(onProgress && { onBytes: (bytes: number) => onProgress(bytes, undefined) }),
  });
  let name = '';
  try {
    for await (const member of readTar(body)) {
      name = member.header.name;
      await tree.entry(member);
    }
    name = '';
    await tree.finish();
  } catch (err) {
    body.destroy();
    throw localError(err, dir, name);
  } finally {
    await root.close();
  }
  return { ...tree.counts, skipped };
}

/** A failure of the local side, named by its local path; refusals and transfer errors as they are. */
function localError(err: unknown, dir: string, name: string): unknown {
  if (
    isNullgateError(err) ||
    !(err instanceof Error) ||
    typeof (err as { syscall?: unknown }).syscall !== 'string'
  ) {
    return err;
  }
  const code = codeOf(err);
  // RESOLVE_BENEATH: the lookup met a symlink (or '..') leading out of LOCAL_DIR, which can
  // only be there when something changed the tree while the pull ran.
  if (name !== '' && (code === 'EXDEV' || code === 'ELOOP')) {
    return unsafeEntry(name, 'leads out of the destination through a symlink', err);
  }
  let rel = '';
  try {
    rel = name === '' ? '' : entryPath(name);
  } catch {
    rel = '';
  }
  const shown = (err as { path?: unknown }).path;
  const local = typeof shown === 'string' ? path.join(dir, shown) : path.join(dir, joinRel('', rel));
  return new LocalFileError('write', local, err);
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
