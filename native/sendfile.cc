#include "sendfile.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
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
  std::shared_ptr<SendfileTransfer> t(new SendfileTransfer());
  *err = t->thread_.Open();
  if (*err < 0) return nullptr;
  t->offset_ = offset;
  t->length_ = length;
  t->idle_timeout_ms_ = idle_timeout_ms > 0 ? idle_timeout_ms : -1;
  t->done_ = std::move(done);
  t->sock_ = sock.release();
  t->file_ = file.release();
  *err = t->thread_.Start([raw = t.get()] { raw->Run(); });
  if (*err < 0) {
    // No thread: close what it would have closed. done_ is never called.
    ::close(t->sock_);
    ::close(t->file_);
    return nullptr;
  }
  return t;
}

SendfileTransfer::~SendfileTransfer() {
  thread_.Cancel();
  thread_.Join();
}

bool SendfileTransfer::Cancel() { return thread_.Cancel(); }

void SendfileTransfer::Join() { thread_.Join(); }

void SendfileTransfer::Run() {
  int err = Loop();
  ::close(sock_);
  ::close(file_);
  thread_.Finish();
  done_(err, sent_);
}

int SendfileTransfer::Loop() {
  off_t off = static_cast<off_t>(offset_);
  while (sent_ < length_) {
    // A fast reader never makes the socket full, so the eventfd alone would not be seen.
    if (thread_.cancelled()) return -ECANCELED;
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
    struct pollfd fds[2] = {{sock_, POLLOUT, 0}, {thread_.event_fd(), POLLIN, 0}};
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
