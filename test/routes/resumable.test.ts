/**
 * Resumable uploads (CONTRACT.md "Resumable uploads"; draft-ietf-httpbis-resumable-upload):
 * creation with PUT /files + Upload-Complete, HEAD/PATCH/DELETE on /uploads/<id>, completion
 * through the atomic upload path, the state on disk across an app restart, expiry. The owner check
 * (another uid) and a server killed mid-upload are in test/e2e/resumable.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import supertest from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import Fastify from 'fastify';
import { buildApp } from '../../gateway/app.js';
import { BeneathRoot } from '../../native/beneath.js';
import { filesRoutes, uploadsRoutes } from '../../routes/index.js';
import { UPLOADS_DIR } from '../../routes/upload-store.js';
import { parseSfBoolean, parseSfInteger, uploadLimit } from '../../routes/resumable.js';
import { itNeeds } from '../helpers/requirements.js';

const MAX_UPLOAD = 4 * 1024 * 1024;
const PARTIAL = 'application/partial-upload';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const reprDigest = (data: Buffer) => `sha-256=:${createHash('sha256').update(data).digest('base64')}:`;

function uploadsLeft(dir: string): string[] {
  return existsSync(join(dir, UPLOADS_DIR)) ? readdirSync(join(dir, UPLOADS_DIR)).sort() : [];
}

describe('structured fields of the draft', () => {
  it.each([
    ['?1', true],
    ['?0', false],
    [' ?1 ', true],
    ['?1;x=1', true],
    ['1', undefined],
    ['?2', undefined],
    ['true', undefined],
    [undefined, undefined],
  ])('Upload-Complete %j → %j', (value, expected) => {
    expect(parseSfBoolean(value)).toBe(expected);
  });
  it.each([
    ['0', 0],
    ['123456789', 123456789],
    ['-1', undefined],
    ['1.5', undefined],
    ['1234567890123456', undefined],
    ['', undefined],
  ])('Upload-Offset %j → %j', (value, expected) => {
    expect(parseSfInteger(value)).toBe(expected);
  });
  it('Upload-Limit is a Dictionary of max-size (when limited) and max-age in seconds', () => {
    expect(uploadLimit(1000, 90_500)).toBe('max-size=1000, max-age=90');
    expect(uploadLimit(Number.MAX_SAFE_INTEGER, 3_600_000)).toBe('max-age=3600');
  });
});

describe('resumable uploads (--writable)', () => {
  let dir: string;
  let app: FastifyInstance;
  let port: number;
  let request: ReturnType<typeof supertest>;

  const start = async (options: { writable?: boolean; expiryMs?: number } = {}) => {
    app = buildApp({
      root: dir,
      writable: options.writable ?? true,
      maxUpload: MAX_UPLOAD,
      logLevel: false,
      uploadExpiryMs: options.expiryMs,
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    request = supertest(app.server);
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ng-resumable-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
    await start();
  });
  afterEach(async () => app.close());

  /** Creates a resource holding `first`; resolves with its Location. */
  const create = async (path: string, first: Buffer, headers: Record<string, string> = {}) => {
    const res = await request
      .put(path)
      .set({ 'upload-complete': '?0', ...headers })
      .send(first)
      .expect(201);
    expect(res.headers['upload-offset']).toBe(String(first.length));
    expect(res.headers['upload-complete']).toBe('?0');
    expect(res.headers.location).toMatch(/^\/uploads\/[0-9a-f]{32}$/);
    return res.headers.location as string;
  };

  it('creation, offset, append, completion: the file appears only when complete, byte-exact', async () => {
    const data = randomBytes(300_000);
    const where = await create('/files/d/big.bin', data.subarray(0, 100_000), {
      'upload-length': String(data.length),
    });
    // Nothing is visible before completion: not the file, not its directory, not the resource.
    expect(existsSync(join(dir, 'd'))).toBe(false);
    const listing = await request.get('/files/').expect(200);
    expect(JSON.stringify(listing.body)).not.toContain('nullgate');
    await request.get(`/files/${UPLOADS_DIR}/`).expect(400);
    writeFileSync(join(dir, 'visible.txt'), 'visible');
    const archive = await request
      .get('/archive/')
      .buffer(true)
      .parse((res, done) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(null, Buffer.concat(chunks)));
      })
      .expect(200);
    const tarBytes = archive.body as Buffer;
    expect(tarBytes.includes('visible.txt')).toBe(true);
    expect(tarBytes.includes('nullgate-tmp')).toBe(false);

    const head = await request.head(where).expect(204);
    expect(head.headers).toMatchObject({
      'upload-offset': '100000',
      'upload-complete': '?0',
      'upload-length': '300000',
      'cache-control': 'no-store',
    });
    expect(head.headers['upload-limit']).toMatch(new RegExp(`^max-size=${MAX_UPLOAD}, max-age=\\d+$`));

    const middle = await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': '100000', 'upload-complete': '?0' })
      .send(data.subarray(100_000, 200_000))
      .expect(204);
    expect(middle.headers['upload-offset']).toBe('200000');

    const last = await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': '200000', 'upload-complete': '?1' })
      .send(data.subarray(200_000))
      .expect(201);
    expect(last.headers['upload-complete']).toBe('?1');
    expect(last.body).toEqual({ path: '/d/big.bin', size: data.length, etag: last.headers.etag });
    expect(sha256(readFileSync(join(dir, 'd/big.bin')))).toBe(sha256(data));

    // The completed resource answers HEAD (a client that lost the answer learns it), takes no more data.
    const after = await request.head(where).expect(204);
    expect(after.headers).toMatchObject({ 'upload-complete': '?1', 'upload-offset': String(data.length) });
    const again = await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': String(data.length), 'upload-complete': '?1' })
      .send(Buffer.from('x'))
      .expect(400);
    expect(again.body.code).toBe('NG_ERR_UPLOAD_COMPLETED');
    expect(uploadsLeft(dir).filter((n) => !n.endsWith('.done'))).toEqual([]);
  });

  it('the metadata fields of the creating request (X-Nullgate-Mode, -Mtime) are applied at completion', async () => {
    const data = randomBytes(2000);
    const where = await create('/files/kept.bin', data.subarray(0, 1000), {
      'x-nullgate-mode': '0640',
      'x-nullgate-mtime': '1700000000.123456789',
    });
    const last = await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': '1000', 'upload-complete': '?1' })
      .send(data.subarray(1000))
      .expect(201);
    const st = statSync(join(dir, 'kept.bin'), { bigint: true });
    expect(Number(st.mode) & 0o7777).toBe(0o640);
    expect(st.mtimeNs).toBe(1_700_000_000_123_456_789n);
    const head = await request.head('/files/kept.bin').expect(200);
    expect(last.headers.etag).toBe(head.headers.etag);
    // The marker is made after the mtime, with the ETag the answer gave.
    expect((await request.head(where).expect(204)).headers.etag).toBe(last.headers.etag);
    // A malformed one is refused at creation, before a resource exists.
    const bad = await request
      .put('/files/bad.bin')
      .set({ 'upload-complete': '?0', 'x-nullgate-mode': '9' })
      .send(Buffer.from('x'))
      .expect(400);
    expect(bad.body.code).toBe('NG_ERR_BAD_REQUEST');
  });

  it('a wrong Upload-Offset is 409 with the right one; nothing is appended', async () => {
    const where = await create('/files/x.bin', Buffer.from('hello '));
    const res = await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': '3', 'upload-complete': '?1' })
      .send('world')
      .expect(409);
    expect(res.body.code).toBe('NG_ERR_UPLOAD_OFFSET_MISMATCH');
    expect(res.headers['upload-offset']).toBe('6');
    expect((await request.head(where).expect(204)).headers['upload-offset']).toBe('6');
    await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': '6', 'upload-complete': '?1' })
      .send('world')
      .expect(201);
    expect(readFileSync(join(dir, 'x.bin'), 'utf8')).toBe('hello world');
  });

  it('PATCH needs application/partial-upload (415), Upload-Offset and Upload-Complete (400)', async () => {
    const where = await create('/files/x.bin', Buffer.from('a'));
    const wrongType = await request
      .patch(where)
      .set({ 'content-type': 'application/octet-stream', 'upload-offset': '1', 'upload-complete': '?1' })
      .send('b')
      .expect(415);
    expect(wrongType.body.code).toBe('NG_ERR_UNSUPPORTED_MEDIA_TYPE');
    await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-complete': '?1' })
      .send('b')
      .expect(400);
    await request.patch(where).set({ 'content-type': PARTIAL, 'upload-offset': '1' }).send('b').expect(400);
  });

  it('DELETE cancels: 204, then 404, and nothing is left', async () => {
    const where = await create('/files/x.bin', Buffer.from('some bytes'));
    await request.delete(where).expect(204);
    expect((await request.head(where).expect(404)).status).toBe(404);
    await request.delete(where).expect(404);
    expect(uploadsLeft(dir)).toEqual([]);
    expect(existsSync(join(dir, 'x.bin'))).toBe(false);
  });

  it('an unknown or malformed id is 404; GET on a resource is 405', async () => {
    await request.head(`/uploads/${'0'.repeat(32)}`).expect(404);
    await request.delete('/uploads/..%2Ffiles').expect(404);
    const where = await create('/files/x.bin', Buffer.from('a'));
    const res = await request.get(where).expect(405);
    expect(res.headers.allow).toBe('HEAD, PATCH, DELETE, OPTIONS');
  });

  it('Repr-Digest given at creation is verified on the whole at completion; a mismatch keeps nothing', async () => {
    const data = randomBytes(10_000);
    const good = await create('/files/good.bin', data.subarray(0, 4000), { 'repr-digest': reprDigest(data) });
    await request
      .patch(good)
      .set({ 'content-type': PARTIAL, 'upload-offset': '4000', 'upload-complete': '?1' })
      .send(data.subarray(4000))
      .expect(201);
    const bad = await create('/files/bad.bin', data.subarray(0, 4000), {
      'repr-digest': reprDigest(Buffer.from('other')),
    });
    const res = await request
      .patch(bad)
      .set({ 'content-type': PARTIAL, 'upload-offset': '4000', 'upload-complete': '?1' })
      .send(data.subarray(4000))
      .expect(400);
    expect(res.body.code).toBe('NG_ERR_DIGEST_MISMATCH');
    expect(res.headers['upload-complete']).toBe('?1');
    expect(existsSync(join(dir, 'bad.bin'))).toBe(false);
    await request.head(bad).expect(404);
    expect(uploadsLeft(dir).filter((n) => !n.endsWith('.done'))).toEqual([]);
  });

  it('a creation that completes in one request verifies Repr-Digest/Content-Digest on the whole as it arrives', async () => {
    const data = randomBytes(50_000);
    await request
      .put('/files/one.bin')
      .set({ 'upload-complete': '?1', 'repr-digest': reprDigest(data), 'content-digest': reprDigest(data) })
      .send(data)
      .expect(201);
    expect(sha256(readFileSync(join(dir, 'one.bin')))).toBe(sha256(data));
    const bad = await request
      .put('/files/two.bin')
      .set({ 'upload-complete': '?1', 'content-digest': reprDigest(Buffer.from('other')) })
      .send(data)
      .expect(400);
    expect(bad.body.code).toBe('NG_ERR_DIGEST_MISMATCH');
    expect(bad.headers['upload-complete']).toBe('?1');
    expect(existsSync(join(dir, 'two.bin'))).toBe(false);
    expect(uploadsLeft(dir).filter((n) => !n.endsWith('.done'))).toEqual([]);
  });

  it('one PATCH from offset 0 after an empty creation verifies the digests of the whole as it arrives', async () => {
    const data = randomBytes(20_000);
    const patchAll = (where: string, headers: Record<string, string> = {}) =>
      request
        .patch(where)
        .set({ 'content-type': PARTIAL, 'upload-offset': '0', 'upload-complete': '?1', ...headers })
        .send(data);
    const good = await create('/files/good.bin', Buffer.alloc(0), { 'repr-digest': reprDigest(data) });
    await patchAll(good).expect(201);
    expect(sha256(readFileSync(join(dir, 'good.bin')))).toBe(sha256(data));
    const bad = await create('/files/bad.bin', Buffer.alloc(0), {
      'repr-digest': reprDigest(Buffer.from('x')),
    });
    const res = await patchAll(bad).expect(400);
    expect(res.body.code).toBe('NG_ERR_DIGEST_MISMATCH');
    expect(existsSync(join(dir, 'bad.bin'))).toBe(false);
    // From a later offset, the PATCH's own Content-Digest covers its part only, never the whole.
    const split = await create('/files/split.bin', data.subarray(0, 5000), {
      'repr-digest': reprDigest(data),
    });
    await request
      .patch(split)
      .set({
        'content-type': PARTIAL,
        'upload-offset': '5000',
        'upload-complete': '?1',
        'content-digest': reprDigest(data.subarray(5000)),
      })
      .send(data.subarray(5000))
      .expect(201);
    expect(sha256(readFileSync(join(dir, 'split.bin')))).toBe(sha256(data));
    expect(uploadsLeft(dir).filter((n) => !n.endsWith('.done'))).toEqual([]);
  });

  describe('durability: fsyncs counted', () => {
    const counts = () => {
      const fsync = vi.spyOn(BeneathRoot.prototype, 'fsync');
      const fsyncDir = vi.spyOn(BeneathRoot.prototype, 'fsyncDir');
      return {
        take: () => {
          const taken = { fsync: fsync.mock.calls.length, fsyncDir: fsyncDir.mock.calls.length };
          fsync.mockClear();
          fsyncDir.mockClear();
          return taken;
        },
      };
    };
    afterEach(() => vi.restoreAllMocks());

    it('an empty creation then one completing PATCH fsync as a plain PUT (the data, its directory), and the uploads directory for the marker', async () => {
      const data = randomBytes(300_000);
      const c = counts();
      await request.put('/files/plain.bin').send(data).expect(201);
      const plain = c.take();
      expect(plain).toEqual({ fsync: 1, fsyncDir: 1 });
      // A resource that holds nothing is not synced: a crash loses nothing a client was told of.
      const where = await create('/files/res.bin', Buffer.alloc(0));
      expect(c.take()).toEqual({ fsync: 0, fsyncDir: 0 });
      await request
        .patch(where)
        .set({ 'content-type': PARTIAL, 'upload-offset': '0', 'upload-complete': '?1' })
        .send(data)
        .expect(201);
      // The marker's name and content are one symlink: its directory alone makes it durable.
      expect(c.take()).toEqual({ ...plain, fsyncDir: plain.fsyncDir + 1 });
      expect(readFileSync(join(dir, 'res.bin')).equals(data)).toBe(true);
    });

    it('the marker of a completion is made with the target, before its directory is fsynced, and durable before the answer', async () => {
      const data = randomBytes(300_000);
      const where = await create('/files/sub/m.bin', Buffer.alloc(0));
      const id = where.split('/').pop()!;
      await request.put('/files/sub/other.txt').send('x').expect(201);
      const fsyncDir = vi.spyOn(BeneathRoot.prototype, 'fsyncDir');
      const symlink = vi.spyOn(BeneathRoot.prototype, 'symlink');
      const rename = vi.spyOn(BeneathRoot.prototype, 'rename');
      const unlink = vi.spyOn(BeneathRoot.prototype, 'unlink');
      const done = await request
        .patch(where)
        .set({ 'content-type': PARTIAL, 'upload-offset': '0', 'upload-complete': '?1' })
        .send(data)
        .expect(201);
      const marker = `${UPLOADS_DIR}/${id}.done`;
      expect(symlink.mock.calls.map((call) => call[1])).toEqual([marker]);
      expect(fsyncDir.mock.calls.map((call) => call[0])).toEqual(['sub', UPLOADS_DIR]);
      // rename (the completion) < marker < the target's directory fsync < the uploads directory's.
      const [renamed] = rename.mock.invocationCallOrder;
      const [marked] = symlink.mock.invocationCallOrder;
      const [targetDir, uploadsDir] = fsyncDir.mock.invocationCallOrder;
      expect(renamed! < marked! && marked! < targetDir! && targetDir! < uploadsDir!).toBe(true);
      // The data file became the target: there is no .part left to unlink.
      expect(unlink.mock.calls.map((call) => call[0])).toEqual([`${UPLOADS_DIR}/${id}.json`]);
      expect(uploadsLeft(dir)).toEqual([`${id}.done`]);
      const head = await request.head(where).expect(204);
      expect(head.headers).toMatchObject({
        'upload-complete': '?1',
        'upload-offset': String(data.length),
        etag: done.headers.etag,
      });
    });

    it('an offset other than 0 is reported only once the data, the metadata and their names are durable', async () => {
      const c = counts();
      // Data, metadata, then the uploads directory.
      const where = await create('/files/kept.bin', Buffer.from('first '));
      expect(c.take()).toEqual({ fsync: 2, fsyncDir: 1 });
      // The names and the metadata are durable already: the data alone.
      await request
        .patch(where)
        .set({ 'content-type': PARTIAL, 'upload-offset': '6', 'upload-complete': '?0' })
        .send(Buffer.from('second '))
        .expect(204);
      expect(c.take()).toEqual({ fsync: 1, fsyncDir: 0 });
      // A length declared now rewrites the metadata: durable again with the data.
      await request
        .patch(where)
        .set({
          'content-type': PARTIAL,
          'upload-offset': '13',
          'upload-complete': '?0',
          'upload-length': '18',
        })
        .send(Buffer.from('third'))
        .expect(204);
      expect(c.take()).toEqual({ fsync: 2, fsyncDir: 1 });
      const head = await request.head(where).expect(204);
      expect(head.headers).toMatchObject({ 'upload-offset': '18', 'upload-length': '18' });
    });
  });

  it("a PATCH's own Content-Digest covers its content: a mismatch appends nothing", async () => {
    const where = await create('/files/x.bin', Buffer.from('abc'));
    const res = await request
      .patch(where)
      .set({
        'content-type': PARTIAL,
        'upload-offset': '3',
        'upload-complete': '?0',
        'content-digest': reprDigest(Buffer.from('not this')),
      })
      .send('def')
      .expect(400);
    expect(res.body.code).toBe('NG_ERR_DIGEST_MISMATCH');
    expect((await request.head(where).expect(204)).headers['upload-offset']).toBe('3');
  });

  it('the preconditions of the creating request are judged again at completion (412, nothing kept)', async () => {
    const where = await create('/files/x.txt', Buffer.from('mine'), { 'if-none-match': '*' });
    writeFileSync(join(dir, 'x.txt'), 'theirs');
    const res = await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': '4', 'upload-complete': '?1' })
      .send('')
      .expect(412);
    expect(res.body.code).toBe('NG_ERR_PRECONDITION_FAILED');
    expect(readFileSync(join(dir, 'x.txt'), 'utf8')).toBe('theirs');
    // And at creation, before anything is made.
    await request
      .put('/files/x.txt')
      .set({ 'upload-complete': '?0', 'if-none-match': '*' })
      .send('a')
      .expect(412);
    expect(uploadsLeft(dir).filter((n) => !n.endsWith('.done'))).toEqual([]);
  });

  it('lengths: inconsistent ones are 400; past --max-upload 413 with Upload-Limit', async () => {
    const res = await request
      .put('/files/x.bin')
      .set({ 'upload-complete': '?1', 'upload-length': '10' })
      .send('12345')
      .expect(400);
    expect(res.body.code).toBe('NG_ERR_UPLOAD_LENGTH_INCONSISTENT');
    const where = await create('/files/x.bin', Buffer.from('12345'), { 'upload-length': '8' });
    const over = await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': '5', 'upload-complete': '?0' })
      .send('6789')
      .expect(400);
    expect(over.body.code).toBe('NG_ERR_UPLOAD_LENGTH_INCONSISTENT');
    const early = await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': '5', 'upload-complete': '?1' })
      .send('67')
      .expect(400);
    expect(early.body.code).toBe('NG_ERR_UPLOAD_LENGTH_INCONSISTENT');
    const big = await request
      .put('/files/y.bin')
      .set({ 'upload-complete': '?0', 'upload-length': String(MAX_UPLOAD + 1) })
      .send('')
      .expect(413);
    expect(big.headers['upload-limit']).toBe(`max-size=${MAX_UPLOAD}, max-age=86400`);
  });

  it('a chunked body that passes --max-upload mid-body is 413 and takes its resource with it', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'PUT',
          path: '/files/huge.bin',
          headers: { 'upload-complete': '?0', 'transfer-encoding': 'chunked' },
          agent: false,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', () => undefined);
      const chunk = Buffer.alloc(256 * 1024, 0x61);
      let sent = 0;
      const pump = () => {
        while (sent <= MAX_UPLOAD && !req.destroyed) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
      setTimeout(() => reject(new Error('no answer')), 10_000).unref();
    });
    expect(status).toBe(413);
    expect(uploadsLeft(dir)).toEqual([]);
  });

  it('a plain PUT with Upload-Complete: ?1 completes at once, after a 104 naming its resource', async () => {
    const body = 'whole body';
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
      socket.write(
        `PUT /files/w.txt HTTP/1.1\r\nHost: x\r\nUpload-Complete: ?1\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    expect(raw).toMatch(
      /^HTTP\/1\.1 104 Upload Resumption Supported\r\nLocation: \/uploads\/[0-9a-f]{32}\r\n/,
    );
    expect(raw).toMatch(/\r\n\r\nHTTP\/1\.1 201 Created\r\n/);
    expect(raw).toMatch(/\r\nupload-complete: \?1\r\n/i);
    expect(readFileSync(join(dir, 'w.txt'), 'utf8')).toBe(body);
  });

  it('a creation cut mid-body keeps what arrived; HEAD tells it, PATCH finishes it byte-exact', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const sent = 700_000;
    const location = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (c: Buffer) => {
        text += c.toString('latin1');
        const m = /Location: (\S+)\r\n/.exec(text);
        if (m) {
          // Gone mid-body, as a broken connection would be.
          socket.destroy();
          resolve(m[1]!);
        }
      });
      socket.on('error', reject);
      socket.write(
        `PUT /files/cut.bin HTTP/1.1\r\nHost: x\r\nUpload-Complete: ?1\r\nContent-Length: ${data.length}\r\n\r\n`,
      );
      socket.write(data.subarray(0, sent));
    });
    const head = await request.head(location).expect(204);
    const offset = Number(head.headers['upload-offset']);
    expect(offset).toBeLessThanOrEqual(sent);
    expect(head.headers['upload-length']).toBe(String(data.length));
    expect(existsSync(join(dir, 'cut.bin'))).toBe(false);
    await request
      .patch(location)
      .set({ 'content-type': PARTIAL, 'upload-offset': String(offset), 'upload-complete': '?1' })
      .send(data.subarray(offset))
      .expect(201);
    expect(sha256(readFileSync(join(dir, 'cut.bin')))).toBe(sha256(data));
  });

  itNeeds(
    ['root', 'mount'],
    'a target on another mount is copied there at completion; the data file goes, the marker stays',
    async () => {
      const mnt = join(dir, 'mnt');
      mkdirSync(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'ng-test-resumable-mnt', mnt]);
      try {
        const data = randomBytes(100_000);
        const where = await create('/files/mnt/x.bin', data.subarray(0, 1000));
        const id = where.split('/').pop()!;
        const done = await request
          .patch(where)
          .set({ 'content-type': PARTIAL, 'upload-offset': '1000', 'upload-complete': '?1' })
          .send(data.subarray(1000))
          .expect(201);
        expect(readFileSync(join(mnt, 'x.bin')).equals(data)).toBe(true);
        expect(uploadsLeft(dir)).toEqual([`${id}.done`]);
        expect(readdirSync(mnt)).toEqual(['x.bin']);
        const head = await request.head(where).expect(204);
        expect(head.headers).toMatchObject({ 'upload-complete': '?1', etag: done.headers.etag });
      } finally {
        execFileSync('umount', [mnt]);
      }
    },
  );

  it('a completion marker written as a JSON file (by servers before markers were symlinks) still answers HEAD', async () => {
    const id = 'ab'.repeat(16);
    mkdirSync(join(dir, UPLOADS_DIR), { mode: 0o700 });
    const marker = { uid: process.getuid!(), size: 5, etag: '"1-2-5-3"' };
    writeFileSync(join(dir, UPLOADS_DIR, `${id}.done`), JSON.stringify({ id, target: 'f', ...marker }));
    const head = await request.head(`/uploads/${id}`).expect(204);
    expect(head.headers).toMatchObject({ 'upload-complete': '?1', 'upload-offset': '5', etag: marker.etag });
    await request.delete(`/uploads/${id}`).expect(204);
    expect(uploadsLeft(dir)).toEqual([]);
  });

  it('the state is on disk: a new app (after a restart) carries on; the temporary sweep keeps it', async () => {
    const where = await create('/files/r.bin', Buffer.from('before restart, '));
    await app.close();
    await start();
    expect((await request.head(where).expect(204)).headers['upload-offset']).toBe('16');
    await request
      .patch(where)
      .set({ 'content-type': PARTIAL, 'upload-offset': '16', 'upload-complete': '?1' })
      .send('after')
      .expect(201);
    expect(readFileSync(join(dir, 'r.bin'), 'utf8')).toBe('before restart, after');
  });

  it('a resource idle past the expiry is swept (at start, and periodically); a live one is not', async () => {
    const old = await create('/files/old.bin', Buffer.from('old'));
    const fresh = await create('/files/fresh.bin', Buffer.from('fresh'));
    await app.close();
    const id = old.split('/').pop()!;
    const past = new Date(Date.now() - 2 * 3600 * 1000);
    for (const name of uploadsLeft(dir))
      if (name.startsWith(id)) utimesSync(join(dir, UPLOADS_DIR, name), past, past);
    await start({ expiryMs: 3600 * 1000 });
    await request.head(old).expect(404);
    expect(uploadsLeft(dir).some((n) => n.startsWith(id))).toBe(false);
    const head = await request.head(fresh).expect(204);
    expect(head.headers['upload-limit']).toMatch(new RegExp(`^max-size=${MAX_UPLOAD}, max-age=3\\d{3}$`));
  });

  it('OPTIONS discovers resumable uploads (Accept-Patch: application/partial-upload, Upload-Limit)', async () => {
    const limit = new RegExp(`^max-size=${MAX_UPLOAD}, max-age=\\d+$`);
    for (const url of ['/files/some/file.bin', '/files/', '/files']) {
      const res = await request.options(url).expect(204);
      expect(res.headers.allow, url).toBe('GET, HEAD, PUT, DELETE, MKCOL, MOVE, OPTIONS');
      expect(res.headers['accept-patch'], url).toBe(PARTIAL);
      expect(res.headers['upload-limit'], url).toMatch(limit);
    }
    // On an upload resource too, whether it exists or not (nothing is revealed); nothing is created.
    const res = await request.options(`/uploads/${'ab'.repeat(16)}`).expect(204);
    expect(res.headers).toMatchObject({ allow: 'HEAD, PATCH, DELETE, OPTIONS', 'accept-patch': PARTIAL });
    expect(res.headers['upload-limit']).toMatch(limit);
    await request.options('/uploads/nope').expect(404);
    expect(uploadsLeft(dir)).toEqual([]);
    // A read-only server has no resumable uploads to offer: Allow only.
    await app.close();
    await start({ writable: false });
    const ro = await request.options('/files/x').expect(204);
    expect(ro.headers.allow).toBe('GET, HEAD, PUT, DELETE, MKCOL, MOVE, OPTIONS');
    expect(ro.headers['accept-patch']).toBeUndefined();
    expect(ro.headers['upload-limit']).toBeUndefined();
  });

  it('a read-only server refuses creation and appends (403), and has no resources', async () => {
    await app.close();
    await start({ writable: false });
    const put = await request.put('/files/x.bin').set({ 'upload-complete': '?0' }).send('a').expect(403);
    expect(put.body.code).toBe('NG_ERR_READ_ONLY');
    const id = `/uploads/${'a'.repeat(32)}`;
    await request.patch(id).set({ 'content-type': PARTIAL }).send('a').expect(403);
    await request.delete(id).expect(403);
    await request.head(id).expect(404);
  });
});

describe('filesRoutes + uploadsRoutes in any Fastify app (the library API)', () => {
  it('bounds the open upload resources per tree (maxResources): one more is 429 until one is completed or cancelled', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ng-resumable-lib-'));
    const app = Fastify({ exposeHeadRoutes: false });
    app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) =>
      reply.code(err.statusCode ?? 500).send({ code: err.code, message: err.message }),
    );
    const resumable = { prefix: '/up', maxResources: 2 };
    await app.register(filesRoutes, { prefix: '/f', root: dir, writable: true, resumable });
    await app.register(uploadsRoutes, { prefix: '/up', root: dir, writable: true, resumable });
    try {
      const create = (name: string) =>
        app.inject({ method: 'PUT', url: `/f/${name}`, headers: { 'upload-complete': '?0' }, payload: 'x' });
      const first = await create('a');
      const second = await create('b');
      expect([first.statusCode, second.statusCode]).toEqual([201, 201]);
      expect(first.headers.location).toMatch(/^\/up\/[0-9a-f]{32}$/);
      const third = await create('c');
      expect(third.statusCode).toBe(429);
      expect(third.json().code).toBe('NG_ERR_TOO_MANY_REQUESTS');
      expect((await app.inject({ method: 'DELETE', url: first.headers.location as string })).statusCode).toBe(
        204,
      );
      expect((await create('c')).statusCode).toBe(201);
      // Without `resumable`, Upload-Complete is ignored: a plain upload (the draft's fallback).
      const plain = Fastify();
      await plain.register(filesRoutes, { prefix: '/f', root: dir, writable: true });
      const res = await plain.inject({
        method: 'PUT',
        url: '/f/plain.txt',
        headers: { 'upload-complete': '?1' },
        payload: 'plain',
      });
      expect(res.statusCode).toBe(201);
      expect(res.headers['upload-complete']).toBeUndefined();
      await plain.close();
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
