/**
 * Tar archives for tests, built in memory with tar-stream from explicit headers — including
 * archives GNU tar would refuse to make (absolute names, `..`, links out, devices) — and read
 * back the same way. The one packer every test uses (a test that must send a member only in
 * part, to be cut mid-entry, streams its own tar.pack()).
 */
import { Readable } from 'node:stream';

import tar from 'tar-stream';

/** A header as tar-stream's pack takes it. */
export type TarHeaderSpec = Parameters<tar.Pack['entry']>[0];

/** One member to pack: its header and, for files, its data. */
export interface TarSpec {
  header: TarHeaderSpec;
  body?: string | Buffer;
}

/** A member read back: its header and its data (empty for entries without data). */
export interface TarMember {
  header: tar.Header;
  body: Buffer;
}

/** The archive of `entries` (with its end-of-archive blocks) as one buffer. */
export async function packEntries(entries: readonly TarSpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  // Read while writing: an entry's callback waits until the pack's buffer has room.
  const collected = (async () => {
    for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  })();
  for (const { header, body } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (body === undefined) pack.entry(header, done);
      else pack.entry(header, typeof body === 'string' ? Buffer.from(body) : body, done);
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** The archive of `entries` as a Node stream, the way a response body arrives. */
export async function tarStream(entries: readonly TarSpec[]): Promise<Readable> {
  return Readable.from([await packEntries(entries)]);
}

/** The members of an archive in memory, in order. */
export async function listTar(buf: Buffer): Promise<TarMember[]> {
  const extract = tar.extract();
  const members: TarMember[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
      members.push({ header: entry.header, body: Buffer.concat(chunks) });
    }
  })();
  extract.end(buf);
  await done;
  return members;
}

/**
 * `buf` with the typeflag of the header block at `offset` replaced by `flag` (say 'S', GNU
 * sparse, which tar-stream cannot write) and its checksum recomputed (POSIX.1-2001 ustar: the
 * byte sum of the block with the checksum field read as spaces, in six octal digits, NUL, space).
 */
export function withTypeflag(buf: Buffer, flag: string, offset = 0): Buffer {
  const out = Buffer.from(buf);
  const block = out.subarray(offset, offset + 512);
  block.write(flag, 156, 1, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return out;
}
