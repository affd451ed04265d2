/**
 * A single file's metadata on upload (CONTRACT.md "Single files too"): `PUT /files/<file>` takes
 * the X-Nullgate-Mode, -Uid, -Gid and -Mtime headers that GET sends (core/file-meta.ts) and
 * applies them under the rule of who may set what (core/set-rule.ts), as PUT /archive does for
 * each entry: a root peer of a root server gets owner and set-id bits as given; anyone else
 * gets the mode without set-uid/set-gid, and, when they ask for an owner, the one the rule
 * gives (their own uid/gid with a root server, the server's user otherwise: no chown).
 */
import { fchmod as fchmodCb, fchown as fchownCb } from 'node:fs';
import { promisify } from 'node:util';
import type { IncomingHttpHeaders } from 'node:http';
import { ngError } from '../core/errors.js';
import {
  GID_HEADER,
  MODE_HEADER,
  MTIME_HEADER,
  UID_HEADER,
  parseId,
  parseMode,
  parseMtime,
} from '../core/file-meta.js';
import { type Ids, modeUnder, ownerUnder, processIds, setRule } from '../core/set-rule.js';
import type { BeneathRoot } from '../native/beneath.js';

const fchmod = promisify(fchmodCb);
const fchown = promisify(fchownCb);

/** What a PUT asked to keep; an absent header leaves that property as a plain upload makes it. */
export interface UploadMeta {
  readonly mode: number | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly mtimeNs: bigint | undefined;
}

function one(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** The metadata headers of a PUT; a malformed one is 400 before the body is read. */
export function uploadMeta(headers: IncomingHttpHeaders): UploadMeta {
  const parse = <T>(name: string, parser: (text: string | undefined) => T | undefined): T | undefined => {
    const text = one(headers, name);
    if (text === undefined) return undefined;
    const value = parser(text);
    if (value === undefined) {
      throw ngError('NG_ERR_BAD_REQUEST', `invalid ${name} header: ${JSON.stringify(text.slice(0, 40))}`);
    }
    return value;
  };
  return {
    mode: parse(MODE_HEADER, parseMode),
    uid: parse(UID_HEADER, parseId),
    gid: parse(GID_HEADER, parseId),
    mtimeNs: parse(MTIME_HEADER, parseMtime),
  };
}

/**
 * Owner and mode, on the verified temporary before it is linked (readers never see the file with
 * other bits). chown first: it clears set-id bits, which the chmod then sets if allowed.
 */
export async function applyOwnerAndMode(fd: number, meta: UploadMeta, peer: Ids | undefined): Promise<void> {
  const writer = processIds();
  const rule = setRule(writer, peer);
  if (meta.uid !== undefined || meta.gid !== undefined) {
    const owner = ownerUnder(rule, { uid: meta.uid ?? -1, gid: meta.gid ?? -1 });
    if (owner !== undefined) await fchown(fd, owner.uid, owner.gid);
  }
  if (meta.mode !== undefined) await fchmod(fd, modeUnder(rule, meta.mode));
}

/**
 * The mtime, to the nanosecond, once the file has its name (utimensat works on names; the fd
 * route through Node rounds to a double). Readers may see the upload's own mtime for that moment.
 */
export async function applyMtime(root: BeneathRoot, target: string, meta: UploadMeta): Promise<void> {
  if (meta.mtimeNs !== undefined) await root.lutimesNs(target, null, meta.mtimeNs);
}
