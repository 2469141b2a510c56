// Background work per portal that must never delay an ingest answer: the binding sync after a
// committed ONAPPINSTALL or ONAPPUPDATE (SPEC §8.2) and offline-queue passes (§8.3). The ingest
// path only triggers a job after the commit; a few worker threads run them. One job per (portal,
// kind) runs at a time; a trigger while it runs causes one more run after it, and triggers
// while it waits are one.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mutex.h"

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
  // Takes the next job to run (moving it to running_); nullopt when stopping.
  std::optional<Key> next();
  // After `key` ran: queues it again when it was triggered meanwhile.
  void finished(const Key& key);

  Mutex mutex_;
  CondVar changed_;  // signals queue_ and stopping_
  std::deque<Key> queue_ GUARDED_BY(mutex_);
  std::set<Key> queued_ GUARDED_BY(mutex_);  // the keys in queue_
  std::set<Key> running_ GUARDED_BY(mutex_);
  std::set<Key> again_ GUARDED_BY(mutex_);  // triggered while running
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::vector<std::thread> workers_;  // started by the constructor, joined by stop()
};

}  // namespace b24es
