// Beneath-root filesystem primitives. Plain C++, no Napi: every function returns a non-negative
// value on success or -errno on failure, closes every fd it opened on every path, and opens
// every fd O_CLOEXEC.
//
// Confinement is the kernel's job: every lookup goes through openat2(2) with
// RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS relative to `dir` (the served root, or a directory
// that was itself opened beneath it). A path that would leave `dir` — an absolute path, a `..`
// above it, a symlink leading out — fails with EXDEV; a /proc magic link fails with ELOOP. The
// *at calls (mkdirat, unlinkat, renameat2, linkat) act on a parent directory opened that way,
// with the final component a single name (no '/', not "." or ".."; otherwise EINVAL).
//
// `rel` is relative to `dir`; "" and "." name `dir` itself.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ng {

// openat2(dir, rel, flags | O_CLOEXEC, mode) beneath `dir`. Returns the new fd.
int fs_open_beneath(int dir, const std::string& rel, int flags, mode_t mode);

// open(path, O_PATH | O_DIRECTORY | O_CLOEXEC): the served root itself (any host path).
int fs_open_root(const std::string& path);

struct StatResult {
  uint64_t dev;
  uint64_t ino;
  uint32_t mode;
  uint64_t nlink;
  uint32_t uid;
  uint32_t gid;
  int64_t size;
  int64_t mtime_sec;
  int64_t mtime_nsec;
  int64_t atime_sec;
  int64_t atime_nsec;
  int64_t ctime_sec;
  int64_t ctime_nsec;
  uint64_t rdev;
  uint32_t rdev_major;
  uint32_t rdev_minor;
  int64_t blocks;  // st_blocks: 512-byte units allocated (a sparse file has fewer than size/512)
};

// Copies the fields nullgate uses out of a struct stat.
void fill_stat(const struct stat& st, StatResult* out);

// fstat of `rel` beneath `dir` (the object is opened O_PATH, so nothing is read). With
// follow == false a final symlink is reported as itself (lstat). rel == "" stats `dir` itself,
// whatever kind of fd it is (fstat).
int fs_stat_beneath(int dir, const std::string& rel, bool follow, StatResult* out);

// mkdirat(parent(rel), name(rel), mode): one level.
int fs_mkdir_beneath(int dir, const std::string& rel, mode_t mode);

// unlinkat(parent(rel), name(rel), remove_dir ? AT_REMOVEDIR : 0).
int fs_unlink_beneath(int dir, const std::string& rel, bool remove_dir);

// renameat2(parent(from), name(from), parent(to), name(to), flags); flags 0, RENAME_NOREPLACE
// or RENAME_EXCHANGE (swap two names atomically; EINVAL where the file system cannot).
int fs_rename_beneath(int dir, const std::string& from, const std::string& to, unsigned flags);

// symlinkat(target, parent(rel), name(rel)): the link is created in a parent opened beneath
// `dir`; `target` is stored as is (symlink(2) never resolves it, nor follows the final name).
int fs_symlink_beneath(int dir, const std::string& target, const std::string& rel);

// utimensat(parent(rel), name(rel), {atime, mtime}, AT_SYMLINK_NOFOLLOW): times of the entry
// itself, a symlink included (lutimes), never of what a final symlink points at; '' is the
// root directory itself.
int fs_lutimes_beneath(int dir, const std::string& rel, int64_t atime_sec, int64_t atime_nsec,
                       int64_t mtime_sec, int64_t mtime_nsec);

// The mount id (statx STATX_MNT_ID) of `rel` beneath `dir` (a final symlink is followed; ""
// is `dir` itself). Two names can be renamed or linked into each other only on one mount.
// -ENOSYS when the kernel does not report mount ids (before Linux 5.8).
int fs_mount_id_beneath(int dir, const std::string& rel, uint64_t* out);

// flock(fd, LOCK_EX | LOCK_NB): marks a temporary file or staging directory as in use, so the
// startup sweep of another server on the same root leaves it alone (the lock dies with the
// process, SIGKILL included). Never blocks: -EWOULDBLOCK when someone else holds it.
int fs_try_lock(int fd);

// sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE): start writing back those dirty
// pages now, without waiting for them, so that a later fsync has little left to do.
int fs_start_writeback(int fd, int64_t offset, int64_t nbytes);

// syncfs(2) of the file system `fd` is on: every dirty page and inode of it written back, and
// (Linux 5.8+) a writeback error since the fd was opened reported. One call instead of an fsync
// per file when a whole tree was written.
int fs_syncfs(int fd);

// readlinkat of a symlink beneath `dir` (never followed). Returns the target's length.
int fs_readlink_beneath(int dir, const std::string& rel, std::string* out);

// Gives a name to an anonymous O_TMPFILE file `fd` at `rel` beneath `dir`. Without `replace`
// the link fails with EEXIST when the name exists. With `replace` it links to a random hidden
// `.nullgate-tmp-<hex>` and renames that over the target, so readers see the old file or the new
// one, never neither; the temporary name is removed on failure. The hidden name is made in `dir`
// itself (the served root, where the startup sweep looks) when the file is on the root's mount,
// else beside the target (linkat answers EXDEV across mounts, having made nothing).
int fs_link_tmpfile(int fd, int dir, const std::string& rel, bool replace);

struct DirEntry {
  std::string name;
  unsigned char type;  // DT_* (DT_UNKNOWN resolved with fstatat when the file system gives it)
};

// Reads the next entries of the directory open at `dir_fd` (O_RDONLY|O_DIRECTORY) with one
// getdents64 of at most `buffer_bytes` bytes, so memory stays bounded whatever the directory's
// size. "." and ".." are skipped. Returns the number of entries read; 0 means the end (an
// all-dot batch is skipped, never reported as the end).
int fs_read_dir(int dir_fd, size_t buffer_bytes, std::vector<DirEntry>* out);

// --- metadata (tar's side of a tree: owners, modes, times, xattrs, special files, links) ---
// Each acts on `rel` itself, never on what a final symlink points at: the parent is opened
// beneath `dir` and the *at call gets the last name with AT_SYMLINK_NOFOLLOW (or the entry is
// opened O_PATH | O_NOFOLLOW beneath `dir`). rel == "" acts on `dir` itself (an fd of any kind).

// fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) (lchown); -1 leaves that id as it is.
int fs_lchown_beneath(int dir, const std::string& rel, int64_t uid, int64_t gid);

// chmod of `rel` itself, never following a symlink: -EOPNOTSUPP for a symlink (Linux has no
// symlink modes). fchmodat2(AT_EMPTY_PATH) on an O_PATH | O_NOFOLLOW fd, or /proc/self/fd.
int fs_lchmod_beneath(int dir, const std::string& rel, mode_t mode);

// mknodat(parent, name, mode, makedev(major, minor)); mode's type must be S_IFIFO, S_IFCHR or
// S_IFBLK (else -EINVAL): regular files, directories and sockets have calls of their own.
int fs_mknod_beneath(int dir, const std::string& rel, mode_t mode, uint32_t major, uint32_t minor);

// linkat(parent(from), name(from), parent(to), name(to), 0): a new name for the entry `from`
// itself (a symlink is linked, not followed). Both beneath `dir`.
int fs_link_beneath(int dir, const std::string& from, const std::string& to);

// Extended attributes of `rel` itself (a symlink's own, never its target's): getxattrat /
// listxattrat / setxattrat with AT_SYMLINK_NOFOLLOW on (parent, name) where the kernel has them
// (Linux 6.13+), else the f*xattr calls on an fd opened O_PATH | O_NOFOLLOW beneath `dir`
// (through /proc/self/fd for an O_PATH fd, which names that very inode). Sizes are bounded by
// the kernel's own limits (XATTR_LIST_MAX, XATTR_SIZE_MAX: 64 KiB).
// The names, each NUL-terminated, as the kernel lists them. Returns the list's length.
int fs_list_xattr_beneath(int dir, const std::string& rel, std::string* out);
// The value of one attribute (binary). Returns its length; -ENODATA when it has none.
int fs_get_xattr_beneath(int dir, const std::string& rel, const std::string& name, std::string* out);
// setxattr with flags 0, XATTR_CREATE or XATTR_REPLACE.
int fs_set_xattr_beneath(int dir, const std::string& rel, const std::string& name, const std::string& value,
                         int flags);

// lseek(fd, offset, SEEK_DATA or SEEK_HOLE) into *out: the next data (or hole) at or after
// `offset`. -ENXIO when there is no data after `offset` (SEEK_DATA) or `offset` is at or past
// the end. File systems without holes report the whole file as data (and EOF as the hole).
int fs_seek(int fd, int64_t offset, int whence, int64_t* out);

// The temporary-name prefix a startup sweep looks for (uploads' fallback temp files, replace links).
extern const char kTmpPrefix[];

}  // namespace ng
