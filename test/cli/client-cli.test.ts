/**
 * The CLI's pure parts around the client verbs: the usage text (per dispatcher, in step with
 * docs/cli.md), client errors → curl exit codes and one-line messages, the socket hint.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAddress } from '../../core/address.js';
import { clientCommands } from '../../cli/client-commands.js';
import { ExitCode, exitCodeOf } from '../../cli/exit.js';
import { type CommandTable, SYNOPSIS, usage } from '../../cli/run.js';
import { describeFailure, socketHint } from '../../client/verbs/common.js';
import {
  ClientError,
  LocalFileError,
  PartialTransferError,
  responseError,
  writeError,
} from '../../client/client-error.js';
import { ngError } from '../../core/errors.js';
import { runCli } from '../helpers/cli.js';

const none = (): Promise<never> => Promise.reject(new Error('not loaded in this test'));
const everything: CommandTable = { serve: none, 'install-client': none, ...clientCommands };

describe('usage', () => {
  it('docs/cli.md opens with the same synopsis', () => {
    const docs = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    const block = /```\n(nullgate [\s\S]*?)\n```/.exec(docs)?.[1];
    expect(block).toBe(SYNOPSIS.map((entry) => entry.text).join('\n'));
  });

  it('the full CLI lists every verb; the bundle (client verbs only) no serve or install-client', () => {
    const full = usage(everything);
    for (const verb of [
      'serve',
      'install-client',
      'get',
      'put',
      'ls',
      'rm',
      'mkdir',
      'mv',
      'pull',
      'request',
    ]) {
      expect(full).toContain(`nullgate ${verb} `);
    }
    const bundle = usage(clientCommands);
    expect(bundle).not.toMatch(/nullgate serve|install-client/);
    expect(bundle).toContain('nullgate get REMOTE');
    expect(bundle).toContain('nullgate request [-X METHOD]');
  });

  it('every verb a dispatcher has is in its synopsis', () => {
    const documented = new Set(SYNOPSIS.flatMap((entry) => entry.verbs));
    expect(Object.keys(everything).filter((verb) => !documented.has(verb))).toEqual([]);
  });
});

describe('client errors → exit codes and messages', () => {
  const context = 'GET /files/x on @s';

  it('the context appears once, also when the message already carries it', () => {
    const err = ngError('NG_ERR_HTTP', `${context}: 206 for a range that does not start at 4`);
    expect(describeFailure(err, context)).toBe(`${context}: 206 for a range that does not start at 4`);
    const bare = ngError('NG_ERR_ARCHIVE_UNSAFE', 'refusing archive entry "a": absolute path');
    expect(describeFailure(bare, context)).toBe(`${context}: refusing archive entry "a": absolute path`);
  });

  it.each([
    [
      new ClientError({
        statusCode: 404,
        code: 'NG_ERR_NOT_FOUND',
        method: 'GET',
        path: '/files/x',
        socket: '@s',
        serverMessage: 'no such file: /x',
      }),
      ExitCode.HTTP,
    ],
    [
      new LocalFileError('write', 'out.bin', Object.assign(new Error('x'), { code: 'ENOSPC' })),
      ExitCode.WRITE,
    ],
    [new LocalFileError('read', 'in.bin', Object.assign(new Error('x'), { code: 'ENOENT' })), ExitCode.READ],
    [
      new PartialTransferError(
        10,
        100,
        Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
      ),
      18,
    ],
    [ngError('NG_ERR_NO_SERVER', 'no server on @s'), ExitCode.CONNECT],
  ])('%s → exit %i', (err, exit) => {
    expect(exitCodeOf(err)).toBe(exit);
  });

  it('a cut transfer is curl 18 (CURLE_PARTIAL_FILE) and says how much arrived', () => {
    const cut = new PartialTransferError(
      1000,
      5000,
      Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
    );
    expect(ExitCode.PARTIAL).toBe(18);
    expect(cut.code).toBe('UND_ERR_SOCKET');
    expect(describeFailure(cut, context)).toBe(
      `${context}: transfer cut short after 1000 of 5000 bytes: other side closed`,
    );
  });

  it('write errors name the file the user gave, in words; a missing directory says so', () => {
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/nope-dir/.a.x.part'"), {
      code: 'ENOENT',
      errno: -2,
      syscall: 'open',
    });
    expect(writeError('/nope-dir-4c1f/app.conf', enoent).message).toBe(
      'cannot write /nope-dir-4c1f/app.conf: directory /nope-dir-4c1f does not exist',
    );
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      errno: -28,
      syscall: 'write',
    });
    expect(writeError('/dev/full', enospc).message).toBe('cannot write /dev/full: no space left on device');
    expect(writeError('/dev/full', enospc).code).toBe('ENOSPC');
  });

  it.each([
    [404, 'NG_ERR_NOT_FOUND'],
    [403, 'NG_ERR_FORBIDDEN'],
    [409, 'NG_ERR_CONFLICT'],
    [416, 'NG_ERR_RANGE_NOT_SATISFIABLE'],
    [418, 'NG_ERR_HTTP'],
  ])('a HEAD answer %i (no body to carry a code) maps to %s', async (statusCode, code) => {
    let dumped = false;
    const res = { statusCode, headers: {}, body: { dump: () => ((dumped = true), Promise.resolve()) } };
    const err = await responseError(res as never, 'HEAD', '/files/x', '@s');
    expect(err).toMatchObject({ statusCode, code, method: 'HEAD' });
    expect(dumped).toBe(true);
  });
});

describe('socket hint', () => {
  it.each([
    ['ng-no-such-name-7f3a', 'did you mean @ng-no-such-name-7f3a?'],
    ['./ng-no-such-name-7f3a', undefined],
    ['/run/x.sock', undefined],
    ['@name', undefined],
  ])('%s → %s', (text, hint) => {
    expect(socketHint(parseAddress(text))).toBe(hint);
  });

  it('a directory or a file of that name keeps the hint; only a socket file there drops it', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'ng-hint-'));
    const server = net.createServer();
    try {
      mkdirSync(path.join(cwd, 'exchange'));
      writeFileSync(path.join(cwd, 'notes'), 'x');
      await new Promise<void>((resolve) => server.listen(path.join(cwd, 'sock'), resolve));
      // The README's layout: /srv/exchange beside the @exchange socket, run from /srv.
      const r = await runCli(['ls', '--socket', 'exchange'], { cwd });
      expect(r.code).toBe(ExitCode.CONNECT);
      expect(r.stderr).toMatch(/no server on exchange.*\(did you mean @exchange\?\)\n$/);
      expect(socketHint(parseAddress('exchange'), cwd)).toBe('did you mean @exchange?');
      expect(socketHint(parseAddress('notes'), cwd)).toBe('did you mean @notes?');
      expect(socketHint(parseAddress('sock'), cwd)).toBeUndefined();
    } finally {
      await new Promise((resolve) => server.close(resolve));
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
