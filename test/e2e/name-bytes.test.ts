/**
 * File names are bytes (core/name-bytes.ts): a file whose name is not UTF-8 (`caf` and the
 * byte 0xE9, Latin-1 "café") is listed, fetched, uploaded, moved, deleted and pulled through
 * the real CLI on a real abstract socket, and fetched by curl with its bytes percent-encoded.
 * The shell hands the CLI the raw byte (`$(printf '\351')`), as a script in a chroot would.
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, type RunResult, type Served, startServe } from '../helpers/cli.js';
import { itNeeds } from '../helpers/requirements.js';
import { uniqueName } from '../helpers/sockets.js';

/** `dir` joined with a name given as bytes. */
const at = (dir: string, ...names: (string | Buffer)[]): Buffer =>
  Buffer.concat([Buffer.from(dir), ...names.flatMap((n) => [Buffer.from('/'), Buffer.from(n)])]);
const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Runs `sh -c SCRIPT` and collects its output. */
function sh(script: string, env: Record<string, string>, cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], {
      env: { ...process.env, ...env },
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

describe('a file named with a byte that is not UTF-8 (0xE9)', () => {
  const name = uniqueName('name-bytes');
  let dir: string;
  let root: string;
  let served: Served;
  let env: Record<string, string>;
  const run = (script: string, cwd?: string): Promise<RunResult> =>
    sh(`NG() { "$NODE" "$BIN" "$@"; }; ${script}`, env, cwd);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ng-name-bytes-'));
    root = join(dir, 'root');
    mkdirSync(at(root, latin1('d\xe9j')), { recursive: true });
    writeFileSync(at(root, latin1('caf\xe9')), 'latin-1\n');
    writeFileSync(at(root, latin1('d\xe9j'), latin1('\xe0 faire')), 'inside\n');
    served = await startServe(['--socket', name, '--root', root, '--writable']);
    env = { NODE: process.execPath, BIN, NULLGATE_SOCKET: name, SOCK: name.slice(1) };
  });
  afterAll(async () => {
    await served.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ls shows it escaped (caf\\xe9), --json as its surrogateescape (\\udce9)', async () => {
    const ls = await run('NG ls /');
    expect(ls.stderr).toBe('');
    expect(ls.stdout.toString().split('\n')).toEqual(expect.arrayContaining(['caf\\xe9', 'd\\xe9j/']));
    const json = await run('NG ls --json /');
    expect(json.stdout.toString()).toContain('"name":"caf\\udce9"');
    const names = (JSON.parse(json.stdout.toString()) as { entries: { name: string }[] }).entries.map(
      (e) => e.name,
    );
    expect(names).toEqual(['caf\udce9', 'd\udce9j']);
    const inside = await run(`NG ls "$(printf '/d\\351j')"`);
    expect(inside.stdout.toString()).toBe('\\xe0 faire\n');
  });

  it('get fetches it by its bytes, to standard output and with -O under the same bytes', async () => {
    const get = await run(`NG get "$(printf '/caf\\351')"`);
    expect(get.stderr).toBe('');
    expect(get.stdout.toString()).toBe('latin-1\n');
    const out = join(dir, 'out-get');
    mkdirSync(out);
    const saved = await run(`NG get -O "$(printf '/d\\351j/\\340 faire')"`, out);
    expect(saved.stderr).toBe('');
    expect(saved.code).toBe(0);
    expect(readdirSync(out, { encoding: 'buffer' })).toEqual([latin1('\xe0 faire')]);
    expect(readFileSync(at(out, latin1('\xe0 faire')), 'utf8')).toBe('inside\n');
  });

  itNeeds(['curl'], 'curl fetches it with the byte percent-encoded (/files/caf%E9)', async () => {
    const res = await run('curl -sS --abstract-unix-socket "$SOCK" http://localhost/files/caf%E9');
    expect(res.stderr).toBe('');
    expect(res.stdout.toString()).toBe('latin-1\n');
    const listing = await run('curl -sS --abstract-unix-socket "$SOCK" http://localhost/files/d%e9j/');
    expect(JSON.parse(listing.stdout.toString())).toMatchObject({
      path: '/d\udce9j/',
      entries: [{ name: '\udce0 faire' }],
    });
  });

  it('put uploads a local file whose name has the byte, under a remote name with it', async () => {
    const local = join(dir, 'local');
    mkdirSync(local);
    writeFileSync(at(local, latin1('up\xe9')), 'uploaded\n');
    const put = await run(`NG put "$(printf 'up\\351')" "$(printf '/up\\351')"`, local);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
    expect(readFileSync(at(root, latin1('up\xe9')), 'utf8')).toBe('uploaded\n');
  });

  it('mv renames it and rm deletes it', async () => {
    writeFileSync(at(root, latin1('m\xe9')), 'move me\n');
    const mv = await run(`NG mv "$(printf '/m\\351')" "$(printf '/moved\\377')"`);
    expect(mv.stderr).toBe('nullgate: moved /m\\xe9 to /moved\\xff\n');
    expect(mv.code).toBe(0);
    expect(existsSync(at(root, latin1('m\xe9')))).toBe(false);
    expect(readFileSync(at(root, latin1('moved\xff')), 'utf8')).toBe('move me\n');
    const rm = await run(`NG rm "$(printf '/moved\\377')"`);
    expect(rm.stderr).toBe('');
    expect(rm.code).toBe(0);
    expect(existsSync(at(root, latin1('moved\xff')))).toBe(false);
  });

  it('pull of a directory named with the byte gives its files back under their bytes', async () => {
    const pulled = join(dir, 'pulled');
    const pull = await run(`NG pull "$(printf '/d\\351j')" "${pulled}"`);
    expect(pull.stderr).toBe('');
    expect(pull.code).toBe(0);
    expect(readdirSync(pulled, { encoding: 'buffer' })).toEqual([latin1('\xe0 faire')]);
    const whole = join(dir, 'whole');
    expect((await run(`NG pull / "${whole}"`)).code).toBe(0);
    expect(readFileSync(at(whole, latin1('caf\xe9')), 'utf8')).toBe('latin-1\n');
    expect(readFileSync(at(whole, latin1('d\xe9j'), latin1('\xe0 faire')), 'utf8')).toBe('inside\n');
  });

  it('pull and push take a LOCAL_DIR whose name has the byte', async () => {
    const pull = await run(`NG pull "$(printf '/d\\351j')" "$(printf 'loc\\351')"`, dir);
    expect(pull.stderr).toBe('');
    expect(pull.code).toBe(0);
    expect(readFileSync(at(dir, latin1('loc\xe9'), latin1('\xe0 faire')), 'utf8')).toBe('inside\n');
    const push = await run(`NG push "$(printf 'loc\\351')" "$(printf '/back\\351')"`, dir);
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);
    expect(readFileSync(at(root, latin1('back\xe9'), latin1('\xe0 faire')), 'utf8')).toBe('inside\n');
  });
});
