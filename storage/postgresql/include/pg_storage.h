// The PostgreSQL backend (SPEC §11): every table in one PostgreSQL database that several
// `serve` processes share. Open it here; use it through the interfaces of storage.h. Every
// PostgreSQL specific of the project lives in storage/postgresql/.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "clock.h"
#include "storage.h"

namespace b24es {

// Settings of the PostgreSQL backend, filled from configuration in one place (settings.cpp).
struct PgSettings {
  // postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?PARAMS] (db.url). The password is a
  // secret: never logged, never in an error message (describePgUrl() is what may be shown).
  std::string url;
  std::size_t readPoolSize = 8;  // most idle read connections kept open
  int connectTimeoutSeconds = 5;
};

// `url` without its password (postgresql://USER@HOST:PORT/DBNAME), for log lines; "an invalid
// db.url" when it cannot be parsed. Never throws.
std::string describePgUrl(const std::string& url);

// Connects and checks the server. Throws StorageError (with no password in it) when the URL is
// invalid or the server cannot be reached or refuses the login. The returned Storage is
// thread-safe and must outlive every EventSink it opened. `clock` must outlive the Storage.
std::unique_ptr<Storage> openPgStorage(const PgSettings& settings, const Clock& clock,
                                       std::vector<Migration> migrations);

// The migrations/postgresql/*.sql files compiled into the binary, in version order.
const std::vector<Migration>& embeddedPgMigrations();

}  // namespace b24es
