/**
 * core/name-bytes.ts: names are bytes; strings carry the bytes that are not UTF-8 as lone
 * surrogates (PEP 383's surrogateescape), so every name goes to JS and back unchanged.
 */
import { describe, expect, it } from 'vitest';

import { bytesToName, compareNames, encodeNameComponent, nameToBytes } from '../../core/name-bytes.js';
import { decodeFilePath } from '../../routes/url-path.js';

const hex = (s: string): Buffer => Buffer.from(s.replaceAll(' ', ''), 'hex');

describe('bytesToName / nameToBytes', () => {
  it.each([
    ['ASCII', hex('61 2e 74 78 74'), 'a.txt'],
    ['UTF-8', Buffer.from('ünïcødé 日本'), 'ünïcødé 日本'],
    ['4-byte UTF-8 (a surrogate pair in JS)', Buffer.from('a😀b'), 'a😀b'],
    ['a lone 0xff', hex('62 61 64 ff'), 'bad\udcff'],
    ['a lone continuation byte', hex('80'), '\udc80'],
    ['a truncated sequence', hex('e6 97'), '\udce6\udc97'],
    ['an overlong form', hex('c0 af'), '\udcc0\udcaf'],
    ['an encoded surrogate (CESU)', hex('ed a0 80'), '\udced\udca0\udc80'],
    ['above U+10FFFF', hex('f4 90 80 80'), '\udcf4\udc90\udc80\udc80'],
    ['Latin-1 text', hex('63 61 66 e9'), 'caf\udce9'],
    ['valid and invalid mixed', Buffer.concat([Buffer.from('é'), hex('fe'), Buffer.from('日')]), 'é\udcfe日'],
  ])('%s', (_, bytes, name) => {
    expect(bytesToName(bytes)).toBe(name);
    expect(nameToBytes(name)).toEqual(bytes);
  });

  it('every byte string of length 1 and 2 survives the round trip', () => {
    for (let a = 0; a < 256; a++) {
      expect(nameToBytes(bytesToName(Buffer.from([a])))).toEqual(Buffer.from([a]));
      for (let b = 0; b < 256; b += 7) {
        const bytes = Buffer.from([a, b]);
        expect(nameToBytes(bytesToName(bytes))).toEqual(bytes);
      }
    }
  });

  it('a lone surrogate that carries no byte encodes as U+FFFD (as V8 writes it)', () => {
    expect(nameToBytes('a\ud800b')).toEqual(Buffer.from('a\ufffdb'));
    expect(nameToBytes('\udc41')).toEqual(Buffer.from('\ufffd'));
  });
});

describe('encodeNameComponent: encodeURIComponent for names that are bytes', () => {
  it.each([
    ['ASCII', 'a.txt', 'a.txt'],
    ['reserved characters', "a b?#%&=+;!~*'()", "a%20b%3F%23%25%26%3D%2B%3B!~*'()"],
    ['UTF-8', 'café 日', 'caf%C3%A9%20%E6%97%A5'],
    ['a surrogate pair', '😀', '%F0%9F%98%80'],
    ['Latin-1 (not UTF-8)', 'caf\udce9', 'caf%E9'],
    ['a lone 0xff and a lone continuation byte', '\udcff\udc80x', '%FF%80x'],
    ['valid and invalid mixed', 'é\udcfe日', '%C3%A9%FE%E6%97%A5'],
    ['an encoded surrogate (CESU)', '\udced\udca0\udc80', '%ED%A0%80'],
  ])('%s', (_, name, encoded) => {
    expect(encodeNameComponent(name)).toBe(encoded);
    // The server's decoding gives back the same name.
    expect(decodeFilePath(`/${encoded}`).rel).toBe(name);
  });

  it('equals encodeURIComponent for every well-formed string it is given', () => {
    for (const s of ['', 'a', 'é', '日本', 'a/b', '%', '\u007f', '\ud83d\ude00']) {
      expect(encodeNameComponent(s)).toBe(encodeURIComponent(s));
    }
  });

  it('every byte string of length 1 and 2 goes to a URL segment and back (no / or NUL)', () => {
    for (let a = 1; a < 256; a++) {
      for (let b = 1; b < 256; b += 5) {
        const bytes = Buffer.from([a, b]);
        const name = bytesToName(bytes);
        if (bytes.includes(0x2f) || name === '.' || name === '..') continue;
        expect(nameToBytes(decodeFilePath(`/${encodeNameComponent(name)}`).rel)).toEqual(bytes);
      }
    }
  });
});

describe('compareNames: byte order of names, raw bytes included', () => {
  const name = (...bytes: number[]): string => bytesToName(Buffer.from(bytes));
  it.each([
    ['a', 'b', -1],
    ['B', 'a', -1],
    ['a', 'a', 0],
    ['a', 'a.b', -1],
    ['a/b', 'a.b', 1],
    // é is C3 A9 in UTF-8: after every ASCII name, before a raw byte 0xE9.
    ['\u00e9', 'z', 1],
    [name(0xe9), '\u00e9', 1],
    // A raw 0x80 sorts before the UTF-8 of U+FFFD (EF BF BD), which Buffer.from would give it.
    [name(0x80), '\ufffd', -1],
  ])('%j against %j', (a, b, sign) => {
    expect(Math.sign(compareNames(a, b))).toBe(sign);
    expect(Math.sign(compareNames(b, a))).toBe(-sign || 0);
  });
});
