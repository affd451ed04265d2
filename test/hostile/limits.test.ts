/**
 * The resource-limit flags of `nullgate serve` (issue 7 item 3), exercised with small values so
 * each limit is hit within seconds: --max-connections, --max-uploads, --max-header-size and the
 * headers / request / idle / keep-alive timeouts. Bad values are usage errors (exit 2).
 */
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { parseResponse } from '../helpers/sockets.js';
import {
  closedWithin,
  expectErrorShape,
  expectRecovered,
  type HostileServer,
  KiB,
  openConnection,
  sendHostile,
  startHostile,
} from './harness.js';

const MAX_CONNECTIONS = 20;

interface LogLine {
  msg: string;
  status?: number;
  reason?: string;
  peer?: { pid: number; uid: number; gid: number };
  suppressed?: number;
}

/** The server's "request refused" warnings with this status (each names the reason and the peer). */
async function refusals(server: HostileServer, status: number): Promise<LogLine[]> {
  const found = (): LogLine[] =>
    server.served
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine)
      .filter((l) => l.msg.startsWith('request refused') && l.status === status);
  for (let i = 0; i < 40 && found().length === 0; i++) await sleep(50);
  return found();
}

function expectRefusal(lines: LogLine[], reason: RegExp): void {
  expect(lines.length).toBeGreaterThanOrEqual(1);
  expect(lines[0]!.reason).toMatch(reason);
  expect(lines[0]!.peer).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
  expect(lines[0]!.suppressed).toBe(0);
}

describe('nullgate serve limit flags', () => {
  let server: HostileServer;
  const open: Socket[] = [];
  beforeAll(async () => {
    server = await startHostile('limits', (dir) => writeFileSync(join(dir, 'a.txt'), 'abc\n'), [
      '--writable',
      '--max-connections',
      String(MAX_CONNECTIONS),
      '--max-uploads',
      '2',
      '--max-header-size',
      '4K',
      '--headers-timeout',
      '2',
      '--request-timeout',
      '4',
      '--idle-timeout',
      '6',
      '--keep-alive-timeout',
      '1',
    ]);
  });
  afterAll(async () => {
    for (const s of open) s.destroy();
    await server?.stop();
  });
  afterEach(async () => {
    for (const s of open.splice(0)) s.destroy();
    await expectRecovered(server);
  });

  it('--max-connections: connections beyond the limit are answered 429 and closed, and counted in the log', async () => {
    for (let i = 0; i < MAX_CONNECTIONS; i++) open.push(await openConnection(server.name));
    // Let the server accept them all before the one too many.
    await sleep(200);
    // One that sends its request, as curl does, and one that never sends a byte: both get the
    // 429 (errors.md) and a closed connection, not a silent drop.
    const extra = await sendHostile(server.name, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', 3000);
    expectErrorShape(extra, 429);
    expect(JSON.parse(extra.body.toString())).toMatchObject({ code: 'NG_ERR_TOO_MANY_REQUESTS' });
    const silent = await openConnection(server.name);
    expect(parseResponse(await closedWithin(silent, 3000)).status).toBe(429);
    expect(server.served.stderr()).toMatch(/connection limit reached/);
    // One slot freed: a request gets through again.
    open.shift()!.destroy();
    await sleep(100);
    const res = await sendHostile(server.name, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', 3000);
    expect(res.status).toBe(200);
  }, 10_000);

  it('--max-header-size: 5 KiB of headers is 431, 3 KiB is served', async () => {
    const big = await sendHostile(
      server.name,
      `GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(5 * KiB)}\r\n\r\n`,
      3000,
    );
    expectErrorShape(big, 431);
    expectRefusal(await refusals(server, 431), /headers too large/);
    const fits = await sendHostile(
      server.name,
      `GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(3 * KiB)}\r\n\r\n`,
      3000,
    );
    expect(fits.status).toBe(200);
  }, 10_000);

  it('a malformed request is a 400, logged once with the peer; a flood of them adds one line', async () => {
    const bad = 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n';
    expectErrorShape(await sendHostile(server.name, bad, 3000), 400);
    expectRefusal(await refusals(server, 400), /malformed request \(HPE_/);
    for (let i = 0; i < 20; i++) await sendHostile(server.name, bad, 3000);
    // The rest are counted, not logged one by one: their count comes with the window's end.
    expect(await refusals(server, 400)).toHaveLength(1);
  }, 10_000);

  it('--headers-timeout: a slowloris client (a byte every 0.5 s) is cut with a 408', async () => {
    const socket = await openConnection(server.name);
    open.push(socket);
    socket.write('GET /health HTTP/1.1\r\nX-Slow: ');
    const drip = setInterval(() => socket.writable && socket.write('a'), 500);
    try {
      // Cut by the 2 s headers timeout (checked every second), never by the drip ending: the
      // 408 and its log line say which limit it was.
      const answer = await closedWithin(socket, 20_000);
      const res = parseResponse(answer);
      expectErrorShape(res, 408);
      expectRefusal(await refusals(server, 408), /timed out/);
    } finally {
      clearInterval(drip);
    }
  }, 30_000);

  it('--keep-alive-timeout closes a kept-alive connection; one that never speaks is cut with a 408', async () => {
    // Never says a word: its request does not begin within the headers timeout (2 s, found by a
    // check every second, so within 3 s: well before the idle timeout's 6 s, which would close it
    // without a word; at 3 s the two raced), which answers 408 and closes.
    const silent = await openConnection(server.name);
    open.push(silent);
    // One request, then silence on a kept-alive connection: closed by the keep-alive timeout
    // (1 s; Node adds a 1 s grace), which the answer announces.
    const kept = await openConnection(server.name);
    open.push(kept);
    kept.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    const [silentAnswer, keptAnswer] = await Promise.all([
      closedWithin(silent, 20_000),
      closedWithin(kept, 20_000),
    ]);
    const res = parseResponse(keptAnswer);
    expect(res.status).toBe(200);
    expect(res.headers['keep-alive']).toBe('timeout=1');
    expectErrorShape(parseResponse(silentAnswer), 408);
  }, 30_000);

  it('--max-uploads and --request-timeout: stalled uploads hold at most 2 slots, then are cut', async () => {
    // Two uploads that send half their body, then a byte every 0.5 s: never idle, never done.
    for (let i = 0; i < 2; i++) {
      const s = await openConnection(server.name);
      open.push(s);
      s.write(
        `PUT /files/stalled-${i}.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(500)}`,
      );
    }
    const drip = setInterval(() => {
      for (const s of open) if (s.writable) s.write('x');
    }, 500);
    await sleep(300);
    const third = await sendHostile(
      server.name,
      'PUT /files/third.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc',
      3000,
    );
    expectErrorShape(third, 429);
    expectRefusal(await refusals(server, 429), /uploads are in progress/);
    // The request timeout (4 s, checked every second) cuts the stalled ones; their slots come back.
    try {
      const cut = await Promise.all(open.map((s) => closedWithin(s, 20_000)));
      for (const answer of cut) expectErrorShape(parseResponse(answer), 408);
    } finally {
      clearInterval(drip);
    }
    open.splice(0);
    // The slots come back when the cut requests have finished on the server's side, which can be
    // a moment after the client saw its connection close: ask until one is free (bounded).
    let after = { status: 0 };
    for (let tries = 0; tries < 50; tries++) {
      after = await sendHostile(
        server.name,
        'PUT /files/after.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc',
        3000,
      );
      if (after.status !== 429) break;
      await sleep(100);
    }
    expect(after.status).toBe(201);
  }, 40_000);
});

describe('nullgate serve --body-min-rate and --body-rate-window', () => {
  let server: HostileServer;
  beforeAll(async () => {
    server = await startHostile('body-rate', () => undefined, [
      '--writable',
      '--body-min-rate',
      '1K',
      '--body-rate-window',
      '0.5',
    ]);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('a body trickled a byte every 100 ms is cut with a 408, logged with the peer', async () => {
    const socket = await openConnection(server.name);
    socket.write('PUT /files/slow.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
    const drip = setInterval(() => {
      if (socket.writable) socket.write('x');
    }, 100);
    try {
      const res = parseResponse(await closedWithin(socket, 15_000));
      expectErrorShape(res, 408);
      expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'NG_ERR_TIMEOUT' });
    } finally {
      clearInterval(drip);
    }
    expectRefusal(await refusals(server, 408), /request body too slow/);
    await expectRecovered(server);
  }, 20_000);
});

describe('nullgate serve limit flags: usage errors', () => {
  it.each([
    ['--max-connections', '0'],
    ['--max-connections', '1.5'],
    ['--max-connections', 'many'],
    ['--max-uploads', '0'],
    ['--max-uploads', '-1'],
    ['--max-header-size', '0'],
    ['--max-header-size', '16Q'],
    ['--headers-timeout', '0'],
    ['--headers-timeout', 'soon'],
    ['--idle-timeout', '0'],
    ['--keep-alive-timeout', '1e3'],
    ['--request-timeout', '-5'],
    ['--body-min-rate', 'fast'],
    ['--body-rate-window', '0'],
    ['--body-timeout', 'never'],
  ])(
    '%s %s is exit 2 naming the flag',
    async (flag, value) => {
      const res = await runCli(['serve', '--socket', '@ng-never-bound', `${flag}=${value}`], {
        timeoutMs: 10_000,
      });
      expect(res.code).toBe(2);
      expect(res.stderr).toContain(flag);
    },
    15_000,
  );

  it('--headers-timeout longer than --request-timeout is exit 2', async () => {
    const res = await runCli(
      ['serve', '--socket', '@ng-never-bound', '--request-timeout', '5', '--headers-timeout', '8'],
      { timeoutMs: 10_000 },
    );
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--headers-timeout .* must not exceed --request-timeout/);
  }, 15_000);
});
