/**
 * GET/HEAD of /files through the Fastify app (CONTRACT.md "HTTP API"): headers, Range (RFC 9110
 * §14), conditionals (§13), Repr-Digest (RFC 9530) and listings. supertest over a real
 * listener where headers and streaming matter, inject() elsewhere.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  lchownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import supertest, { type Test } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../gateway/app.js';
import { TMP_PREFIX } from '../../native/beneath.js';
import { itNeeds } from '../helpers/requirements.js';

/** Collects the body as bytes whatever its type (supertest would otherwise parse or drop it). */
const binary = ((res: NodeJS.ReadableStream, done: (err: Error | null, body: Buffer) => void): void => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => done(null, Buffer.concat(chunks)));
  res.on('error', (err: Error) => done(err, Buffer.alloc(0)));
}) as unknown as Parameters<Test['parse']>[0];

function expectErrorBody(body: unknown, status: number, code: string): void {
  expect(body).toEqual({ statusCode: status, code, error: expect.any(String), message: expect.any(String) });
  expect(Object.keys(body as object).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
}

const sha = (alg: 'sha256' | 'sha512', data: Buffer) => createHash(alg).update(data).digest('base64');

describe('GET/HEAD /files', () => {
  let dir: string;
  let app: FastifyInstance;
  let request: ReturnType<typeof supertest>;
  // 100 KiB of varied bytes: ranges and digests notice any misplaced byte.
  const data = Buffer.from(Array.from({ length: 100 * 1024 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
  const size = data.length;
  let etag: string;
  let lastModified: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-files-read-'));
    writeFileSync(join(dir, 'data.bin'), data);
    writeFileSync(join(dir, 'hello.txt'), 'hello world\n');
    writeFileSync(join(dir, 'empty'), '');
    writeFileSync(join(dir, 'page.html'), '<p>hi</p>');
    // Seconds-aligned mtime, so date comparisons are exact.
    const mtime = new Date('2024-03-01T12:00:00Z');
    utimesSync(join(dir, 'data.bin'), mtime, mtime);
    mkdirSync(join(dir, 'sub/deeper'), { recursive: true });
    writeFileSync(join(dir, 'sub/b.txt'), 'bbb');
    writeFileSync(join(dir, 'sub/a.txt'), 'a');
    writeFileSync(join(dir, 'sub/Z.txt'), 'zz');
    writeFileSync(join(dir, `sub/${TMP_PREFIX}0123456789abcdef`), 'half an upload');
    symlinkSync('a.txt', join(dir, 'sub/link'));
    execFileSync('mkfifo', [join(dir, 'sub/fifo')]);
    symlinkSync('../hello.txt', join(dir, 'sub/up-link'));
    app = buildApp({ root: dir, logLevel: false });
    await app.ready();
    request = supertest(app.server);
    const res = await app.inject({ url: '/files/data.bin', method: 'HEAD' });
    etag = res.headers.etag as string;
    lastModified = res.headers['last-modified'] as string;
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('a file', () => {
    it('GET sends the bytes with Content-Type, Content-Length, a strong ETag, Last-Modified, Accept-Ranges', async () => {
      const res = await request.get('/files/data.bin').buffer(true).parse(binary).expect(200);
      expect(Buffer.compare(res.body as Buffer, data)).toBe(0);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['content-length']).toBe(String(size));
      expect(res.headers.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$/);
      expect(res.headers.etag).toBe(etag);
      expect(res.headers['last-modified']).toBe('Fri, 01 Mar 2024 12:00:00 GMT');
      expect(res.headers['accept-ranges']).toBe('bytes');
    });

    it.each([
      ['hello.txt', /^text\/plain/],
      ['page.html', /^text\/html/],
      ['empty', /^application\/octet-stream$/],
    ])('Content-Type of %s comes from the extension', async (name, type) => {
      const res = await request.get(`/files/${name}`).buffer(true).parse(binary).expect(200);
      expect(res.headers['content-type']).toMatch(type);
    });

    it('an empty file is 200 with Content-Length 0', async () => {
      const res = await request.get('/files/empty').buffer(true).parse(binary).expect(200);
      expect(res.headers['content-length']).toBe('0');
      expect((res.body as Buffer).length).toBe(0);
    });

    it('tells the mode, owner, group and nanosecond mtime in X-Nullgate-* headers; no X-Nullgate-Type', async () => {
      const st = statSync(join(dir, 'data.bin'), { bigint: true });
      for (const url of ['/files/data.bin', '/files/hello.txt']) {
        const res = await app.inject({ url });
        const s = statSync(join(dir, url.slice('/files/'.length)), { bigint: true });
        expect(res.headers['x-nullgate-mode'], url).toBe(
          (Number(s.mode) & 0o7777).toString(8).padStart(4, '0'),
        );
        expect(res.headers['x-nullgate-uid'], url).toBe(String(s.uid));
        expect(res.headers['x-nullgate-gid'], url).toBe(String(s.gid));
        expect(res.headers['x-nullgate-type'], url).toBeUndefined();
      }
      const res = await app.inject({ url: '/files/data.bin', method: 'HEAD' });
      expect(res.headers['x-nullgate-mtime']).toBe(`${st.mtimeNs / 1_000_000_000n}.000000000`);
    });

    it('HEAD has the same headers and no body', async () => {
      const get = await request.get('/files/data.bin').buffer(true).parse(binary);
      const head = await request.head('/files/data.bin').buffer(true).parse(binary).expect(200);
      for (const h of ['content-type', 'content-length', 'etag', 'last-modified', 'accept-ranges']) {
        expect(head.headers[h], h).toBe(get.headers[h]);
      }
      expect((head.body as Buffer | undefined)?.length ?? 0).toBe(0);
    });

    it('a missing file is 404 NG_ERR_NOT_FOUND', async () => {
      const res = await app.inject({ url: '/files/nope.txt' });
      expect(res.statusCode).toBe(404);
      expectErrorBody(res.json(), 404, 'NG_ERR_NOT_FOUND');
    });

    it('a file named with a trailing slash is 404', async () => {
      const res = await app.inject({ url: '/files/hello.txt/' });
      expect(res.statusCode).toBe(404);
      expectErrorBody(res.json(), 404, 'NG_ERR_NOT_FOUND');
    });

    it('a FIFO is refused without blocking (403)', async () => {
      const res = await app.inject({ url: '/files/sub/fifo' });
      expect(res.statusCode).toBe(403);
      expectErrorBody(res.json(), 403, 'NG_ERR_FORBIDDEN');
    });

    describe('special files are refused (403), never opened blocking, never a 500', () => {
      const refused = async (name: string): Promise<void> => {
        for (const method of ['GET', 'HEAD'] as const) {
          const res = await app.inject({ method, url: `/files/special/${name}` });
          expect(res.statusCode, `${method} ${name}`).toBe(403);
          if (method === 'GET') {
            expectErrorBody(res.json(), 403, 'NG_ERR_FORBIDDEN');
            expect(res.json<{ message: string }>().message).toBe(`not a regular file: /special/${name}`);
          }
        }
      };

      it('a unix socket file (open gives ENXIO)', async () => {
        mkdirSync(join(dir, 'special'), { recursive: true });
        const server = createServer();
        await new Promise<void>((resolve) => server.listen(join(dir, 'special/sock'), resolve));
        try {
          await refused('sock');
        } finally {
          await new Promise((resolve) => server.close(resolve));
        }
      });

      itNeeds(['root'], 'character devices: one with a driver, one without (ENXIO)', async () => {
        mkdirSync(join(dir, 'special'), { recursive: true });
        // 1,3 is /dev/null; major 240 is reserved for local use, so nothing answers it.
        execFileSync('mknod', [join(dir, 'special/null'), 'c', '1', '3']);
        execFileSync('mknod', [join(dir, 'special/nodev'), 'c', '240', '7']);
        await refused('null');
        await refused('nodev');
      });
    });

    it('a symlink that stays inside the root is followed', async () => {
      const res = await app.inject({ url: '/files/sub/up-link' });
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('hello world\n');
    });

    it('percent-encoded names are decoded once', async () => {
      writeFileSync(join(dir, 'with space%.txt'), 'spaced');
      const res = await app.inject({ url: '/files/with%20space%25.txt' });
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('spaced');
    });
  });

  describe('Range (RFC 9110 §14)', () => {
    it('a single range is 206 with Content-Range and exactly those bytes', async () => {
      const res = await request
        .get('/files/data.bin')
        .set('Range', 'bytes=1000-1999')
        .buffer(true)
        .parse(binary)
        .expect(206);
      expect(res.headers['content-range']).toBe(`bytes 1000-1999/${size}`);
      expect(res.headers['content-length']).toBe('1000');
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers.etag).toBe(etag);
      expect(Buffer.compare(res.body as Buffer, data.subarray(1000, 2000))).toBe(0);
    });

    it.each([
      ['bytes=-100', size - 100, size - 1],
      ['bytes=102000-', 102000, size - 1],
      ['bytes=0-0', 0, 0],
      ['bytes=100000-999999999', 100000, size - 1],
    ])('%s → bytes %i-%i', async (range, start, end) => {
      const res = await request
        .get('/files/data.bin')
        .set('Range', range)
        .buffer(true)
        .parse(binary)
        .expect(206);
      expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/${size}`);
      expect(Buffer.compare(res.body as Buffer, data.subarray(start, end + 1))).toBe(0);
    });

    it('HEAD with a range has the 206 headers and no body', async () => {
      const res = await request.head('/files/data.bin').set('Range', 'bytes=10-19').expect(206);
      expect(res.headers['content-range']).toBe(`bytes 10-19/${size}`);
      expect(res.headers['content-length']).toBe('10');
    });

    it('several ranges are one multipart/byteranges body whose parts carry the right bytes', async () => {
      const res = await request
        .get('/files/data.bin')
        .set('Range', 'bytes=0-9, 5000-5099, -16')
        .buffer(true)
        .parse(binary)
        .expect(206);
      const type = res.headers['content-type'] as string;
      const m = /^multipart\/byteranges; boundary=(\S+)$/.exec(type);
      expect(m).not.toBeNull();
      const boundary = m![1]!;
      const body = res.body as Buffer;
      expect(res.headers['content-length']).toBe(String(body.length));
      expect(res.headers['content-range']).toBeUndefined();

      // Parse per RFC 2046 §5.1.1: the CRLF before each delimiter belongs to the delimiter.
      const parts: { headers: Record<string, string>; bytes: Buffer }[] = [];
      const delimiter = Buffer.from(`--${boundary}`);
      let at = body.indexOf(delimiter);
      expect(at).toBe(0);
      for (;;) {
        const after = at + delimiter.length;
        if (body.subarray(after, after + 2).toString() === '--') {
          expect(body.subarray(after + 2).toString()).toBe('\r\n');
          break;
        }
        const headEnd = body.indexOf('\r\n\r\n', after);
        const headers: Record<string, string> = {};
        for (const line of body
          .subarray(after + 2, headEnd)
          .toString('latin1')
          .split('\r\n')) {
          const i = line.indexOf(':');
          headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
        }
        const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headEnd + 4);
        parts.push({ headers, bytes: body.subarray(headEnd + 4, next) });
        at = next + 2;
      }
      expect(parts.map((p) => p.headers)).toEqual([
        { 'content-type': 'application/octet-stream', 'content-range': `bytes 0-9/${size}` },
        { 'content-type': 'application/octet-stream', 'content-range': `bytes 5000-5099/${size}` },
        {
          'content-type': 'application/octet-stream',
          'content-range': `bytes ${size - 16}-${size - 1}/${size}`,
        },
      ]);
      expect(parts[0]!.bytes).toEqual(data.subarray(0, 10));
      expect(parts[1]!.bytes).toEqual(data.subarray(5000, 5100));
      expect(parts[2]!.bytes).toEqual(data.subarray(size - 16));
    });

    it('an unsatisfiable range is 416 with Content-Range: bytes */size and the error shape', async () => {
      const res = await request.get('/files/data.bin').set('Range', `bytes=${size}-`).expect(416);
      expect(res.headers['content-range']).toBe(`bytes */${size}`);
      expectErrorBody(res.body, 416, 'NG_ERR_RANGE_NOT_SATISFIABLE');
    });

    it('any range of an empty file is 416 bytes */0', async () => {
      const res = await request.get('/files/empty').set('Range', 'bytes=0-0').expect(416);
      expect(res.headers['content-range']).toBe('bytes */0');
    });

    it('a malformed Range is ignored (200, whole file)', async () => {
      const res = await request.get('/files/data.bin').set('Range', 'lines=1-2').buffer(true).parse(binary);
      expect(res.status).toBe(200);
      expect((res.body as Buffer).length).toBe(size);
    });

    it('If-Range with the current ETag is honoured (206)', async () => {
      const res = await request
        .get('/files/data.bin')
        .set('Range', 'bytes=0-3')
        .set('If-Range', etag)
        .buffer(true)
        .parse(binary)
        .expect(206);
      expect(res.body).toEqual(data.subarray(0, 4));
    });

    it('If-Range with another ETag sends the whole file (200)', async () => {
      const res = await request
        .get('/files/data.bin')
        .set('Range', 'bytes=0-3')
        .set('If-Range', '"not-the-etag"')
        .buffer(true)
        .parse(binary)
        .expect(200);
      expect(res.headers['content-range']).toBeUndefined();
      expect((res.body as Buffer).length).toBe(size);
    });

    it('If-Range with a weak ETag never matches (§13.1.5)', async () => {
      const res = await request
        .get('/files/data.bin')
        .set('Range', 'bytes=0-3')
        .set('If-Range', `W/${etag}`)
        .buffer(true)
        .parse(binary);
      expect(res.status).toBe(200);
    });

    it('If-Range with the Last-Modified date is honoured; with another date it is not', async () => {
      const yes = await request
        .get('/files/data.bin')
        .set('Range', 'bytes=0-3')
        .set('If-Range', lastModified);
      expect(yes.status).toBe(206);
      const no = await request
        .get('/files/data.bin')
        .set('Range', 'bytes=0-3')
        .set('If-Range', 'Thu, 29 Feb 2024 12:00:00 GMT')
        .buffer(true)
        .parse(binary);
      expect(no.status).toBe(200);
      expect((no.body as Buffer).length).toBe(size);
    });
  });

  it('a client leaving mid-multipart closes the file once: no fd left, no error, later reads fine', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 0x42);
    writeFileSync(join(dir, 'big.bin'), big);
    const logs: string[] = [];
    const logged = buildApp({
      root: dir,
      logLevel: 'warn',
      logStream: { write: (line: string) => logs.push(line) } as unknown as NodeJS.WritableStream,
    });
    await logged.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { port } = logged.server.address() as AddressInfo;
      const openUnder = () =>
        readdirSync('/proc/self/fd').filter((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`) === join(dir, 'big.bin');
          } catch {
            return false;
          }
        }).length;
      for (let i = 0; i < 5; i++) {
        const socket = connect(port, '127.0.0.1');
        socket.on('error', () => undefined);
        socket.write(
          'GET /files/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3000000,4000000-7999999\r\n\r\n',
        );
        await new Promise<void>((resolve) => socket.once('data', () => resolve()));
        socket.destroy();
      }
      for (let i = 0; i < 100 && openUnder() > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(openUnder()).toBe(0);
      const res = await supertest(logged.server).get('/files/hello.txt').expect(200);
      expect(res.text).toBe('hello world\n');
      expect(logs.join('')).not.toMatch(/EBADF/);
    } finally {
      await logged.close();
    }
  });

  describe('conditional requests (RFC 9110 §13)', () => {
    it('If-None-Match with the ETag is 304 with the validators and no body', async () => {
      const res = await request.get('/files/data.bin').set('If-None-Match', etag).buffer(true).parse(binary);
      expect(res.status).toBe(304);
      expect(res.headers.etag).toBe(etag);
      expect((res.body as Buffer).length).toBe(0);
    });

    it('If-None-Match in a list, or *, is 304; another tag is 200', async () => {
      expect((await request.get('/files/data.bin').set('If-None-Match', `"x", ${etag}`)).status).toBe(304);
      expect((await request.head('/files/data.bin').set('If-None-Match', '*')).status).toBe(304);
      expect((await request.head('/files/data.bin').set('If-None-Match', '"other"')).status).toBe(200);
    });

    it('If-Modified-Since at or after Last-Modified is 304, before it is 200', async () => {
      expect((await request.get('/files/data.bin').set('If-Modified-Since', lastModified)).status).toBe(304);
      expect(
        (await request.head('/files/data.bin').set('If-Modified-Since', 'Sat, 02 Mar 2024 00:00:00 GMT'))
          .status,
      ).toBe(304);
      expect(
        (await request.head('/files/data.bin').set('If-Modified-Since', 'Thu, 29 Feb 2024 00:00:00 GMT'))
          .status,
      ).toBe(200);
    });

    it('If-None-Match takes precedence over If-Modified-Since (§13.2.2)', async () => {
      const res = await request
        .head('/files/data.bin')
        .set('If-None-Match', '"other"')
        .set('If-Modified-Since', lastModified);
      expect(res.status).toBe(200);
    });

    it('If-Match with another tag is 412 with the error shape; with the ETag it is 200', async () => {
      const res = await request.get('/files/data.bin').set('If-Match', '"other"').expect(412);
      expectErrorBody(res.body, 412, 'NG_ERR_PRECONDITION_FAILED');
      const ok = await request.head('/files/data.bin').set('If-Match', etag);
      expect(ok.status).toBe(200);
    });

    it('If-Unmodified-Since before Last-Modified is 412; at it is 200', async () => {
      const res = await request
        .get('/files/data.bin')
        .set('If-Unmodified-Since', 'Thu, 29 Feb 2024 00:00:00 GMT')
        .expect(412);
      expectErrorBody(res.body, 412, 'NG_ERR_PRECONDITION_FAILED');
      expect((await request.head('/files/data.bin').set('If-Unmodified-Since', lastModified)).status).toBe(
        200,
      );
    });

    it('a 304 wins over Range', async () => {
      const res = await request.get('/files/data.bin').set('If-None-Match', etag).set('Range', 'bytes=0-1');
      expect(res.status).toBe(304);
    });
  });

  describe('Want-Repr-Digest (RFC 9530)', () => {
    it.each([
      ['sha-256', 'sha256'],
      ['sha-512', 'sha512'],
    ] as const)('%s on GET is the digest of the whole file', async (alg, node) => {
      const res = await request
        .get('/files/data.bin')
        .set('Want-Repr-Digest', `${alg}=5`)
        .buffer(true)
        .parse(binary)
        .expect(200);
      expect(res.headers['repr-digest']).toBe(`${alg}=:${sha(node, data)}:`);
    });

    it('is the whole-file digest on a 206 too', async () => {
      const res = await request
        .get('/files/data.bin')
        .set('Range', 'bytes=0-9')
        .set('Want-Repr-Digest', 'sha-512=3')
        .buffer(true)
        .parse(binary)
        .expect(206);
      expect(res.headers['repr-digest']).toBe(`sha-512=:${sha('sha512', data)}:`);
      expect((res.body as Buffer).length).toBe(10);
    });

    it('is sent on HEAD', async () => {
      const res = await request.head('/files/hello.txt').set('Want-Repr-Digest', 'sha-256=1').expect(200);
      expect(res.headers['repr-digest']).toBe(`sha-256=:${sha('sha256', Buffer.from('hello world\n'))}:`);
    });

    it('of an empty file is the digest of nothing', async () => {
      const res = await request.head('/files/empty').set('Want-Repr-Digest', 'sha-256=1').expect(200);
      expect(res.headers['repr-digest']).toBe(`sha-256=:${sha('sha256', Buffer.alloc(0))}:`);
    });

    it('is absent when not asked for', async () => {
      const res = await request.head('/files/data.bin').expect(200);
      expect(res.headers['repr-digest']).toBeUndefined();
    });

    it('follows a change of the file (the cache is keyed by ETag)', async () => {
      writeFileSync(join(dir, 'changing'), 'one');
      const a = await app.inject({ url: '/files/changing', headers: { 'want-repr-digest': 'sha-256=1' } });
      expect(a.headers['repr-digest']).toBe(`sha-256=:${sha('sha256', Buffer.from('one'))}:`);
      writeFileSync(join(dir, 'changing'), 'two!');
      const b = await app.inject({ url: '/files/changing', headers: { 'want-repr-digest': 'sha-256=1' } });
      expect(b.headers['repr-digest']).toBe(`sha-256=:${sha('sha256', Buffer.from('two!'))}:`);
    });
  });

  describe('directory listings', () => {
    type Entry = {
      name: string;
      type: string;
      size: number;
      mtime: string;
      mode: number;
      uid: number;
      gid: number;
    };

    it('lists a directory sorted by name with types, sizes, mtimes and modes; temp files hidden', async () => {
      const res = await request.get('/files/sub/').expect(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      // What tells a listing from a file named x.json.
      expect(res.headers['x-nullgate-type']).toBe('dir');
      const body = res.body as { path: string; entries: Entry[] };
      expect(body.path).toBe('/sub/');
      expect(body.entries.map((e) => e.name)).toEqual([
        'Z.txt',
        'a.txt',
        'b.txt',
        'deeper',
        'fifo',
        'link',
        'up-link',
      ]);
      const byName = new Map(body.entries.map((e) => [e.name, e]));
      expect(byName.get('a.txt')).toMatchObject({ type: 'file', size: 1 });
      expect(byName.get('b.txt')).toMatchObject({ type: 'file', size: 3 });
      expect(byName.get('deeper')).toMatchObject({ type: 'dir' });
      expect(byName.get('link')).toMatchObject({ type: 'symlink' });
      expect(byName.get('fifo')).toMatchObject({ type: 'other' });
      const st = statSync(join(dir, 'sub/b.txt'));
      expect(byName.get('b.txt')!.mode).toBe(st.mode & 0o7777);
      expect([byName.get('b.txt')!.uid, byName.get('b.txt')!.gid]).toEqual([st.uid, st.gid]);
      // Millisecond text of a nanosecond mtime: rounding may differ from Node's by one.
      expect(Math.abs(Date.parse(byName.get('b.txt')!.mtime) - st.mtimeMs)).toBeLessThanOrEqual(1);
      expect(JSON.stringify(body)).not.toContain(TMP_PREFIX);
    });

    itNeeds(['root'], 'entries carry their numeric owner, a symlink its own', async () => {
      writeFileSync(join(dir, 'sub/owned'), 'x');
      lchownSync(join(dir, 'sub/owned'), 1234, 2345);
      symlinkSync('owned', join(dir, 'sub/owned-link'));
      lchownSync(join(dir, 'sub/owned-link'), 4321, 5432);
      try {
        const body = (await request.get('/files/sub/').expect(200)).body as { entries: Entry[] };
        const byName = new Map(body.entries.map((e) => [e.name, e]));
        expect(byName.get('owned')).toMatchObject({ uid: 1234, gid: 2345 });
        expect(byName.get('owned-link')).toMatchObject({ type: 'symlink', uid: 4321, gid: 5432 });
      } finally {
        rmSync(join(dir, 'sub/owned'));
        rmSync(join(dir, 'sub/owned-link'));
      }
    });

    it('is the same with or without the trailing slash', async () => {
      const a = await app.inject({ url: '/files/sub' });
      const b = await app.inject({ url: '/files/sub/' });
      expect(a.statusCode).toBe(200);
      expect(a.json()).toEqual(b.json());
    });

    it('lists the root at /files/ and /files', async () => {
      for (const url of ['/files/', '/files']) {
        const res = await app.inject({ url });
        expect(res.statusCode, url).toBe(200);
        const body = res.json<{ path: string; entries: Entry[] }>();
        expect(body.path).toBe('/');
        const names = body.entries.map((e) => e.name);
        expect(names).toEqual([...names].sort());
        expect(names).toContain('data.bin');
        expect(names).toContain('sub');
      }
    });

    it('an empty directory lists no entries', async () => {
      const res = await app.inject({ url: '/files/sub/deeper/' });
      expect(res.json()).toEqual({ path: '/sub/deeper/', entries: [] });
    });

    it('HEAD of a directory is 200 JSON without a body', async () => {
      const res = await request.head('/files/sub').expect(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['x-nullgate-type']).toBe('dir');
    });

    it('a missing directory is 404 with the error shape', async () => {
      const res = await app.inject({ url: '/files/nope/' });
      expect(res.statusCode).toBe(404);
      expectErrorBody(res.json(), 404, 'NG_ERR_NOT_FOUND');
    });

    it('a large directory lists completely and in order (streamed in batches)', async () => {
      mkdirSync(join(dir, 'many'));
      for (let i = 0; i < 1500; i++) writeFileSync(join(dir, 'many', `f${String(i).padStart(5, '0')}`), '');
      const res = await request.get('/files/many').expect(200);
      const names = (res.body as { entries: Entry[] }).entries.map((e) => e.name);
      expect(names.length).toBe(1500);
      expect(names[0]).toBe('f00000');
      expect(names[1499]).toBe('f01499');
      expect(names).toEqual([...names].sort());
    });
  });

  describe('bad paths', () => {
    // `..` itself is tested through raw requests (test/e2e/files-traversal.test.ts): inject()
    // normalises the URL as WHATWG parsers do.
    it.each(['/files/%00', '/files/a%2fb', '/files/%zz', '/files/a/%00b'])(
      '%s is 400 NG_ERR_BAD_PATH',
      async (url) => {
        const res = await app.inject({ url });
        expect(res.statusCode).toBe(400);
        expectErrorBody(res.json(), 400, 'NG_ERR_BAD_PATH');
      },
    );
  });
});
