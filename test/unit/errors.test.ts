import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { describe, expect, it } from 'vitest';
import { errorCodes, fsError, ngError } from '../../gateway/errors.js';

const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const documented = new Map<string, string>();
for (const m of docs.matchAll(/^\| `(NG_ERR_[A-Z_]+)` *\| ([^|]+) \|/gm)) documented.set(m[1]!, m[2]!.trim());

describe('error registry (like fastify lib/errors.js + its test)', () => {
  it.each(Object.entries(errorCodes))('%s is documented in docs/errors.md with its status', (code, spec) => {
    expect(documented.get(code)).toBe(spec.statusCode === 0 ? '—' : String(spec.statusCode));
  });

  it('docs/errors.md lists no code the registry does not have', () => {
    const stale = [...documented.keys()].filter((code) => !(code in errorCodes));
    expect(stale).toEqual([]);
  });

  it.each(Object.entries(errorCodes).filter(([, s]) => s.statusCode !== 0))(
    '%s has a real HTTP status',
    (_code, spec) => {
      expect(STATUS_CODES[spec.statusCode]).toBeDefined();
    },
  );

  it('serialises to the contract shape', () => {
    expect(ngError('NG_ERR_NOT_FOUND', 'no such file: /etc/foo').toJSON()).toEqual({
      statusCode: 404,
      code: 'NG_ERR_NOT_FOUND',
      error: 'Not Found',
      message: 'no such file: /etc/foo',
    });
  });
});

describe('fsError: the one errno → HTTP map (STYLE.md "Errors")', () => {
  it.each<[string, number, string]>([
    ['ENOENT', 404, 'NG_ERR_NOT_FOUND'],
    ['ENOTDIR', 404, 'NG_ERR_NOT_FOUND'],
    ['EACCES', 403, 'NG_ERR_FORBIDDEN'],
    ['EPERM', 403, 'NG_ERR_FORBIDDEN'],
    ['EXDEV', 403, 'NG_ERR_OUTSIDE_ROOT'],
    ['ELOOP', 403, 'NG_ERR_OUTSIDE_ROOT'],
    ['EEXIST', 409, 'NG_ERR_CONFLICT'],
    ['ENOTEMPTY', 409, 'NG_ERR_CONFLICT'],
    ['ENOSPC', 507, 'NG_ERR_INSUFFICIENT_STORAGE'],
    ['EDQUOT', 507, 'NG_ERR_INSUFFICIENT_STORAGE'],
    ['EFBIG', 413, 'NG_ERR_PAYLOAD_TOO_LARGE'],
    ['EIO', 500, 'NG_ERR_INTERNAL'],
  ])('%s → %i %s', (errno, status, code) => {
    const cause = Object.assign(new Error(`open ${errno} /srv/secret/host/path`), { code: errno });
    const err = fsError(cause, '/shown');
    expect(err.statusCode).toBe(status);
    expect(err.code).toBe(code);
    expect(err.message).toContain('/shown');
    expect(err.message).not.toContain('/srv/secret');
    expect(err.cause).toBe(cause);
  });
});
