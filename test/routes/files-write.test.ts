/**
 * PUT, PUT dir/, MKCOL, DELETE and MOVE of /files through the Fastify app (CONTRACT.md "HTTP
 * API", "Read-only by default"). Uploads that need real HTTP framing (chunked bodies,
 * Expect: 100-continue, a limit hit mid-body) go over a real listener with node:http.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import supertest from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../gateway/app.js';
import { itNeeds } from '../helpers/requirements.js';
import { tree } from '../helpers/files.js';

const MAX_UPLOAD = 1024 * 1024;

/** light-my-request's method type lists no WebDAV methods; Fastify routes them all the same. */
type InjectMethod = NonNullable<InjectOptions['method']>;
const MKCOL = 'MKCOL' as InjectMethod;
const MOVE = 'MOVE' as InjectMethod;

function expectErrorBody(body: unknown, status: number, code: string): void {
  expect(body).toEqual({ statusCode: status, code, error: expect.any(String), message: expect.any(String) });
  expect(Object.keys(body as object).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
}

const digest = (alg: 'sha256' | 'sha512', data: Buffer | string) =>
  `${alg === 'sha256' ? 'sha-256' : 'sha-512'}=:${createHash(alg).update(data).digest('base64')}:`;

interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  continued: boolean;
}

/**
 * A request over node:http. `body` chunks are written as they come (no Content-Length unless
 * given: chunked); with `expectContinue` they are held until the server says 100 Continue.
 */
function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Iterable<Buffer | string> = [],
  options: { expectContinue?: boolean } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    let continued = false;
    let answered = false;
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text, continued }));
      res.on('error', reject);
    });
    // The server may answer and close while the body is still being written (413, 507): the
    // answer is what counts, a late EPIPE/ECONNRESET is expected.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const writeBody = async () => {
      for (const chunk of body) {
        if (answered || req.destroyed) return;
        if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      }
      req.end();
    };
    if (options.expectContinue) {
      req.on('continue', () => {
        continued = true;
        void writeBody();
      });
      req.flushHeaders();
    } else {
      void writeBody();
    }
  });
}

function* chunks(total: number, size = 64 * 1024, fill = 0x61): Generator<Buffer> {
  for (let sent = 0; sent < total; sent += size) yield Buffer.alloc(Math.min(size, total - sent), fill);
}

describe('writes to /files (--writable)', () => {
  let dir: string;
  let app: FastifyInstance;
  let port: number;
  let request: ReturnType<typeof supertest>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-files-write-'));
    app = buildApp({ root: dir, writable: true, maxUpload: MAX_UPLOAD, logLevel: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    request = supertest(app.server);
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
  });

  describe('PUT a file', () => {
    it('201 when created, 200 when replaced, body {path,size,etag}; the ETag is what GET then sends', async () => {
      const first = await request.put('/files/a/b/new.txt').send('first').expect(201);
      expect(first.body).toEqual({
        path: '/a/b/new.txt',
        size: 5,
        etag: expect.stringMatching(/^"[0-9a-f-]+"$/),
      });
      expect(first.headers.etag).toBe(first.body.etag);
      expect(readFileSync(join(dir, 'a/b/new.txt'), 'utf8')).toBe('first');

      const second = await request.put('/files/a/b/new.txt').send('second!').expect(200);
      expect(second.body).toEqual({ path: '/a/b/new.txt', size: 7, etag: expect.any(String) });
      expect(second.body.etag).not.toBe(first.body.etag);
      expect(readFileSync(join(dir, 'a/b/new.txt'), 'utf8')).toBe('second!');

      const head = await request.head('/files/a/b/new.txt').expect(200);
      expect(head.headers.etag).toBe(second.body.etag);
      expect(tree(dir)).toEqual(['a', 'a/b', 'a/b/new.txt']);
    });

    it('X-Nullgate-Mode, -Uid, -Gid and -Mtime are applied (a root peer of a root server: set-id and owner as given)', async () => {
      const asRoot = process.getuid?.() === 0;
      const res = await app.inject({
        method: 'PUT',
        url: '/files/meta/tool',
        payload: 'x',
        headers: {
          'x-nullgate-mode': asRoot ? '4750' : '0750',
          'x-nullgate-mtime': '1700000000.123456789',
          ...(asRoot ? { 'x-nullgate-uid': '1234', 'x-nullgate-gid': '2345' } : {}),
        },
      });
      expect(res.statusCode).toBe(201);
      const st = statSync(join(dir, 'meta/tool'), { bigint: true });
      expect(Number(st.mode) & 0o7777).toBe(asRoot ? 0o4750 : 0o750);
      expect(st.mtimeNs).toBe(1_700_000_000_123_456_789n);
      if (asRoot) expect([Number(st.uid), Number(st.gid)]).toEqual([1234, 2345]);
      // The ETag answered is the file's as it now is: what GET sends, mtime included.
      const head = await app.inject({ method: 'HEAD', url: '/files/meta/tool' });
      expect(res.json<{ etag: string }>().etag).toBe(head.headers.etag);
      expect(head.headers['x-nullgate-mtime']).toBe('1700000000.123456789');
      expect(head.headers['x-nullgate-mode']).toBe(asRoot ? '4750' : '0750');
    });

    it.each([
      ['x-nullgate-mode', '0999'],
      ['x-nullgate-mode', 'rwx'],
      ['x-nullgate-uid', '-1'],
      ['x-nullgate-gid', 'wheel'],
      ['x-nullgate-mtime', 'yesterday'],
    ])('a malformed %s (%s) is 400 and nothing is written', async (name, value) => {
      const res = await app.inject({
        method: 'PUT',
        url: '/files/bad-meta',
        payload: 'x',
        headers: { [name]: value },
      });
      expect(res.statusCode).toBe(400);
      expectErrorBody(res.json(), 400, 'NG_ERR_BAD_REQUEST');
      expect(res.json<{ message: string }>().message).toContain(name);
      expect(existsSync(join(dir, 'bad-meta'))).toBe(false);
    });

    it('an empty body makes an empty file', async () => {
      const res = await app.inject({ method: 'PUT', url: '/files/empty.bin', payload: '' });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({ path: '/empty.bin', size: 0 });
      expect(statSync(join(dir, 'empty.bin')).size).toBe(0);
    });

    it('binary bytes arrive exactly', async () => {
      const data = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) & 0xff));
      await request
        .put('/files/bin.dat')
        .set('Content-Type', 'application/octet-stream')
        .send(data)
        .expect(201);
      expect(readFileSync(join(dir, 'bin.dat')).equals(data)).toBe(true);
    });

    it('If-None-Match: * is 412 when the file exists (and it is unchanged), 201 when it does not', async () => {
      const created = await request.put('/files/once.txt').set('If-None-Match', '*').send('one').expect(201);
      expect(created.body.size).toBe(3);
      const res = await request.put('/files/once.txt').set('If-None-Match', '*').send('two').expect(412);
      expectErrorBody(res.body, 412, 'NG_ERR_PRECONDITION_FAILED');
      expect(readFileSync(join(dir, 'once.txt'), 'utf8')).toBe('one');
    });

    it('If-Match with another ETag is 412 and changes nothing; with the ETag it replaces', async () => {
      const { body } = await request.put('/files/m.txt').send('v1').expect(201);
      const res = await request.put('/files/m.txt').set('If-Match', '"stale"').send('v2').expect(412);
      expectErrorBody(res.body, 412, 'NG_ERR_PRECONDITION_FAILED');
      expect(readFileSync(join(dir, 'm.txt'), 'utf8')).toBe('v1');
      await request
        .put('/files/m.txt')
        .set('If-Match', (body as { etag: string }).etag)
        .send('v2')
        .expect(200);
      expect(readFileSync(join(dir, 'm.txt'), 'utf8')).toBe('v2');
    });

    it('If-Match on a missing file is 412', async () => {
      const res = await request.put('/files/missing.txt').set('If-Match', '*').send('x').expect(412);
      expectErrorBody(res.body, 412, 'NG_ERR_PRECONDITION_FAILED');
      expect(existsSync(join(dir, 'missing.txt'))).toBe(false);
    });

    it.each([
      ['Content-Digest', 'sha256'],
      ['Content-Digest', 'sha512'],
      ['Repr-Digest', 'sha256'],
      ['Repr-Digest', 'sha512'],
    ] as const)('a correct %s (%s) is accepted', async (field, alg) => {
      await request.put('/files/d.txt').set(field, digest(alg, 'payload')).send('payload').expect(201);
      expect(readFileSync(join(dir, 'd.txt'), 'utf8')).toBe('payload');
    });

    it.each(['Content-Digest', 'Repr-Digest'])(
      'a wrong %s is 400 NG_ERR_DIGEST_MISMATCH and the old file stays',
      async (field) => {
        writeFileSync(join(dir, 'keep.txt'), 'old content');
        const before = tree(dir);
        const res = await request
          .put('/files/keep.txt')
          .set(field, digest('sha256', 'something else'))
          .send('new content')
          .expect(400);
        expectErrorBody(res.body, 400, 'NG_ERR_DIGEST_MISMATCH');
        expect(readFileSync(join(dir, 'keep.txt'), 'utf8')).toBe('old content');
        expect(tree(dir)).toEqual(before);
      },
    );

    it('a wrong digest for a new file leaves no file', async () => {
      const res = await request
        .put('/files/sub/new.txt')
        .set('Content-Digest', digest('sha512', 'not this'))
        .send('this')
        .expect(400);
      expectErrorBody(res.body, 400, 'NG_ERR_DIGEST_MISMATCH');
      expect(existsSync(join(dir, 'sub/new.txt'))).toBe(false);
    });

    it('a malformed digest field is 400', async () => {
      const res = await request
        .put('/files/x.txt')
        .set('Content-Digest', 'sha-256=:bad:')
        .send('x')
        .expect(400);
      expectErrorBody(res.body, 400, 'NG_ERR_BAD_REQUEST');
      expect(existsSync(join(dir, 'x.txt'))).toBe(false);
    });

    it('a chunked body is stored whole', async () => {
      const res = await send(port, 'PUT', '/files/chunked.bin', {}, chunks(300_000, 10_000));
      expect(res.status).toBe(201);
      expect(JSON.parse(res.body)).toMatchObject({ path: '/chunked.bin', size: 300_000 });
      expect(readFileSync(join(dir, 'chunked.bin')).equals(Buffer.alloc(300_000, 0x61))).toBe(true);
    });

    it('Transfer-Encoding: gzip, chunked is 501 and stores nothing (RFC 9112 §6.1), not the gzip bytes', async () => {
      const res = await send(port, 'PUT', '/files/coded.txt', { 'transfer-encoding': 'gzip, chunked' }, [
        gzipSync('hello\n'),
      ]);
      expect(res.status).toBe(501);
      expectErrorBody(JSON.parse(res.body), 501, 'NG_ERR_NOT_IMPLEMENTED');
      expect(res.headers.connection).toBe('close');
      expect(existsSync(join(dir, 'coded.txt'))).toBe(false);
    });

    it('a chunked body with a correct digest is accepted', async () => {
      const data = Buffer.alloc(200_000, 0x61);
      const res = await send(
        port,
        'PUT',
        '/files/chunked.bin',
        { 'Content-Digest': digest('sha256', data) },
        chunks(200_000),
      );
      expect(res.status).toBe(201);
    });

    it('Expect: 100-continue gets 100 Continue, then the body is stored', async () => {
      const res = await send(
        port,
        'PUT',
        '/files/continued.txt',
        { Expect: '100-continue', 'Content-Length': '11' },
        ['hello there'],
        { expectContinue: true },
      );
      expect(res.continued).toBe(true);
      expect(res.status).toBe(201);
      expect(readFileSync(join(dir, 'continued.txt'), 'utf8')).toBe('hello there');
    });

    it('Expect: 100-continue with chunked encoding (curl -T -) works', async () => {
      const res = await send(
        port,
        'PUT',
        '/files/continued-chunked.txt',
        { Expect: '100-continue', 'Transfer-Encoding': 'chunked' },
        ['abc', 'def'],
        { expectContinue: true },
      );
      expect(res.continued).toBe(true);
      expect(res.status).toBe(201);
      expect(readFileSync(join(dir, 'continued-chunked.txt'), 'utf8')).toBe('abcdef');
    });

    it('over maxUpload by Content-Length is 413 before any body byte is sent (no 100 Continue)', async () => {
      const res = await send(
        port,
        'PUT',
        '/files/big.bin',
        { Expect: '100-continue', 'Content-Length': String(MAX_UPLOAD + 1) },
        chunks(MAX_UPLOAD + 1),
        { expectContinue: true },
      );
      expect(res.continued).toBe(false);
      expect(res.status).toBe(413);
      expectErrorBody(JSON.parse(res.body), 413, 'NG_ERR_PAYLOAD_TOO_LARGE');
      expect(tree(dir)).toEqual([]);
    });

    it('over maxUpload by Content-Length is 413 even without Expect (answered without reading the body)', async () => {
      // Headers only: the server must answer without waiting for the 2 MiB it was promised.
      const res = await send(port, 'PUT', '/files/big.bin', { 'Content-Length': String(2 * MAX_UPLOAD) }, []);
      expect(res.status).toBe(413);
      expectErrorBody(JSON.parse(res.body), 413, 'NG_ERR_PAYLOAD_TOO_LARGE');
      expect(tree(dir)).toEqual([]);
    });

    it('an upload refused before its body was read closes the connection (the body is not read)', async () => {
      const socket = connect(port, '127.0.0.1');
      const text = await new Promise<string>((resolve, reject) => {
        let data = '';
        socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
        socket.write(`PUT /files/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * MAX_UPLOAD}\r\n\r\n`);
        setTimeout(() => reject(new Error(`connection still open after: ${data}`)), 5000).unref();
      }).finally(() => socket.destroy());
      expect(text).toMatch(/^HTTP\/1\.1 413 /);
      expect(text.toLowerCase()).toContain('connection: close');
    });

    it('a chunked body over maxUpload is 413 and leaves no file', async () => {
      const res = await send(port, 'PUT', '/files/big.bin', {}, chunks(3 * MAX_UPLOAD));
      expect(res.status).toBe(413);
      expectErrorBody(JSON.parse(res.body), 413, 'NG_ERR_PAYLOAD_TOO_LARGE');
      expect(tree(dir)).toEqual([]);
    });

    it('a chunked body over maxUpload leaves an existing file intact', async () => {
      writeFileSync(join(dir, 'big.bin'), 'small');
      const res = await send(port, 'PUT', '/files/big.bin', {}, chunks(2 * MAX_UPLOAD));
      expect(res.status).toBe(413);
      expect(readFileSync(join(dir, 'big.bin'), 'utf8')).toBe('small');
      expect(tree(dir)).toEqual(['big.bin']);
    });

    it('exactly maxUpload bytes is accepted', async () => {
      const res = await send(port, 'PUT', '/files/max.bin', {}, chunks(MAX_UPLOAD));
      expect(res.status).toBe(201);
      expect(statSync(join(dir, 'max.bin')).size).toBe(MAX_UPLOAD);
    });

    it('the server keeps serving after a refused upload', async () => {
      await send(port, 'PUT', '/files/big.bin', {}, chunks(2 * MAX_UPLOAD));
      const res = await request.get('/health').expect(200);
      expect(res.body).toEqual({ status: 'ok' });
    });

    it('PUT over a directory is 409', async () => {
      mkdirSync(join(dir, 'adir'));
      const res = await request.put('/files/adir').send('x').expect(409);
      expectErrorBody(res.body, 409, 'NG_ERR_CONFLICT');
    });

    it('PUT under a file (a file where a parent should be) is 409', async () => {
      writeFileSync(join(dir, 'afile'), 'x');
      const res = await request.put('/files/afile/child.txt').send('x').expect(409);
      expectErrorBody(res.body, 409, 'NG_ERR_CONFLICT');
      expect(readFileSync(join(dir, 'afile'), 'utf8')).toBe('x');
    });
  });

  describe('PUT dir/ and MKCOL', () => {
    it('PUT dir/ with an empty body creates the directory and parents: 201, then 200', async () => {
      const res = await request.put('/files/p/q/r/').expect(201);
      expect(res.body).toMatchObject({ path: '/p/q/r/' });
      expect(statSync(join(dir, 'p/q/r')).isDirectory()).toBe(true);
      await request.put('/files/p/q/r/').expect(200);
    });

    it('PUT dir/ with a body is 409', async () => {
      const res = await request.put('/files/p/').send('data').expect(409);
      expectErrorBody(res.body, 409, 'NG_ERR_CONFLICT');
    });

    it('MKCOL creates with parents: 201, then 200; a file in the way is 409', async () => {
      const a = await app.inject({ method: MKCOL, url: '/files/m/n' });
      expect(a.statusCode).toBe(201);
      expect(statSync(join(dir, 'm/n')).isDirectory()).toBe(true);
      const b = await app.inject({ method: MKCOL, url: '/files/m/n' });
      expect(b.statusCode).toBe(200);
      writeFileSync(join(dir, 'm/file'), 'x');
      for (const url of ['/files/m/file', '/files/m/file/below']) {
        const c = await app.inject({ method: MKCOL, url });
        expect(c.statusCode, url).toBe(409);
        expectErrorBody(c.json(), 409, 'NG_ERR_CONFLICT');
      }
      const d = await request.put('/files/m/file/').expect(409);
      expectErrorBody(d.body, 409, 'NG_ERR_CONFLICT');
    });
  });

  describe('DELETE', () => {
    it('a file is 204 and gone', async () => {
      writeFileSync(join(dir, 'f.txt'), 'x');
      await request.delete('/files/f.txt').expect(204);
      expect(existsSync(join(dir, 'f.txt'))).toBe(false);
    });

    it('a missing path is 404', async () => {
      const res = await request.delete('/files/none').expect(404);
      expectErrorBody(res.body, 404, 'NG_ERR_NOT_FOUND');
    });

    it('an empty directory is 204', async () => {
      mkdirSync(join(dir, 'e'));
      await request.delete('/files/e/').expect(204);
      expect(existsSync(join(dir, 'e'))).toBe(false);
    });

    it('a non-empty directory is 409 without ?recursive=1, and 204 with it', async () => {
      mkdirSync(join(dir, 'full/deep'), { recursive: true });
      writeFileSync(join(dir, 'full/deep/x'), 'x');
      const res = await request.delete('/files/full').expect(409);
      expectErrorBody(res.body, 409, 'NG_ERR_CONFLICT');
      expect(existsSync(join(dir, 'full/deep/x'))).toBe(true);
      await request.delete('/files/full?recursive=1').expect(204);
      expect(existsSync(join(dir, 'full'))).toBe(false);
    });

    it('the root is 403, also with ?recursive=1', async () => {
      writeFileSync(join(dir, 'survivor'), 'x');
      for (const url of ['/files/', '/files', '/files/?recursive=1', '/files//./']) {
        const res = await app.inject({ method: 'DELETE', url });
        expect(res.statusCode, url).toBe(403);
        expectErrorBody(res.json(), 403, 'NG_ERR_FORBIDDEN');
      }
      expect(existsSync(join(dir, 'survivor'))).toBe(true);
    });
  });

  describe('MOVE', () => {
    it('to a new name is 201 (parents must exist); the source is gone', async () => {
      writeFileSync(join(dir, 'from.txt'), 'moving');
      const res = await app.inject({
        method: MOVE,
        url: '/files/from.txt',
        headers: { destination: '/files/to.txt' },
      });
      expect(res.statusCode).toBe(201);
      expect(readFileSync(join(dir, 'to.txt'), 'utf8')).toBe('moving');
      expect(existsSync(join(dir, 'from.txt'))).toBe(false);
    });

    it('accepts an absolute URI as Destination', async () => {
      writeFileSync(join(dir, 'from.txt'), 'moving');
      const res = await app.inject({
        method: MOVE,
        url: '/files/from.txt',
        headers: { destination: 'http://localhost/files/to%20x.txt' },
      });
      expect(res.statusCode).toBe(201);
      expect(readFileSync(join(dir, 'to x.txt'), 'utf8')).toBe('moving');
    });

    it('over an existing file is 204 (replaced)', async () => {
      writeFileSync(join(dir, 'from.txt'), 'new');
      writeFileSync(join(dir, 'to.txt'), 'old');
      const res = await app.inject({
        method: MOVE,
        url: '/files/from.txt',
        headers: { destination: '/files/to.txt' },
      });
      expect(res.statusCode).toBe(204);
      expect(readFileSync(join(dir, 'to.txt'), 'utf8')).toBe('new');
    });

    it('Overwrite: F over an existing file is 412 and changes nothing', async () => {
      writeFileSync(join(dir, 'from.txt'), 'new');
      writeFileSync(join(dir, 'to.txt'), 'old');
      const res = await app.inject({
        method: MOVE,
        url: '/files/from.txt',
        headers: { destination: '/files/to.txt', overwrite: 'F' },
      });
      expect(res.statusCode).toBe(412);
      expectErrorBody(res.json(), 412, 'NG_ERR_PRECONDITION_FAILED');
      expect(readFileSync(join(dir, 'to.txt'), 'utf8')).toBe('old');
      expect(readFileSync(join(dir, 'from.txt'), 'utf8')).toBe('new');
    });

    it('Overwrite: F to a new name is 201', async () => {
      writeFileSync(join(dir, 'from.txt'), 'new');
      const res = await app.inject({
        method: MOVE,
        url: '/files/from.txt',
        headers: { destination: '/files/fresh.txt', overwrite: 'F' },
      });
      expect(res.statusCode).toBe(201);
    });

    it('a directory moves with its contents', async () => {
      mkdirSync(join(dir, 'd1/x'), { recursive: true });
      writeFileSync(join(dir, 'd1/x/f'), 'f');
      const res = await app.inject({ method: MOVE, url: '/files/d1', headers: { destination: '/files/d2' } });
      expect(res.statusCode).toBe(201);
      expect(readFileSync(join(dir, 'd2/x/f'), 'utf8')).toBe('f');
    });

    it.each([
      [undefined, 400, 'NG_ERR_BAD_REQUEST'],
      ['/elsewhere/to.txt', 400, 'NG_ERR_BAD_REQUEST'],
      ['/files/../../etc/x', 400, 'NG_ERR_BAD_PATH'],
      ['/files/', 403, 'NG_ERR_FORBIDDEN'],
      ['/files/src.txt/inside', 409, 'NG_ERR_CONFLICT'],
      ['/files/no/such/dir/x', 409, 'NG_ERR_CONFLICT'],
    ])('Destination %s is %i %s', async (destination, status, code) => {
      writeFileSync(join(dir, 'src.txt'), 'src');
      const headers: Record<string, string> = destination === undefined ? {} : { destination };
      const res = await app.inject({ method: MOVE, url: '/files/src.txt', headers });
      expect(res.statusCode).toBe(status);
      expectErrorBody(res.json(), status, code);
      expect(readFileSync(join(dir, 'src.txt'), 'utf8')).toBe('src');
    });

    it.each([
      ['dl -> d', 'dl', 'd', '/files/dl/x'],
      ['dl -> d, deeper', 'dl', 'd', '/files/dl/sub/x'],
      ['in -> d/sub', 'in', 'd/sub', '/files/in/x'],
    ])(
      'a directory into itself through a symlink (%s) is 409, nothing moves',
      async (_, link, target, to) => {
        mkdirSync(join(dir, 'd/sub'), { recursive: true });
        writeFileSync(join(dir, 'd/sub/f'), 'f');
        symlinkSync(target, join(dir, link));
        const res = await app.inject({ method: MOVE, url: '/files/d', headers: { destination: to } });
        expect(res.statusCode).toBe(409);
        expectErrorBody(res.json(), 409, 'NG_ERR_CONFLICT');
        expect(res.json<{ message: string }>().message).toMatch(/^cannot move \/d into itself/);
        expect(readFileSync(join(dir, 'd/sub/f'), 'utf8')).toBe('f');
      },
    );

    it('a missing source is 404', async () => {
      const res = await app.inject({
        method: MOVE,
        url: '/files/ghost',
        headers: { destination: '/files/x' },
      });
      expect(res.statusCode).toBe(404);
      expectErrorBody(res.json(), 404, 'NG_ERR_NOT_FOUND');
    });
  });

  it('an unknown method on /files is an error with the nullgate shape', async () => {
    const res = await app.inject({ method: 'PATCH', url: '/files/x' });
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(Object.keys(res.json() as object).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  });
});

describe('writes to /files without --writable', () => {
  let dir: string;
  let app: FastifyInstance;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-files-ro-'));
    writeFileSync(join(dir, 'f.txt'), 'keep');
    mkdirSync(join(dir, 'd'));
    app = buildApp({ root: dir, logLevel: false });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['PUT', '/files/f.txt', {}, 'new'],
    ['PUT', '/files/new.txt', {}, 'new'],
    ['PUT', '/files/newdir/', {}, undefined],
    ['MKCOL', '/files/newdir', {}, undefined],
    ['DELETE', '/files/f.txt', {}, undefined],
    ['DELETE', '/files/d?recursive=1', {}, undefined],
    ['DELETE', '/files/', {}, undefined],
    ['MOVE', '/files/f.txt', { destination: '/files/g.txt' }, undefined],
  ] as const)('%s %s is 403 NG_ERR_READ_ONLY and changes nothing', async (method, url, headers, payload) => {
    const res = await app.inject({
      method: method as InjectMethod,
      url,
      headers,
      ...(payload === undefined ? {} : { payload }),
    });
    expect(res.statusCode).toBe(403);
    expectErrorBody(res.json(), 403, 'NG_ERR_READ_ONLY');
    expect(tree(dir)).toEqual(['d', 'f.txt']);
    expect(readFileSync(join(dir, 'f.txt'), 'utf8')).toBe('keep');
  });

  it('reads still work', async () => {
    const res = await app.inject({ url: '/files/f.txt' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('keep');
  });
});

/** One raw HTTP/1.1 exchange (so absolute-form targets and odd methods go out as written). */
function rawHttp(
  port: number,
  head: string,
  body = '',
): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${head.split('\r\n')[0]}: ${data}`));
    }, 5000);
    socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      const end = data.indexOf('\r\n\r\n');
      resolve({
        status: Number(data.split(' ')[1]),
        headers: data.slice(0, end).toLowerCase(),
        body: data.slice(end + 4),
      });
    });
    // write, not end: this plain TCP listener does not keep half-closed connections open.
    socket.write(
      `${head}\r\nHost: x\r\nConnection: close\r\n${body ? `Content-Length: ${body.length}\r\n` : ''}\r\n${body}`,
    );
  });
}

/** Fds this process holds under `root` (the in-process server's temporary files). */
function fdsUnder(root: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${root}/`)) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

describe('writes: nothing before the body is verified, symlinks, one errno map, paths and methods', () => {
  let base: string;
  let dir: string;
  let outside: string;
  let app: FastifyInstance;
  let port: number;
  let request: ReturnType<typeof supertest>;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'ng-files-audit-'));
    dir = join(base, 'root');
    outside = join(base, 'outside');
    mkdirSync(dir);
    mkdirSync(outside);
    app = buildApp({ root: dir, writable: true, maxUpload: MAX_UPLOAD, logLevel: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    request = supertest(app.server);
  });
  afterAll(async () => {
    await app.close();
    rmSync(base, { recursive: true, force: true });
  });
  beforeEach(() => {
    for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
    for (const name of readdirSync(outside)) rmSync(join(outside, name), { recursive: true, force: true });
    writeFileSync(join(outside, 'secret'), 'outside');
  });

  describe('a failed upload creates no parent directories', () => {
    it('a wrong digest on /nd/x/f is 400 and leaves no nd/', async () => {
      const res = await request
        .put('/files/nd/x/f')
        .set('Content-Digest', digest('sha256', 'other'))
        .send('body')
        .expect(400);
      expectErrorBody(res.body, 400, 'NG_ERR_DIGEST_MISMATCH');
      expect(tree(dir)).toEqual([]);
    });

    it('a chunked body over maxUpload on /nd/x/f is 413 and leaves no nd/', async () => {
      const res = await send(port, 'PUT', '/files/nd/x/f', {}, chunks(2 * MAX_UPLOAD));
      expect(res.status).toBe(413);
      expect(tree(dir)).toEqual([]);
    });

    it('a client that disconnects mid-body on /nd/x/f leaves no nd/', async () => {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`PUT /files/nd/x/f HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_UPLOAD}\r\n\r\n`);
      socket.write(Buffer.alloc(64 * 1024, 0x61));
      const until = Date.now() + 5000;
      while (fdsUnder(dir) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(fdsUnder(dir)).toBeGreaterThan(0);
      socket.destroy();
      while (fdsUnder(dir) > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(fdsUnder(dir)).toBe(0);
      expect(tree(dir)).toEqual([]);
    });

    it('a verified body gets its parents, next to existing ones', async () => {
      mkdirSync(join(dir, 'have'));
      await request.put('/files/have/new/deeper/f').send('ok').expect(201);
      expect(tree(dir)).toEqual(['have', 'have/new', 'have/new/deeper', 'have/new/deeper/f']);
      expect(readFileSync(join(dir, 'have/new/deeper/f'), 'utf8')).toBe('ok');
    });
  });

  describe('a final symlink inside the root is written through', () => {
    it("If-Match with GET's ETag succeeds on the link; the target is replaced, the link stays", async () => {
      writeFileSync(join(dir, 'real.txt'), 'v1');
      symlinkSync('real.txt', join(dir, 'ln'));
      const { etag } = (await request.head('/files/ln').expect(200)).headers as { etag: string };
      const res = await request.put('/files/ln').set('If-Match', etag).send('v2').expect(200);
      expect(res.body).toMatchObject({ path: '/ln', size: 2 });
      expect(readFileSync(join(dir, 'real.txt'), 'utf8')).toBe('v2');
      expect(lstatSync(join(dir, 'ln')).isSymbolicLink()).toBe(true);
      expect((await request.head('/files/ln').expect(200)).headers.etag).toBe(res.body.etag);
      // The old ETag no longer matches.
      await request.put('/files/ln').set('If-Match', etag).send('v3').expect(412);
      expect(readFileSync(join(dir, 'real.txt'), 'utf8')).toBe('v2');
    });

    it('a PUT without preconditions replaces the target, not the link; links are resolved where they are', async () => {
      mkdirSync(join(dir, 'sub/nest'), { recursive: true });
      writeFileSync(join(dir, 'sub/inner.txt'), 'old');
      symlinkSync('sub/nest', join(dir, 'via'));
      symlinkSync('../inner.txt', join(dir, 'sub/nest/back'));
      await request.put('/files/via/back').send('new').expect(200);
      expect(readFileSync(join(dir, 'sub/inner.txt'), 'utf8')).toBe('new');
      expect(readlinkSync(join(dir, 'sub/nest/back'))).toBe('../inner.txt');
      // (readdirSync's recursive walk follows `via` itself, hence via/back.)
      expect(tree(dir)).toEqual(['sub', 'sub/inner.txt', 'sub/nest', 'sub/nest/back', 'via', 'via/back']);
      expect(lstatSync(join(dir, 'via')).isSymbolicLink()).toBe(true);
    });

    it('a dangling link inside the root creates its target; If-None-Match: * sees the target', async () => {
      symlinkSync('made/here.txt', join(dir, 'dangling'));
      await request.put('/files/dangling').set('If-None-Match', '*').send('first').expect(201);
      expect(readFileSync(join(dir, 'made/here.txt'), 'utf8')).toBe('first');
      expect(lstatSync(join(dir, 'dangling')).isSymbolicLink()).toBe(true);
      const res = await request.put('/files/dangling').set('If-None-Match', '*').send('again').expect(412);
      expectErrorBody(res.body, 412, 'NG_ERR_PRECONDITION_FAILED');
    });

    it.each([
      ['a relative link out of the root', '../outside/secret'],
      ['an absolute link', '/etc/hostname'],
    ])('%s is 403 NG_ERR_OUTSIDE_ROOT and nothing changes', async (_what, target) => {
      symlinkSync(target, join(dir, 'out'));
      const res = await request.put('/files/out').send('planted').expect(403);
      expectErrorBody(res.body, 403, 'NG_ERR_OUTSIDE_ROOT');
      expect(readlinkSync(join(dir, 'out'))).toBe(target);
      expect(readFileSync(join(outside, 'secret'), 'utf8')).toBe('outside');
    });
  });

  describe('a directory symlink leading out is 403 for every write (one errno map)', () => {
    it.each([
      ['MOVE to it', 'MOVE', '/files/src.txt', { destination: '/files/escape/x' }],
      ['PUT through it', 'PUT', '/files/escape/x', {}],
      ['MKCOL through it', 'MKCOL', '/files/escape/new', {}],
      ['DELETE through it', 'DELETE', '/files/escape/secret', {}],
      ['MOVE from it', 'MOVE', '/files/escape/secret', { destination: '/files/stolen' }],
    ] as const)('%s', async (_what, method, url, headers) => {
      writeFileSync(join(dir, 'src.txt'), 'src');
      symlinkSync('../outside', join(dir, 'escape'));
      const res = await app.inject({
        method: method as InjectMethod,
        url,
        headers,
        ...(method === 'PUT' ? { payload: 'x' } : {}),
      });
      expect(res.statusCode).toBe(403);
      expectErrorBody(res.json(), 403, 'NG_ERR_OUTSIDE_ROOT');
      expect(readdirSync(outside)).toEqual(['secret']);
      expect(readFileSync(join(dir, 'src.txt'), 'utf8')).toBe('src');
    });
  });

  describe('a trailing slash names a directory', () => {
    it.each([
      ['DELETE', {}],
      ['MOVE', { destination: '/files/g.txt' }],
    ] as const)('%s /files/f.txt/ is 404 and the file stays', async (method, headers) => {
      writeFileSync(join(dir, 'f.txt'), 'keep');
      const res = await app.inject({ method: method as InjectMethod, url: '/files/f.txt/', headers });
      expect(res.statusCode).toBe(404);
      expectErrorBody(res.json(), 404, 'NG_ERR_NOT_FOUND');
      expect(tree(dir)).toEqual(['f.txt']);
    });

    it('a file moved to a directory path (Destination ending in /) is 409', async () => {
      writeFileSync(join(dir, 'f.txt'), 'keep');
      const res = await app.inject({
        method: MOVE,
        url: '/files/f.txt',
        headers: { destination: '/files/g/' },
      });
      expect(res.statusCode).toBe(409);
      expect(tree(dir)).toEqual(['f.txt']);
    });

    it('directories, and symlinks to them, take the slash', async () => {
      mkdirSync(join(dir, 'd'));
      symlinkSync('d', join(dir, 'dl'));
      await request.delete('/files/dl/').expect(204);
      expect(tree(dir)).toEqual(['d']);
      const res = await app.inject({ method: MOVE, url: '/files/d/', headers: { destination: '/files/e/' } });
      expect(res.statusCode).toBe(201);
      expect(tree(dir)).toEqual(['e']);
    });
  });

  describe('names reserved for temporaries', () => {
    it('PUT /files/.nullgate-tmp-mine is 400 NG_ERR_BAD_PATH and creates nothing', async () => {
      const res = await request.put('/files/.nullgate-tmp-mine').send('x').expect(400);
      expectErrorBody(res.body, 400, 'NG_ERR_BAD_PATH');
      expect(tree(dir)).toEqual([]);
    });

    it('a stale temporary is never served, nor written, moved or deleted by a request', async () => {
      mkdirSync(join(dir, 'target/.nullgate-tmp-0123456789abcdef'), { recursive: true });
      writeFileSync(join(dir, 'target/.nullgate-tmp-0123456789abcdef/z'), 'partial');
      writeFileSync(join(dir, 'f.txt'), 'f');
      const before = tree(dir);
      for (const [method, url, headers] of [
        ['GET', '/files/target/.nullgate-tmp-0123456789abcdef/z', {}],
        ['GET', '/files/target/.nullgate-tmp-0123456789abcdef/', {}],
        ['DELETE', '/files/target/.nullgate-tmp-0123456789abcdef?recursive=1', {}],
        ['MKCOL', '/files/target/.nullgate-tmp-new', {}],
        ['MOVE', '/files/f.txt', { destination: '/files/.nullgate-tmp-0123456789abcdef' }],
      ] as const) {
        const res = await app.inject({ method: method as InjectMethod, url, headers });
        expect(res.statusCode, `${method} ${url}`).toBe(400);
        expectErrorBody(res.json(), 400, 'NG_ERR_BAD_PATH');
        expect(res.body).not.toContain('partial');
      }
      expect(tree(dir)).toEqual(before);
    });
  });

  describe('request targets and methods', () => {
    it('absolute-form targets (RFC 9112 §3.2.2) name the same files as origin-form ones', async () => {
      writeFileSync(join(dir, 'hello.txt'), 'hello');
      const get = await rawHttp(port, 'GET http://localhost/files/hello.txt HTTP/1.1');
      expect(get.status).toBe(200);
      expect(get.body).toBe('hello');
      const put = await rawHttp(port, 'PUT http://localhost/files/abs.txt?x=1 HTTP/1.1', 'put');
      expect(put.status).toBe(201);
      expect(readFileSync(join(dir, 'abs.txt'), 'utf8')).toBe('put');
      // Not normalised: `..` is judged as sent.
      const up = await rawHttp(port, 'GET http://localhost/files/../hello.txt HTTP/1.1');
      expect(up.status).toBe(400);
      expect(JSON.parse(up.body)).toMatchObject({ code: 'NG_ERR_BAD_PATH' });
    });

    it.each(['POST', 'PATCH', 'TRACE'])(
      '%s on /files is 405 NG_ERR_METHOD_NOT_ALLOWED with Allow',
      async (method) => {
        for (const url of ['/files/x', '/files/', '/files']) {
          const res = await rawHttp(port, `${method} ${url} HTTP/1.1`);
          expect(res.status, `${method} ${url}`).toBe(405);
          expect(res.headers).toContain('\r\nallow: get, head, put, delete, mkcol, move, options');
          expectErrorBody(JSON.parse(res.body), 405, 'NG_ERR_METHOD_NOT_ALLOWED');
        }
        expect(tree(dir)).toEqual([]);
      },
    );
  });
});

describe('the startup sweep of temporaries', () => {
  it('a writable server removes stale .nullgate-tmp-* at the top of the root; a read-only one leaves them', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ng-files-sweep-'));
    try {
      writeFileSync(join(root, '.nullgate-tmp-00000000000000aa'), 'named upload');
      mkdirSync(join(root, '.nullgate-tmp-00000000000000bb/target'), { recursive: true });
      writeFileSync(join(root, '.nullgate-tmp-00000000000000bb/target/z'), 'staged archive');
      writeFileSync(join(root, 'keep.txt'), 'keep');
      const readOnly = buildApp({ root, logLevel: false });
      await readOnly.ready();
      await readOnly.close();
      expect(tree(root)).toHaveLength(5);
      const writable = buildApp({ root, writable: true, logLevel: false });
      await writable.ready();
      try {
        expect(tree(root)).toEqual(['keep.txt']);
      } finally {
        await writable.close();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('writes into another mount inside the root', () => {
  itNeeds(
    ['root', 'mount', 'tar'],
    'uploads, replaces and archives there (temporaries beside the target), leaving no temporary',
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'ng-files-mnt-'));
      const mnt = join(root, 'mnt');
      mkdirSync(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'ng-test-files-mnt', mnt]);
      const app = buildApp({ root, writable: true, logLevel: false });
      try {
        await app.ready();
        const request = supertest(app.server);
        await request.put('/files/mnt/new/f.txt').send('one').expect(201);
        await request.put('/files/mnt/new/f.txt').send('two').expect(200);
        expect(readFileSync(join(mnt, 'new/f.txt'), 'utf8')).toBe('two');
        const tarball = execFileSync('tar', ['-c', '-C', join(mnt, 'new'), 'f.txt']);
        const res = await app.inject({ method: 'PUT', url: '/archive/mnt/copy', payload: tarball });
        expect(res.statusCode).toBe(201);
        expect(readFileSync(join(mnt, 'copy/f.txt'), 'utf8')).toBe('two');
        expect(tree(root).filter((n) => n.includes('.nullgate-tmp-'))).toEqual([]);
      } finally {
        await app.close();
        execFileSync('umount', [mnt]);
        rmSync(root, { recursive: true, force: true });
      }
    },
  );
});
