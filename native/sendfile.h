// A zero-copy body transfer: sendfile(2) from a file to a connected socket on a dedicated thread.
// Plain C++ without Napi (native/addon_sendfile.cc is the JS boundary).
//
// Why a dedicated thread and not a libuv pool AsyncWorker: a transfer to a slow or stalled reader
// can last indefinitely, and a pool worker would hold one of the four pool threads all that time;
// four stalled downloads would then starve every fs call of the process (PERFORMANCE-NOTES.md).
// The thread, its cancellation and their locking are native/transfer_thread.h, shared with the
// receive side.
//
// Fd lifetime: the transfer works on its own duplicates of both fds (F_DUPFD_CLOEXEC), so the
// caller may close its fds at any moment (Node closes a socket fd as soon as the client is gone).
// The duplicates and the cancellation eventfd are closed by the transfer thread when it ends,
// before `done` is called, so nothing of a finished transfer stays open.
#pragma once

#include <stdint.h>

#include <functional>
#include <memory>

#include "transfer_thread.h"

namespace ng {

class SendfileTransfer {
 public:
  // Called once, on the transfer thread, after every fd of the transfer is closed: `err` is 0 or
  // a negative errno (-ECANCELED after cancel(), -ENODATA when the file ended early), `sent` the
  // number of body bytes the kernel accepted.
  using Done = std::function<void(int err, uint64_t sent)>;

  // Duplicates the fds and starts the thread. `idle_timeout_ms` > 0 ends the transfer with
  // -ETIMEDOUT when the socket stays full that long (a reader that stopped reading); 0 waits forever. Returns the transfer, or null with `*err` set to a
  // negative errno (EBADF, EMFILE, EAGAIN when no thread can be made); nothing stays open then.
  static std::shared_ptr<SendfileTransfer> Start(int socket_fd, int file_fd, uint64_t offset, uint64_t length,
                                                 int idle_timeout_ms, Done done, int* err);

  SendfileTransfer(const SendfileTransfer&) = delete;
  SendfileTransfer& operator=(const SendfileTransfer&) = delete;
  ~SendfileTransfer();

  // Asks the thread to stop; it reports -ECANCELED unless it already finished. Any thread.
  // Returns false when the transfer had already ended.
  bool Cancel();

  // Waits for the thread to exit (after `done` ran, this takes microseconds). Idempotent; must not
  // be called from the transfer thread itself.
  void Join();

 private:
  SendfileTransfer() = default;
  void Run();
  int Loop();

  int sock_ = -1;
  int file_ = -1;
  uint64_t offset_ = 0;
  uint64_t length_ = 0;
  uint64_t sent_ = 0;
  int idle_timeout_ms_ = 0;
  Done done_;
  TransferThread thread_;  // its eventfd is polled while the socket is full
};

}  // namespace ng
