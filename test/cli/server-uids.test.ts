/** `--server-uid N` (repeatable) and `NULLGATE_SERVER_UID`: what parses, and what is a usage error. */
import { describe, expect, it } from 'vitest';
import { ExitCode, exitCodeOf } from '../../cli/exit.js';
import { parseServerUids } from '../../client/verbs/server-uids.js';

describe('server uids', () => {
  it.each([
    [undefined, {}, []],
    [[], {}, []],
    [['1000'], {}, [1000]],
    [['1000', '0', '4294967294'], {}, [1000, 0, 4294967294]],
    [undefined, { NULLGATE_SERVER_UID: '1000' }, [1000]],
    [undefined, { NULLGATE_SERVER_UID: '1000, 1001,65534' }, [1000, 1001, 65534]],
    [undefined, { NULLGATE_SERVER_UID: '' }, []],
    // The flags replace the variable, as --socket replaces NULLGATE_SOCKET.
    [['7'], { NULLGATE_SERVER_UID: '1000' }, [7]],
  ] as const)('%j with env %j → %j', (flags, env, uids) => {
    expect(parseServerUids(flags as string[] | undefined, env)).toEqual(uids);
  });

  it.each([
    [['bob'], {}, /--server-uid takes a numeric uid \(0-4294967294\), got "bob"/],
    [['-1'], {}, /--server-uid .* got "-1"/],
    [['4294967295'], {}, /got "4294967295"/],
    [['1e3'], {}, /got "1e3"/],
    [[''], {}, /got ""/],
    [
      undefined,
      { NULLGATE_SERVER_UID: '1000;1001' },
      /NULLGATE_SERVER_UID takes a numeric uid .* got "1000;1001"/,
    ],
    [undefined, { NULLGATE_SERVER_UID: '1000,' }, /NULLGATE_SERVER_UID .* got ""/],
  ] as const)('%j with env %j is a usage error', (flags, env, message) => {
    let caught: unknown;
    try {
      parseServerUids(flags as string[] | undefined, env);
    } catch (err) {
      caught = err;
    }
    expect(exitCodeOf(caught)).toBe(ExitCode.USAGE);
    expect((caught as Error).message).toMatch(message);
  });
});
