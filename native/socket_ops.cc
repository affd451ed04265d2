#include "socket_ops.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>
#include <sched.h>

#include <cstddef>
#include <thread>

#include "fd_guard.h"

namespace ng {

namespace {

// Fills `addr` and returns the exact addrlen, or -EINVAL when the name does not fit.
int make_addr(const uint8_t* path, size_t len, sockaddr_un* addr) {
  if (len > sizeof(addr->sun_path)) return -ENAMETOOLONG;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (len > 0) memcpy(addr->sun_path, path, len);
  return static_cast<int>(offsetof(sockaddr_un, sun_path) + len);
}

}  // namespace

int sock_create() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return fd < 0 ? -errno : fd;
}

int sock_bind(int fd, const uint8_t* path, size_t len) {
  sockaddr_un addr;
  int addrlen = make_addr(path, len, &addr);
  if (addrlen < 0) return addrlen;
  // unix(7): an addrlen of sizeof(sa_family_t) requests autobind.
  if (len == 0) addrlen = sizeof(sa_family_t);
  return ::bind(fd, reinterpret_cast<sockaddr*>(&addr), static_cast<socklen_t>(addrlen)) < 0 ? -errno : 0;
}

int sock_listen(int fd, int backlog) { return ::listen(fd, backlog) < 0 ? -errno : 0; }

int sock_accept(int fd) {
  int rc;
  do {
    rc = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : rc;
}

int sock_connect(int fd, const uint8_t* path, size_t len) {
  if (len == 0) return -EINVAL;
  sockaddr_un addr;
  int addrlen = make_addr(path, len, &addr);
  if (addrlen < 0) return addrlen;
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), static_cast<socklen_t>(addrlen));
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : 0;
}

int sock_set_blocking(int fd, bool blocking, int64_t timeout_ms) {
  if (timeout_ms < 0) return -EINVAL;
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return -errno;
  if (blocking) {
    timeval tv;
    tv.tv_sec = static_cast<time_t>(timeout_ms / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout_ms % 1000) * 1000);
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) return -errno;
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) return -errno;
  }
  int wanted = blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK);
  if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) < 0) return -errno;
  return 0;
}

int sock_name(int fd, std::string* out) {
  sockaddr_un addr;
  socklen_t addrlen = sizeof(addr);
  memset(&addr, 0, sizeof(addr));
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addrlen) < 0) return -errno;
  if (addr.sun_family != AF_UNIX) return -EAFNOSUPPORT;
  size_t len = addrlen > offsetof(sockaddr_un, sun_path) ? addrlen - offsetof(sockaddr_un, sun_path) : 0;
  // Filesystem names come back NUL-terminated (and the kernel may count the terminator).
  if (len > 0 && addr.sun_path[0] != '\0') len = strnlen(addr.sun_path, len);
  out->assign(addr.sun_path, len);
  return 0;
}

int sock_peercred(int fd, PeerCred* out) {
  ucred cred;
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
  out->pid = cred.pid;
  out->uid = cred.uid;
  out->gid = cred.gid;
  return 0;
}

int sock_info(int fd, SockInfo* out) {
  socklen_t len = sizeof(int);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &out->domain, &len) < 0) return -errno;
  len = sizeof(int);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &out->type, &len) < 0) return -errno;
  len = sizeof(int);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &out->listening, &len) < 0) return -errno;
  return 0;
}

int fd_close(int fd) { return ::close(fd) < 0 ? -errno : 0; }

int fd_dup(int fd) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return copy < 0 ? -errno : copy;
}

int sock_listen_in_netns(const char* ns_path, const uint8_t* path, size_t len, int backlog, const char** failed) {
  int result = -EINVAL;
  const char* syscall_name = "setns";
  std::thread worker([&]() {
    FdGuard ns(::open(ns_path, O_RDONLY | O_CLOEXEC));
    if (!ns.ok()) {
      result = -errno;
      syscall_name = "open";
      return;
    }
    if (::setns(ns.get(), CLONE_NEWNET) < 0) {
      result = -errno;
      syscall_name = "setns";
      return;
    }
    FdGuard fd(sock_create());
    if (!fd.ok()) {
      result = fd.release();
      syscall_name = "socket";
      return;
    }
    int rc = sock_bind(fd.get(), path, len);
    if (rc < 0) {
      result = rc;
      syscall_name = "bind";
      return;
    }
    rc = sock_listen(fd.get(), backlog);
    if (rc < 0) {
      result = rc;
      syscall_name = "listen";
      return;
    }
    result = fd.release();
  });
  worker.join();
  *failed = syscall_name;
  return result;
}

int dgram_send(const uint8_t* path, size_t len, const uint8_t* data, size_t data_len) {
  sockaddr_un addr;
  int addrlen = make_addr(path, len, &addr);
  if (addrlen < 0) return addrlen;
  FdGuard fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.ok()) return -errno;
  ssize_t n;
  do {
    n = ::sendto(fd.get(), data, data_len, MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
                 static_cast<socklen_t>(addrlen));
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n);
}

}  // namespace ng
