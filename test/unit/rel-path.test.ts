import { describe, expect, it } from 'vitest';

import { ancestorsOf, baseOf, displayPath, isTempName, joinRel, parentOf } from '../../core/rel-path.js';

describe('relative paths: joined, split and shown in one place', () => {
  it.each([
    ['', 'a', 'a'],
    ['a', 'b', 'a/b'],
    ['a/b', 'c', 'a/b/c'],
  ])('joinRel(%j, %j) → %j', (dir, name, rel) => {
    expect(joinRel(dir, name)).toBe(rel);
    expect(parentOf(rel)).toBe(dir);
    expect(baseOf(rel)).toBe(name);
  });

  it.each([
    ['', []],
    ['a', []],
    ['a/b', ['a']],
    ['a/b/c', ['a', 'a/b']],
  ])('ancestorsOf(%j) → %j', (rel, ancestors) => {
    expect(ancestorsOf(rel)).toEqual(ancestors);
  });

  it.each([
    ['', false, '/'],
    ['', true, '/'],
    ['a/b', false, '/a/b'],
    ['a/b', true, '/a/b/'],
  ])('displayPath(%j, %s) → %j', (rel, dir, shown) => {
    expect(displayPath(rel, dir)).toBe(shown);
  });

  it.each([
    ['.nullgate-tmp-', true],
    ['.nullgate-tmp-0123', true],
    ['.nullgate-tm', false],
    ['a.nullgate-tmp-', false],
  ])('isTempName(%j) → %s', (name, temp) => {
    expect(isTempName(name)).toBe(temp);
  });
});
