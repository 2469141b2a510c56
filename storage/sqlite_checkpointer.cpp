#include "sqlite_checkpointer.h"

#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Logger.h>
#include <sqlite3.h>

#include <chrono>

#include "sqlite_connection.h"

namespace b24es::sqlite {
namespace {

// Often enough that the WAL stays small (a few MB at full ingest speed).
constexpr std::chrono::milliseconds kPeriod(100);

}  // namespace

Checkpointer::Checkpointer(const SqliteSettings& settings) : session_(openSession(settings)) {
  thread_ = std::thread([this] { run(); });
}

Checkpointer::~Checkpointer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Checkpointer::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, kPeriod, [this] { return stopping_; })) {
    lock.unlock();
    checkpoint();
    lock.lock();
  }
  lock.unlock();
  checkpoint();
}

void Checkpointer::checkpoint() {
  sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(session_);
  int walFrames = 0, copied = 0;
  int rc = ::sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &walFrames, &copied);
  // BUSY only means another checkpoint is running (e.g. a CLI process's); try again later.
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    Poco::Logger::get("b24es.storage")
        .warning("WAL checkpoint failed: %s", std::string(::sqlite3_errmsg(db)));
  }
}

}  // namespace b24es::sqlite
