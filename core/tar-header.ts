/**
 * A tar header encoder for `GET /archive` (and anyone who writes tar): POSIX.1-2001 pax, the
 * format GNU tar writes with `--format=pax` and what bsdtar and Python's `tarfile` read.
 *
 * Each member is a ustar header (POSIX.1-1988: octal fields, `ustar\0` `00`), preceded by a
 * pax extended header ('x') when ustar cannot say everything: names and link targets that do
 * not fit or are not ASCII (`path`, `linkpath`; raw bytes with `hdrcharset=BINARY` when not
 * UTF-8), nanosecond mtimes (`mtime`), sizes from 8 GiB and ids over 2097151 (`size`, `uid`,
 * `gid`), device numbers over 2097151 (`SCHILY.devmajor`, `SCHILY.devminor`), extended
 * attributes (`SCHILY.xattr.NAME`, values as raw bytes: records are length-prefixed, so binary
 * values such as security.capability need no escaping), and GNU tar's pax sparse format 1.0
 * (`GNU.sparse.major=1`, `minor=0`, `name`, `realsize`; the map as decimal lines at the start of
 * the member's data, see `sparseMapBlock`).
 *
 * Everything here is pure and deterministic: the same input gives the same bytes (no pid in the
 * pax header's name, no atime or ctime), so the same tree archives to the same bytes twice.
 * The mode field carries every bit of 07777 as given — 0000 stays 0000.
 */
import { isUtf8 } from 'node:buffer';

import { nameToBytes } from './name-bytes.js';

export const BLOCK = 512;

/** Two zero blocks end an archive (POSIX.1-2001 ustar). */
export const END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK);

/** ustar typeflags nullgate writes. */
export const TYPEFLAG = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
} as const;

export type Typeflag = (typeof TYPEFLAG)[keyof typeof TYPEFLAG];

/** One piece of a sparse file's data: `size` bytes at `offset`. */
export interface SparseSegment {
  readonly offset: number;
  readonly size: number;
}

export interface HeaderSpec {
  /**
   * The member name; a directory's ends with '/'. Bytes are written as given; a string as its
   * bytes (core/name-bytes.ts), so names read from disk that are not UTF-8 keep their bytes.
   */
  readonly name: string | Buffer;
  readonly typeflag: Typeflag;
  /** Permission bits; only 07777 is kept. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** The bytes of data that follow the header in the archive (for a sparse file: map + data). */
  readonly size: number;
  /** Modification time in nanoseconds since the epoch. */
  readonly mtimeNs: bigint;
  /** Symlink target, or the earlier member a hard link names. */
  readonly linkname?: string | Buffer;
  readonly devmajor?: number;
  readonly devminor?: number;
  /** Extended attributes, written in the order given (give them in byte order of names). */
  readonly xattrs?: readonly { readonly name: string; readonly value: Buffer }[];
  /** A sparse file (GNU 1.0): its real size. The map itself is in the data (`sparseMapBlock`). */
  readonly sparse?: { readonly realSize: number };
  /** A deletion record of a sync push (`NULLGATE.delete=1`, see DELETE_RECORD). */
  readonly delete?: boolean;
}

/**
 * The pax keyword of a deletion record: a member carrying `NULLGATE.delete=1` (a zero-size
 * regular file in ustar terms) asks `PUT /archive/<dir>?sync=1` to delete its path, whatever is
 * there (a whole directory too), inside the same all-or-nothing merge. Any other PUT refuses it.
 */
export const DELETE_RECORD = 'NULLGATE.delete';

const MAX_OCTAL7 = 0o7777777;
const MAX_OCTAL11 = 0o77777777777;
const NS = 1_000_000_000n;

/** A name's bytes: strings through core/name-bytes.ts (a name that was not UTF-8 gets its bytes back). */
function bytesOf(s: string | Buffer): Buffer {
  return typeof s === 'string' ? nameToBytes(s) : s;
}

function isAscii(b: Buffer): boolean {
  for (const byte of b) if (byte >= 0x80) return false;
  return true;
}

/**
 * One pax record: "LEN KEY=VALUE\n", where LEN counts the whole record, its own digits
 * included (POSIX.1-2001 pax, "pax Extended Header File Format"). The value is raw bytes.
 */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), bytesOf(value), Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/**
 * A time in ns as pax writes it: seconds, and a fraction without trailing zeros when there
 * is one ("1700000000.5", "-1.5" for 1.5 s before the epoch), as GNU tar does.
 */
export function paxTime(ns: bigint): string {
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  const sec = abs / NS;
  const frac = (abs % NS).toString().padStart(9, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${sec}${frac === '' ? '' : `.${frac}`}`;
}

/** Floor division of ns into whole seconds (for the ustar mtime field). */
function floorSeconds(ns: bigint): bigint {
  const q = ns / NS;
  return ns < 0n && q * NS !== ns ? q - 1n : q;
}

/** An octal field of `width` bytes: width-1 digits and a NUL; `undefined` when it does not fit. */
function octal(value: number | bigint, width: number): Buffer | undefined {
  const digits = value.toString(8);
  if (typeof value === 'bigint' ? value < 0n : value < 0) return undefined;
  if (digits.length > width - 1) return undefined;
  return Buffer.from(`${digits.padStart(width - 1, '0')}\0`, 'latin1');
}

function put(block: Buffer, at: number, width: number, data: Buffer): void {
  data.copy(block, at, 0, Math.min(width, data.length));
}

/**
 * Splits a name into ustar's prefix (155 bytes) and name (100 bytes) at a '/', or undefined
 * when it cannot be split so.
 */
function ustarSplit(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (name.length <= 100) return { prefix: Buffer.alloc(0), name };
  if (name.length > 256) return undefined;
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    if (i > 155) continue;
    const rest = name.subarray(i + 1);
    if (rest.length === 0 || rest.length > 100) return undefined;
    return { prefix: name.subarray(0, i), name: rest };
  }
  return undefined;
}

/** "dir/PaxHeaders/base" (GNU tar's default `%d/PaxHeaders/%f`, "." for a top-level name). */
function derivedName(name: Buffer, middle: string): Buffer {
  const trimmed = name.length > 1 && name[name.length - 1] === 0x2f ? name.subarray(0, -1) : name;
  const slash = trimmed.lastIndexOf(0x2f);
  const dir = slash < 0 ? Buffer.from('.') : trimmed.subarray(0, slash);
  const base = slash < 0 ? trimmed : trimmed.subarray(slash + 1);
  return Buffer.concat([dir, Buffer.from(`/${middle}/`), base]);
}

/** A name for a ustar header: split into prefix and name, else its first 100 bytes. */
function fitName(name: Buffer): { prefix: Buffer; name: Buffer } {
  return ustarSplit(name) ?? { prefix: Buffer.alloc(0), name: name.subarray(0, 100) };
}

interface UstarFields {
  name: Buffer;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: bigint;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
}

/** One 512-byte ustar header. Values that do not fit their field are written as 0. */
function ustarBlock(f: UstarFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  const { prefix, name } = fitName(f.name);
  put(block, 0, 100, name);
  put(block, 100, 8, octal(f.mode & 0o7777, 8)!);
  put(block, 108, 8, octal(f.uid, 8) ?? octal(0, 8)!);
  put(block, 116, 8, octal(f.gid, 8) ?? octal(0, 8)!);
  put(block, 124, 12, octal(f.size, 12) ?? octal(0, 12)!);
  put(block, 136, 12, octal(f.mtimeSec, 12) ?? octal(0, 12)!);
  block.write(f.typeflag, 156, 'latin1');
  put(block, 157, 100, f.linkname.subarray(0, 100));
  block.write('ustar\u000000', 257, 'latin1');
  // uname/gname stay empty: owners are numeric (a chroot's /etc/passwd is not the host's).
  put(block, 329, 8, octal(f.devmajor, 8) ?? octal(0, 8)!);
  put(block, 337, 8, octal(f.devminor, 8) ?? octal(0, 8)!);
  put(block, 345, 155, prefix);
  // The checksum: the sum of the header's bytes with its own field as spaces, 6 octal
  // digits, NUL, space (as GNU tar writes it).
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

/** Zero bytes that complete `size` bytes of data to whole blocks. */
export function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * The pax records a member needs, in a fixed order (so output is deterministic): path,
 * linkpath, hdrcharset, GNU.sparse.*, mtime, size, uid, gid, SCHILY.devmajor/devminor, then
 * the extended attributes in the order given.
 */
export function paxRecordsOf(spec: HeaderSpec): Buffer[] {
  const records: Buffer[] = [];
  const name = bytesOf(spec.name);
  const linkname = spec.linkname === undefined ? Buffer.alloc(0) : bytesOf(spec.linkname);
  let binary = false;
  if (spec.sparse === undefined && (!isAscii(name) || ustarSplit(name) === undefined)) {
    records.push(paxRecord('path', name));
    binary ||= !isUtf8(name);
  }
  if (!isAscii(linkname) || linkname.length > 100) {
    records.push(paxRecord('linkpath', linkname));
    binary ||= !isUtf8(linkname);
  }
  if (spec.sparse !== undefined) binary ||= !isUtf8(name);
  // hdrcharset=BINARY (POSIX.1-2008 pax): the path values are bytes, not UTF-8.
  if (binary) records.push(paxRecord('hdrcharset', 'BINARY'));
  if (spec.sparse !== undefined) {
    records.push(paxRecord('GNU.sparse.major', '1'));
    records.push(paxRecord('GNU.sparse.minor', '0'));
    records.push(paxRecord('GNU.sparse.name', name));
    records.push(paxRecord('GNU.sparse.realsize', String(spec.sparse.realSize)));
  }
  const sec = floorSeconds(spec.mtimeNs);
  if (spec.mtimeNs % NS !== 0n || sec < 0n || sec > BigInt(MAX_OCTAL11)) {
    records.push(paxRecord('mtime', paxTime(spec.mtimeNs)));
  }
  if (spec.size > MAX_OCTAL11) records.push(paxRecord('size', String(spec.size)));
  if (spec.uid > MAX_OCTAL7) records.push(paxRecord('uid', String(spec.uid)));
  if (spec.gid > MAX_OCTAL7) records.push(paxRecord('gid', String(spec.gid)));
  if ((spec.devmajor ?? 0) > MAX_OCTAL7) records.push(paxRecord('SCHILY.devmajor', String(spec.devmajor)));
  if ((spec.devminor ?? 0) > MAX_OCTAL7) records.push(paxRecord('SCHILY.devminor', String(spec.devminor)));
  for (const x of spec.xattrs ?? []) records.push(paxRecord(`SCHILY.xattr.${x.name}`, x.value));
  if (spec.delete === true) records.push(paxRecord(DELETE_RECORD, '1'));
  return records;
}

/**
 * The header blocks of one member: a pax extended header and its records (when needed), then
 * the ustar header. The member's `size` bytes of data and `paddingOf(size)` zeros follow.
 */
export function encodeHeader(spec: HeaderSpec): Buffer {
  const name = bytesOf(spec.name);
  const linkname = spec.linkname === undefined ? Buffer.alloc(0) : bytesOf(spec.linkname);
  const mtimeSec = floorSeconds(spec.mtimeNs);
  const records = paxRecordsOf(spec);
  const blocks: Buffer[] = [];
  if (records.length > 0) {
    const data = Buffer.concat(records);
    blocks.push(
      ustarBlock({
        name: derivedName(name, 'PaxHeaders'),
        typeflag: 'x',
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: data.length,
        mtimeSec: mtimeSec < 0n || mtimeSec > BigInt(MAX_OCTAL11) ? 0n : mtimeSec,
        linkname: Buffer.alloc(0),
        devmajor: 0,
        devminor: 0,
      }),
      data,
      Buffer.alloc(paddingOf(data.length)),
    );
  }
  blocks.push(
    ustarBlock({
      // GNU tar names a sparse member "dir/GNUSparseFile.PID/base" (a reader that does not
      // know the format extracts it there); 0 instead of a pid keeps the bytes the same.
      name: spec.sparse === undefined ? name : derivedName(name, 'GNUSparseFile.0'),
      typeflag: spec.typeflag,
      mode: spec.mode,
      uid: spec.uid,
      gid: spec.gid,
      size: spec.size,
      mtimeSec,
      linkname,
      devmajor: spec.devmajor ?? 0,
      devminor: spec.devminor ?? 0,
    }),
  );
  return Buffer.concat(blocks);
}

/**
 * The start of a GNU sparse 1.0 member's data: the number of segments, then each segment's
 * offset and size, as decimal numbers one per line, padded with zeros to whole blocks (GNU tar's
 * sparse.c, pax_dump_header_1). The segments' data follows, concatenated.
 */
export function sparseMapBlock(map: readonly SparseSegment[]): Buffer {
  const lines = [String(map.length), ...map.flatMap((s) => [String(s.offset), String(s.size)])];
  const text = Buffer.from(`${lines.join('\n')}\n`, 'latin1');
  return Buffer.concat([text, Buffer.alloc(paddingOf(text.length))]);
}

/**
 * The map as GNU tar writes it: the data segments, and when the file ends in a hole (or has no
 * data at all) a last empty segment at its real size, so that readers that size the file from
 * the map get it right.
 */
export function sparseMapOf(data: readonly SparseSegment[], realSize: number): SparseSegment[] {
  const last = data[data.length - 1];
  if (last !== undefined && last.offset + last.size >= realSize) return [...data];
  return [...data, { offset: realSize, size: 0 }];
}
