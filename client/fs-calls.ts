/**
 * The fs calls of a download (get -o, request -o: client/local-file.ts, keep.ts, resume.ts) as
 * promises, made from node:fs's callback API. node:fs/promises would do, but loading it loads
 * its FileHandle class, fs watchers and readline with it: ~8% of a 1 KiB `get -o`'s start-up,
 * which its calls do not need (docs/performance.md, "Client start-up").
 */
import fs from 'node:fs';
import { promisify } from 'node:util';

export const stat = promisify(fs.stat);
export const fstat = promisify(fs.fstat);
export const realpath = promisify(fs.realpath);
export const open = promisify(fs.open);
export const close = promisify(fs.close);
export const write = promisify(fs.write);
export const rename = promisify(fs.rename);
export const rm = promisify(fs.rm);
export const chmod = promisify(fs.chmod);
export const chown = promisify(fs.chown);
export const utimes = promisify(fs.utimes);
export const read = promisify(fs.read);
export const fchmod = promisify(fs.fchmod);
export const fchown = promisify(fs.fchown);
export const futimes = promisify(fs.futimes);
