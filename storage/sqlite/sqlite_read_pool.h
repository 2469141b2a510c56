// Internal to the SQLite backend: the read connections of the query API. A POCO SessionPool
// whose connections keep reading the file they opened, so after the writer moved to a new file
// (a storage fault, HealthBoard::generation()) the pool is replaced by a new one at the path.
#pragma once

#include <Poco/Data/Session.h>
#include <Poco/Data/SessionPool.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mutex.h"
#include "sqlite_health.h"

namespace b24es::sqlite {

class ReadPool {
 public:
  // `board` must outlive the pool. Opens nothing until the first get().
  ReadPool(const std::string& path, std::size_t maxSessions, const HealthBoard& board);
  // A pooled connection to the file at the path. Throws what Poco's SessionPool::get throws.
  // Thread-safe.
  Poco::Data::Session get();

 private:
  const std::string path_;    // const after construction
  const int maxSessions_;     // const after construction
  const HealthBoard& board_;  // const after construction; thread-safe itself
  Mutex mutex_;
  std::uint64_t generation_ GUARDED_BY(mutex_);
  std::unique_ptr<Poco::Data::SessionPool> pool_ GUARDED_BY(mutex_);  // thread-safe itself
  // Pools of files no longer at the path. Kept until the ReadPool goes: a session borrowed
  // from one returns to it (POCO holds a plain reference), and the HealthBoard, which outlives
  // this, keeps the old files' lock so that closing them deletes nothing at the path.
  std::vector<std::unique_ptr<Poco::Data::SessionPool>> retired_ GUARDED_BY(mutex_);
};

}  // namespace b24es::sqlite
