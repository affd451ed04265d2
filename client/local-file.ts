/**
 * Where downloaded bytes land (`get -o`, `request -o`). A regular file is replaced atomically:
 * the bytes go to an anonymous file (O_TMPFILE) in the same directory, named over the target
 * only when complete, so a failed transfer leaves the old file (or none) and nothing else, also
 * when the process is interrupted or killed (the kernel frees an anonymous file with its last
 * fd). Where the file system has no O_TMPFILE, a temporary name takes its place, removed on
 * failure (but left by an interrupt or a kill). Anything that is not a regular file (`/dev/null`,
 * a FIFO, a terminal) is written in place, as curl does: renaming over it would replace the
 * device node itself. Errors name the file as the user gave it.
 */
import { closeSync, constants as fsc, createWriteStream, openSync } from 'node:fs';
import { constants as osc } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { bytesToName, fsPath } from '../core/name-bytes.js';
import { native, systemError } from '../native/binding.js';
import * as fsa from './fs-calls.js';
import { LocalFileError, PartialTransferError, isAbort, writeError } from './client-error.js';
import type { BodyReceipt, ResponseBody } from './transport.js';

const { EEXIST, ENOENT, EPERM } = osc.errno;

/** Called as bytes move: `done` so far (including a resumed offset), `total` when known. */
export type ProgressCallback = (done: number, total: number | undefined) => void;

export interface LocalTarget {
  /** The name as the user gave it, for messages. */
  readonly shown: string;
  /** The file to write: the destination, or what a symlink there points to. */
  readonly path: string;
  /** Not a regular file: written in place, never renamed over. */
  readonly inPlace: boolean;
  /** Size of the existing regular file (0 if none): where `-C -` resumes. */
  readonly size: number;
  /** Its mtime in nanoseconds (undefined if none): the validator `-C -` resumes on (resume.ts). */
  readonly mtimeNs: bigint | undefined;
}

export interface SaveOptions {
  readonly onProgress?: ProgressCallback | undefined;
  /** Bytes already in the file (a resumed download), added to what onProgress reports. */
  readonly offset?: number | undefined;
  /** This body's announced length, for onProgress and for a PartialTransferError. */
  readonly length?: number | undefined;
  /**
   * Called once every byte is written, before the file gets the target's name (so it never
   * appears with other bits): with the anonymous file's fd, or the temporary's path; else with
   * the target's path (an append). Not for a target that is not a regular file.
   */
  readonly finish?: ((file: string | number) => Promise<void>) | undefined;
}

/**
 * A temporary name beside `file`, so the final rename stays in one file system. It is created
 * with O_EXCL (`wx`: never an existing file, never through a symlink), so the suffix only has
 * to be unlikely to collide; Math.random spares the CLI loading node:crypto (~5 ms).
 */
export function tempNameFor(file: string): string {
  const suffix = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  return path.join(path.dirname(file), `.${path.basename(file)}.${suffix}.part`);
}

/** Looks at what is at `file` now: nothing or a regular file (replace it), a directory (refuse), anything else (write in place). */
export async function localTarget(file: string): Promise<LocalTarget> {
  const dest = path.resolve(file);
  const st = await fsa.stat(fsPath(dest), { bigint: true }).catch(() => undefined);
  // Missing, unreadable or a dangling link: creating the temporary file reports what is wrong.
  if (st === undefined) return { shown: file, path: dest, inPlace: false, size: 0, mtimeNs: undefined };
  if (st.isDirectory()) {
    throw new LocalFileError(
      'write',
      file,
      Object.assign(new Error('is a directory'), { code: 'EISDIR' }),
      'is a directory',
    );
  }
  if (!st.isFile()) return { shown: file, path: dest, inPlace: true, size: 0, mtimeNs: undefined };
  // Through a symlink, replace the file it points to and keep the link, as writing through it would.
  return {
    shown: file,
    path: bytesToName(await fsa.realpath(fsPath(dest), { encoding: 'buffer' })),
    inPlace: false,
    size: Number(st.size),
    mtimeNs: st.mtimeNs,
  };
}

/**
 * Bytes the file stream buffers before it waits for the disk: the socket delivers 64 KiB chunks,
 * and writing each on its own (the 16 KiB default) costs a thread-pool round trip per chunk.
 */
const WRITE_HIGH_WATER = 1024 * 1024;
/** Positional writes a regular file may have in flight at once (see positionalSink). */
const WRITES_IN_FLIGHT = 4;

/** All of `data`, from offset `at` of the file, or in order at no position when `at` is null. */
async function writeFully(fd: number, data: Buffer, at: number | null): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await fsa.write(
      fd,
      data,
      done,
      data.length - done,
      at === null ? null : at + done,
    );
    done += bytesWritten;
  }
}

/**
 * A Writable into a regular file at explicit offsets from `start`, batching chunks to 1 MiB and
 * keeping up to WRITES_IN_FLIGHT writes on the thread pool at once: one write at a time leaves
 * the socket idle while each batch goes to disk (a 1 GiB download took 1.6× curl's time), and
 * pwrite needs no shared file position. Destroyed mid-way, it still writes the batch it holds.
 * It never closes the fd, and it finishes (or
 * finishes being destroyed) only when every write it started has settled, so the caller may
 * close the fd then.
 */
function positionalSink(fd: number, start: number): Writable {
  let position = start;
  let inFlight = 0;
  let failed: Error | undefined;
  let batch: Buffer[] = [];
  let batched = 0;
  let heldCallback: (() => void) | undefined;
  const whenIdle: (() => void)[] = [];
  const launch = (): void => {
    if (batched === 0) return;
    const data = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batched);
    batch = [];
    batched = 0;
    const at = position;
    position += data.length;
    inFlight++;
    writeFully(fd, data, at)
      .catch((err: unknown) => {
        failed ??= err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => {
        inFlight--;
        const held = heldCallback;
        heldCallback = undefined;
        held?.();
        if (inFlight === 0) for (const f of whenIdle.splice(0)) f();
      });
  };
  const afterAll = (f: () => void): void => {
    if (inFlight === 0) f();
    else whenIdle.push(f);
  };
  const { Writable } = process.getBuiltinModule('node:stream');
  return new Writable({
    highWaterMark: WRITE_HIGH_WATER,
    write(chunk: Buffer, _encoding, callback) {
      if (failed) {
        callback(failed);
        return;
      }
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= WRITE_HIGH_WATER) launch();
      if (inFlight >= WRITES_IN_FLIGHT) heldCallback = () => callback(failed);
      else callback();
    },
    final(callback) {
      launch();
      afterAll(() => callback(failed));
    },
    destroy(err, callback) {
      // The source failed (a cut transfer): what arrived is still written, so a resumed download
      // (written in place) keeps every byte it got for the next try.
      if (!failed) launch();
      afterAll(() => callback(err));
    },
  });
}

/**
 * A body already whole in memory (TransportResponse.whole: a small answer of the blocking
 * transport) into `file` opened with `flags`, with plain fs calls: no stream is made, so a small
 * `get -o` does not load node:stream (docs/performance.md, "Client start-up"). Failures of the
 * file become LocalFileError naming `shown`.
 */
async function writeWhole(
  data: Buffer,
  file: string,
  flags: string,
  shown: string,
  options: SaveOptions,
  opened: number | undefined,
): Promise<number> {
  let fd: number | undefined;
  try {
    if (opened !== undefined) {
      await writeFully(opened, data, 0);
    } else {
      // 'a' writes at the file's end as writeTo's JS path does: at explicit offsets from its size.
      fd = await fsa.open(fsPath(file), flags === 'a' ? fsc.O_WRONLY | fsc.O_CREAT : flags);
      // In place ('w': a FIFO, a terminal, /dev/null): in order, at no position.
      const start = flags === 'a' ? (await fsa.fstat(fd)).size : flags === 'w' ? null : 0;
      await writeFully(fd, data, start);
      // A close can report a write the kernel deferred (NFS, quotas): it is part of the write.
      const closing = fd;
      fd = undefined;
      await fsa.close(closing);
    }
  } catch (err) {
    throw writeError(shown, err);
  } finally {
    if (fd !== undefined) await fsa.close(fd).catch(() => undefined);
  }
  const offset = options.offset ?? 0;
  options.onProgress?.(
    offset + data.length,
    options.length === undefined ? undefined : offset + options.length,
  );
  return data.length;
}

/**
 * Streams `source` (a response body, or the whole of one: writeWhole) into `file` opened with
 * `flags`, or into `opened` (an fd the caller opened and closes: written from offset 0). Failures
 * of the file become LocalFileError naming `shown`; a failing source (the connection, mid-body)
 * becomes PartialTransferError, unless it was an abort the caller asked for.
 */
async function writeTo(
  source: AsyncIterable<Buffer> | Buffer,
  file: string,
  flags: string,
  shown: string,
  options: SaveOptions,
  opened?: number,
): Promise<number> {
  if (Buffer.isBuffer(source)) return writeWhole(source, file, flags, shown, options, opened);
  const body: AsyncIterable<Buffer> = source;
  const { pipeline } = process.getBuiltinModule('node:stream/promises');
  const offset = options.offset ?? 0;
  const total = options.length === undefined ? undefined : offset + options.length;
  let bytes = 0;
  let sourceError: { err: unknown } | undefined;
  // When the file fails first, leaving the loop below destroys an undici body, which then emits
  // UND_ERR_ABORTED: heard here, so it cannot crash the process.
  (body as Partial<Readable>).on?.('error', () => undefined);
  async function* counted(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of body) {
        bytes += chunk.length;
        options.onProgress?.(offset + bytes, total);
        yield chunk;
      }
    } catch (err) {
      sourceError = { err };
      throw err;
    }
  }
  let fd: number | undefined;
  try {
    if (flags === 'w') {
      // In place, not a regular file (a FIFO, a terminal, /dev/null): written in order.
      await pipeline(counted, createWriteStream(fsPath(file), { flags, highWaterMark: WRITE_HIGH_WATER }));
    } else {
      const receive = (source as Partial<ResponseBody>).receiveInto?.bind(source);
      // 'a' (resume) appends at the current end. The JS path writes at explicit offsets, which
      // O_APPEND would ignore; the native thread writes at the fd's offset, and O_APPEND (which
      // it handles: native/receive.cc) is what puts that at the end.
      const append = fsc.O_WRONLY | fsc.O_CREAT | (receive === undefined ? 0 : fsc.O_APPEND);
      fd = opened ?? (await fsa.open(fsPath(file), flags === 'a' ? append : flags));
      const start = flags === 'a' ? (await fsa.fstat(fd)).size : 0;
      const receipt = receive === undefined ? undefined : await receiveReporting(receive, fd, start, options);
      if (receipt !== undefined) {
        bytes = receipt.bytes;
        if (receipt.connectionError !== undefined) {
          sourceError = { err: receipt.connectionError };
          throw receipt.connectionError;
        }
        if (receipt.fileError !== undefined) throw receipt.fileError;
      } else {
        if (receive !== undefined && flags === 'a') {
          // Declined (nothing was taken): the JS path, on an fd without O_APPEND.
          const appending = fd;
          fd = undefined;
          await fsa.close(appending);
          fd = await fsa.open(fsPath(file), fsc.O_WRONLY | fsc.O_CREAT);
        }
        await pipeline(counted, positionalSink(fd, start));
      }
      // A close can report a write the kernel deferred (NFS, quotas): it is part of the write.
      const closing = fd;
      fd = undefined;
      if (closing !== opened) await fsa.close(closing);
    }
  } catch (err) {
    if (sourceError === undefined) throw writeError(shown, err);
    if (isAbort(sourceError.err)) throw sourceError.err;
    throw new PartialTransferError(bytes, options.length, sourceError.err);
  } finally {
    if (fd !== undefined && fd !== opened) await fsa.close(fd).catch(() => undefined);
  }
  return bytes;
}

/** How often a native receive's progress is looked at (the thread cannot call JS per chunk). */
const PROGRESS_POLL_MS = 100;

/**
 * ResponseBody.receiveInto into `fd` (positioned at `start`), reporting progress as the file
 * grows: the native thread cannot call JS per chunk, so onProgress hears the file's size every
 * PROGRESS_POLL_MS, and the exact count once the body is in. A failure to start it (the addon
 * refused) is a file error.
 */
async function receiveReporting(
  receive: (fd: number) => Promise<BodyReceipt | undefined>,
  fd: number,
  start: number,
  options: SaveOptions,
): Promise<BodyReceipt | undefined> {
  const { onProgress } = options;
  const offset = options.offset ?? 0;
  const total = options.length === undefined ? undefined : offset + options.length;
  let settled = false;
  const poll =
    onProgress === undefined
      ? undefined
      : setInterval(() => {
          fsa.fstat(fd).then(
            (st) => {
              if (!settled) onProgress(offset + Math.max(0, st.size - start), total);
            },
            () => undefined,
          );
        }, PROGRESS_POLL_MS);
  try {
    const receipt = await receive(fd);
    settled = true;
    if (receipt !== undefined && receipt.connectionError === undefined && receipt.fileError === undefined) {
      onProgress?.(offset + receipt.bytes, total);
    }
    return receipt;
  } finally {
    settled = true;
    clearInterval(poll);
  }
}

async function finishFile(file: string | number, shown: string, options: SaveOptions): Promise<void> {
  try {
    await options.finish?.(file);
  } catch (err) {
    throw writeError(shown, err);
  }
}

/**
 * Saves `source` to `target`: appended (a resumed download), written in place (not a regular
 * file), or through an anonymous file (else a temporary one) named over the target when
 * complete. Returns the bytes written.
 */
export async function saveTo(
  target: LocalTarget,
  source: AsyncIterable<Buffer> | Buffer,
  how: 'replace' | 'append',
  options: SaveOptions = {},
): Promise<number> {
  if (target.inPlace)
    return writeTo(source, target.path, how === 'append' ? 'a' : 'w', target.shown, options);
  if (how === 'append') {
    const bytes = await writeTo(source, target.path, 'a', target.shown, options);
    await finishFile(target.path, target.shown, options);
    return bytes;
  }
  const anonymous = await openAnonymous(target);
  if (anonymous !== undefined) return saveAnonymous(anonymous, target, source, options);
  return saveThroughTemporary(target, (temp) => writeTo(source, temp, 'wx', target.shown, options), options);
}

/**
 * An anonymous file (O_TMPFILE, O_RDWR) in the target's directory, or undefined where its file
 * system has none (EOPNOTSUPP; EISDIR from kernels before 3.11, which open the directory).
 */
async function openAnonymous(target: LocalTarget): Promise<number | undefined> {
  try {
    return await fsa.open(
      fsPath(path.dirname(target.path)),
      native.fsConstants.O_TMPFILE | fsc.O_RDWR,
      0o666,
    );
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EOPNOTSUPP' || code === 'EISDIR' || code === 'EINVAL') return undefined;
    throw writeError(target.shown, err);
  }
}

/** `source` into the anonymous file `fd`, its metadata, then the target's name for it. Closes `fd`. */
async function saveAnonymous(
  fd: number,
  target: LocalTarget,
  source: AsyncIterable<Buffer> | Buffer,
  options: SaveOptions,
): Promise<number> {
  let open = true;
  try {
    const bytes = await writeTo(source, target.path, 'wx', target.shown, options, fd);
    await finishFile(fd, target.shown, options);
    await nameAnonymous(fd, target, options);
    open = false;
    // A close can report a write the kernel deferred (quotas): it is part of the write.
    await fsa.close(fd).catch((err: unknown) => {
      throw writeError(target.shown, err);
    });
    return bytes;
  } finally {
    if (open) await fsa.close(fd).catch(() => undefined);
  }
}

/**
 * Names the anonymous file `fd` at the target: one link where there was no file, else replacing
 * what is there in one rename (a link to a hidden name first: native/fs_ops.cc fs_link_tmpfile).
 * Naming an fd needs Linux 6.10, CAP_DAC_READ_SEARCH or /proc (which a chroot may lack): without
 * them, its bytes are copied to a temporary file instead, renamed over the target as on a file
 * system without O_TMPFILE.
 */
async function nameAnonymous(fd: number, target: LocalTarget, options: SaveOptions): Promise<void> {
  // Opened and closed synchronously: a directory open waits for no disk, and a thread-pool
  // round trip each would add to a short `get`'s start-up.
  let dir: number;
  try {
    dir = openSync(fsPath(path.dirname(target.path)), native.fsConstants.O_PATH | fsc.O_DIRECTORY);
  } catch (err) {
    throw writeError(target.shown, err);
  }
  const name = path.basename(target.path);
  let rc: number;
  try {
    // Where there was no file, one link names it (EEXIST if one appeared meanwhile: replaced then).
    rc = target.mtimeNs === undefined ? await native.fsLinkTmpfile(fd, dir, name, false) : -EEXIST;
    if (rc === -EEXIST) rc = await native.fsLinkTmpfile(fd, dir, name, true);
  } finally {
    closeSync(dir);
  }
  if (rc === 0) return;
  if (rc !== -ENOENT && rc !== -EPERM) {
    throw writeError(target.shown, systemError(rc, 'link', { path: target.path }));
  }
  await saveThroughTemporary(
    target,
    (temp) =>
      copyFile(fd, temp).catch((err: unknown) => {
        throw writeError(target.shown, err);
      }),
    options,
  );
}

/** The bytes of `fd` (from offset 0) into a new file `temp`. */
async function copyFile(fd: number, temp: string): Promise<number> {
  const out = await fsa.open(fsPath(temp), 'wx');
  let at = 0;
  try {
    const buf = Buffer.allocUnsafe(WRITE_HIGH_WATER);
    for (;;) {
      const { bytesRead } = await fsa.read(fd, buf, 0, buf.length, at);
      if (bytesRead === 0) break;
      await writeFully(out, buf.subarray(0, bytesRead), at);
      at += bytesRead;
    }
  } catch (err) {
    await fsa.close(out).catch(() => undefined);
    throw err;
  }
  // A close can report a write the kernel deferred (NFS, quotas): it is part of the write.
  await fsa.close(out);
  return at;
}

/**
 * `write(temp)` into a temporary name beside the target (its failures already shaped as
 * LocalFileError, PartialTransferError or an abort), its metadata, and a rename over the target;
 * the temporary is removed on failure.
 */
async function saveThroughTemporary(
  target: LocalTarget,
  write: (temp: string) => Promise<number>,
  options: SaveOptions,
): Promise<number> {
  const temp = tempNameFor(target.path);
  try {
    const bytes = await write(temp);
    await finishFile(temp, target.shown, options);
    try {
      await fsa.rename(fsPath(temp), fsPath(target.path));
    } catch (err) {
      throw writeError(target.shown, err);
    }
    return bytes;
  } catch (err) {
    await fsa.rm(fsPath(temp), { force: true }).catch(() => undefined);
    throw err;
  }
}
