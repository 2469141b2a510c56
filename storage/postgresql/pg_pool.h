// Internal to the PostgreSQL backend: a pool of connections for readers and the token store.
// Thread-safe. A connection that failed is dropped rather than returned, and the next get()
// opens a fresh one, so a restarted server costs one failed request, not a restart of ours.
#pragma once

#include <memory>
#include <vector>

#include "mutex.h"
#include "pg_connection.h"

namespace b24es::pg {

class Pool {
 public:
  // `settings` must outlive the pool.
  Pool(const PgSettings& settings, std::size_t maxIdle) : settings_(settings), maxIdle_(maxIdle) {}

  // A connection, returned to the pool when the lease goes (unless it failed).
  class Lease {
   public:
    Lease(Pool& pool, std::unique_ptr<Connection> c) : pool_(pool), c_(std::move(c)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (c_) pool_.put(std::move(c_));
    }
    Connection& operator*() { return *c_; }
    Connection* operator->() { return c_.get(); }

   private:
    Pool& pool_;
    std::unique_ptr<Connection> c_;
  };

  // Throws StorageError when no connection can be opened.
  Lease get() {
    {
      MutexLock lock(mutex_);
      if (!idle_.empty()) {
        std::unique_ptr<Connection> c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(*this, std::move(c));
      }
    }
    return Lease(*this, std::make_unique<Connection>(settings_));
  }

 private:
  void put(std::unique_ptr<Connection> c) {
    if (!c->ok()) return;
    c->rollbackQuietly();  // a lease that threw mid-transaction leaves it open
    MutexLock lock(mutex_);
    if (idle_.size() < maxIdle_) idle_.push_back(std::move(c));
  }

  const PgSettings& settings_;  // const after construction
  const std::size_t maxIdle_;   // const after construction
  Mutex mutex_;
  std::vector<std::unique_ptr<Connection>> idle_ GUARDED_BY(mutex_);
};

}  // namespace b24es::pg
