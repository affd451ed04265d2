// readSmallCached(dirFd, rel, max): the small-file fast path, synchronous on purpose — it only
// touches the kernel's caches (RESOLVE_CACHED, RWF_NOWAIT) and answers -EAGAIN instead of
// waiting, so it never blocks the event loop, and an AsyncWorker's thread hop would cost more
// than the whole call (PERFORMANCE-NOTES: ~4 µs).
#include "addon_small.h"

#include <string>

#include "small_file.h"

namespace ng {

namespace {

Napi::Value ReadSmallCached(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env, "Usage: readSmallCached(dirFd: number, rel: string, max: number)");
  }
  int dir = info[0].As<Napi::Number>().Int32Value();
  std::string rel = info[1].As<Napi::String>().Utf8Value();
  int64_t max = info[2].As<Napi::Number>().Int64Value();
  SmallFile file;
  int rc = fs_read_small_cached(dir, rel, max < 0 ? 0 : static_cast<size_t>(max), &file);
  if (rc < 0) return Napi::Number::New(env, rc);
  Napi::Object out = Napi::Object::New(env);
  out.Set("dev", static_cast<double>(file.st.dev));
  out.Set("ino", static_cast<double>(file.st.ino));
  out.Set("mode", file.st.mode);
  out.Set("nlink", static_cast<double>(file.st.nlink));
  out.Set("uid", file.st.uid);
  out.Set("gid", file.st.gid);
  out.Set("size", static_cast<double>(file.st.size));
  out.Set("mtimeMs", static_cast<double>(file.st.mtime_sec) * 1e3 + static_cast<double>(file.st.mtime_nsec) / 1e6);
  out.Set("mtimeNs", Napi::BigInt::New(env, static_cast<int64_t>(file.st.mtime_sec * 1000000000LL + file.st.mtime_nsec)));
  if (rc == 0) out.Set("data", Napi::Buffer<char>::Copy(env, file.data.data(), file.data.size()));
  return out;
}

}  // namespace

void RegisterSmallFile(Napi::Env env, Napi::Object exports) {
  exports.Set("readSmallCached", Napi::Function::New(env, ReadSmallCached, "readSmallCached"));
}

}  // namespace ng
