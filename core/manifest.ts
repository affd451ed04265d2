/**
 * The manifest of a tree, for `--sync` (CONTRACT.md "Sync: send only what changed"): one line of
 * JSON per entry (NDJSON), in the walk order of `GET /archive` (byte order of names, a directory
 * before its contents), describing what a sync compares: type, size, ns mtime, mode, owner,
 * symlink target, hard-link grouping, device numbers, a digest of the extended attributes and,
 * when asked for, the sha-256 of a regular file's content.
 *
 * Both sides make it with their own walk (the server's routes/archive/pack.ts, the client's
 * client/archive.ts) and describe entries here, so the two agree byte for byte on what an entry
 * is. Paths are relative to the synced directory ('' is the directory itself), carried as
 * surrogateescape strings (core/name-bytes.ts): JSON writes a byte that is not UTF-8 as its
 * `\udcXX` escape, as listings do, and JSON.parse gives back the same string.
 */
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';

import { nameToBytes } from './name-bytes.js';

/** The types an entry can have (sockets are never part of a tree: tar cannot carry them). */
export type ManifestType = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block';

export const MANIFEST_TYPES: readonly ManifestType[] = ['file', 'dir', 'symlink', 'fifo', 'char', 'block'];

/** An entry's type from its stat mode (undefined for a socket, which no tree carries). */
export function manifestTypeOfMode(mode: number): ManifestType | undefined {
  switch (mode & fsc.S_IFMT) {
    case fsc.S_IFREG:
      return 'file';
    case fsc.S_IFDIR:
      return 'dir';
    case fsc.S_IFLNK:
      return 'symlink';
    case fsc.S_IFIFO:
      return 'fifo';
    case fsc.S_IFCHR:
      return 'char';
    case fsc.S_IFBLK:
      return 'block';
    default:
      return undefined;
  }
}

export interface ManifestEntry {
  /** Relative to the synced directory; '' is the directory itself. */
  readonly path: string;
  readonly type: ManifestType;
  /** Bytes of a regular file (its real size when sparse); 0 for the others. */
  readonly size: number;
  /** Modification time in nanoseconds since the epoch, as decimal text (JSON numbers lose ns). */
  readonly mtime: string;
  /** Permission bits, set-id and sticky included (07777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** A symlink's target, exactly as stored. */
  readonly target?: string;
  /**
   * Hard links: every name of an inode with more than one link carries the first of its names
   * in walk order (the first carries its own path). Names with the same `link` are one inode.
   */
  readonly link?: string;
  /** Device numbers of a character or block device. */
  readonly rdev?: readonly [number, number];
  /** sha-256 (hex) of the extended attributes (xattrDigest); absent when there are none. */
  readonly xattrs?: string;
  /** sha-256 (hex) of a regular file's content: only when asked for (`checksum=1`). */
  readonly sha256?: string;
}

/** The `Content-Type` of a manifest. */
export const MANIFEST_TYPE = 'application/x-ndjson';

/**
 * The rule the receiver of a push applies for this peer, which a sync must know to compare
 * what the receiver can keep: `all` (root for root: owners, set-id bits, every attribute
 * namespace), `user` (no owners, no set-id bits, `user.*` attributes only).
 */
export const APPLY_HEADER = 'x-nullgate-apply';
/** Which extended attributes a manifest's digests cover: `all` or `user` (`user.*` only). */
export const XATTRS_HEADER = 'x-nullgate-xattrs';

export type XattrScope = 'all' | 'user';

/**
 * The digest of a set of extended attributes: sha-256 over each attribute in byte order of its
 * name, as the name's length (4 bytes, big-endian), the name, the value's length and the value.
 * Undefined when there are none, so a file system without attributes and an empty set agree.
 */
export function xattrDigest(
  xattrs: readonly { readonly name: string; readonly value: Buffer }[],
  scope: XattrScope,
): string | undefined {
  const kept = xattrs
    .filter((x) => scope === 'all' || x.name.startsWith('user.'))
    .map((x) => ({ name: nameToBytes(x.name), value: x.value }))
    .sort((a, b) => Buffer.compare(a.name, b.name));
  if (kept.length === 0) return undefined;
  const hash = createHash('sha256');
  const len = Buffer.alloc(4);
  for (const x of kept) {
    len.writeUInt32BE(x.name.length);
    hash.update(len).update(x.name);
    len.writeUInt32BE(x.value.length);
    hash.update(len).update(x.value);
  }
  return hash.digest('hex');
}

/** What a walk knows of an entry, to describe it. */
export interface EntryFacts {
  readonly path: string;
  readonly type: ManifestType;
  readonly size: number;
  readonly mtimeNs: bigint;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly target?: string | undefined;
  readonly link?: string | undefined;
  readonly rdev?: readonly [number, number] | undefined;
  readonly xattrs?: string | undefined;
  readonly sha256?: string | undefined;
}

/** An entry from what a walk found (fields that do not apply left out). */
export function manifestEntry(f: EntryFacts): ManifestEntry {
  return {
    path: f.path,
    type: f.type,
    size: f.type === 'file' ? f.size : 0,
    mtime: f.mtimeNs.toString(),
    mode: f.mode & 0o7777,
    uid: f.uid,
    gid: f.gid,
    ...(f.target !== undefined && { target: f.target }),
    ...(f.link !== undefined && { link: f.link }),
    ...(f.rdev !== undefined && { rdev: f.rdev }),
    ...(f.xattrs !== undefined && { xattrs: f.xattrs }),
    ...(f.sha256 !== undefined && { sha256: f.sha256 }),
  };
}

/** One manifest line: the entry's JSON and a newline. */
export function manifestLine(entry: ManifestEntry): Buffer {
  return Buffer.from(`${JSON.stringify(entry)}\n`, 'utf8');
}

export class ManifestFormatError extends Error {}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** One parsed line of a manifest, checked field by field; a ManifestFormatError names what is wrong. */
export function parseManifestLine(line: string): ManifestEntry {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new ManifestFormatError('a line is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new ManifestFormatError('a line is not an object');
  const o = v as Record<string, unknown>;
  const bad = (field: string): never => {
    throw new ManifestFormatError(`bad "${field}" in an entry`);
  };
  if (typeof o.path !== 'string') bad('path');
  if (!MANIFEST_TYPES.includes(o.type as ManifestType)) bad('type');
  if (!isId(o.size)) bad('size');
  if (typeof o.mtime !== 'string' || !/^-?\d{1,30}$/.test(o.mtime)) bad('mtime');
  if (!isId(o.mode)) bad('mode');
  if (!isId(o.uid)) bad('uid');
  if (!isId(o.gid)) bad('gid');
  for (const key of ['target', 'link', 'xattrs', 'sha256'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'string') bad(key);
  }
  if (o.rdev !== undefined && !(Array.isArray(o.rdev) && o.rdev.length === 2 && o.rdev.every(isId)))
    bad('rdev');
  return o as unknown as ManifestEntry;
}

/**
 * Splits a byte stream into manifest lines as it arrives (a line may span chunks). Holds at most
 * one line beyond `maxLine` bytes before failing, so a hostile peer cannot fill memory.
 */
export class ManifestSplitter {
  #rest = '';
  readonly #decoder = new TextDecoder('utf-8');
  readonly #maxLine: number;

  constructor(maxLine = 1024 * 1024) {
    this.#maxLine = maxLine;
  }

  push(chunk: Buffer): ManifestEntry[] {
    const text = this.#rest + this.#decoder.decode(chunk, { stream: true });
    const lines = text.split('\n');
    this.#rest = lines.pop() ?? '';
    if (this.#rest.length > this.#maxLine) throw new ManifestFormatError('a line is too long');
    return lines.filter((l) => l !== '').map(parseManifestLine);
  }

  end(): ManifestEntry[] {
    const rest = this.#rest + this.#decoder.decode();
    this.#rest = '';
    if (rest.trim() !== '') throw new ManifestFormatError('the manifest ends inside a line');
    return [];
  }
}

/** A selection (`POST /archive/<dir>?select=1`): one JSON string per line, each a path. */
export function selectionBody(paths: Iterable<string>): Buffer {
  const parts: string[] = [];
  for (const p of paths) parts.push(`${JSON.stringify(p)}\n`);
  return Buffer.from(parts.join(''), 'utf8');
}
