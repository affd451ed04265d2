/** The streamed listing splitter: entries one at a time, whatever the chunking, with bounds. */
import { describe, expect, it } from 'vitest';
import { ListingFormatError, ListingSplitter } from '../../client/listing.js';

/** Feeds `text` in chunks of `size` bytes; returns the path and the entries. */
function split(
  text: string | Buffer,
  size: number,
  max?: number,
): { path: string | undefined; entries: unknown[] } {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const splitter = new ListingSplitter(max);
  const entries: unknown[] = [];
  for (let at = 0; at < bytes.length && !splitter.done; at += size) {
    entries.push(...splitter.push(bytes.subarray(at, at + size)));
  }
  splitter.end();
  return { path: splitter.path, entries };
}

const listing = {
  path: '/d i r/',
  entries: [
    {
      name: 'a "quoted" {name} [x], y:z',
      type: 'file',
      size: 1,
      mtime: '2025-01-01T00:00:00.000Z',
      mode: 420,
    },
    {
      name: 'back\\slash\\',
      type: 'dir',
      size: 0,
      mtime: 0,
      mode: 493,
      extra: { nested: [1, { deep: '}' }] },
    },
    { name: 'ünïcødé 日本 \u0000\u001b', type: 'symlink', size: 3, mtime: 0, mode: 511 },
  ],
};

describe('ListingSplitter', () => {
  it.each([1, 2, 3, 7, 64, 100_000])('gives the same entries in chunks of %d bytes', (size) => {
    expect(split(JSON.stringify(listing), size)).toEqual(listing);
    expect(split(JSON.stringify(listing, null, 2), size)).toEqual(listing);
  });

  it.each([
    ['{"path":"/","entries":[]}', { path: '/', entries: [] }],
    ['{"entries":[{"name":"a"}],"path":"/x/"}', { path: '/x/', entries: [{ name: 'a' }] }],
    // Unknown members are skipped, whatever they hold.
    [
      '{"more":{"entries":[1]},"path":"/","n":[1,"]"],"entries":[{"name":"a"}]}',
      { path: '/', entries: [{ name: 'a' }] },
    ],
    // Whatever follows the closing brace is not read.
    ['{"path":"/","entries":[]} garbage {', { path: '/', entries: [] }],
  ])('%s', (text, expected) => {
    expect(split(text, 5)).toEqual(expected);
  });

  it.each([
    ['[]', /not a JSON object/],
    ['"x"', /not a JSON object/],
    ['{"path":"/","entries":{}}', /"entries" is not an array/],
    ['{"path":"/","entries":[1]}', /an entry is not an object/],
    ['{"path":"/","entries":["a"]}', /an entry is not an object/],
    ['{"path":"/","entries":[[]]}', /an entry is not an object/],
    ['{"path":"/","entries":[{"name":}]}', /an entry is not valid JSON/],
    ['{"path":"/","entries":[{"name":"a"]]}', /mismatched brackets/],
    ['{"path":"/","entries":[{"name":"a"}', /ends before it is complete/],
    ['{"path":"/"}', /no "entries" array/],
    [`{"x":${'['.repeat(40)}`, /nested deeper than 32/],
  ])('%s is not a listing', (text, message) => {
    expect(() => split(text, 3)).toThrow(ListingFormatError);
    expect(() => split(text, 3)).toThrow(message);
  });

  it('bounds one entry, one key and the path, and never holds more than that', () => {
    const big = `{"path":"/","entries":[{"name":"${'x'.repeat(200)}"}]}`;
    expect(() => split(big, 16, 100)).toThrow(/an entry is larger than 100 bytes/);
    expect(() => split(`{"${'k'.repeat(200)}":1}`, 16, 100)).toThrow(/a field is larger than 100 bytes/);
    expect(() => split(`{"path":"${'p'.repeat(200)}"}`, 16, 100)).toThrow(/a field is larger than 100 bytes/);
    // An endless string is refused once over the bound, before the body ends.
    const splitter = new ListingSplitter(1000);
    splitter.push(Buffer.from('{"path":"/","entries":[{"name":"'));
    expect(() => {
      for (let i = 0; i < 100; i++) splitter.push(Buffer.alloc(100, 0x61));
    }).toThrow(/larger than 1000 bytes/);
  });

  it('an endless array of entries streams them without keeping any', () => {
    const splitter = new ListingSplitter();
    const chunk = Buffer.from('{"name":"a","type":"file","size":1,"mtime":0,"mode":420},'.repeat(1000));
    expect(splitter.push(Buffer.from('{"path":"/","entries":['))).toEqual([]);
    let count = 0;
    for (let i = 0; i < 20; i++) count += splitter.push(chunk).length;
    expect(count).toBe(20_000);
    expect(splitter.done).toBe(false);
  });
});
