// Entry points of the nullgate addon. Each one checks its argument types (a mistake there is a
// programmer error: TypeError "Usage: …"), calls one helper from socket_ops / fs_ops and returns
// its result. Syscall failures come back as negative errno numbers; native/binding.ts turns them
// into Node-shaped errors. No policy lives here.
//
// The socket calls are synchronous on purpose: every socket is SOCK_NONBLOCK, so bind, listen,
// connect (AF_UNIX completes or fails at once) and getsockopt never wait, and an AsyncWorker
// would only add a thread hop. (setBlocking turns a connected one blocking for a client that
// reads it with blocking calls: its choice, made in JS.) Once an fd is returned to JS, JS owns it: C++ never closes it.
#include <napi.h>

#include <errno.h>

#include <string>

#include "addon_fs.h"
#include "addon_receive.h"
#include "addon_sendfile.h"
#include "addon_small.h"
#include "peer_root.h"
#include "socket_ops.h"

namespace {

int32_t FdArg(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), usage);
  return info[i].As<Napi::Number>().Int32Value();
}

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsBuffer()) throw Napi::TypeError::New(info.Env(), usage);
  return info[i].As<Napi::Buffer<uint8_t>>();
}

Napi::Value Socket(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ng::sock_create()); }

Napi::Value Bind(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: bind(fd: number, sunPath: Buffer)";
  int fd = FdArg(info, 0, usage);
  auto path = BufferArg(info, 1, usage);
  return Napi::Number::New(info.Env(), ng::sock_bind(fd, path.Data(), path.Length()));
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: listen(fd: number, backlog: number)";
  int fd = FdArg(info, 0, usage);
  int backlog = FdArg(info, 1, usage);
  return Napi::Number::New(info.Env(), ng::sock_listen(fd, backlog));
}

Napi::Value Accept(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "Usage: accept(fd: number)");
  return Napi::Number::New(info.Env(), ng::sock_accept(fd));
}

Napi::Value Connect(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: connect(fd: number, sunPath: Buffer)";
  int fd = FdArg(info, 0, usage);
  auto path = BufferArg(info, 1, usage);
  return Napi::Number::New(info.Env(), ng::sock_connect(fd, path.Data(), path.Length()));
}

Napi::Value SetBlocking(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: setBlocking(fd: number, blocking: boolean, timeoutMs: number)";
  int fd = FdArg(info, 0, usage);
  if (info.Length() < 3 || !info[1].IsBoolean() || !info[2].IsNumber()) throw Napi::TypeError::New(info.Env(), usage);
  bool blocking = info[1].As<Napi::Boolean>().Value();
  int64_t timeout_ms = info[2].As<Napi::Number>().Int64Value();
  return Napi::Number::New(info.Env(), ng::sock_set_blocking(fd, blocking, timeout_ms));
}

Napi::Value SockName(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "Usage: sockName(fd: number)");
  std::string name;
  int rc = ng::sock_name(fd, &name);
  if (rc < 0) return Napi::Number::New(info.Env(), rc);
  return Napi::Buffer<uint8_t>::Copy(info.Env(), reinterpret_cast<const uint8_t*>(name.data()), name.size());
}

Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "Usage: peerCred(fd: number)");
  ng::PeerCred cred;
  int rc = ng::sock_peercred(fd, &cred);
  if (rc < 0) return Napi::Number::New(info.Env(), rc);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("pid", static_cast<double>(cred.pid));
  out.Set("uid", static_cast<double>(cred.uid));
  out.Set("gid", static_cast<double>(cred.gid));
  return out;
}

// Synchronous: a few procfs calls answered from memory (native/peer_root.h), once per connection.
Napi::Value PeerRoot(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "Usage: peerRoot(fd: number)");
  ng::PeerRoot root;
  int rc = ng::peer_root(fd, &root);
  if (rc < 0) return Napi::Number::New(info.Env(), rc);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("pid", static_cast<double>(root.pid));
  out.Set("dev", Napi::BigInt::New(info.Env(), root.dev));
  out.Set("ino", Napi::BigInt::New(info.Env(), root.ino));
  out.Set("viaPidfd", root.via_pidfd);
  return out;
}

Napi::Value SockInfo(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "Usage: sockInfo(fd: number)");
  ng::SockInfo si;
  int rc = ng::sock_info(fd, &si);
  if (rc < 0) return Napi::Number::New(info.Env(), rc);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("domain", si.domain);
  out.Set("type", si.type);
  out.Set("listening", si.listening != 0);
  return out;
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "Usage: close(fd: number)");
  return Napi::Number::New(info.Env(), ng::fd_close(fd));
}

// The fd is borrowed; the duplicate is the caller's to wrap (a net.Socket then owns it).
Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "Usage: dup(fd: number)");
  return Napi::Number::New(info.Env(), ng::fd_dup(fd));
}

// Blocks the JS thread for one thread create/join (tens of microseconds, once at start-up); an
// AsyncWorker would make `listen` asynchronous for no gain.
Napi::Value ListenInNetns(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: listenInNetns(nsPath: string, sunPath: Buffer, backlog: number)";
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), usage);
  std::string ns_path = info[0].As<Napi::String>().Utf8Value();
  auto path = BufferArg(info, 1, usage);
  int backlog = FdArg(info, 2, usage);
  Napi::Env env = info.Env();
  if (ns_path.find('\0') != std::string::npos) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("errno", -EINVAL);
    out.Set("syscall", "open");
    return out;
  }
  const char* failed = "";
  int rc = ng::sock_listen_in_netns(ns_path.c_str(), path.Data(), path.Length(), backlog, &failed);
  if (rc >= 0) return Napi::Number::New(env, rc);
  Napi::Object out = Napi::Object::New(env);
  out.Set("errno", rc);
  out.Set("syscall", failed);
  return out;
}

Napi::Value SendDatagram(const Napi::CallbackInfo& info) {
  const char* usage = "Usage: sendDatagram(sunPath: Buffer, data: Buffer)";
  auto path = BufferArg(info, 0, usage);
  auto data = BufferArg(info, 1, usage);
  return Napi::Number::New(info.Env(), ng::dgram_send(path.Data(), path.Length(), data.Data(), data.Length()));
}

// reportTransientMemory(bytes): tells V8 that `bytes` of memory outside its heap came and went
// (napi_adjust_external_memory up, then down again). V8 collects dead ArrayBuffers when the
// memory it knows of outside its heap has grown by its soft limit (64 MiB) since the last GC;
// a fast upload makes a dead 64 KiB socket-read buffer per read, so with V8 12+ (Node 22 and
// later) a whole limit's worth of them piled up before each GC. Announcing the bytes an upload
// has streamed through makes that GC come sooner. No policy here: the caller says how much.
Napi::Value ReportTransientMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(env, "Usage: reportTransientMemory(bytes: number)");
  }
  int64_t bytes = info[0].As<Napi::Number>().Int64Value();
  if (bytes <= 0) return env.Undefined();
  int64_t ignored = 0;
  napi_adjust_external_memory(env, bytes, &ignored);
  napi_adjust_external_memory(env, -bytes, &ignored);
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("socket", Napi::Function::New(env, Socket, "socket"));
  exports.Set("bind", Napi::Function::New(env, Bind, "bind"));
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
  exports.Set("accept", Napi::Function::New(env, Accept, "accept"));
  exports.Set("connect", Napi::Function::New(env, Connect, "connect"));
  exports.Set("setBlocking", Napi::Function::New(env, SetBlocking, "setBlocking"));
  exports.Set("sockName", Napi::Function::New(env, SockName, "sockName"));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred, "peerCred"));
  exports.Set("peerRoot", Napi::Function::New(env, PeerRoot, "peerRoot"));
  exports.Set("sockInfo", Napi::Function::New(env, SockInfo, "sockInfo"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("listenInNetns", Napi::Function::New(env, ListenInNetns, "listenInNetns"));
  exports.Set("sendDatagram", Napi::Function::New(env, SendDatagram, "sendDatagram"));
  exports.Set("reportTransientMemory", Napi::Function::New(env, ReportTransientMemory, "reportTransientMemory"));
  ng::RegisterFs(env, exports);
  ng::RegisterSendfile(env, exports);
  ng::RegisterReceive(env, exports);
  ng::RegisterSmallFile(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(nullgate, Init)
