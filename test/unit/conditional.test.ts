import { describe, expect, it } from 'vitest';
import {
  evaluatePreconditions,
  ifRangeAllows,
  parseEntityTagList,
  parseHttpDate,
  strongMatch,
  weakMatch,
  type PreconditionResult,
  type Representation,
  type RequestHeaders,
} from '../../routes/conditional.js';

const ETAG = '"abc-10-1f"';
// 2024-05-01T12:00:00.750Z: sub-second part must not matter (§5.6.7 has one-second resolution).
const MTIME = Date.UTC(2024, 4, 1, 12, 0, 0) + 750;
const AT = 'Wed, 01 May 2024 12:00:00 GMT';
const BEFORE = 'Wed, 01 May 2024 11:59:59 GMT';
const AFTER = 'Wed, 01 May 2024 12:00:01 GMT';

const file: Representation = { exists: true, etag: ETAG, lastModified: MTIME };
const missing: Representation = { exists: false };
const noValidators: Representation = { exists: true };

describe('parseHttpDate, RFC 9110 §5.6.7', () => {
  const expected = Date.UTC(1994, 10, 6, 8, 49, 37);
  it.each<[string, number | undefined]>([
    ['Sun, 06 Nov 1994 08:49:37 GMT', expected],
    ['  Sun, 06 Nov 1994 08:49:37 GMT  ', expected],
    ['Sunday, 06-Nov-94 08:49:37 GMT', expected],
    ['Sun Nov  6 08:49:37 1994', expected],
    ['Sun Nov 16 08:49:37 1994', Date.UTC(1994, 10, 16, 8, 49, 37)],
    ['Thu, 01 Jan 1970 00:00:00 GMT', 0],
    ['Thu, 29 Feb 2024 23:59:59 GMT', Date.UTC(2024, 1, 29, 23, 59, 59)],
    ['Sun, 06 Nov 1994 08:49:37 UTC', undefined],
    ['Sun, 06 Nov 1994 08:49:37 +0000', undefined],
    ['Sun, 6 Nov 1994 08:49:37 GMT', undefined],
    ['sun, 06 nov 1994 08:49:37 GMT', undefined],
    ['Sun, 31 Feb 1994 08:49:37 GMT', undefined],
    ['Sun, 06 Nov 1994 24:00:00 GMT', undefined],
    ['Sun, 06 Nov 1994 08:60:00 GMT', undefined],
    ['Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT', undefined],
    ['1994-11-06T08:49:37Z', undefined],
    ['784111777', undefined],
    ['2024', undefined],
    ['', undefined],
    ['garbage', undefined],
  ])('%j → %s', (text, ms) => {
    expect(parseHttpDate(text)).toBe(ms);
  });

  it.each<[string, number]>([
    ['Friday, 01-Jan-99 00:00:00 GMT', Date.UTC(1999, 0, 1)],
    ['Saturday, 01-Jan-50 00:00:00 GMT', Date.UTC(2050, 0, 1)],
    ['Monday, 01-Jan-80 00:00:00 GMT', Date.UTC(2080, 0, 1)],
    ['Monday, 01-Jan-81 00:00:00 GMT', Date.UTC(1981, 0, 1)],
  ])('rfc850 two-digit year %j (now = 2030) → %i', (text, ms) => {
    expect(parseHttpDate(text, new Date(Date.UTC(2030, 5, 1)))).toBe(ms);
  });
});

describe('entity-tag comparison, RFC 9110 §8.8.3.2', () => {
  // The table from §8.8.3.2.
  it.each<[string, string, boolean, boolean]>([
    ['W/"1"', 'W/"1"', false, true],
    ['W/"1"', 'W/"2"', false, false],
    ['W/"1"', '"1"', false, true],
    ['"1"', '"1"', true, true],
  ])('%s vs %s: strong %s, weak %s', (a, b, strong, weak) => {
    const [ta] = parseEntityTagList(a) as { weak: boolean; opaque: string }[];
    const [tb] = parseEntityTagList(b) as { weak: boolean; opaque: string }[];
    expect(strongMatch(ta!, tb!)).toBe(strong);
    expect(weakMatch(ta!, tb!)).toBe(weak);
  });

  it.each<[string, '*' | string[]]>([
    ['*', '*'],
    [' * ', '*'],
    ['"a"', ['"a"']],
    ['"a", W/"b" ,"c"', ['"a"', 'W/"b"', '"c"']],
    ['"a,b", "c"', ['"a,b"', '"c"']],
    ['"a",,"b"', ['"a"', '"b"']],
    ['a, "b"', ['"b"']],
    ['""', ['""']],
    ['', []],
  ])('list %j → %j', (value, expected) => {
    const list = parseEntityTagList(value);
    expect(list === '*' ? '*' : list.map((t) => (t.weak ? `W/${t.opaque}` : t.opaque))).toEqual(expected);
  });
});

type Row = [string, RequestHeaders, Representation, PreconditionResult];

describe('RFC 9110 §13.2.2 step 1: If-Match (§13.1.1, strong comparison)', () => {
  it.each<Row>([
    ['GET', { 'if-match': ETAG }, file, 'proceed'],
    ['PUT', { 'if-match': ETAG }, file, 'proceed'],
    ['PUT', { 'if-match': `"zzz", ${ETAG}` }, file, 'proceed'],
    ['PUT', { 'if-match': '"zzz"' }, file, 'precondition-failed'],
    ['GET', { 'if-match': '"zzz"' }, file, 'precondition-failed'],
    ['PUT', { 'if-match': `W/${ETAG}` }, file, 'precondition-failed'],
    ['PUT', { 'if-match': '*' }, file, 'proceed'],
    ['PUT', { 'if-match': '*' }, missing, 'precondition-failed'],
    ['PUT', { 'if-match': ETAG }, missing, 'precondition-failed'],
    ['PUT', { 'if-match': ETAG }, noValidators, 'precondition-failed'],
    ['DELETE', { 'if-match': 'garbage' }, file, 'precondition-failed'],
    ['PUT', { 'if-match': ['"zzz"', ETAG] }, file, 'proceed'],
    // If-Match passing makes If-Unmodified-Since irrelevant (step 2 is skipped).
    ['PUT', { 'if-match': ETAG, 'if-unmodified-since': BEFORE }, file, 'proceed'],
    // If-Match failing wins over anything later.
    ['GET', { 'if-match': '"zzz"', 'if-none-match': '"other"' }, file, 'precondition-failed'],
  ])('%s %j on %j → %s', (method, headers, rep, expected) => {
    expect(evaluatePreconditions(method, headers, rep)).toBe(expected);
  });
});

describe('RFC 9110 §13.2.2 step 2: If-Unmodified-Since (§13.1.4)', () => {
  it.each<Row>([
    ['PUT', { 'if-unmodified-since': AT }, file, 'proceed'],
    ['PUT', { 'if-unmodified-since': AFTER }, file, 'proceed'],
    ['PUT', { 'if-unmodified-since': BEFORE }, file, 'precondition-failed'],
    ['GET', { 'if-unmodified-since': BEFORE }, file, 'precondition-failed'],
    ['DELETE', { 'if-unmodified-since': BEFORE }, file, 'precondition-failed'],
    // Ignored: invalid date, a list of dates, no modification date, no representation.
    ['PUT', { 'if-unmodified-since': 'yesterday' }, file, 'proceed'],
    ['PUT', { 'if-unmodified-since': `${BEFORE}, ${AFTER}` }, file, 'proceed'],
    ['PUT', { 'if-unmodified-since': BEFORE }, noValidators, 'proceed'],
    ['PUT', { 'if-unmodified-since': BEFORE }, missing, 'proceed'],
    // lastModified may be a Date too.
    [
      'PUT',
      { 'if-unmodified-since': BEFORE },
      { exists: true, lastModified: new Date(MTIME) },
      'precondition-failed',
    ],
    ['PUT', { 'if-unmodified-since': AT }, { exists: true, lastModified: new Date(MTIME) }, 'proceed'],
  ])('%s %j on %j → %s', (method, headers, rep, expected) => {
    expect(evaluatePreconditions(method, headers, rep)).toBe(expected);
  });
});

describe('RFC 9110 §13.2.2 step 3: If-None-Match (§13.1.2, weak comparison)', () => {
  it.each<Row>([
    ['GET', { 'if-none-match': ETAG }, file, 'not-modified'],
    ['HEAD', { 'if-none-match': ETAG }, file, 'not-modified'],
    ['GET', { 'if-none-match': `W/${ETAG}` }, file, 'not-modified'],
    ['GET', { 'if-none-match': `"x", ${ETAG}` }, file, 'not-modified'],
    ['GET', { 'if-none-match': '"x"' }, file, 'proceed'],
    ['GET', { 'if-none-match': '*' }, file, 'not-modified'],
    ['PUT', { 'if-none-match': '*' }, file, 'precondition-failed'],
    ['PUT', { 'if-none-match': '*' }, missing, 'proceed'],
    ['MKCOL', { 'if-none-match': '*' }, missing, 'proceed'],
    ['PUT', { 'if-none-match': ETAG }, file, 'precondition-failed'],
    ['DELETE', { 'if-none-match': `W/${ETAG}` }, file, 'precondition-failed'],
    ['PUT', { 'if-none-match': '"x"' }, file, 'proceed'],
    ['GET', { 'if-none-match': ETAG }, noValidators, 'proceed'],
    ['GET', { 'if-none-match': 'garbage' }, file, 'proceed'],
    // After a passing If-Match, If-None-Match still applies.
    ['PUT', { 'if-match': ETAG, 'if-none-match': ETAG }, file, 'precondition-failed'],
    // If-Unmodified-Since passing, If-None-Match failing on GET → 304.
    ['GET', { 'if-unmodified-since': AFTER, 'if-none-match': ETAG }, file, 'not-modified'],
  ])('%s %j on %j → %s', (method, headers, rep, expected) => {
    expect(evaluatePreconditions(method, headers, rep)).toBe(expected);
  });
});

describe('RFC 9110 §13.2.2 step 4: If-Modified-Since (§13.1.3, GET/HEAD only)', () => {
  it.each<Row>([
    ['GET', { 'if-modified-since': AT }, file, 'not-modified'],
    ['HEAD', { 'if-modified-since': AT }, file, 'not-modified'],
    ['GET', { 'if-modified-since': AFTER }, file, 'not-modified'],
    ['GET', { 'if-modified-since': BEFORE }, file, 'proceed'],
    ['GET', { 'if-modified-since': 'Sunday, 06-Nov-94 08:49:37 GMT' }, file, 'proceed'],
    ['GET', { 'if-modified-since': 'Wed May  1 12:00:00 2024' }, file, 'not-modified'],
    // Ignored for other methods, invalid dates, lists, and without a modification date.
    ['PUT', { 'if-modified-since': AT }, file, 'proceed'],
    ['DELETE', { 'if-modified-since': AFTER }, file, 'proceed'],
    ['GET', { 'if-modified-since': 'not a date' }, file, 'proceed'],
    ['GET', { 'if-modified-since': `${AT}, ${AFTER}` }, file, 'proceed'],
    ['GET', { 'if-modified-since': AT }, noValidators, 'proceed'],
    // Ignored when If-None-Match is present, whatever If-None-Match says.
    ['GET', { 'if-none-match': '"other"', 'if-modified-since': AFTER }, file, 'proceed'],
    ['GET', { 'if-none-match': ETAG, 'if-modified-since': BEFORE }, file, 'not-modified'],
    ['GET', {}, file, 'proceed'],
    ['PUT', {}, missing, 'proceed'],
  ])('%s %j on %j → %s', (method, headers, rep, expected) => {
    expect(evaluatePreconditions(method, headers, rep)).toBe(expected);
  });
});

describe('RFC 9110 §13.2.2 step 5: If-Range (§13.1.5)', () => {
  it.each<[RequestHeaders, Representation, boolean]>([
    [{}, file, true],
    [{ 'if-range': ETAG }, file, true],
    [{ 'if-range': ` ${ETAG} ` }, file, true],
    [{ 'if-range': '"other"' }, file, false],
    // A weak tag never matches strongly.
    [{ 'if-range': `W/${ETAG}` }, file, false],
    [{ 'if-range': ETAG }, { exists: true, etag: `W/${ETAG}` }, false],
    [{ 'if-range': ETAG }, noValidators, false],
    // Dates must equal Last-Modified exactly, at one-second resolution.
    [{ 'if-range': AT }, file, true],
    [{ 'if-range': 'Wed May  1 12:00:00 2024' }, file, true],
    [{ 'if-range': AFTER }, file, false],
    [{ 'if-range': BEFORE }, file, false],
    [{ 'if-range': AT }, noValidators, false],
    // Neither an entity-tag nor an HTTP-date, or a list: not honoured.
    [{ 'if-range': 'garbage' }, file, false],
    [{ 'if-range': '*' }, file, false],
    [{ 'if-range': `${ETAG}, "x"` }, file, false],
  ])('%j on %j → %s', (headers, rep, expected) => {
    expect(ifRangeAllows(headers, rep)).toBe(expected);
  });
});
