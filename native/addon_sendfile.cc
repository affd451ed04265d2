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
// Not an AsyncWorker on purpose (native/addon_transfer.h). The fds are borrowed only for the
// duration of sendfileStart (the transfer works on duplicates), so JS keeps owning both.
#include "addon_sendfile.h"

#include <stdint.h>

#include <memory>
#include <utility>

#include "addon_transfer.h"
#include "sendfile.h"

namespace ng {

namespace {

TransferTable<SendfileTransfer> g_transfers;

struct Result {
  int err;
  uint64_t sent;
  void Call(Napi::Env env, Napi::Function callback) const {
    callback.Call({Napi::Number::New(env, err), Napi::Number::New(env, static_cast<double>(sent))});
  }
};

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
  if (info.Length() > 5 && !info[5].IsUndefined() && !MillisArg(info[5], &idle_timeout_ms)) {
    throw Napi::TypeError::New(env, usage);
  }
  int socket_fd = info[0].As<Napi::Number>().Int32Value();
  int file_fd = info[1].As<Napi::Number>().Int32Value();
  return g_transfers.Start<Result>(
      env, info[4].As<Napi::Function>(), "nullgate:sendfile", [&](auto report, int* err) {
        auto done = [report](int e, uint64_t sent) mutable { report(new Result{e, sent}); };
        return SendfileTransfer::Start(socket_fd, file_fd, offset, length, idle_timeout_ms, done, err);
      });
}

Napi::Value SendfileCancel(const Napi::CallbackInfo& info) {
  return g_transfers.Cancel(info, "Usage: sendfileCancel(id: number)");
}

}  // namespace

void RegisterSendfile(Napi::Env env, Napi::Object exports) {
  exports.Set("sendfileStart", Napi::Function::New(env, SendfileStart, "sendfileStart"));
  exports.Set("sendfileCancel", Napi::Function::New(env, SendfileCancel, "sendfileCancel"));
}

}  // namespace ng
