#include "sqlite_read_pool.h"

namespace b24es::sqlite {

ReadPool::ReadPool(const std::string& path, std::size_t maxSessions, const HealthBoard& board)
    : path_(path),
      maxSessions_(static_cast<int>(maxSessions)),
      board_(board),
      generation_(board.generation()),
      pool_(std::make_unique<Poco::Data::SessionPool>("SQLite", path_, 1, maxSessions_)) {}

Poco::Data::Session ReadPool::get() {
  Poco::Data::SessionPool* pool = nullptr;
  {
    MutexLock lock(mutex_);
    std::uint64_t now = board_.generation();
    if (now != generation_) {
      retired_.push_back(std::move(pool_));
      pool_ = std::make_unique<Poco::Data::SessionPool>("SQLite", path_, 1, maxSessions_);
      generation_ = now;
    }
    pool = pool_.get();
  }
  // Outside mutex_: opening a connection may take a while, and pools are never destroyed
  // before this object.
  return pool->get();
}

}  // namespace b24es::sqlite
