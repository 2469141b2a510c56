// One event loop thread's worth of I/O readiness: an epoll set, an eventfd that any thread can
// use to hand the loop a task, and a periodic tick for deadlines. It knows nothing of HTTP; the
// HTTP server (http_server.h) runs one per loop thread and drives an Http1Connection
// (http1_connection.h) per socket on it, the way redis splits ae.c from networking.c.
//
// Written by hand on epoll and an eventfd because POCO 1.11 offers no event loop that another
// thread can wake: SocketReactor::wakeUp() only interrupts its idle sleep, not a poll in
// progress, and PollSet has no wake-up at all (it came with 1.12). Answers finished on other
// threads (a committed batch of the writer, a query run on a worker) must wake the loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "mutex.h"

namespace b24es {

class Reactor {
 public:
  using Clock = std::chrono::steady_clock;

  // What a registered descriptor is told, on the loop thread.
  class Handler {
   public:
    virtual void onReady(std::uint32_t epollEvents) = 0;

   protected:
    ~Handler() = default;
  };

  // Throws Poco::SystemException when epoll or the eventfd cannot be created.
  Reactor();
  ~Reactor();  // closes the epoll set and the eventfd, not the registered descriptors
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Changes what `fd` is watched for from `registered` (0: not in the set) to `wanted`, and
  // stores `wanted` in `registered`. A descriptor that wants nothing is taken out of the set
  // altogether: epoll reports a hang-up or an error even to one registered for no events, again
  // on every wait. Loop thread only; false when epoll refused (the descriptor is unusable).
  bool watch(int fd, Handler* handler, std::uint32_t& registered, std::uint32_t wanted);

  // Runs `task` on the loop thread soon. Thread-safe; tasks posted before one wait-up are run
  // together after one write to the eventfd. The task must not outlive what it refers to: the
  // owner of the reactor runs it until every task it expects has arrived.
  void post(std::function<void()> task);

  // Waits for readiness and tasks, and calls `afterEach(now)` after every wake-up and at least
  // every `tick`; returns when it returns false. Loop thread (the calling one). Returns at once
  // (false) when epoll_wait fails for another reason than a signal.
  bool run(Clock::duration tick, const std::function<bool(Clock::time_point)>& afterEach);

 private:
  void runPosted();

  int epoll_ = -1;
  int wakeFd_ = -1;
  Mutex mutex_;
  std::vector<std::function<void()>> posted_ GUARDED_BY(mutex_);
  std::vector<std::function<void()>> running_;  // loop thread only: the tasks being run
};

}  // namespace b24es
