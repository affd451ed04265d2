/**
 * gateway/framing.ts: what a request's framing asks that nullgate does not do (RFC 9112 §6.1
 * transfer codings, RFC 9110 §10.1.1 expectations), and the Allow of a refused CONNECT.
 */
import { describe, expect, it } from 'vitest';
import { allowedMethods, framingRefusal } from '../../gateway/framing.js';

describe('framingRefusal', () => {
  it.each<[string, Record<string, string>, string, string | undefined]>([
    ['no framing headers', {}, '1.1', undefined],
    ['chunked', { 'transfer-encoding': 'chunked' }, '1.1', undefined],
    ['Chunked, any case', { 'transfer-encoding': ' Chunked ' }, '1.1', undefined],
    ['gzip, chunked (§6.1: 501)', { 'transfer-encoding': 'gzip, chunked' }, '1.1', 'NG_ERR_NOT_IMPLEMENTED'],
    [
      'x-custom;q=1, chunked',
      { 'transfer-encoding': 'x-custom;q=1, chunked' },
      '1.1',
      'NG_ERR_NOT_IMPLEMENTED',
    ],
    ['chunked twice', { 'transfer-encoding': 'chunked, chunked' }, '1.1', 'NG_ERR_BAD_REQUEST'],
    ['Expect: 100-continue', { expect: '100-continue' }, '1.1', undefined],
    ['Expect: 100-Continue (case-insensitive)', { expect: '100-Continue' }, '1.1', undefined],
    ['Expect: 999-x (§10.1.1: 417)', { expect: '999-x' }, '1.1', 'NG_ERR_EXPECTATION_FAILED'],
    ['Expect: 100-continue, 999-x', { expect: '100-continue, 999-x' }, '1.1', 'NG_ERR_EXPECTATION_FAILED'],
    ['an empty Expect', { expect: '' }, '1.1', 'NG_ERR_EXPECTATION_FAILED'],
    ['Expect in HTTP/1.0 is ignored', { expect: '999-x' }, '1.0', undefined],
  ])('%s', (_what, headers, version, code) => {
    expect(framingRefusal(headers, version)?.code).toBe(code);
  });

  it('names the coding or expectation, shortened', () => {
    const err = framingRefusal({ expect: 'x'.repeat(5000) }, '1.1');
    expect(err?.message.length).toBeLessThan(200);
    expect(framingRefusal({ 'transfer-encoding': 'gzip, chunked' }, '1.1')?.message).toContain('"gzip"');
  });
});

describe('allowedMethods: the Allow of a refused CONNECT', () => {
  it.each([
    ['/files/a.txt', ['GET', 'HEAD', 'PUT', 'DELETE', 'MKCOL', 'MOVE', 'OPTIONS']],
    ['/files', ['GET', 'HEAD', 'PUT', 'DELETE', 'MKCOL', 'MOVE', 'OPTIONS']],
    ['/archive/x?gzip=1', ['GET', 'HEAD', 'POST', 'PUT']],
    ['/filesystem', ['GET', 'HEAD']],
    ['/health', ['GET', 'HEAD']],
    ['example.com:443', ['GET', 'HEAD']],
  ])('%s', (target, methods) => {
    expect(allowedMethods(target)).toEqual(methods);
  });
});
