/**
 * The one tree comparison of the "trees arrive as they left" tests (CONTRACT.md): every entry
 * described by what `tar --xattrs --sparse --numeric-owner -p` keeps — type, permission bits
 * (07777), numeric owner, mtime in nanoseconds, size and content hash, holes (a file that
 * occupies fewer blocks than its size), link target, device numbers, extended attributes, and
 * which names share an inode — and two trees compared entry by entry. Itself tested in
 * test/e2e/tree-roundtrip.test.ts (equal to a GNU tar copy, different from a `cp -r` copy).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, lstatSync, openSync, readlinkSync, readSync } from 'node:fs';

import { nameToBytes } from '../../core/name-bytes.js';
import { BeneathRoot, closeFd } from '../../native/beneath.js';

export interface TreeOptions {
  /** Leave sockets out (tar cannot carry them). */
  readonly ignoreSockets?: boolean;
  /** Leave the mtimes of symlinks out (some file systems cannot set them). */
  readonly ignoreSymlinkTimes?: boolean;
  /** Leave the top directory's own metadata out (it is the destination, not an entry). */
  readonly ignoreTop?: boolean;
}

function typeOf(mode: number): string {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return 'fifo';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    case 0o140000:
      return 'socket';
    default:
      return 'other';
  }
}

/** Where a file with holes has data (SEEK_DATA/SEEK_HOLE): [offset, size] pieces. */
async function dataMap(root: BeneathRoot, rel: string): Promise<[number, number][]> {
  const fd = await root.open(rel, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = await root.fstat(fd, rel);
    const pieces: [number, number][] = [];
    for (let at = 0; at < st.size;) {
      const data = await root.nextData(fd, at, rel);
      if (data === null) break;
      const hole = (await root.nextHole(fd, data, rel)) ?? st.size;
      pieces.push([data, hole - data]);
      at = hole;
    }
    return pieces;
  } finally {
    await closeFd(fd);
  }
}

/** sha-256 of the content, or of the given pieces only (the holes between are zeros). */
function contentHash(path: Buffer, pieces?: [number, number][]): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (const [start, size] of pieces ?? [[0, Number.MAX_SAFE_INTEGER]]) {
      for (let pos = start; pos < start + size;) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, start + size - pos), pos);
        if (n === 0) break;
        hash.update(buf.subarray(0, n));
        pos += n;
      }
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex').slice(0, 16);
}

/** One line per entry (sorted by name), '.' for the top directory. */
export async function describeTree(dir: string, options: TreeOptions = {}): Promise<Map<string, string>> {
  const root = await BeneathRoot.open(dir);
  const out = new Map<string, string>();
  const inodes = new Map<string, string[]>();
  const entries: { rel: string; ino: string; line: string[] }[] = [];
  try {
    const visit = async (rel: string): Promise<void> => {
      // Names as bytes (core/name-bytes.ts): one that is not UTF-8 reaches the file system as is.
      const full = rel === '' ? Buffer.from(dir) : Buffer.concat([Buffer.from(`${dir}/`), nameToBytes(rel)]);
      const st = lstatSync(full, { bigint: true });
      const type = typeOf(Number(st.mode));
      if (type === 'socket' && options.ignoreSockets === true) return;
      const line = [type, `mode=${(Number(st.mode) & 0o7777).toString(8)}`, `owner=${st.uid}:${st.gid}`];
      if (!(type === 'symlink' && options.ignoreSymlinkTimes === true)) line.push(`mtime=${st.mtimeNs}`);
      if (type === 'file') {
        line.push(`size=${st.size}`);
        if (st.blocks * 512n < st.size) {
          const pieces = await dataMap(root, rel);
          line.push(`sparse data=${pieces.map(([o, n]) => `${o}+${n}`).join(',')}`);
          line.push(`sha=${contentHash(full, pieces)}`);
        } else {
          line.push(`sha=${contentHash(full)}`);
        }
      }
      if (type === 'symlink') line.push(`-> ${readlinkSync(full, { encoding: 'buffer' }).toString('hex')}`);
      if (type === 'char' || type === 'block') line.push(`rdev=${st.rdev}`);
      const xattrs = await root.readXattrs(rel).catch(() => []);
      for (const x of xattrs) line.push(`xattr ${x.name}=${x.value.toString('hex')}`);
      const ino = `${st.dev}:${st.ino}`;
      if (type !== 'dir') inodes.set(ino, [...(inodes.get(ino) ?? []), rel]);
      if (!(rel === '' && options.ignoreTop === true)) entries.push({ rel, ino, line });
      if (type === 'dir') {
        const names: string[] = [];
        for await (const d of root.readdir(rel)) names.push(d.name);
        for (const name of names.sort()) await visit(rel === '' ? name : `${rel}/${name}`);
      }
    };
    await visit('');
  } finally {
    await root.close();
  }
  for (const { rel, ino, line } of entries) {
    const others = (inodes.get(ino) ?? []).filter((r) => r !== rel);
    if (others.length > 0) line.push(`hardlinked-with=${others.sort().join(',')}`);
    out.set(rel === '' ? '.' : rel, line.join(' '));
  }
  return out;
}

/** The differences between two trees, one line each ('' entries equal: an empty list). */
export async function compareTrees(a: string, b: string, options: TreeOptions = {}): Promise<string[]> {
  const [da, db] = await Promise.all([describeTree(a, options), describeTree(b, options)]);
  const diffs: string[] = [];
  for (const name of [...new Set([...da.keys(), ...db.keys()])].sort()) {
    const la = da.get(name);
    const lb = db.get(name);
    if (la === lb) continue;
    diffs.push(`${name}:\n  - ${la ?? '(missing)'}\n  + ${lb ?? '(missing)'}`);
  }
  return diffs;
}
