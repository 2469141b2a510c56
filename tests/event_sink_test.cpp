// White-box tests of the SQLite group-commit writer (storage/sqlite/sqlite_event_sink.cpp) with
// the real verifier: what the writer feeds the verifier, failures injected through the database
// (triggers, a dropped table, a held write lock) and the WAL's size. What any backend's sink
// promises (verdicts, token rules, batches, close, concurrency) is in storage_contract_test.cpp.
#define BOOST_TEST_MODULE event_sink
#include <boost/test/unit_test.hpp>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/File.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "embedded_migrations.h"
#include "sqlite_storage.h"
#include "test_support.h"
#include "verifier.h"

using namespace b24es;
using Status = IngestOutcome::Status;

namespace {

const std::string kMember = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";
const std::string kAppToken = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";

IncomingEvent deal(const std::string& appToken = kAppToken);

struct Fixture {
  Fixture(std::vector<std::string> staticTokens = {}) {
    settings.path = dir.file("events.db");
    storage = openSqliteStorage(settings, clock, embeddedMigrations());
    BOOST_REQUIRE(storage->migrator().apply().ok);
    SinkSettings sinkSettings;
    sinkSettings.onBatch = [this](std::size_t events) {
      std::lock_guard<std::mutex> lock(batchesMutex);
      batches.push_back(events);
    };
    sink = storage->openEventSink(
        [staticTokens](const IncomingEvent& e, const std::optional<PortalRecord>& p) {
          return verifyEvent(e, p, staticTokens);
        },
        sinkSettings);
  }
  ~Fixture() { sink->close(); }
  std::string q(const std::string& sql) { return test::queryScalar(settings.path, sql); }

  // Commits `events` in one transaction, in this order, after a first event of their own, and
  // returns their outcomes. Another connection holds the write lock, so the writer waits with
  // whatever it took first while the events queue up behind it; submit() queues them in call
  // order without a thread each. The writer may have taken the first event alone or not yet
  // taken anything, so the events end up in the last batch, with or without the first one.
  std::vector<IngestOutcome> writeTogether(const std::vector<IncomingEvent>& events) {
    Poco::Data::Session admin("SQLite", settings.path);
    admin << "BEGIN IMMEDIATE", Poco::Data::Keywords::now;
    IncomingEvent first = deal();
    first.event = "ONFIRST";
    std::vector<IngestOutcome> outcomes(events.size() + 1);
    std::mutex doneMutex;
    std::condition_variable doneChanged;
    std::size_t done = 0;
    auto submit = [&](const IncomingEvent& e, std::size_t slot) {
      sink->submit(e, [&, slot](const IngestOutcome& outcome) {
        std::lock_guard<std::mutex> lock(doneMutex);
        outcomes[slot] = outcome;
        ++done;
        doneChanged.notify_all();
      });
    };
    {
      std::lock_guard<std::mutex> lock(batchesMutex);
      batches.clear();
    }
    submit(first, events.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (std::size_t i = 0; i < events.size(); ++i) submit(events[i], i);
    admin << "ROLLBACK", Poco::Data::Keywords::now;
    {
      std::unique_lock<std::mutex> lock(doneMutex);
      doneChanged.wait(lock, [&] { return done == events.size() + 1; });
    }
    // The writer reports a batch (onBatch) after its completions have run.
    std::unique_lock<std::mutex> lock(batchesMutex);
    for (int tries = 0; tries < 500; ++tries) {
      std::size_t reported = 0;
      for (std::size_t n : batches) reported += n;
      if (reported == events.size() + 1) break;
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      lock.lock();
    }
    BOOST_REQUIRE(!batches.empty());
    BOOST_REQUIRE_MESSAGE(batches.back() == events.size() || batches.back() == events.size() + 1,
                          "the events were not committed together");
    outcomes.pop_back();
    return outcomes;
  }

  // Makes every insert of an event named POISON fail, as a broken row would.
  void poisonEventsNamedPoison() {
    Poco::Data::Session admin("SQLite", settings.path);
    // On the table behind the events view (migration 0011): the event code as its key, which
    // the writer makes in the same transaction, just before the row.
    admin << "CREATE TRIGGER poison BEFORE INSERT ON event_rows WHEN NEW.code = "
             "(SELECT key FROM event_codes WHERE event = 'POISON') "
             "BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        Poco::Data::Keywords::now;
  }

  std::mutex batchesMutex;
  std::vector<std::size_t> batches;  // guarded by batchesMutex
  test::TempDir dir;
  test::FakeClock clock;
  SqliteSettings settings;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<EventSink> sink;
};

IncomingEvent install(const std::string& appToken = kAppToken) {
  IncomingEvent e;
  e.kind = EventKind::kInstall;
  e.event = "ONAPPINSTALL";
  e.memberId = kMember;
  e.domain = "acme-test.bitrix24.com";
  e.serverEndpoint = "https://oauth.bitrix.info/rest/";
  e.clientEndpoint = "https://acme-test.bitrix24.com/rest/";
  e.status = "F";
  e.scope = "crm";
  e.applicationToken = appToken;
  e.userId = 1;
  e.tokens.push_back(TokenGrant{1, "ACCESS1", std::string("REFRESH1"), 1000, "crm"});
  return e;
}

IncomingEvent deal(const std::string& appToken) {
  IncomingEvent e;
  e.event = "ONCRMDEALADD";
  e.memberId = kMember;
  e.domain = "acme-test.bitrix24.com";
  e.applicationToken = appToken;
  e.entityId = 7405;
  e.dataJson = R"({"FIELDS":{"ID":"7405"}})";
  return e;
}

}  // namespace

BOOST_AUTO_TEST_CASE(rejected_event_writes_nothing) {
  Fixture f;
  f.sink->write(install());
  IngestOutcome out = f.sink->write(deal("forged"));
  BOOST_TEST((out.status == Status::kRejected));
  BOOST_TEST(out.reason == "wrong application token");
  BOOST_TEST(f.q("SELECT count(*) FROM events") == "1");
  IncomingEvent unknown = deal();
  unknown.memberId = "someone-else";
  BOOST_TEST((f.sink->write(unknown).status == Status::kRejected));
  BOOST_TEST(f.q("SELECT count(*) FROM portals") == "1");
}

BOOST_AUTO_TEST_CASE(takeover_install_is_rejected_and_changes_nothing) {
  Fixture f;
  f.sink->write(install());
  BOOST_TEST((f.sink->write(install("attacker")).status == Status::kRejected));
  BOOST_TEST(f.q("SELECT application_token FROM portals") == kAppToken);
  BOOST_TEST(f.q("SELECT access_token FROM tokens") == "ACCESS1");
  BOOST_TEST(f.q("SELECT count(*) FROM events") == "1");
}

BOOST_AUTO_TEST_CASE(static_token_creates_the_portal_without_an_application_token) {
  Fixture f({"static-secret"});
  BOOST_TEST((f.sink->write(deal("static-secret")).status == Status::kStored));
  BOOST_TEST(f.q("SELECT domain || ' ' || ifnull(application_token, 'none') || ' ' || "
                 "ifnull(installed_at, 'never') FROM portals") ==
             "acme-test.bitrix24.com none never");
  // A real install later takes the portal over legitimately.
  BOOST_TEST((f.sink->write(install()).status == Status::kStored));
  BOOST_TEST(f.q("SELECT application_token FROM portals") == kAppToken);
}

BOOST_AUTO_TEST_CASE(an_event_that_cannot_be_written_fails_alone) {
  Fixture f;
  f.sink->write(install());
  f.poisonEventsNamedPoison();
  std::vector<std::thread> workers;
  std::atomic<int> stored{0}, unavailable{0};
  for (int t = 0; t < 8; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        IncomingEvent e = deal();
        if (t == 0 && i % 10 == 0) e.event = "POISON";
        IngestOutcome out = f.sink->write(e);
        (out.status == Status::kStored ? stored : unavailable)++;
      }
    });
  }
  for (auto& w : workers) w.join();
  BOOST_TEST(unavailable.load() == 5);
  BOOST_TEST(stored.load() == 395);
  BOOST_TEST(f.q("SELECT count(*) FROM events") == "396");
}

BOOST_AUTO_TEST_CASE(storage_failure_is_unavailable_and_stores_nothing) {
  Fixture f;
  f.sink->write(install());
  {
    Poco::Data::Session admin("SQLite", f.settings.path);
    admin << "DROP TABLE event_rows", Poco::Data::Keywords::now;
  }
  IngestOutcome out = f.sink->write(deal());
  BOOST_TEST((out.status == Status::kUnavailable));
  BOOST_TEST(!out.reason.empty());
}

BOOST_AUTO_TEST_CASE(regression_issue6_wal_stays_small_under_sustained_writes) {
  // A checkpoint from another thread never completed while the writer kept appending, so the
  // WAL never restarted: 176 MB after 5 s of benchmark.
  Fixture f;
  f.sink->write(install());
  IncomingEvent e = deal();
  e.dataJson = R"({"FIELDS":{"ID":"7405","COMMENTS":")" + std::string(2000, 'x') + "\"}}";
  std::vector<std::thread> workers;
  for (int t = 0; t < 16; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < 500; ++i) f.sink->write(e);  // 8,000 events, ~30 MB of pages
    });
  }
  for (auto& w : workers) w.join();
  BOOST_TEST(f.q("SELECT count(*) FROM events") == "8001");
  Poco::File wal(f.settings.path + "-wal");
  BOOST_REQUIRE(wal.exists());
  BOOST_TEST_MESSAGE("WAL after 8,000 events: " << wal.getSize() << " bytes");
  BOOST_TEST(wal.getSize() < 16u * 1024 * 1024);
}

// The writer remembers, per transaction, the portal rows it read and the token grants it
// applied, so that a batch of one portal's events does not repeat identical statements. These
// check that what the same transaction changed is never answered from that memory.

namespace {
IncomingEvent dealWithToken(const std::string& appToken, const std::string& access,
                            std::int64_t expires) {
  IncomingEvent e = deal(appToken);
  e.userId = 9;
  e.tokens.push_back(TokenGrant{9, access, std::nullopt, expires, "crm"});
  return e;
}
}  // namespace

BOOST_AUTO_TEST_CASE(regression_issue6_grant_of_a_rolled_back_batch_is_written_on_retry) {
  Fixture f;
  f.sink->write(install());
  f.poisonEventsNamedPoison();
  IncomingEvent poison = dealWithToken(kAppToken, "ACCESS9", 2000);
  poison.event = "POISON";
  // The batch fails on the poison event and is rolled back; each event is retried alone, and
  // the first one's grant must be written although the failed batch had applied it.
  f.writeTogether({dealWithToken(kAppToken, "ACCESS9", 2000), poison});
  BOOST_TEST(f.q("SELECT access_token FROM tokens WHERE user_id = 9") == "ACCESS9");
  BOOST_TEST(f.q("SELECT count(*) FROM events WHERE event = 'ONCRMDEALADD'") == "1");
}
