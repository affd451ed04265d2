// AF_UNIX socket primitives with exact-length addresses. Plain C++, no Napi: every function
// returns a non-negative value on success or -errno on failure, and closes nothing it did not
// open. `path`/`len` are the raw bytes of sun_path: a leading NUL byte means the abstract
// namespace, and len is used as is (addrlen = offsetof(sun_path) + len), never padded.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace ng {

// socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
int sock_create();
// bind(); len == 0 asks the kernel to autobind an abstract name (unix(7) "Autobind feature").
int sock_bind(int fd, const uint8_t* path, size_t len);
int sock_listen(int fd, int backlog);
// accept4 of one pending connection, non-blocking and close-on-exec: its fd, -EAGAIN when none is
// pending, or another -errno.
int sock_accept(int fd);
// Non-blocking connect: on AF_UNIX stream sockets it completes at once or fails
// (EAGAIN when the listener's backlog is full).
int sock_connect(int fd, const uint8_t* path, size_t len);
// Blocking or not: blocking clears O_NONBLOCK and bounds every read and write by `timeout_ms`
// (SO_RCVTIMEO and SO_SNDTIMEO; 0 is no bound), after which it fails with EAGAIN; not blocking
// sets O_NONBLOCK again (the bounds stay, and are then moot). The chroot client's short requests
// (client/blocking-transport.ts) read and write the connection with plain blocking calls.
int sock_set_blocking(int fd, bool blocking, int64_t timeout_ms);
// getsockname(): the exact sun_path bytes the kernel reports (possibly empty).
int sock_name(int fd, std::string* out);
struct PeerCred {
  pid_t pid;
  uid_t uid;
  gid_t gid;
};
int sock_peercred(int fd, PeerCred* out);
struct SockInfo {
  int domain;
  int type;
  int listening;
};
// SO_DOMAIN / SO_TYPE / SO_ACCEPTCONN, to vet inherited (socket-activated) fds.
int sock_info(int fd, SockInfo* out);
int fd_close(int fd);
// fcntl(F_DUPFD_CLOEXEC): a second fd on the same open socket. The socket is released (and a
// peer with unsent data reset) only when its last fd is closed, so the duplicate keeps the
// connection open after the first fd is closed (routes/linger.ts cutLingering).
int fd_dup(int fd);

// socket + bind + listen inside the network namespace `ns_path` (a /proc/PID/ns/net or
// /run/netns/NAME file). The socket belongs to the namespace it was created in, so a short-lived
// thread enters the namespace (setns(2) changes only the calling thread) and makes it there; the
// process stays where it is. On failure *failed names the syscall that failed.
int sock_listen_in_netns(const char* ns_path, const uint8_t* path, size_t len, int backlog, const char** failed);

// One datagram to an AF_UNIX SOCK_DGRAM address with an exact length (sd_notify(3): NOTIFY_SOCKET
// is often an abstract name).
int dgram_send(const uint8_t* path, size_t len, const uint8_t* data, size_t data_len);

}  // namespace ng
