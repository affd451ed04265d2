import { describe, expect, it } from 'vitest';
import { createPeerPolicy, OVERFLOW_ID, type PeerPolicyOptions } from '../../gateway/peer-policy.js';

const peer = (uid: number, gid = uid) => ({ pid: 1, uid, gid });

describe('createPeerPolicy (CONTRACT.md "Peer policy")', () => {
  it.each<[string, PeerPolicyOptions, number, number, boolean]>([
    ['root is allowed by default', { serverUid: 1000 }, 0, 0, true],
    ["the server's own uid is allowed", { serverUid: 1000 }, 1000, 1000, true],
    ['another uid is denied', { serverUid: 1000 }, 1001, 1001, false],
    ['--allow-uid adds a uid', { serverUid: 1000, allowUids: [1001] }, 1001, 5, true],
    ['--allow-gid adds a gid', { serverUid: 1000, allowGids: [50] }, 1002, 50, true],
    ['a gid not listed is denied', { serverUid: 1000, allowGids: [50] }, 1002, 51, false],
    ['--allow-any-peer allows anyone', { serverUid: 1000, allowAnyPeer: true }, 4242, 4242, true],
    ['the overflow uid is denied by default', { serverUid: 0 }, OVERFLOW_ID, OVERFLOW_ID, false],
    ['the overflow uid is denied even with --allow-any-peer', { allowAnyPeer: true }, OVERFLOW_ID, 0, false],
    ['the overflow uid is denied even with its gid allowed', { allowGids: [100] }, OVERFLOW_ID, 100, false],
    ['a server running as nobody does not allow nobody', { serverUid: OVERFLOW_ID }, OVERFLOW_ID, 1, false],
  ])('%s', (_name, options, uid, gid, allowed) => {
    expect(createPeerPolicy(options).allows(peer(uid, gid))).toBe(allowed);
  });

  it.each<[PeerPolicyOptions, RegExp]>([
    [{ allowUids: [OVERFLOW_ID] }, /--allow-uid 65534 .* can never be allowed/],
    [{ allowGids: [OVERFLOW_ID] }, /--allow-gid 65534/],
    [{ allowUids: [-1] }, /non-negative integer/],
    [{ allowUids: [1.5] }, /non-negative integer/],
  ])('refuses %j', (options, message) => {
    expect(() => createPeerPolicy(options)).toThrow(message);
  });
});
