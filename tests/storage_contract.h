// The storage backends that the contract suite (tests/storage_contract_test.cpp) runs against.
// Every case of that suite runs once per entry of storageBackends(); a new backend passes the
// same tests by adding one entry here.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "clock.h"
#include "embedded_migrations.h"
#include "pg_storage.h"
#include "pg_test_support.h"
#include "sqlite_storage.h"
#include "storage.h"

namespace b24es::test {

struct StorageBackend {
  std::string name;  // shown in each case's failure context ("backend = sqlite")
  // Opens the database that belongs to `dir` with the given migrations (not yet applied): a new
  // empty database for a new folder, the same database again for the same folder, so that a
  // case can reopen it with another binary's migrations. `clock` outlives the Storage. The
  // migrations the suite passes are portable SQL (CREATE TABLE, INSERT).
  std::function<std::unique_ptr<Storage>(const std::string& dir, const Clock& clock,
                                         std::vector<Migration> migrations)>
      openWith;
  // The backend's own schema, as its binary embeds it.
  std::function<std::vector<Migration>()> migrations;

  // The database of `dir` with the backend's own migrations, not yet applied.
  std::unique_ptr<Storage> open(const std::string& dir, const Clock& clock) const {
    return openWith(dir, clock, migrations());
  }
};

inline std::ostream& operator<<(std::ostream& out, const StorageBackend& backend) {
  return out << backend.name;
}

// SQLite always; PostgreSQL when the suite's throwaway server is there (scripts/test starts it;
// pgServerUrl() throws, failing the suite, when it is required and missing).
inline std::vector<StorageBackend> storageBackends() {
  std::vector<StorageBackend> backends = {
      {"sqlite",
       [](const std::string& dir, const Clock& clock, std::vector<Migration> migrations) {
         SqliteSettings settings;
         settings.path = dir + "/events.db";
         settings.synchronous = "normal";  // durability is crash_test's; speed helps here
         return openSqliteStorage(settings, clock, std::move(migrations));
       },
       [] { return embeddedMigrations(); }},
  };
  if (pgServerUrl()) {
    backends.push_back(
        {"postgresql",
         [](const std::string& dir, const Clock& clock, std::vector<Migration> migrations) {
           PgSettings settings;
           settings.url = pgDatabaseFor(dir);
           return openPgStorage(settings, clock, std::move(migrations));
         },
         [] { return embeddedPgMigrations(); }});
  }
  return backends;
}

}  // namespace b24es::test
