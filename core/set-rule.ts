/**
 * Who may set what when a tree is extracted (CONTRACT.md "Trees arrive as they left", "Who may
 * set what"): one pure rule for `PUT /archive` (the server writing for a peer) and the client's
 * `pull` (the local user writing for itself).
 *
 * A root writer acting for root applies the archive as `tar -xp` as root would: numeric owners,
 * set-uid/set-gid bits, every extended attribute namespace (security.capability, POSIX ACLs,
 * trusted.*), device nodes. Anyone else gets nothing they could not have created themselves:
 * the files belong to the writer's own user (a non-root server), or, when a root server writes
 * for a non-root peer, to the peer's uid/gid (chown(2) is what only root could do for them);
 * set-id bits are dropped (a set-id program owned by someone else is a privilege the archive
 * would mint); only `user.*` attributes are applied (security.*, trusted.* and the ACL
 * namespaces need CAP_SYS_ADMIN, CAP_SETFCAP or ownership the peer does not have); device nodes
 * are refused (mknod(2) needs CAP_MKNOD, and a device in a served tree is a way around every
 * file permission). FIFOs and the sticky bit are allowed to everyone: mkfifo(3) and chmod +t
 * need no privilege.
 */

/** Numeric credentials (SO_PEERCRED's, or the process's own). */
export interface Ids {
  readonly uid: number;
  readonly gid: number;
}

/** The running process's effective ids: the writer of every extraction and upload it makes. */
export function processIds(): Ids {
  return { uid: process.geteuid?.() ?? -1, gid: process.getegid?.() ?? -1 };
}

export interface SetRule {
  /**
   * The owner each entry gets: 'archive' = the archive's numeric uid/gid; an `Ids` = that
   * owner, whatever the archive says (chown by a root writer for a non-root peer); 'writer' =
   * left as created (the writing process's own user, no chown tried).
   */
  readonly owner: 'archive' | 'writer' | Ids;
  /** Keep set-uid and set-gid bits. */
  readonly setId: boolean;
  /** Which extended attributes are applied. */
  readonly xattrs: 'all' | 'user';
  /** Character and block devices may be created. */
  readonly devices: boolean;
}

/**
 * The rule for a `writer` (the extracting process: `process.geteuid()`) acting for `peer`
 * (the server's SO_PEERCRED of the client; for `pull`, the writer itself). An unknown peer (a
 * route mounted in an app without nullgate's peer hook) is treated as unprivileged.
 */
export function setRule(writer: Ids, peer: Ids | undefined): SetRule {
  if (writer.uid === 0 && peer?.uid === 0) {
    return { owner: 'archive', setId: true, xattrs: 'all', devices: true };
  }
  const owner = writer.uid === 0 && peer !== undefined ? { uid: peer.uid, gid: peer.gid } : 'writer';
  return { owner, setId: false, xattrs: 'user', devices: false };
}

/** The permission bits (07777) an entry is given: set-uid/set-gid dropped unless allowed. */
export function modeUnder(rule: SetRule, mode: number): number {
  return mode & (rule.setId ? 0o7777 : 0o1777);
}

/** Whether the extended attribute `name` is applied under `rule`. */
export function xattrAllowed(rule: SetRule, name: string): boolean {
  return rule.xattrs === 'all' || name.startsWith('user.');
}

/**
 * The uid/gid to chown an entry to (the archive's when `rule.owner` is 'archive'), or
 * undefined when no chown is to be tried.
 */
export function ownerUnder(rule: SetRule, archive: Ids): Ids | undefined {
  if (rule.owner === 'writer') return undefined;
  return rule.owner === 'archive' ? archive : rule.owner;
}

/**
 * Whether an existing directory (owned by `existingUid`) that an archive merges into may get
 * the archive's mode and mtime: always for root acting for root (as `tar -xp`), otherwise only
 * when the directory already belongs to the one the rule writes as — chmod(2) and utimensat(2)
 * with explicit times need ownership, and a root server must not do them on a peer's behalf
 * where the peer could not.
 */
export function mayRetouch(rule: SetRule, writer: Ids, existingUid: number): boolean {
  if (rule.owner === 'archive') return true;
  const uid = rule.owner === 'writer' ? writer.uid : rule.owner.uid;
  return existingUid === uid;
}
