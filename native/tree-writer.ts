/**
 * Writing the members of a tar archive beneath a root, for both sides that extract: the server's
 * `PUT /archive` (into its staging directory, routes/archive/stage.ts) and the client's `pull`
 * (straight into LOCAL_DIR, client/archive.ts). Everything goes through the beneath-root layer
 * (BeneathRoot: openat2 RESOLVE_BENEATH and the *at calls), so no lookup ever leaves the root,
 * also when a symlink is swapped in meanwhile.
 *
 * Symlinks are data (CONTRACT.md "Trees arrive as they left"): they are created with their
 * target exactly as written, wherever it points. What is refused is writing *through* one: an
 * entry whose path leads through a symlink (one this archive made, or one already in the tree)
 * is NG_ERR_ARCHIVE_UNSAFE, and entries are created O_EXCL | O_NOFOLLOW (files), by mkdirat,
 * symlinkat, mknodat and linkat, none of which follows a final symlink. Metadata is applied as
 * core/set-rule.ts says the writer may, by calls that never follow a final symlink either
 * (fchownat, chmod and utimensat of the entry itself, lsetxattr).
 *
 * Order of the metadata of an entry: owner first (chown(2) clears set-id bits and
 * security.capability), then extended attributes (setting user.* needs write permission, which
 * the final mode may not give its owner), then the mode, the times last. Directories get theirs
 * in `finish`, deepest first, after everything in them was written (filling a directory changes
 * its mtime; a read-only directory would block its children).
 *
 * Nothing here is fsynced: a writer that needs the tree durable syncs it once when it is
 * complete (the server's staging: one syncfs(2) before it becomes visible, routes/archive/merge.ts).
 */
import {
  constants as fsc,
  close as closeCb,
  fchmod as fchmodCb,
  fchown as fchownCb,
  ftruncate as ftruncateCb,
  write as writeCb,
} from 'node:fs';
import { promisify } from 'node:util';

import { codeOf, isNullgateError } from '../core/errors.js';
import { ancestorsOf, joinRel, parentOf, shortened } from '../core/rel-path.js';
import { mayRetouch, modeUnder, ownerUnder, type Ids, type SetRule, xattrAllowed } from '../core/set-rule.js';
import {
  entryLabel,
  entryPath,
  hardlinkTarget,
  invalidEntry,
  isAllZero,
  symlinkPrefix,
  unsafeEntry,
} from '../core/tar-entry.js';
import type { TarHeader, TarMember } from '../core/tar-read.js';
import type { BeneathRoot } from './beneath.js';

const closeAsync = promisify(closeCb);
const fchmodAsync = promisify(fchmodCb);
const fchownAsync = promisify(fchownCb);
const ftruncateAsync = promisify(ftruncateCb);
const writeAsync = promisify(writeCb);

/** What an extraction made. Hard links, FIFOs and devices count as files. */
export interface TreeCounts {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

export interface TreeWriterOptions {
  /** Who writes (the process's euid/egid) and the rule for what it may set for whom. */
  readonly writer: Ids;
  readonly rule: SetRule;
  /** Stop with this error once the members' declared data passes `maxBytes`. */
  readonly maxBytes?: number;
  readonly tooLarge?: () => Error;
  /**
   * A device node the rule does not allow: 'refuse' (NG_ERR_ARCHIVE_UNSAFE, the server) or
   * 'skip' (reported through `onSkip`, the client's pull as a user).
   */
  readonly devices: 'refuse' | 'skip';
  onSkip?(name: string, why: string): void;
  /** Extra checks on a symlink's target (the server refuses links into its temporaries). */
  checkLink?(name: string, linkname: string): void;
  /** Data bytes written so far, after each piece. */
  onBytes?(bytes: number): void;
  /**
   * Deletion records (`NULLGATE.delete=1`): 'collect' them in `deleted` for the merge to apply
   * (`PUT /archive/<dir>?sync=1`); anything else refuses them (NG_ERR_ARCHIVE_INVALID).
   */
  readonly deletions?: 'collect' | 'refuse';
}

interface DirMeta {
  readonly name: string;
  readonly mode: number;
  readonly owner: Ids | undefined;
  readonly mtimeNs: bigint | undefined;
  readonly xattrs: ReadonlyMap<string, Buffer>;
  /** It was there before this archive: only retouched where the rule allows (mayRetouch). */
  readonly existed: boolean;
  /** The archive has an entry for it (else it is implied by its contents). */
  readonly listed: boolean;
}

export class TreeWriter {
  readonly #root: BeneathRoot;
  readonly #base: string;
  readonly #o: TreeWriterOptions;
  /** Paths (relative to the base) known to be real directories now; '' is the base. */
  readonly #dirs = new Set<string>(['']);
  /** Paths this archive made symlinks. */
  readonly #symlinks = new Set<string>();
  /** Non-directories this archive made: the only things a hard link may name. */
  readonly #made = new Set<string>();
  readonly #dirMeta = new Map<string, DirMeta>();
  #declared = 0;
  readonly counts: TreeCounts = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  /** The paths deletion records named (relative to the base), in archive order. */
  readonly deleted: string[] = [];

  /**
   * Writes beneath `base` (a directory relative to the root of `root`); `baseIsNew` when it was
   * made for this archive (it then gets the archive's `./` entry's metadata, or mode 0755 and
   * the rule's owner), else it is retouched like any existing directory.
   */
  constructor(root: BeneathRoot, base: string, baseIsNew: boolean, options: TreeWriterOptions) {
    this.#root = root;
    this.#base = base;
    this.#o = options;
    if (baseIsNew) this.#dirMeta.set('', this.#impliedDir(''));
  }

  #impliedDir(rel: string): DirMeta {
    return {
      name: rel === '' ? '.' : rel,
      mode: 0o755,
      owner: ownerUnder(this.#o.rule, this.#o.writer),
      mtimeNs: undefined,
      xattrs: new Map(),
      existed: false,
      listed: false,
    };
  }

  #at(rel: string): string {
    return joinRel(this.#base, rel);
  }

  /** Writes one member; its data is read here. Errors are NullgateErrors or system errors. */
  async entry(member: TarMember): Promise<void> {
    const h = member.header;
    const name = h.name;
    const rel = entryPath(name);
    if (h.delete === true) {
      this.#deletion(rel, name);
      return;
    }
    if (rel === '') {
      if (h.type !== 'dir') throw unsafeEntry(name, 'names the target directory itself');
      this.#dirMeta.set('', this.#metaOf(h, this.#dirMeta.get('')?.existed ?? true));
      return;
    }
    const through = symlinkPrefix(rel, this.#symlinks);
    if (through !== undefined) {
      throw unsafeEntry(name, `leads through the symlink "${through}" made by an earlier entry`);
    }
    // Refusals that need no disk come before any parent directory is made.
    let linkTarget: string | undefined;
    switch (h.type) {
      case 'unsupported':
        throw invalidEntry(name, `unsupported entry type '${h.typeflag.replace(/[^\x20-\x7e]/g, '?')}'`);
      case 'hardlink':
        linkTarget = this.#hardlinkTarget(name, h.linkname);
        break;
      case 'symlink':
        if (h.linkname === '') throw invalidEntry(name, 'symlink with an empty target');
        if (h.linkname.includes('\0')) throw unsafeEntry(name, 'NUL byte in link target');
        this.#o.checkLink?.(name, h.linkname);
        break;
      case 'char-device':
      case 'block-device':
        if (!this.#o.rule.devices) {
          const why = 'device nodes are only extracted by root for root';
          if (this.#o.devices === 'refuse') throw unsafeEntry(name, why);
          this.#o.onSkip?.(name, why);
          return;
        }
        break;
      default:
        break;
    }
    await this.#parents(rel, name);
    switch (h.type) {
      case 'dir':
        await this.#dir(rel, name, h);
        return;
      case 'file':
        await this.#file(rel, name, h, member);
        return;
      case 'symlink':
        await this.#symlink(rel, name, h);
        return;
      case 'hardlink':
        await this.#clear(rel, name);
        await this.#root.link(this.#at(linkTarget ?? ''), this.#at(rel));
        this.#made.add(rel);
        this.counts.files++;
        return;
      case 'fifo':
      case 'char-device':
      case 'block-device':
        await this.#node(rel, name, h);
        return;
    }
  }

  /** A deletion record: checked and collected; nothing is written for it. */
  #deletion(rel: string, name: string): void {
    if (this.#o.deletions !== 'collect') {
      throw invalidEntry(
        name,
        'a deletion record (NULLGATE.delete) is only taken by PUT /archive/<dir>?sync=1',
      );
    }
    if (rel === '') throw unsafeEntry(name, 'a deletion of the target directory itself');
    const through = symlinkPrefix(rel, this.#symlinks);
    if (through !== undefined) {
      throw unsafeEntry(name, `leads through the symlink "${through}" made by an earlier entry`);
    }
    this.deleted.push(rel);
  }

  #hardlinkTarget(name: string, linkname: string): string {
    const target = hardlinkTarget(name, linkname);
    if (!this.#made.has(target) || symlinkPrefix(target, this.#symlinks) !== undefined) {
      throw unsafeEntry(
        name,
        `hard link to something not an earlier entry of this archive (${shortened(linkname)})`,
      );
    }
    return target;
  }

  #metaOf(h: TarHeader, existed: boolean): DirMeta {
    return {
      name: h.name,
      mode: modeUnder(this.#o.rule, h.mode),
      owner: ownerUnder(this.#o.rule, { uid: h.uid, gid: h.gid }),
      mtimeNs: h.mtimeNs,
      xattrs: h.xattrs,
      existed,
      listed: true,
    };
  }

  /**
   * Makes sure every parent of `rel` is a real directory: known, or checked with lstat (a
   * symlink there, from the tree, is refused: nothing is written through one), or made here.
   */
  async #parents(rel: string, name: string): Promise<void> {
    if (this.#dirs.has(parentOf(rel))) return;
    for (const dir of ancestorsOf(rel)) {
      if (this.#dirs.has(dir)) continue;
      const st = await this.#root.lstat(this.#at(dir)).catch((err: unknown) => {
        if (codeOf(err) === 'ENOENT') return undefined;
        throw err;
      });
      if (st === undefined) {
        await this.#root.mkdir(this.#at(dir), 0o700);
        this.counts.dirs++;
        // A directory the archive implies but never lists gets the usual mode, the rule's owner.
        this.#dirMeta.set(dir, this.#impliedDir(dir));
      } else if (st.type === 'symlink') {
        throw unsafeEntry(name, `leads through the symlink "${dir}" already in the tree`);
      } else if (st.type !== 'dir') {
        throw invalidEntry(name, `"${dir}" is not a directory`);
      }
      this.#dirs.add(dir);
    }
  }

  /** Removes a non-directory at `rel` so the entry replaces it (as tar does); a directory is in the way. */
  async #clear(rel: string, name: string): Promise<void> {
    if (this.#dirs.has(rel)) throw invalidEntry(name, 'a directory is in the way');
    try {
      await this.#root.unlink(this.#at(rel));
    } catch (err) {
      if (codeOf(err) === 'EISDIR' || codeOf(err) === 'EPERM') {
        throw invalidEntry(name, 'a directory is in the way');
      }
      if (codeOf(err) !== 'ENOENT') throw err;
    }
    this.#symlinks.delete(rel);
    this.#made.delete(rel);
  }

  async #dir(rel: string, name: string, h: TarHeader): Promise<void> {
    let existed = false;
    if (!this.#dirs.has(rel)) {
      const st = await this.#root.lstat(this.#at(rel)).catch((err: unknown) => {
        if (codeOf(err) === 'ENOENT') return undefined;
        throw err;
      });
      if (st?.type === 'dir') {
        existed = true;
      } else {
        if (st !== undefined) await this.#clear(rel, name);
        await this.#root.mkdir(this.#at(rel), 0o700);
        this.counts.dirs++;
      }
      this.#dirs.add(rel);
    } else {
      existed = this.#dirMeta.get(rel)?.existed ?? true;
    }
    this.#dirMeta.set(rel, this.#metaOf(h, existed));
  }

  async #file(rel: string, name: string, h: TarHeader, member: TarMember): Promise<void> {
    this.#declared += h.size;
    if (this.#o.maxBytes !== undefined && this.#declared > this.#o.maxBytes) {
      throw this.#o.tooLarge?.() ?? invalidEntry(name, 'too large');
    }
    const at = this.#at(rel);
    if (this.#dirs.has(rel)) throw invalidEntry(name, 'a directory is in the way');
    const existing = await this.#root.lstat(at).catch((err: unknown) => {
      if (codeOf(err) === 'ENOENT') return undefined;
      throw err;
    });
    if (existing?.type === 'dir') throw invalidEntry(name, 'a directory is in the way');
    // A new name is created O_EXCL | O_NOFOLLOW: never opens something already there, least of
    // all through a link. An existing one is replaced atomically (a pull into a tree in use):
    // the file is written under a temporary name beside it and renamed over it, which replaces
    // the entry itself (a symlink too), never what it points to.
    let fd: number;
    let writeAt = at;
    if (existing === undefined) {
      fd = await this.#root.open(at, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    } else {
      ({ fd, rel: writeAt } = await this.#root.openNamedTmpfile(parentOf(at), 0o600));
    }
    this.#symlinks.delete(rel);
    this.#made.add(rel);
    let done = false;
    try {
      let written = 0;
      const sparse = h.sparse !== undefined;
      for await (const { position, data } of member.pieces()) {
        // Holes stay holes: a sparse member's map skips them; in a plain member an all-zero
        // chunk is skipped too (the file is ftruncated to its size below).
        if (sparse || !isAllZero(data)) {
          for (let off = 0; off < data.length;) {
            off += (await writeAsync(fd, data, off, data.length - off, position + off)).bytesWritten;
          }
        }
        written += data.length;
        this.counts.bytes += data.length;
        this.#o.onBytes?.(this.counts.bytes);
      }
      if (written !== h.size) throw invalidEntry(name, 'the archive ends inside this entry');
      await ftruncateAsync(fd, h.sparse?.realSize ?? h.size);
      const owner = ownerUnder(this.#o.rule, { uid: h.uid, gid: h.gid });
      if (owner) await fchownAsync(fd, owner.uid, owner.gid);
      await this.#xattrs(writeAt, name, h.xattrs);
      await fchmodAsync(fd, modeUnder(this.#o.rule, h.mode));
      await this.#root.lutimesNs(writeAt, null, h.mtimeNs);
      if (writeAt !== at) await this.#root.rename(writeAt, at);
      done = true;
    } finally {
      await closeAsync(fd);
      if (!done && writeAt !== at) await this.#root.unlink(writeAt).catch(() => undefined);
    }
    this.counts.files++;
  }

  async #symlink(rel: string, name: string, h: TarHeader): Promise<void> {
    await this.#clear(rel, name);
    const at = this.#at(rel);
    await this.#root.symlink(h.linkname, at);
    this.#symlinks.add(rel);
    this.#made.add(rel);
    const owner = ownerUnder(this.#o.rule, { uid: h.uid, gid: h.gid });
    if (owner) await this.#root.lchown(at, owner.uid, owner.gid);
    await this.#xattrs(at, name, h.xattrs);
    // A link's own time is cosmetic: a file system that cannot set it keeps the archive whole.
    await this.#root.lutimesNs(at, null, h.mtimeNs).catch(() => undefined);
    this.counts.symlinks++;
  }

  async #node(rel: string, name: string, h: TarHeader): Promise<void> {
    await this.#clear(rel, name);
    const at = this.#at(rel);
    const kind = h.type === 'fifo' ? 'fifo' : h.type === 'char-device' ? 'char' : 'block';
    await this.#root.mknod(at, kind, 0o600, h.devmajor, h.devminor);
    this.#made.add(rel);
    const owner = ownerUnder(this.#o.rule, { uid: h.uid, gid: h.gid });
    if (owner) await this.#root.lchown(at, owner.uid, owner.gid);
    await this.#xattrs(at, name, h.xattrs);
    await this.#root.lchmod(at, modeUnder(this.#o.rule, h.mode));
    await this.#root.lutimesNs(at, null, h.mtimeNs);
    this.counts.files++;
  }

  /**
   * The attributes the rule allows, the others dropped. A file system that stores none (or not
   * that namespace) is not an error: the tree is still the archive's, as with GNU tar.
   */
  async #xattrs(at: string, name: string, xattrs: ReadonlyMap<string, Buffer>): Promise<void> {
    for (const [attr, value] of xattrs) {
      if (attr.includes('\0') || attr === '') throw invalidEntry(name, 'bad extended attribute name');
      if (!xattrAllowed(this.#o.rule, attr)) continue;
      try {
        await this.#root.setXattr(at, attr, value);
      } catch (err) {
        const code = codeOf(err);
        if (code === 'EOPNOTSUPP' || code === 'ENOTSUP') continue;
        if (isNullgateError(err)) throw err;
        throw Object.assign(err as Error, {
          message: `${(err as Error).message} (xattr ${attr} of ${entryLabel(name)})`,
        });
      }
    }
  }

  /**
   * Gives directories their owners, attributes, modes and times, deepest first; `skip` are
   * left for `retouch` (the server merges them into existing directories). A directory that
   * was there before the archive is only changed where the rule allows (core/set-rule.ts
   * mayRetouch).
   */
  async finish(skip: ReadonlySet<string> = new Set()): Promise<void> {
    await this.#applyDirs(
      [...this.#dirMeta.keys()].filter((rel) => !skip.has(rel)),
      (rel) => this.#at(rel),
    );
  }

  /**
   * `finish` for directories `rels` that were merged into existing ones under `targetBase`
   * instead: those the archive lists get its metadata there (where the rule allows), after
   * the merge filled them.
   */
  async retouch(targetBase: string, rels: Iterable<string>): Promise<void> {
    const listed = [...rels].filter((rel) => this.#dirMeta.get(rel)?.listed === true);
    await this.#applyDirs(listed, (rel) => joinRel(targetBase, rel), true);
  }

  async #applyDirs(rels: string[], at: (rel: string) => string, existing = false): Promise<void> {
    rels.sort((a, b) => depth(b) - depth(a));
    for (const rel of rels) {
      const meta = this.#dirMeta.get(rel);
      if (meta === undefined) continue;
      const path = at(rel);
      if (existing || meta.existed) {
        const st = await this.#root.lstat(path);
        if (st.type !== 'dir' || !mayRetouch(this.#o.rule, this.#o.writer, st.uid)) continue;
        // An existing directory keeps its owner unless root writes for root (tar -xp as root).
        if (this.#o.rule.owner === 'archive' && meta.owner)
          await this.#root.lchown(path, meta.owner.uid, meta.owner.gid);
      } else if (meta.owner) {
        await this.#root.lchown(path, meta.owner.uid, meta.owner.gid);
      }
      await this.#xattrs(path, meta.name, meta.xattrs);
      await this.#root.lchmod(path, meta.mode);
      if (meta.mtimeNs !== undefined) await this.#root.lutimesNs(path, null, meta.mtimeNs);
    }
  }
}

function depth(rel: string): number {
  return rel === '' ? 0 : rel.split('/').length;
}
