/**
 * `PUT /archive/<dir>`'s second half: the staged tree (routes/archive/stage.ts) moved into
 * place. A missing target directory is the staging directory renamed into place in one step;
 * an existing one gets a merge, planned in full before anything moves and undone when a move
 * fails.
 */
import type { FastifyBaseLogger } from 'fastify';

import { codeOf, fsError, ngError } from '../../core/errors.js';
import {
  ancestorsOf,
  displayPath,
  isWithin,
  joinRel,
  parentOf,
  shortened,
  TEMP_NAME_PREFIX,
} from '../../core/rel-path.js';
import { entryLabel, unsafeEntry } from '../../core/tar-entry.js';
import type { BeneathRoot, BeneathStat } from '../../native/beneath.js';
import type { Stager } from './stage.js';

/**
 * Where a PUT goes: whether the target directory exists, and the directory the staged tree is
 * moved from into place — the target itself, else its nearest existing ancestor. A file in the
 * way is 409, a path leading out of the root 403.
 */
export async function locate(root: BeneathRoot, rel: string): Promise<{ exists: boolean; near: string }> {
  let found: { rel: string; stat: BeneathStat };
  try {
    found = await root.nearestExisting(rel);
  } catch (err) {
    throw fsError(err, displayPath(rel, true));
  }
  if (found.stat.type !== 'dir') {
    throw ngError(
      'NG_ERR_CONFLICT',
      found.rel === rel
        ? `not a directory: ${displayPath(rel)}`
        : `not a directory: a file is in the way of ${displayPath(rel)}`,
    );
  }
  return { exists: found.rel === rel, near: found.rel };
}

/**
 * The deletions of a sync push (deletion records, `PUT /archive/<dir>?sync=1`) that find
 * something to delete in `target`: the outermost of nested ones, each checked to be reached
 * through real directories only (a symlink on the way is refused, as for any entry). A path
 * with nothing there is already as asked.
 */
async function planDeletions(
  root: BeneathRoot,
  target: string,
  deletions: readonly string[],
): Promise<string[]> {
  const out: string[] = [];
  const sorted = [...new Set(deletions)].sort((a, b) => a.split('/').length - b.split('/').length);
  next: for (const rel of sorted) {
    if (out.some((d) => isWithin(rel, d))) continue;
    for (const dir of ancestorsOf(rel)) {
      const st = await lstatOrNothing(root, joinRel(target, dir));
      if (st === undefined || (st.type !== 'dir' && st.type !== 'symlink')) continue next;
      if (st.type === 'symlink') {
        throw unsafeEntry(
          rel,
          `leads through the symlink ${shortened(displayPath(joinRel(target, dir)))} already in the tree`,
        );
      }
    }
    if ((await lstatOrNothing(root, joinRel(target, rel))) !== undefined) out.push(rel);
  }
  return out;
}

async function lstatOrNothing(root: BeneathRoot, rel: string): Promise<BeneathStat | undefined> {
  try {
    return await root.lstat(rel);
  } catch (err) {
    if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** One rename of a merge: `from` (in the staging tree) to `to`, which it may replace. */
interface MergeMove {
  readonly from: string;
  readonly to: string;
  readonly replaces: boolean;
}

/**
 * Plans moving the staged tree into an existing directory `target`: entries missing there are
 * renamed in, non-directories replace non-directories, and directories present on both sides
 * are merged recursively. A directory meeting a non-directory is a conflict. Everything is
 * checked before anything moves.
 */
async function planMerge(
  root: BeneathRoot,
  staging: string,
  target: string,
  rel: string,
  moves: MergeMove[],
  merged: Set<string>,
  deleted: ReadonlySet<string>,
): Promise<void> {
  for await (const dirent of root.readdir(joinRel(staging, rel))) {
    const childRel = joinRel(rel, dirent.name);
    const from = joinRel(staging, childRel);
    const to = joinRel(target, childRel);
    const stagedIsDir = dirent.type === 'dir';
    let existing: BeneathStat;
    try {
      // What a deletion of this push removes is gone by the time this move is made.
      if (deleted.has(childRel)) throw Object.assign(new Error('deleted'), { code: 'ENOENT' });
      existing = await root.lstat(to);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') throw err;
      moves.push({ from, to, replaces: false });
      continue;
    }
    if (stagedIsDir && existing.type === 'symlink') {
      // Entries beneath it would be written through a symlink already in the tree.
      throw unsafeEntry(
        `${childRel}/`,
        `leads through the symlink ${shortened(displayPath(to))} already in the tree`,
      );
    }
    if (stagedIsDir && existing.type === 'dir') {
      merged.add(childRel);
      await planMerge(root, staging, target, childRel, moves, merged, deleted);
    } else if (stagedIsDir || existing.type === 'dir') {
      throw ngError(
        'NG_ERR_CONFLICT',
        `archive entry ${entryLabel(childRel)} is ${stagedIsDir ? 'a directory' : 'not a directory'} but ${shortened(displayPath(to))} ${
          stagedIsDir ? 'is not' : 'is'
        }`,
      );
    } else {
      moves.push({ from, to, replaces: true });
    }
  }
}

/** How a move was made, so that it can be undone. */
type DoneMove = MergeMove & {
  readonly how: 'new' | 'exchange' | 'aside' | 'deleted';
  readonly aside?: string;
};

/**
 * Makes the moves of a merge, all or nothing as far as rename(2) allows. A new name is renamed
 * in with RENAME_NOREPLACE. A replaced entry is swapped with its staged successor in one
 * renameat2(RENAME_EXCHANGE), so readers see the old entry or the new one and the old one lands
 * in the staging tree; where the file system cannot exchange (EINVAL), the old entry is renamed
 * aside into the staging directory first (a reader may then miss the name for an instant).
 * When a move fails, the ones made are undone in reverse order — the old entries come back from
 * the staging tree — before the error is thrown. Undoing is renames again, so it can only fail
 * where the target is changed by someone else meanwhile; such a failure is logged.
 */
async function applyMoves(
  root: BeneathRoot,
  moves: readonly MergeMove[],
  deletions: readonly string[],
  staging: string,
  log: FastifyBaseLogger,
): Promise<void> {
  const done: DoneMove[] = [];
  let exchange = true;
  // Renames change their directories' mtime: an undone merge puts those back too.
  const parents = [...new Set([...moves.map((m) => m.to), ...deletions].map(parentOf))];
  const mtimes = new Map<string, number>();
  for (const dir of parents) {
    const st = await root.lstat(dir).catch(() => undefined);
    if (st) mtimes.set(dir, st.mtimeMs);
  }
  try {
    // Deletions first, as renames aside into the staging tree: undone like the moves, and
    // removed with the staging directory once everything is in place.
    for (const [i, to] of deletions.entries()) {
      const aside = joinRel(staging, `${TEMP_NAME_PREFIX}deleted-${i}`);
      await root.rename(to, aside, { noReplace: true });
      done.push({ from: aside, to, replaces: true, how: 'deleted', aside });
    }
    for (const move of moves) {
      if (!move.replaces) {
        await root.rename(move.from, move.to, { noReplace: true });
        done.push({ ...move, how: 'new' });
        continue;
      }
      if (exchange) {
        try {
          await root.rename(move.from, move.to, { exchange: true });
          done.push({ ...move, how: 'exchange' });
          continue;
        } catch (err) {
          if (codeOf(err) !== 'EINVAL') throw err;
          exchange = false;
        }
      }
      // Temporary names never come from an archive (entryPath refuses them).
      const aside = joinRel(staging, `${TEMP_NAME_PREFIX}aside-${done.length}`);
      await root.rename(move.to, aside, { noReplace: true });
      try {
        await root.rename(move.from, move.to, { noReplace: true });
      } catch (err) {
        await root.rename(aside, move.to).catch((undoErr: unknown) => {
          log.error(
            { err: undoErr, path: displayPath(move.to) },
            'archive: could not restore a replaced entry',
          );
        });
        throw err;
      }
      done.push({ ...move, how: 'aside', aside });
    }
  } catch (err) {
    for (const move of done.reverse()) {
      try {
        if (move.how === 'exchange') {
          await root.rename(move.from, move.to, { exchange: true });
        } else if (move.how === 'deleted') {
          await root.rename(move.from, move.to, { noReplace: true });
        } else {
          await root.rename(move.to, move.from, { noReplace: true });
          if (move.aside !== undefined) await root.rename(move.aside, move.to, { noReplace: true });
        }
      } catch (undoErr) {
        log.error({ err: undoErr, path: displayPath(move.to) }, 'archive: could not undo a merged entry');
      }
    }
    for (const [dir, mtimeMs] of mtimes) {
      await root.lutimes(dir, null, new Date(mtimeMs)).catch((undoErr: unknown) => {
        log.error({ err: undoErr, path: displayPath(dir, true) }, 'archive: could not restore a mtime');
      });
    }
    throw err;
  }
}

/** Moves the staged tree into place; true when the target directory was created. */
export async function commit(
  root: BeneathRoot,
  stager: Stager,
  staging: string,
  target: string,
  exists: boolean,
  log: FastifyBaseLogger,
): Promise<{ created: boolean; deleted: number }> {
  if (!exists) {
    await stager.finish();
    // Durable before visible, with one syncfs(2) of the staging tree's file system instead of an
    // fsync per file and directory (a tree of 10,000 small files waited 10,000 times).
    await root.syncfs(staging);
    await root.mkdirp(parentOf(target));
    try {
      await root.rename(staging, target, { noReplace: true });
      await root.fsyncDir(parentOf(target));
      return { created: true, deleted: 0 };
    } catch (err) {
      // Someone created the target meanwhile: merge into it like into any existing directory.
      if (codeOf(err) !== 'EEXIST' && codeOf(err) !== 'ENOTEMPTY') throw err;
    }
  }
  const moves: MergeMove[] = [];
  const merged = new Set<string>();
  const deletions = await planDeletions(root, target, stager.deleted);
  await planMerge(root, staging, target, '', moves, merged, new Set(deletions));
  merged.add('');
  await stager.finish(merged);
  // The staged data durable before any of it becomes visible (one syncfs(2), as above).
  await root.syncfs(staging);
  await applyMoves(
    root,
    moves,
    deletions.map((d) => joinRel(target, d)),
    staging,
    log,
  );
  // The directories merged into get the archive's modes and times now that they are filled
  // (a re-push leaves their mtimes as the archive says, not now).
  await stager.retouch(target, merged);
  // The new names, the deletions and the retouched directories' metadata durable: one more
  // syncfs of the target's file system (the staging directory is on the same one).
  await root.syncfs(target);
  // What is left in the staging tree is the replaced entries and the merged directories'
  // shells. The merge is done: a failure here is the server's to log, not the client's error
  // (and the sweep of the next start removes a staging directory at the top of the root).
  await root.rm(staging, { recursive: true }).catch((err: unknown) => {
    log.error({ err }, 'archive: could not remove the staging directory');
  });
  return { created: false, deleted: deletions.length };
}
