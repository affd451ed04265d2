/**
 * Someone else holds the name (CONTRACT.md, "The client checks the server too"): a fake server
 * run as the overflow uid 65534 (setpriv) binds the abstract name before the real one could,
 * and answers every request with its own bytes. The client must refuse it before sending a
 * byte (exit 7, naming the uid and pid) unless told to trust that uid.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UntrustedServerError, connector } from '../../client/index.js';
import { runCli } from '../helpers/cli.js';
import { itNeeds } from '../helpers/requirements.js';
import { uniqueName } from '../helpers/sockets.js';
import { waitFor } from './harness.js';

const dist = (file: string): string => new URL(`../../dist/${file}`, import.meta.url).href;

/**
 * The squatter: binds the name natively with nullgate's own exact-length bind (dist/), answers
 * any request with ATTACKER-CONTROLLED, and prints how many bytes each connection sent it.
 */
const SQUATTER = `
import net from 'node:net';
const [name, socketJs, addressJs] = process.argv.slice(1);
const { bindListener } = await import(socketJs);
const { parseAddress } = await import(addressJs);
const body = 'ATTACKER-CONTROLLED\\n';
const server = net.createServer((socket) => {
  console.log('accepted');
  let bytes = 0;
  socket.on('error', () => undefined);
  socket.on('data', (chunk) => {
    bytes += chunk.length;
    socket.write('HTTP/1.1 200 OK\\r\\ncontent-type: application/octet-stream\\r\\ncontent-length: ' + body.length + '\\r\\n\\r\\n' + body);
  });
  socket.on('close', () => console.log('closed after ' + bytes + ' bytes'));
});
const { fd } = bindListener(parseAddress(name));
server.listen({ fd }, () => console.log('listening'));
`;

interface Squatter {
  readonly child: ChildProcess;
  /** What it printed so far. */
  readonly out: () => string;
}

function startSquatter(name: string): Promise<Squatter> {
  const child = spawn(
    'setpriv',
    [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      process.execPath,
      '--input-type=module',
      '-e',
      SQUATTER,
      name,
      dist('native/socket.js'),
      dist('core/address.js'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', () => {
      if (out.includes('listening')) resolve({ child, out: () => out });
    });
    child.on('exit', (code) => reject(new Error(`squatter exited ${code}: ${out}${err}`)));
  });
}

/** Connections the squatter saw close, with the bytes each had sent. */
function closedConnections(squatter: Squatter): number[] {
  return [...squatter.out().matchAll(/closed after (\d+) bytes/g)].map((m) => Number(m[1]));
}

/**
 * True when the connections closed since the `before`-th all carried 0 bytes. A connection the
 * squatter had not accepted yet when `before` was counted (a client that gave up at once) is a
 * refused one too, so it may show up here without harm.
 */
function refusedSince(squatter: Squatter, before: number): boolean {
  const since = closedConnections(squatter).slice(before);
  return since.length > 0 && since.every((bytes) => bytes === 0);
}

/** Waits until every connection the squatter accepted has closed; returns how many closed. */
async function settled(squatter: Squatter): Promise<number> {
  const accepted = (): number => squatter.out().split('accepted').length - 1;
  expect(await waitFor(() => closedConnections(squatter).length === accepted(), 5000)).toBe(true);
  return closedConnections(squatter).length;
}

describe('a server run by an untrusted uid holds the name', () => {
  let name: string;
  let squatter: Squatter | undefined;
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'ng-squatter-'));
    name = uniqueName('squatter');
    if (process.getuid?.() === 0) squatter = await startSquatter(name);
  });
  afterAll(async () => {
    squatter?.child.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  itNeeds(
    ['root', 'setpriv'],
    'get refuses it: exit 7 naming uid and pid, nothing sent, nothing written',
    async () => {
      const target = path.join(work, 'motd');
      await writeFile(target, 'mine\n');
      const before = closedConnections(squatter!).length;
      const r = await runCli(['get', '/etc/motd', '-o', target, '--socket', name]);
      expect(r.code).toBe(7);
      expect(r.stderr).toBe(
        `nullgate: GET /files/etc/motd on ${name}: refusing the server on ${name}: it runs as uid 65534 ` +
          `(pid ${squatter!.child.pid}), not as root (if you trust it: --server-uid 65534)\n`,
      );
      expect(await readFile(target, 'utf8')).toBe('mine\n');
      expect(await readdir(work)).toEqual(['motd']);
      // The squatter saw the connection, and not one byte on it.
      expect(await waitFor(() => closedConnections(squatter!).length > before, 5000)).toBe(true);
      expect(closedConnections(squatter!).slice(before)).toEqual([0]);
    },
  );

  itNeeds(
    ['root', 'setpriv'],
    'every verb refuses it, to stdout too',
    async () => {
      for (const args of [
        ['get', '/x'],
        ['ls', '/'],
        ['request', '/health'],
        ['put', '-', '/x'],
      ]) {
        const r = await runCli([...args, '--socket', name], { input: 'data' });
        expect(r.code, args.join(' ')).toBe(7);
        expect(r.stdout.toString()).toBe('');
        expect(r.stderr).toMatch(/refusing the server on .*: it runs as uid 65534/);
      }
    },
    60_000,
  );

  itNeeds(
    ['root', 'setpriv'],
    '--server-uid 65534 (or NULLGATE_SERVER_UID) trusts it',
    async () => {
      const target = path.join(work, 'trusted');
      let r = await runCli(['get', '/etc/motd', '-o', target, '--server-uid', '65534', '--socket', name]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(await readFile(target, 'utf8')).toBe('ATTACKER-CONTROLLED\n');
      r = await runCli(['get', '/etc/motd', '--socket', name], {
        env: { NULLGATE_SERVER_UID: '1000,65534' },
      });
      expect(r.code).toBe(0);
      expect(r.stdout.toString()).toBe('ATTACKER-CONTROLLED\n');
      // Another uid does not help; the flag replaces the variable.
      r = await runCli(['get', '/x', '--server-uid', '1000', '--socket', name], {
        env: { NULLGATE_SERVER_UID: '65534' },
      });
      expect(r.code).toBe(7);
      expect(r.stderr).toMatch(/it runs as uid 65534 .*, not as root or as uid 1000 /);
    },
    60_000,
  );

  itNeeds(['root', 'setpriv'], 'the library connector refuses it too, unless serverUids has it', async () => {
    const refusing = new Agent({ connect: connector(name) });
    const before = await settled(squatter!);
    try {
      const err = await request('http://localhost/files/x', { dispatcher: refusing }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UntrustedServerError);
      expect(err).toMatchObject({
        code: 'NG_ERR_SERVER_UNTRUSTED',
        uid: 65534,
        gid: 65534,
        pid: squatter!.child.pid,
        socket: name,
      });
    } finally {
      await refusing.close();
    }
    expect(await waitFor(() => closedConnections(squatter!).length > before, 5000)).toBe(true);
    expect(refusedSince(squatter!, before)).toBe(true);

    const trusting = new Agent({ connect: connector(name, { serverUids: [65534] }) });
    try {
      const res = await request('http://localhost/files/x', { dispatcher: trusting });
      expect(await res.body.text()).toBe('ATTACKER-CONTROLLED\n');
    } finally {
      await trusting.close();
    }
  });
});

describe('server uid options', () => {
  it('connector validates serverUids once, naming the value', () => {
    expect(() => connector('@x', { serverUids: [-1] })).toThrow(/invalid serverUids: .* got \[ -1 \]/);
    expect(() => connector('@x', { serverUids: ['1000'] as unknown as number[] })).toThrow(
      /invalid serverUids/,
    );
    expect(() => connector('@x', { serverUids: [2 ** 32 - 1] })).toThrow(/invalid serverUids/);
  });
});
