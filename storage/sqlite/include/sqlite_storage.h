// The embedded default backend: one SQLite file in WAL mode. Open it here; use it through
// the interfaces of storage.h. Every SQLite specific of the project lives in storage/sqlite_*.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "clock.h"
#include "storage.h"

namespace b24es {

// Settings of the SQLite backend, filled from configuration in one place (server/settings.cpp).
struct SqliteSettings {
  std::string path = "data/events.db";  // created with its folder (0700) and mode 0600
  std::string synchronous = "full";     // "full" or "normal"; WAL mode always
  int busyTimeoutMs = 5000;             // how long a writer waits for another process's lock
  std::size_t readPoolSize = 16;        // most read connections kept open
};

// Opens (creating when missing) the database file. Throws StorageError when the folder or file
// cannot be created or opened, or a setting is invalid. The returned Storage is thread-safe and
// must outlive every EventSink it opened. `clock` must outlive the Storage.
std::unique_ptr<Storage> openSqliteStorage(const SqliteSettings& settings, const Clock& clock,
                                           std::vector<Migration> migrations);

}  // namespace b24es
