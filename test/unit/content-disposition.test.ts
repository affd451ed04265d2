import { describe, expect, it } from 'vitest';
import { contentDisposition } from '../../routes/content-disposition.js';

describe('contentDisposition, RFC 6266 with RFC 8187 filename*', () => {
  it.each<[string, string, string]>([
    ['plain ASCII: filename alone', 'tree.tar', 'attachment; filename="tree.tar"'],
    ['spaces and punctuation stay plain', 'my tree (1).tar.gz', 'attachment; filename="my tree (1).tar.gz"'],
    [
      'UTF-8: accents dropped in filename, the exact bytes in filename*',
      'café.tar',
      `attachment; filename="cafe.tar"; filename*=UTF-8''caf%C3%A9.tar`,
    ],
    [
      'a script with no ASCII form: one _ per character',
      'данные.tar',
      `attachment; filename="______.tar"; filename*=UTF-8''%D0%B4%D0%B0%D0%BD%D0%BD%D1%8B%D0%B5.tar`,
    ],
    [
      'a character outside the BMP (a surrogate pair) is one _',
      'a😀.tar',
      `attachment; filename="a_.tar"; filename*=UTF-8''a%F0%9F%98%80.tar`,
    ],
    [
      'a byte that is not UTF-8 (surrogateescape U+DCFF) is encoded as the byte it is',
      'bad\udcff.tar',
      `attachment; filename="bad_.tar"; filename*=UTF-8''bad%FF.tar`,
    ],
    [
      'UTF-8 and raw bytes mixed',
      'é\udce9.tar',
      `attachment; filename="e_.tar"; filename*=UTF-8''%C3%A9%E9.tar`,
    ],
    [
      'a quote and a backslash never go escaped into filename',
      'a"b\\c.tar',
      `attachment; filename="a_b_c.tar"; filename*=UTF-8''a%22b%5Cc.tar`,
    ],
    [
      'control characters (a newline) never reach the header',
      'a\r\nb.tar',
      `attachment; filename="a__b.tar"; filename*=UTF-8''a%0D%0Ab.tar`,
    ],
    [
      'a %XX some recipients would decode in filename gets filename* too',
      '100%41.tar',
      `attachment; filename="100%41.tar"; filename*=UTF-8''100%2541.tar`,
    ],
    ['a lone % stays plain', '100% done.tar', 'attachment; filename="100% done.tar"'],
    [
      'attr-chars stay unencoded in filename*, space and others do not',
      "é !#$&+-.^_`|~'().tar",
      `attachment; filename="e !#$&+-.^_\`|~'().tar"; filename*=UTF-8''%C3%A9%20!#$&+-.^_\`|~%27%28%29.tar`,
    ],
  ])('%s', (_what, name, header) => {
    expect(contentDisposition(name)).toBe(header);
  });

  it('inline on request', () => {
    expect(contentDisposition('x.txt', 'inline')).toBe('inline; filename="x.txt"');
  });

  it('every value is printable ASCII (a header carries nothing else)', () => {
    for (const name of ['café', 'bad\udcff', 'a\u0000b', '\u0301', 'a😀', '\ud800x'])
      expect(contentDisposition(name)).toMatch(/^[\x20-\x7e]+$/);
  });
});
