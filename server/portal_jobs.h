// Background work per portal that must never delay an ingest answer: the binding sync after a
// committed ONAPPINSTALL or ONAPPUPDATE (SPEC §8.2) and offline-queue passes (§8.3). The ingest
// path only triggers a job after the commit; a few worker threads run them. One job per (portal,
// kind) runs at a time; a trigger while it runs causes one more run after it, and triggers
// while it waits are one.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace b24es {

class PortalJobs {
 public:
  enum class Kind { kBind, kOffline };
  // Runs one job; must not throw. Called on a worker thread.
  using Runner = std::function<void(Kind kind, const std::string& memberId)>;

  PortalJobs(Runner run, int threads = 2);
  ~PortalJobs();  // stop()

  // Queues a run of `kind` for `memberId` (see above). Quick; thread-safe.
  void trigger(Kind kind, const std::string& memberId);
  // Drops the queued jobs, waits for the running ones and joins the workers. Thread-safe.
  void stop();

 private:
  using Key = std::pair<Kind, std::string>;
  void work();

  Runner run_;  // const after construction
  std::mutex mutex_;
  std::condition_variable changed_;  // guarded by mutex_
  std::deque<Key> queue_;            // guarded by mutex_
  std::set<Key> queued_;             // guarded by mutex_; the keys in queue_
  std::set<Key> running_;            // guarded by mutex_
  std::set<Key> again_;              // guarded by mutex_; triggered while running
  bool stopping_ = false;            // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace b24es
