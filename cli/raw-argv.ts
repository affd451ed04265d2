/**
 * Arguments as bytes. Node decodes argv as UTF-8 and replaces what is not UTF-8 with U+FFFD, so
 * `nullgate get "$(printf 'caf\xe9')"` would name a file that does not exist and the byte is
 * lost. The kernel keeps argv as bytes in /proc/self/cmdline: an argument that came out with
 * U+FFFD is read from there again and carried as file names are (surrogateescape,
 * core/name-bytes.ts), so it names the file with those bytes.
 */
import { readFileSync } from 'node:fs';
import { bytesToName } from '../core/name-bytes.js';

/** argv's entries as bytes, from the kernel's copy; undefined when it cannot be read. */
function cmdline(): Buffer[] | undefined {
  let raw: Buffer;
  try {
    raw = readFileSync('/proc/self/cmdline');
  } catch {
    return undefined;
  }
  const entries: Buffer[] = [];
  let start = 0;
  for (let at = raw.indexOf(0); at !== -1; at = raw.indexOf(0, start)) {
    entries.push(raw.subarray(start, at));
    start = at + 1;
  }
  return entries;
}

/**
 * `args` (the process's last arguments, `process.argv.slice(2)`) with each one that Node decoded
 * lossily replaced by its bytes. An argument is replaced only when the kernel's copy at the same
 * place (counted from the end: node's own options come first) decodes to exactly what Node
 * gave, so arguments that did not come from this process's command line (a caller of main(),
 * a changed process title) are left as they are.
 */
export function rawArgs(args: readonly string[]): string[] {
  if (!args.some((a) => a.includes('\ufffd'))) return [...args];
  const entries = cmdline();
  if (entries === undefined || entries.length < args.length) return [...args];
  const tail = entries.slice(entries.length - args.length);
  return args.map((arg, i) => {
    const bytes = tail[i]!;
    return arg.includes('\ufffd') && bytes.toString('utf8') === arg ? bytesToName(bytes) : arg;
  });
}
