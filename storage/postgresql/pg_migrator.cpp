#include "pg_migrator.h"

#include <algorithm>
#include <map>

namespace b24es::pg {
namespace {

// pg_advisory_xact_lock key of migrations: any constant; "b24es-mg" in ASCII.
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(7102601135318345575)";

struct AppliedRow {
  std::string name;
  std::string checksum;
  std::int64_t appliedAt = 0;
};

void ensureTable(Connection& c) {
  // Under the lock too: two first-time CREATE TABLE IF NOT EXISTS at once can both try to create
  // the table's type and one fails (a known PostgreSQL race), so the first one runs alone.
  Transaction tx(c);
  c.exec(kMigrationLock);
  c.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version integer PRIMARY KEY,"
      " name text NOT NULL,"
      " checksum text NOT NULL,"
      " applied_at bigint NOT NULL)");
  tx.commit();
}

std::map<int, AppliedRow> readApplied(Connection& c) {
  Result r = c.query("SELECT version, name, checksum, applied_at FROM schema_migrations");
  std::map<int, AppliedRow> applied;
  for (int i = 0; i < r.rows(); ++i) {
    applied[static_cast<int>(r.integer(i, 0))] =
        AppliedRow{r.text(i, 1), r.text(i, 2), r.integer(i, 3)};
  }
  return applied;
}

}  // namespace

int appliedVersion(Connection& c) {
  Result exists = c.query("SELECT to_regclass('schema_migrations') IS NOT NULL");
  if (!exists.boolean(0, 0)) return 0;
  return static_cast<int>(
      c.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").integer(0, 0));
}

PgMigrator::PgMigrator(const PgSettings& settings, const Clock& clock,
                       std::vector<Migration> migrations)
    : settings_(settings), clock_(clock), migrations_(std::move(migrations)) {
  std::sort(migrations_.begin(), migrations_.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
}

MigrationResult PgMigrator::apply() {
  MigrationResult result;
  try {
    Connection c(settings_);
    ensureTable(c);
    const int known = migrations_.empty() ? 0 : migrations_.back().version;
    for (const Migration& m : migrations_) {
      // Each migration re-reads schema_migrations under the lock inside its own transaction, so
      // a second process migrating at the same moment waits and then sees this one's rows.
      Transaction tx(c);
      c.exec(kMigrationLock);
      auto applied = readApplied(c);
      if (!applied.empty() && applied.rbegin()->first > known) {
        result.error = "database schema version " + std::to_string(applied.rbegin()->first) +
                       " is newer than this binary knows (" + std::to_string(known) + ")";
        return result;
      }
      const std::string checksum = migrationChecksum(m.sql);
      auto it = applied.find(m.version);
      if (it != applied.end()) {
        if (it->second.checksum != checksum) {
          result.error = "migration " + m.name +
                         " was changed after it was applied (checksum differs); restore the "
                         "file or add a new migration instead";
          return result;
        }
        result.schemaVersion = m.version;
        continue;
      }
      try {
        c.exec(m.sql);
      } catch (const StorageError& e) {
        result.error = "migration " + m.name + " failed: " + e.what();
        return result;
      }
      c.query(
          "INSERT INTO schema_migrations(version, name, checksum, applied_at) "
          "VALUES($1, $2, $3, $4)",
          Params().add(std::int64_t{m.version}).add(m.name).add(checksum).add(clock_.nowSeconds()));
      tx.commit();
      result.applied.push_back(m.name);
      result.schemaVersion = m.version;
    }
    result.ok = true;
  } catch (const StorageError& e) {
    result.error = e.what();
  }
  return result;
}

std::vector<MigrationState> PgMigrator::status() {
  Connection c(settings_);
  std::map<int, AppliedRow> applied;
  if (appliedVersion(c) > 0 ||
      c.query("SELECT to_regclass('schema_migrations') IS NOT NULL").boolean(0, 0)) {
    applied = readApplied(c);
  }
  std::vector<MigrationState> states;
  for (const Migration& m : migrations_) {
    MigrationState s{m.version, m.name, migrationChecksum(m.sql), std::nullopt, false};
    auto it = applied.find(m.version);
    if (it != applied.end()) {
      s.appliedAt = it->second.appliedAt;
      s.changed = it->second.checksum != s.checksum;
      applied.erase(it);
    }
    states.push_back(s);
  }
  // Rows written by a newer binary: listed so that --status explains a refusal to start.
  for (const auto& [version, row] : applied) {
    states.push_back(MigrationState{version, row.name, row.checksum, row.appliedAt, false});
  }
  return states;
}

}  // namespace b24es::pg
