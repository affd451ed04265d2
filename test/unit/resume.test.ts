import { describe, expect, it } from 'vitest';
import { ifRangeDate, strongLastModified } from '../../client/resume.js';

describe('get -C -: the partial file mtime as If-Range validator (RFC 9110 §13.1.5, §8.8.2.2)', () => {
  it.each([
    [1_700_000_000_000_000_000n, 'Tue, 14 Nov 2023 22:13:20 GMT'],
    [0n, 'Thu, 01 Jan 1970 00:00:00 GMT'],
  ])('a whole-second mtime (%s ns) is sent back as the date it was stamped from', (ns, date) => {
    expect(ifRangeDate(ns)).toBe(date);
  });

  it.each([[undefined], [1_700_000_000_000_000_001n], [1_700_000_000_500_000_000n]])(
    'an mtime that no Last-Modified gave (%s) is no validator',
    (ns) => {
      expect(ifRangeDate(ns)).toBeUndefined();
    },
  );

  const lm = 'Tue, 14 Nov 2023 22:13:20 GMT';
  it.each<[string | undefined, string | undefined, boolean]>([
    [lm, 'Tue, 14 Nov 2023 22:14:20 GMT', true], // 60 s before Date: strong
    [lm, 'Wed, 15 Nov 2023 00:00:00 GMT', true],
    [lm, 'Tue, 14 Nov 2023 22:14:19 GMT', false], // 59 s: could change again within its second
    [lm, lm, false],
    [lm, undefined, false], // no Date: nothing says it is old enough
    [undefined, 'Wed, 15 Nov 2023 00:00:00 GMT', false],
    ['yesterday', 'Wed, 15 Nov 2023 00:00:00 GMT', false],
  ])('Last-Modified %s with Date %s is strong: %s', (lastModified, date, strong) => {
    const got = strongLastModified(lastModified, date);
    expect(got === undefined ? false : got.getTime() === Date.parse(lm)).toBe(strong);
  });
});
