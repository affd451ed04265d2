/**
 * A streaming tar reader for extraction (`PUT /archive`, the client's `pull`): ustar and GNU
 * headers, pax extended headers (POSIX.1-2001 pax: `path`, `linkpath`, `size`, `uid`, `gid`,
 * `mtime` with nanoseconds, `SCHILY.xattr.*` as GNU tar and bsdtar write extended attributes),
 * GNU long names ('L', 'K') and GNU tar's pax sparse formats (1.0, which `tar --sparse` writes,
 * and the older 0.1 and 0.0).
 *
 * Written here rather than taken from tar-stream because extraction needs what it cannot give:
 * pax values as bytes (an xattr value such as security.capability is binary; tar-stream decodes
 * every record as UTF-8), the sparse map, nanosecond times, and device numbers kept whole.
 * Member data is handed on as slices of the chunks read, never copied.
 *
 * Nothing here touches the disk and nothing is judged safe or unsafe (core/tar-entry.ts does
 * that); malformed input is NG_ERR_ARCHIVE_INVALID.
 */
import { ngError, type NullgateError } from './errors.js';
import { bytesToName } from './name-bytes.js';
import { DELETE_RECORD } from './tar-header.js';

const BLOCK = 512;

/** The entry types extraction knows; anything else is 'unsupported' (with its typeflag). */
export type TarType =
  'file' | 'hardlink' | 'symlink' | 'char-device' | 'block-device' | 'dir' | 'fifo' | 'unsupported';

/** One piece of a sparse file's data: `size` bytes at `offset` of the file. */
export interface SparseSegment {
  readonly offset: number;
  readonly size: number;
}

export interface TarHeader {
  /** The member name as written (pax `path`, a GNU long name, or the ustar name and prefix). */
  readonly name: string;
  readonly type: TarType;
  /** The raw typeflag ('0', '5', 'S', …), for messages about unsupported types. */
  readonly typeflag: string;
  /** Permission bits (07777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Bytes of data stored in the archive for this member (after a sparse map, if any). */
  readonly size: number;
  /** Modification time in nanoseconds since the epoch (pax keeps them; ustar whole seconds). */
  readonly mtimeNs: bigint;
  readonly linkname: string;
  readonly devmajor: number;
  readonly devminor: number;
  /** Extended attributes (pax SCHILY.xattr.NAME), values as bytes. */
  readonly xattrs: ReadonlyMap<string, Buffer>;
  /** Set for a sparse member: its real size and where its data goes. */
  readonly sparse?: { readonly realSize: number; readonly map: readonly SparseSegment[] };
  /** A deletion record (pax `NULLGATE.delete=1`, core/tar-header.ts DELETE_RECORD). */
  readonly delete?: boolean;
}

export interface TarMember {
  readonly header: TarHeader;
  /**
   * The member's data with the position in the file each piece belongs at (sparse members
   * skip their holes). Read it before asking for the next member, or it is skipped.
   */
  pieces(): AsyncGenerator<{ readonly position: number; readonly data: Buffer }>;
}

function invalid(why: string): NullgateError {
  return ngError('NG_ERR_ARCHIVE_INVALID', `not a readable tar archive: ${why}`);
}

/** Reads exact byte counts from a stream of chunks. */
class Bytes {
  readonly #source: AsyncIterator<Uint8Array>;
  #chunk: Buffer = Buffer.alloc(0);
  #ended = false;
  /** Bytes consumed so far. */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.#source =
      Symbol.asyncIterator in source
        ? source[Symbol.asyncIterator]()
        : (async function* () {
            yield* source;
          })();
  }

  async #fill(): Promise<boolean> {
    while (this.#chunk.length === 0) {
      if (this.#ended) return false;
      const next = await this.#source.next();
      if (next.done === true) {
        this.#ended = true;
        return false;
      }
      const v = next.value;
      this.#chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
    return true;
  }

  /** Exactly `n` bytes; null at the end of the stream when none were left; throws when cut. */
  async take(n: number): Promise<Buffer | null> {
    if (!(await this.#fill())) return null;
    if (this.#chunk.length >= n) {
      const out = this.#chunk.subarray(0, n);
      this.#chunk = this.#chunk.subarray(n);
      this.position += n;
      return out;
    }
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      if (!(await this.#fill())) throw invalid('the archive ends inside a header or record');
      const part = this.#chunk.subarray(0, n - got);
      this.#chunk = this.#chunk.subarray(part.length);
      parts.push(part);
      got += part.length;
    }
    this.position += n;
    return Buffer.concat(parts, n);
  }

  /** The next `n` bytes as the slices they arrive in. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!(await this.#fill())) throw invalid(`the archive ends inside ${what}`);
      const part = this.#chunk.subarray(0, left);
      this.#chunk = this.#chunk.subarray(part.length);
      this.position += part.length;
      left -= part.length;
      yield part;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    for await (const part of this.stream(n, what)) void part;
  }

  /** Reads and drops the rest of the stream (after the end-of-archive blocks). */
  async drain(): Promise<void> {
    while (await this.#fill()) {
      this.position += this.#chunk.length;
      this.#chunk = Buffer.alloc(0);
    }
  }
}

/**
 * Bytes of a name as a string: UTF-8, and bytes that are not UTF-8 as lone surrogates
 * (core/name-bytes.ts), which the native layer turns back into the same bytes — so a name is
 * created exactly as the archive holds it (GNU tar writes such names with hdrcharset=BINARY).
 */
function utf8(bytes: Buffer): string {
  return bytesToName(bytes);
}

/** A NUL-terminated field as a string. */
function text(buf: Buffer, start: number, length: number): string {
  const field = buf.subarray(start, start + length);
  const end = field.indexOf(0);
  return utf8(end === -1 ? field : field.subarray(0, end));
}

/** An octal number field, or GNU base-256 (first byte 0x80 positive, 0xff negative). */
function number(buf: Buffer, start: number, length: number, what: string): number {
  const field = buf.subarray(start, start + length);
  const first = field[0] ?? 0;
  if (first === 0x80 || first === 0xff) {
    let value = 0n;
    for (let i = 1; i < field.length; i++) value = (value << 8n) | BigInt(field[i] ?? 0);
    if (first === 0xff) value -= 1n << BigInt(8 * (field.length - 1));
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER))
      throw invalid(`${what} out of range`);
    return Number(value);
  }
  const digits = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^[ \0]+/, '');
  if (digits === '') return 0;
  if (!/^[0-7]+$/.test(digits)) throw invalid(`bad ${what} field`);
  return Number.parseInt(digits, 8);
}

/** Header checksum: unsigned byte sum with the checksum field as spaces (or signed, as old tars). */
function checksumOk(block: Buffer): boolean {
  const stored = number(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 32 : (block[i] ?? 0);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function isZero(block: Buffer): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

/** Pax records (`"%d %s=%s\n"`, POSIX.1-2001 pax), values kept as bytes, in order. */
export function parsePax(data: Buffer): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) break;
    const space = data.indexOf(0x20, at);
    if (space === -1) throw invalid('bad pax record');
    const len = Number(data.subarray(at, space).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= space - at + 1 || at + len > data.length)
      throw invalid('bad pax record length');
    const record = data.subarray(space + 1, at + len);
    if (record[record.length - 1] !== 0x0a) throw invalid('pax record without its newline');
    const eq = record.indexOf(0x3d);
    if (eq === -1) throw invalid('pax record without "="');
    out.push([record.subarray(0, eq).toString('utf8'), record.subarray(eq + 1, record.length - 1)]);
    at += len;
  }
  return out;
}

function paxInt(value: Buffer, key: string): number {
  const s = value.toString('latin1');
  if (!/^-?\d+$/.test(s)) throw invalid(`bad pax ${key} "${s.slice(0, 40)}"`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw invalid(`pax ${key} out of range`);
  return n;
}

/** A pax time ("1700000000.123456789", maybe negative) as nanoseconds. */
export function paxTimeNs(value: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value);
  if (m === null) throw invalid(`bad pax time "${value.slice(0, 40)}"`);
  const frac = ((m[3] ?? '') + '000000000').slice(0, 9);
  const ns = BigInt(m[2] ?? '0') * 1_000_000_000n + BigInt(frac);
  return m[1] === '-' ? -ns : ns;
}

function typeOf(flag: string, name: string): TarType {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
      // Pre-POSIX tars mark directories only by a trailing slash.
      return name.endsWith('/') ? 'dir' : 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'char-device';
    case '4':
      return 'block-device';
    case '5':
    case 'D': // GNU dumpdir: a directory whose data lists its contents (ignored)
      return 'dir';
    case '6':
      return 'fifo';
    default:
      return 'unsupported';
  }
}

/** The extended-header state that applies to the next member. */
interface Pending {
  records: [string, Buffer][];
  longName?: string;
  longLink?: string;
}

/** Parses a GNU sparse 1.0 map: decimal numbers, one per line, count first, padded to blocks. */
async function readSparseMap(bytes: Bytes, name: string): Promise<{ map: SparseSegment[]; used: number }> {
  const numbers: number[] = [];
  let want: number | undefined;
  let used = 0;
  let carry = '';
  while (want === undefined || numbers.length < want) {
    const block = await bytes.take(BLOCK);
    if (block === null) throw invalid(`the archive ends inside the sparse map of "${name}"`);
    used += BLOCK;
    const lines = (carry + block.toString('latin1')).split('\n');
    carry = lines.pop() ?? '';
    for (const line of lines) {
      if (want !== undefined && numbers.length >= want) break;
      if (!/^\d+$/.test(line)) throw invalid(`bad sparse map in "${name}"`);
      const n = Number(line);
      if (!Number.isSafeInteger(n)) throw invalid(`sparse map of "${name}" out of range`);
      if (want === undefined) want = 1 + 2 * n;
      numbers.push(n);
    }
    // A map longer than any sane archive holds (1M segments) is refused rather than buffered.
    if (used > 1 << 25) throw invalid(`sparse map of "${name}" too long`);
    if (want !== undefined && numbers.length >= want) break;
    if (carry.length > 40) throw invalid(`bad sparse map in "${name}"`);
  }
  const map: SparseSegment[] = [];
  for (let i = 1; i < numbers.length; i += 2)
    map.push({ offset: numbers[i] ?? 0, size: numbers[i + 1] ?? 0 });
  return { map, used };
}

function checkSparse(name: string, map: readonly SparseSegment[], realSize: number, dataSize: number): void {
  let end = 0;
  let total = 0;
  for (const seg of map) {
    if (seg.offset < end) throw invalid(`sparse map of "${name}" is not in order`);
    end = seg.offset + seg.size;
    total += seg.size;
  }
  if (end > realSize) throw invalid(`sparse map of "${name}" goes past its size`);
  if (total !== dataSize) throw invalid(`sparse map of "${name}" does not match its data`);
}

function sparseOf(
  pax: Map<string, Buffer>,
  offsets: number[],
  numbytes: number[],
): { version: '1.0' | '0.x'; realSize: number; map?: SparseSegment[] } | undefined {
  const major = pax.get('GNU.sparse.major')?.toString('latin1');
  const minor = pax.get('GNU.sparse.minor')?.toString('latin1');
  if (major === '1' && minor === '0') {
    const real = pax.get('GNU.sparse.realsize');
    if (real === undefined) throw invalid('GNU sparse 1.0 member without GNU.sparse.realsize');
    return { version: '1.0', realSize: paxInt(real, 'GNU.sparse.realsize') };
  }
  if (major !== undefined) throw invalid(`unsupported GNU sparse format ${major}.${minor ?? '?'}`);
  const size = pax.get('GNU.sparse.size') ?? pax.get('GNU.sparse.realsize');
  const mapText = pax.get('GNU.sparse.map');
  if (mapText !== undefined) {
    const nums = mapText.toString('latin1') === '' ? [] : mapText.toString('latin1').split(',');
    if (nums.length % 2 !== 0) throw invalid('bad GNU.sparse.map');
    const map: SparseSegment[] = [];
    for (let i = 0; i < nums.length; i += 2) {
      map.push({
        offset: paxInt(Buffer.from(nums[i] ?? ''), 'GNU.sparse.map'),
        size: paxInt(Buffer.from(nums[i + 1] ?? ''), 'GNU.sparse.map'),
      });
    }
    if (size === undefined) throw invalid('GNU sparse 0.1 member without GNU.sparse.size');
    return { version: '0.x', realSize: paxInt(size, 'GNU.sparse.size'), map };
  }
  if (offsets.length > 0) {
    if (offsets.length !== numbytes.length) throw invalid('bad GNU sparse 0.0 map');
    if (size === undefined) throw invalid('GNU sparse 0.0 member without GNU.sparse.size');
    const map = offsets.map((offset, i) => ({ offset, size: numbytes[i] ?? 0 }));
    return { version: '0.x', realSize: paxInt(size, 'GNU.sparse.size'), map };
  }
  return undefined;
}

/**
 * The members of a tar stream, in order. Each must be read (`pieces()`) or left before asking
 * for the next; leaving skips its data. Ends at the end-of-archive blocks (two zero blocks),
 * after which the rest of the stream is read and dropped; a stream that ends without them is
 * truncated (NG_ERR_ARCHIVE_INVALID), as is one cut inside a member.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): AsyncGenerator<TarMember> {
  const bytes = new Bytes(source);
  let global: [string, Buffer][] = [];
  let pending: Pending = { records: [] };
  for (;;) {
    const block = await bytes.take(BLOCK);
    if (block === null) throw invalid('the archive is truncated (no end-of-archive blocks)');
    if (isZero(block)) {
      const second = await bytes.take(BLOCK);
      if (second === null || !isZero(second))
        throw invalid('the archive is truncated (no end-of-archive blocks)');
      await bytes.drain();
      return;
    }
    if (!checksumOk(block)) throw invalid('bad header checksum (is it a tar archive, or gzip cut short?)');
    const flag = String.fromCharCode(block[156] ?? 0);
    const stored = number(block, 124, 12, 'size');
    const magic = block.subarray(257, 263).toString('latin1');
    const ustar = magic === 'ustar\0';
    // The ustar name is decoded only when nothing overrides it (a pax path may stand for a
    // name that the ustar field holds cut short, in the middle of a character).
    const ustarName = (): string => {
      const base = text(block, 0, 100);
      const prefix = ustar ? text(block, 345, 155) : '';
      return prefix === '' ? base : `${prefix}/${base}`;
    };

    // Headers that describe the next member.
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (stored > 1 << 24) throw invalid(`extended header of ${stored} bytes`);
      const data = (await bytes.take(stored)) ?? Buffer.alloc(0);
      if (data.length !== stored) throw invalid('the archive ends inside an extended header');
      await bytes.skip(pad(stored), 'an extended header');
      if (flag === 'x') pending.records.push(...parsePax(data));
      else if (flag === 'g') global = [...global, ...parsePax(data)];
      else {
        const end = data.indexOf(0);
        const value = utf8(end === -1 ? data : data.subarray(0, end));
        if (flag === 'L') pending.longName = value;
        else pending.longLink = value;
      }
      continue;
    }

    const pax = new Map<string, Buffer>();
    const xattrs = new Map<string, Buffer>();
    const offsets: number[] = [];
    const numbytes: number[] = [];
    for (const [key, value] of [...global, ...pending.records]) {
      // An empty value removes the keyword (POSIX.1-2001 pax, "keyword=").
      if (key.startsWith('SCHILY.xattr.')) {
        const attr = key.slice('SCHILY.xattr.'.length);
        xattrs.set(attr, value);
      } else if (key === 'GNU.sparse.offset') offsets.push(paxInt(value, key));
      else if (key === 'GNU.sparse.numbytes') numbytes.push(paxInt(value, key));
      else if (value.length === 0) pax.delete(key);
      else pax.set(key, value);
    }
    const longName = pending.longName;
    const longLink = pending.longLink;
    pending = { records: [] };

    const sparse = sparseOf(pax, offsets, numbytes);
    const str = (key: string): string | undefined => {
      const value = pax.get(key);
      return value === undefined ? undefined : utf8(value);
    };
    const paxNumber = (key: string, fallback: number): number => {
      const value = pax.get(key);
      return value === undefined ? fallback : paxInt(value, key);
    };
    const name = str('GNU.sparse.name') ?? str('path') ?? longName ?? ustarName();
    const size = pax.has('size') ? paxInt(pax.get('size') ?? Buffer.alloc(0), 'size') : stored;
    const mtime = str('mtime');
    const header = {
      name,
      type: typeOf(flag, name),
      typeflag: flag,
      mode: number(block, 100, 8, 'mode') & 0o7777,
      uid: pax.has('uid') ? paxInt(pax.get('uid') ?? Buffer.alloc(0), 'uid') : number(block, 108, 8, 'uid'),
      gid: pax.has('gid') ? paxInt(pax.get('gid') ?? Buffer.alloc(0), 'gid') : number(block, 116, 8, 'gid'),
      size,
      mtimeNs:
        mtime !== undefined ? paxTimeNs(mtime) : BigInt(number(block, 136, 12, 'mtime')) * 1_000_000_000n,
      linkname: str('linkpath') ?? longLink ?? text(block, 157, 100),
      devmajor: paxNumber('SCHILY.devmajor', number(block, 329, 8, 'devmajor')),
      devminor: paxNumber('SCHILY.devminor', number(block, 337, 8, 'devminor')),
      xattrs,
      ...(str(DELETE_RECORD) === '1' && { delete: true }),
    };
    // Only regular files carry data that is written; other types' data (if any) is skipped.
    const hasData = header.type === 'file' || header.type === 'unsupported' || flag === 'D';
    const dataSize = hasData ? size : 0;
    let member: TarMember;
    if (sparse !== undefined && header.type === 'file') {
      let map = sparse.map;
      let mapBytes = 0;
      if (sparse.version === '1.0') {
        ({ map, used: mapBytes } = await readSparseMap(bytes, name));
        if (mapBytes > size) throw invalid(`sparse map of "${name}" larger than its member`);
      }
      const segments = map ?? [];
      checkSparse(name, segments, sparse.realSize, size - mapBytes);
      const dataLeft = size - mapBytes;
      const start = bytes.position;
      member = {
        header: { ...header, size: dataLeft, sparse: { realSize: sparse.realSize, map: segments } },
        pieces: () => sparsePieces(bytes.stream(dataLeft, `the data of "${name}"`), segments),
      };
      yield member;
      // Whatever of the data the consumer left unread is skipped.
      await bytes.skip(start + dataLeft + pad(size) - bytes.position, `the data of "${name}"`);
      continue;
    }
    const start = bytes.position;
    member = {
      header,
      pieces: async function* () {
        let position = 0;
        for await (const data of bytes.stream(dataSize, `the data of "${name}"`)) {
          yield { position, data };
          position += data.length;
        }
      },
    };
    yield member;
    await bytes.skip(start + size + pad(size) - bytes.position, `the data of "${name}"`);
  }
}

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Splits a sparse member's concatenated data over its map's segments. */
async function* sparsePieces(
  data: AsyncIterable<Buffer>,
  map: readonly SparseSegment[],
): AsyncGenerator<{ position: number; data: Buffer }> {
  let seg = 0;
  let within = 0;
  for await (let chunk of data) {
    while (chunk.length > 0) {
      const segment = map[seg];
      if (segment === undefined) return;
      const room = segment.size - within;
      if (room === 0) {
        seg++;
        within = 0;
        continue;
      }
      const part = chunk.subarray(0, room);
      yield { position: segment.offset + within, data: part };
      within += part.length;
      chunk = chunk.subarray(part.length);
    }
  }
}
