// The counters (event_counts, event_buckets; SQLite's migration 0006, PostgreSQL's 0001)
// against COUNT(*) over events, after ingest from many threads, installs and uninstalls,
// purges, retention, purge_on_clean and SQLite's backfill; purge batch sizes; auto_vacuum.
// The real writer on a real database of the suite's backend (counters_test on SQLite,
// counters_test_pg on PostgreSQL; tests/test_backend.h).
#define BOOST_TEST_MODULE counters
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "counter_checks.h"
#include "embedded_migrations.h"
#include "retention.h"
#include "service.h"
#include "sqlite_storage.h"
#include "test_support.h"

using namespace b24es;
using Poco::Data::Keywords::now;

namespace {

const std::string kMembers[] = {"m-alpha", "m-beta", "m-gamma", "m-delta", "m-epsilon"};
const std::string kCodes[] = {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMCONTACTADD", "ONTASKADD"};

IncomingEvent eventOf(const std::string& member, const std::string& code) {
  IncomingEvent e;
  e.event = code;
  e.memberId = member;
  e.domain = member + ".bitrix24.com";
  if (code == "ONAPPINSTALL") {
    e.kind = EventKind::kInstall;
    e.tokens.push_back({1, "access-" + member, std::string("refresh-" + member), 1767265200, ""});
  }
  if (code == "ONAPPUNINSTALL") e.kind = EventKind::kUninstall;
  return e;
}

// Stores everything: installs and uninstalls as such, other events for any portal.
Verdict storeAll(const IncomingEvent& e, const std::optional<PortalRecord>& p) {
  if (e.kind == EventKind::kInstall) return {Verdict::Action::kInstall, ""};
  if (e.kind == EventKind::kUninstall) return {Verdict::Action::kUninstall, ""};
  return {p ? Verdict::Action::kStore : Verdict::Action::kStoreAndCreatePortal, ""};
}

struct Fixture {
  explicit Fixture(bool purgeOnClean = false, int purgeBatch = 1000)
      : settings(test::testSettings(dir)) {
    settings.db.synchronous = "normal";  // durability is not under test; speed is welcome
    storage = test::openTestStorage(settings, clock);
    SinkSettings sinkSettings;
    sinkSettings.purgeBatch = purgeBatch;
    sinkSettings.purgeOnClean = purgeOnClean;
    sinkSettings.onPurgeBatch = [this](std::int64_t rows) {
      std::lock_guard<std::mutex> lock(batchesMutex);
      purgeBatches.push_back(rows);
    };
    sink = storage->openEventSink(storeAll, sinkSettings);
  }
  ~Fixture() { sink->close(); }
  std::string q(const std::string& sql) { return test::queryScalar(settings, sql); }
  // Runs a statement that returns nothing (white-box set-up of tables the sink does not write).
  void exec(const std::string& sql) {
    if (test::testBackend() == test::Backend::postgresql) {
      test::pgQuery(settings.pg.url, sql);
    } else {
      Poco::Data::Session admin("SQLite", settings.db.path);
      admin << sql, now;
    }
  }
  std::int64_t n(const std::string& sql) { return std::stoll(q(sql)); }

  // Submits every event, then waits until all are committed.
  void writeAll(const std::vector<IncomingEvent>& events) {
    std::mutex m;
    std::condition_variable cv;
    std::size_t done = 0;
    for (const IncomingEvent& e : events) {
      sink->submit(e, [&](const IngestOutcome& o) {
        BOOST_CHECK(o.status == IngestOutcome::Status::kStored);
        std::lock_guard<std::mutex> lock(m);
        ++done;
        cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return done == events.size(); });
  }
  void write(const IncomingEvent& e) {
    BOOST_REQUIRE(sink->write(e).status == IngestOutcome::Status::kStored);
  }

  void checkExact() {
    BOOST_CHECK_EQUAL(q(test::kTotalsMismatchSql), "0");
    BOOST_CHECK_EQUAL(q(test::kBucketsMismatchSql), "0");
    BOOST_CHECK_EQUAL(q("SELECT count(*) FROM event_counts WHERE count <= 0"), "0");
    BOOST_CHECK_EQUAL(q("SELECT count(*) FROM event_buckets WHERE count <= 0"), "0");
    // The reader's answers are the counters'.
    EventStats stats = storage->reader().stats();
    BOOST_CHECK_EQUAL(stats.total, n("SELECT count(*) FROM events"));
    for (const PortalView& p :
         storage->reader().listPortals(PortalFilter{std::nullopt, PortalFilter::kMaxLimit}).items) {
      BOOST_CHECK_EQUAL(p.eventCount,
                        n("SELECT count(*) FROM events WHERE member_id = '" + p.memberId + "'"));
    }
  }

  test::TempDir dir;
  test::FakeClock clock;
  Settings settings;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<EventSink> sink;
  std::mutex batchesMutex;
  std::vector<std::int64_t> purgeBatches;
};

}  // namespace

BOOST_AUTO_TEST_CASE(counters_are_exact_after_ingest_from_many_threads) {
  Fixture f;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&f, t] {
      for (int i = 0; i < 150; ++i) {
        IncomingEvent e = eventOf(kMembers[(t + i) % 5], kCodes[(t * 7 + i) % 4]);
        BOOST_CHECK(f.sink->write(e).status == IngestOutcome::Status::kStored);
        // Events cross minute, hour and day boundaries while others write.
        if (t == 0 && i % 10 == 0) f.clock.advanceSeconds(6007);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events"), "1200");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM event_counts"), "20");
  BOOST_CHECK_GT(f.n("SELECT count(DISTINCT start) FROM event_buckets WHERE width = 86400"), 1);
  f.checkExact();
  EventStats stats = f.storage->reader().stats();
  BOOST_CHECK_EQUAL(stats.byEvent.size(), 4u);
  BOOST_CHECK_EQUAL(stats.byPortal.size(), 5u);
}

BOOST_AUTO_TEST_CASE(counters_are_exact_after_installs_and_uninstalls) {
  Fixture f;
  f.write(eventOf("m-alpha", "ONAPPINSTALL"));
  f.writeAll({eventOf("m-alpha", "ONCRMDEALADD"), eventOf("m-alpha", "ONCRMDEALADD"),
              eventOf("m-beta", "ONCRMDEALADD")});
  f.write(eventOf("m-alpha", "ONAPPUNINSTALL"));
  f.clock.advanceSeconds(60);
  f.write(eventOf("m-alpha", "ONAPPINSTALL"));
  f.checkExact();
  std::optional<PortalView> alpha = f.storage->reader().findPortalView("m-alpha");
  BOOST_REQUIRE(alpha);
  BOOST_CHECK_EQUAL(alpha->eventCount, 5);
  BOOST_CHECK_EQUAL(f.q("SELECT count FROM event_counts WHERE member_id = 'm-alpha' AND "
                        "event = 'ONAPPINSTALL'"),
                    "2");
}

BOOST_AUTO_TEST_CASE(purge_before_and_by_portal_in_batches_keeps_counters_exact) {
  Fixture f(false, 7);
  const std::int64_t start = f.clock.nowMillis();
  std::vector<IncomingEvent> events;
  for (int i = 0; i < 50; ++i) {
    f.write(eventOf(kMembers[i % 3], kCodes[i % 4]));
    f.clock.advanceSeconds(60);
  }
  // Events 0..29 were received before start + 30 minutes.
  PurgeRequest before;
  before.receivedBefore = start + 30 * 60 * 1000;
  before.dryRun = true;
  BOOST_CHECK_EQUAL(f.sink->purge(before), 30);
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events"), "50");  // a dry run deletes nothing
  f.checkExact();
  f.purgeBatches.clear();
  before.dryRun = false;
  BOOST_CHECK_EQUAL(f.sink->purge(before), 30);
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events"), "20");
  BOOST_CHECK_EQUAL(f.n("SELECT min(received_at) FROM events"), start + 30 * 60 * 1000);
  // 30 rows in batches of at most 7: 7, 7, 7, 7, 2, the last one seeing the first kept event.
  BOOST_CHECK_EQUAL(f.purgeBatches.size(), 5u);
  for (std::int64_t rows : f.purgeBatches) BOOST_CHECK_LE(rows, 7);
  f.checkExact();
  BOOST_CHECK_EQUAL(f.sink->purge(before), 0);  // nothing left before the cut

  PurgeRequest portal;
  portal.memberId = "m-beta";
  const std::int64_t beta = f.n("SELECT count(*) FROM events WHERE member_id = 'm-beta'");
  BOOST_REQUIRE_GT(beta, 0);
  portal.dryRun = true;
  BOOST_CHECK_EQUAL(f.sink->purge(portal), beta);
  portal.dryRun = false;
  BOOST_CHECK_EQUAL(f.sink->purge(portal), beta);
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events WHERE member_id = 'm-beta'"), "0");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM event_counts WHERE member_id = 'm-beta'"), "0");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events"), std::to_string(20 - beta));
  f.checkExact();
  // The portal row stays; only events go.
  BOOST_CHECK(f.storage->findPortal("m-beta").has_value());
}

BOOST_AUTO_TEST_CASE(retention_deletes_in_batches_of_at_most_1000_and_takes_turns_with_ingest) {
  Fixture f;
  BOOST_CHECK_EQUAL(SinkSettings{}.purgeBatch, 1000);
  std::vector<IncomingEvent> old;
  for (int i = 0; i < 2500; ++i) old.push_back(eventOf(kMembers[i % 5], kCodes[i % 4]));
  f.writeAll(old);
  f.clock.advanceSeconds(3 * 86400);
  f.write(eventOf("m-alpha", "ONCRMDEALADD"));
  RetentionSettings retention;
  retention.days = 2;
  PurgeRequest request = retentionRequest(retention, f.clock.nowMillis());
  BOOST_CHECK_EQUAL(*request.receivedBefore, f.clock.nowMillis() - 2 * 86400000);
  // Ingest while the purge runs: its events are stored and counted too.
  std::thread ingest([&f] {
    for (int i = 0; i < 50; ++i) f.write(eventOf("m-zeta", "ONCRMDEALUPDATE"));
  });
  BOOST_CHECK_EQUAL(f.sink->purge(request), 2500);
  ingest.join();
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events"), "51");
  BOOST_CHECK_EQUAL(f.purgeBatches.size(), 3u);
  for (std::int64_t rows : f.purgeBatches) BOOST_CHECK_LE(rows, 1000);
  f.checkExact();
  if (test::testBackend() == test::Backend::sqlite) {
    // A new database reuses the space: auto_vacuum=INCREMENTAL and incremental_vacuum. (On
    // PostgreSQL, autovacuum makes deleted rows' space reusable; nothing of ours to check.)
    BOOST_CHECK_EQUAL(f.q("PRAGMA auto_vacuum"), "2");
    BOOST_CHECK_EQUAL(f.q("PRAGMA freelist_count"), "0");
  }
}

// Two receivers on one database (SPEC §11; on SQLite, two processes' stores) run the same purge
// at once, in batches small enough that they interleave: each event is deleted by one of them,
// and its counters go down once.
BOOST_AUTO_TEST_CASE(two_stores_purging_the_same_events_at_once_count_each_deletion_once) {
  Fixture f(false, 7);
  std::vector<IncomingEvent> old;
  for (int i = 0; i < 600; ++i) old.push_back(eventOf(kMembers[i % 5], kCodes[i % 4]));
  f.writeAll(old);
  f.clock.advanceSeconds(3 * 86400);
  f.write(eventOf("m-alpha", "ONCRMDEALADD"));
  std::unique_ptr<Storage> other = test::openTestStorage(f.settings, f.clock);
  SinkSettings otherSettings;
  otherSettings.purgeBatch = 7;
  std::unique_ptr<EventSink> otherSink = other->openEventSink(storeAll, otherSettings);
  PurgeRequest request;
  request.receivedBefore = f.clock.nowMillis() - 86400000;
  std::int64_t mine = 0;
  std::int64_t theirs = 0;
  std::thread second([&] { theirs = otherSink->purge(request); });
  mine = f.sink->purge(request);
  second.join();
  otherSink->close();
  BOOST_CHECK_EQUAL(mine + theirs, 600);
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events"), "1");
  f.checkExact();
}

BOOST_AUTO_TEST_CASE(retention_off_still_prunes_old_minute_and_hour_buckets) {
  Fixture f;
  f.write(eventOf("m-alpha", "ONCRMDEALADD"));
  f.clock.advanceSeconds(8 * 86400);  // minute buckets expire after 7 days
  f.write(eventOf("m-alpha", "ONCRMDEALADD"));
  PurgeRequest request = retentionRequest(RetentionSettings{}, f.clock.nowMillis());
  BOOST_CHECK(!request.receivedBefore);
  BOOST_CHECK_EQUAL(f.sink->purge(request), 0);
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events"), "2");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM event_buckets WHERE width = 60"), "2");  // m + ''
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM event_buckets WHERE width = 3600"), "4");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM event_buckets WHERE width = 86400"), "4");
  BOOST_CHECK_EQUAL(f.q("SELECT count FROM event_counts"), "2");
  f.clock.advanceSeconds(91 * 86400);  // and hour buckets after 90
  f.sink->purge(retentionRequest(RetentionSettings{}, f.clock.nowMillis()));
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM event_buckets WHERE width = 3600"), "0");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM event_buckets WHERE width = 86400"), "4");
  // Deleting an event whose minute bucket is gone leaves no negative bucket behind.
  PurgeRequest all;
  all.memberId = "m-alpha";
  BOOST_CHECK_EQUAL(f.sink->purge(all), 2);
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM event_buckets"), "0");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM event_counts"), "0");
}

BOOST_AUTO_TEST_CASE(purge_on_clean_deletes_earlier_events_tokens_bindings_and_offline_state) {
  Fixture f(true);
  // Bindings and offline state (SQLite's migration 0007, PostgreSQL's 0004) of both portals.
  f.exec(
      "INSERT INTO bindings VALUES('m-alpha', 'ONCRMDEALADD', 'online', 'bound', NULL, 0), "
      "('m-beta', 'ONCRMDEALADD', 'online', 'bound', NULL, 0)");
  f.exec(
      "INSERT INTO offline_state(member_id, mode) VALUES('m-alpha', 'clear'), ('m-beta', 'clear')");
  // ids: a JSON array on SQLite, bigint[] on PostgreSQL.
  const bool pg = test::testBackend() == test::Backend::postgresql;
  f.exec(std::string("INSERT INTO offline_batches VALUES('m-alpha', 'p1', ") +
         (pg ? "'{1}'" : "'[1]'") + ", 0), ('m-beta', 'p2', " + (pg ? "'{2}'" : "'[2]'") + ", 0)");
  f.write(eventOf("m-alpha", "ONAPPINSTALL"));
  f.write(eventOf("m-beta", "ONAPPINSTALL"));
  std::vector<IncomingEvent> events;
  for (int i = 0; i < 30; ++i)
    events.push_back(eventOf(i % 2 ? "m-alpha" : "m-beta", kCodes[i % 4]));
  f.writeAll(events);
  IncomingEvent keep = eventOf("m-beta", "ONAPPUNINSTALL");  // CLEAN=0: keeps the data
  f.write(keep);
  IncomingEvent clean = eventOf("m-alpha", "ONAPPUNINSTALL");
  clean.clean = true;
  const std::int64_t uninstallId = f.sink->write(clean).id;
  // The events go in purge batches after the uninstall commits; purges run in order, so an
  // empty one returns after them.
  BOOST_CHECK_EQUAL(f.sink->purge(PurgeRequest{}), 0);
  BOOST_CHECK_EQUAL(f.q("SELECT min(id) FROM events WHERE member_id = 'm-alpha'"),
                    std::to_string(uninstallId));
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events WHERE member_id = 'm-alpha'"), "1");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM tokens WHERE member_id = 'm-alpha'"), "0");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM bindings WHERE member_id = 'm-alpha'"), "0");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM offline_state WHERE member_id = 'm-alpha'"), "0");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM offline_batches WHERE member_id = 'm-alpha'"), "0");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM portals WHERE member_id = 'm-alpha'"), "1");
  // The other portal, uninstalled without CLEAN, keeps everything but its tokens.
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events WHERE member_id = 'm-beta'"), "17");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM bindings WHERE member_id = 'm-beta'"), "1");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM offline_state WHERE member_id = 'm-beta'"), "1");
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM offline_batches WHERE member_id = 'm-beta'"), "1");
  f.checkExact();
}

BOOST_AUTO_TEST_CASE(clean_is_ignored_unless_purge_on_clean) {
  Fixture f(false);
  f.write(eventOf("m-alpha", "ONAPPINSTALL"));
  f.write(eventOf("m-alpha", "ONCRMDEALADD"));
  IncomingEvent clean = eventOf("m-alpha", "ONAPPUNINSTALL");
  clean.clean = true;
  f.write(clean);
  f.sink->purge(PurgeRequest{});
  BOOST_CHECK_EQUAL(f.q("SELECT count(*) FROM events"), "3");

  Fixture on(true);
  on.write(eventOf("m-alpha", "ONAPPINSTALL"));
  on.write(eventOf("m-alpha", "ONCRMDEALADD"));
  on.write(clean);
  on.sink->purge(PurgeRequest{});
  BOOST_CHECK_EQUAL(on.q("SELECT count(*) FROM events"), "1");
  on.checkExact();
}

// SQLite only: its migration 0006 added the counters to databases that had events. PostgreSQL's
// schema had them from its first migration, so there is nothing to backfill.
BOOST_AUTO_TEST_CASE(migration_0006_backfills_counters_from_existing_events,
                     *test::onlyOn(test::Backend::sqlite)) {
  test::TempDir dir;
  test::FakeClock clock;
  SqliteSettings settings;
  settings.path = dir.file("events.db");
  std::vector<Migration> before;
  for (const Migration& m : embeddedMigrations()) {
    if (m.version < 6) before.push_back(m);
  }
  BOOST_REQUIRE(openSqliteStorage(settings, clock, before)->migrator().apply().ok);
  {
    Poco::Data::Session admin("SQLite", settings.path);
    // 3,000 events of 3 portals and 4 codes over about 35 days.
    admin << "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2999) "
             "INSERT INTO events(member_id, domain, event, ts, received_at, data) "
             "SELECT 'm' || (i % 3), 'd', 'E' || (i % 4), 1767261600 + i, "
             "1767261600000 + i * 1013117, '{}' FROM n",
        now;
  }
  auto storage = openSqliteStorage(settings, clock, embeddedMigrations());
  BOOST_REQUIRE(storage->migrator().apply().ok);
  auto q = [&](const std::string& sql) { return test::queryScalar(settings.path, sql); };
  BOOST_CHECK_EQUAL(q(test::kTotalsMismatchSql), "0");
  BOOST_CHECK_EQUAL(q(test::kBucketsMismatchSql), "0");
  BOOST_CHECK_EQUAL(q("SELECT sum(count) FROM event_counts"), "3000");
  BOOST_CHECK_EQUAL(q("SELECT sum(count) FROM event_buckets WHERE width = 86400 AND "
                      "member_id = ''"),
                    "3000");
  BOOST_CHECK_EQUAL(storage->reader().stats().total, 3000);
}

BOOST_AUTO_TEST_CASE(serve_runs_retention_passes_that_delete_old_events) {
  test::TempDir dir;
  test::FakeClock clock;
  Settings settings = test::testSettings(dir);
  settings.db.synchronous = "normal";
  settings.retention.days = 1;
  settings.retention.firstPassSeconds = 0;
  settings.retention.intervalSeconds = 1;
  Service service(settings, clock);
  service.start();
  for (const char* name : {"01-ONAPPINSTALL.form", "03-ONCRMDEALADD.form"}) {
    BOOST_REQUIRE_EQUAL(
        test::postForm(service.ingestUrl(), settings.ingest.path, test::sample(name)).status, 200);
  }
  clock.advanceSeconds(2 * 86400);
  BOOST_REQUIRE_EQUAL(test::postForm(service.ingestUrl(), settings.ingest.path,
                                     test::sample("03-ONCRMDEALADD.form"))
                          .status,
                      200);
  // The passes run once a second on the timer's thread; wait for one that saw the new time.
  std::string left;
  for (int i = 0; i < 600 && left != "1"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    left = test::queryScalar(settings, "SELECT count(*) FROM events");
  }
  BOOST_CHECK_EQUAL(left, "1");
  BOOST_CHECK_EQUAL(test::queryScalar(settings, "SELECT sum(count) FROM event_counts"), "1");
  BOOST_CHECK_EQUAL(test::queryScalar(settings, test::kTotalsMismatchSql), "0");
  BOOST_CHECK_EQUAL(test::queryScalar(settings, test::kBucketsMismatchSql), "0");
  service.stop();
}
