/**
 * pull's local extraction: safe entries land, unsafe ones are refused and never write outside.
 * The rules are the server's for an upload (core/tar-entry.ts, tested in test/unit); here they
 * are checked to be applied, with LOCAL_DIR as the root.
 */
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { extractTar, packTar } from '../../client/archive.js';
import { packEntries, type TarSpec, tarStream, withTypeflag } from '../helpers/tar.js';

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('extractTar / packTar', () => {
  let base: string;
  let dest: string;
  beforeEach(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'ng-archive-'));
    dest = path.join(base, 'dest');
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('extracts files, directories and symlinks, creating LOCAL_DIR', async () => {
    const result = await extractTar(
      await tarStream([
        { header: { name: 'd', type: 'directory', mode: 0o750 } },
        { header: { name: 'd/f.txt', mode: 0o600 }, body: 'hello' },
        { header: { name: 'top.txt' }, body: 'top' },
        { header: { name: 'l', type: 'symlink', linkname: 'd/f.txt' } },
      ]),
      dest,
    );
    expect(result).toEqual({ files: 2, dirs: 1, symlinks: 1, bytes: 8, skipped: [] });
    expect(await readFile(path.join(dest, 'd/f.txt'), 'utf8')).toBe('hello');
    expect((await lstat(path.join(dest, 'd/f.txt'))).mode & 0o777).toBe(0o600);
    expect(await readlink(path.join(dest, 'l'))).toBe('d/f.txt');
  });

  it.each([
    ['an absolute name', [{ header: { name: '/abs.txt' }, body: 'x' }]],
    ['a .. name', [{ header: { name: '../escape.txt' }, body: 'x' }]],
    [
      'a write through a symlink an earlier entry planted',
      [
        { header: { name: 'inner', type: 'directory' } },
        { header: { name: 'via', type: 'symlink', linkname: 'inner' } },
        { header: { name: 'via/file.txt' }, body: 'x' },
      ],
    ],
    ['a name reserved for the server', [{ header: { name: 'd/.nullgate-tmp-x' }, body: 'x' }]],
    [
      'a write through a symlink leading out that an earlier entry planted',
      [
        { header: { name: 'out', type: 'symlink', linkname: '../outside' } },
        { header: { name: 'out/file.txt' }, body: 'x' },
      ],
    ],
    [
      'a write through an absolute symlink that an earlier entry planted',
      [
        { header: { name: 'abs', type: 'symlink', linkname: '/tmp' } },
        { header: { name: 'abs/file.txt' }, body: 'x' },
      ],
    ],
    ['a hard link out', [{ header: { name: 'h', type: 'link', linkname: '../outside' } }]],
    ['a hard link to the directory itself', [{ header: { name: 'h', type: 'link', linkname: '.' } }]],
  ] as [string, TarSpec[]][])('refuses %s', async (_what, entries) => {
    await expect(extractTar(await tarStream(entries), dest)).rejects.toMatchObject({
      code: 'NG_ERR_ARCHIVE_UNSAFE',
    });
    expect(existsSync(path.join(base, 'abs.txt'))).toBe(false);
    expect(existsSync(path.join(base, 'escape.txt'))).toBe(false);
    expect(existsSync(path.join(dest, 'inner/file.txt'))).toBe(false);
  });

  it('refuses an entry type it does not know (GNU sparse) instead of extracting it as a file', async () => {
    const sparse = withTypeflag(await packEntries([{ header: { name: 'holes' }, body: 'x' }]), 'S');
    await expect(extractTar(Readable.from([sparse]), dest)).rejects.toMatchObject({
      code: 'NG_ERR_ARCHIVE_INVALID',
      message: expect.stringContaining('unsupported entry type'),
    });
    expect(existsSync(path.join(dest, 'holes'))).toBe(false);
  });

  it('symlinks are data: absolute, leading out and dangling links are created as written', async () => {
    const result = await extractTar(
      await tarStream([
        { header: { name: 'abs', type: 'symlink', linkname: '/etc/passwd' } },
        { header: { name: 'd/out', type: 'symlink', linkname: '../../outside' } },
        { header: { name: 'dangling', type: 'symlink', linkname: 'no/such' } },
      ]),
      dest,
    );
    expect(result).toMatchObject({ symlinks: 3 });
    expect(await readlink(path.join(dest, 'abs'))).toBe('/etc/passwd');
    expect(await readlink(path.join(dest, 'd/out'))).toBe('../../outside');
    expect(await readlink(path.join(dest, 'dangling'))).toBe('no/such');
  });

  it('a refused hard link creates nothing, not even its parent directories', async () => {
    await expect(
      extractTar(
        await tarStream([{ header: { name: 'deep/er/h', type: 'link', linkname: 'missing' } }]),
        dest,
      ),
    ).rejects.toMatchObject({ code: 'NG_ERR_ARCHIVE_UNSAFE' });
    expect(existsSync(path.join(dest, 'deep'))).toBe(false);
  });

  it('modes exactly as in the archive, no umask (set-id bits as root), and hard links to extracted files', async () => {
    const root = process.geteuid?.() === 0;
    const result = await extractTar(
      await tarStream([
        { header: { name: 'shared', type: 'directory', mode: 0o1777 } },
        { header: { name: 'shared/tool', mode: 0o4700 }, body: 'run me' },
        { header: { name: 'shared/again', type: 'link', linkname: 'shared/tool' } },
        { header: { name: 'shared/rw', mode: 0o666 }, body: '' },
        { header: { name: 'fifo', type: 'fifo', mode: 0o620 } },
      ]),
      dest,
    );
    expect(result).toEqual({ files: 4, dirs: 1, symlinks: 0, bytes: 6, skipped: [] });
    expect((await lstat(path.join(dest, 'shared'))).mode & 0o7777).toBe(0o1777);
    expect((await lstat(path.join(dest, 'shared/rw'))).mode & 0o7777).toBe(0o666);
    const tool = await lstat(path.join(dest, 'shared/tool'));
    expect(tool.mode & 0o7777).toBe(root ? 0o4700 : 0o700);
    expect((await lstat(path.join(dest, 'shared/again'))).ino).toBe(tool.ino);
    const fifo = await lstat(path.join(dest, 'fifo'));
    expect(fifo.isFIFO()).toBe(true);
    expect(fifo.mode & 0o7777).toBe(0o620);
  });

  it('never follows a symlink already in LOCAL_DIR', async () => {
    const outside = path.join(base, 'outside');
    await mkdir(outside);
    await mkdir(dest);
    await symlink(outside, path.join(dest, 'planted'));
    await expect(
      extractTar(await tarStream([{ header: { name: 'planted/x' }, body: 'x' }]), dest),
    ).rejects.toThrow(/symlink/);
    // A file entry replaces a symlink at its own name instead of writing through it.
    await extractTar(await tarStream([{ header: { name: 'planted' }, body: 'plain' }]), dest);
    expect((await lstat(path.join(dest, 'planted'))).isFile()).toBe(true);
    expect(existsSync(path.join(outside, 'x'))).toBe(false);
  });

  it('packTar round-trips through extractTar', async () => {
    const src = path.join(base, 'src');
    await mkdir(path.join(src, 'a/b'), { recursive: true });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path.join(src, 'a/b/c.bin'), Buffer.alloc(100_000, 1));
    await writeFile(path.join(src, 'empty'), '');
    await symlink('a/b/c.bin', path.join(src, 'link'));
    const packed = await packTar(src);
    const bytes = await collect(packed.stream);
    expect(packed.error()).toBeUndefined();
    const result = await extractTar(Readable.from([bytes]), dest);
    expect(result).toMatchObject({ files: 2, dirs: 2, symlinks: 1, bytes: 100_000 });
    expect((await readFile(path.join(dest, 'a/b/c.bin'))).length).toBe(100_000);
    expect(await readlink(path.join(dest, 'link'))).toBe('a/b/c.bin');
  });

  it('a transfer cut mid-member is reported as the transfer error, not as a local write error', async () => {
    const whole = await packEntries([{ header: { name: 'big' }, body: Buffer.alloc(100_000, 7) }]);
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', syscall: 'read' });
    const body = new Readable({ read() {} });
    body.push(whole.subarray(0, 30_000));
    setImmediate(() => body.destroy(reset));
    await expect(extractTar(body, dest)).rejects.toBe(reset);
  });

  it('packTar of a missing directory is a local read error', async () => {
    await expect(packTar(path.join(base, 'nope'))).rejects.toMatchObject({
      name: 'LocalFileError',
      op: 'read',
    });
  });
});
