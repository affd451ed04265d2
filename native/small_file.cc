#include "small_file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "fd_guard.h"

namespace ng {

#ifndef RESOLVE_CACHED
#define RESOLVE_CACHED 0x20
#endif

long fs_read_small_cached(int dir, const std::string& rel, char* buf, size_t max, StatResult* st) {
  // A NUL inside would silently shorten the C path: refuse it (the JS layer does too).
  if (rel.find('\0') != std::string::npos) return -EINVAL;
  open_how how;
  memset(&how, 0, sizeof(how));
  // O_NONBLOCK: a FIFO (or a device) must not block the JS thread waiting for a writer;
  // O_NOCTTY: a terminal device must not become the server's controlling terminal.
  how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_CACHED;
  const char* path = rel.empty() ? "." : rel.c_str();
  long rc = syscall(SYS_openat2, dir, path, &how, sizeof(how));
  if (rc < 0) return -errno;
  FdGuard fd(static_cast<int>(rc));
  struct stat s;
  if (fstat(fd.get(), &s) < 0) return -errno;
  fill_stat(s, st);
  if (S_ISDIR(s.st_mode)) return -EISDIR;
  if (!S_ISREG(s.st_mode)) return -ENXIO;
  if (static_cast<size_t>(s.st_size) > max) return -EFBIG;
  const size_t size = static_cast<size_t>(s.st_size);
  size_t got = 0;
  while (got < size) {
    iovec iov{buf + got, size - got};
    ssize_t n = preadv2(fd.get(), &iov, 1, static_cast<off_t>(got), RWF_NOWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      // EOPNOTSUPP: the file system has no RWF_NOWAIT; the pool path reads it instead.
      return errno == EOPNOTSUPP ? -EAGAIN : -errno;
    }
    // A short read under RWF_NOWAIT means "the rest is not cached" (or the file shrank): retry on the pool.
    if (n == 0) return -EAGAIN;
    got += static_cast<size_t>(n);
  }
  return static_cast<long>(got);
}

long fs_stat_at(int dir, const char* rel, size_t length, StatResult* st) {
  if (memchr(rel, '\0', length) != nullptr) return -EINVAL;
  struct stat s;
  if (fstatat(dir, length == 0 ? "." : rel, &s, AT_NO_AUTOMOUNT) < 0) return -errno;
  fill_stat(s, st);
  return 0;
}

}  // namespace ng
