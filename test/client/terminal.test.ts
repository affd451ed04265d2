/** What the client writes to a terminal: a progress bar that fits, and no binary bytes. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { exitCodeOf } from '../../cli/exit.js';
import { refuseBinaryToTerminal } from '../../client/verbs/get.js';
import { progressLine, toStdout } from '../../client/verbs/common.js';

const MiB = 1024 * 1024;
const width = (line: string): number => [...line].length;

describe('progressLine: one frame that fits the terminal', () => {
  it.each([
    [80, 'image.bin'],
    [56, 'image.bin'],
    [80, 'a-very-long-file-name-that-takes-most-of-the-line-by-itself-0123456789.tar'],
    [40, 'a-very-long-file-name-that-takes-most-of-the-line-by-itself-0123456789.tar'],
    [20, 'x'],
  ])('%i columns, name %s: never wider than columns - 1', (columns, label) => {
    for (const final of [false, true]) {
      for (const total of [100 * MiB, undefined]) {
        const line = progressLine({ label, done: 40 * MiB, total, elapsed: 2, columns, final });
        expect(width(line), line).toBeLessThanOrEqual(Math.max(columns - 1, 20));
        expect(line).not.toContain('\n');
      }
    }
  });

  it('a long name is cut with … and the numbers stay whole', () => {
    const line = progressLine({
      label: 'n'.repeat(200),
      done: 50 * MiB,
      total: 100 * MiB,
      elapsed: 1,
      columns: 80,
    });
    expect(line).toContain('…');
    expect(line).toMatch(/ 50% 50\.0 MiB \/ 100\.0 MiB {2}50\.0 MiB\/s$/);
  });

  it('the final line says 100%, the size, the time and the mean rate', () => {
    const line = progressLine({
      label: 'disk.img',
      done: 100 * MiB,
      total: 100 * MiB,
      elapsed: 4,
      columns: 80,
      final: true,
    });
    expect(line).toMatch(/^disk\.img \[#+\] 100% 100\.0 MiB {2}4\.0s {2}25\.0 MiB\/s$/);
  });
});

describe('binary output to a terminal', () => {
  const sink = () => {
    const chunks: Buffer[] = [];
    const out = Object.assign(new (class extends Readable {})() as unknown as NodeJS.WritableStream, {
      write: (c: Buffer) => (chunks.push(c), true),
      on: () => out,
      off: () => out,
      once: () => out,
    });
    return { out, chunks };
  };

  it('is refused before a byte is written (exit 23), naming -o FILE and -o -', async () => {
    const { out, chunks } = sink();
    const body = Readable.from([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1]), Buffer.from('more')]);
    const err = await toStdout(refuseBinaryToTerminal(body, { isTTY: true }), out).catch((e: unknown) => e);
    expect(exitCodeOf(err)).toBe(23);
    expect((err as Error).message).toMatch(/binary output can mess up your terminal: use -o FILE .*-o -/);
    expect(chunks).toEqual([]);
  });

  it.each([
    ['text to a terminal', Buffer.from('hello\n'), true],
    ['binary to a pipe', Buffer.from([0, 1, 2]), false],
  ])('%s passes', async (_what, data, isTTY) => {
    const { out, chunks } = sink();
    await toStdout(refuseBinaryToTerminal(Readable.from([data]), { isTTY }), out);
    expect(Buffer.concat(chunks)).toEqual(data);
  });
});
