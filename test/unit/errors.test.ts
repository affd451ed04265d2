import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../gateway/app.js';
import { responseError } from '../../client/client-error.js';
import { codeForStatus, errorCodes, fsError, ngError } from '../../core/errors.js';

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

describe('fsError overrides: the call site words (and may recode) an errno, never EXDEV/ELOOP', () => {
  const sys = (code: string) => Object.assign(new Error(`rename ${code} /srv/host/path`), { code });

  it('a string replaces the message and keeps the code', () => {
    const err = fsError(sys('EEXIST'), '/a', { EEXIST: 'already exists: /a (as a file)' });
    expect(err.code).toBe('NG_ERR_CONFLICT');
    expect(err.message).toBe('already exists: /a (as a file)');
  });

  it('an object replaces code and message; other errnos keep the default mapping', () => {
    const overrides = {
      EEXIST: { code: 'NG_ERR_PRECONDITION_FAILED', message: 'exists' },
      ENOTDIR: { code: 'NG_ERR_CONFLICT', message: 'a file is in the way' },
    } as const;
    expect(fsError(sys('EEXIST'), '/a', overrides).statusCode).toBe(412);
    expect(fsError(sys('ENOTDIR'), '/a', overrides).code).toBe('NG_ERR_CONFLICT');
    expect(fsError(sys('ENOENT'), '/a', overrides).code).toBe('NG_ERR_NOT_FOUND');
    expect(fsError(sys('ENOSPC'), '/a', overrides).statusCode).toBe(507);
  });

  it.each(['EXDEV', 'ELOOP'])('%s is always 403 NG_ERR_OUTSIDE_ROOT, whatever the override says', (errno) => {
    const err = fsError(sys(errno), '/escape/x', {
      [errno]: { code: 'NG_ERR_CONFLICT', message: 'the parent of /escape/x is not a directory' },
    });
    expect(err.statusCode).toBe(403);
    expect(err.code).toBe('NG_ERR_OUTSIDE_ROOT');
    expect(err.message).not.toContain('/srv/host');
  });

  it('a NullgateError passes through unchanged', () => {
    const original = ngError('NG_ERR_DIGEST_MISMATCH', 'mismatch');
    expect(fsError(original, '/a')).toBe(original);
  });
});

describe('codeForStatus: the one status → code fallback (server errors without a code, HEAD answers)', () => {
  it.each<[number, string | undefined]>([
    [400, 'NG_ERR_BAD_REQUEST'],
    // A generic 403 is FORBIDDEN: a peer denial, a read-only server and a path outside the
    // root are always raised with their own code.
    [403, 'NG_ERR_FORBIDDEN'],
    [404, 'NG_ERR_NOT_FOUND'],
    [405, 'NG_ERR_METHOD_NOT_ALLOWED'],
    [408, 'NG_ERR_TIMEOUT'],
    [409, 'NG_ERR_CONFLICT'],
    [412, 'NG_ERR_PRECONDITION_FAILED'],
    [413, 'NG_ERR_PAYLOAD_TOO_LARGE'],
    [415, 'NG_ERR_UNSUPPORTED_MEDIA_TYPE'],
    [416, 'NG_ERR_RANGE_NOT_SATISFIABLE'],
    [429, 'NG_ERR_TOO_MANY_REQUESTS'],
    [431, 'NG_ERR_HEADERS_TOO_LARGE'],
    [500, 'NG_ERR_INTERNAL'],
    [503, 'NG_ERR_SERVICE_UNAVAILABLE'],
    [507, 'NG_ERR_INSUFFICIENT_STORAGE'],
    [200, undefined],
    [418, undefined],
    [502, undefined],
  ])('%i → %s', (status, code) => {
    expect(codeForStatus(status)).toBe(code);
  });

  it('every status a registry code has maps to a code of that status', () => {
    const statuses = new Set(Object.values(errorCodes).map((spec) => spec.statusCode as number));
    statuses.delete(0);
    for (const status of statuses) {
      const code = codeForStatus(status);
      expect(code, String(status)).toBeDefined();
      expect(errorCodes[code!].statusCode, String(status)).toBe(status);
    }
  });

  it('the server and the client agree: a generic 403 is NG_ERR_FORBIDDEN on both sides', async () => {
    const app = buildApp({ logLevel: false });
    app.get('/generic-403', () => {
      throw Object.assign(new Error('no'), { statusCode: 403 });
    });
    try {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await app.inject({ method, url: '/generic-403' });
        expect(res.statusCode).toBe(403);
        if (method === 'GET') expect(res.json()).toMatchObject({ code: 'NG_ERR_FORBIDDEN' });
        // What undici hands the client: the body as a stream, with dump().
        const body = Object.assign(Readable.from([res.rawPayload]), { dump: () => Promise.resolve() });
        const fromClient = await responseError(
          { statusCode: res.statusCode, headers: {}, body } as never,
          method,
          '/generic-403',
          '@s',
        );
        expect(fromClient.code, method).toBe('NG_ERR_FORBIDDEN');
      }
    } finally {
      await app.close();
    }
  });
});
