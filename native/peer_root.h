// Which root directory the process on the other end of a unix socket sees (for --export: one
// server, many chroots). Plain C++, no Napi: 0 or -errno, closes everything it opened.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace ng {

struct PeerRoot {
  pid_t pid;         // the peer as this process's /proc sees it
  uint64_t dev;      // st_dev and st_ino of the peer's root directory (/proc/PID/root)
  uint64_t ino;
  bool via_pidfd;    // SO_PEERPIDFD (race-free) or SO_PEERCRED's pid (kernels before 6.5)
};

// The root directory of the process that connected `sock_fd`, found race-free:
//   1. a pidfd for the peer: SO_PEERPIDFD (Linux 6.5+), the very process that connected; on older
//      kernels pidfd_open(SO_PEERCRED's pid), which is racy in theory: the peer may have exited
//      and its pid been reused before the pidfd is opened;
//   2. its pid as this process's /proc sees it, from /proc/self/fdinfo/PIDFD (the pid number
//      SO_PEERCRED gives can be another namespace's view; -EREMOTE when the peer's pid namespace is
//      not visible from ours, -ESRCH when it has exited);
//   3. open /proc/PID/root, fstat it;
//   4. confirm through the pidfd that the process is still alive (pidfd_send_signal 0) and still
//      has that pid: a pid is never reused while its process lives, so the root opened in 3 was
//      the peer's and not a newcomer's with a recycled pid (systemd's pidref_verify does the same).
// Synchronous on purpose: procfs answers from memory, never from a disk.
int peer_root(int sock_fd, PeerRoot* out);

}  // namespace ng
