import { describe, expect, it } from 'vitest';

import {
  ancestorsOf,
  baseOf,
  displayPath,
  isTempName,
  isWithin,
  joinRel,
  normalizeRel,
  parentOf,
} from '../../core/rel-path.js';

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
    ['a/b', 'a/b'],
    ['/a//./b/../c/', 'a/c'],
    ['/', ''],
    ['', ''],
    ['.', ''],
    ['a/..', ''],
    ['a/../../b', undefined],
    ['..', undefined],
    ['/../etc', undefined],
    ['..a/b..', '..a/b..'],
  ])('normalizeRel(%j) → %j', (p, rel) => {
    expect(normalizeRel(p)).toBe(rel);
  });

  it.each([
    ['a', 'a', true],
    ['a/b', 'a', true],
    ['a', '', true],
    ['', '', true],
    ['ab', 'a', false],
    ['a', 'a/b', false],
    ['', 'a', false],
  ])('isWithin(%j, %j) → %s', (rel, dir, within) => {
    expect(isWithin(rel, dir)).toBe(within);
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
