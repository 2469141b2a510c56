#include "sqlite_migrator.h"

#include <Poco/Data/Session.h>
#include <Poco/DigestEngine.h>
#include <Poco/SHA2Engine.h>

#include <algorithm>
#include <map>

#include "sqlite_connection.h"

using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using Poco::Data::Keywords::use;

namespace b24es::sqlite {
namespace {

struct AppliedRow {
  std::string name;
  std::string checksum;
  std::int64_t appliedAt = 0;
};

void ensureTable(Poco::Data::Session& session) {
  exec(session,
       "CREATE TABLE IF NOT EXISTS schema_migrations ("
       " version INTEGER PRIMARY KEY,"
       " name TEXT NOT NULL,"
       " checksum TEXT NOT NULL,"
       " applied_at INTEGER NOT NULL)");
}

std::map<int, AppliedRow> readApplied(Poco::Data::Session& session) {
  std::vector<int> versions;
  std::vector<std::string> names;
  std::vector<std::string> checksums;
  std::vector<std::int64_t> appliedAts;
  session << "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version",
      into(versions), into(names), into(checksums), into(appliedAts), now;
  std::map<int, AppliedRow> applied;
  for (std::size_t i = 0; i < versions.size(); ++i) {
    applied[versions[i]] = AppliedRow{names[i], checksums[i], appliedAts[i]};
  }
  return applied;
}

std::string changedMessage(const Migration& m) {
  return "migration " + m.name +
         " was changed after it was applied (checksum differs); restore the file or "
         "add a new migration instead";
}

}  // namespace

std::string migrationChecksum(const std::string& sql) {
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(sql);
  return Poco::DigestEngine::digestToHex(sha.digest());
}

SqliteMigrator::SqliteMigrator(const SqliteSettings& settings, const Clock& clock,
                               std::vector<Migration> migrations)
    : settings_(settings), clock_(clock), migrations_(std::move(migrations)) {
  std::sort(migrations_.begin(), migrations_.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
}

MigrationResult SqliteMigrator::apply() {
  MigrationResult result;
  try {
    Poco::Data::Session session = openSession(settings_);
    ensureTable(session);
    int known = migrations_.empty() ? 0 : migrations_.back().version;
    for (const Migration& m : migrations_) {
      // Each migration re-reads schema_migrations inside its own immediate transaction, so a
      // second process migrating at the same moment waits and then sees this one's rows.
      ImmediateTransaction tx(session);
      auto applied = readApplied(session);
      if (!applied.empty() && applied.rbegin()->first > known) {
        result.error = "database schema version " + std::to_string(applied.rbegin()->first) +
                       " is newer than this binary knows (" + std::to_string(known) + ")";
        return result;
      }
      auto it = applied.find(m.version);
      std::string checksum = migrationChecksum(m.sql);
      if (it != applied.end()) {
        if (it->second.checksum != checksum) {
          result.error = changedMessage(m);
          return result;
        }
        result.schemaVersion = m.version;
        continue;
      }
      try {
        exec(session, m.sql);
      } catch (const StorageError& e) {
        result.error = "migration " + m.name + " failed: " + e.what();
        return result;
      }
      std::int64_t appliedAt = clock_.nowSeconds();
      int version = m.version;
      std::string name = m.name;
      session << "INSERT INTO schema_migrations(version, name, checksum, applied_at) "
                 "VALUES(?, ?, ?, ?)",
          use(version), use(name), use(checksum), use(appliedAt), now;
      tx.commit();
      result.applied.push_back(m.name);
      result.schemaVersion = m.version;
    }
    result.ok = true;
  } catch (const StorageError& e) {
    result.error = e.what();
  } catch (const Poco::Exception& e) {
    result.error = e.displayText();
  }
  return result;
}

std::vector<MigrationState> SqliteMigrator::status() {
  std::map<int, AppliedRow> applied;
  try {
    Poco::Data::Session session = openSession(settings_);
    ensureTable(session);
    applied = readApplied(session);
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
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

}  // namespace b24es::sqlite
