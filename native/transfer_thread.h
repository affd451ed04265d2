// The thread under a zero-copy transfer (native/sendfile.h, native/receive.h), the part both
// share: a dedicated thread that takes no signals, a cancellation flag and eventfd that the
// thread watches beside its socket, and the lock that keeps Cancel() from writing to the eventfd
// once the thread has closed it. Plain C++ without Napi.
//
// Why a dedicated thread and not a libuv pool AsyncWorker: a transfer lasts as long as its peer
// is slow, and a pool worker held that long would starve every fs call of the process
// (PERFORMANCE-NOTES.md).
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

namespace ng {

class TransferThread {
 public:
  TransferThread() = default;
  TransferThread(const TransferThread&) = delete;
  TransferThread& operator=(const TransferThread&) = delete;
  // Cancels and joins; when the last reference to the transfer is dropped on its own thread (it
  // is then past every use of it), detaches instead: a joinable std::thread must not be destroyed.
  ~TransferThread();

  // Makes the cancellation eventfd: 0 or a negative errno. Before Start().
  int Open();

  // Runs `run` on a new thread that blocks every signal (they are Node's main thread's; libuv's
  // own threads block them too). 0, or -EAGAIN when no thread can be made: the eventfd is closed
  // then, and the caller closes what `run` would have.
  int Start(std::function<void()> run);

  // Asks the thread to stop (cancelled() turns true, the eventfd becomes readable). Any thread.
  // Returns false when the transfer had already ended, or never started.
  bool Cancel();

  // Waits for the thread to exit. Idempotent; does nothing on the thread itself.
  void Join();

  // On the thread, when its work is over and before it reports: closes the eventfd, and Cancel()
  // returns false from then on.
  void Finish();

  // The thread checks this between steps: a fast peer never makes it wait on the eventfd.
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  // Readable once Cancel() was called: polled beside the socket while the thread waits on it.
  int event_fd() const { return event_; }

 private:
  int event_ = -1;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;      // guards event_ against Cancel() racing with its close
  bool ended_ = true;  // guarded by mu_: no thread runs (not yet, or no more)
  std::thread thread_;
};

}  // namespace ng
