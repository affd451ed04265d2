/**
 * Resumable uploads over real abstract sockets with the real server (CONTRACT.md "Resumable
 * uploads"): a server killed with SIGKILL mid-upload and started again carries on from the offset
 * HEAD reports; another uid's peer does not see a resource (404); curl drives the protocol by
 * hand as docs/api.md shows.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { UPLOADS_DIR } from '../../routes/upload-store.js';
import { type Served, startServe } from '../helpers/cli.js';
import { itNeeds } from '../helpers/requirements.js';
import { connectSocket, rawRequest, uniqueName } from '../helpers/sockets.js';

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function partSize(root: string): number {
  const dir = join(root, UPLOADS_DIR);
  if (!existsSync(dir)) return 0;
  const part = readdirSync(dir).find((n) => n.endsWith('.part'));
  return part === undefined ? 0 : statSync(join(dir, part)).size;
}

const curlArgs = (name: string) => ['-sS', '--abstract-unix-socket', name.slice(1)];

describe('resumable uploads, end to end', () => {
  let root: string;
  const running: Served[] = [];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ng-resumable-e2e-'));
  });
  afterAll(async () => {
    for (const s of running) await s.stop('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  const serve = async (name: string, extra: string[] = []) => {
    const served = await startServe(['--socket', name, '--root', root, '--writable', ...extra]);
    running.push(served);
    return served;
  };

  itNeeds(
    [],
    'a server killed with SIGKILL mid-upload: after a restart HEAD tells the offset, PATCH completes it',
    async () => {
      const name = uniqueName('resume-kill');
      const first = await serve(name);
      const data = randomBytes(24 * MiB);
      const socket = connectSocket(name);
      socket.on('error', () => undefined);
      let text = '';
      const location = new Promise<string>((resolve) => {
        socket.on('data', (c: Buffer) => {
          text += c.toString('latin1');
          const m = /Location: (\S+)\r\n/.exec(text);
          if (m) resolve(m[1]!);
        });
      });
      socket.write(
        `PUT /files/images/disk.img HTTP/1.1\r\nHost: localhost\r\nUpload-Complete: ?1\r\nContent-Length: ${data.length}\r\n\r\n`,
      );
      const where = await location;
      expect(where).toMatch(/^\/uploads\/[0-9a-f]{32}$/);
      socket.write(data.subarray(0, 10 * MiB));
      await until('part of the body on disk', () => partSize(root) >= 4 * MiB);
      await first.stop('SIGKILL');
      socket.destroy();

      await serve(name);
      const head = await rawRequest(
        name,
        `HEAD ${where} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
      );
      expect(head.status).toBe(204);
      expect(head.headers['upload-complete']).toBe('?0');
      expect(head.headers['upload-length']).toBe(String(data.length));
      expect(head.headers['cache-control']).toBe('no-store');
      const offset = Number(head.headers['upload-offset']);
      expect(offset).toBeGreaterThanOrEqual(4 * MiB);
      expect(offset).toBeLessThanOrEqual(10 * MiB);
      expect(existsSync(join(root, 'images'))).toBe(false);

      const rest = data.subarray(offset);
      const patched = await rawRequest(
        name,
        Buffer.concat([
          Buffer.from(
            `PATCH ${where} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/partial-upload\r\n` +
              `Upload-Offset: ${offset}\r\nUpload-Complete: ?1\r\nContent-Length: ${rest.length}\r\nConnection: close\r\n\r\n`,
          ),
          rest,
        ]),
        30_000,
      );
      expect(patched.status).toBe(201);
      expect(patched.headers['upload-complete']).toBe('?1');
      expect(sha256(readFileSync(join(root, 'images/disk.img')))).toBe(sha256(data));
      // Nothing of the upload is left but the record of its completion.
      expect(readdirSync(join(root, UPLOADS_DIR)).filter((n) => !n.endsWith('.done'))).toEqual([]);
      expect(readdirSync(root).sort()).toEqual([UPLOADS_DIR, 'images'].sort());
    },
  );

  itNeeds(
    ['root', 'setpriv', 'curl'],
    "another uid's peer gets 404 for a resource it did not create",
    async () => {
      const name = uniqueName('resume-uid');
      await serve(name, ['--allow-uid', '4242']);
      const created = await exec('curl', [
        ...curlArgs(name),
        '-i',
        '-X',
        'PUT',
        '--data-binary',
        'first part',
        '-H',
        'Upload-Complete: ?0',
        'http://localhost/files/owned.bin',
      ]);
      const where = /^location: (\S+)\r?$/im.exec(created.stdout)?.[1];
      expect(where).toMatch(/^\/uploads\/[0-9a-f]{32}$/);
      const asOther = async (...args: string[]) =>
        (
          await exec('setpriv', [
            '--reuid=4242',
            '--regid=4242',
            '--clear-groups',
            'curl',
            ...curlArgs(name),
            '-o',
            '/dev/null',
            '-w',
            '%{http_code}',
            ...args,
          ])
        ).stdout;
      expect(await asOther('-I', `http://localhost${where}`)).toBe('404');
      expect(
        await asOther(
          '-X',
          'PATCH',
          '-H',
          'Content-Type: application/partial-upload',
          '-H',
          'Upload-Offset: 10',
          '-H',
          'Upload-Complete: ?1',
          '--data-binary',
          'theirs',
          `http://localhost${where}`,
        ),
      ).toBe('404');
      expect(await asOther('-X', 'DELETE', `http://localhost${where}`)).toBe('404');
      const head = await exec('curl', [...curlArgs(name), '-I', `http://localhost${where}`]);
      expect(head.stdout).toMatch(/upload-offset: 10\r?\n/i);
    },
  );

  itNeeds(['curl'], 'curl drives the protocol by hand, as docs/api.md shows', async () => {
    const name = uniqueName('resume-curl');
    await serve(name);
    const dir = mkdtempSync(join(tmpdir(), 'ng-resumable-parts-'));
    try {
      const data = randomBytes(300_000);
      writeFileSync(join(dir, 'part1'), data.subarray(0, 100_000));
      writeFileSync(join(dir, 'part2'), data.subarray(100_000));
      const url = 'http://localhost/files/results/disk.img';
      const created = await exec('curl', [
        ...curlArgs(name),
        '-i',
        '-T',
        join(dir, 'part1'),
        '-H',
        'Upload-Complete: ?0',
        '-H',
        'Upload-Length: 300000',
        url,
      ]);
      expect(created.stdout).toMatch(/^HTTP\/1\.1 104 Upload Resumption Supported/m);
      expect(created.stdout).toMatch(/^HTTP\/1\.1 201 Created/m);
      const where = /^location: (\S+)\r?$/im.exec(created.stdout)?.[1];
      const head = await exec('curl', [...curlArgs(name), '-I', `http://localhost${where}`]);
      expect(head.stdout).toMatch(/upload-offset: 100000\r?\n/i);
      const done = await exec('curl', [
        ...curlArgs(name),
        '-X',
        'PATCH',
        '-T',
        join(dir, 'part2'),
        '-H',
        'Content-Type: application/partial-upload',
        '-H',
        'Upload-Offset: 100000',
        '-H',
        'Upload-Complete: ?1',
        `http://localhost${where}`,
      ]);
      expect(JSON.parse(done.stdout)).toMatchObject({ path: '/results/disk.img', size: 300000 });
      expect(sha256(readFileSync(join(root, 'results/disk.img')))).toBe(sha256(data));

      const other = await exec('curl', [
        ...curlArgs(name),
        '-i',
        '-T',
        join(dir, 'part1'),
        '-H',
        'Upload-Complete: ?0',
        'http://localhost/files/results/cancelled.img',
      ]);
      const cancel = /^location: (\S+)\r?$/im.exec(other.stdout)?.[1];
      const deleted = await exec('curl', [
        ...curlArgs(name),
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '-X',
        'DELETE',
        `http://localhost${cancel}`,
      ]);
      expect(deleted.stdout).toBe('204');
      expect(existsSync(join(root, 'results/cancelled.img'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
