// White-box tests of the PostgreSQL group-commit writer (storage/postgresql/pg_event_sink.cpp)
// with the real verifier: failures injected through the database (triggers) into the pipeline
// that sends a batch's writes with its COMMIT (libpq pipeline mode), where the first failing
// statement makes the server skip the rest. Runs against the suite's throwaway server
// (B24ES_TEST_PG_URL); what any backend's sink promises is in storage_contract_test.cpp.
#define BOOST_TEST_MODULE pg_event_sink
#include <boost/test/unit_test.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "embedded_migrations.h"
#include "pg_counters.h"
#include "pg_storage.h"
#include "pg_test_support.h"
#include "test_support.h"
#include "verifier.h"

using namespace b24es;
using Status = IngestOutcome::Status;

namespace {

const std::string kMember = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";
const std::string kAppToken = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";

IncomingEvent install() {
  IncomingEvent e;
  e.kind = EventKind::kInstall;
  e.event = "ONAPPINSTALL";
  e.memberId = kMember;
  e.domain = "acme-test.bitrix24.com";
  e.serverEndpoint = "https://oauth.bitrix.info/rest/";
  e.clientEndpoint = "https://acme-test.bitrix24.com/rest/";
  e.status = "F";
  e.scope = "crm";
  e.applicationToken = kAppToken;
  e.userId = 1;
  e.tokens.push_back(TokenGrant{1, "ACCESS1", std::string("REFRESH1"), 1000, "crm"});
  return e;
}

IncomingEvent deal(const std::string& event = "ONCRMDEALADD") {
  IncomingEvent e;
  e.event = event;
  e.memberId = kMember;
  e.domain = "acme-test.bitrix24.com";
  e.applicationToken = kAppToken;
  e.entityId = 7405;
  e.dataJson = R"({"FIELDS":{"ID":"7405"}})";
  return e;
}

IncomingEvent withToken(IncomingEvent e, std::int64_t userId, const std::string& access) {
  e.tokens.push_back(TokenGrant{userId, access, std::nullopt, 2000, "crm"});
  return e;
}

// A libpq connection of the test's own, for holding a lock while the writer waits on it.
class AdminConnection {
 public:
  explicit AdminConnection(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    BOOST_REQUIRE_MESSAGE(PQstatus(conn_) == CONNECTION_OK, PQerrorMessage(conn_));
  }
  ~AdminConnection() { PQfinish(conn_); }
  void exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const ExecStatusType s = PQresultStatus(r);
    const std::string message = PQresultErrorMessage(r);
    PQclear(r);
    BOOST_REQUIRE_MESSAGE(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, message);
  }

 private:
  PGconn* conn_;
};

struct Fixture {
  Fixture() {
    settings.url = test::pgDatabaseFor(dir.path());
    storage = openPgStorage(settings, clock, embeddedPgMigrations());
    BOOST_REQUIRE(storage->migrator().apply().ok);
    SinkSettings sinkSettings;
    sinkSettings.onBatch = [this](std::size_t events) {
      std::lock_guard<std::mutex> lock(batchesMutex);
      batches.push_back(events);
    };
    sink = storage->openEventSink(
        [](const IncomingEvent& e, const std::optional<PortalRecord>& p) {
          return verifyEvent(e, p, {});
        },
        sinkSettings);
  }
  ~Fixture() { sink->close(); }
  std::string q(const std::string& sql) {
    std::vector<std::string> rows = test::pgQuery(settings.url, sql);
    return rows.empty() ? std::string() : rows.front();
  }
  void sql(const std::string& text) { test::pgQuery(settings.url, text); }

  // Commits `events` in one transaction, in this order, after a first event of their own, and
  // returns their outcomes. Another connection holds the portal's advisory lock, so the writer
  // waits in its first round trip with whatever it took first while the events queue up behind
  // it. The writer may have taken the first event alone or not yet taken anything, so the
  // events end up in the last batch, with or without the first one.
  std::vector<IngestOutcome> writeTogether(const std::vector<IncomingEvent>& events) {
    AdminConnection admin(settings.url);
    const std::string key = std::to_string(pg::portalLockKey(kMember));
    admin.exec("SELECT pg_advisory_lock(" + key + ")");
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
    submit(deal("ONFIRST"), events.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (std::size_t i = 0; i < events.size(); ++i) submit(events[i], i);
    admin.exec("SELECT pg_advisory_unlock(" + key + ")");
    {
      std::unique_lock<std::mutex> lock(doneMutex);
      doneChanged.wait(lock, [&] { return done == events.size() + 1; });
    }
    // The writer reports a batch (onBatch) after its completions have run.
    std::unique_lock<std::mutex> lock(batchesMutex);
    for (int tries = 0; tries < 500; ++tries) {
      std::size_t reported = 0;
      for (std::size_t n : batches) reported += n;
      if (reported >= events.size() + 1) break;
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      lock.lock();
    }
    BOOST_REQUIRE(!batches.empty());
    outcomes.pop_back();
    return outcomes;
  }

  // The event counters agree with the events table, per event name.
  void countersMatchEvents() {
    BOOST_TEST(q("SELECT count(*) FROM (SELECT member_id, event, count(*) AS n FROM events "
                 "GROUP BY 1, 2) e FULL JOIN event_counts c USING (member_id, event) "
                 "WHERE c.count IS DISTINCT FROM e.n") == "0");
    BOOST_TEST(q("SELECT count(*) FROM (SELECT event, count(*) AS n FROM events GROUP BY 1) e "
                 "FULL JOIN (SELECT event, sum(count) AS n FROM event_buckets WHERE member_id = '' "
                 "AND width = 60 GROUP BY 1) b USING (event) WHERE b.n IS DISTINCT FROM e.n") ==
               "0");
  }

  std::mutex batchesMutex;
  std::vector<std::size_t> batches;  // guarded by batchesMutex
  test::TempDir dir;
  test::FakeClock clock;
  PgSettings settings;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<EventSink> sink;
};

bool pgAvailable() {
  if (test::pgServerUrl()) return true;
  BOOST_WARN_MESSAGE(false, "no B24ES_TEST_PG_URL: PostgreSQL case not run");
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_event_whose_insert_fails_mid_pipeline_fails_alone) {
  if (!pgAvailable()) return;
  Fixture f;
  BOOST_REQUIRE((f.sink->write(install()).status == Status::kStored));
  // The events INSERT comes after the batch's token and counter writes in the pipeline; its
  // failure must undo them too, and the retry one by one must store the neighbours.
  f.sql(
      "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS "
      "$$BEGIN RAISE EXCEPTION 'poisoned'; END$$; "
      "CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW "
      "WHEN (NEW.event = 'POISON') EXECUTE FUNCTION poison()");
  std::vector<IngestOutcome> out =
      f.writeTogether({withToken(deal(), 9, "ACCESS9"), withToken(deal("POISON"), 10, "ACCESS10"),
                       withToken(deal(), 11, "ACCESS11")});
  BOOST_TEST((out[0].status == Status::kStored));
  BOOST_TEST((out[1].status == Status::kUnavailable));
  BOOST_TEST(out[1].reason.find("poisoned") != std::string::npos);
  BOOST_TEST((out[2].status == Status::kStored));
  BOOST_TEST(out[0].id > 0);
  BOOST_TEST(out[2].id > out[0].id);
  BOOST_TEST(f.q("SELECT count(*) FROM events WHERE event = 'ONCRMDEALADD'") == "2");
  BOOST_TEST(f.q("SELECT count(*) FROM events WHERE event = 'POISON'") == "0");
  BOOST_TEST(f.q("SELECT string_agg(access_token, ' ' ORDER BY user_id) FROM tokens "
                 "WHERE user_id > 1") == "ACCESS9 ACCESS11");
  f.countersMatchEvents();
  // The ids the outcomes carry are the rows' ids.
  BOOST_TEST(f.q("SELECT count(*) FROM events WHERE event = 'ONCRMDEALADD' AND id IN (" +
                 std::to_string(out[0].id) + ", " + std::to_string(out[2].id) + ")") == "2");
}

BOOST_AUTO_TEST_CASE(a_token_write_that_fails_mid_pipeline_takes_only_its_event) {
  if (!pgAvailable()) return;
  Fixture f;
  BOOST_REQUIRE((f.sink->write(install()).status == Status::kStored));
  // A statement before the INSERT fails: the server skips the INSERT and COMMIT after it.
  f.sql(
      "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS "
      "$$BEGIN RAISE EXCEPTION 'poisoned token'; END$$; "
      "CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON tokens FOR EACH ROW "
      "WHEN (NEW.access_token = 'POISON') EXECUTE FUNCTION poison()");
  std::vector<IngestOutcome> out =
      f.writeTogether({withToken(deal(), 9, "ACCESS9"), withToken(deal(), 10, "POISON"), deal()});
  BOOST_TEST((out[0].status == Status::kStored));
  BOOST_TEST((out[1].status == Status::kUnavailable));
  BOOST_TEST((out[2].status == Status::kStored));
  BOOST_TEST(f.q("SELECT count(*) FROM events WHERE event = 'ONCRMDEALADD'") == "2");
  BOOST_TEST(f.q("SELECT string_agg(access_token, ' ' ORDER BY user_id) FROM tokens "
                 "WHERE user_id > 1") == "ACCESS9");
  f.countersMatchEvents();
}

BOOST_AUTO_TEST_CASE(a_deadlock_in_the_pipeline_is_retried_and_stores_each_event_once) {
  if (!pgAvailable()) return;
  Fixture f;
  BOOST_REQUIRE((f.sink->write(install()).status == Status::kStored));
  // The first row of the first two attempts fails as a deadlock victim would (40P01); a
  // sequence, which a rollback does not undo, counts them. Retried one by one instead of as a
  // batch, the first event would fail its own second attempt.
  f.sql(
      "CREATE SEQUENCE fault_twice; "
      "CREATE FUNCTION deadlock_twice() RETURNS trigger LANGUAGE plpgsql AS "
      "$$BEGIN IF nextval('fault_twice') <= 2 THEN "
      "RAISE EXCEPTION 'deadlock detected (injected)' USING ERRCODE = '40P01'; END IF; "
      "RETURN NEW; END$$; "
      "CREATE TRIGGER deadlock_twice BEFORE INSERT ON events FOR EACH ROW "
      "WHEN (NEW.event = 'ONRETRIED') EXECUTE FUNCTION deadlock_twice()");
  std::vector<IngestOutcome> out =
      f.writeTogether({withToken(deal("ONRETRIED"), 9, "ACCESS9"), deal("ONRETRIED"),
                       withToken(deal("ONRETRIED"), 10, "ACCESS10")});
  std::set<std::int64_t> ids;
  for (const IngestOutcome& o : out) {
    BOOST_TEST((o.status == Status::kStored));
    ids.insert(o.id);
  }
  BOOST_TEST(ids.size() == 3u);
  // The fault fired twice (1, 2), then the third attempt's three rows (3-5).
  BOOST_TEST(f.q("SELECT last_value FROM fault_twice") == "5");
  BOOST_TEST(f.q("SELECT count(*) FROM events WHERE event = 'ONRETRIED'") == "3");
  BOOST_TEST(f.q("SELECT min(id) FROM events WHERE event = 'ONRETRIED'") ==
             std::to_string(*ids.begin()));
  BOOST_TEST(f.q("SELECT string_agg(access_token, ' ' ORDER BY user_id) FROM tokens "
                 "WHERE user_id > 1") == "ACCESS9 ACCESS10");
  f.countersMatchEvents();
}

BOOST_AUTO_TEST_CASE(an_install_and_its_events_in_one_batch_read_what_the_batch_wrote) {
  if (!pgAvailable()) return;
  Fixture f;
  // The install's writes are sent before the portal row is read back (the writer's only reads
  // in the middle of a batch), so the deal after it is verified against the new portal, and
  // the one with another token is rejected.
  IncomingEvent forged = deal();
  forged.applicationToken = "0000000000000000000000000000ffff";
  std::vector<IngestOutcome> out = f.writeTogether({install(), deal(), forged, deal()});
  BOOST_TEST((out[0].status == Status::kStored));
  BOOST_TEST((out[1].status == Status::kStored));
  BOOST_TEST((out[2].status == Status::kRejected));
  BOOST_TEST((out[3].status == Status::kStored));
  BOOST_TEST(f.q("SELECT application_token FROM portals") == kAppToken);
  BOOST_TEST(f.q("SELECT count(*) FROM events WHERE event = 'ONCRMDEALADD'") == "2");
  f.countersMatchEvents();
}
