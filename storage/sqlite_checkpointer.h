// Internal to the SQLite backend: moves WAL checkpoints off the commit path. By default SQLite
// checkpoints inside the COMMIT that pushes the WAL past 1000 pages, so every few thousand
// events one acknowledgement waits for the database file to be written and fsynced. The event
// sink turns that off on its write connection, and this thread checkpoints instead, PASSIVE
// (never blocking the writer), a few times a second.
#pragma once

#include <Poco/Data/Session.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "sqlite_storage.h"

namespace b24es::sqlite {

class Checkpointer {
 public:
  // Opens its own connection and starts the thread. Throws StorageError.
  explicit Checkpointer(const SqliteSettings& settings);
  ~Checkpointer();  // runs a last checkpoint and stops
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

 private:
  void run();
  void checkpoint();

  Poco::Data::Session session_;  // used only by thread_
  std::mutex mutex_;
  std::condition_variable wake_;  // signals stopping_
  bool stopping_ = false;         // guarded by mutex_
  std::thread thread_;
};

}  // namespace b24es::sqlite
