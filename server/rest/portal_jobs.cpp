#include "portal_jobs.h"

#include <pthread.h>

namespace b24es {

PortalJobs::PortalJobs(Runner run, int threads) : run_(std::move(run)) {
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "b24es-portal");
      work();
    });
  }
}

PortalJobs::~PortalJobs() { stop(); }

void PortalJobs::trigger(Kind kind, const std::string& memberId) {
  {
    MutexLock lock(mutex_);
    if (stopping_) return;
    Key key{kind, memberId};
    if (running_.count(key)) {
      again_.insert(key);
      return;
    }
    if (!queued_.insert(key).second) return;
    queue_.push_back(std::move(key));
  }
  changed_.signal();
}

void PortalJobs::stop() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
    queue_.clear();
    queued_.clear();
    again_.clear();
  }
  changed_.signalAll();
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
}

std::optional<PortalJobs::Key> PortalJobs::next() {
  MutexLock lock(mutex_);
  while (!stopping_ && queue_.empty()) changed_.wait(mutex_);
  if (stopping_) return std::nullopt;
  Key key = std::move(queue_.front());
  queue_.pop_front();
  queued_.erase(key);
  running_.insert(key);
  return key;
}

void PortalJobs::finished(const Key& key) {
  MutexLock lock(mutex_);
  running_.erase(key);
  if (again_.erase(key) && !stopping_ && queued_.insert(key).second) {
    queue_.push_back(key);
    changed_.signal();
  }
}

void PortalJobs::work() {
  while (std::optional<Key> key = next()) {
    run_(key->first, key->second);
    finished(*key);
  }
}

}  // namespace b24es
