// readSmallCached(dirFd, rel, buf, stat): the small-file fast path, synchronous on purpose — it
// only touches the kernel's caches (RESOLVE_CACHED, RWF_NOWAIT) and answers -EAGAIN instead of
// waiting, so it never blocks the event loop, and an AsyncWorker's thread hop would cost more
// than the whole call (PERFORMANCE-NOTES: ~4 µs). It is on every small GET, so it marshals as
// little as it can: the caller keeps one scratch Buffer and one Float64Array for every call,
// and gets back a number (building a stat object of a dozen properties and a new Buffer here cost
// more than the four syscalls).
#include "addon_small.h"

#include <climits>

#include <errno.h>

#include <string>

#include "small_file.h"

namespace ng {

namespace {

// Indices into the caller's Float64Array (native/small-file.ts mirrors them).
enum StatSlot {
  kDev,
  kIno,
  kMode,
  kNlink,
  kUid,
  kGid,
  kSize,
  kMtimeSec,
  kMtimeNsec,
  kAtimeSec,
  kAtimeNsec,
  kCtimeSec,
  kCtimeNsec,
  kBlocks,
  kSlots
};

bool IsFloat64Array(const Napi::Value& v, size_t min_length) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  return a.TypedArrayType() == napi_float64_array && a.ElementLength() >= min_length;
}

void FillSlots(const StatResult& st, double* out) {
  out[kDev] = static_cast<double>(st.dev);
  out[kIno] = static_cast<double>(st.ino);
  out[kMode] = st.mode;
  out[kNlink] = static_cast<double>(st.nlink);
  out[kUid] = st.uid;
  out[kGid] = st.gid;
  out[kSize] = static_cast<double>(st.size);
  out[kMtimeSec] = static_cast<double>(st.mtime_sec);
  out[kMtimeNsec] = static_cast<double>(st.mtime_nsec);
  out[kAtimeSec] = static_cast<double>(st.atime_sec);
  out[kAtimeNsec] = static_cast<double>(st.atime_nsec);
  out[kCtimeSec] = static_cast<double>(st.ctime_sec);
  out[kCtimeNsec] = static_cast<double>(st.ctime_nsec);
  out[kBlocks] = static_cast<double>(st.blocks);
}

Napi::Value ReadSmallCached(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsBuffer() ||
      !IsFloat64Array(info[3], kSlots)) {
    throw Napi::TypeError::New(
        env, "Usage: readSmallCached(dirFd: number, rel: string, buf: Buffer, stat: Float64Array(14))");
  }
  int dir = info[0].As<Napi::Number>().Int32Value();
  std::string rel = info[1].As<Napi::String>().Utf8Value();
  Napi::Buffer<char> buf = info[2].As<Napi::Buffer<char>>();
  double* out = info[3].As<Napi::Float64Array>().Data();
  StatResult st{};
  long rc = fs_read_small_cached(dir, rel, buf.Data(), buf.Length(), &st);
  if (rc >= 0 || rc == -EISDIR || rc == -ENXIO || rc == -EFBIG) FillSlots(st, out);
  return Napi::Number::New(env, static_cast<double>(rc));
}

// statAt(dirFd, rel, stat): fstatat into the same slots, 0 or -errno (the small-file cache's
// one system call per hit). Called on every cached GET, so it makes four N-API calls rather than
// node-addon-api's checked conversions (ten, two of them reading the typed array's info), and
// copies the name onto the stack, not into a std::string.
Napi::Value StatAt(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int32_t dir = -1;
  char rel[PATH_MAX];
  size_t rel_length = 0;
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  if (info.Length() < 3 || napi_get_value_int32(env, info[0], &dir) != napi_ok ||
      napi_get_value_string_utf8(env, info[1], rel, sizeof(rel), &rel_length) != napi_ok ||
      napi_get_typedarray_info(env, info[2], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array || length < kSlots) {
    throw Napi::TypeError::New(info.Env(), "Usage: statAt(dirFd: number, rel: string, stat: Float64Array(14))");
  }
  StatResult st{};
  // A name that filled the buffer may have been cut: no path that long exists (ENAMETOOLONG).
  long rc = rel_length + 1 >= sizeof(rel) ? -ENAMETOOLONG : fs_stat_at(dir, rel, rel_length, &st);
  if (rc == 0) FillSlots(st, static_cast<double*>(data));
  napi_value result = nullptr;
  napi_create_double(env, static_cast<double>(rc), &result);
  return Napi::Value(env, result);
}

}  // namespace

void RegisterSmallFile(Napi::Env env, Napi::Object exports) {
  exports.Set("readSmallCached", Napi::Function::New(env, ReadSmallCached, "readSmallCached"));
  exports.Set("statAt", Napi::Function::New(env, StatAt, "statAt"));
}

}  // namespace ng
