// Tests of storage/one_shot_signal.cpp: every waiter of a batch is woken, whether it slept
// before set(), arrived after it, or raced with it (the wake-ups cascade from waiter to waiter,
// so a lost one would leave threads asleep for ever).
#define BOOST_TEST_MODULE one_shot_signal
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "one_shot_signal.h"

namespace {

// Waits up to 10 s for `count` to reach `expected`; a hang is a failure, not a slow machine.
bool reaches(const std::atomic<int>& count, int expected) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (count.load() < expected) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(wait_after_set_returns_at_once) {
  b24es::OneShotSignal signal;
  signal.set();
  signal.wait();
  signal.wait();
}

BOOST_AUTO_TEST_CASE(every_waiter_wakes_when_set_races_with_their_arrival) {
  constexpr int kRounds = 200;
  constexpr int kWaiters = 48;  // a batch's worth of request threads
  for (int round = 0; round < kRounds; ++round) {
    auto signal = std::make_shared<b24es::OneShotSignal>();
    std::atomic<int> woken{0};
    std::vector<std::thread> waiters;
    // Half start well before set(), the rest while it happens.
    for (int i = 0; i < kWaiters / 2; ++i) {
      waiters.emplace_back([signal, &woken] {
        signal->wait();
        woken.fetch_add(1);
      });
    }
    if (round % 2 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::thread setter([signal] { signal->set(); });
    for (int i = kWaiters / 2; i < kWaiters; ++i) {
      waiters.emplace_back([signal, &woken] {
        signal->wait();
        woken.fetch_add(1);
      });
    }
    if (!reaches(woken, kWaiters)) {
      BOOST_ERROR("round " << round << ": only " << woken.load() << " of " << kWaiters
                           << " waiters woke");
      std::_Exit(1);  // the others sleep for ever; joining them would hang the suite
    }
    setter.join();
    for (auto& w : waiters) w.join();
  }
}
