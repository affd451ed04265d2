import { describe, expect, it } from 'vitest';

import { NullgateError } from '../../core/errors.js';
import {
  checkSymlink,
  entryKind,
  entryLabel,
  entryPath,
  extractedMode,
  hardlinkTarget,
  hasEndOfArchive,
  isAllZero,
  paxRecords,
  symlinkLeavesRoot,
  symlinkPrefix,
} from '../../core/tar-entry.js';
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

describe('entryKind', () => {
  it.each([
    ['file', 'file'],
    ['contiguous-file', 'file'],
    [undefined, 'file'],
    ['directory', 'dir'],
    ['symlink', 'symlink'],
    ['link', 'hardlink'],
  ] as const)('%s → %s', (type, kind) => {
    expect(entryKind('x', type)).toBe(kind);
  });

  it.each([
    ['character-device', 'NG_ERR_ARCHIVE_UNSAFE'],
    ['block-device', 'NG_ERR_ARCHIVE_UNSAFE'],
    ['fifo', 'NG_ERR_ARCHIVE_UNSAFE'],
    [null, 'NG_ERR_ARCHIVE_INVALID'],
    ['gnu-long-path', 'NG_ERR_ARCHIVE_INVALID'],
  ])('%s is refused with %s', (type, code) => {
    expect(codeOf(() => entryKind('x', type))).toBe(code);
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

describe('symlinkLeavesRoot: targets resolved lexically from the final location', () => {
  it.each([
    // [final location of the link, target, leaves?]
    ['link', 'target', false],
    ['a/b/link', '../../x', false],
    ['a/link', 'b', false],
    ['a/link', '../b', false],
    ['a/link', '..', false],
    ['a/link', '../..', true],
    ['a/link', '../../etc/passwd', true],
    ['link', '..', true],
    ['link', '.', false],
    ['link', './x/../y', false],
    ['a/b/link', 'x/../../../y', false],
    ['a/b/link', 'x/../../../../y', true],
    ['a/b/link', 'x/../../y', false],
    ['link', '/etc/passwd', true],
    ['link', '/', true],
    ['dst/sub/link', '../../dst', false],
    ['dst/sub/link', '../../../dst', true],
  ])('%s → %s leaves: %s', (finalRel, target, leaves) => {
    expect(symlinkLeavesRoot(finalRel, target)).toBe(leaves);
  });

  it.each([
    ['../../x', 'NG_ERR_ARCHIVE_UNSAFE'],
    ['/abs', 'NG_ERR_ARCHIVE_UNSAFE'],
    ['x\0y', 'NG_ERR_ARCHIVE_UNSAFE'],
    ['', 'NG_ERR_ARCHIVE_INVALID'],
    ['.nullgate-tmp-0123456789abcdef/z', 'NG_ERR_ARCHIVE_UNSAFE'],
    ['../.nullgate-tmp-x', 'NG_ERR_ARCHIVE_UNSAFE'],
    ['sibling', undefined],
    ['.nullgate-tm', undefined],
  ])('checkSymlink(a/link → %j): %s', (target, code) => {
    expect(codeOf(() => checkSymlink('link', 'a/link', target))).toBe(code);
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

describe('extractedMode: set-id bits never survive an upload', () => {
  it.each([
    ['file', 0o644, 0o644],
    ['file', 0o4755, 0o755],
    ['file', 0o2755, 0o755],
    ['file', 0o1777, 0o777],
    ['dir', 0o1777, 0o1777],
    ['dir', 0o2775, 0o775],
    ['file', undefined, 0o644],
    ['dir', undefined, 0o755],
  ] as const)('%s %o → %o', (kind, mode, expected) => {
    expect(extractedMode(kind, mode)).toBe(expected);
  });
});

describe('paxRecords: values a ustar header cannot hold (POSIX.1-2001 pax)', () => {
  const base = { size: 0, uid: 0, gid: 0, mtimeSec: 1_700_000_000 };
  it.each([
    [{}, undefined],
    [{ size: 8 * 1024 ** 3 - 1 }, undefined],
    [{ size: 8 * 1024 ** 3 }, { size: '8589934592' }],
    [{ size: 8 * 1024 ** 3 + 1 }, { size: '8589934593' }],
    [{ uid: 0o7777777 }, undefined],
    [
      { uid: 0o10000000, gid: 4_294_967_294 },
      { uid: '2097152', gid: '4294967294' },
    ],
    [{ mtimeSec: -1 }, { mtime: '-1' }],
  ])('%j → %j', (patch, expected) => {
    expect(paxRecords({ ...base, ...patch })).toEqual(expected);
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

describe('hasEndOfArchive: two zero blocks after the last entry', () => {
  it.each([
    [1024, 0, true],
    [10240, 0, true],
    [512, 0, false],
    [0, 0, false],
    [2048 + 1024, 2048, true],
    [2048 + 512, 2048, false],
    [2048, 2048, false],
  ])('total %d, last entry ends at %d → %s', (total, lastEnd, ok) => {
    expect(hasEndOfArchive(total, lastEnd)).toBe(ok);
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
