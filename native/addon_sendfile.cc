// Entry points of the zero-copy transfer (native/sendfile.h):
//
//   sendfileStart(socketFd, fileFd, offset, length, callback, idleTimeoutMs = 0) -> id (> 0) | -errno
//   sendfileCancel(id) -> boolean (false when the transfer already ended)
//
// `callback(err, bytesSent)` runs once on the JS thread, through a thread-safe function, after the
// transfer thread has closed every fd it held: `err` is 0 or a negative errno (-ECANCELED after
// sendfileCancel, -EPIPE when the reader went away, -ENODATA when the file ended early, -ETIMEDOUT
// when the socket stayed full for idleTimeoutMs; 0 means no limit).
//
// Not an AsyncWorker on purpose: a transfer lasts as long as its reader is slow, and a libuv pool
// thread held that long starves every fs call of the process. The fds are borrowed only for the
// duration of sendfileStart (the transfer works on duplicates), so JS keeps owning both.
#include "addon_sendfile.h"

#include <errno.h>
#include <stdint.h>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "sendfile.h"

namespace ng {

namespace {

// Transfers still running, by id, for sendfileCancel. Shared by every env (worker threads) of the
// process, hence the mutex; ids are never reused within a process.
std::mutex g_mu;
std::unordered_map<uint32_t, std::shared_ptr<SendfileTransfer>> g_transfers;
uint32_t g_next_id = 0;

struct Context {
  uint32_t id = 0;
  std::shared_ptr<SendfileTransfer> transfer;
};

struct Result {
  int err;
  uint64_t sent;
};

void Forget(uint32_t id) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_transfers.erase(id);
}

// A byte offset or count from JS: a non-negative integer a double holds exactly.
bool SizeArg(const Napi::Value& v, uint64_t* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d))) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

Napi::Value SendfileStart(const Napi::CallbackInfo& info) {
  const char* usage =
      "Usage: sendfileStart(socketFd: number, fileFd: number, offset: number, length: number, "
      "callback: (err: number, sent: number) => void, idleTimeoutMs?: number)";
  Napi::Env env = info.Env();
  uint64_t offset = 0;
  uint64_t length = 0;
  if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !SizeArg(info[2], &offset) ||
      !SizeArg(info[3], &length) || !info[4].IsFunction()) {
    throw Napi::TypeError::New(env, usage);
  }
  int idle_timeout_ms = 0;
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    if (!info[5].IsNumber()) throw Napi::TypeError::New(env, usage);
    double ms = info[5].As<Napi::Number>().DoubleValue();
    if (!(ms >= 0)) throw Napi::TypeError::New(env, usage);
    idle_timeout_ms = ms > 2147483647.0 ? 2147483647 : static_cast<int>(ms);
  }
  int socket_fd = info[0].As<Napi::Number>().Int32Value();
  int file_fd = info[1].As<Napi::Number>().Int32Value();

  auto* ctx = new Context();
  // The finalizer runs on the JS thread once the transfer thread released the function (or at env
  // teardown): the thread is then past its last use of the transfer, so joining is immediate —
  // except at teardown, where the transfer may still run and is cancelled first.
  Napi::ThreadSafeFunction tsfn = Napi::ThreadSafeFunction::New(
      env, info[4].As<Napi::Function>(), "nullgate:sendfile", 0, 1, ctx, [](Napi::Env, Context* c) {
        if (c->transfer) {
          c->transfer->Cancel();
          c->transfer->Join();
        }
        Forget(c->id);
        delete c;
      });

  auto done = [tsfn](int err, uint64_t sent) mutable {
    auto* result = new Result{err, sent};
    napi_status status = tsfn.NonBlockingCall(result, [](Napi::Env env, Napi::Function callback, Result* r) {
      std::unique_ptr<Result> owned(r);
      if (env == nullptr) return;  // env tearing down: nobody is left to tell
      callback.Call({Napi::Number::New(env, owned->err), Napi::Number::New(env, static_cast<double>(owned->sent))});
    });
    if (status != napi_ok) delete result;
    tsfn.Release();
  };

  int err = 0;
  std::shared_ptr<SendfileTransfer> transfer = SendfileTransfer::Start(socket_fd, file_fd, offset, length, idle_timeout_ms, done, &err);
  if (!transfer) {
    tsfn.Release();  // the finalizer deletes ctx
    return Napi::Number::New(env, err);
  }
  uint32_t id;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    do id = ++g_next_id; while (id == 0 || g_transfers.count(id) != 0);
    g_transfers.emplace(id, transfer);
  }
  // The finalizer cannot run before this: the transfer thread holds the function until `done`,
  // and `done`'s call is delivered on this (JS) thread, after we return.
  ctx->id = id;
  ctx->transfer = std::move(transfer);
  return Napi::Number::New(env, id);
}

Napi::Value SendfileCancel(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "Usage: sendfileCancel(id: number)");
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  std::shared_ptr<SendfileTransfer> transfer;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_transfers.find(id);
    if (it != g_transfers.end()) transfer = it->second;
  }
  return Napi::Boolean::New(info.Env(), transfer ? transfer->Cancel() : false);
}

}  // namespace

void RegisterSendfile(Napi::Env env, Napi::Object exports) {
  exports.Set("sendfileStart", Napi::Function::New(env, SendfileStart, "sendfileStart"));
  exports.Set("sendfileCancel", Napi::Function::New(env, SendfileCancel, "sendfileCancel"));
}

}  // namespace ng
