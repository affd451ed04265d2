/**
 * Best-effort answer to "who holds this socket name?" for the EADDRINUSE message, read from
 * /proc the way `ss -xlp` does: the inode of the listening socket in /proc/net/unix, then the
 * process with an fd that links to socket:[inode]. Undefined when /proc cannot tell (another
 * user's process without root, another pid namespace).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import type { Address } from '../core/address.js';

export interface SocketOwner {
  readonly pid: number;
  readonly command: string;
}

/** /proc/net/unix prints abstract names with '@' for the leading NUL and for every NUL inside. */
function procName(address: Address): string | undefined {
  if (address.kind === 'abstract') return `@${address.name.toString('latin1').replace(/\0/g, '@')}`;
  if (address.kind === 'path') return address.path;
  return undefined;
}

/**
 * How to name a process for a human: argv[0]'s basename and, when there is one, the first
 * argument (a script path as its basename): `node nullgate.js`, `socat ABSTRACT-LISTEN:x`. Not
 * /proc/PID/comm, which is the *thread* name — `MainThread` for Node 24's main thread.
 */
export function commandOf(pid: number | string): string {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((a) => a !== '');
  } catch {
    // The process may be gone already; the pid alone still helps.
    return '';
  }
  // Kernel threads and zombies have an empty cmdline; comm is all there is.
  if (argv.length === 0) {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  }
  const [argv0 = '', arg] = argv;
  if (arg === undefined) return basename(argv0);
  // A script path shows as its name; anything else (a flag, `ADDR:/path`) as is, cut short.
  const first = arg.includes('/') && !/[:=]/.test(arg) ? basename(arg) : arg;
  return `${basename(argv0)} ${first.length > 40 ? `${first.slice(0, 40)}…` : first}`;
}

export function findSocketOwner(address: Address): SocketOwner | undefined {
  const wanted = procName(address);
  if (wanted === undefined) return undefined;
  let inode: string | undefined;
  try {
    for (const line of readFileSync('/proc/net/unix', 'latin1').split('\n').slice(1)) {
      // Num RefCount Protocol Flags Type St Inode Path
      const fields = line.trim().split(/\s+/);
      if (fields.length >= 8 && fields.slice(7).join(' ') === wanted && fields[3] === '00010000') {
        inode = fields[6];
        break;
      }
    }
  } catch {
    return undefined;
  }
  if (inode === undefined) return undefined;
  const target = `socket:[${inode}]`;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) {
          return { pid: Number(pid), command: commandOf(pid) };
        }
      } catch {
        // fds come and go while we look.
      }
    }
  }
  return undefined;
}
