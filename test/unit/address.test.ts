import { describe, expect, it } from 'vitest';
import {
  type Address,
  curlArgs,
  formatAddress,
  fromSunPath,
  parseAddress,
  toSunPath,
} from '../../core/address.js';

const abs = (bytes: number[] | string): Address => ({
  kind: 'abstract',
  name: typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes),
});

describe('parseAddress (CONTRACT.md "Socket addresses")', () => {
  it.each<[string, Address]>([
    ['@nullgate', abs('nullgate')],
    ['@HELLO', abs('HELLO')],
    ['@HELLO\\x00', abs([0x48, 0x45, 0x4c, 0x4c, 0x4f, 0])],
    ['@\\x00lead', abs([0, 0x6c, 0x65, 0x61, 0x64])],
    ['@a\\\\b', abs('a\\b')],
    ['@sp ace', abs('sp ace')],
    ['@\\xff\\xFE', abs([0xff, 0xfe])],
    ['@é', abs([0xc3, 0xa9])],
    ['@', { kind: 'autobind' }],
    ['/run/x.sock', { kind: 'path', path: '/run/x.sock' }],
    ['./x.sock', { kind: 'path', path: './x.sock' }],
    ['x.sock', { kind: 'path', path: 'x.sock' }],
    ['fd:3', { kind: 'fd', fd: 3 }],
    ['fd:0', { kind: 'fd', fd: 0 }],
    [`@${'n'.repeat(107)}`, abs('n'.repeat(107))],
  ])('%s', (text, expected) => {
    expect(parseAddress(text)).toEqual(expected);
  });

  it.each<[string, RegExp]>([
    ['@\\x0', /malformed escape/],
    ['@\\xZZ', /malformed escape/],
    ['@a\\n', /malformed escape/],
    ['@trailing\\', /malformed escape/],
    [`@${'n'.repeat(108)}`, /108 bytes, at most 107/],
    [`@${'\\x00'.repeat(108)}`, /108 bytes/],
    [`/${'p'.repeat(107)}`, /108 bytes/],
    ['', /empty socket address/],
    ['fd:', /fd:N/],
    ['fd:-1', /fd:N/],
    ['fd:3x', /fd:N/],
    ['/a\0b', /NUL/],
  ])('rejects %j', (text, message) => {
    expect(() => parseAddress(text)).toThrow(message);
    try {
      parseAddress(text);
    } catch (err) {
      expect((err as { code: string }).code).toBe('NG_ERR_ADDRESS_INVALID');
    }
  });
});

describe('formatAddress round trip', () => {
  it.each([
    '@nullgate',
    '@HELLO\\x00',
    '@\\x00\\x01\\x7f',
    '@a\\\\b',
    '@\\xc3\\xa9',
    '/run/x.sock',
    'fd:3',
    '@',
  ])('%s', (text) => {
    expect(formatAddress(parseAddress(text))).toBe(text);
  });

  it('prints non-printable bytes as \\xHH and printable ASCII as is', () => {
    expect(formatAddress(abs([0x61, 0x00, 0x20, 0x7e, 0x7f, 0x0a]))).toBe('@a\\x00 ~\\x7f\\x0a');
  });
});

describe('sun_path bytes', () => {
  it.each<[string, number[]]>([
    ['@X', [0, 0x58]],
    ['@X\\x00', [0, 0x58, 0]],
    ['@', []],
    ['/s', [0x2f, 0x73]],
  ])('%s has exactly its bytes, never padding', (text, bytes) => {
    expect([...toSunPath(parseAddress(text))]).toEqual(bytes);
  });

  it.each<[number[], string]>([
    [[0, 0x61, 0x62], '@ab'],
    [[0, 0x61, 0], '@a\\x00'],
    [[0x2f, 0x74], '/t'],
  ])('fromSunPath(%j) is %s', (bytes, text) => {
    expect(formatAddress(fromSunPath(Buffer.from(bytes)))).toBe(text);
  });
});

describe('curlArgs', () => {
  it.each<[string, string | undefined]>([
    ['@nullgate', '--abstract-unix-socket nullgate'],
    ['@with space', "--abstract-unix-socket 'with space'"],
    ['@X\\x00', undefined],
    ['/run/n.sock', '--unix-socket /run/n.sock'],
    ['fd:3', undefined],
  ])('%s', (text, expected) => {
    expect(curlArgs(parseAddress(text))).toBe(expected);
  });
});
