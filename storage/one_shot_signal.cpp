#include "one_shot_signal.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
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

// How many sleepers each woken waiter wakes in turn.
constexpr int kFanOut = 2;

void OneShotSignal::wait() {
  if (word_.load(std::memory_order_acquire) != 0) return;
  // Counted before sleeping, so that a waker that sees no sleepers can skip the system call:
  // a waiter it did not count checks the word inside FUTEX_WAIT (sequentially consistent with
  // set()'s store) and does not sleep. FUTEX_WAIT sleeps only while the word is still 0, so a
  // set() between the load and the call makes it return at once (EAGAIN); spurious returns
  // (EINTR) just loop.
  sleepers_.fetch_add(1);
  while (word_.load() == 0) futex(&word_, FUTEX_WAIT_PRIVATE, 0);
  sleepers_.fetch_sub(1);
  wakeSome();
}

void OneShotSignal::set() {
  word_.store(1);
  wakeSome();
}

void OneShotSignal::wakeSome() {
  if (sleepers_.load() > 0) futex(&word_, FUTEX_WAKE_PRIVATE, kFanOut);
}

#else

void OneShotSignal::wait() {
  MutexLock lock(mutex_);
  while (!set_) cv_.wait(mutex_);
}

void OneShotSignal::set() {
  {
    MutexLock lock(mutex_);
    set_ = true;
  }
  cv_.signalAll();
}

#endif

}  // namespace b24es
