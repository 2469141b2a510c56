// Internal to the SQLite backend: what the writer knows about the database (Storage::health())
// and how often it moved to a new file, shared by the storage, its sink and its other
// connections (storage faults, SPEC §10).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "mutex.h"
#include "storage.h"

namespace b24es::sqlite {

// The writer's state as Storage::health() reports it, shared by the storage and its sinks.
// Thread-safe; get() copies under a mutex that only state changes take, never the write path.
class HealthBoard {
 public:
  StorageHealth get() const {
    MutexLock lock(mutex_);
    return health_;
  }
  void set(StorageHealth health) {
    MutexLock lock(mutex_);
    health_ = std::move(health);
  }
  // Counts the times the writer moved to a new database file; other connections of the process
  // reopen when it changed (they would read and write the file that is gone).
  std::uint64_t generation() const { return generation_.load(); }
  // Records a move to a new file, keeping `retired` (the connection to the old one) open until
  // the board goes, after every other connection of the storage: while it is open no other
  // connection to the old file can take the lock SQLite needs before it deletes the "-wal" and
  // "-shm" by name on close, and those names now belong to the live database.
  void movedToNewFile(std::shared_ptr<void> retired) {
    MutexLock lock(mutex_);
    if (retired) retired_.push_back(std::move(retired));
    ++generation_;
  }

 private:
  mutable Mutex mutex_;
  StorageHealth health_ GUARDED_BY(mutex_);
  std::vector<std::shared_ptr<void>> retired_ GUARDED_BY(mutex_);
  std::atomic<std::uint64_t> generation_{0};
};

}  // namespace b24es::sqlite
