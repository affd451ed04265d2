// The JS boundary both zero-copy transfers share (native/addon_sendfile.cc,
// native/addon_receive.cc): the table of running transfers by id that `*Cancel(id)` looks in,
// and the thread-safe function through which a transfer thread reports its end to a JS callback.
//
// Not an AsyncWorker on purpose: a transfer lasts as long as its peer is slow, and a libuv pool
// thread held that long starves every fs call of the process (native/transfer_thread.h).
#pragma once

#include <napi.h>
#include <stdint.h>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace ng {

// A byte offset or count from JS: a non-negative integer a double holds exactly.
inline bool SizeArg(const Napi::Value& v, uint64_t* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d))) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

// A timeout in milliseconds from JS, at least 0, capped at INT_MAX (poll(2) takes an int).
inline bool MillisArg(const Napi::Value& v, int* out) {
  if (!v.IsNumber()) return false;
  double ms = v.As<Napi::Number>().DoubleValue();
  if (!(ms >= 0)) return false;
  *out = ms > 2147483647.0 ? 2147483647 : static_cast<int>(ms);
  return true;
}

// The transfers of one kind still running, by id. `Transfer` has Cancel() and Join().
template <typename Transfer>
class TransferTable {
 public:
  // Starts a transfer whose end is told to `callback` on the JS thread. `start(report, &err)`
  // makes it (Transfer::Start, its Done calling `report` once with a `new Result`); `Result`
  // has `void Call(Napi::Env, Napi::Function) const`, which calls the callback with it. Returns
  // the transfer's id (> 0), or the negative errno that Start gave.
  template <typename Result, typename StartFn>
  Napi::Value Start(Napi::Env env, Napi::Function callback, const char* resource, StartFn start) {
    auto* ctx = new Context{this, 0, nullptr};
    // The finalizer runs on the JS thread once the transfer thread released the function (or at
    // env teardown): the thread is then past its last use of the transfer, so joining is
    // immediate, except at teardown, where the transfer may still run and is cancelled first.
    Napi::ThreadSafeFunction tsfn =
        Napi::ThreadSafeFunction::New(env, callback, resource, 0, 1, ctx, [](Napi::Env, Context* c) {
          if (c->transfer) {
            c->transfer->Cancel();
            c->transfer->Join();
          }
          c->table->Forget(c->id);
          delete c;
        });
    auto report = [tsfn](Result* result) mutable {
      napi_status status = tsfn.NonBlockingCall(result, [](Napi::Env env, Napi::Function fn, Result* r) {
        std::unique_ptr<Result> owned(r);
        if (env == nullptr) return;  // env tearing down: nobody is left to tell
        owned->Call(env, fn);
      });
      if (status != napi_ok) delete result;
      tsfn.Release();
    };
    int err = 0;
    std::shared_ptr<Transfer> transfer = start(std::move(report), &err);
    if (!transfer) {
      tsfn.Release();  // the finalizer deletes ctx
      return Napi::Number::New(env, err);
    }
    uint32_t id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      do id = ++next_id_;
      while (id == 0 || transfers_.count(id) != 0);
      transfers_.emplace(id, transfer);
    }
    // The finalizer cannot run before this: the transfer thread holds the function until it
    // reports, and the report is delivered on this (JS) thread, after we return.
    ctx->id = id;
    ctx->transfer = std::move(transfer);
    return Napi::Number::New(env, id);
  }

  // `*Cancel(id)`: false when the transfer already ended (or never was).
  Napi::Value Cancel(const Napi::CallbackInfo& info, const char* usage) {
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), usage);
    uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    std::shared_ptr<Transfer> transfer;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = transfers_.find(id);
      if (it != transfers_.end()) transfer = it->second;
    }
    return Napi::Boolean::New(info.Env(), transfer ? transfer->Cancel() : false);
  }

 private:
  struct Context {
    TransferTable* table;
    uint32_t id;
    std::shared_ptr<Transfer> transfer;
  };

  void Forget(uint32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    transfers_.erase(id);
  }

  // Shared by every env (worker threads) of the process, hence the mutex; ids are never reused
  // within a process.
  std::mutex mu_;
  std::unordered_map<uint32_t, std::shared_ptr<Transfer>> transfers_;
  uint32_t next_id_ = 0;
};

}  // namespace ng
