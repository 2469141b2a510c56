// Migration 0011 (issue 14 item 5): events stored with integer keys for member_id, domain and
// event code, behind a view `events` with the columns of SPEC §7. An existing database keeps
// every event, column for column, with its id and the id sequence; reads through the view, the
// report views and json_extract see what they saw before; writes through the view find or make
// the keys; the writer stores one key per text and the reader gives back the texts.
#define BOOST_TEST_MODULE lean_events
#include <boost/test/unit_test.hpp>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Exception.h>

#include "embedded_migrations.h"
#include "sqlite_storage.h"
#include "test_support.h"

using namespace b24es;

namespace {

// Every column of every event through the view, in id order, each value quoted (so NULL, an
// integer and a text stay distinct).
const char* const kAllColumns =
    "SELECT group_concat(v, char(10)) FROM (SELECT quote(id) || ',' || quote(member_id) || ',' "
    "|| quote(domain) || ',' || quote(event) || ',' || quote(event_handler_id) || ',' || "
    "quote(event_id) || ',' || quote(ts) || ',' || quote(received_at) || ',' || quote(user_id) "
    "|| ',' || quote(entity_id) || ',' || quote(entity_type_id) || ',' || quote(data) || ',' || "
    "quote(source) || ',' || quote(offline_id) || ',' || quote(message_id) AS v "
    "FROM events ORDER BY id)";

const char* const kReadable =
    "SELECT group_concat(id || ' ' || ts_utc || ' ' || received_at_utc || ' ' || received_day "
    "|| ' ' || member_id || ' ' || event, char(10)) FROM events_readable";

// The report view portal_activity without its columns relative to now.
const char* const kActivity =
    "SELECT group_concat(member_id || ' ' || event_count || ' ' || coalesce(first_received_at, "
    "'-') || ' ' || coalesce(last_received_at, '-') || ' ' || coalesce(last_event, '-') || ' ' "
    "|| coalesce(last_event_ts, '-') || ' ' || state, char(10)) FROM (SELECT * FROM "
    "portal_activity ORDER BY member_id)";

std::vector<Migration> migrationsUpTo(int version) {
  std::vector<Migration> out;
  for (const Migration& m : embeddedMigrations()) {
    if (m.version <= version) out.push_back(m);
  }
  return out;
}

struct Database {
  Database() { settings.path = dir.file("events.db"); }
  void migrate(const std::vector<Migration>& migrations) {
    auto storage = openSqliteStorage(settings, clock, migrations);
    BOOST_REQUIRE(storage->migrator().apply().ok);
  }
  void exec(const std::string& sql) {
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::Session admin("SQLite", settings.path);
    admin << sql, Poco::Data::Keywords::now;
  }
  std::string q(const std::string& sql) { return test::queryScalar(settings.path, sql); }

  test::TempDir dir;
  test::FakeClock clock;
  SqliteSettings settings;
};

Verdict storeAll(const IncomingEvent&, const std::optional<PortalRecord>&) {
  Verdict v;
  v.action = Verdict::Action::kStore;
  return v;
}

}  // namespace

BOOST_AUTO_TEST_CASE(migration_0011_keeps_every_event_column_for_column_with_its_id) {
  Database db;
  db.migrate(migrationsUpTo(10));
  BOOST_REQUIRE(db.q("SELECT max(version) FROM schema_migrations") == "10");
  // Online and offline events, with and without a domain, entity, user; ids with a gap; and
  // the newest ids deleted, so that the sequence is above max(id).
  db.exec(
      "INSERT INTO events(id, member_id, domain, event, event_handler_id, event_id, ts, "
      "received_at, user_id, entity_id, entity_type_id, data, source, offline_id, message_id) "
      "VALUES "
      "(1, 'm1', 'a.bitrix24.com', 'ONAPPINSTALL', 11, NULL, 1767261600, 1767261600123, 1, "
      "NULL, NULL, '{\"VERSION\":\"1\"}', 'online', NULL, NULL), "
      "(2, 'm1', 'a.bitrix24.com', 'ONCRMDEALADD', 185, 77, 1767261700, 1767261700456, 9, "
      "7405, NULL, '{\"FIELDS\":{\"ID\":\"7405\"}}', 'online', NULL, NULL), "
      "(4, 'm2', NULL, 'ONCRMDYNAMICITEMADD', NULL, NULL, 1767261800, 1767261800789, NULL, 22, "
      "1220, '{\"FIELDS\":{\"ID\":\"22\",\"ENTITY_TYPE_ID\":\"1220\"}}', 'offline', 31, "
      "'msg-31'), "
      "(5, 'm2', 'b.bitrix24.com', 'ONCRMDEALADD', 185, NULL, NULL, 1767261900000, 3, NULL, "
      "NULL, '[\"a\",{\"ID\":\"5\"}]', 'online', NULL, NULL), "
      "(6, 'm1', 'a.bitrix24.com', 'ONCRMDEALADD', 185, NULL, 1767262000, 1767262000000, 9, "
      "7405, NULL, '{}', 'online', NULL, NULL), "
      "(7, 'm1', 'a.bitrix24.com', 'ONCRMDEALADD', 185, NULL, 1767262000, 1767262000000, 9, "
      "7405, NULL, '{}', 'online', NULL, NULL)");
  db.exec("DELETE FROM events WHERE id >= 6");
  db.exec(
      "INSERT INTO portals(member_id, domain, updated_at) VALUES ('m1', 'a', 0), "
      "('m2', 'b', 0), ('m3', 'c', 0)");
  const std::string before = db.q(kAllColumns);
  const std::string readableBefore = db.q(kReadable);
  const std::string activityBefore = db.q(kActivity);
  BOOST_REQUIRE(activityBefore.find("m2 2 1767261800789 1767261900000 ONCRMDEALADD") !=
                std::string::npos);
  BOOST_REQUIRE(before.find("'offline',31,'msg-31'") != std::string::npos);

  db.migrate(embeddedMigrations());
  BOOST_TEST(db.q("SELECT type FROM sqlite_master WHERE name = 'events'") == "view");
  BOOST_TEST(db.q(kAllColumns) == before);
  BOOST_TEST(db.q(kReadable) == readableBefore);
  BOOST_TEST(db.q(kActivity) == activityBefore);  // 0011's own portal_activity
  BOOST_TEST(db.q("SELECT json_extract(data, '$.FIELDS.ENTITY_TYPE_ID') FROM events "
                  "WHERE id = 4") == "1220");
  // One key per text, not per event.
  BOOST_TEST(db.q("SELECT count(*) FROM event_portals") == "2");
  BOOST_TEST(db.q("SELECT count(*) FROM event_domains") == "2");
  BOOST_TEST(db.q("SELECT count(*) FROM event_codes") == "3");
  BOOST_TEST(db.q("SELECT seq FROM sqlite_sequence WHERE name = 'event_rows'") == "7");
  BOOST_TEST(db.q("SELECT count(*) FROM sqlite_sequence WHERE name = 'events'") == "0");
  // The unique (member_id, offline_id) of 0007 still holds.
  BOOST_CHECK_THROW(db.exec("INSERT INTO events(member_id, event, received_at, data, source, "
                            "offline_id) VALUES('m2', 'ONCRMDEALADD', 1, '{}', 'offline', 31)"),
                    Poco::Exception);

  // The writer goes on after the largest id ever handed out, not after max(id).
  auto storage = openSqliteStorage(db.settings, db.clock, embeddedMigrations());
  BOOST_REQUIRE(storage->migrator().apply().ok);
  auto sink = storage->openEventSink(storeAll, SinkSettings{});
  IncomingEvent e;
  e.event = "ONCRMDEALUPDATE";
  e.memberId = "m2";
  e.domain = "b.bitrix24.com";
  e.dataJson = "{}";
  IngestOutcome out = sink->write(e);
  sink->close();
  BOOST_REQUIRE((out.status == IngestOutcome::Status::kStored));
  BOOST_TEST(out.id == 8);
  BOOST_TEST(db.q("SELECT member_id || ' ' || domain || ' ' || event || ' ' || source FROM "
                  "events WHERE id = 8") == "m2 b.bitrix24.com ONCRMDEALUPDATE online");
  BOOST_TEST(db.q("SELECT count(*) FROM event_portals") == "2");
  BOOST_TEST(db.q("SELECT count(*) FROM event_codes") == "4");
}

BOOST_AUTO_TEST_CASE(a_new_database_migrates_with_no_events_and_keeps_the_indexes_by_name) {
  Database db;
  db.migrate(embeddedMigrations());
  BOOST_TEST(db.q("SELECT count(*) FROM events") == "0");
  BOOST_TEST(db.q("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE "
                  "type = 'index' AND tbl_name = 'event_rows' ORDER BY name)") ==
             "events_domain,events_entity_member,events_entity_type,events_event,"
             "events_member_event,events_member_id,events_offline,events_offline_id,events_ts,"
             "events_user");
}

BOOST_AUTO_TEST_CASE(writes_through_the_view_find_or_make_the_keys) {
  Database db;
  db.migrate(embeddedMigrations());
  db.exec(
      "INSERT INTO events(member_id, domain, event, ts, received_at, data) VALUES "
      "('m1', 'a.bitrix24.com', 'ONCRMDEALADD', 1767261600, 1767261600000, '{\"ID\":\"1\"}'), "
      "('m1', 'a.bitrix24.com', 'ONCRMDEALADD', 1767261601, 1767261601000, '{}'), "
      "('m2', NULL, 'ONCRMDEALUPDATE', 1767261602, 1767261602000, '{}')");
  BOOST_TEST(db.q("SELECT group_concat(id || member_id || coalesce(domain, '-') || event || "
                  "source, ',') FROM events") ==
             "1m1a.bitrix24.comONCRMDEALADDonline,2m1a.bitrix24.comONCRMDEALADDonline,"
             "3m2-ONCRMDEALUPDATEonline");
  BOOST_TEST(db.q("SELECT count(*) FROM event_portals") == "2");
  BOOST_TEST(db.q("SELECT count(*) FROM event_domains") == "1");
  BOOST_TEST(db.q("SELECT json_extract(data, '$.ID') FROM events WHERE id = 1") == "1");
  BOOST_TEST(db.q("SELECT count(*) FROM events WHERE member_id = 'm1'") == "2");

  // A row without its required columns is refused, as the table's NOT NULLs refused it.
  BOOST_CHECK_THROW(db.exec("INSERT INTO events(domain, event, received_at, data) "
                            "VALUES('x', 'E', 1, '{}')"),
                    Poco::Exception);
  BOOST_CHECK_THROW(db.exec("INSERT INTO events(member_id, event, data) VALUES('m3', 'E', '{}')"),
                    Poco::Exception);
  BOOST_TEST(db.q("SELECT count(*) FROM events") == "3");
  BOOST_TEST(db.q("SELECT count(*) FROM event_portals WHERE member_id = 'm3'") == "0");

  db.exec("DELETE FROM events WHERE member_id = 'm1'");
  BOOST_TEST(db.q("SELECT group_concat(id) FROM events") == "3");
  BOOST_TEST(db.q("SELECT count(*) FROM event_rows") == "1");
}

BOOST_AUTO_TEST_CASE(the_writer_stores_one_key_per_text_and_the_reader_gives_back_the_texts) {
  Database db;
  auto storage = openSqliteStorage(db.settings, db.clock, embeddedMigrations());
  BOOST_REQUIRE(storage->migrator().apply().ok);
  auto sink = storage->openEventSink(storeAll, SinkSettings{});
  for (int i = 0; i < 30; ++i) {
    IncomingEvent e;
    e.memberId =
        i % 3 == 0 ? "7c1e5a93d2b84f06a9e3c5d71b2f8e40" : "b8d1f03e9a6c4725e1d0f4b3a2c9e817";
    e.domain = i % 3 == 0 ? "acme-test.bitrix24.com" : "";
    e.event = i % 2 == 0 ? "ONCRMDEALADD" : "ONCRMCONTACTADD";
    e.entityId = i;
    e.dataJson = "{\"I\":" + std::to_string(i) + "}";
    BOOST_REQUIRE((sink->write(e).status == IngestOutcome::Status::kStored));
  }
  sink->close();
  BOOST_TEST(db.q("SELECT count(*) FROM event_portals") == "2");
  BOOST_TEST(db.q("SELECT count(*) FROM event_domains") == "1");
  BOOST_TEST(db.q("SELECT count(*) FROM event_codes") == "2");
  BOOST_TEST(db.q("SELECT count(*) FROM event_rows WHERE domain IS NULL") == "20");

  EventFilter f;
  f.memberId = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";
  f.event = "ONCRMCONTACTADD";
  std::vector<EventRecord> got;
  storage->reader().scanEvents(f, [&](EventRecord& r) {
    got.push_back(r);
    return true;
  });
  BOOST_REQUIRE_EQUAL(got.size(), 5u);  // i = 3, 9, 15, 21, 27
  BOOST_TEST(got[0].entityId.value_or(-1) == 3);
  BOOST_TEST(got[0].memberId == "7c1e5a93d2b84f06a9e3c5d71b2f8e40");
  BOOST_TEST(got[0].domain.value_or("") == "acme-test.bitrix24.com");
  BOOST_TEST(got[0].event == "ONCRMCONTACTADD");
  BOOST_TEST(got[0].dataJson == "{\"I\":3}");

  // A text never stored matches nothing (its key subquery is NULL), and a domainless event
  // reads back without one.
  f.memberId = "no-such-portal";
  int none = 0;
  storage->reader().scanEvents(f, [&](EventRecord&) {
    ++none;
    return true;
  });
  BOOST_TEST(none == 0);
  std::optional<EventRecord> second = storage->reader().findEvent(2);
  BOOST_REQUIRE(second.has_value());
  BOOST_TEST(!second->domain.has_value());
  BOOST_TEST(second->memberId == "b8d1f03e9a6c4725e1d0f4b3a2c9e817");
}
