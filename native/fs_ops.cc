#include "fs_ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "fd_guard.h"

namespace ng {

const char kTmpPrefix[] = ".nullgate-tmp-";

namespace {

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;

// A NUL inside a std::string would silently cut the C path short: refuse it.
bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

// glibc 2.36 has no openat2() wrapper. openat2(2) EAGAIN: with RESOLVE_BENEATH the kernel could
// not rule out a ".." escape because of a concurrent rename; the caller may retry.
int openat2_beneath(int dir, const char* path, uint64_t flags, uint64_t mode) {
  open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = flags | O_CLOEXEC;
  // openat2 rejects a non-zero mode unless the call may create a file.
  if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) how.mode = mode;
  how.resolve = kResolve;
  for (int attempt = 0;; attempt++) {
    long fd = syscall(SYS_openat2, dir, path, &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EINTR || (errno == EAGAIN && attempt < 8)) continue;
    return -errno;
  }
}

bool valid_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         !has_nul(name);
}

// Opens the parent of `rel` beneath `dir` (O_PATH | O_DIRECTORY) into `parent` and stores the
// final component in `name`. The final component must be a plain name.
int open_parent(int dir, const std::string& rel, FdGuard* parent, std::string* name) {
  if (has_nul(rel)) return -EINVAL;
  size_t slash = rel.rfind('/');
  std::string dir_part = slash == std::string::npos ? "." : rel.substr(0, slash);
  *name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  if (!valid_name(*name)) return -EINVAL;
  // "/x": an absolute parent; RESOLVE_BENEATH answers EXDEV, as for any other escape.
  if (dir_part.empty()) dir_part = "/";
  int fd = openat2_beneath(dir, dir_part.c_str(), O_PATH | O_DIRECTORY, 0);
  if (fd < 0) return fd;
  parent->reset(fd);
  return 0;
}

int random_tmp_name(std::string* out) {
  unsigned char bytes[8];
  ssize_t n = getrandom(bytes, sizeof(bytes), 0);
  if (n != static_cast<ssize_t>(sizeof(bytes))) return n < 0 ? -errno : -EIO;
  static const char hex[] = "0123456789abcdef";
  *out = kTmpPrefix;
  for (unsigned char b : bytes) {
    out->push_back(hex[b >> 4]);
    out->push_back(hex[b & 15]);
  }
  return 0;
}

// linkat(2) AT_EMPTY_PATH gives the file a name without any path lookup, but kernels before 6.10
// require CAP_DAC_READ_SEARCH for it (ENOENT otherwise); the /proc/self/fd route (open(2),
// "O_TMPFILE") works for anyone while /proc is mounted. The magic link names our own fd, so
// following it cannot reach anything else; the new name is placed beneath by `parent`.
int link_fd(int fd, int parent, const char* name) {
  if (::linkat(fd, "", parent, name, AT_EMPTY_PATH) == 0) return 0;
  if (errno != ENOENT && errno != EPERM) return -errno;
  char proc[64];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  return ::linkat(AT_FDCWD, proc, parent, name, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}

}  // namespace

void fill_stat(const struct stat& st, StatResult* out) {
  out->dev = st.st_dev;
  out->ino = st.st_ino;
  out->mode = st.st_mode;
  out->nlink = st.st_nlink;
  out->uid = st.st_uid;
  out->gid = st.st_gid;
  out->size = st.st_size;
  out->mtime_sec = st.st_mtim.tv_sec;
  out->mtime_nsec = st.st_mtim.tv_nsec;
  out->atime_sec = st.st_atim.tv_sec;
  out->atime_nsec = st.st_atim.tv_nsec;
  out->ctime_sec = st.st_ctim.tv_sec;
  out->ctime_nsec = st.st_ctim.tv_nsec;
  out->rdev = st.st_rdev;
  out->rdev_major = major(st.st_rdev);
  out->rdev_minor = minor(st.st_rdev);
  out->blocks = st.st_blocks;
}

int fs_open_beneath(int dir, const std::string& rel, int flags, mode_t mode) {
  if (has_nul(rel)) return -EINVAL;
  const char* path = rel.empty() ? "." : rel.c_str();
  uint64_t how_flags = static_cast<unsigned>(flags);
  // openat2 is strict where open(2) is lenient: with O_PATH any other flag is EINVAL.
  if (!(how_flags & O_PATH)) how_flags |= O_NOCTTY;
  return openat2_beneath(dir, path, how_flags, mode);
}

int fs_open_root(const std::string& path) {
  if (path.empty() || has_nul(path)) return -EINVAL;
  int fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

int fs_stat_beneath(int dir, const std::string& rel, bool follow, StatResult* out) {
  struct stat st;
  if (rel.empty()) {
    if (::fstat(dir, &st) < 0) return -errno;
    fill_stat(st, out);
    return 0;
  }
  if (has_nul(rel)) return -EINVAL;
  int fd = openat2_beneath(dir, rel.c_str(), O_PATH | (follow ? 0 : O_NOFOLLOW), 0);
  if (fd < 0) return fd;
  FdGuard guard(fd);
  if (::fstat(guard.get(), &st) < 0) return -errno;
  fill_stat(st, out);
  return 0;
}

int fs_mkdir_beneath(int dir, const std::string& rel, mode_t mode) {
  FdGuard parent;
  std::string name;
  int rc = open_parent(dir, rel, &parent, &name);
  if (rc < 0) return rc;
  return ::mkdirat(parent.get(), name.c_str(), mode) < 0 ? -errno : 0;
}

int fs_unlink_beneath(int dir, const std::string& rel, bool remove_dir) {
  FdGuard parent;
  std::string name;
  int rc = open_parent(dir, rel, &parent, &name);
  if (rc < 0) return rc;
  return ::unlinkat(parent.get(), name.c_str(), remove_dir ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
}

int fs_rename_beneath(int dir, const std::string& from, const std::string& to, unsigned flags) {
  if (flags != 0 && flags != RENAME_NOREPLACE && flags != RENAME_EXCHANGE) return -EINVAL;
  FdGuard from_parent, to_parent;
  std::string from_name, to_name;
  int rc = open_parent(dir, from, &from_parent, &from_name);
  if (rc < 0) return rc;
  rc = open_parent(dir, to, &to_parent, &to_name);
  if (rc < 0) return rc;
  return ::renameat2(from_parent.get(), from_name.c_str(), to_parent.get(), to_name.c_str(), flags) < 0
             ? -errno
             : 0;
}

int fs_readlink_beneath(int dir, const std::string& rel, std::string* out) {
  if (rel.empty() || has_nul(rel)) return -EINVAL;
  int fd = openat2_beneath(dir, rel.c_str(), O_PATH | O_NOFOLLOW, 0);
  if (fd < 0) return fd;
  FdGuard guard(fd);
  // readlinkat(2): an empty path with an O_PATH fd reads the link the fd refers to.
  for (size_t size = 4096; size <= 65536; size *= 4) {
    out->resize(size);
    ssize_t n = ::readlinkat(guard.get(), "", &(*out)[0], size);
    if (n < 0) return -errno;
    if (static_cast<size_t>(n) < size) {
      out->resize(static_cast<size_t>(n));
      return static_cast<int>(n);
    }
  }
  return -ENAMETOOLONG;
}

int fs_link_tmpfile(int fd, int dir, const std::string& rel, bool replace) {
  FdGuard parent;
  std::string name;
  int rc = open_parent(dir, rel, &parent, &name);
  if (rc < 0) return rc;
  if (!replace) return link_fd(fd, parent.get(), name.c_str());
  // A SIGKILL between the link and the rename leaves the hidden name behind: at the root it is
  // found by the startup sweep without walking the tree.
  int tmp_dir = dir;
  std::string tmp;
  for (int attempt = 0;; attempt++) {
    rc = random_tmp_name(&tmp);
    if (rc < 0) return rc;
    rc = link_fd(fd, tmp_dir, tmp.c_str());
    if (rc == -EXDEV && tmp_dir == dir) {
      tmp_dir = parent.get();
      rc = link_fd(fd, tmp_dir, tmp.c_str());
    }
    if (rc == 0) break;
    if (rc != -EEXIST || attempt >= 4) return rc;
  }
  if (::renameat2(tmp_dir, tmp.c_str(), parent.get(), name.c_str(), 0) < 0) {
    int err = errno;
    ::unlinkat(tmp_dir, tmp.c_str(), 0);
    return -err;
  }
  return 0;
}

int fs_symlink_beneath(int dir, const std::string& target, const std::string& rel) {
  if (target.empty() || has_nul(target)) return -EINVAL;
  FdGuard parent;
  std::string name;
  int rc = open_parent(dir, rel, &parent, &name);
  if (rc < 0) return rc;
  return ::symlinkat(target.c_str(), parent.get(), name.c_str()) < 0 ? -errno : 0;
}

int fs_lutimes_beneath(int dir, const std::string& rel, int64_t atime_sec, int64_t atime_nsec,
                       int64_t mtime_sec, int64_t mtime_nsec) {
  if ((atime_nsec != UTIME_OMIT && (atime_nsec < 0 || atime_nsec > 999999999)) || mtime_nsec < 0 ||
      mtime_nsec > 999999999)
    return -EINVAL;
  struct timespec times[2];
  times[0].tv_sec = static_cast<time_t>(atime_sec);
  times[0].tv_nsec = static_cast<long>(atime_nsec);
  times[1].tv_sec = static_cast<time_t>(mtime_sec);
  times[1].tv_nsec = static_cast<long>(mtime_nsec);
  // '' is the root directory itself: "." beneath its fd (utimensat takes no AT_EMPTY_PATH).
  if (rel.empty()) return ::utimensat(dir, ".", times, 0) < 0 ? -errno : 0;
  FdGuard parent;
  std::string name;
  int rc = open_parent(dir, rel, &parent, &name);
  if (rc < 0) return rc;
  return ::utimensat(parent.get(), name.c_str(), times, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

int fs_mount_id_beneath(int dir, const std::string& rel, uint64_t* out) {
  if (has_nul(rel)) return -EINVAL;
  FdGuard guard;
  int fd = dir;
  if (!rel.empty()) {
    int opened = openat2_beneath(dir, rel.c_str(), O_PATH, 0);
    if (opened < 0) return opened;
    guard.reset(opened);
    fd = opened;
  }
  struct statx stx;
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) < 0) return -errno;
  if (!(stx.stx_mask & STATX_MNT_ID)) return -ENOSYS;
  *out = stx.stx_mnt_id;
  return 0;
}

int fs_try_lock(int fd) {
  for (;;) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int fs_start_writeback(int fd, int64_t offset, int64_t nbytes) {
  if (offset < 0 || nbytes < 0) return -EINVAL;
  for (;;) {
    if (::sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE) == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int fs_syncfs(int fd) { return ::syncfs(fd) < 0 ? -errno : 0; }

int fs_read_dir(int dir_fd, size_t buffer_bytes, std::vector<DirEntry>* out) {
  // Big enough for any one entry (getdents64 fails with EINVAL otherwise), small enough to bound.
  if (buffer_bytes < 4096) buffer_bytes = 4096;
  if (buffer_bytes > (1u << 20)) buffer_bytes = 1u << 20;
  std::vector<char> buf(buffer_bytes);
  for (;;) {
    ssize_t n = ::getdents64(dir_fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return 0;
    for (ssize_t off = 0; off < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf.data() + off);
      off += d->d_reclen;
      if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
      unsigned char type = d->d_type;
      if (type == DT_UNKNOWN) {
        struct stat st;
        if (::fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) type = IFTODT(st.st_mode);
      }
      out->push_back(DirEntry{d->d_name, type});
    }
    if (!out->empty()) return static_cast<int>(out->size());
  }
}

namespace {

// The *xattrat calls (Linux 6.13) and fchmodat2 (6.6) have one number on every architecture;
// glibc 2.36's headers know neither.
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif

struct XattrArgs {  // struct xattr_args (linux/xattr.h, 6.13)
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};

constexpr size_t kXattrMax = 65536;  // XATTR_LIST_MAX and XATTR_SIZE_MAX

// The object an xattr call acts on: (parent fd, name) for the *xattrat calls, and how to reach
// the same object through an fd when the kernel lacks them.
struct XattrTarget {
  int dir;            // `dir` itself when rel == ""
  std::string rel;    // as given ("" = dir itself)
  FdGuard parent;     // the parent, opened beneath, when rel != ""
  std::string name;   // the last component
  FdGuard object;     // opened O_PATH | O_NOFOLLOW for the fallback, lazily
};

int xattr_target(int dir, const std::string& rel, XattrTarget* t) {
  t->dir = dir;
  t->rel = rel;
  if (rel.empty()) return 0;
  return open_parent(dir, rel, &t->parent, &t->name);
}

// The at-call's (dfd, path, flags).
int at_dfd(const XattrTarget& t) { return t.rel.empty() ? t.dir : t.parent.get(); }
const char* at_path(const XattrTarget& t) { return t.rel.empty() ? "" : t.name.c_str(); }
unsigned at_flags(const XattrTarget& t) { return t.rel.empty() ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW; }

// The fallback's way to the object: an fd of it, and the /proc path that names that fd's inode
// when it is O_PATH (f*xattr refuse O_PATH fds with EBADF before Linux 6.13's change).
int fallback_fd(XattrTarget* t, int* fd) {
  if (t->rel.empty()) {
    // The root's own fd is O_PATH: a real fd of "." beneath it takes f*xattr without /proc
    // (a chroot may have none); one that cannot be opened (no read permission) keeps the O_PATH
    // fd and its /proc path.
    if (!t->object.ok()) {
      int opened = openat2_beneath(t->dir, ".", O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0);
      if (opened >= 0) t->object.reset(opened);
    }
    *fd = t->object.ok() ? t->object.get() : t->dir;
    return 0;
  }
  if (!t->object.ok()) {
    int opened = openat2_beneath(t->parent.get(), t->name.c_str(), O_PATH | O_NOFOLLOW, 0);
    if (opened < 0) return opened;
    t->object.reset(opened);
  }
  *fd = t->object.get();
  return 0;
}

std::string proc_fd(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// Whether an *xattrat call's failure (errno) leaves the way through an fd to try: the call is
// missing (before Linux 6.13), or it refused the root's own O_PATH fd with AT_EMPTY_PATH (EBADF,
// as 6.18 does), which /proc/self/fd/N then reaches.
bool at_call_fallback(const XattrTarget& t) { return errno == ENOSYS || (errno == EBADF && t.rel.empty()); }

// Runs `with_fd(fd)`, and on EBADF (an O_PATH fd) `with_path("/proc/self/fd/N")`.
template <typename F, typename P>
ssize_t via_fd(XattrTarget* t, F with_fd, P with_path) {
  int fd;
  int rc = fallback_fd(t, &fd);
  if (rc < 0) return rc;
  ssize_t n = with_fd(fd);
  if (n >= 0) return n;
  if (errno != EBADF) return -errno;
  n = with_path(proc_fd(fd).c_str());
  return n < 0 ? -errno : n;
}

ssize_t list_once(XattrTarget* t, char* buf, size_t size) {
  long n = syscall(SYS_listxattrat, at_dfd(*t), at_path(*t), at_flags(*t), buf, size);
  if (n >= 0 || !at_call_fallback(*t)) return n < 0 ? -errno : n;
  return via_fd(
      t, [&](int fd) { return ::flistxattr(fd, buf, size); },
      [&](const char* p) { return ::listxattr(p, buf, size); });
}

ssize_t get_once(XattrTarget* t, const char* name, char* buf, size_t size) {
  XattrArgs args{reinterpret_cast<uint64_t>(buf), static_cast<uint32_t>(size), 0};
  long n = syscall(SYS_getxattrat, at_dfd(*t), at_path(*t), at_flags(*t), name, &args, sizeof(args));
  if (n >= 0 || !at_call_fallback(*t)) return n < 0 ? -errno : n;
  return via_fd(
      t, [&](int fd) { return ::fgetxattr(fd, name, buf, size); },
      [&](const char* p) { return ::getxattr(p, name, buf, size); });
}

// Asks for the size, then reads into a buffer that big; a value that grew in between (ERANGE)
// is asked again, a few times.
template <typename Once>
int read_sized(Once once, std::string* out) {
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t size = once(nullptr, 0);
    if (size < 0) return static_cast<int>(size);
    if (static_cast<size_t>(size) > kXattrMax) return -E2BIG;
    out->resize(static_cast<size_t>(size));
    if (size == 0) return 0;
    ssize_t n = once(&(*out)[0], out->size());
    if (n == -ERANGE) continue;
    if (n < 0) return static_cast<int>(n);
    out->resize(static_cast<size_t>(n));
    return static_cast<int>(n);
  }
  return -ERANGE;
}

bool valid_xattr_name(const std::string& name) {
  return !name.empty() && name.size() <= 255 && !has_nul(name);
}

}  // namespace

int fs_list_xattr_beneath(int dir, const std::string& rel, std::string* out) {
  XattrTarget t;
  int rc = xattr_target(dir, rel, &t);
  if (rc < 0) return rc;
  return read_sized([&](char* buf, size_t size) { return list_once(&t, buf, size); }, out);
}

int fs_get_xattr_beneath(int dir, const std::string& rel, const std::string& name, std::string* out) {
  if (!valid_xattr_name(name)) return -EINVAL;
  XattrTarget t;
  int rc = xattr_target(dir, rel, &t);
  if (rc < 0) return rc;
  return read_sized([&](char* buf, size_t size) { return get_once(&t, name.c_str(), buf, size); }, out);
}

int fs_set_xattr_beneath(int dir, const std::string& rel, const std::string& name, const std::string& value,
                         int flags) {
  if (!valid_xattr_name(name) || value.size() > kXattrMax) return -EINVAL;
  if (flags != 0 && flags != XATTR_CREATE && flags != XATTR_REPLACE) return -EINVAL;
  XattrTarget t;
  int rc = xattr_target(dir, rel, &t);
  if (rc < 0) return rc;
  XattrArgs args{reinterpret_cast<uint64_t>(value.data()), static_cast<uint32_t>(value.size()),
                 static_cast<uint32_t>(flags)};
  long n = syscall(SYS_setxattrat, at_dfd(t), at_path(t), at_flags(t), name.c_str(), &args, sizeof(args));
  if (n >= 0) return 0;
  if (!at_call_fallback(t)) return -errno;
  ssize_t r = via_fd(
      &t, [&](int fd) { return static_cast<ssize_t>(::fsetxattr(fd, name.c_str(), value.data(), value.size(), flags)); },
      [&](const char* p) { return static_cast<ssize_t>(::setxattr(p, name.c_str(), value.data(), value.size(), flags)); });
  return r < 0 ? static_cast<int>(r) : 0;
}

int fs_lchown_beneath(int dir, const std::string& rel, int64_t uid, int64_t gid) {
  if (uid < -1 || uid > UINT32_MAX - 1 || gid < -1 || gid > UINT32_MAX - 1) return -EINVAL;
  auto u = static_cast<uid_t>(uid);
  auto g = static_cast<gid_t>(gid);
  if (rel.empty()) return ::fchownat(dir, "", u, g, AT_EMPTY_PATH) < 0 ? -errno : 0;
  FdGuard parent;
  std::string name;
  int rc = open_parent(dir, rel, &parent, &name);
  if (rc < 0) return rc;
  return ::fchownat(parent.get(), name.c_str(), u, g, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

int fs_lchmod_beneath(int dir, const std::string& rel, mode_t mode) {
  if (mode & ~07777) return -EINVAL;
  FdGuard object;
  int fd = dir;
  if (!rel.empty()) {
    FdGuard parent;
    std::string name;
    int rc = open_parent(dir, rel, &parent, &name);
    if (rc < 0) return rc;
    fd = openat2_beneath(parent.get(), name.c_str(), O_PATH | O_NOFOLLOW, 0);
    if (fd < 0) return fd;
    object.reset(fd);
  }
  struct stat st;
  if (::fstat(fd, &st) < 0) return -errno;
  if (S_ISLNK(st.st_mode)) return -EOPNOTSUPP;
  if (syscall(SYS_fchmodat2, fd, "", mode, AT_EMPTY_PATH) == 0) return 0;
  if (errno != ENOSYS && errno != EINVAL) return -errno;
  // Before Linux 6.6: fchmod works on a real fd; an O_PATH fd goes through /proc (EBADF).
  if (::fchmod(fd, mode) == 0) return 0;
  if (errno != EBADF) return -errno;
  return ::chmod(proc_fd(fd).c_str(), mode) < 0 ? -errno : 0;
}

int fs_mknod_beneath(int dir, const std::string& rel, mode_t mode, uint32_t maj, uint32_t min) {
  mode_t type = mode & S_IFMT;
  if (type != S_IFIFO && type != S_IFCHR && type != S_IFBLK) return -EINVAL;
  if (mode & ~(S_IFMT | 07777)) return -EINVAL;
  FdGuard parent;
  std::string name;
  int rc = open_parent(dir, rel, &parent, &name);
  if (rc < 0) return rc;
  dev_t dev = type == S_IFIFO ? 0 : makedev(maj, min);
  return ::mknodat(parent.get(), name.c_str(), mode, dev) < 0 ? -errno : 0;
}

int fs_link_beneath(int dir, const std::string& from, const std::string& to) {
  FdGuard from_parent, to_parent;
  std::string from_name, to_name;
  int rc = open_parent(dir, from, &from_parent, &from_name);
  if (rc < 0) return rc;
  rc = open_parent(dir, to, &to_parent, &to_name);
  if (rc < 0) return rc;
  return ::linkat(from_parent.get(), from_name.c_str(), to_parent.get(), to_name.c_str(), 0) < 0 ? -errno : 0;
}

int fs_seek(int fd, int64_t offset, int whence, int64_t* out) {
  if (offset < 0 || (whence != SEEK_DATA && whence != SEEK_HOLE)) return -EINVAL;
  off_t pos = ::lseek(fd, static_cast<off_t>(offset), whence);
  if (pos < 0) return -errno;
  *out = static_cast<int64_t>(pos);
  return 0;
}

}  // namespace ng
