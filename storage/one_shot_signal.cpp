#include "one_shot_signal.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#endif

namespace b24es {

#if defined(__linux__)

namespace {

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
                "the futex word must be a plain 32-bit integer");
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, nullptr, nullptr,
                   0);
}

}  // namespace

void OneShotSignal::wait() {
  // FUTEX_WAIT sleeps only while the word is still 0, so a set() between the load and the call
  // makes it return at once (EAGAIN); spurious returns (EINTR) just loop.
  while (word_.load(std::memory_order_acquire) == 0) futex(&word_, FUTEX_WAIT_PRIVATE, 0);
}

void OneShotSignal::set() {
  word_.store(1, std::memory_order_release);
  futex(&word_, FUTEX_WAKE_PRIVATE, INT_MAX);
}

#else

void OneShotSignal::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return set_; });
}

void OneShotSignal::set() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    set_ = true;
  }
  cv_.notify_all();
}

#endif

}  // namespace b24es
