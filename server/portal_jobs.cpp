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
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    Key key{kind, memberId};
    if (running_.count(key)) {
      again_.insert(key);
      return;
    }
    if (!queued_.insert(key).second) return;
    queue_.push_back(std::move(key));
  }
  changed_.notify_one();
}

void PortalJobs::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    queue_.clear();
    queued_.clear();
    again_.clear();
  }
  changed_.notify_all();
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
}

void PortalJobs::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Key key = std::move(queue_.front());
    queue_.pop_front();
    queued_.erase(key);
    running_.insert(key);
    lock.unlock();
    run_(key.first, key.second);
    lock.lock();
    running_.erase(key);
    if (again_.erase(key) && !stopping_ && queued_.insert(key).second) {
      queue_.push_back(key);
      changed_.notify_one();
    }
  }
}

}  // namespace b24es
