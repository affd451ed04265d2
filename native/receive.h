// The receive side of zero-copy transfers: a request body moved from a connected socket into a
// file on a dedicated thread, with splice(2) through a pipe (socket → pipe → file), the mirror
// of native/sendfile.h. Plain C++ without Napi (native/addon_receive.cc is the JS boundary).
//
// Why a dedicated thread: an upload lasts as long as its sender is slow, and a libuv pool worker
// held that long starves every fs call of the process (the same reason as for sendfile; the
// thread and its cancellation are native/transfer_thread.h, shared with it).
//
// Exactly `length` bytes are taken from the socket, never one more: the bytes after a body
// (a pipelined request) stay in the kernel for Node's HTTP parser. splice(2) and read(2) are
// both asked for at most the bytes still missing.
//
// Fd lifetime: the transfer works on its own duplicates of both fds (F_DUPFD_CLOEXEC), so the
// caller may close its fds at any moment. The duplicates, the pipe and the cancellation eventfd
// are closed by the transfer thread when it ends, before `done` is called.
#pragma once

#include <stdint.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "transfer_thread.h"

namespace ng {

struct ReceiveOptions {
  // Bytes to take from the socket.
  uint64_t length = 0;
  // Bytes already read from the socket by someone else (Node's HTTP parser): written first.
  std::string prefix;
  // Digests to compute over prefix + body ("sha256", "sha512"). When any is asked, the body
  // is read into a buffer (the hash must see the bytes) instead of spliced.
  std::vector<std::string> algorithms;
  // > 0: the transfer ends with -ETIMEDOUT when the socket brings nothing for that long.
  int idle_timeout_ms = 0;
  // > 0: the transfer ends with -ETIME when, over a window of `rate_window_ms` in which the
  // thread waited for the socket at least half the time, the sender averaged fewer than
  // `min_rate` bytes per second of waiting (the body-rate rule of gateway/body-rate.ts, which
  // cannot see the bytes that bypass Node). Time spent writing the file is the server's own and
  // does not count.
  uint64_t min_rate = 0;
  int rate_window_ms = 0;
  // Start writeback (sync_file_range SYNC_FILE_RANGE_WRITE) after every this many bytes, so that
  // a closing fsync waits for the tail only; 0: never (a download, which does not fsync: the
  // early writeback only costs disk time while the body still arrives).
  uint64_t writeback_step = 8u << 20;
  // Testing: never splice, read into a buffer and write (the fallback where splice is EINVAL).
  bool copy_only = false;
};

class ReceiveTransfer {
 public:
  // Called once, on the transfer thread, after every fd of the transfer is closed: `err` is 0 or
  // a negative errno (-ECANCELED after Cancel(), -ECONNRESET when the socket ended before
  // `length` bytes, -ETIMEDOUT when idle too long, -ENOSPC and the like from the file);
  // `written` the bytes written to the file (prefix included); `digests` the raw digests, in the
  // order of `algorithms`, on success only.
  // `window_bytes` and `window_ms`: after -ETIME, the bytes the last body-rate window brought and
  // the time it waited for them (the figures of the 408's message); 0 otherwise.
  using Done = std::function<void(int err, uint64_t written, std::vector<std::string> digests, uint64_t window_bytes,
                                  int64_t window_ms)>;

  // Duplicates the fds and starts the thread. Returns the transfer, or null with `*err` set to a
  // negative errno (EBADF, EMFILE, EINVAL for an unknown algorithm, EAGAIN when no thread can be
  // made); nothing stays open then and `done` is never called.
  static std::shared_ptr<ReceiveTransfer> Start(int socket_fd, int file_fd, ReceiveOptions options, Done done,
                                                int* err);

  ReceiveTransfer(const ReceiveTransfer&) = delete;
  ReceiveTransfer& operator=(const ReceiveTransfer&) = delete;
  ~ReceiveTransfer();

  // Asks the thread to stop; it reports -ECANCELED unless it already finished. Any thread.
  // Returns false when the transfer had already ended.
  bool Cancel();

  // Waits for the thread to exit. Idempotent; not from the transfer thread itself.
  void Join();

 private:
  ReceiveTransfer() = default;
  void Run();
  int Loop();
  int WaitReadable();
  int CheckRate(int64_t now);
  int WriteFile(const char* data, size_t n);
  int FromPipe(size_t n);
  void Wrote(uint64_t n);
  void Received(uint64_t n);
  int Hash(const char* data, size_t n);

  int sock_ = -1;
  int file_ = -1;
  int pipe_r_ = -1;
  int pipe_w_ = -1;
  ReceiveOptions opt_;
  int64_t file_start_ = -1;  // the file offset the transfer started at (-1: unknown, no writeback)
  uint64_t written_ = 0;
  uint64_t flushed_ = 0;
  int64_t last_data_ms_ = 0;     // when the socket last brought bytes (or the transfer started)
  int64_t window_start_ms_ = 0;  // the body-rate window: its start, the time waited and bytes in it
  int64_t window_waited_ms_ = 0;
  uint64_t window_bytes_ = 0;
  std::vector<void*> hashes_;  // EVP_MD_CTX*, one per algorithm
  std::vector<std::string> digests_;
  std::vector<char> buffer_;
  Done done_;
  TransferThread thread_;  // its eventfd is polled while the socket is empty
};

}  // namespace ng
