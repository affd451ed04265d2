import { describe, expect, it } from 'vitest';
import { errorBody, type ErrorCode } from '../../core/errors.js';
import { rawErrorResponse } from '../../routes/raw-error.js';
import { parseResponse } from '../helpers/sockets.js';

describe('rawErrorResponse: the one error response written as raw bytes', () => {
  it.each<[number, ErrorCode, string, string]>([
    [403, 'NG_ERR_PEER_DENIED', 'peer not allowed: uid 1000 gid 1000', 'Forbidden'],
    [400, 'NG_ERR_BAD_REQUEST', 'malformed request (HPE_INVALID_METHOD)', 'Bad Request'],
    [408, 'NG_ERR_TIMEOUT', 'request timed out', 'Request Timeout'],
    [431, 'NG_ERR_HEADERS_TOO_LARGE', 'request headers too large', 'Request Header Fields Too Large'],
    // Content-Length counts bytes, not characters.
    [400, 'NG_ERR_BAD_REQUEST', 'non-ASCII: é, €, 𝄞', 'Bad Request'],
  ])('%i %s', (status, code, message, reason) => {
    const raw = Buffer.from(rawErrorResponse(status, code, message));
    expect(raw.toString('latin1').split('\r\n')[0]).toBe(`HTTP/1.1 ${status} ${reason}`);
    const res = parseResponse(raw);
    expect(res.headers).toEqual({
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(res.body.length),
      connection: 'close',
    });
    expect(JSON.parse(res.body.toString('utf8'))).toEqual(errorBody(status, code, message));
  });

  it('adds the headers it is given (the Allow of a 405)', () => {
    const res = parseResponse(
      Buffer.from(rawErrorResponse(405, 'NG_ERR_METHOD_NOT_ALLOWED', 'no', { allow: 'GET, HEAD' })),
    );
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
    expect(res.headers['content-length']).toBe(String(res.body.length));
  });
});
