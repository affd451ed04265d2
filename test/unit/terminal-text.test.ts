/** Server text made safe for a terminal: one function, every class of control character. */
import { describe, expect, it } from 'vitest';
import { escapeControls, escapeJsonControls } from '../../core/terminal-text.js';

describe('escapeControls', () => {
  it.each([
    ['plain.txt', 'plain.txt'],
    ['', ''],
    // Printable non-ASCII stays (names in any language).
    ['résumé – 日本.txt', 'résumé – 日本.txt'],
    // Backslashes stay: nullgate's own \xHH address syntax must survive.
    ['@name\\x00tail', '@name\\x00tail'],
    // ESC sequences: clear screen, set the window title (OSC 0 … BEL), OSC 52 clipboard.
    ['\x1b[2J\x1b[H', '\\x1b[2J\\x1b[H'],
    ['\x1b]0;owned\x07', '\\x1b]0;owned\\x07'],
    ['\x1b]52;c;ZWNobyBoaQ==\x1b\\', '\\x1b]52;c;ZWNobyBoaQ==\\x1b\\'],
    // Line forgery and overwriting.
    ['a\nnullgate: all good', 'a\\nnullgate: all good'],
    ['evil\rgood', 'evil\\rgood'],
    ['tab\there', 'tab\\there'],
    ['back\bspace', 'back\\x08space'],
    ['\x00', '\\x00'],
    ['\x1f', '\\x1f'],
    ['\x7f', '\\x7f'],
    // C1: the 8-bit CSI and OSC, and the ends of the range.
    ['\u009b2J', '\\u009b2J'],
    ['\u009d0;t\u009c', '\\u009d0;t\\u009c'],
    ['\u0080\u009f', '\\u0080\\u009f'],
    // Just outside the ranges: printable.
    [' ~\u00a0¡', ' ~\u00a0¡'],
    // Bytes of a name that are not UTF-8 (surrogateescape) as \xHH, not as U+FFFD.
    ['caf\udce9', 'caf\\xe9'],
    ['\udc80\udcff/', '\\x80\\xff/'],
    // The low half of a surrogate pair (U+1F480) is a character, not a byte.
    ['\ud83d\udc80', '\ud83d\udc80'],
  ])('%j → %j', (input, output) => {
    expect(escapeControls(input)).toBe(output);
  });
});

describe('escapeJsonControls', () => {
  it('escapes DEL and C1, which JSON.stringify leaves raw, and parses back to the same value', () => {
    const value = { name: 'a\x1b[2J\x7f\u009b\u00e9' };
    const json = escapeJsonControls(JSON.stringify(value));
    expect(json).toBe('{"name":"a\\u001b[2J\\u007f\\u009bé"}');
    expect(JSON.parse(json)).toEqual(value);
  });
});
