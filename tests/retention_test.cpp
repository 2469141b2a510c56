// Retention and purge (SPEC §9) on the suite's backend (retention_test on SQLite,
// retention_test_pg on PostgreSQL; tests/test_backend.h): `b24-event-store purge` by time and
// by portal with exact counters and nothing else deleted, and `serve`'s scheduled passes in
// two processes on one database at once, which delete each old event once and count it once.
// The events are written through the real writer (so its counters are the ones under test)
// with a clock the test sets; the binary runs as a child process on the same database.
#define BOOST_TEST_MODULE retention
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/File.h>
#include <Poco/RegularExpression.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "counter_checks.h"
#include "test_support.h"

using namespace b24es;

namespace {

constexpr std::int64_t kJan1 = 1767225600;  // 2026-01-01T00:00:00Z

// Stores everything: installs as such (with a token), other events for any portal.
Verdict storeAll(const IncomingEvent& e, const std::optional<PortalRecord>& p) {
  if (e.kind == EventKind::kInstall) return {Verdict::Action::kInstall, ""};
  return {p ? Verdict::Action::kStore : Verdict::Action::kStoreAndCreatePortal, ""};
}

IncomingEvent eventOf(const std::string& member, const std::string& code, std::int64_t ts) {
  IncomingEvent e;
  e.event = code;
  e.memberId = member;
  e.domain = member + ".bitrix24.com";
  e.ts = ts;
  if (code == "ONAPPINSTALL") {
    e.kind = EventKind::kInstall;
    e.tokens.push_back({1, "access-" + member, std::string("refresh-" + member), ts + 3600, ""});
  }
  return e;
}

// The database of one test folder on the suite's backend, where `serveArgs(dir)` and
// `backendEnv(dir)` point a child process too (db.path dir/events.db on SQLite).
struct Database {
  Database() : settings(test::testSettings(dir)) {
    settings.db.path = dir.file("events.db");
    settings.db.synchronous = "normal";  // durability is not under test
  }
  std::string q(const std::string& sql) { return test::queryScalar(settings, sql); }
  std::int64_t n(const std::string& sql) { return std::stoll(q(sql)); }

  // Writes `events`, each received at the clock's time of its entry in `at` (unix seconds),
  // through the real writer, then closes it.
  void write(const std::vector<IncomingEvent>& events, const std::vector<std::int64_t>& at) {
    test::FakeClock clock;
    std::unique_ptr<Storage> storage = test::openTestStorage(settings, clock);
    std::unique_ptr<EventSink> sink = storage->openEventSink(storeAll, SinkSettings{});
    for (std::size_t i = 0; i < events.size(); ++i) {
      clock.setSeconds(at[i]);
      BOOST_REQUIRE(sink->write(events[i]).status == IngestOutcome::Status::kStored);
    }
    sink->close();
  }

  void checkCountersExact() {
    BOOST_TEST(q(test::kTotalsMismatchSql) == "0");
    BOOST_TEST(q(test::kBucketsMismatchSql) == "0");
    BOOST_TEST(q("SELECT count(*) FROM event_counts WHERE count <= 0") == "0");
    BOOST_TEST(q("SELECT count(*) FROM event_buckets WHERE count <= 0") == "0");
  }

  std::map<std::string, std::string> env() const { return test::backendEnv(dir); }

  test::TempDir dir;
  Settings settings;
};

// What each "retention pass: deleted=N" line of a serve process's log says, summed.
std::int64_t purgedInLog(const std::string& log) {
  Poco::RegularExpression line("retention pass: deleted=([0-9]+)");
  std::int64_t total = 0;
  std::string::size_type offset = 0;
  Poco::RegularExpression::MatchVec match;
  while (offset < log.size() && line.match(log, offset, match) > 0) {
    total += std::stoll(log.substr(match[1].offset, match[1].length));
    offset = match[0].offset + match[0].length;
  }
  return total;
}

}  // namespace

BOOST_AUTO_TEST_CASE(purge_deletes_by_time_or_portal_prints_deleted_and_exits_0_1_2) {
  Database db;
  std::string out, err;
  if (test::testBackend() == test::Backend::sqlite) {
    // A database file that is not there is not created by purge. (On PostgreSQL the database is
    // the server's; a missing one is a connection error, which is the exit code 1 as well.)
    BOOST_TEST(test::runBinary({"purge", "--db", db.settings.db.path, "--member-id", "m0"}, out,
                               err) == 1);
    BOOST_TEST(err.find("does not exist") != std::string::npos, err);
    BOOST_TEST(!Poco::File(db.settings.db.path).exists());
  }
  // 100 events of portals m0..m3, received one hour apart from 2026-01-01T00:00:00Z; the first
  // four install the portals (with a token each), which the purges must leave in place.
  std::vector<IncomingEvent> events;
  std::vector<std::int64_t> at;
  for (int i = 0; i < 100; ++i) {
    const std::string member = "m" + std::to_string(i % 4);
    events.push_back(
        eventOf(member, i < 4 ? "ONAPPINSTALL" : "E" + std::to_string(i % 3), kJan1 + i));
    at.push_back(kJan1 + i * 3600);
  }
  db.write(events, at);
  const std::string dbPath = db.settings.db.path;
  for (const std::vector<std::string>& usage : std::vector<std::vector<std::string>>{
           {"purge", "--db", dbPath},
           {"purge", "--db", dbPath, "--member-id", "m0", "--before", "1767225600"},
           {"purge", "--db", dbPath, "--before", "yesterday"},
           {"purge", "--db", dbPath, "--before", "2026-02-30"},
           {"purge", "--db", dbPath, "--member-id", "m0", "--force"}}) {
    BOOST_TEST_CONTEXT(usage.back()) {
      BOOST_TEST(test::runBinary(usage, out, err, db.env()) == 2);
      BOOST_TEST(!err.empty());
    }
  }
  BOOST_TEST(db.q("SELECT count(*) FROM events") == "100");
  // Received before 2026-01-02T00:00:00Z: the first 24.
  BOOST_TEST(
      test::runBinary({"purge", "--db", dbPath, "--before", "2026-01-02T00:00:00Z", "--dry-run"},
                      out, err, db.env()) == 0,
      err);
  BOOST_TEST(out == "deleted=24\n");
  BOOST_TEST(db.q("SELECT count(*) FROM events") == "100");
  BOOST_TEST(db.q("SELECT sum(count) FROM event_counts") == "100");
  BOOST_TEST(
      test::runBinary({"purge", "--db", dbPath, "--before", "1767312000"}, out, err, db.env()) == 0,
      err);
  BOOST_TEST(out == "deleted=24\n");
  BOOST_TEST(db.q("SELECT count(*) FROM events") == "76");
  BOOST_TEST(db.q("SELECT min(received_at) FROM events") == "1767312000000");
  db.checkCountersExact();
  BOOST_TEST(
      test::runBinary({"purge", "--db", dbPath, "--member-id", "m1"}, out, err, db.env()) == 0,
      err);
  BOOST_TEST(out == "deleted=19\n");
  BOOST_TEST(db.q("SELECT count(*) FROM events WHERE member_id = 'm1'") == "0");
  BOOST_TEST(db.q("SELECT count(*) FROM event_counts WHERE member_id = 'm1'") == "0");
  BOOST_TEST(
      test::runBinary({"purge", "--db", dbPath, "--member-id", "m1"}, out, err, db.env()) == 0,
      err);
  BOOST_TEST(out == "deleted=0\n");
  BOOST_TEST(db.q("SELECT count(*) FROM events") == "57");
  BOOST_TEST(db.q("SELECT sum(count) FROM event_counts") == "57");
  BOOST_TEST(db.q("SELECT sum(count) FROM event_buckets WHERE width = 3600 AND member_id = ''") ==
             "57");
  db.checkCountersExact();
  // Nothing but events went: the portals, still installed, and their tokens.
  BOOST_TEST(db.q("SELECT count(*) FROM portals WHERE installed_at IS NOT NULL AND "
                  "uninstalled_at IS NULL") == "4");
  BOOST_TEST(db.q("SELECT count(*) FROM tokens WHERE refresh_token IS NOT NULL") == "4");
}

BOOST_AUTO_TEST_CASE(two_serve_processes_purging_at_once_delete_and_count_each_event_once) {
  Database db;
  // 2,600 events received three days ago (three purge batches of at most 1,000 each, so the
  // two processes' passes overlap), and 40 received now, of 5 portals and 4 codes.
  const auto nowSeconds = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  std::vector<IncomingEvent> events;
  std::vector<std::int64_t> at;
  for (int i = 0; i < 2640; ++i) {
    const bool old = i < 2600;
    events.push_back(eventOf("m" + std::to_string(i % 5), "E" + std::to_string(i % 4), kJan1));
    at.push_back(old ? nowSeconds - 3 * 86400 + i : nowSeconds - 60);
  }
  db.write(events, at);
  BOOST_REQUIRE_EQUAL(db.q("SELECT count(*) FROM events"), "2640");
  const std::string config = db.dir.file("retention.properties");
  std::ofstream(config) << "retention.days = 1\nlog.level = information\n";
  std::vector<std::string> args = test::serveArgs(db.dir);
  args.push_back("--config");
  args.push_back(config);
  test::ChildProcess first(args, db.env());
  test::ChildProcess second(args, db.env());
  std::string ingest, query;
  BOOST_REQUIRE(first.readListeningLine(ingest, query));
  BOOST_REQUIRE(second.readListeningLine(ingest, query));
  // Each process runs its first pass 10 s after start (retention.h). Bounded: 60 s at most.
  std::string left;
  for (int i = 0; i < 600 && left != "40"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    left = db.q("SELECT count(*) FROM events");
  }
  BOOST_TEST(left == "40");
  first.signal(SIGTERM);
  second.signal(SIGTERM);
  BOOST_TEST(first.wait() == 0);
  BOOST_TEST(second.wait() == 0);
  // Each old event was deleted by one of them, and each deletion counted once. (The log lines
  // printed "deleted=[ERRFMT]" until their count was passed as Poco::Int64, which is long on
  // 64-bit Linux, rather than long long: Poco::format checks the type of %Ld's argument.)
  const std::string firstLog = first.readAllStderr();
  const std::string secondLog = second.readAllStderr();
  BOOST_TEST(purgedInLog(firstLog) + purgedInLog(secondLog) == 2600, firstLog << secondLog);
  BOOST_TEST(db.q("SELECT sum(count) FROM event_counts") == "40");
  db.checkCountersExact();
  BOOST_TEST(db.q("SELECT count(*) FROM portals") == "5");
}
