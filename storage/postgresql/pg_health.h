// Internal to the PostgreSQL backend: where the writers leave what they know about the
// database for Storage::health() (SPEC §5 /healthz), which reads it without touching the
// database. Thread-safe.
#pragma once

#include "mutex.h"
#include "storage.h"

namespace b24es::pg {

class HealthBoard {
 public:
  StorageHealth get() {
    MutexLock lock(mutex_);
    return health_;
  }
  void set(StorageHealth h) {
    MutexLock lock(mutex_);
    health_ = std::move(h);
  }

 private:
  Mutex mutex_;
  StorageHealth health_ GUARDED_BY(mutex_);
};

}  // namespace b24es::pg
