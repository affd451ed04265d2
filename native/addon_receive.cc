// Entry points of the receive transfer (native/receive.h):
//
//   receiveStart(socketFd, fileFd, prefix, length, algorithms, callback, idleTimeoutMs = 0,
//                copyOnly = false, minRate = 0, rateWindowMs = 0, writebackBytes = 8 MiB)
//                -> id (> 0) | -errno
//   receiveCancel(id) -> boolean (false when the transfer already ended)
//
// `callback(err, written, digests, windowBytes, windowMs)` runs once on the JS thread, through a
// thread-safe function, after the transfer thread has closed every fd it held: `err` is 0 or a
// negative errno, `written` the bytes written to the file (prefix included), `digests` one Buffer
// per algorithm (empty unless err is 0), `windowBytes` and `windowMs` after -ETIME (too slow) the
// bytes of the last body-rate window and the time it waited for them (else 0).
//
// Not an AsyncWorker on purpose (native/addon_transfer.h): an upload lasts as long as its
// sender is slow. The fds are borrowed only for the duration of receiveStart (the transfer works on duplicates),
// and `prefix` is copied, so JS keeps owning all three.
#include "addon_receive.h"

#include <stdint.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "addon_transfer.h"
#include "receive.h"

namespace ng {

namespace {

TransferTable<ReceiveTransfer> g_transfers;

struct Result {
  int err;
  uint64_t written;
  std::vector<std::string> digests;
  uint64_t window_bytes;
  int64_t window_ms;
  void Call(Napi::Env env, Napi::Function callback) const {
    Napi::Array list = Napi::Array::New(env, digests.size());
    for (size_t i = 0; i < digests.size(); i++) {
      const std::string& d = digests[i];
      list.Set(static_cast<uint32_t>(i), Napi::Buffer<char>::Copy(env, d.data(), d.size()));
    }
    callback.Call({Napi::Number::New(env, err), Napi::Number::New(env, static_cast<double>(written)), list,
                   Napi::Number::New(env, static_cast<double>(window_bytes)),
                   Napi::Number::New(env, static_cast<double>(window_ms))});
  }
};

Napi::Value ReceiveStart(const Napi::CallbackInfo& info) {
  const char* usage =
      "Usage: receiveStart(socketFd: number, fileFd: number, prefix: Buffer, length: number, "
      "algorithms: string[], callback: (err: number, written: number, digests: Buffer[], windowBytes: number, "
      "windowMs: number) => void, "
      "idleTimeoutMs?: number, copyOnly?: boolean, minRate?: number, rateWindowMs?: number, "
      "writebackBytes?: number)";
  Napi::Env env = info.Env();
  ReceiveOptions options;
  if (info.Length() < 6 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBuffer() ||
      !SizeArg(info[3], &options.length) || !info[4].IsArray() || !info[5].IsFunction()) {
    throw Napi::TypeError::New(env, usage);
  }
  auto prefix = info[2].As<Napi::Buffer<char>>();
  options.prefix.assign(prefix.Data(), prefix.Length());
  auto algorithms = info[4].As<Napi::Array>();
  for (uint32_t i = 0; i < algorithms.Length(); i++) {
    Napi::Value name = algorithms.Get(i);
    if (!name.IsString()) throw Napi::TypeError::New(env, usage);
    options.algorithms.push_back(name.As<Napi::String>().Utf8Value());
  }
  if (info.Length() > 6 && !info[6].IsUndefined() && !MillisArg(info[6], &options.idle_timeout_ms)) {
    throw Napi::TypeError::New(env, usage);
  }
  if (info.Length() > 7 && !info[7].IsUndefined()) {
    if (!info[7].IsBoolean()) throw Napi::TypeError::New(env, usage);
    options.copy_only = info[7].As<Napi::Boolean>().Value();
  }
  if (info.Length() > 8 && !info[8].IsUndefined() && !SizeArg(info[8], &options.min_rate)) {
    throw Napi::TypeError::New(env, usage);
  }
  if (info.Length() > 9 && !info[9].IsUndefined()) {
    uint64_t window = 0;
    if (!SizeArg(info[9], &window)) throw Napi::TypeError::New(env, usage);
    options.rate_window_ms = window > 2147483647 ? 2147483647 : static_cast<int>(window);
  }
  if (info.Length() > 10 && !info[10].IsUndefined() && !SizeArg(info[10], &options.writeback_step)) {
    throw Napi::TypeError::New(env, usage);
  }
  int socket_fd = info[0].As<Napi::Number>().Int32Value();
  int file_fd = info[1].As<Napi::Number>().Int32Value();
  return g_transfers.Start<Result>(
      env, info[5].As<Napi::Function>(), "nullgate:receive", [&](auto report, int* err) {
        auto done = [report](int e, uint64_t written, std::vector<std::string> digests, uint64_t window_bytes,
                             int64_t window_ms) mutable {
          report(new Result{e, written, std::move(digests), window_bytes, window_ms});
        };
        return ReceiveTransfer::Start(socket_fd, file_fd, std::move(options), done, err);
      });
}

Napi::Value ReceiveCancel(const Napi::CallbackInfo& info) {
  return g_transfers.Cancel(info, "Usage: receiveCancel(id: number)");
}

}  // namespace

void RegisterReceive(Napi::Env env, Napi::Object exports) {
  exports.Set("receiveStart", Napi::Function::New(env, ReceiveStart, "receiveStart"));
  exports.Set("receiveCancel", Napi::Function::New(env, ReceiveCancel, "receiveCancel"));
}

}  // namespace ng
