#include "peer_root.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fd_guard.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // include/uapi/asm-generic/socket.h, Linux 6.5
#endif

namespace ng {
namespace {

int pidfd_open_(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int pidfd_send_signal_(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// The "Pid:" line of /proc/self/fdinfo/PIDFD: the pid in our /proc's namespace, 0 when the
// process is in a pid namespace we cannot see, -1 once it has exited (pidfd_open(2), proc(5)).
int pidfd_pid(int pidfd, pid_t* out) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
  FdGuard fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) return -errno;
  char buf[1024];
  ssize_t n;
  do n = ::read(fd.get(), buf, sizeof(buf) - 1);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  buf[n] = '\0';
  const char* line = std::strstr(buf, "\nPid:");
  if (line == nullptr) return -ENOTTY;  // not a pidfd, or a kernel without the line (< 5.4)
  long pid = std::strtol(line + 5, nullptr, 10);
  if (pid == -1) return -ESRCH;
  if (pid == 0) return -EREMOTE;
  *out = static_cast<pid_t>(pid);
  return 0;
}

int peer_pidfd(int sock_fd, bool* via_pidfd) {
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (::getsockopt(sock_fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0) {
    *via_pidfd = true;
    return pidfd;
  }
  if (errno != ENOPROTOOPT && errno != EINVAL) return -errno;
  ucred cred;
  len = sizeof(cred);
  if (::getsockopt(sock_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
  if (cred.pid <= 0) return -ESRCH;
  *via_pidfd = false;
  pidfd = pidfd_open_(cred.pid);
  return pidfd < 0 ? -errno : pidfd;
}

}  // namespace

int peer_root(int sock_fd, PeerRoot* out) {
  bool via_pidfd = false;
  int rc = peer_pidfd(sock_fd, &via_pidfd);
  if (rc < 0) return rc;
  FdGuard pidfd(rc);
  pid_t pid = 0;
  if ((rc = pidfd_pid(pidfd.get(), &pid)) < 0) return rc;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/root", static_cast<int>(pid));
  FdGuard root(::open(path, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.ok()) return errno == ENOENT ? -ESRCH : -errno;
  struct stat st;
  if (::fstat(root.get(), &st) < 0) return -errno;
  // Still the same process? Alive now means its pid was never free in between.
  if (pidfd_send_signal_(pidfd.get(), 0) < 0) return -errno;
  pid_t again = 0;
  if ((rc = pidfd_pid(pidfd.get(), &again)) < 0) return rc;
  if (again != pid) return -ESRCH;
  out->pid = pid;
  out->dev = static_cast<uint64_t>(st.st_dev);
  out->ino = static_cast<uint64_t>(st.st_ino);
  out->via_pidfd = via_pidfd;
  return 0;
}

}  // namespace ng
