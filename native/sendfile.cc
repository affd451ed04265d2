#include "sendfile.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>
#include <utility>

#include "fd_guard.h"

namespace ng {

namespace {

// sendfile(2) moves at most 0x7ffff000 bytes per call; a socket takes far less at once anyway.
constexpr uint64_t kMaxChunk = 0x7ffff000;

}  // namespace

std::shared_ptr<SendfileTransfer> SendfileTransfer::Start(int socket_fd, int file_fd, uint64_t offset,
                                                          uint64_t length, int idle_timeout_ms, Done done,
                                                          int* err) {
  FdGuard sock(fcntl(socket_fd, F_DUPFD_CLOEXEC, 0));
  if (!sock.ok()) {
    *err = -errno;
    return nullptr;
  }
  FdGuard file(fcntl(file_fd, F_DUPFD_CLOEXEC, 0));
  if (!file.ok()) {
    *err = -errno;
    return nullptr;
  }
  FdGuard event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event.ok()) {
    *err = -errno;
    return nullptr;
  }
  std::shared_ptr<SendfileTransfer> t(new SendfileTransfer());
  t->offset_ = offset;
  t->length_ = length;
  t->idle_timeout_ms_ = idle_timeout_ms > 0 ? idle_timeout_ms : -1;
  t->done_ = std::move(done);
  t->sock_ = sock.release();
  t->file_ = file.release();
  t->event_ = event.release();
  // The thread must not take signals meant for Node's main thread (libuv's own threads block
  // them too); it inherits the mask in effect while it is created.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    t->thread_ = std::thread([raw = t.get()] { raw->Run(); });
  } catch (const std::system_error&) {
    *err = -EAGAIN;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!t->thread_.joinable()) {
    // No thread: close what the thread would have closed. done_ is never called.
    ::close(t->sock_);
    ::close(t->file_);
    ::close(t->event_);
    t->ended_ = true;
    return nullptr;
  }
  return t;
}

SendfileTransfer::~SendfileTransfer() {
  Cancel();
  Join();
  // Only when the last reference was dropped on the transfer thread itself (it is then past every
  // use of this object): a joinable std::thread must not be destroyed.
  if (thread_.joinable()) thread_.detach();
}

bool SendfileTransfer::Cancel() {
  cancelled_.store(true, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return false;
  uint64_t one = 1;
  // EAGAIN only when the counter would overflow, i.e. it is already set: nothing to do then.
  ssize_t rc = ::write(event_, &one, sizeof one);
  (void)rc;
  return true;
}

void SendfileTransfer::Join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void SendfileTransfer::Run() {
  int err = Loop();
  ::close(sock_);
  ::close(file_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ::close(event_);
    ended_ = true;
  }
  done_(err, sent_);
}

int SendfileTransfer::Loop() {
  off_t off = static_cast<off_t>(offset_);
  while (sent_ < length_) {
    // A fast reader never makes the socket full, so the eventfd alone would not be seen.
    if (cancelled_.load(std::memory_order_relaxed)) return -ECANCELED;
    size_t chunk = static_cast<size_t>(std::min(length_ - sent_, kMaxChunk));
    ssize_t n = ::sendfile(sock_, file_, &off, chunk);
    if (n > 0) {
      sent_ += static_cast<uint64_t>(n);
      continue;
    }
    // The file is shorter than the range promised in Content-Length (truncated meanwhile).
    if (n == 0) return -ENODATA;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return -errno;
    // The socket (non-blocking: Node made it so) is full: sleep until it drains or we are
    // cancelled. POLLHUP/POLLERR on the socket wake us too; sendfile then reports the error.
    struct pollfd fds[2] = {{sock_, POLLOUT, 0}, {event_, POLLIN, 0}};
    int rc;
    do rc = ::poll(fds, 2, idle_timeout_ms_);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) return -errno;
    if (rc == 0) return -ETIMEDOUT;
    if (fds[1].revents != 0) return -ECANCELED;
  }
  return 0;
}

}  // namespace ng
