/**
 * Text from elsewhere (a server's file names and error messages) made safe to print on a
 * terminal. A terminal acts on control characters: ESC starts sequences that clear the screen,
 * move the cursor, set the window title or (on some terminals) write to the clipboard; CR and
 * BS overwrite what was printed; LF forges extra lines. GNU ls (`ls -b`, and `?` by default on a
 * terminal) and curl (which replaces them in what it writes to stderr) defuse them; so does this.
 *
 * What is escaped: C0 (U+0000–U+001F, tab and newline included), DEL (U+007F) and C1
 * (U+0080–U+009F: U+009B is a one-character CSI, U+009D an OSC, for terminals that take 8-bit
 * controls). Everything else, non-ASCII letters included, is printed as it is. Backslashes are
 * left alone, so addresses printed in nullgate's own `\xHH` syntax stay as they were.
 */

const SHORT: Readonly<Record<string, string>> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROLS = /[\x00-\x1f\x7f-\x9f]/g;

function escapeOne(c: string): string {
  const code = c.charCodeAt(0);
  const short = SHORT[c];
  if (short !== undefined) return short;
  // C1 are code points (two bytes in UTF-8), so they are written as such; C0 and DEL as bytes.
  return code >= 0x80 ? `\\u00${code.toString(16)}` : `\\x${code.toString(16).padStart(2, '0')}`;
}

/**
 * A byte of a file name that is not UTF-8, as strings carry it (U+DC80..U+DCFF, core/name-bytes.ts)
 * and not the low half of a surrogate pair: written as it is, it would print as U+FFFD.
 */
const NAME_BYTE = /(?<![\ud800-\udbff])[\udc80-\udcff]/g;

/**
 * `text` with every C0, DEL and C1 control character written as an escape (`\x1b`, `\n`,
 * `\u009b`), and each byte of a name that is not UTF-8 as `\xHH` (`caf\xe9`, as nullgate writes
 * bytes of addresses).
 */
export function escapeControls(text: string): string {
  return text
    .replace(CONTROLS, escapeOne)
    .replace(NAME_BYTE, (c) => `\\x${(c.charCodeAt(0) - 0xdc00).toString(16)}`);
}

/**
 * JSON text with DEL and C1 escaped too (`\u007f`, `\u009b`): JSON.stringify escapes C0 already,
 * and the result parses to the same value.
 */
export function escapeJsonControls(json: string): string {
  return json.replace(/[\x7f-\x9f]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}
