/**
 * Confinement (CONTRACT.md "Confinement is enforced by the kernel"): raw request bytes over the
 * real abstract socket (URL parsers would normalise `..` away before it reached the server),
 * symlinks that lead out, and a symlink swapped in while requests run. Nothing outside the
 * root is ever sent, and outside targets are not even revealed to exist.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { rawGet, rawRequest, type RawResponse, uniqueName } from '../helpers/sockets.js';

const SECRET = `TOP-SECRET-${randomBytes(8).toString('hex')}`;
const INSIDE = 'inside-content';

function expectNoLeak(res: RawResponse, what: string): void {
  const text = res.raw.toString('latin1');
  expect(text, what).not.toContain(SECRET);
  expect(text, what).not.toContain('outside-only-marker');
  expect(text, what).not.toMatch(/root:x?:0:0/);
}

function expectErrorShape(res: RawResponse, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(JSON.parse(res.body.toString())).toEqual({
    statusCode: status,
    code,
    error: expect.any(String),
    message: expect.any(String),
  });
}

describe('confinement beneath the served root', () => {
  const socket = uniqueName('files-trav');
  let base: string;
  let root: string;
  let gateway: Gateway;
  /** The secret's absolute path without its leading '/', to ask for it below a symlink to '/'. */
  let secretFromSlash: string;

  beforeAll(async () => {
    base = realpathSync(mkdtempSync(join(tmpdir(), 'ng-files-trav-')));
    root = join(base, 'root');
    mkdirSync(join(root, 'dir'), { recursive: true });
    writeFileSync(join(base, 'secret.txt'), SECRET);
    mkdirSync(join(base, 'outside'));
    writeFileSync(join(base, 'outside', 'secret.txt'), SECRET);
    writeFileSync(join(base, 'outside', 'outside-only-marker'), SECRET);
    secretFromSlash = join(base, 'outside', 'secret.txt').slice(1);

    writeFileSync(join(root, 'inside.txt'), INSIDE);
    writeFileSync(join(root, 'dir', 'inner.txt'), INSIDE);
    symlinkSync('../secret.txt', join(root, 'evil-rel'));
    symlinkSync(join(base, 'secret.txt'), join(root, 'evil-abs'));
    symlinkSync('../nothing-here', join(root, 'evil-missing'));
    symlinkSync('..', join(root, 'evil-dir'));
    symlinkSync('/', join(root, 'slash'));
    symlinkSync('/proc/self/root', join(root, 'magic'));
    symlinkSync('dir/../inside.txt', join(root, 'good'));
    symlinkSync('dir', join(root, 'good-dir'));
    symlinkSync('../inside.txt', join(root, 'dir', 'up-good'));

    gateway = createGateway({ socket, root, logLevel: false });
    await gateway.listen();
  });
  afterAll(async () => {
    await gateway?.close();
    rmSync(base, { recursive: true, force: true });
  });

  const traversals = [
    '/files/../secret.txt',
    '/files/../../../../../../etc/passwd',
    '/files/dir/../../secret.txt',
    '/files/./../secret.txt',
    '/files/%2e%2e/secret.txt',
    '/files/%2E%2e/secret.txt',
    '/files/%2E%2E/',
    '/files/.%2e/secret.txt',
    '/files/dir/%2e%2e/%2e%2e/secret.txt',
    '/files/..%2fsecret.txt',
    '/files/..%2Fsecret.txt',
    '/files/%2e%2e%2fsecret.txt',
    '/files/dir%2f..%2f..%2fsecret.txt',
    '/files/%252e%252e/secret.txt',
    '/files/%252e%252e%252fsecret.txt',
    '/files/%25252e%25252e/secret.txt',
    '/files/..\\secret.txt',
    '/files/..%5csecret.txt',
    '/files/%5c..%5csecret.txt',
    '/files/dir\\..\\..\\secret.txt',
    '/files/%00',
    '/files/inside.txt%00',
    '/files/..%00/secret.txt',
    '/files/%c0%ae%c0%ae/secret.txt',
    '/files/%e0%80%ae%e0%80%ae/secret.txt',
    '/files//etc/passwd',
    '/files///../secret.txt',
    '/files/SECRET_ABS',
    '/files/%2FSECRET_ABS',
    '/files/..;/secret.txt',
    '/files/%2e%2e;/secret.txt',
    '/../secret.txt',
    '/files/../files/../secret.txt',
    'http://localhost/files/../secret.txt',
    'http://localhost/files/%2e%2e/secret.txt',
    '//localhost/files/../secret.txt',
    '/files/?/../../secret.txt',
    '/files/#/../secret.txt',
  ];

  it.each(traversals)('GET %s never returns outside bytes', async (target) => {
    const path = target.replace('SECRET_ABS', join(base, 'secret.txt').slice(1));
    const res = await rawGet(socket, path);
    expectNoLeak(res, path);
    expect(res.status, path).toBeGreaterThanOrEqual(200);
    if (res.status === 200) {
      // Only a listing of the root itself may come back (e.g. when the rest is a query string).
      expect(JSON.parse(res.body.toString()), path).toMatchObject({ path: '/' });
    } else {
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBeLessThan(500);
    }
  });

  it.each(['HEAD', 'PUT', 'DELETE', 'MOVE', 'MKCOL'])(
    '%s with `..` never touches outside',
    async (method) => {
      const res = await rawRequest(
        socket,
        `${method} /files/../secret.txt HTTP/1.1\r\nHost: x\r\nDestination: /files/../moved\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      );
      expectNoLeak(res, method);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    },
  );

  it('`..` and `%2e%2e` are 400 NG_ERR_BAD_PATH; a NUL is 400', async () => {
    expectErrorShape(await rawGet(socket, '/files/../secret.txt'), 400, 'NG_ERR_BAD_PATH');
    expectErrorShape(await rawGet(socket, '/files/%2e%2e/secret.txt'), 400, 'NG_ERR_BAD_PATH');
    expectErrorShape(await rawGet(socket, '/files/..%2fsecret.txt'), 400, 'NG_ERR_BAD_PATH');
    expectErrorShape(await rawGet(socket, '/files/inside.txt%00'), 400, 'NG_ERR_BAD_PATH');
  });

  it('double encoding is decoded once: `%252e%252e` is the literal name "%2e%2e" (404)', async () => {
    expectErrorShape(await rawGet(socket, '/files/%252e%252e/secret.txt'), 404, 'NG_ERR_NOT_FOUND');
  });

  it.each([
    ['evil-rel', 'a relative symlink to a file outside'],
    ['evil-abs', 'an absolute symlink to a file outside'],
    ['evil-missing', 'a symlink to a missing file outside (its absence is not revealed)'],
    ['evil-dir/secret.txt', 'a symlink to the parent of the root'],
    ['evil-dir/', 'a listing through a symlink to the parent'],
    ['slash/SECRET_FROM_SLASH', 'a symlink to /'],
    ['slash/etc/passwd', 'a symlink to / (system file)'],
    ['slash/', 'a listing of / through a symlink'],
    ['magic/etc/passwd', 'a /proc magic link'],
  ])('%s (%s) is 403 NG_ERR_OUTSIDE_ROOT', async (rel, what) => {
    const path = `/files/${rel.replace('SECRET_FROM_SLASH', secretFromSlash)}`;
    const res = await rawGet(socket, path);
    expectNoLeak(res, what);
    expectErrorShape(res, 403, 'NG_ERR_OUTSIDE_ROOT');
    const head = await rawRequest(socket, `HEAD ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(head.status).toBe(403);
  });

  it.each([
    ['good', 'a symlink through dir/.. inside the root'],
    ['good-dir/inner.txt', 'a symlink to a directory inside'],
    ['dir/up-good', 'a symlink with `..` that stays inside'],
  ])('%s (%s) is served', async (rel) => {
    const res = await rawGet(socket, `/files/${rel}`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(INSIDE);
  });

  it('a listing through a symlink to a directory inside works and shows symlinks as symlinks', async () => {
    const res = await rawGet(socket, '/files/good-dir/');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ path: '/good-dir/' });
    const rootListing = JSON.parse((await rawGet(socket, '/files/')).body.toString()) as {
      entries: { name: string; type: string }[];
    };
    expect(rootListing.entries.find((e) => e.name === 'evil-abs')).toMatchObject({ type: 'symlink' });
    // The listing describes the link itself, never what it points to.
    expect(JSON.stringify(rootListing)).not.toContain(base);
  });
});

describe('a directory swapped for a symlink while requests run', () => {
  const socket = uniqueName('files-race');
  let base: string;
  let root: string;
  let gateway: Gateway;

  beforeAll(async () => {
    base = realpathSync(mkdtempSync(join(tmpdir(), 'ng-files-race-')));
    root = join(base, 'root');
    const outside = join(base, 'outside');
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, 'secret.txt'), SECRET);
    writeFileSync(join(outside, 'outside-only-marker'), SECRET);
    // The real directory mirrors both paths asked for below, with harmless content.
    const real = join(root, 'real');
    mkdirSync(join(real, base.slice(1), 'outside'), { recursive: true });
    writeFileSync(join(real, 'secret.txt'), INSIDE);
    writeFileSync(join(real, base.slice(1), 'outside', 'secret.txt'), INSIDE);
    symlinkSync(outside, join(root, 'to-outside'));
    symlinkSync('/', join(root, 'to-slash'));
    gateway = createGateway({ socket, root, logLevel: false });
    await gateway.listen();
  });
  afterAll(async () => {
    await gateway?.close();
    rmSync(base, { recursive: true, force: true });
  });

  it('no response ever contains the outside content', async () => {
    // The swapper runs in its own process, so it races the server's thread pool for real:
    // `race` is in turn the real directory, a symlink to a directory outside, and one to '/'.
    const script = `
      const { renameSync } = require('node:fs');
      const [root, ms] = [process.argv[1], Number(process.argv[2])];
      const end = Date.now() + ms;
      while (Date.now() < end) {
        for (const name of ['real', 'to-outside', 'to-slash']) {
          renameSync(root + '/' + name, root + '/race');
          renameSync(root + '/race', root + '/' + name);
        }
      }
    `;
    // The swapper runs until it is killed below; its own bound (25 s) only catches a hang.
    const swapper = spawn(process.execPath, ['-e', script, root, '25000'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const swapperDone = new Promise<number | null>((resolve) => swapper.on('close', resolve));

    const paths = [
      '/files/race/secret.txt',
      `/files/race/${base.slice(1)}/outside/secret.txt`,
      '/files/race/',
    ];
    const counts = new Map<number, number>();
    let served = 0;
    let total = 0;
    // Run until the race has really run (hundreds of requests, both sides of the swap seen), not
    // for a fixed time: a loaded machine only takes longer. The deadline only catches a hang.
    const deadline = Date.now() + 20_000;
    const enough = () => total > 300 && served > 0 && (counts.get(403) ?? 0) > 0;
    try {
      const worker = async (w: number) => {
        for (let i = 0; Date.now() < deadline && !enough(); i++) {
          const path = paths[(w + i) % paths.length]!;
          const res = await rawGet(socket, path);
          total++;
          counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
          expectNoLeak(res, path);
          if (res.status === 200 && path.endsWith('.txt')) {
            expect(res.body.toString()).toBe(INSIDE);
            served++;
          } else if (res.status !== 200) {
            expect([403, 404], `${path} → ${res.status}`).toContain(res.status);
          }
        }
      };
      await Promise.all(Array.from({ length: 32 }, (_, w) => worker(w)));
    } finally {
      swapper.kill('SIGKILL');
      await swapperDone;
    }
    // The race really ran: hundreds of requests, and both sides of the swap were seen.
    expect(total).toBeGreaterThan(300);
    expect(served).toBeGreaterThan(0);
    expect(counts.get(403) ?? 0).toBeGreaterThan(0);
  }, 30_000);
});
