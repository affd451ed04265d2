import { describe, expect, it } from 'vitest';
import { parseExport } from '../../routes/exports.js';

describe('parseExport: CHROOT_DIR=ROOT_DIR[:rw]', () => {
  it.each([
    ['/build/a=/results/a', { chroot: '/build/a', root: '/results/a', writable: false }],
    ['/build/a=/results/a:rw', { chroot: '/build/a', root: '/results/a', writable: true }],
    ['/build/a=/results/a:ro', { chroot: '/build/a', root: '/results/a', writable: false }],
    ['a=b=c', { chroot: 'a', root: 'b=c', writable: false }],
    ['/x=/y:z:rw', { chroot: '/x', root: '/y:z', writable: true }],
  ])('%s', (text, spec) => {
    expect(parseExport(text)).toEqual(spec);
  });

  it.each(['', '/a', '=/b', '/a=', '/a=:rw'])('%j is refused with NG_ERR_INVALID_OPTION', (text) => {
    expect(() => parseExport(text)).toThrow(expect.objectContaining({ code: 'NG_ERR_INVALID_OPTION' }));
  });
});
