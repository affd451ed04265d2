import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseAddress } from '../../core/address.js';
import { native } from '../../native/binding.js';
import { bindListener } from '../../native/socket.js';
import {
  activatedSocket,
  listenFdName,
  type ListenFds,
  listenFds,
  notifySunPath,
  takeListenFds,
} from '../../gateway/systemd.js';
import { BIN } from '../helpers/cli.js';
import { itNeeds } from '../helpers/requirements.js';
import { rawGet, uniqueName } from '../helpers/sockets.js';

const exec = promisify(execFile);

function waitFor(child: ChildProcess, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      if (err.includes(text)) resolve(err);
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    child.on('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

describe('systemd socket activation (as systemd would spawn us)', () => {
  it.each<[NodeJS.ProcessEnv, ListenFds]>([
    [{}, { count: 0, names: [] }],
    [
      { LISTEN_FDS: '1', LISTEN_PID: '42' },
      { count: 1, names: [''] },
    ],
    [
      { LISTEN_FDS: '1', LISTEN_PID: '42', LISTEN_FDNAMES: 'web' },
      { count: 1, names: ['web'] },
    ],
    [
      { LISTEN_FDS: '2', LISTEN_PID: '42', LISTEN_FDNAMES: 'a:b' },
      { count: 2, names: ['a', 'b'] },
    ],
    // sd_listen_fds(3): the sockets are ours only when LISTEN_PID says so.
    [{ LISTEN_FDS: '1' }, { count: 0, names: [], ignored: 'LISTEN_FDS=1 is set without LISTEN_PID' }],
    [
      { LISTEN_FDS: '1', LISTEN_PID: '43' },
      { count: 0, names: [], ignored: 'LISTEN_PID=43 is not this process (42)' },
    ],
  ])('listenFds(%j)', (env, expected) => {
    expect(listenFds(env, 42)).toEqual(expected);
  });

  it.each([
    [{ LISTEN_FDS: 'x', LISTEN_PID: '42' }, /LISTEN_FDS=x is not a positive number/],
    [{ LISTEN_FDS: '0', LISTEN_PID: '42' }, /not a positive number/],
    [
      { LISTEN_FDS: '2', LISTEN_PID: '42', LISTEN_FDNAMES: 'a' },
      /LISTEN_FDNAMES=a names 1 sockets, but LISTEN_FDS=2/,
    ],
  ])('listenFds(%j) refuses', (env, message) => {
    expect(() => listenFds(env, 42)).toThrow(message);
  });

  it('takeListenFds unsets the variables (sd_listen_fds unset_environment), ours or not', () => {
    const ours: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '42', LISTEN_FDNAMES: 'x', HOME: '/' };
    expect(takeListenFds(ours, 42)).toEqual({ count: 1, names: ['x'] });
    expect(ours).toEqual({ HOME: '/' });
    const theirs: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '7' };
    expect(takeListenFds(theirs, 42).count).toBe(0);
    expect(theirs).toEqual({});
    const bad: NodeJS.ProcessEnv = { LISTEN_FDS: 'x', LISTEN_PID: '42' };
    expect(() => takeListenFds(bad, 42)).toThrow(/not a positive number/);
    expect(bad).toEqual({});
  });

  it('activatedSocket: the one socket, with its name; several need --socket fd:N', () => {
    expect(activatedSocket({ count: 0, names: [] })).toBeUndefined();
    expect(activatedSocket({ count: 1, names: ['web'] })).toEqual({
      address: { kind: 'fd', fd: 3 },
      name: 'web',
    });
    expect(() => activatedSocket({ count: 2, names: ['a', ''] })).toThrow(
      'systemd passed 2 sockets (fd:3 "a", fd:4); nullgate serves one: choose it with --socket fd:N',
    );
    expect(listenFdName({ count: 2, names: ['a', 'b'] }, 4)).toBe('b');
    expect(listenFdName({ count: 2, names: ['a', 'b'] }, 5)).toBeUndefined();
  });

  it('NOTIFY_SOCKET "@name" is an abstract address taken byte for byte', () => {
    expect([...notifySunPath('@ab')]).toEqual([0, 0x61, 0x62]);
    expect(notifySunPath('/run/systemd/notify').toString()).toBe('/run/systemd/notify');
  });

  itNeeds(
    ['python3'],
    'serves an inherited socket (LISTEN_FDS, LISTEN_PID) and sends READY=1 to an abstract NOTIFY_SOCKET',
    async () => {
      const name = uniqueName('activated');
      const notifyName = uniqueName('notify').slice(1);
      const bound = bindListener(parseAddress(name));
      // A datagram receiver on an abstract name, like systemd's own notify socket.
      const receiver = spawn('python3', [
        '-c',
        [
          'import socket, sys',
          's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
          "s.bind('\\0' + sys.argv[1])",
          "print('bound', flush=True)",
          's.settimeout(20)',
          'print(s.recv(4096).decode().replace("\\n", "|"), flush=True)',
        ].join('\n'),
        notifyName,
      ]);
      const received = new Promise<string>((resolve) => {
        let out = '';
        receiver.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const lines = out.split('\n');
          if (lines.length > 2) resolve(lines[1]!);
        });
      });
      await new Promise<void>((resolve) => receiver.stdout.once('data', () => resolve()));
      // `exec` keeps the pid, so LISTEN_PID=$$ names the server, as systemd sets it.
      const child = spawn(
        'sh',
        ['-c', `LISTEN_PID=$$ exec "${process.execPath}" "${BIN}" serve --log-level warn`],
        {
          env: {
            ...process.env,
            LISTEN_FDS: '1',
            LISTEN_FDNAMES: 'nullgate',
            NOTIFY_SOCKET: `@${notifyName}`,
          },
          stdio: ['ignore', 'ignore', 'pipe', bound.fd],
        },
      );
      native.close(bound.fd); // the child has its own copy now
      try {
        const banner = await waitFor(child, 'nullgate: serving');
        expect(banner).toContain(`on ${name} (inherited fd:3 "nullgate")`);
        expect((await rawGet(name, '/health')).status).toBe(200);
        expect(await received).toMatch(
          new RegExp(`^READY=1\\|MAINPID=${child.pid}\\|STATUS=serving ${name}`),
        );
      } finally {
        expect(await stop(child)).toBe(0);
        receiver.kill();
      }
    },
  );

  it('with two inherited sockets, --socket fd:4 picks the second (named in the banner); none is an error saying so', async () => {
    const first = uniqueName('activated-a');
    const second = uniqueName('activated-b');
    const a = bindListener(parseAddress(first));
    const b = bindListener(parseAddress(second));
    const env = { ...process.env, LISTEN_FDS: '2', LISTEN_FDNAMES: 'one:two' };
    const spawnServe = (args: string): ChildProcess =>
      spawn(
        'sh',
        ['-c', `LISTEN_PID=$$ exec "${process.execPath}" "${BIN}" serve --log-level warn ${args}`],
        {
          env,
          stdio: ['ignore', 'ignore', 'pipe', a.fd, b.fd],
        },
      );
    try {
      const refused = spawnServe('');
      let err = '';
      refused.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      expect(await new Promise((r) => refused.on('exit', r))).toBe(1);
      expect(err).toContain(
        'systemd passed 2 sockets (fd:3 "one", fd:4 "two"); nullgate serves one: choose it with --socket fd:N',
      );
      const child = spawnServe('--socket fd:4');
      try {
        const banner = await waitFor(child, 'nullgate: serving');
        expect(banner).toContain(`on ${second} (inherited fd:4 "two")`);
        expect((await rawGet(second, '/health')).status).toBe(200);
      } finally {
        expect(await stop(child)).toBe(0);
      }
    } finally {
      native.close(a.fd);
      native.close(b.fd);
    }
  });

  it('an inherited fd that is not a listening unix socket is a clear error', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--socket', 'fd:0'], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise((r) => child.on('exit', r));
    expect(code).not.toBe(0);
    expect(err).toContain('fd:0 is not');
  });
});

describe('--netns', () => {
  itNeeds(
    ['root', 'unshare', 'nsenter', 'curl'],
    'binds inside another network namespace: reachable there, not here',
    async () => {
      const holder = spawn('unshare', ['-n', 'sleep', '60'], { stdio: 'ignore' });
      const name = uniqueName('netns');
      let server: ChildProcess | undefined;
      try {
        await new Promise((r) => setTimeout(r, 200));
        const ns = `/proc/${holder.pid}/ns/net`;
        server = spawn(
          process.execPath,
          [BIN, 'serve', '--socket', name, '--netns', ns, '--log-level', 'warn'],
          {
            stdio: ['ignore', 'ignore', 'pipe'],
          },
        );
        const banner = await waitFor(server, 'nullgate: serving');
        // The curl it suggests runs where the name is: in that namespace.
        expect(banner).toContain(
          `in network namespace ${ns} — try: nsenter --net=${ns} curl --abstract-unix-socket ${name.slice(1)} http://localhost/files/`,
        );
        const inside = await exec('nsenter', [
          '-t',
          String(holder.pid),
          '-n',
          'curl',
          '-sS',
          '--abstract-unix-socket',
          name.slice(1),
          'http://localhost/health',
        ]);
        expect(JSON.parse(inside.stdout)).toEqual({ status: 'ok' });
        await expect(rawGet(name, '/health')).rejects.toThrow(/ECONNREFUSED/);
      } finally {
        if (server) expect(await stop(server)).toBe(0);
        holder.kill('SIGKILL');
      }
    },
  );

  it.each([
    ['/etc/hostname', /not a network namespace file/],
    ['/nonexistent/ns', /cannot open \(ENOENT\)/],
  ])('--netns %s is a usage error', async (ns, message) => {
    const { runCli } = await import('../helpers/cli.js');
    const r = await runCli(['serve', '--socket', uniqueName('badns'), '--netns', ns]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
