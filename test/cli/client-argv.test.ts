/** argv → options for every client verb: what parses, and what is a usage error (exit 2). */
import { describe, expect, it } from 'vitest';
import { parseAddress } from '../../core/address.js';
import { ExitCode, exitCodeOf } from '../../cli/exit.js';
import { parseCommand } from '../../core/argv.js';
import { parseCommon, commonOptions } from '../../client/verbs/common.js';
import { parseGetArgs } from '../../client/verbs/get.js';
import { formatListing, modeString, parseLsArgs } from '../../client/verbs/ls.js';
import { parseMkdirArgs } from '../../client/verbs/mkdir.js';
import { parseMvArgs } from '../../client/verbs/mv.js';
import { parsePullArgs, parsePushArgs } from '../../client/verbs/pull.js';
import { parsePutArgs } from '../../client/verbs/put.js';
import { parseRequestArgs } from '../../client/verbs/request.js';
import { parseRmArgs } from '../../client/verbs/rm.js';
import { encodeRemotePath, filesPath } from '../../client/client.js';

const noEnv = {};

function usage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(exitCodeOf(err)).toBe(ExitCode.USAGE);
    return (err as Error).message;
  }
  throw new Error('expected a usage error');
}

function common(argv: string[], env: Record<string, string> = {}) {
  const { values } = parseCommand({ name: 'x', usage: [], summary: '', options: commonOptions }, argv);
  return parseCommon(values, env);
}

describe('common flags: socket, --wait, -s', () => {
  it.each([
    [[], {}, '@nullgate'],
    [['--socket', '@x'], {}, '@x'],
    [['--socket', '@a\\x00b'], {}, '@a\\x00b'],
    [['--socket', '/run/ng.sock'], {}, '/run/ng.sock'],
    [['--abstract-unix-socket', 'curlname'], {}, '@curlname'],
    [['--unix-socket', '/tmp/s'], {}, '/tmp/s'],
    [['--unix-socket', '@literal'], {}, '@literal'],
    [[], { NULLGATE_SOCKET: '@fromenv' }, '@fromenv'],
    [['--socket', '@flag'], { NULLGATE_SOCKET: '@fromenv' }, '@flag'],
  ] as const)('%j with env %j → %s', (argv, env, shown) => {
    const parsed = common([...argv], env);
    if (argv[0] === '--unix-socket') expect(parsed.socket).toEqual({ kind: 'path', path: argv[1] });
    else expect(parsed.socket).toEqual(parseAddress(shown));
  });

  it('--abstract-unix-socket takes the bytes literally (no escapes), as curl does', () => {
    expect(common(['--abstract-unix-socket', 'a\\x00']).socket).toEqual({
      kind: 'abstract',
      name: Buffer.from('a\\x00'),
    });
  });

  it.each([
    [['--wait', '5'], 5],
    [['--wait', '0.5'], 0.5],
    [[], 0],
  ] as const)('%j → wait %d', (argv, wait) => {
    expect(common([...argv]).wait).toBe(wait);
  });

  it.each([
    [['--socket', '@a', '--unix-socket', '/x'], /one of/],
    [['--socket', '@'], /client connects/],
    [['--socket', 'fd:3'], /client connects/],
    [['--socket', '@bad\\q'], /malformed escape/],
    [['--socket', `@${'x'.repeat(108)}`], /at most 107/],
    [['--abstract-unix-socket', ''], /empty/],
    [['--wait', 'soon'], /--wait takes a number of seconds, got "soon"/],
    [['--wait', '-1'], /--wait/],
  ] as const)('%j is a usage error', (argv, message) => {
    expect(usage(() => common([...argv]))).toMatch(message);
  });

  it('-s silences', () => {
    expect(common(['-s']).silent).toBe(true);
    expect(common([]).silent).toBe(false);
  });
});

describe('get', () => {
  it.each([
    [['/etc/motd'], { remote: '/etc/motd', output: undefined, resume: false, range: undefined }],
    [['/etc/motd', '-o', 'm'], { output: 'm' }],
    [['/etc/motd', '-o', '-'], { output: undefined }],
    [['-O', '/etc/motd'], { output: 'motd' }],
    [['/big.iso', '-C', '-', '-o', 'big.iso'], { resume: true, output: 'big.iso' }],
    [['/f', '-r', '0-499'], { range: '0-499' }],
    [['/f', '-r-500'], { range: '-500' }],
    [['/f', '--range=-500'], { range: '-500' }],
    [['/f', '-r', '0-1,5-9'], { range: '0-1,5-9' }],
    [['/f', '-s', '--wait', '3'], { common: expect.objectContaining({ silent: true, wait: 3 }) }],
  ])('%j → %o', (argv, expected) => {
    expect(parseGetArgs(argv, noEnv)).toMatchObject(expected);
  });

  it.each([
    [[], /missing REMOTE/],
    [['/a', '/b'], /unexpected argument "\/b"/],
    [['/a', '-o', 'x', '-O'], /not both/],
    [['-O', '/dir/'], /no file name/],
    [['-O', '/'], /no file name/],
    [['/a', '-C', '100', '-o', 'x'], /-C takes "-"/],
    [['/a', '-C', '-'], /standard output cannot be resumed/],
    [['/a', '-r', 'abc'], /byte ranges/],
    [['/a', '-C', '-', '-o', 'x', '-r', '0-1'], /exclude/],
    [['/a', '--bogus'], /^get: unknown option --bogus \(see nullgate get --help\)$/],
  ] as const)('%j is a usage error', (argv, message) => {
    expect(usage(() => parseGetArgs([...argv], noEnv))).toMatch(message);
  });
});

describe('put', () => {
  it.each([
    [['local.txt', '/remote.txt'], { local: 'local.txt', remote: '/remote.txt', noClobber: false }],
    [['-', '/from-stdin'], { local: '-', remote: '/from-stdin' }],
    [['dir/local.txt', '/into/'], { remote: '/into/local.txt' }],
    [['-n', 'a', '/b'], { noClobber: true }],
  ] as const)('%j → %o', (argv, expected) => {
    expect(parsePutArgs([...argv], noEnv)).toMatchObject(expected);
  });

  it.each([
    [[], /missing LOCAL REMOTE/],
    [['a'], /missing REMOTE/],
    [['a', 'b', 'c'], /unexpected argument "c"/],
    [['-', '/dir/'], /must name a file/],
  ] as const)('%j is a usage error', (argv, message) => {
    expect(usage(() => parsePutArgs([...argv], noEnv))).toMatch(message);
  });
});

describe('ls, rm, mkdir, mv, pull, push', () => {
  it.each([
    [[], { remote: '/', long: false, json: false }],
    [['-l', '/etc'], { remote: '/etc', long: true }],
    [['--json', '/etc/'], { remote: '/etc/', json: true }],
  ] as const)('ls %j → %o', (argv, expected) => {
    expect(parseLsArgs([...argv], noEnv)).toMatchObject(expected);
  });

  it.each([
    [() => parseLsArgs(['/a', '/b'], noEnv), /unexpected argument/],
    [() => parseRmArgs([], noEnv), /missing REMOTE/],
    [() => parseMkdirArgs([], noEnv), /missing REMOTE/],
    [() => parseMvArgs(['/a'], noEnv), /missing TO/],
    [() => parseMvArgs(['/a', '/b', '/c'], noEnv), /unexpected argument/],
    [() => parsePullArgs(['/remote'], noEnv), /missing LOCAL_DIR/],
    [() => parsePushArgs([], noEnv), /missing LOCAL_DIR REMOTE_DIR/],
  ] as const)('usage error %#', (fn, message) => {
    expect(usage(fn)).toMatch(message);
  });

  it('rm -r, mkdir -p, mv -n, pull and push take their operands in order', () => {
    expect(parseRmArgs(['-r', '/a', '/b'], noEnv)).toMatchObject({ remotes: ['/a', '/b'], recursive: true });
    expect(parseRmArgs(['/a'], noEnv)).toMatchObject({ recursive: false });
    expect(parseMkdirArgs(['-p', '/a/b'], noEnv)).toMatchObject({ remotes: ['/a/b'] });
    expect(parseMvArgs(['-n', '/a', '/b'], noEnv)).toMatchObject({ from: '/a', to: '/b', noClobber: true });
    expect(parsePullArgs(['/r', 'l'], noEnv)).toMatchObject({ remote: '/r', local: 'l' });
    expect(parsePushArgs(['l', '/r'], noEnv)).toMatchObject({ remote: '/r', local: 'l' });
  });
});

describe('request (curl semantics)', () => {
  it.each([
    [['/health'], { method: 'GET', path: '/health', body: { kind: 'none' }, include: false, fail: false }],
    [['-i', '/health'], { include: true }],
    [['-I', '/health'], { method: 'HEAD', head: true }],
    [['-X', 'DELETE', '/files/x'], { method: 'DELETE' }],
    [
      ['-f', '-s', '-v', '/x'],
      { fail: true, verbose: true, common: expect.objectContaining({ silent: true }) },
    ],
    [['http://localhost/files/a?b=1'], { path: '/files/a?b=1' }],
    [
      ['-d', 'a=1', '-d', 'b=2', '/x'],
      {
        method: 'POST',
        body: {
          kind: 'data',
          parts: [
            { kind: 'text', text: 'a=1' },
            { kind: 'text', text: 'b=2' },
          ],
        },
      },
    ],
    [
      ['-d', '@form.txt', '/x'],
      { body: { kind: 'data', parts: [{ kind: 'file', file: 'form.txt', binary: false }] } },
    ],
    [
      ['--data-binary', '@blob', '/x'],
      { body: { kind: 'data', parts: [{ kind: 'file', file: 'blob', binary: true }] } },
    ],
    [
      ['--data-raw', '@not-a-file', '/x'],
      { body: { kind: 'data', parts: [{ kind: 'text', text: '@not-a-file' }] } },
    ],
    [['-X', 'PUT', '-d', 'x', '/x'], { method: 'PUT' }],
    [
      ['-T', 'up.bin', '/files/dir/'],
      { method: 'PUT', path: '/files/dir/up.bin', body: { kind: 'upload', file: 'up.bin' } },
    ],
    [['-T', '-', '/files/x'], { method: 'PUT', body: { kind: 'upload', file: '-' } }],
    [['-o', 'out', '/x'], { output: 'out' }],
    [
      ['-H', 'Accept: text/plain', '-H', 'X-Empty;', '-H', 'Content-Type:', '/x'],
      {
        headers: [
          ['Accept', 'text/plain'],
          ['X-Empty', ''],
          ['Content-Type', null],
        ],
      },
    ],
  ])('%j → %o', (argv, expected) => {
    expect(parseRequestArgs(argv, noEnv)).toMatchObject(expected);
  });

  it.each([
    [[], /missing PATH/],
    [['health'], /must start with '\/'/],
    [['/a', '/b'], /unexpected argument/],
    [['-d', 'x', '-T', 'f', '/x'], /not both/],
    [['-I', '-d', 'x', '/x'], /HEAD/],
    [['-H', 'no colon', '/x'], /Name: value/],
    [['-H', 'Bad Name: v', '/x'], /not a valid header name/],
    [['-X', 'GE T', '/x'], /not a valid method/],
    [['-d', '@', '/x'], /@ needs a file name/],
    [['--nope', '/x'], /^request: unknown option --nope \(see nullgate request --help\)$/],
  ] as const)('%j is a usage error', (argv, message) => {
    expect(usage(() => parseRequestArgs([...argv], noEnv))).toMatch(message);
  });
});

describe('remote paths and listings', () => {
  it.each([
    ['/etc/motd', '/files/etc/motd'],
    ['etc/motd', '/files/etc/motd'],
    ['/', '/files/'],
    ['/dir/', '/files/dir/'],
    ['/a b/c?d#e%', '/files/a%20b/c%3Fd%23e%25'],
    ['/ünï', '/files/%C3%BCn%C3%AF'],
  ])('%s → %s', (remote, url) => {
    expect(filesPath(remote)).toBe(url);
  });

  it('refuses a NUL byte', () => {
    expect(() => encodeRemotePath('/a\0b')).toThrow(/NUL/);
  });

  it.each([
    ['file', 0o644, '-rw-r--r--'],
    ['dir', 0o755, 'drwxr-xr-x'],
    ['symlink', 0o777, 'lrwxrwxrwx'],
    ['file', 0o4755, '-rwsr-xr-x'],
    ['dir', 0o1777, 'drwxrwxrwt'],
    ['file', 0o100644, '-rw-r--r--'],
  ])('mode %s %o → %s', (type, mode, text) => {
    expect(modeString(type, mode)).toBe(text);
  });

  it('plain listing marks directories with a trailing /; -l aligns numeric owners and sizes', () => {
    const entries = [
      { name: 'a.txt', type: 'file' as const, size: 3, mtime: 0, mode: 0o644, uid: 1234, gid: 0 },
      { name: 'sub', type: 'dir' as const, size: 4096, mtime: 0, mode: 0o755, uid: 0, gid: 2345 },
      { name: 'old', type: 'file' as const, size: 1, mtime: 0, mode: 0o600 },
    ];
    expect(formatListing(entries, false)).toBe('a.txt\nsub/\nold\n');
    const long = formatListing(entries, true).split('\n');
    expect(long[0]).toMatch(/^-rw-r--r-- 1234 {4}0 {4}3 \d{4}-\d\d-\d\d \d\d:\d\d a\.txt$/);
    expect(long[1]).toMatch(/^drwxr-xr-x {4}0 2345 4096 .* sub\/$/);
    // A server that sends no owner: '?'.
    expect(long[2]).toMatch(/^-rw------- {4}\? {4}\? {4}1 .* old$/);
  });
});
