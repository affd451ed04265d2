/**
 * A denied uid floods the server with connections it never reads from or closes (a peer of the
 * overflow uid 65534, run with setpriv). Refused connections must not count against
 * --max-connections, nor linger for long: allowed peers are still served, every time and
 * promptly, and SIGTERM does not wait for the refused ones.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import { settlesWithin } from '../helpers/bounds.js';
import { itNeeds } from '../helpers/requirements.js';
import { rawGet } from '../helpers/sockets.js';
import { startHostile } from './harness.js';

const MAX_CONNECTIONS = 50;

/**
 * Holds COUNT connections to the abstract name, never reading a byte; each one the server closes
 * (POLLHUP) is opened again at once, so the flood stays at COUNT for SECONDS. Prints "holding"
 * once COUNT are open at the same time, and a final tally on exit.
 */
const FLOOD = `
import errno, select, socket, sys, time
name, count, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
poller = select.poll()
socks = {}
opened = 0
announced = False
end = time.monotonic() + secs
while time.monotonic() < end:
    while len(socks) < count:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect('\\0' + name)
        except OSError:
            s.close()
            time.sleep(0.005)
            break
        socks[s.fileno()] = s
        poller.register(s, select.POLLHUP)
        opened += 1
    if not announced and len(socks) >= count:
        print('holding', flush=True)
        announced = True
    for fd, ev in poller.poll(10):
        if ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
            poller.unregister(fd)
            socks.pop(fd).close()
print('opened', opened, flush=True)
`;

function startFlood(
  name: string,
  count: number,
  seconds: number,
): { child: ChildProcess; holding: Promise<void> } {
  // PATH is reset so python3 resolves to a system copy uid 65534 may execute (not a shim under /root).
  const child = spawn(
    'setpriv',
    [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      'env',
      'PATH=/usr/local/bin:/usr/bin:/bin',
      'python3',
      '-c',
      FLOOD,
      name.slice(1),
      String(count),
      String(seconds),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const holding = new Promise<void>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('holding')) resolve();
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code) => reject(new Error(`flood exited ${code} before holding: ${out}${err}`)));
  });
  return { child, holding };
}

describe('a flood of denied connections', () => {
  itNeeds(
    ['root', 'setpriv', 'python3'],
    'does not lock allowed peers out (--max-connections 50, 60 held), and SIGTERM does not wait for it',
    async () => {
      const server = await startHostile('denied-flood', (dir) => writeFileSync(join(dir, 'a.txt'), 'a\n'), [
        '--max-connections',
        String(MAX_CONNECTIONS),
        '--grace',
        '120',
        '--log-level',
        'warn',
      ]);
      const flood = startFlood(server.name, MAX_CONNECTIONS + 10, 120);
      try {
        await flood.holding;
        // 20 root requests while the flood goes on: every one is served, while it goes on (the
        // flood holds its connections for 120 s; a root request stuck behind them would wait that).
        for (let i = 0; i < 20; i++) {
          const res = await settlesWithin(
            rawGet(server.name, i % 2 ? '/health' : '/files/a.txt'),
            10_000,
            `request ${i} during the flood`,
          );
          expect(res.status, `request ${i}`).toBe(200);
          await sleep(25);
        }
        expect(flood.child.exitCode).toBeNull();
        // The denials were logged, a bounded number of lines for hundreds of connections.
        const lines = server.served
          .stderr()
          .split('\n')
          .filter((l) => l.includes('peer denied'));
        expect(lines.length).toBeGreaterThanOrEqual(1);
        expect(lines.length).toBeLessThan(5);
        expect(lines[0]).toMatch(/"uid":65534/);
        // SIGTERM with refused connections still open: the drain does not wait for them (they stay
        // open for 120 s, and so does the --grace that would end a drain waiting for them).
        const exit = await settlesWithin(server.served.stop('SIGTERM'), 20_000, 'exit on SIGTERM');
        expect(exit).toEqual({ code: 0, signal: null });
      } finally {
        flood.child.kill('SIGKILL');
        await server.stop();
      }
    },
    40_000,
  );
});
