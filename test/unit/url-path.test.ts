import { describe, expect, it } from 'vitest';
import { isNullgateError } from '../../core/errors.js';
import { displayPath } from '../../core/rel-path.js';
import { decodeFilePath, requestPath, requestPaths, targetPath } from '../../routes/url-path.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isNullgateError(err) ? err.code : 'not a NullgateError';
  }
  return undefined;
}

describe('decodeFilePath: RFC 3986 §2.1 percent-decoding once, §6.2.2.2 dot-segments', () => {
  it.each<[string, string, boolean]>([
    ['', '', false],
    ['/', '', true],
    ['/a', 'a', false],
    ['/a/b', 'a/b', false],
    ['/a/b/', 'a/b', true],
    ['//a///b/', 'a/b', true],
    ['/./a', 'a', false],
    ['/a/./b/.', 'a/b', true],
    ['/a/%2e/b', 'a/b', false],
    ['/%c3%a9', 'é', false],
    ['/%C3%A9t%C3%A9.txt', 'été.txt', false],
    ['/caf%C3%A9/', 'café', true],
    ['/%252e%252e', '%2e%2e', false],
    ['/%2525', '%25', false],
    ['/a%20b', 'a b', false],
    ['/a+b', 'a+b', false],
    ['/...', '...', false],
    ['/..a/a..', '..a/a..', false],
    ['/.hidden', '.hidden', false],
    ['/back%5Cslash', 'back\\slash', false],
    ['/é', 'é', false],
    ['/%e2%82%ac', '€', false],
    ['/%F0%9F%98%80', '😀', false],
    ['/.nullgate-tm', '.nullgate-tm', false],
    ['/x.nullgate-tmp-1', 'x.nullgate-tmp-1', false],
    // Names are bytes: what is not UTF-8 after decoding is carried as surrogateescape.
    ['/caf%E9', 'caf\udce9', false],
    ['/caf%e9/x', 'caf\udce9/x', false],
    ['/%ff/', '\udcff', true],
    ['/%c3', '\udcc3', false],
    ['/%c0%ae', '\udcc0\udcae', false],
    ['/%c0%ae%c0%ae', '\udcc0\udcae\udcc0\udcae', false],
    ['/%ed%a0%80', '\udced\udca0\udc80', false],
    ['/%e9t%C3%A9', '\udce9té', false],
    ['/%80%80', '\udc80\udc80', false],
    ['/caf\udce9', 'caf\udce9', false],
  ])('%j → rel %j, trailingSlash %s', (raw, rel, trailingSlash) => {
    expect(decodeFilePath(raw)).toEqual({ rel, trailingSlash });
  });

  it.each<[string, string]>([
    ['/..', 'a bare .. segment'],
    ['/../etc/passwd', 'a leading ..'],
    ['/a/../b', '.. even when it stays inside the root'],
    ['/a/..', 'a trailing ..'],
    ['/%2e%2e', 'an encoded ..'],
    ['/%2E%2E/x', 'an upper-case encoded ..'],
    ['/.%2e/x', 'a half-encoded ..'],
    ['/..%2f', '..%2f'],
    ['/..%2Fetc', '..%2F hiding a separator'],
    ['/a%2Fb', '%2F inside a segment'],
    ['/a%2fb', '%2f inside a segment'],
    ['/a%00b', '%00'],
    ['/a\0b', 'a raw NUL'],
    ['/%zz', 'a non-hex escape'],
    ['/%', 'a bare %'],
    ['/%4', 'a truncated escape'],
    ['/a%g0', 'a half-hex escape'],
    ['/%ff%00', 'a NUL after a byte that is not UTF-8'],
    ['/%ff%2F', 'an encoded slash after a byte that is not UTF-8'],
    ['/.nullgate-tmp-mine', "a name reserved for the server's temporaries"],
    ['/target/.nullgate-tmp-0123456789abcdef/z', 'a temporary as a directory'],
    ['/%2enullgate-tmp-x', 'a reserved name, encoded'],
    ['/a/.nullgate-tmp-/', 'the bare prefix'],
  ])('%j is NG_ERR_BAD_PATH (%s)', (raw) => {
    expect(codeOf(() => decodeFilePath(raw))).toBe('NG_ERR_BAD_PATH');
  });
});

describe('displayPath', () => {
  it.each<[string, boolean | undefined, string]>([
    ['', undefined, '/'],
    ['', true, '/'],
    ['a', undefined, '/a'],
    ['a/b', false, '/a/b'],
    ['a/b', true, '/a/b/'],
    ['é', true, '/é/'],
  ])('(%j, %s) → %j', (rel, dir, shown) => {
    expect(dir === undefined ? displayPath(rel) : displayPath(rel, dir)).toBe(shown);
  });
});

describe('targetPath: origin-form and absolute-form (RFC 9112 §3.2.1, §3.2.2)', () => {
  it.each<[string, string]>([
    ['/files/a.txt', '/files/a.txt'],
    ['/files/a.txt?x=1', '/files/a.txt'],
    ['/files/a#frag', '/files/a'],
    ['http://localhost/files/hello.txt', '/files/hello.txt'],
    ['HTTP://LOCALHOST/files/hello.txt', '/files/hello.txt'],
    ['http://user@host:8080/files/a?q', '/files/a'],
    ['http://localhost', '/'],
    ['http://localhost?x', '/'],
    ['http://localhost/', '/'],
    // Not normalised: decodeFilePath judges `..` and escapes as they were sent.
    ['http://localhost/files/../etc/passwd', '/files/../etc/passwd'],
    ['http://localhost/files/%2e%2e/x', '/files/%2e%2e/x'],
    ['http://localhost/files//a', '/files//a'],
  ])('%j → %j', (target, path) => {
    expect(targetPath(target)).toBe(path);
  });
});

describe('requestPaths: requestPath with recent answers kept', () => {
  const targets = [
    '/files/a/b.txt',
    '/files/',
    '/files',
    '/files/caf%E9?x=1',
    'http://localhost/files/d/./e/',
    '/files/%2e%2e/etc',
    '/files/a%2Fb',
    `/files/${'n'.repeat(300)}`,
  ];

  it.each(targets)('answers %s as requestPath does, the first time and again', (target) => {
    const paths = requestPaths('/files');
    let expected: unknown;
    try {
      expected = requestPath('/files', target);
    } catch (err) {
      expected = err;
    }
    for (let i = 0; i < 2; i++) {
      if (expected instanceof Error) expect(() => paths(target)).toThrow(expected.message);
      else expect(paths(target)).toEqual(expected);
    }
  });

  it('gives a kept answer, frozen, for a repeated short target, and keeps no long one', () => {
    const paths = requestPaths('/files');
    const first = paths('/files/x/y');
    expect(paths('/files/x/y')).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    const long = `/files/${'n'.repeat(300)}`;
    expect(paths(long)).not.toBe(paths(long));
  });

  it('starts over when full, and still answers right', () => {
    const paths = requestPaths('/files');
    const first = paths('/files/0');
    for (let i = 1; i <= 600; i++) expect(paths(`/files/${i}`).rel).toBe(String(i));
    const again = paths('/files/0');
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
  });
});
