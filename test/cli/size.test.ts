import { describe, expect, it } from 'vitest';
import { parseSize } from '../../cli/size.js';

describe('parseSize (CONTRACT.md --max-upload)', () => {
  it.each<[string, number | undefined]>([
    ['0', 0],
    ['1024', 1024],
    ['512K', 512 * 1024],
    ['512k', 512 * 1024],
    ['100M', 100 * 2 ** 20],
    ['2G', 2 * 2 ** 30],
    ['1T', 2 ** 40],
    ['1.5K', 1536],
    ['10MiB', 10 * 2 ** 20],
    ['', undefined],
    ['-1', undefined],
    ['12Q', undefined],
    ['K', undefined],
  ])('%j → %s', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });
});
