#include "receive.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

#include "fd_guard.h"

namespace ng {

namespace {

// The pipe is sized up so one splice moves up to this much (F_SETPIPE_SZ; the default 64 KiB
// pipe costs a syscall pair per 64 KiB). Unprivileged processes are capped by
// /proc/sys/fs/pipe-max-size (1 MiB by default): a refusal keeps the default size.
constexpr int kPipeBytes = 1 << 20;
// The read/write fallback's buffer (reused for the whole transfer).
constexpr size_t kBufferBytes = 1 << 20;

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

const EVP_MD* DigestByName(const std::string& name) {
  if (name == "sha256") return EVP_sha256();
  if (name == "sha512") return EVP_sha512();
  return nullptr;
}

}  // namespace

std::shared_ptr<ReceiveTransfer> ReceiveTransfer::Start(int socket_fd, int file_fd, ReceiveOptions options,
                                                        Done done, int* err) {
  for (const auto& name : options.algorithms) {
    if (DigestByName(name) == nullptr) {
      *err = -EINVAL;
      return nullptr;
    }
  }
  FdGuard sock(fcntl(socket_fd, F_DUPFD_CLOEXEC, 0));
  if (!sock.ok()) {
    *err = -errno;
    return nullptr;
  }
  // splice(2) refuses a file opened O_APPEND (EINVAL), and the flag belongs to the open file
  // description our duplicate would share with the caller's fd: a new description of the same
  // file (through /proc/self/fd) without it, positioned at its end, appends all the same. Where
  // /proc is not there, the duplicate is written with read + write instead.
  int flags = fcntl(file_fd, F_GETFL);
  if (flags < 0) {
    *err = -errno;
    return nullptr;
  }
  bool append = (flags & O_APPEND) != 0;
  FdGuard file;
  if (append) {
    std::string self = "/proc/self/fd/" + std::to_string(file_fd);
    file.reset(::open(self.c_str(), O_WRONLY | O_CLOEXEC));
    if (file.ok() && ::lseek64(file.get(), 0, SEEK_END) < 0) file.reset();
    if (!file.ok()) options.copy_only = true;
  }
  if (!file.ok()) file.reset(fcntl(file_fd, F_DUPFD_CLOEXEC, 0));
  if (!file.ok()) {
    *err = -errno;
    return nullptr;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    *err = -errno;
    return nullptr;
  }
  FdGuard pipe_r(fds[0]);
  FdGuard pipe_w(fds[1]);
  std::shared_ptr<ReceiveTransfer> t(new ReceiveTransfer());
  *err = t->thread_.Open();
  if (*err < 0) return nullptr;
  t->opt_ = std::move(options);
  t->opt_.idle_timeout_ms = t->opt_.idle_timeout_ms > 0 ? t->opt_.idle_timeout_ms : -1;
  t->done_ = std::move(done);
  t->sock_ = sock.release();
  t->file_ = file.release();
  t->pipe_r_ = pipe_r.release();
  t->pipe_w_ = pipe_w.release();
  *err = t->thread_.Start([raw = t.get()] { raw->Run(); });
  if (*err < 0) {
    // No thread: close what it would have closed. done_ is never called.
    for (int fd : {t->sock_, t->file_, t->pipe_r_, t->pipe_w_}) ::close(fd);
    return nullptr;
  }
  return t;
}

ReceiveTransfer::~ReceiveTransfer() {
  thread_.Cancel();
  thread_.Join();
}

bool ReceiveTransfer::Cancel() { return thread_.Cancel(); }

void ReceiveTransfer::Join() { thread_.Join(); }

void ReceiveTransfer::Run() {
  int err = Loop();
  for (void* h : hashes_) {
    auto* ctx = static_cast<EVP_MD_CTX*>(h);
    if (err == 0) {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (EVP_DigestFinal_ex(ctx, md, &len) == 1) {
        digests_.emplace_back(reinterpret_cast<char*>(md), len);
      } else {
        err = -EIO;
      }
    }
    EVP_MD_CTX_free(ctx);
  }
  hashes_.clear();
  if (err != 0) digests_.clear();
  ::close(sock_);
  ::close(file_);
  ::close(pipe_r_);
  ::close(pipe_w_);
  thread_.Finish();
  bool slow = err == -ETIME;
  done_(err, written_, std::move(digests_), slow ? window_bytes_ : 0, slow ? window_waited_ms_ : 0);
}

int ReceiveTransfer::Hash(const char* data, size_t n) {
  for (void* h : hashes_) {
    if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(h), data, n) != 1) return -EIO;
  }
  return 0;
}

void ReceiveTransfer::Received(uint64_t n) {
  last_data_ms_ = NowMs();
  window_bytes_ += n;
}

void ReceiveTransfer::Wrote(uint64_t n) {
  written_ += n;
  // Start writing back what is complete, so the caller's closing fsync waits for the tail only.
  // Advisory: an error here shows again in that fsync.
  if (file_start_ >= 0 && opt_.writeback_step > 0 && written_ - flushed_ >= opt_.writeback_step) {
    ::sync_file_range(file_, static_cast<off64_t>(file_start_ + flushed_), static_cast<off64_t>(written_ - flushed_),
                      SYNC_FILE_RANGE_WRITE);
    flushed_ = written_;
  }
}

int ReceiveTransfer::WriteFile(const char* data, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t m = ::write(file_, data + done, n - done);
    if (m < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (m == 0) return -EIO;
    done += static_cast<size_t>(m);
    Wrote(static_cast<uint64_t>(m));
  }
  return 0;
}

// Moves `n` bytes that are in the pipe into the file: splice, or read + write where the file
// system cannot splice (EINVAL).
int ReceiveTransfer::FromPipe(size_t n) {
  while (n > 0) {
    ssize_t m = opt_.copy_only ? -1 : ::splice(pipe_r_, nullptr, file_, nullptr, n, SPLICE_F_MOVE);
    if (m > 0) {
      n -= static_cast<size_t>(m);
      Wrote(static_cast<uint64_t>(m));
      continue;
    }
    if (m == 0) return -EIO;
    if (!opt_.copy_only && errno == EINTR) continue;
    if (!opt_.copy_only && errno != EINVAL) return -errno;
    opt_.copy_only = true;
    if (buffer_.empty()) buffer_.resize(kBufferBytes);
    ssize_t r = ::read(pipe_r_, buffer_.data(), std::min(n, buffer_.size()));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return -EIO;
    int rc = WriteFile(buffer_.data(), static_cast<size_t>(r));
    if (rc < 0) return rc;
    n -= static_cast<size_t>(r);
  }
  return 0;
}

// Sleeps until the socket has bytes (or an end or error, which the next read reports), the
// transfer is cancelled, the idle timeout passes (-ETIMEDOUT) or a body-rate window ends too
// slow (-ETIME).
int ReceiveTransfer::WaitReadable() {
  int64_t start = NowMs();
  int64_t timeout = -1;
  if (opt_.idle_timeout_ms > 0) timeout = std::max<int64_t>(0, last_data_ms_ + opt_.idle_timeout_ms - start);
  bool rated = opt_.min_rate > 0 && opt_.rate_window_ms > 0;
  if (rated) {
    int64_t left = std::max<int64_t>(0, window_start_ms_ + opt_.rate_window_ms - start);
    timeout = timeout < 0 ? left : std::min(timeout, left);
  }
  struct pollfd fds[2] = {{sock_, POLLIN, 0}, {thread_.event_fd(), POLLIN, 0}};
  int rc;
  do rc = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(timeout, 2147483647)));
  while (rc < 0 && errno == EINTR);
  if (rc < 0) return -errno;
  int64_t now = NowMs();
  window_waited_ms_ += now - start;
  if (rc > 0 && fds[1].revents != 0) return -ECANCELED;
  if (rc == 0 && opt_.idle_timeout_ms > 0 && now - last_data_ms_ >= opt_.idle_timeout_ms) return -ETIMEDOUT;
  return CheckRate(now);
}

int ReceiveTransfer::CheckRate(int64_t now) {
  if (opt_.min_rate == 0 || opt_.rate_window_ms <= 0 || now - window_start_ms_ < opt_.rate_window_ms) return 0;
  bool judged = window_waited_ms_ * 2 >= opt_.rate_window_ms;
  if (judged && window_bytes_ * 1000 < opt_.min_rate * static_cast<uint64_t>(window_waited_ms_)) return -ETIME;
  window_start_ms_ = now;
  window_waited_ms_ = 0;
  window_bytes_ = 0;
  return 0;
}

int ReceiveTransfer::Loop() {
  last_data_ms_ = window_start_ms_ = NowMs();
  off64_t start = ::lseek64(file_, 0, SEEK_CUR);
  file_start_ = start >= 0 ? start : -1;
  for (const auto& name : opt_.algorithms) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (ctx == nullptr) return -ENOMEM;
    hashes_.push_back(ctx);
    if (EVP_DigestInit_ex(ctx, DigestByName(name), nullptr) != 1) return -EIO;
  }
  bool copy = opt_.copy_only || !hashes_.empty();
  if (!opt_.prefix.empty()) {
    int rc = Hash(opt_.prefix.data(), opt_.prefix.size());
    if (rc == 0) rc = WriteFile(opt_.prefix.data(), opt_.prefix.size());
    if (rc < 0) return rc;
    std::string().swap(opt_.prefix);
  }
  if (!copy) fcntl(pipe_w_, F_SETPIPE_SZ, kPipeBytes);
  int pipe_size = copy ? 0 : fcntl(pipe_w_, F_GETPIPE_SZ);
  if (pipe_size <= 0) pipe_size = 64 * 1024;
  uint64_t remaining = opt_.length;
  while (remaining > 0) {
    // A fast sender never leaves the socket empty, so the eventfd alone would not be seen.
    if (thread_.cancelled()) return -ECANCELED;
    if (!copy) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, static_cast<uint64_t>(pipe_size)));
      // The pipe is empty here (FromPipe drains it), so EAGAIN can only mean an empty socket.
      ssize_t n = ::splice(sock_, nullptr, pipe_w_, nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        remaining -= static_cast<uint64_t>(n);
        Received(static_cast<uint64_t>(n));
        int rc = FromPipe(static_cast<size_t>(n));
        if (rc < 0) return rc;
        continue;
      }
      if (n == 0) return -ECONNRESET;  // the sender ended before the body did
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        int rc = WaitReadable();
        if (rc < 0) return rc;
        continue;
      }
      if (errno != EINVAL) return -errno;
      copy = true;  // a socket that cannot splice: read into a buffer instead
    }
    if (buffer_.empty()) buffer_.resize(kBufferBytes);
    size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, buffer_.size()));
    ssize_t n = ::read(sock_, buffer_.data(), want);
    if (n > 0) {
      remaining -= static_cast<uint64_t>(n);
      Received(static_cast<uint64_t>(n));
      int rc = Hash(buffer_.data(), static_cast<size_t>(n));
      if (rc == 0) rc = WriteFile(buffer_.data(), static_cast<size_t>(n));
      if (rc < 0) return rc;
      continue;
    }
    if (n == 0) return -ECONNRESET;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return -errno;
    int rc = WaitReadable();
    if (rc < 0) return rc;
  }
  return 0;
}

}  // namespace ng
