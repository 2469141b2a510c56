// Internal to the SQLite backend: the Migrator over schema_migrations.
#pragma once

#include <vector>

#include "sqlite_storage.h"

namespace b24es::sqlite {

class SqliteMigrator final : public Migrator {
 public:
  // `settings` and `clock` must outlive the migrator.
  SqliteMigrator(const SqliteSettings& settings, const Clock& clock,
                 std::vector<Migration> migrations);
  MigrationResult apply() override;
  std::vector<MigrationState> status() override;

 private:
  const SqliteSettings& settings_;     // const after construction
  const Clock& clock_;                 // const after construction
  std::vector<Migration> migrations_;  // const after construction, sorted by version
};

// Hex SHA-256 of a migration file's text.
std::string migrationChecksum(const std::string& sql);

}  // namespace b24es::sqlite
