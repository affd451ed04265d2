// Entry points of the beneath-root filesystem layer. Each checks its argument types (a mistake is
// a programmer error: TypeError "Usage: …"), then runs one fs_ops helper on the libuv thread
// pool and returns a Promise of its result: the value, or a negative errno. File syscalls can
// block (slow or network disks, fsync, huge directories), so none of them runs on the JS thread.
//
// Fd ownership: once an fd is returned to JS (fsOpen, fsOpenRoot), JS owns it — C++ never closes
// it, and the fd arguments of the other calls are borrowed for the duration of the call. JS must
// not close an fd while a call that borrowed it is still pending.
#include "addon_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <stdio.h>
#include <unistd.h>

#include <cmath>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "fs_ops.h"
#include "name_codec.h"

namespace ng {

namespace {

// Runs `work` (which computes an int result, and may fill a payload it captured) on the thread
// pool and resolves a Promise in the JS thread: with the negative errno as a number when the
// result is negative, else with `convert(env, result)` (or the number itself without a convert).
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<int()>;
  using Convert = std::function<Napi::Value(Napi::Env, int)>;

  static Napi::Promise Run(Napi::Env env, Work work, Convert convert = nullptr) {
    auto* worker = new PromiseWorker(env, std::move(work), std::move(convert));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();  // the worker deletes itself after OnOK/OnError
    return promise;
  }

 protected:
  void Execute() override {
    try {
      rc_ = work_();
    } catch (const std::bad_alloc&) {
      rc_ = -ENOMEM;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (rc_ < 0 || !convert_) {
      deferred_.Resolve(Napi::Number::New(env, rc_));
      return;
    }
    deferred_.Resolve(convert_(env, rc_));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  PromiseWorker(Napi::Env env, Work work, Convert convert)
      : Napi::AsyncWorker(env, "nullgate:fs"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        convert_(std::move(convert)) {}

  Napi::Promise::Deferred deferred_;
  Work work_;
  Convert convert_;
  int rc_ = 0;
};

Napi::Promise Resolved(Napi::Env env, int rc) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Resolve(Napi::Number::New(env, rc));
  return deferred.Promise();
}

int32_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), usage);
  return info[i].As<Napi::Number>().Int32Value();
}

bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), usage);
  return info[i].As<Napi::Boolean>().Value();
}

// A path from JS, as bytes (native/name_codec.h: a name that is not UTF-8 arrives with its bytes
// as lone surrogates, and leaves as those bytes). A NUL in it would silently truncate the C path,
// so `*ok` is false then and the caller resolves -EINVAL without touching the file system.
std::string PathArg(const Napi::CallbackInfo& info, size_t i, const char* usage, bool* ok) {
  if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), usage);
  std::string s = encode_name(info[i].As<Napi::String>().Utf16Value());
  if (s.find('\0') != std::string::npos) *ok = false;
  return s;
}

// Bytes from the file system (a name, a link target) as a JS string (name_codec.h). A
// Napi::Value, not a Napi::String: Object::Set would take a String for something convertible to
// std::string and rebuild it from UTF-8, turning the lone surrogates into U+FFFD.
Napi::Value NameValue(Napi::Env env, const std::string& bytes) {
  std::u16string units = decode_name(bytes.data(), bytes.size());
  return Napi::String::New(env, units.data(), units.size());
}

// fsOpen(dirFd, rel, flags, mode): Promise<fd | -errno>. The fd belongs to JS from here on.
Napi::Value FsOpen(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsOpen(dirFd: number, rel: string, flags: number, mode: number)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  int flags = IntArg(info, 2, usage);
  int mode = IntArg(info, 3, usage);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [dir, rel, flags, mode] {
    return fs_open_beneath(dir, rel, flags, static_cast<mode_t>(mode));
  });
}

// fsOpenRoot(path): Promise<fd | -errno>, O_PATH | O_DIRECTORY. The fd belongs to JS.
Napi::Value FsOpenRoot(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsOpenRoot(path: string)";
  bool ok = true;
  std::string path = PathArg(info, 0, usage, &ok);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [path] { return fs_open_root(path); });
}

Napi::Value FsStat(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsStat(dirFd: number, rel: string, follow: boolean)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  bool follow = BoolArg(info, 2, usage);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  auto st = std::make_shared<StatResult>();
  return PromiseWorker::Run(
      info.Env(), [dir, rel, follow, st] { return fs_stat_beneath(dir, rel, follow, st.get()); },
      [st](Napi::Env env, int) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("dev", static_cast<double>(st->dev));
        out.Set("ino", static_cast<double>(st->ino));
        out.Set("mode", static_cast<double>(st->mode));
        out.Set("nlink", static_cast<double>(st->nlink));
        out.Set("uid", static_cast<double>(st->uid));
        out.Set("gid", static_cast<double>(st->gid));
        out.Set("size", static_cast<double>(st->size));
        out.Set("mtimeMs", static_cast<double>(st->mtime_sec) * 1e3 + static_cast<double>(st->mtime_nsec) / 1e6);
        out.Set("mtimeNs", Napi::BigInt::New(env, st->mtime_sec * INT64_C(1000000000) + st->mtime_nsec));
        out.Set("atimeNs", Napi::BigInt::New(env, st->atime_sec * INT64_C(1000000000) + st->atime_nsec));
        out.Set("ctimeNs", Napi::BigInt::New(env, st->ctime_sec * INT64_C(1000000000) + st->ctime_nsec));
        out.Set("rdev", static_cast<double>(st->rdev));
        out.Set("rdevMajor", static_cast<double>(st->rdev_major));
        out.Set("rdevMinor", static_cast<double>(st->rdev_minor));
        out.Set("blocks", static_cast<double>(st->blocks));
        return out;
      });
}

Napi::Value FsMkdir(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsMkdir(dirFd: number, rel: string, mode: number)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  int mode = IntArg(info, 2, usage);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(),
                            [dir, rel, mode] { return fs_mkdir_beneath(dir, rel, static_cast<mode_t>(mode)); });
}

Napi::Value FsUnlink(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsUnlink(dirFd: number, rel: string, removeDir: boolean)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  bool remove_dir = BoolArg(info, 2, usage);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [dir, rel, remove_dir] { return fs_unlink_beneath(dir, rel, remove_dir); });
}

Napi::Value FsRename(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsRename(dirFd: number, from: string, to: string, flags: number)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string from = PathArg(info, 1, usage, &ok);
  std::string to = PathArg(info, 2, usage, &ok);
  unsigned flags = static_cast<unsigned>(IntArg(info, 3, usage));
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [dir, from, to, flags] { return fs_rename_beneath(dir, from, to, flags); });
}

Napi::Value FsReadlink(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsReadlink(dirFd: number, rel: string)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  auto target = std::make_shared<std::string>();
  return PromiseWorker::Run(
      info.Env(), [dir, rel, target] { return fs_readlink_beneath(dir, rel, target.get()); },
      [target](Napi::Env env, int) -> Napi::Value { return NameValue(env, *target); });
}

Napi::Value FsLinkTmpfile(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsLinkTmpfile(fd: number, dirFd: number, rel: string, replace: boolean)";
  bool ok = true;
  int fd = IntArg(info, 0, usage);
  int dir = IntArg(info, 1, usage);
  std::string rel = PathArg(info, 2, usage, &ok);
  bool replace = BoolArg(info, 3, usage);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [fd, dir, rel, replace] { return fs_link_tmpfile(fd, dir, rel, replace); });
}

// fsSymlink(dirFd, target, rel): Promise<0 | -errno>; symlinkat in the parent of `rel`.
Napi::Value FsSymlink(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsSymlink(dirFd: number, target: string, rel: string)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string target = PathArg(info, 1, usage, &ok);
  std::string rel = PathArg(info, 2, usage, &ok);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [dir, target, rel] { return fs_symlink_beneath(dir, target, rel); });
}

// A time in ms since the epoch (what Date holds) as seconds and nanoseconds.
void SplitMs(double ms, int64_t* sec, int64_t* nsec) {
  double s = std::floor(ms / 1e3);
  *sec = static_cast<int64_t>(s);
  *nsec = static_cast<int64_t>(std::llround((ms - s * 1e3) * 1e6));
  if (*nsec > 999999999) *nsec = 999999999;
  if (*nsec < 0) *nsec = 0;
}

double NumberArg(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), usage);
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v)) throw Napi::TypeError::New(info.Env(), usage);
  return v;
}

// fsLutimes(dirFd, rel, atimeMs, mtimeMs): Promise<0 | -errno>; utimensat AT_SYMLINK_NOFOLLOW.
Napi::Value FsLutimes(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsLutimes(dirFd: number, rel: string, atimeMs: number | null, mtimeMs: number)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  int64_t as, ans, ms, mns;
  // A null atime leaves it as it is (UTIME_OMIT).
  if (info.Length() > 2 && info[2].IsNull()) {
    as = 0;
    ans = UTIME_OMIT;
  } else {
    SplitMs(NumberArg(info, 2, usage), &as, &ans);
  }
  SplitMs(NumberArg(info, 3, usage), &ms, &mns);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(),
                            [dir, rel, as, ans, ms, mns] { return fs_lutimes_beneath(dir, rel, as, ans, ms, mns); });
}

// fsMountId(dirFd, rel): Promise<mount id | -errno>.
Napi::Value FsMountId(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsMountId(dirFd: number, rel: string)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  auto id = std::make_shared<uint64_t>(0);
  return PromiseWorker::Run(
      info.Env(), [dir, rel, id] { return fs_mount_id_beneath(dir, rel, id.get()); },
      [id](Napi::Env env, int) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(*id)); });
}

// fsTryLock(fd): 0 | -errno, synchronous: flock with LOCK_NB never waits, so a worker would only
// add a thread hop (like the socket calls in addon.cc).
Napi::Value FsTryLock(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsTryLock(fd: number)";
  int fd = IntArg(info, 0, usage);
  return Napi::Number::New(info.Env(), fs_try_lock(fd));
}

// fsStartWriteback(fd, offset, nbytes): Promise<0 | -errno>. On the pool: sync_file_range waits
// when the device's queue is full, which is exactly when an upload should slow down.
Napi::Value FsStartWriteback(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsStartWriteback(fd: number, offset: number, nbytes: number)";
  int fd = IntArg(info, 0, usage);
  auto offset = static_cast<int64_t>(NumberArg(info, 1, usage));
  auto nbytes = static_cast<int64_t>(NumberArg(info, 2, usage));
  return PromiseWorker::Run(info.Env(), [fd, offset, nbytes] { return fs_start_writeback(fd, offset, nbytes); });
}

// fsSyncfs(fd): Promise<0 | -errno>. On the pool: it waits for the whole file system's writeback.
Napi::Value FsSyncfs(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsSyncfs(fd: number)";
  int fd = IntArg(info, 0, usage);
  return PromiseWorker::Run(info.Env(), [fd] { return fs_syncfs(fd); });
}

// fsReadDir(dirFd, bufferBytes): Promise<Array<{name, type}> | -errno>; [] at the end.
Napi::Value FsReadDir(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsReadDir(dirFd: number, bufferBytes: number)";
  int dir = IntArg(info, 0, usage);
  int bytes = IntArg(info, 1, usage);
  auto entries = std::make_shared<std::vector<DirEntry>>();
  return PromiseWorker::Run(
      info.Env(),
      [dir, bytes, entries] { return fs_read_dir(dir, bytes < 0 ? 0 : static_cast<size_t>(bytes), entries.get()); },
      [entries](Napi::Env env, int) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, entries->size());
        uint32_t i = 0;
        for (const DirEntry& e : *entries) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("name", NameValue(env, e.name));
          o.Set("type", static_cast<double>(e.type));
          out.Set(i++, o);
        }
        return out;
      });
}

// A time in ns since the epoch (a BigInt) as seconds and nanoseconds (floor division, so times
// before 1970 split the way timespec wants them).
void SplitNs(const Napi::CallbackInfo& info, size_t i, const char* usage, int64_t* sec, int64_t* nsec) {
  if (info.Length() <= i || !info[i].IsBigInt()) throw Napi::TypeError::New(info.Env(), usage);
  bool lossless = false;
  int64_t ns = info[i].As<Napi::BigInt>().Int64Value(&lossless);
  if (!lossless) throw Napi::TypeError::New(info.Env(), usage);
  *sec = ns / 1000000000;
  *nsec = ns % 1000000000;
  if (*nsec < 0) {
    *nsec += 1000000000;
    *sec -= 1;
  }
}

// fsLutimesNs(dirFd, rel, atimeNs | null, mtimeNs): Promise<0 | -errno>; times as BigInt ns.
Napi::Value FsLutimesNs(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsLutimesNs(dirFd: number, rel: string, atimeNs: bigint | null, mtimeNs: bigint)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  int64_t as = 0, ans = UTIME_OMIT, ms, mns;
  if (!(info.Length() > 2 && info[2].IsNull())) SplitNs(info, 2, usage, &as, &ans);
  SplitNs(info, 3, usage, &ms, &mns);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(),
                            [dir, rel, as, ans, ms, mns] { return fs_lutimes_beneath(dir, rel, as, ans, ms, mns); });
}

// An id for chown: a number in [-1, 2^32 - 2] (-1 keeps it).
int64_t IdArg(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  double v = NumberArg(info, i, usage);
  if (v != std::floor(v) || v < -1 || v > 4294967294.0) throw Napi::TypeError::New(info.Env(), usage);
  return static_cast<int64_t>(v);
}

// fsLchown(dirFd, rel, uid, gid): Promise<0 | -errno>; fchownat AT_SYMLINK_NOFOLLOW.
Napi::Value FsLchown(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsLchown(dirFd: number, rel: string, uid: number, gid: number)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  int64_t uid = IdArg(info, 2, usage);
  int64_t gid = IdArg(info, 3, usage);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [dir, rel, uid, gid] { return fs_lchown_beneath(dir, rel, uid, gid); });
}

// fsLchmod(dirFd, rel, mode): Promise<0 | -errno>; -EOPNOTSUPP for a symlink.
Napi::Value FsLchmod(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsLchmod(dirFd: number, rel: string, mode: number)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  int mode = IntArg(info, 2, usage);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(),
                            [dir, rel, mode] { return fs_lchmod_beneath(dir, rel, static_cast<mode_t>(mode)); });
}

// fsMknod(dirFd, rel, mode, major, minor): Promise<0 | -errno>; mode includes S_IFIFO/S_IFCHR/S_IFBLK.
Napi::Value FsMknod(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsMknod(dirFd: number, rel: string, mode: number, major: number, minor: number)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  int mode = IntArg(info, 2, usage);
  int64_t maj = IdArg(info, 3, usage);
  int64_t min = IdArg(info, 4, usage);
  if (maj < 0 || min < 0) throw Napi::TypeError::New(info.Env(), usage);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [dir, rel, mode, maj, min] {
    return fs_mknod_beneath(dir, rel, static_cast<mode_t>(mode), static_cast<uint32_t>(maj),
                            static_cast<uint32_t>(min));
  });
}

// fsLink(dirFd, from, to): Promise<0 | -errno>; linkat without following.
Napi::Value FsLink(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsLink(dirFd: number, from: string, to: string)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string from = PathArg(info, 1, usage, &ok);
  std::string to = PathArg(info, 2, usage, &ok);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [dir, from, to] { return fs_link_beneath(dir, from, to); });
}

Napi::Value BufferOf(Napi::Env env, const std::string& s) {
  return Napi::Buffer<char>::Copy(env, s.data(), s.size());
}

// fsListXattr(dirFd, rel): Promise<string[] | -errno>; the names of `rel`'s own attributes.
Napi::Value FsListXattr(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsListXattr(dirFd: number, rel: string)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  auto list = std::make_shared<std::string>();
  return PromiseWorker::Run(
      info.Env(), [dir, rel, list] { return fs_list_xattr_beneath(dir, rel, list.get()); },
      [list](Napi::Env env, int) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env);
        uint32_t i = 0;
        for (size_t start = 0; start < list->size();) {
          size_t end = list->find('\0', start);
          if (end == std::string::npos) end = list->size();
          if (end > start) out.Set(i++, NameValue(env, list->substr(start, end - start)));
          start = end + 1;
        }
        return out;
      });
}

// fsGetXattr(dirFd, rel, name): Promise<Buffer | -errno>; -ENODATA when there is none.
Napi::Value FsGetXattr(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsGetXattr(dirFd: number, rel: string, name: string)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  std::string name = PathArg(info, 2, usage, &ok);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  auto value = std::make_shared<std::string>();
  return PromiseWorker::Run(
      info.Env(), [dir, rel, name, value] { return fs_get_xattr_beneath(dir, rel, name, value.get()); },
      [value](Napi::Env env, int) -> Napi::Value { return BufferOf(env, *value); });
}

// fsSetXattr(dirFd, rel, name, value, flags): Promise<0 | -errno>; flags 0, XATTR_CREATE, XATTR_REPLACE.
Napi::Value FsSetXattr(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsSetXattr(dirFd: number, rel: string, name: string, value: Buffer, flags: number)";
  bool ok = true;
  int dir = IntArg(info, 0, usage);
  std::string rel = PathArg(info, 1, usage, &ok);
  std::string name = PathArg(info, 2, usage, &ok);
  if (info.Length() <= 3 || !info[3].IsBuffer()) throw Napi::TypeError::New(info.Env(), usage);
  auto buf = info[3].As<Napi::Buffer<char>>();
  std::string value(buf.Data(), buf.Length());
  int flags = IntArg(info, 4, usage);
  if (!ok) return Resolved(info.Env(), -EINVAL);
  return PromiseWorker::Run(info.Env(), [dir, rel, name, value = std::move(value), flags] {
    return fs_set_xattr_beneath(dir, rel, name, value, flags);
  });
}

// fsSeek(fd, offset, whence): Promise<offset | -errno>; whence SEEK_DATA or SEEK_HOLE; -ENXIO
// at the end. On the pool: a file system may walk its extent tree for it.
Napi::Value FsSeek(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: fsSeek(fd: number, offset: number, whence: number)";
  int fd = IntArg(info, 0, usage);
  double offset = NumberArg(info, 1, usage);
  int whence = IntArg(info, 2, usage);
  if (offset < 0 || offset > 9007199254740991.0 || offset != std::floor(offset))
    throw Napi::TypeError::New(info.Env(), usage);
  auto pos = std::make_shared<int64_t>(0);
  auto off = static_cast<int64_t>(offset);
  return PromiseWorker::Run(
      info.Env(), [fd, off, whence, pos] { return fs_seek(fd, off, whence, pos.get()); },
      [pos](Napi::Env env, int) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(*pos)); });
}

}  // namespace

void RegisterFs(Napi::Env env, Napi::Object exports) {
  exports.Set("fsOpen", Napi::Function::New(env, FsOpen, "fsOpen"));
  exports.Set("fsOpenRoot", Napi::Function::New(env, FsOpenRoot, "fsOpenRoot"));
  exports.Set("fsStat", Napi::Function::New(env, FsStat, "fsStat"));
  exports.Set("fsMkdir", Napi::Function::New(env, FsMkdir, "fsMkdir"));
  exports.Set("fsUnlink", Napi::Function::New(env, FsUnlink, "fsUnlink"));
  exports.Set("fsRename", Napi::Function::New(env, FsRename, "fsRename"));
  exports.Set("fsReadlink", Napi::Function::New(env, FsReadlink, "fsReadlink"));
  exports.Set("fsLinkTmpfile", Napi::Function::New(env, FsLinkTmpfile, "fsLinkTmpfile"));
  exports.Set("fsReadDir", Napi::Function::New(env, FsReadDir, "fsReadDir"));
  exports.Set("fsSymlink", Napi::Function::New(env, FsSymlink, "fsSymlink"));
  exports.Set("fsLutimes", Napi::Function::New(env, FsLutimes, "fsLutimes"));
  exports.Set("fsMountId", Napi::Function::New(env, FsMountId, "fsMountId"));
  exports.Set("fsTryLock", Napi::Function::New(env, FsTryLock, "fsTryLock"));
  exports.Set("fsStartWriteback", Napi::Function::New(env, FsStartWriteback, "fsStartWriteback"));
  exports.Set("fsSyncfs", Napi::Function::New(env, FsSyncfs, "fsSyncfs"));
  exports.Set("fsLutimesNs", Napi::Function::New(env, FsLutimesNs, "fsLutimesNs"));
  exports.Set("fsLchown", Napi::Function::New(env, FsLchown, "fsLchown"));
  exports.Set("fsLchmod", Napi::Function::New(env, FsLchmod, "fsLchmod"));
  exports.Set("fsMknod", Napi::Function::New(env, FsMknod, "fsMknod"));
  exports.Set("fsLink", Napi::Function::New(env, FsLink, "fsLink"));
  exports.Set("fsListXattr", Napi::Function::New(env, FsListXattr, "fsListXattr"));
  exports.Set("fsGetXattr", Napi::Function::New(env, FsGetXattr, "fsGetXattr"));
  exports.Set("fsSetXattr", Napi::Function::New(env, FsSetXattr, "fsSetXattr"));
  exports.Set("fsSeek", Napi::Function::New(env, FsSeek, "fsSeek"));
  // Flags Node's fs.constants lacks.
  Napi::Object c = Napi::Object::New(env);
  c.Set("O_PATH", O_PATH);
  c.Set("O_TMPFILE", O_TMPFILE);
  c.Set("O_NOFOLLOW", O_NOFOLLOW);
  c.Set("O_DIRECTORY", O_DIRECTORY);
  c.Set("RENAME_NOREPLACE", static_cast<double>(RENAME_NOREPLACE));
  c.Set("RENAME_EXCHANGE", static_cast<double>(RENAME_EXCHANGE));
  c.Set("SEEK_DATA", SEEK_DATA);
  c.Set("SEEK_HOLE", SEEK_HOLE);
  c.Set("XATTR_CREATE", static_cast<double>(XATTR_CREATE));
  c.Set("XATTR_REPLACE", static_cast<double>(XATTR_REPLACE));
  c.Set("TMP_PREFIX", kTmpPrefix);
  exports.Set("fsConstants", c);
}

}  // namespace ng
