import { describe, expect, it } from 'vitest';

import { mayRetouch, modeUnder, ownerUnder, setRule, xattrAllowed } from '../../core/set-rule.js';

const root = { uid: 0, gid: 0 };
const server = { uid: 1000, gid: 1000 };
const peer = { uid: 1234, gid: 2345 };
const archive = { uid: 0, gid: 0 };

describe('setRule: who may set what (CONTRACT.md "Who may set what")', () => {
  it.each([
    // writer, peer, owner given, set-id kept, xattrs, devices
    ['root server, root peer', root, root, archive, true, 'all', true],
    ['root server, non-root peer', root, peer, peer, false, 'user', false],
    ['root server, peer unknown', root, undefined, undefined, false, 'user', false],
    ['non-root server, root peer', server, root, undefined, false, 'user', false],
    ['non-root server, its own uid', server, server, undefined, false, 'user', false],
    ['non-root server, another peer', server, peer, undefined, false, 'user', false],
    ['pull as root', root, root, archive, true, 'all', true],
    ['pull as a user', peer, peer, undefined, false, 'user', false],
  ] as const)('%s', (_name, writer, who, owner, setId, xattrs, devices) => {
    const rule = setRule(writer, who);
    expect(ownerUnder(rule, archive)).toEqual(owner);
    expect(rule.setId).toBe(setId);
    expect(rule.xattrs).toBe(xattrs);
    expect(rule.devices).toBe(devices);
  });

  it.each([
    [true, 0o4755, 0o4755],
    [true, 0o2755, 0o2755],
    [true, 0o1777, 0o1777],
    [true, 0o100600, 0o600],
    [false, 0o4755, 0o755],
    [false, 0o2755, 0o755],
    [false, 0o6777, 0o777],
    [false, 0o1777, 0o1777],
    [false, 0o0666, 0o666],
    [false, 0o0000, 0o000],
  ])('modeUnder(setId %s, %o) = %o', (setId, mode, expected) => {
    const rule = setRule(root, setId ? root : peer);
    expect(modeUnder(rule, mode)).toBe(expected);
  });

  it.each([
    ['user.comment', true, true],
    ['security.capability', true, false],
    ['system.posix_acl_access', true, false],
    ['trusted.overlay.opaque', true, false],
    ['security.selinux', true, false],
    ['user', true, false],
  ])('xattr %s: root %s, others %s', (name, forRoot, forOthers) => {
    expect(xattrAllowed(setRule(root, root), name)).toBe(forRoot);
    expect(xattrAllowed(setRule(root, peer), name)).toBe(forOthers);
    expect(xattrAllowed(setRule(server, server), name)).toBe(forOthers);
  });

  it.each([
    ['root for root, a dir of anyone', root, root, 4321, true],
    ["root for a peer, the peer's dir", root, peer, 1234, true],
    ["root for a peer, root's dir", root, peer, 0, false],
    ['non-root server, its own dir', server, peer, 1000, true],
    ['non-root server, a dir of the peer', server, peer, 1234, false],
  ] as const)('mayRetouch: %s', (_name, writer, who, existing, expected) => {
    expect(mayRetouch(setRule(writer, who), writer, existing)).toBe(expected);
  });
});
