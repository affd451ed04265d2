#include "transfer_thread.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <system_error>
#include <utility>

namespace ng {

TransferThread::~TransferThread() {
  Cancel();
  Join();
  if (thread_.joinable()) thread_.detach();
}

int TransferThread::Open() {
  event_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return event_ < 0 ? -errno : 0;
}

int TransferThread::Start(std::function<void()> run) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = false;
  }
  // The new thread inherits the mask in effect while it is created.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    thread_ = std::thread(std::move(run));
  } catch (const std::system_error&) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (thread_.joinable()) return 0;
  Finish();
  return -EAGAIN;
}

bool TransferThread::Cancel() {
  cancelled_.store(true, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return false;
  uint64_t one = 1;
  // EAGAIN only when the counter would overflow, i.e. it is already set: nothing to do then.
  ssize_t rc = ::write(event_, &one, sizeof one);
  (void)rc;
  return true;
}

void TransferThread::Join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void TransferThread::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (event_ >= 0) ::close(event_);
  event_ = -1;
  ended_ = true;
}

}  // namespace ng
