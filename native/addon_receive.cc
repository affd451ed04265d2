// Entry points of the receive transfer (native/receive.h):
//
//   receiveStart(socketFd, fileFd, prefix, length, algorithms, callback, idleTimeoutMs = 0,
//                copyOnly = false, minRate = 0, rateWindowMs = 0) -> id (> 0) | -errno
//   receiveCancel(id) -> boolean (false when the transfer already ended)
//
// `callback(err, written, digests)` runs once on the JS thread, through a thread-safe function,
// after the transfer thread has closed every fd it held: `err` is 0 or a negative errno,
// `written` the bytes written to the file (prefix included), `digests` one Buffer per algorithm
// (empty unless err is 0).
//
// Not an AsyncWorker on purpose, as for sendfile: an upload lasts as long as its sender is slow.
// The fds are borrowed only for the duration of receiveStart (the transfer works on duplicates),
// and `prefix` is copied, so JS keeps owning all three.
#include "addon_receive.h"

#include <errno.h>
#include <stdint.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "receive.h"

namespace ng {

namespace {

std::mutex g_mu;
std::unordered_map<uint32_t, std::shared_ptr<ReceiveTransfer>> g_transfers;
uint32_t g_next_id = 0;

struct Context {
  uint32_t id = 0;
  std::shared_ptr<ReceiveTransfer> transfer;
};

struct Result {
  int err;
  uint64_t written;
  std::vector<std::string> digests;
};

void Forget(uint32_t id) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_transfers.erase(id);
}

bool SizeArg(const Napi::Value& v, uint64_t* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d))) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

Napi::Value ReceiveStart(const Napi::CallbackInfo& info) {
  const char* usage =
      "Usage: receiveStart(socketFd: number, fileFd: number, prefix: Buffer, length: number, "
      "algorithms: string[], callback: (err: number, written: number, digests: Buffer[]) => void, "
      "idleTimeoutMs?: number, copyOnly?: boolean, minRate?: number, rateWindowMs?: number)";
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
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    if (!info[6].IsNumber()) throw Napi::TypeError::New(env, usage);
    double ms = info[6].As<Napi::Number>().DoubleValue();
    if (!(ms >= 0)) throw Napi::TypeError::New(env, usage);
    options.idle_timeout_ms = ms > 2147483647.0 ? 2147483647 : static_cast<int>(ms);
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
  int socket_fd = info[0].As<Napi::Number>().Int32Value();
  int file_fd = info[1].As<Napi::Number>().Int32Value();

  auto* ctx = new Context();
  // As in addon_sendfile.cc: the finalizer runs once the thread released the function (or at env
  // teardown, where the transfer may still run and is cancelled first).
  Napi::ThreadSafeFunction tsfn = Napi::ThreadSafeFunction::New(
      env, info[5].As<Napi::Function>(), "nullgate:receive", 0, 1, ctx, [](Napi::Env, Context* c) {
        if (c->transfer) {
          c->transfer->Cancel();
          c->transfer->Join();
        }
        Forget(c->id);
        delete c;
      });

  auto done = [tsfn](int err, uint64_t written, std::vector<std::string> digests) mutable {
    auto* result = new Result{err, written, std::move(digests)};
    napi_status status = tsfn.NonBlockingCall(result, [](Napi::Env env, Napi::Function callback, Result* r) {
      std::unique_ptr<Result> owned(r);
      if (env == nullptr) return;
      Napi::Array digests = Napi::Array::New(env, owned->digests.size());
      for (size_t i = 0; i < owned->digests.size(); i++) {
        const std::string& d = owned->digests[i];
        digests.Set(static_cast<uint32_t>(i), Napi::Buffer<char>::Copy(env, d.data(), d.size()));
      }
      callback.Call({Napi::Number::New(env, owned->err), Napi::Number::New(env, static_cast<double>(owned->written)),
                     digests});
    });
    if (status != napi_ok) delete result;
    tsfn.Release();
  };

  int err = 0;
  std::shared_ptr<ReceiveTransfer> transfer =
      ReceiveTransfer::Start(socket_fd, file_fd, std::move(options), done, &err);
  if (!transfer) {
    tsfn.Release();
    return Napi::Number::New(env, err);
  }
  uint32_t id;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    do id = ++g_next_id; while (id == 0 || g_transfers.count(id) != 0);
    g_transfers.emplace(id, transfer);
  }
  ctx->id = id;
  ctx->transfer = std::move(transfer);
  return Napi::Number::New(env, id);
}

Napi::Value ReceiveCancel(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "Usage: receiveCancel(id: number)");
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  std::shared_ptr<ReceiveTransfer> transfer;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_transfers.find(id);
    if (it != g_transfers.end()) transfer = it->second;
  }
  return Napi::Boolean::New(info.Env(), transfer ? transfer->Cancel() : false);
}

}  // namespace

void RegisterReceive(Napi::Env env, Napi::Object exports) {
  exports.Set("receiveStart", Napi::Function::New(env, ReceiveStart, "receiveStart"));
  exports.Set("receiveCancel", Napi::Function::New(env, ReceiveCancel, "receiveCancel"));
}

}  // namespace ng
