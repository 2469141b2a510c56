// A flag that one thread sets once and any number of threads wait for. Internal to storage.
//
// Written by hand because neither standard tool fits the group-commit writer, which wakes the
// 30-60 request threads of a batch at once: std::condition_variable makes every woken waiter
// re-acquire the one mutex it waited with, so they queue on it one by one (~2.4 futex calls and
// 2.2 context switches per request, measured under the 64-connection benchmark), and
// libstdc++'s C++20 std::atomic::wait spins and yields before it sleeps (measured slower than
// the condition variable: 13.4k vs 17.4k req/s). On Linux this is one futex word and a woken
// waiter returns without touching any lock. The waking is spread out: set() wakes two sleepers
// and every woken waiter wakes two more, so the setting thread (the writer, whose time every
// request waits for) does not pay for waking the whole batch (10% of its time when it woke
// them all itself). Elsewhere it falls back to a mutex and a condition variable.
#pragma once

#include <atomic>
#include <cstdint>

#if !defined(__linux__)
#endif

#include "mutex.h"

namespace b24es {

class OneShotSignal {
 public:
  OneShotSignal() = default;
  OneShotSignal(const OneShotSignal&) = delete;
  OneShotSignal& operator=(const OneShotSignal&) = delete;

  // Blocks until set() has been called; returns at once if it has. Everything the setting
  // thread wrote before set() is visible after wait() returns. Thread-safe.
  void wait();
  // Sets the flag and wakes every waiter. Call at most once. Thread-safe.
  void set();

 private:
#if defined(__linux__)
  void wakeSome();
  std::atomic<std::uint32_t> word_{0};
  std::atomic<int> sleepers_{0};  // waiters inside (or about to enter) FUTEX_WAIT
#else
  Mutex mutex_;
  CondVar cv_;
  bool set_ GUARDED_BY(mutex_) = false;
#endif
};

}  // namespace b24es
