/**
 * PUT's metadata headers applied under the rule of who may set what (core/set-rule.ts), on a
 * real file: the peer's identity decides, so each case calls applyOwnerAndMode as the route does.
 */
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect } from 'vitest';
import { applyOwnerAndMode, uploadMeta } from '../../routes/file-meta.js';
import { itNeeds } from '../helpers/requirements.js';

describe('PUT metadata under the rule of who may set what', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ng-upload-meta-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const cases: [string, { uid: number; gid: number }, Record<string, string>, number, [number, number]][] = [
    [
      'root peer: owner and set-id bits as given',
      { uid: 0, gid: 0 },
      { mode: '6755', uid: '1234', gid: '2345' },
      0o6755,
      [1234, 2345],
    ],
    [
      'non-root peer: set-id dropped, the owner is the peer',
      { uid: 1000, gid: 1001 },
      { mode: '6755', uid: '0', gid: '0' },
      0o755,
      [1000, 1001],
    ],
    [
      'non-root peer without owner headers: the server keeps it',
      { uid: 1000, gid: 1001 },
      { mode: '1777' },
      0o1777,
      [0, 0],
    ],
    ['no headers: nothing changes', { uid: 1000, gid: 1001 }, {}, 0o600, [0, 0]],
  ];
  let n = 0;
  for (const [name, peer, given, mode, owner] of cases) {
    itNeeds(['root'], `a root server: ${name}`, async () => {
      const file = join(dir, `f${n++}`);
      const fd = openSync(file, 'wx', 0o600);
      try {
        const headers = Object.fromEntries(Object.entries(given).map(([k, v]) => [`x-nullgate-${k}`, v]));
        await applyOwnerAndMode(fd, uploadMeta(headers), peer);
      } finally {
        closeSync(fd);
      }
      const st = statSync(file);
      expect(st.mode & 0o7777).toBe(mode);
      expect([st.uid, st.gid]).toEqual(owner);
    });
  }
});
