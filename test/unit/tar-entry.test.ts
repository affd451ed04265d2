import { describe, expect, it } from 'vitest';

import { NullgateError } from '../../core/errors.js';
import { entryLabel, entryPath, hardlinkTarget, isAllZero, symlinkPrefix } from '../../core/tar-entry.js';
import { shortened } from '../../core/rel-path.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(NullgateError);
    return (err as NullgateError).code;
  }
}

describe('entryPath: archive member names', () => {
  it.each([
    ['a', 'a'],
    ['a/b.txt', 'a/b.txt'],
    ['a/b/c', 'a/b/c'],
    ['./a//b/', 'a/b'],
    ['./a/b/', 'a/b'],
    ['a//b/./c', 'a/b/c'],
    ['.', ''],
    ['./', ''],
    ['dir/', 'dir'],
    ['ünïcødé/日本', 'ünïcødé/日本'],
    ['a\\..\\b', 'a\\..\\b'], // a backslash is an ordinary byte, not a separator
    ['..foo/bar..', '..foo/bar..'],
    ['.nullgate-tm/x', '.nullgate-tm/x'],
    ['a.nullgate-tmp-x', 'a.nullgate-tmp-x'],
  ])('%j → %j', (name, rel) => {
    expect(entryPath(name)).toBe(rel);
  });

  it.each([
    ['/etc/passwd', 'absolute path'],
    ['//etc', 'absolute path'],
    ['..', "'..'"],
    ['../x', "'..'"],
    ['a/../../x', "'..'"],
    ['a/../b', "'..'"],
    ['./..', "'..'"],
    ['a/..', "'..'"],
    ['a\0b', 'NUL'],
    // The names of the server's own temporaries, in any component.
    ['.nullgate-tmp-0123456789abcdef', 'reserved'],
    ['dir/.nullgate-tmp-mine/file', 'reserved'],
    ['./.nullgate-tmp-', 'reserved'],
  ])('%j is refused (%s)', (name, why) => {
    expect(codeOf(() => entryPath(name))).toBe('NG_ERR_ARCHIVE_UNSAFE');
    expect(() => entryPath(name)).toThrow(why);
    expect(() => entryPath(name)).toThrow(`"${name}"`);
  });
});

describe('hardlinkTarget: a member of the same archive, by its name', () => {
  it.each([
    ['f', 'f'],
    ['./d//f', 'd/f'],
  ])('%j → %j', (linkname, target) => {
    expect(hardlinkTarget('h', linkname)).toBe(target);
  });

  it.each([
    ['../outside', 'leading outside'],
    ['/etc/passwd', 'leading outside'],
    ['.nullgate-tmp-x/f', 'leading outside'],
    ['.', 'target directory'],
    ['', 'target directory'],
  ])('%j is refused (%s)', (linkname, why) => {
    expect(codeOf(() => hardlinkTarget('h', linkname))).toBe('NG_ERR_ARCHIVE_UNSAFE');
    expect(() => hardlinkTarget('h', linkname)).toThrow(why);
  });
});

describe('symlinkPrefix: entries below a symlink an earlier entry made', () => {
  const links = new Set(['s', 'd/t']);
  it.each([
    ['s/x', 's'],
    ['s/x/y', 's'],
    ['d/t/x', 'd/t'],
    ['d/x', undefined],
    ['s', undefined], // the link itself: replaced, not written through
    ['sx/y', undefined],
    ['d/tt/y', undefined],
  ])('%s → %s', (rel, prefix) => {
    expect(symlinkPrefix(rel, links)).toBe(prefix);
  });
});

describe('isAllZero', () => {
  it.each([
    [Buffer.alloc(0), true],
    [Buffer.alloc(10), true],
    [Buffer.alloc(200_000), true],
    [Buffer.from([0, 0, 1]), false],
    [Buffer.concat([Buffer.alloc(150_000), Buffer.from([1])]), false],
  ])('%#', (buf, zero) => {
    expect(isAllZero(buf)).toBe(zero);
  });
});

describe('entryLabel and shortened: names in messages are cut to 100 bytes', () => {
  it.each([
    ['short', '"short"'],
    ['x'.repeat(100), `"${'x'.repeat(100)}"`],
    ['x'.repeat(101), `"${'x'.repeat(100)}…" (101 bytes)`],
    // 99 ASCII bytes, then a 3-byte character that the cut at 100 would split: it is left out.
    [`${'x'.repeat(99)}日本`, `"${'x'.repeat(99)}…" (105 bytes)`],
  ])('%s', (name, label) => {
    expect(entryLabel(name)).toBe(label);
  });

  it('never splits a character', () => {
    for (let n = 0; n < 8; n++) {
      const text = `${'a'.repeat(n)}${'é'.repeat(100)}`;
      const cut = shortened(text, 50);
      expect(Buffer.byteLength(cut.slice(0, -1))).toBeLessThanOrEqual(50);
      expect(cut.slice(0, -1)).toBe(text.slice(0, cut.length - 1));
    }
  });
});
