// SQLite specifics of the migrator (storage/sqlite/sqlite_migrator.cpp): the schema it creates,
// file modes, WAL. What any backend's Migrator promises is in storage_contract_test.cpp.
#define BOOST_TEST_MODULE migrator
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>

#include "embedded_migrations.h"
#include "sqlite_storage.h"
#include "test_support.h"

using namespace b24es;

namespace {

SqliteSettings settingsIn(const test::TempDir& dir) {
  SqliteSettings s;
  s.path = dir.file("nested/db/events.db");
  return s;
}

std::vector<Migration> twoMigrations() {
  return {{1, "0001_a.sql", "CREATE TABLE a(x INTEGER);"},
          {2, "0002_b.sql", "CREATE TABLE b(y INTEGER); INSERT INTO b VALUES (1);"}};
}

}  // namespace

BOOST_AUTO_TEST_CASE(fresh_database_gets_every_embedded_migration) {
  test::TempDir dir;
  test::FakeClock clock;
  auto storage = openSqliteStorage(settingsIn(dir), clock, embeddedMigrations());
  MigrationResult r = storage->migrator().apply();
  BOOST_TEST(r.ok, r.error);
  BOOST_TEST(r.applied.size() == embeddedMigrations().size());
  BOOST_TEST(r.schemaVersion == embeddedMigrations().back().version);
  std::string db = settingsIn(dir).path;
  BOOST_TEST(test::queryScalar(db, "SELECT count(*) FROM schema_migrations") ==
             std::to_string(embeddedMigrations().size()));
  BOOST_TEST(test::queryScalar(db, "SELECT applied_at FROM schema_migrations WHERE version=1") ==
             "1767261600");
  BOOST_TEST(test::queryScalar(db, "SELECT length(checksum) FROM schema_migrations LIMIT 1") ==
             "64");
  for (const char* table : {"portals", "tokens"}) {
    BOOST_TEST(test::queryScalar(db, std::string("SELECT count(*) FROM sqlite_master WHERE "
                                                 "type='table' AND name='") +
                                         table + "'") == "1",
               table);
  }
  // SPEC §7's events: since migration 0011 a view over event_rows and its key tables.
  BOOST_TEST(test::queryScalar(db, "SELECT type FROM sqlite_master WHERE name='events'") == "view");
  BOOST_TEST(test::queryScalar(db, "PRAGMA journal_mode") == "wal");
  BOOST_TEST(storage->healthy());
}

BOOST_AUTO_TEST_CASE(database_folder_is_0700_and_file_0600) {
  test::TempDir dir;
  test::FakeClock clock;
  auto storage = openSqliteStorage(settingsIn(dir), clock, embeddedMigrations());
  struct stat st {};
  BOOST_REQUIRE(::stat(settingsIn(dir).path.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  BOOST_REQUIRE(::stat(dir.file("nested/db").c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0700u);
}

BOOST_AUTO_TEST_CASE(database_newer_than_the_binary_is_refused) {
  test::TempDir dir;
  test::FakeClock clock;
  BOOST_TEST(openSqliteStorage(settingsIn(dir), clock, twoMigrations())->migrator().apply().ok);
  auto older = openSqliteStorage(settingsIn(dir), clock, {twoMigrations()[0]});
  MigrationResult r = older->migrator().apply();
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.error.find("newer") != std::string::npos, r.error);
}
