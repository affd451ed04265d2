import { describe, expect, it } from 'vitest';
import { contentRange, parseRange, unsatisfiedContentRange, type RangeResult } from '../../routes/range.js';

const none: RangeResult = { kind: 'none' };
const unsatisfiable: RangeResult = { kind: 'unsatisfiable' };
const single = (start: number, end: number): RangeResult => ({ kind: 'single', range: { start, end } });
const multiple = (...pairs: [number, number][]): RangeResult => ({
  kind: 'multiple',
  ranges: pairs.map(([start, end]) => ({ start, end })),
});

describe('parseRange: RFC 9110 §14.1.2 byte ranges (size 10000 unless stated)', () => {
  it.each<[string, number, RangeResult]>([
    ['bytes=0-0', 10000, single(0, 0)],
    ['bytes=0-499', 10000, single(0, 499)],
    ['bytes=500-999', 10000, single(500, 999)],
    ['bytes=9500-', 10000, single(9500, 9999)],
    ['bytes=-500', 10000, single(9500, 9999)],
    ['bytes=0-', 10000, single(0, 9999)],
    ['bytes=9999-9999', 10000, single(9999, 9999)],
    // §14.1.2: a last-pos past the end is clamped to the last byte.
    ['bytes=500-99999', 10000, single(500, 9999)],
    ['bytes=0-99999999999999999999', 10000, single(0, 9999)],
    // §14.1.3: a suffix longer than the representation selects all of it.
    ['bytes=-20000', 10000, single(0, 9999)],
    ['bytes=-10', 5, single(0, 4)],
    ['bytes=-1', 1, single(0, 0)],
    // §14.1: the unit is case-insensitive.
    ['BYTES=0-1', 10000, single(0, 1)],
    ['Bytes=0-1', 10000, single(0, 1)],
  ])('%j on %i bytes → %j', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('parseRange: RFC 9110 §14.1.1 range-set lists and §14.6 coalescing', () => {
  it.each<[string, number, RangeResult]>([
    ['bytes=0-0,-1', 10000, multiple([0, 0], [9999, 9999])],
    ['bytes=0-1,5-6', 10000, multiple([0, 1], [5, 6])],
    // Parts keep the order requested.
    ['bytes=5-6,0-1', 10000, multiple([5, 6], [0, 1])],
    // §5.6.1.2: OWS around commas and empty list elements are accepted.
    ['bytes=0-1 , 5-6', 10000, multiple([0, 1], [5, 6])],
    ['bytes= 0-1,,5-6,', 10000, multiple([0, 1], [5, 6])],
    // Overlapping and adjacent ranges combine, possibly into one.
    ['bytes=0-499,400-999', 10000, single(0, 999)],
    ['bytes=0-4,5-9', 10000, single(0, 9)],
    ['bytes=0-1,0-1,0-1', 10000, single(0, 1)],
    ['bytes=0-9,2-3,20-29', 10000, multiple([0, 9], [20, 29])],
    ['bytes=-5,0-', 10000, single(0, 9999)],
    // Unsatisfiable members are dropped when another one is satisfiable.
    ['bytes=0-1,20000-20001', 10000, single(0, 1)],
    ['bytes=-0,0-1', 10000, single(0, 1)],
  ])('%j on %i bytes → %j', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('parseRange: RFC 9110 §14.1.1 unsatisfiable → 416', () => {
  it.each<[string, number]>([
    ['bytes=-0', 10000],
    ['bytes=10000-', 10000],
    ['bytes=10000-10001', 10000],
    ['bytes=20000-20001,30000-', 10000],
    ['bytes=-0,-0', 10000],
    ['bytes=5-', 0],
    ['bytes=0-0', 0],
    ['bytes=0-', 0],
    ['bytes=-0', 0],
    ['bytes=1-1', 1],
  ])('%j on %i bytes', (header, size) => {
    expect(parseRange(header, size)).toEqual(unsatisfiable);
  });
});

describe('parseRange: RFC 9110 §14.2 headers that are ignored (200, whole file)', () => {
  it.each<[string | undefined, number]>([
    [undefined, 10000],
    ['', 10000],
    ['bytes', 10000],
    ['bytes=', 10000],
    ['bytes=,', 10000],
    ['items=0-1', 10000],
    ['none=0-1', 10000],
    ['bytes0-1', 10000],
    ['garbage', 10000],
    ['bytes=abc', 10000],
    ['bytes=a-b', 10000],
    ['bytes=5x-9', 10000],
    ['bytes=1-2-3', 10000],
    ['bytes=--1', 10000],
    ['bytes=-', 10000],
    ['bytes=0.5-1', 10000],
    ['bytes=0 - 1', 10000],
    ['bytes=+1-2', 10000],
    // §14.1.1: last-pos < first-pos makes the range-spec, hence the header, invalid.
    ['bytes=9-5', 10000],
    ['bytes=0-1,9-5', 10000],
    // One invalid member invalidates the set.
    ['bytes=0-1,x', 10000],
    // A non-zero suffix on an empty file is satisfiable but selects no byte: send the empty 200.
    ['bytes=-5', 0],
    ['bytes=-1,0-', 0],
  ])('%j on %i bytes', (header, size) => {
    expect(parseRange(header, size)).toEqual(none);
  });

  it('ignores more than maxRanges range-specs (default 100), §14.2 / §17.15', () => {
    const specs = (n: number): string =>
      `bytes=${Array.from({ length: n }, (_, i) => `${i * 2}-${i * 2}`).join(',')}`;
    const hundred = parseRange(specs(100), 10000);
    expect(hundred.kind).toBe('multiple');
    expect(hundred.kind === 'multiple' && hundred.ranges.length).toBe(100);
    expect(parseRange(specs(101), 10000)).toEqual(none);
    expect(parseRange('bytes=0-0,2-2,4-4', 10000, { maxRanges: 2 })).toEqual(none);
    expect(parseRange('bytes=0-0,2-2', 10000, { maxRanges: 2 })).toEqual(multiple([0, 0], [2, 2]));
  });
});

describe('Content-Range, RFC 9110 §14.4', () => {
  it.each<[number, number, number, string]>([
    [0, 0, 1, 'bytes 0-0/1'],
    [0, 499, 1234, 'bytes 0-499/1234'],
    [9500, 9999, 10000, 'bytes 9500-9999/10000'],
  ])('contentRange(%i, %i, %i) → %j', (start, end, size, expected) => {
    expect(contentRange(start, end, size)).toBe(expected);
  });

  it.each<[number, string]>([
    [0, 'bytes */0'],
    [10000, 'bytes */10000'],
  ])('unsatisfiedContentRange(%i) → %j', (size, expected) => {
    expect(unsatisfiedContentRange(size)).toBe(expected);
  });
});
