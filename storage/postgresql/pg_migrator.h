// Internal to the PostgreSQL backend: the Migrator of storage.h over migrations/postgresql/.
// Same rules as SQLite's: each file and its schema_migrations row in one transaction, checksums
// compared. Processes migrating at once take turns on a transaction-level advisory lock.
#pragma once

#include "pg_connection.h"

namespace b24es::pg {

class PgMigrator final : public Migrator {
 public:
  // `settings` and `clock` must outlive the migrator.
  PgMigrator(const PgSettings& settings, const Clock& clock, std::vector<Migration> migrations);
  MigrationResult apply() override;
  std::vector<MigrationState> status() override;

 private:
  const PgSettings& settings_;         // const after construction
  const Clock& clock_;                 // const after construction
  std::vector<Migration> migrations_;  // const after construction; by version
};

// The largest version applied, 0 when none (or no schema_migrations yet). Throws PgError.
int appliedVersion(Connection& c);

}  // namespace b24es::pg
