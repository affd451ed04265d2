/**
 * A tree with every kind of entry a rootfs has (issue 12): owners 1234:2345 and 0:0, modes
 * 4755, 2755, 1777, 0600 and 0000, nanosecond mtimes, a hard-link pair, absolute, leading-out and
 * dangling symlinks, names that are not UTF-8, user.* and security.capability attributes, a sparse file (1 GiB with
 * 64 KiB of data), a FIFO, a character device and a socket. Needs root, setcap and setfattr.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

function run(cmd: string, ...args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Sets the mtime of `path` itself (not through a symlink), with nanoseconds. */
function touch(path: string, when: string): void {
  run('touch', '-h', '-d', when, path);
}

export async function makeFixtureTree(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const at = (rel: string): string => join(dir, rel);
  mkdirSync(at('usr/bin'), { recursive: true });
  mkdirSync(at('etc'));
  mkdirSync(at('tmp'));
  mkdirSync(at('home/user'), { recursive: true });
  mkdirSync(at('dev'));

  writeFileSync(at('usr/bin/suid'), '#!/bin/sh\necho suid\n');
  run('chmod', '4755', at('usr/bin/suid'));
  writeFileSync(at('usr/bin/sgid'), '#!/bin/sh\necho sgid\n');
  run('chown', '0:2345', at('usr/bin/sgid'));
  run('chmod', '2755', at('usr/bin/sgid'));
  writeFileSync(at('usr/bin/ping'), 'ping binary\n');
  run('chmod', '0755', at('usr/bin/ping'));
  run('setcap', 'cap_net_raw+ep', at('usr/bin/ping'));
  run('chmod', '1777', at('tmp'));
  writeFileSync(at('home/user/secret'), 'secret\n');
  run('chown', '-h', '1234:2345', at('home/user/secret'));
  run('chmod', '0600', at('home/user/secret'));
  writeFileSync(at('home/user/nothing'), 'no permissions at all\n');
  run('chmod', '0000', at('home/user/nothing'));
  run('chown', '1234:2345', at('home/user'));
  run('setfattr', '-n', 'user.note', '-v', '0x00ff0a3d', at('home/user/secret'));
  run('setfattr', '-n', 'user.dir', '-v', 'a directory attribute', at('home/user'));

  writeFileSync(at('etc/hosts'), '127.0.0.1 localhost\n');
  // A name that is not UTF-8 (Latin-1 "café"), and a directory of that kind with a file in it.
  writeFileSync(Buffer.from(`${dir}/etc/caf\xe9`, 'latin1'), 'latin-1 name\n');
  mkdirSync(Buffer.from(`${dir}/etc/d\xefr`, 'latin1'));
  writeFileSync(Buffer.from(`${dir}/etc/d\xefr/inside`, 'latin1'), 'beneath a latin-1 name\n');
  linkSync(at('etc/hosts'), at('etc/hosts.hardlink'));
  symlinkSync('/usr/share/zoneinfo/UTC', at('etc/localtime'));
  symlinkSync('../../../outside/secret', at('etc/out'));
  symlinkSync('no/such/target', at('etc/dangling'));
  run('chown', '-h', '1234:2345', at('etc/dangling'));

  const fd = openSync(at('disk.img'), 'w');
  try {
    writeSync(fd, Buffer.alloc(32 * 1024, 0x61), 0, 32 * 1024, 0);
    writeSync(fd, Buffer.alloc(32 * 1024, 0x62), 0, 32 * 1024, 512 * 1024 * 1024);
    ftruncateSync(fd, 1024 * 1024 * 1024);
  } finally {
    closeSync(fd);
  }

  run('mkfifo', '-m', '0640', at('dev/fifo'));
  run('mknod', '-m', '0666', at('dev/null'), 'c', '1', '3');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(at('dev/socket'), resolve));
  // Closing the listener may unlink the socket file: keep it by a second name meanwhile.
  linkSync(at('dev/socket'), at('dev/socket.kept'));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (existsSync(at('dev/socket'))) unlinkSync(at('dev/socket.kept'));
  else renameSync(at('dev/socket.kept'), at('dev/socket'));

  // Times last, deepest first: creating entries changed their directories' mtimes.
  const times: [string, string][] = [
    ['usr/bin/suid', '2021-06-01 12:00:00.123456789Z'],
    ['usr/bin/sgid', '2020-01-02 03:04:05.5Z'],
    ['usr/bin/ping', '2019-05-05 05:05:05.000000001Z'],
    ['home/user/secret', '2022-02-22 22:22:22.222222222Z'],
    ['home/user/nothing', '2022-02-22 22:22:23Z'],
    ['etc/hosts', '2018-08-08 08:08:08.808080808Z'],
    ['etc/localtime', '2017-07-07 07:07:07.7Z'],
    ['etc/out', '2017-07-07 07:07:08Z'],
    ['etc/dangling', '2017-07-07 07:07:09Z'],
    ['disk.img', '2016-06-06 06:06:06.060606060Z'],
    ['dev/fifo', '2015-05-05 05:05:05.5Z'],
    ['dev/null', '2015-05-05 05:05:06Z'],
    ['usr/bin', '2014-04-04 04:04:04.4Z'],
    ['usr', '2014-04-04 04:04:05Z'],
    ['home/user', '2013-03-03 03:03:03.3Z'],
    ['home', '2013-03-03 03:03:04Z'],
    ['etc', '2012-02-02 02:02:02.2Z'],
    ['tmp', '2012-02-02 02:02:03Z'],
    ['dev', '2011-01-01 01:01:01.1Z'],
  ];
  for (const [rel, when] of times) touch(at(rel), when);
}
