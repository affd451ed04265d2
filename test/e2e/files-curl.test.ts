/**
 * Byte-exact transfers through the real CLI on a real abstract socket with curl
 * (`curl --abstract-unix-socket`), the way a script in a chroot uses nullgate.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { type Served, startServe } from '../helpers/cli.js';
import { itNeeds } from '../helpers/requirements.js';
import { openFdCount, rawGet, uniqueName } from '../helpers/sockets.js';
import { waitFor } from '../hostile/harness.js';

const MiB = 1024 * 1024;

interface CurlResult {
  code: number | null;
  sha256: string;
  bytes: number;
  stderr: string;
}

/** Runs curl, hashing what it writes to stdout as it streams (never holding 64 MiB twice). */
function curl(args: string[], timeoutMs = 20_000): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const hash = createHash('sha256');
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, sha256: hash.digest('hex'), bytes, stderr });
    });
  });
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('downloads and uploads with curl through the abstract socket', () => {
  const name = uniqueName('files-curl');
  const sock = name.slice(1);
  let dir: string;
  let served: Served;
  const sizes = [
    ['0 B', 0],
    ['1 B', 1],
    ['1 MiB', MiB],
    ['64 MiB', 64 * MiB],
  ] as const;
  const digests = new Map<number, string>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-files-curl-'));
    for (const [, size] of sizes) {
      const data = randomBytes(size);
      writeFileSync(join(dir, `f-${size}.bin`), data);
      digests.set(size, createHash('sha256').update(data).digest('hex'));
    }
    served = await startServe(['--socket', name, '--root', dir, '--writable']);
  });
  afterAll(async () => {
    await served?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [label, size] of sizes) {
    itNeeds(['curl'], `GET of a ${label} file is byte-exact (sha-256)`, async () => {
      const res = await curl(['-f', '--abstract-unix-socket', sock, `http://localhost/files/f-${size}.bin`]);
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      expect(res.bytes).toBe(size);
      expect(res.sha256).toBe(digests.get(size));
    });
  }

  itNeeds(['curl'], 'a range of the 64 MiB file is exactly those bytes', async () => {
    const start = 10 * MiB + 3;
    const end = 12 * MiB + 7;
    const res = await curl([
      '-f',
      '-r',
      `${start}-${end}`,
      '--abstract-unix-socket',
      sock,
      `http://localhost/files/f-${64 * MiB}.bin`,
    ]);
    expect(res.code).toBe(0);
    const expected = createHash('sha256')
      .update(readFileSync(join(dir, `f-${64 * MiB}.bin`)).subarray(start, end + 1))
      .digest('hex');
    expect(res.bytes).toBe(end - start + 1);
    expect(res.sha256).toBe(expected);
  });

  itNeeds(['curl'], 'curl -T uploads a file (Expect: 100-continue) byte-exactly', async () => {
    const src = join(dir, `f-${MiB}.bin`);
    const res = await curl([
      '-f',
      '-T',
      src,
      '--abstract-unix-socket',
      sock,
      'http://localhost/files/up/copy.bin',
    ]);
    expect(res.code).toBe(0);
    expect(await sha256File(join(dir, 'up/copy.bin'))).toBe(digests.get(MiB));
  });

  itNeeds(['curl'], 'curl -T - uploads stdin as a chunked body', async () => {
    const child = spawn(
      'curl',
      ['-sS', '-f', '-T', '-', '--abstract-unix-socket', sock, 'http://localhost/files/up/stdin.bin'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const data = randomBytes(3 * MiB + 17);
    child.stdin.end(data);
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ path: '/up/stdin.bin', size: data.length });
    expect(readFileSync(join(dir, 'up/stdin.bin')).equals(data)).toBe(true);
  });

  itNeeds(['curl'], 'an error reaches curl as the JSON error shape', async () => {
    const child = spawn('curl', ['-sS', '--abstract-unix-socket', sock, 'http://localhost/files/missing'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await new Promise((resolve) => child.on('close', resolve));
    expect(JSON.parse(out)).toEqual({
      statusCode: 404,
      code: 'NG_ERR_NOT_FOUND',
      error: 'Not Found',
      message: expect.any(String),
    });
  });
});

describe('a refused curl -T upload', () => {
  interface LogLine {
    msg: string;
    path?: string;
    status?: number;
    reason?: string;
  }
  const cases = [
    ['403, a read-only server', [] as string[], 403],
    ['413, over --max-upload', ['--writable', '--max-upload', '1K'], 413],
  ] as const;
  for (const [label, flags, status] of cases) {
    itNeeds(['curl'], `${label}: logs its access line and no false parser warning`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ng-refused-curl-'));
      const name = uniqueName('refused-curl');
      const src = join(dir, 'upload.bin');
      writeFileSync(src, randomBytes(64 * 1024));
      const served = await startServe(['--socket', name, '--root', dir, '--log-level', 'info', ...flags]);
      const logLines = (): LogLine[] =>
        served
          .stderr()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as LogLine);
      try {
        const pid = served.child.pid!;
        // Warm-up: the fds opened on first use exist from here on.
        expect((await rawGet(name, '/health')).status).toBe(200);
        const idleFds = openFdCount(pid);
        // curl -T sends Expect: 100-continue; refused, it sends no body and hangs up.
        const res = await curl([
          '-T',
          src,
          '--abstract-unix-socket',
          name.slice(1),
          'http://localhost/files/x.bin',
        ]);
        expect(res.code).toBe(0);
        // The server has seen the end of that connection once it has closed it; a request after
        // that, once logged, shows that everything logged before it has reached us.
        expect(await waitFor(() => openFdCount(pid) <= idleFds, 5000)).toBe(true);
        expect((await rawGet(name, '/whoami')).status).toBe(200);
        expect(await waitFor(() => logLines().some((l) => l.path === '/whoami'), 5000)).toBe(true);
        const lines = logLines().filter((l) => l.path !== '/health' && l.path !== '/whoami');
        expect(lines.filter((l) => l.msg === 'access').map((l) => l.status)).toEqual([status]);
        const warnings = lines.filter((l) => l.msg.startsWith('request refused'));
        // Only the limit an operator sizes (413) is a warning, with its own reason.
        expect(warnings.map((l) => l.status)).toEqual(status === 413 ? [413] : []);
        expect(served.stderr()).not.toMatch(/malformed request|HPE_/);
      } finally {
        await served.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
