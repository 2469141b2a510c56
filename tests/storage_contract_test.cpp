// The storage contract: what storage/storage.h, token_store.h and event_query.h promise, tested
// through Storage and its interfaces only (no SQL, no backend header), once per backend of
// tests/storage_contract.h. Each case opens a fresh database in its own temp folder. Rows are
// written the way the service writes them (EventSink with a verifier) and read back through
// TokenStore, EventReader and findPortal. White-box tests of one backend (SQL, PRAGMAs, fault
// injection through the database) stay in that backend's tests (event_sink_test.cpp,
// migrator_test.cpp, query_plan_test.cpp).
#define BOOST_TEST_MODULE storage_contract
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "storage_contract.h"
#include "test_support.h"

using namespace b24es;
using Status = IngestOutcome::Status;
using ClaimStatus = Claim::Status;
namespace contract {}
using namespace contract;

// One case per backend; `backend` is the StorageBackend under test.
#define CONTRACT_CASE(name) \
  BOOST_DATA_TEST_CASE(name, boost::unit_test::data::make(test::storageBackends()), backend)

// Named, not anonymous: the data test cases are templates outside it that capture its types.
namespace contract {

const std::string kMemberA = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";
const std::string kMemberB = "b2d6f0c4e8a1937560bd4f2a8c1e7d93";
const std::string kAppToken = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";
const std::string kStaticToken = "static-0123456789abcdef";
const std::int64_t kStart = 1767261600;  // FakeClock's default, in seconds

// The verifier of these tests: a model of the real one (server/bitrix24/verifier.cpp) small
// enough to read at a glance, so that each Verdict::Action is reached on purpose. Installs
// install, uninstalls uninstall, a static token stores (creating the portal when unknown), any
// other event is stored when its portal is installed with the same application token.
Verdict modelVerifier(const IncomingEvent& e, const std::optional<PortalRecord>& portal) {
  using Action = Verdict::Action;
  if (e.applicationToken == "forged") return {Action::kReject, "forged by the test"};
  if (e.confirmed == IncomingEvent::Confirmed::kRotation) {
    const bool same = portal && portal->installed() && portal->applicationToken == e.replacedToken;
    return {same ? Action::kRotate : Action::kReject, same ? "" : "rotated meanwhile"};
  }
  if (e.kind == EventKind::kInstall) return {Action::kInstall, {}};
  if (e.applicationToken == kStaticToken) {
    return {portal ? Action::kStore : Action::kStoreAndCreatePortal, {}};
  }
  if (!portal || !portal->installed()) return {Action::kReject, "unknown portal"};
  if (portal->applicationToken != e.applicationToken) {
    return {Action::kReject, "wrong application token"};
  }
  return {e.kind == EventKind::kUninstall ? Action::kUninstall : Action::kStore, {}};
}

IncomingEvent install(const std::string& member = kMemberA, std::int64_t userId = 1,
                      const std::string& refresh = "REFRESH1",
                      std::optional<std::int64_t> expires = kStart + 3600) {
  IncomingEvent e;
  e.kind = EventKind::kInstall;
  e.event = "ONAPPINSTALL";
  e.memberId = member;
  e.domain = member == kMemberA ? "acme-test.bitrix24.com" : "globex.bitrix24.eu";
  e.serverEndpoint = "https://oauth.bitrix.info/rest/";
  e.clientEndpoint = "https://" + e.domain + "/rest/";
  e.status = "F";
  e.scope = "crm";
  e.applicationToken = kAppToken;
  e.userId = userId;
  e.ts = kStart;
  e.tokens.push_back(TokenGrant{userId, "ACCESS-install-" + member.substr(0, 4) + "-" + refresh,
                                refresh, expires, "crm"});
  return e;
}

IncomingEvent deal(const std::string& member = kMemberA, const std::string& appToken = kAppToken) {
  IncomingEvent e;
  e.event = "ONCRMDEALADD";
  e.memberId = member;
  e.domain = member == kMemberA ? "acme-test.bitrix24.com" : "globex.bitrix24.eu";
  e.applicationToken = appToken;
  e.eventHandlerId = 185;
  e.eventId = "4711";
  e.ts = kStart + 60;
  e.userId = 9;
  e.entityId = 7405;
  e.dataJson = R"({"FIELDS":{"ID":"7405"}})";
  return e;
}

IncomingEvent uninstall(const std::string& member = kMemberA) {
  IncomingEvent e = deal(member);
  e.kind = EventKind::kUninstall;
  e.event = "ONAPPUNINSTALL";
  e.entityId.reset();
  e.dataJson = R"({"CLEAN":"1"})";
  return e;
}

// Whether two JSON texts hold the same value (objects compared by key, not by key order).
bool sameJson(const std::string& a, const std::string& b) {
  auto canonical = [](const std::string& text) {
    std::ostringstream out;
    Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>()->stringify(out);
    return out.str();
  };
  return canonical(a) == canonical(b);
}

IncomingEvent withGrant(IncomingEvent e, std::int64_t userId, const std::string& access,
                        std::optional<std::string> refresh, std::optional<std::int64_t> expires) {
  e.tokens.push_back(TokenGrant{userId, access, std::move(refresh), expires, "crm"});
  return e;
}

// Holds the writer inside the verifier of the event named ONGATE until released, so that the
// events submitted meanwhile queue up behind it and arrive together. Thread-safe.
class Gate {
 public:
  // Closes the gate again; only while the writer is not inside it.
  void arm() {
    std::lock_guard<std::mutex> lock(mutex_);
    entered_ = false;
    open_ = false;
  }
  void enter() {
    std::unique_lock<std::mutex> lock(mutex_);
    entered_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
  }
  void waitUntilEntered() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return entered_; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool entered_ = false;  // guarded by mutex_
  bool open_ = false;     // guarded by mutex_
};

// Outcomes of submitted events, waited for without polling. Thread-safe.
class Outcomes {
 public:
  explicit Outcomes(std::size_t n) : outcomes_(n) {}
  EventSink::Completion slot(std::size_t i) {
    return [this, i](const IngestOutcome& outcome) {
      std::lock_guard<std::mutex> lock(mutex_);
      outcomes_[i] = outcome;
      ++done_;
      changed_.notify_all();
    };
  }
  std::vector<IngestOutcome> wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return done_ == outcomes_.size(); });
    return outcomes_;
  }
  std::size_t done() {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<IngestOutcome> outcomes_;  // guarded by mutex_
  std::size_t done_ = 0;                 // guarded by mutex_
};

// A fresh migrated database of `backend` with an open sink over modelVerifier (or `verifier`),
// which records every portal the verifier was shown and every batch the sink reported.
struct Db {
  explicit Db(const test::StorageBackend& backend, std::size_t maxBatch = 256,
              const std::function<void(SinkSettings&)>& adjust = {}) {
    storage = backend.open(dir.path(), clock);
    MigrationResult migrated = storage->migrator().apply();
    BOOST_REQUIRE_MESSAGE(migrated.ok, migrated.error);
    SinkSettings settings;
    settings.maxBatch = maxBatch;
    if (adjust) adjust(settings);
    settings.onBatch = [this](std::size_t n) {
      std::lock_guard<std::mutex> lock(mutex);
      batches.push_back(n);
      batchesChanged.notify_all();
    };
    settings.onCommitted = [this](std::int64_t through) {
      std::lock_guard<std::mutex> lock(mutex);
      watermarks.push_back(through);
    };
    sink = storage->openEventSink(
        [this](const IncomingEvent& e, const std::optional<PortalRecord>& portal) {
          if (e.event == "ONGATE") {
            {
              // The writer reports each batch before it takes the next, so every batch before
              // the gate's has been reported by now.
              std::lock_guard<std::mutex> lock(mutex);
              gateBatch = batches.size();
            }
            gate.enter();
          }
          if (e.event == "ONHOLD") hold.enter();
          {
            std::lock_guard<std::mutex> lock(mutex);
            seen.emplace_back(e.event, portal);
          }
          return modelVerifier(e, portal);
        },
        settings);
  }
  ~Db() {
    // A case that failed while holding the writer must not leave close() waiting for it.
    gate.release();
    hold.release();
    if (sink) sink->close();
  }

  std::int64_t stored(const IncomingEvent& e) {
    IngestOutcome out = sink->write(e);
    BOOST_REQUIRE_MESSAGE(out.status == Status::kStored, e.event + ": " + out.reason);
    return out.id;
  }

  // Submits `events` while the writer waits in the verifier of a first ONGATE event, so that
  // they arrive together; returns their outcomes once the sink has reported every batch.
  std::vector<IngestOutcome> submitTogether(const std::vector<IncomingEvent>& events) {
    IncomingEvent first = deal(kMemberA, kStaticToken);
    first.event = "ONGATE";
    Outcomes gateOutcome(1), outcomes(events.size());
    gate.arm();
    sink->submit(first, gateOutcome.slot(0));
    gate.waitUntilEntered();
    for (std::size_t i = 0; i < events.size(); ++i) sink->submit(events[i], outcomes.slot(i));
    gate.release();
    gateOutcome.wait();
    std::vector<IngestOutcome> result = outcomes.wait();
    std::unique_lock<std::mutex> lock(mutex);
    batchesChanged.wait(lock, [&] {
      std::size_t reported = 0;
      for (std::size_t i = gateBatch; i < batches.size(); ++i) reported += batches[i];
      return reported == events.size() + 1;
    });
    return result;
  }

  // The batches reported since the last gate, the gate's own first.
  std::vector<std::size_t> reportedBatches() {
    std::lock_guard<std::mutex> lock(mutex);
    return std::vector<std::size_t>(batches.begin() + static_cast<std::ptrdiff_t>(gateBatch),
                                    batches.end());
  }

  std::vector<std::int64_t> allIds(EventFilter filter = {}) {
    std::vector<std::int64_t> ids;
    filter.limit = EventFilter::kMaxLimit;
    for (;;) {
      EventPage page = storage->reader().queryEvents(filter);
      for (const EventRecord& r : page.items) ids.push_back(r.id);
      if (!page.nextAfterId) return ids;
      filter.afterId = page.nextAfterId;
    }
  }

  ClaimRequest request(const std::string& member = kMemberA, std::int64_t userId = 1) {
    ClaimRequest r;
    r.memberId = member;
    r.userId = userId;
    return r;
  }
  Claim claimed(const ClaimRequest& request) {
    Claim c = storage->tokenStore().claim(request, clock.nowSeconds());
    BOOST_REQUIRE(c.status == ClaimStatus::kClaimed);
    return c;
  }
  StoredToken token(const std::string& member = kMemberA, std::int64_t userId = 1) {
    std::optional<StoredToken> t = storage->tokenStore().findToken(member, userId);
    BOOST_REQUIRE(t.has_value());
    return *t;
  }

  test::TempDir dir;
  test::FakeClock clock;
  std::unique_ptr<Storage> storage;
  Gate gate;  // holds the writer at an ONGATE event, before its batch writes anything
  Gate hold;  // holds the writer at an ONHOLD event, inside its batch's open transaction
  std::mutex mutex;
  std::condition_variable batchesChanged;
  std::vector<std::size_t> batches;      // guarded by mutex
  std::vector<std::int64_t> watermarks;  // SinkSettings::onCommitted's; guarded by mutex
  std::size_t gateBatch = 0;             // index in batches of the last gate's; guarded by mutex
  std::vector<std::pair<std::string, std::optional<PortalRecord>>> seen;  // guarded by mutex
  std::unique_ptr<EventSink> sink;
};

std::vector<Migration> twoMigrations() {
  return {{1, "0001_a.sql", "CREATE TABLE contract_a(x INTEGER);"},
          {2, "0002_b.sql",
           "CREATE TABLE contract_b(y INTEGER);\nINSERT INTO contract_b(y) VALUES (1);"}};
}

}  // namespace contract

// ---- Migrator ------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(migrator)

CONTRACT_CASE(apply_applies_every_pending_migration_once) {
  test::TempDir dir;
  test::FakeClock clock;
  auto storage = backend.openWith(dir.path(), clock, twoMigrations());
  MigrationResult first = storage->migrator().apply();
  BOOST_TEST(first.ok, first.error);
  BOOST_TEST(first.applied == (std::vector<std::string>{"0001_a.sql", "0002_b.sql"}),
             boost::test_tools::per_element());
  BOOST_TEST(first.schemaVersion == 2);
  MigrationResult again = storage->migrator().apply();
  BOOST_TEST(again.ok, again.error);
  BOOST_TEST(again.applied.empty());
  BOOST_TEST(again.schemaVersion == 2);
  // A second process (another Storage on the same database) finds nothing to do either.
  MigrationResult other = backend.openWith(dir.path(), clock, twoMigrations())->migrator().apply();
  BOOST_TEST(other.ok, other.error);
  BOOST_TEST(other.applied.empty());
}

CONTRACT_CASE(two_processes_migrating_at_once_apply_each_migration_once) {
  test::TempDir dir;
  test::FakeClock clock;
  // Each Storage stands for a process of its own; both are opened before either applies.
  std::vector<std::unique_ptr<Storage>> processes;
  for (int i = 0; i < 2; ++i) processes.push_back(backend.open(dir.path(), clock));
  std::vector<MigrationResult> results(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] { results[i] = processes[i]->migrator().apply(); });
  }
  for (auto& t : threads) t.join();
  std::vector<std::string> applied;
  for (const MigrationResult& r : results) {
    BOOST_TEST(r.ok, r.error);
    BOOST_TEST(r.schemaVersion == backend.migrations().back().version);
    applied.insert(applied.end(), r.applied.begin(), r.applied.end());
  }
  std::sort(applied.begin(), applied.end());
  std::vector<std::string> all;
  for (const Migration& m : backend.migrations()) all.push_back(m.name);
  std::sort(all.begin(), all.end());
  BOOST_TEST(applied == all, boost::test_tools::per_element());
  BOOST_TEST(processes[0]->healthy());
  BOOST_TEST(processes[1]->healthy());
}

CONTRACT_CASE(status_lists_known_and_applied_migrations_oldest_first) {
  test::TempDir dir;
  test::FakeClock clock;
  BOOST_REQUIRE(backend.openWith(dir.path(), clock, {twoMigrations()[0]})->migrator().apply().ok);
  clock.advanceSeconds(10);
  auto both = backend.openWith(dir.path(), clock, twoMigrations());
  std::vector<MigrationState> states = both->migrator().status();
  BOOST_REQUIRE_EQUAL(states.size(), 2u);
  BOOST_TEST(states[0].version == 1);
  BOOST_TEST(states[0].name == "0001_a.sql");
  BOOST_TEST(states[0].checksum.size() == 64u);
  BOOST_TEST((states[0].appliedAt == kStart));
  BOOST_TEST(!states[0].changed);
  BOOST_TEST(states[1].version == 2);
  BOOST_TEST(!states[1].appliedAt.has_value());
  BOOST_TEST(states[0].checksum != states[1].checksum);

  BOOST_TEST(both->migrator().apply().applied == std::vector<std::string>{"0002_b.sql"},
             boost::test_tools::per_element());
  BOOST_TEST((both->migrator().status()[1].appliedAt == kStart + 10));
  // An older binary still lists the migration it does not know.
  auto older = backend.openWith(dir.path(), clock, {twoMigrations()[0]});
  std::vector<MigrationState> seenByOlder = older->migrator().status();
  BOOST_REQUIRE_EQUAL(seenByOlder.size(), 2u);
  BOOST_TEST(seenByOlder[1].version == 2);
  BOOST_TEST(seenByOlder[1].appliedAt.has_value());
}

CONTRACT_CASE(a_changed_checksum_refuses_and_applies_nothing_more) {
  test::TempDir dir;
  test::FakeClock clock;
  BOOST_REQUIRE(backend.openWith(dir.path(), clock, twoMigrations())->migrator().apply().ok);
  std::vector<Migration> changed = twoMigrations();
  changed[0].sql += "\n-- edited";
  changed.push_back({3, "0003_c.sql", "CREATE TABLE contract_c(z INTEGER);"});
  auto storage = backend.openWith(dir.path(), clock, changed);
  MigrationResult r = storage->migrator().apply();
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.error.find("0001_a.sql") != std::string::npos, r.error);
  BOOST_TEST(r.applied.empty());
  std::vector<MigrationState> states = storage->migrator().status();
  BOOST_REQUIRE_EQUAL(states.size(), 3u);
  BOOST_TEST(states[0].changed);
  BOOST_TEST(!states[1].changed);
  BOOST_TEST(!states[2].appliedAt.has_value());
}

CONTRACT_CASE(a_failing_migration_is_rolled_back_whole) {
  test::TempDir dir;
  test::FakeClock clock;
  std::vector<Migration> migrations = {
      {1, "0001_ok.sql", "CREATE TABLE contract_a(x INTEGER);"},
      {2, "0002_bad.sql",
       "CREATE TABLE contract_c(x INTEGER);\nINSERT INTO contract_nowhere VALUES (1);"}};
  auto storage = backend.openWith(dir.path(), clock, migrations);
  MigrationResult r = storage->migrator().apply();
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.error.find("0002_bad.sql") != std::string::npos, r.error);
  BOOST_TEST(r.applied == std::vector<std::string>{"0001_ok.sql"},
             boost::test_tools::per_element());
  BOOST_TEST(!storage->migrator().status()[1].appliedAt.has_value());
  // Had the failed file's first statement stayed, creating that table again would fail.
  migrations[1].sql = "CREATE TABLE contract_c(x INTEGER);";
  MigrationResult fixed = backend.openWith(dir.path(), clock, migrations)->migrator().apply();
  BOOST_TEST(fixed.ok, fixed.error);
  BOOST_TEST(fixed.schemaVersion == 2);
}

// health() is the writer's last known state (storage.h): the schema is judged when a writer
// opens, as `serve` does right after migrating.
CONTRACT_CASE(healthy_only_once_the_schema_is_current) {
  test::TempDir dir;
  test::FakeClock clock;
  auto storage = backend.open(dir.path(), clock);
  BOOST_REQUIRE(storage->migrator().apply().ok);
  auto sink = storage->openEventSink(modelVerifier, {});
  BOOST_TEST(storage->healthy());
  sink->close();
  // A binary that knows one migration more sees a schema that is not current.
  std::vector<Migration> newer = backend.migrations();
  newer.push_back(
      {newer.back().version + 1, "9999_contract.sql", "CREATE TABLE contract_newer(x INTEGER);"});
  auto newerStorage = backend.openWith(dir.path(), clock, newer);
  auto newerSink = newerStorage->openEventSink(modelVerifier, {});
  BOOST_TEST(!newerStorage->healthy());
  newerSink->close();
}

BOOST_AUTO_TEST_SUITE_END()

// ---- EventSink and findPortal --------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(event_sink)

CONTRACT_CASE(stored_events_get_increasing_ids_and_read_back_as_written) {
  Db db(backend);
  std::int64_t installId = db.stored(install());
  IncomingEvent full = deal();
  full.entityTypeId = 1220;
  db.clock.advanceSeconds(5);
  std::int64_t fullId = db.stored(full);
  IncomingEvent bare;
  bare.event = "ONCRMDEALUPDATE";
  bare.memberId = kMemberA;
  bare.domain = "acme-test.bitrix24.com";
  bare.applicationToken = kAppToken;
  std::int64_t bareId = db.stored(bare);
  BOOST_TEST(installId > 0);
  BOOST_TEST(fullId > installId);
  BOOST_TEST(bareId > fullId);

  std::optional<EventRecord> r = db.storage->reader().findEvent(fullId);
  BOOST_REQUIRE(r.has_value());
  BOOST_TEST(r->id == fullId);
  BOOST_TEST(r->event == "ONCRMDEALADD");
  BOOST_TEST(r->memberId == kMemberA);
  BOOST_TEST((r->domain == std::string("acme-test.bitrix24.com")));
  BOOST_TEST((r->eventHandlerId == 185));
  BOOST_TEST((r->eventId == std::string("4711")));
  BOOST_TEST((r->ts == kStart + 60));
  BOOST_TEST(r->receivedAt == (kStart + 5) * 1000);
  BOOST_TEST((r->userId == 9));
  BOOST_TEST((r->entityId == 7405));
  BOOST_TEST((r->entityTypeId == 1220));
  // The same JSON value; its text is the backend's (PostgreSQL's jsonb prints its own spacing
  // and key order, SPEC §11).
  BOOST_TEST(sameJson(r->dataJson, R"({"FIELDS":{"ID":"7405"}})"), r->dataJson);

  std::optional<EventRecord> b = db.storage->reader().findEvent(bareId);
  BOOST_REQUIRE(b.has_value());
  BOOST_TEST(!b->eventHandlerId.has_value());
  BOOST_TEST(!b->eventId.has_value());
  BOOST_TEST(!b->ts.has_value());
  BOOST_TEST(!b->userId.has_value());
  BOOST_TEST(!b->entityId.has_value());
  BOOST_TEST(!b->entityTypeId.has_value());
  BOOST_TEST(b->dataJson == "{}");
}

// What the live stream (SPEC §5.1) relies on: the writer reports a watermark once per batch that
// stored something, before the batch's events are answered; it never goes down; a read started
// after it sees every event up to it; and the reader tells the same from the database.
CONTRACT_CASE(the_committed_watermark_covers_every_acknowledged_event) {
  Db db(backend);
  BOOST_TEST(db.storage->reader().committedThrough() == 0);
  auto lastWatermark = [&db] {
    std::lock_guard<std::mutex> lock(db.mutex);
    return db.watermarks.empty() ? std::int64_t{0} : db.watermarks.back();
  };
  auto reported = [&db] {
    std::lock_guard<std::mutex> lock(db.mutex);
    return db.watermarks.size();
  };
  auto visibleUpTo = [&db](std::int64_t through) {
    std::vector<std::int64_t> ids;
    EventFilter all;
    all.limit = EventFilter::kMaxLimit;
    for (const EventRecord& e : db.storage->reader().queryEvents(all).items) {
      if (e.id <= through) ids.push_back(e.id);
    }
    return ids;
  };
  std::int64_t first = db.stored(install());
  BOOST_TEST(lastWatermark() >= first);  // reported before write() returned
  BOOST_TEST(db.storage->reader().committedThrough() >= first);

  const std::size_t before = reported();
  IncomingEvent forged = deal();
  forged.applicationToken = "forged";
  BOOST_TEST((db.sink->write(forged).status == Status::kRejected));
  BOOST_TEST(reported() == before);  // a batch that stored nothing reports nothing

  std::vector<IngestOutcome> together =
      db.submitTogether({deal(), deal(), deal(kMemberA, "forged")});
  std::vector<std::int64_t> ids{first};
  for (const IngestOutcome& o : together) {
    if (o.status == Status::kStored) ids.push_back(o.id);
  }
  BOOST_REQUIRE_EQUAL(ids.size(), 3u);
  const std::int64_t watermark = lastWatermark();
  BOOST_TEST(watermark >= ids.back());
  std::vector<std::int64_t> visible = visibleUpTo(watermark);
  std::set<std::int64_t> gate;  // the ONGATE event of submitTogether, stored with a static token
  for (std::int64_t id : visible) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) gate.insert(id);
  }
  BOOST_TEST(gate.size() == 1u);
  BOOST_TEST(visible.size() == ids.size() + 1);
  BOOST_TEST(db.storage->reader().committedThrough() >= watermark);
  std::lock_guard<std::mutex> lock(db.mutex);
  BOOST_TEST(std::is_sorted(db.watermarks.begin(), db.watermarks.end()));
}

CONTRACT_CASE(submit_delivers_what_write_would_have_returned) {
  Db db(backend);
  db.stored(install());
  Outcomes outcomes(2);
  IncomingEvent ok = deal(), forged = deal(kMemberA, "forged");
  db.sink->submit(ok, outcomes.slot(0));
  db.sink->submit(forged, outcomes.slot(1));
  std::vector<IngestOutcome> out = outcomes.wait();
  BOOST_TEST((out[0].status == Status::kStored));
  BOOST_TEST(out[0].id > 1);
  BOOST_TEST((db.storage->reader().findEvent(out[0].id)->event == "ONCRMDEALADD"));
  BOOST_TEST((out[1].status == Status::kRejected));
  BOOST_TEST(out[1].reason == "forged by the test");
}

CONTRACT_CASE(a_rejected_event_writes_nothing) {
  Db db(backend);
  db.stored(install());
  IncomingEvent forged = withGrant(deal(kMemberA, "forged"), 9, "FORGED-ACCESS", "FORGED", 9999999);
  IngestOutcome out = db.sink->write(forged);
  BOOST_TEST((out.status == Status::kRejected));
  BOOST_TEST(out.reason == "forged by the test");
  IncomingEvent forgedInstall = install(kMemberB);
  forgedInstall.applicationToken = "forged";
  BOOST_TEST((db.sink->write(forgedInstall).status == Status::kRejected));
  BOOST_TEST((db.sink->write(deal(kMemberB)).status == Status::kRejected));  // unknown portal

  BOOST_TEST(db.storage->reader().stats().total == 1);
  BOOST_TEST(!db.storage->findPortal(kMemberB).has_value());
  BOOST_TEST(db.storage->tokenStore().listTokens(std::nullopt).size() == 1u);
  BOOST_TEST(db.token().accessToken == "ACCESS-install-7c1e-REFRESH1");
}

CONTRACT_CASE(the_verifier_is_shown_the_stored_portal) {
  Db db(backend);
  db.sink->write(deal());  // no portal yet
  db.stored(install());
  db.clock.advanceSeconds(100);
  db.stored(deal());
  db.stored(uninstall());
  db.sink->write(deal());
  std::lock_guard<std::mutex> lock(db.mutex);
  BOOST_REQUIRE_EQUAL(db.seen.size(), 5u);
  BOOST_TEST(!db.seen[0].second.has_value());
  BOOST_TEST(!db.seen[1].second.has_value());
  const std::optional<PortalRecord>& installed = db.seen[2].second;
  BOOST_REQUIRE(installed.has_value());
  BOOST_TEST(installed->memberId == kMemberA);
  BOOST_TEST((installed->applicationToken == kAppToken));
  BOOST_TEST((installed->installedAt == kStart));
  BOOST_TEST(installed->installed());
  BOOST_TEST(db.seen[3].second->installed());
  const std::optional<PortalRecord>& gone = db.seen[4].second;
  BOOST_REQUIRE(gone.has_value());
  BOOST_TEST(!gone->installed());
  BOOST_TEST((gone->uninstalledAt == kStart + 100));
  BOOST_TEST(!gone->applicationToken.has_value());
}

CONTRACT_CASE(an_install_registers_the_portal_and_its_install_tokens) {
  Db db(backend);
  BOOST_TEST(!db.storage->findPortal(kMemberA).has_value());
  db.stored(install());
  std::optional<PortalRecord> p = db.storage->findPortal(kMemberA);
  BOOST_REQUIRE(p.has_value());
  BOOST_TEST(p->memberId == kMemberA);
  BOOST_TEST(p->domain == "acme-test.bitrix24.com");
  BOOST_TEST(p->clientEndpoint == "https://acme-test.bitrix24.com/rest/");
  BOOST_TEST(p->serverEndpoint == "https://oauth.bitrix.info/rest/");
  BOOST_TEST((p->applicationToken == kAppToken));
  BOOST_TEST(p->status == "F");
  BOOST_TEST(p->scope == "crm");
  BOOST_TEST((p->installedAt == kStart));
  BOOST_TEST(!p->uninstalledAt.has_value());
  BOOST_TEST(p->updatedAt == kStart);

  StoredToken t = db.token();
  BOOST_TEST(t.domain == "acme-test.bitrix24.com");
  BOOST_TEST(t.serverEndpoint == "https://oauth.bitrix.info/rest/");
  BOOST_TEST(t.accessToken == "ACCESS-install-7c1e-REFRESH1");
  BOOST_TEST((t.refreshToken == std::string("REFRESH1")));
  BOOST_TEST((t.expiresAt == kStart + 3600));
  BOOST_TEST((t.refreshTokenAt == kStart));
  BOOST_TEST(t.source == "install");
  BOOST_TEST(t.fromInstall);
  BOOST_TEST(t.refreshFailures == 0);
  BOOST_TEST(!t.deadAt.has_value());
  BOOST_TEST(!t.leaseUntil.has_value());

  // A reinstall starts a new authorization: its tokens replace the stored ones.
  db.clock.advanceSeconds(60);
  db.stored(install(kMemberA, 1, "REFRESH2", kStart + 100));
  t = db.token();
  BOOST_TEST((t.refreshToken == std::string("REFRESH2")));
  BOOST_TEST((t.expiresAt == kStart + 100));
  BOOST_TEST((t.refreshTokenAt == kStart + 60));
}

CONTRACT_CASE(an_uninstall_marks_the_portal_deletes_its_tokens_and_keeps_its_events) {
  Db db(backend);
  db.stored(install());
  db.stored(withGrant(deal(), 9, "ACCESS9", std::nullopt, kStart + 3600));
  db.stored(install(kMemberB));
  db.clock.advanceSeconds(100);
  std::int64_t id = db.stored(uninstall());

  std::optional<PortalRecord> p = db.storage->findPortal(kMemberA);
  BOOST_REQUIRE(p.has_value());
  BOOST_TEST(!p->installed());
  BOOST_TEST((p->uninstalledAt == kStart + 100));
  BOOST_TEST(!p->applicationToken.has_value());
  BOOST_TEST(db.storage->tokenStore().listTokens(kMemberA).empty());
  BOOST_TEST(db.storage->tokenStore().listTokens(kMemberB).size() == 1u);  // other portals keep
  EventFilter ofA;
  ofA.memberId = kMemberA;
  BOOST_TEST(db.allIds(ofA).size() == 3u);
  BOOST_TEST((db.storage->reader().findEvent(id)->event == "ONAPPUNINSTALL"));

  // The old token verifies nothing any more; a new install makes the portal installed again.
  BOOST_TEST((db.sink->write(deal()).status == Status::kRejected));
  db.clock.advanceSeconds(100);
  db.stored(install());
  p = db.storage->findPortal(kMemberA);
  BOOST_TEST(p->installed());
  BOOST_TEST((p->installedAt == kStart + 200));
  BOOST_TEST(!p->uninstalledAt.has_value());
}

CONTRACT_CASE(a_static_token_creates_a_portal_without_an_application_token) {
  Db db(backend);
  db.stored(withGrant(deal(kMemberA, kStaticToken), 9, "ACCESS9", std::nullopt, kStart + 10));
  std::optional<PortalRecord> p = db.storage->findPortal(kMemberA);
  BOOST_REQUIRE(p.has_value());
  BOOST_TEST(p->domain == "acme-test.bitrix24.com");
  BOOST_TEST(!p->applicationToken.has_value());
  BOOST_TEST(!p->installedAt.has_value());
  BOOST_TEST(!p->installed());
  BOOST_TEST(db.token(kMemberA, 9).accessToken == "ACCESS9");
  // A real install later takes the portal over.
  db.stored(install());
  BOOST_TEST((db.storage->findPortal(kMemberA)->applicationToken == kAppToken));
}

CONTRACT_CASE(an_event_grant_replaces_a_token_only_with_a_later_expiry) {
  Db db(backend);
  db.stored(install());  // expires kStart + 3600, refresh token REFRESH1
  db.clock.advanceSeconds(60);
  db.stored(withGrant(deal(), 1, "STALE", std::nullopt, kStart + 3599));
  StoredToken t = db.token();
  BOOST_TEST(t.accessToken == "ACCESS-install-7c1e-REFRESH1");
  BOOST_TEST(t.source == "install");

  db.stored(withGrant(deal(), 1, "ACCESS2", std::nullopt, kStart + 7200));
  t = db.token();
  BOOST_TEST(t.accessToken == "ACCESS2");
  BOOST_TEST((t.expiresAt == kStart + 7200));
  BOOST_TEST(t.source == "event");
  // The event carried no refresh token: the stored one, and when it was obtained, stay.
  BOOST_TEST((t.refreshToken == std::string("REFRESH1")));
  BOOST_TEST((t.refreshTokenAt == kStart));

  db.clock.advanceSeconds(60);
  db.stored(withGrant(deal(), 1, "ACCESS3", std::string("REFRESH3"), kStart + 9000));
  t = db.token();
  BOOST_TEST((t.refreshToken == std::string("REFRESH3")));
  BOOST_TEST((t.refreshTokenAt == kStart + 120));
}

CONTRACT_CASE(grants_of_new_users_and_bots_create_their_rows) {
  Db db(backend);
  db.stored(install());
  IncomingEvent e = withGrant(deal(), 9, "ACCESS9", std::nullopt, kStart + 1500);
  e = withGrant(e, 77, "BOT-ACCESS", std::string("BOT-REFRESH"), kStart + 1500);
  db.stored(e);
  std::vector<StoredToken> rows = db.storage->tokenStore().listTokens(kMemberA);
  BOOST_REQUIRE_EQUAL(rows.size(), 3u);
  StoredToken user = db.token(kMemberA, 9), bot = db.token(kMemberA, 77);
  BOOST_TEST(user.accessToken == "ACCESS9");
  BOOST_TEST(!user.refreshToken.has_value());
  BOOST_TEST(!user.fromInstall);
  BOOST_TEST(user.source == "event");
  BOOST_TEST(bot.accessToken == "BOT-ACCESS");
  BOOST_TEST((bot.refreshToken == std::string("BOT-REFRESH")));
  BOOST_TEST((bot.refreshTokenAt == kStart));
}

CONTRACT_CASE(close_finishes_submitted_events_then_refuses) {
  // Declared before `db`: the writer may use them until `db` has closed its sink.
  IncomingEvent first = deal(kMemberA, kStaticToken);
  first.event = "ONGATE";
  const std::size_t queued = 5;
  std::vector<IncomingEvent> events(queued, deal());
  Outcomes gateOutcome(1), outcomes(queued);
  std::vector<std::unique_ptr<Outcomes>> probes;
  IncomingEvent probe = deal();
  Db db(backend);
  db.stored(install());
  db.gate.arm();
  db.sink->submit(first, gateOutcome.slot(0));
  db.gate.waitUntilEntered();
  for (std::size_t i = 0; i < queued; ++i) db.sink->submit(events[i], outcomes.slot(i));
  std::thread closer([&] { db.sink->close(); });
  // While the writer still waits in the gate, only a refusal can answer a probe: once one is
  // answered, close() has begun. Probes accepted before it stay queued.
  for (bool refused = false; !refused;) {
    probes.push_back(std::make_unique<Outcomes>(1));
    db.sink->submit(probe, probes.back()->slot(0));
    for (auto& p : probes) refused = refused || p->done() == 1;
    std::this_thread::yield();
  }
  db.gate.release();
  closer.join();
  for (const IngestOutcome& out : outcomes.wait()) BOOST_TEST((out.status == Status::kStored));
  BOOST_TEST((gateOutcome.wait()[0].status == Status::kStored));
  // Every probe is answered: stored when accepted before close() began, refused after; never
  // a stored one after a refused one.
  std::int64_t storedProbes = 0;
  bool refusedBefore = false;
  for (auto& p : probes) {
    IngestOutcome out = p->wait()[0];
    if (out.status == Status::kStored) {
      BOOST_TEST(!refusedBefore);
      ++storedProbes;
    } else {
      BOOST_TEST((out.status == Status::kUnavailable));
      refusedBefore = true;
    }
  }
  BOOST_TEST(refusedBefore);
  const std::int64_t total = 1 + 1 + static_cast<std::int64_t>(queued) + storedProbes;
  BOOST_TEST(db.storage->reader().stats().total == total);
  IngestOutcome late = db.sink->write(deal());
  BOOST_TEST((late.status == Status::kUnavailable));
  BOOST_TEST(!late.reason.empty());
  BOOST_TEST(db.storage->reader().stats().total == total);
}

CONTRACT_CASE(events_arriving_together_commit_in_one_batch_of_at_most_max_batch) {
  {
    Db db(backend);
    db.stored(install());
    std::vector<IncomingEvent> events(20, deal());
    for (const IngestOutcome& out : db.submitTogether(events)) {
      BOOST_TEST((out.status == Status::kStored));
    }
    std::vector<std::size_t> expected{1, 20};
    BOOST_TEST(db.reportedBatches() == expected, boost::test_tools::per_element());
  }
  {
    Db db(backend, 4);
    db.stored(install());
    std::vector<IncomingEvent> events(10, deal());
    db.submitTogether(events);
    std::vector<std::size_t> expected{1, 4, 4, 2};
    BOOST_TEST(db.reportedBatches() == expected, boost::test_tools::per_element());
  }
}

CONTRACT_CASE(what_an_event_changes_is_seen_by_the_next_event_of_its_batch) {
  Db db(backend);
  std::vector<IngestOutcome> out = db.submitTogether(
      {deal(), install(), withGrant(deal(), 9, "A", std::nullopt, kStart + 2000),
       withGrant(deal(), 9, "B", std::nullopt, kStart + 3000),
       withGrant(deal(), 9, "A", std::nullopt, kStart + 2000), uninstall(), deal()});
  BOOST_TEST((out[0].status == Status::kRejected));  // the portal is not installed yet
  for (std::size_t i = 1; i <= 5; ++i) BOOST_TEST((out[i].status == Status::kStored), i);
  BOOST_TEST((out[6].status == Status::kRejected));  // the uninstall took the token away
  BOOST_TEST(db.reportedBatches().back() == out.size());
  BOOST_TEST(db.storage->tokenStore().listTokens(kMemberA).empty());

  // Grants in one batch keep the latest expiry, and a row the uninstall deleted is written
  // again by a grant after it.
  db.stored(install());
  out = db.submitTogether(
      {withGrant(deal(), 9, "A", std::nullopt, kStart + 2000),
       withGrant(deal(), 9, "B", std::nullopt, kStart + 3000),
       withGrant(deal(), 9, "A", std::nullopt, kStart + 2000), uninstall(),
       withGrant(deal(kMemberA, kStaticToken), 9, "C", std::nullopt, kStart + 2000)});
  for (const IngestOutcome& o : out) BOOST_TEST((o.status == Status::kStored));
  BOOST_TEST(db.token(kMemberA, 9).accessToken == "C");
  IncomingEvent a = withGrant(deal(kMemberA, kStaticToken), 8, "A", std::nullopt, kStart + 2000);
  IncomingEvent b = withGrant(deal(kMemberA, kStaticToken), 8, "B", std::nullopt, kStart + 3000);
  db.submitTogether({a, b, a, b, a});
  StoredToken kept = db.token(kMemberA, 8);
  BOOST_TEST(kept.accessToken == "B");
  BOOST_TEST((kept.expiresAt == kStart + 3000));
}

CONTRACT_CASE(readers_neither_wait_for_nor_see_a_batch_that_is_not_committed) {
  // Declared before `db`: the writer may use them until `db` has closed its sink.
  IncomingEvent first = deal(kMemberA, kStaticToken), held = deal();
  first.event = "ONGATE";
  held.event = "ONHOLD";
  std::vector<IncomingEvent> events{withGrant(deal(), 9, "ACCESS9", std::nullopt, kStart + 10),
                                    deal(), held};
  Outcomes gateOutcome(1), outcomes(events.size());
  Db db(backend);
  db.stored(install());
  db.gate.arm();
  db.hold.arm();
  db.sink->submit(first, gateOutcome.slot(0));
  db.gate.waitUntilEntered();
  for (std::size_t i = 0; i < events.size(); ++i) db.sink->submit(events[i], outcomes.slot(i));
  db.gate.release();
  BOOST_TEST((gateOutcome.wait()[0].status == Status::kStored));
  // The writer now holds its transaction open with the first two events written in it. A
  // reader that waited for it would hang here; one that saw into it would count them.
  db.hold.waitUntilEntered();
  EventReader& reader = db.storage->reader();
  BOOST_TEST(reader.stats().total == 2);
  BOOST_TEST(db.allIds().size() == 2u);
  BOOST_TEST((reader.findPortalView(kMemberA)->eventCount == 2));
  BOOST_TEST(db.storage->tokenStore().listTokens(kMemberA).size() == 1u);
  BOOST_TEST(db.storage->findPortal(kMemberA)->installed());
  BOOST_TEST(reader.tokenStates(kStart).valid == 1);
  db.hold.release();
  for (const IngestOutcome& out : outcomes.wait()) BOOST_TEST((out.status == Status::kStored));
  BOOST_TEST(reader.stats().total == 5);
  BOOST_TEST(db.storage->tokenStore().listTokens(kMemberA).size() == 2u);
}

CONTRACT_CASE(many_threads_write_at_once_and_every_event_gets_its_own_id) {
  Db db(backend);
  db.stored(install());
  const int threads = 8, perThread = 50;
  std::vector<std::vector<std::int64_t>> ids(threads);
  std::atomic<int> notStored{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      IncomingEvent e = deal();
      e.entityId = t;
      for (int i = 0; i < perThread; ++i) {
        IngestOutcome out = db.sink->write(e);
        if (out.status == Status::kStored) {
          ids[t].push_back(out.id);
        } else {
          ++notStored;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  BOOST_TEST(notStored.load() == 0);
  std::set<std::int64_t> all;
  for (const auto& v : ids) {
    BOOST_TEST(std::is_sorted(v.begin(), v.end()));  // each thread's writes in its order
    all.insert(v.begin(), v.end());
  }
  BOOST_TEST(all.size() == static_cast<std::size_t>(threads * perThread));
  BOOST_TEST(db.storage->reader().stats().total == threads * perThread + 1);
  for (int t = 0; t < threads; ++t) {
    EventFilter f;
    f.entityId = t;
    std::vector<std::int64_t> stored = db.allIds(f);
    BOOST_TEST(stored == ids[t], boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---- TokenStore ----------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(token_store)

CONTRACT_CASE(list_and_find_order_rows_and_default_to_the_installing_user) {
  Db db(backend);
  db.stored(install(kMemberB, 5));
  db.stored(install(kMemberA, 9));
  db.stored(
      withGrant(withGrant(deal(), 12, "A12", std::nullopt, kStart), 3, "A3", std::nullopt, kStart));
  TokenStore& store = db.storage->tokenStore();
  std::vector<std::pair<std::string, std::int64_t>> keys;
  for (const StoredToken& t : store.listTokens(std::nullopt))
    keys.emplace_back(t.memberId, t.userId);
  std::vector<std::pair<std::string, std::int64_t>> expected{
      {kMemberA, 3}, {kMemberA, 9}, {kMemberA, 12}, {kMemberB, 5}};
  BOOST_TEST((keys == expected));
  std::vector<StoredToken> ofA = store.listTokens(kMemberA);
  BOOST_REQUIRE_EQUAL(ofA.size(), 3u);
  BOOST_TEST(ofA[0].userId == 3);
  BOOST_TEST(ofA[2].userId == 12);
  BOOST_TEST(ofA[0].domain == "acme-test.bitrix24.com");
  BOOST_TEST(store.listTokens(std::string("nobody")).empty());

  // The installing user's row, although user 3 is lower.
  BOOST_TEST((store.findToken(kMemberA, std::nullopt)->userId == 9));
  BOOST_TEST((store.findToken(kMemberA, 3)->accessToken == "A3"));
  BOOST_TEST(!store.findToken(kMemberA, 42).has_value());
  BOOST_TEST(!store.findToken("nobody", std::nullopt).has_value());

  // Without an install row: the lowest user id.
  const std::string kMemberC = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
  db.stored(withGrant(withGrant(deal(kMemberC, kStaticToken), 7, "C7", std::nullopt, kStart), 2,
                      "C2", std::nullopt, kStart));
  BOOST_TEST((store.findToken(kMemberC, std::nullopt)->userId == 2));
}

CONTRACT_CASE(a_claim_leases_the_row_to_a_new_owner) {
  Db db(backend);
  db.stored(install());
  TokenStore& store = db.storage->tokenStore();
  Claim c = store.claim(db.request(), db.clock.nowSeconds());
  BOOST_REQUIRE(c.status == ClaimStatus::kClaimed);
  BOOST_TEST(!c.leaseOwner.empty());
  BOOST_REQUIRE(c.token.has_value());
  BOOST_TEST((c.token->refreshToken == std::string("REFRESH1")));
  BOOST_TEST(c.token->memberId == kMemberA);
  BOOST_TEST((db.token().leaseUntil == kStart + 300));
  // Held: anyone else, this thread included, is told kBusy at once.
  Claim busy = store.claim(db.request(), db.clock.nowSeconds());
  BOOST_TEST((busy.status == ClaimStatus::kBusy));
  BOOST_TEST(busy.leaseOwner.empty());
  store.release(c);
  BOOST_TEST(!db.token().leaseUntil.has_value());
  Claim again = store.claim(db.request(), db.clock.nowSeconds());
  BOOST_REQUIRE(again.status == ClaimStatus::kClaimed);
  BOOST_TEST(again.leaseOwner != c.leaseOwner);
}

// Issue 16: refreshers in several processes (here, Storages of their own on one database) that
// claim one row at the same moment lease it once, so one refresh token is spent once.
CONTRACT_CASE(claims_from_several_processes_at_once_lease_the_row_once) {
  Db db(backend);
  db.stored(install());
  constexpr int kProcesses = 3, kClaimsEach = 4;
  std::vector<std::unique_ptr<Storage>> processes;
  for (int p = 0; p < kProcesses; ++p) processes.push_back(backend.open(db.dir.path(), db.clock));
  std::vector<Claim> claims(kProcesses * kClaimsEach);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < claims.size(); ++i) {
    threads.emplace_back([&, i] {
      claims[i] =
          processes[i % kProcesses]->tokenStore().claim(db.request(), db.clock.nowSeconds());
    });
  }
  for (auto& t : threads) t.join();
  int leased = 0;
  for (const Claim& c : claims) {
    if (c.status == ClaimStatus::kClaimed) {
      ++leased;
    } else {
      BOOST_TEST((c.status == ClaimStatus::kBusy));
    }
  }
  BOOST_TEST(leased == 1);
}

CONTRACT_CASE(an_expired_lease_lets_another_claim_and_the_old_owner_cannot_release_it) {
  Db db(backend);
  db.stored(install());
  TokenStore& store = db.storage->tokenStore();
  ClaimRequest r = db.request();
  r.leaseSeconds = 60;
  Claim first = store.claim(r, kStart);
  BOOST_REQUIRE(first.status == ClaimStatus::kClaimed);
  BOOST_TEST((store.claim(r, kStart + 59).status == ClaimStatus::kBusy));
  Claim second = store.claim(r, kStart + 61);
  BOOST_REQUIRE(second.status == ClaimStatus::kClaimed);
  store.release(first);  // a refresher that woke up late gives back what is no longer its
  BOOST_TEST((store.claim(r, kStart + 62).status == ClaimStatus::kBusy));
  // Another process (here another Storage on the same database) sees the same lease.
  std::unique_ptr<Storage> other = backend.open(db.dir.path(), db.clock);
  BOOST_TEST((other->tokenStore().claim(r, kStart + 62).status == ClaimStatus::kBusy));
  store.release(second);
  BOOST_TEST((other->tokenStore().claim(r, kStart + 62).status == ClaimStatus::kClaimed));
}

CONTRACT_CASE(a_claim_answers_why_it_did_not_lease) {
  Db db(backend);
  db.stored(install());
  db.stored(withGrant(deal(), 9, "ACCESS9", std::nullopt, kStart + 100));
  TokenStore& store = db.storage->tokenStore();
  const std::int64_t now = db.clock.nowSeconds();

  BOOST_TEST((store.claim(db.request(kMemberA, 42), now).status == ClaimStatus::kGone));
  BOOST_TEST((store.claim(db.request("nobody", 1), now).status == ClaimStatus::kGone));
  Claim none = store.claim(db.request(kMemberA, 9), now);
  BOOST_TEST((none.status == ClaimStatus::kNoRefreshToken));
  BOOST_TEST((none.token && none.token->userId == 9));

  ClaimRequest changed = db.request();
  changed.expectedRefreshToken = "SOMEONE-ELSES";
  Claim c = store.claim(changed, now);
  BOOST_TEST((c.status == ClaimStatus::kChanged));
  BOOST_TEST((c.token && c.token->refreshToken == std::string("REFRESH1")));

  ClaimRequest unwanted = db.request();
  std::optional<StoredToken> shown;
  unwanted.stillWanted = [&shown](const StoredToken& t) {
    shown = t;
    return false;
  };
  BOOST_TEST((store.claim(unwanted, now).status == ClaimStatus::kNotWanted));
  BOOST_TEST((shown && shown->refreshToken == std::string("REFRESH1")));
  BOOST_TEST(!db.token().leaseUntil.has_value());  // nothing of the above leased the row

  ClaimRequest expected = db.request();
  expected.expectedRefreshToken = "REFRESH1";
  expected.stillWanted = [](const StoredToken&) { return true; };
  Claim ok = store.claim(expected, now);
  BOOST_REQUIRE(ok.status == ClaimStatus::kClaimed);
  BOOST_TEST(store.recordFailure(ok, "invalid_grant: the refresh token is dead", true, now));

  BOOST_TEST((store.claim(db.request(), now).status == ClaimStatus::kDead));
  ClaimRequest force = db.request();
  force.includeDead = true;
  BOOST_TEST((store.claim(force, now).status == ClaimStatus::kClaimed));

  db.stored(uninstall());
  BOOST_TEST((store.claim(force, now).status == ClaimStatus::kGone));
}

CONTRACT_CASE(record_success_stores_the_answer_on_the_row_and_the_portal) {
  Db db(backend);
  db.stored(install());
  TokenStore& store = db.storage->tokenStore();
  Claim failed = db.claimed(db.request());
  BOOST_REQUIRE(store.recordFailure(failed, "timeout: no answer", false, kStart));
  db.clock.advanceSeconds(30);
  Claim c = db.claimed(db.request());
  RefreshedTokens fresh;
  fresh.accessToken = "ACCESS-R";
  fresh.refreshToken = "REFRESH-R";
  fresh.expiresAt = kStart + 30 + 3600;
  fresh.scope = "crm,task";
  fresh.clientEndpoint = "https://acme-renamed.bitrix24.com/rest/";
  fresh.serverEndpoint = "https://oauth.bitrix24.tech/rest/";
  fresh.status = "L";
  BOOST_TEST(store.recordSuccess(c, fresh, kStart + 30));
  StoredToken t = db.token();
  BOOST_TEST(t.accessToken == "ACCESS-R");
  BOOST_TEST((t.refreshToken == std::string("REFRESH-R")));
  BOOST_TEST((t.expiresAt == kStart + 3630));
  BOOST_TEST((t.refreshTokenAt == kStart + 30));
  BOOST_TEST((t.lastRefreshAt == kStart + 30));
  BOOST_TEST(t.source == "refresh");
  BOOST_TEST(!t.lastRefreshError.has_value());
  BOOST_TEST(t.refreshFailures == 0);
  BOOST_TEST(!t.deadAt.has_value());
  BOOST_TEST(!t.leaseUntil.has_value());
  BOOST_TEST(t.fromInstall);
  BOOST_TEST(t.serverEndpoint == "https://oauth.bitrix24.tech/rest/");
  std::optional<PortalRecord> p = db.storage->findPortal(kMemberA);
  BOOST_TEST(p->clientEndpoint == "https://acme-renamed.bitrix24.com/rest/");
  BOOST_TEST(p->serverEndpoint == "https://oauth.bitrix24.tech/rest/");
  BOOST_TEST(p->status == "L");
  BOOST_TEST((p->applicationToken == kAppToken));

  // Empty strings keep the stored values.
  Claim next = db.claimed(db.request());
  RefreshedTokens sparse;
  sparse.accessToken = "ACCESS-S";
  sparse.refreshToken = "REFRESH-S";
  BOOST_TEST(store.recordSuccess(next, sparse, kStart + 40));
  t = db.token();
  BOOST_TEST(t.accessToken == "ACCESS-S");
  std::optional<PortalRecord> kept = db.storage->findPortal(kMemberA);
  BOOST_TEST(kept->clientEndpoint == "https://acme-renamed.bitrix24.com/rest/");
  BOOST_TEST(kept->serverEndpoint == "https://oauth.bitrix24.tech/rest/");
  BOOST_TEST(kept->status == "L");
  Claim third = db.claimed(db.request());
  RefreshedTokens accessOnly;
  accessOnly.accessToken = "ACCESS-T";
  BOOST_TEST(store.recordSuccess(third, accessOnly, kStart + 50));
  t = db.token();
  BOOST_TEST(t.accessToken == "ACCESS-T");
  BOOST_TEST((t.refreshToken == std::string("REFRESH-S")));
  BOOST_TEST((t.refreshTokenAt == kStart + 40));
}

CONTRACT_CASE(record_success_writes_nothing_once_the_row_holds_another_token) {
  Db db(backend);
  db.stored(install());
  TokenStore& store = db.storage->tokenStore();
  Claim c = db.claimed(db.request());
  db.clock.advanceSeconds(10);
  db.stored(install(kMemberA, 1, "REINSTALLED"));  // a reinstall while the refresh was out
  RefreshedTokens fresh;
  fresh.accessToken = "LATE-ACCESS";
  fresh.refreshToken = "LATE-REFRESH";
  fresh.status = "L";
  BOOST_TEST(!store.recordSuccess(c, fresh, kStart + 10));
  StoredToken t = db.token();
  BOOST_TEST((t.refreshToken == std::string("REINSTALLED")));
  BOOST_TEST(t.accessToken == "ACCESS-install-7c1e-REINSTALLED");
  BOOST_TEST(t.source == "install");
  BOOST_TEST(!t.lastRefreshAt.has_value());
  BOOST_TEST(db.storage->findPortal(kMemberA)->status == "F");
  // The lease was released: the next refresher may claim the row now.
  BOOST_TEST((store.claim(db.request(), kStart + 10).status == ClaimStatus::kClaimed));
}

CONTRACT_CASE(record_failure_counts_keeps_the_refresh_token_and_marks_dead) {
  Db db(backend);
  db.stored(install());
  TokenStore& store = db.storage->tokenStore();
  BOOST_TEST(store.recordFailure(db.claimed(db.request()), "timeout: no answer", false, kStart));
  StoredToken t = db.token();
  BOOST_TEST((t.lastRefreshError == std::string("timeout: no answer")));
  BOOST_TEST(t.refreshFailures == 1);
  BOOST_TEST((t.lastRefreshAt == kStart));
  BOOST_TEST((t.refreshToken == std::string("REFRESH1")));
  BOOST_TEST(t.accessToken == "ACCESS-install-7c1e-REFRESH1");
  BOOST_TEST(!t.deadAt.has_value());
  BOOST_TEST(!t.leaseUntil.has_value());

  db.clock.advanceSeconds(5);
  BOOST_TEST(
      store.recordFailure(db.claimed(db.request()), "invalid_grant: expired", true, kStart + 5));
  t = db.token();
  BOOST_TEST(t.refreshFailures == 2);
  BOOST_TEST((t.deadAt == kStart + 5));
  BOOST_TEST((t.lastRefreshAt == kStart + 5));
  BOOST_TEST((t.refreshToken == std::string("REFRESH1")));
  BOOST_TEST(!t.leaseUntil.has_value());

  // Once the row holds another token, a late failure writes nothing and frees the lease.
  ClaimRequest force = db.request();
  force.includeDead = true;
  Claim late = store.claim(force, kStart + 5);
  BOOST_REQUIRE(late.status == ClaimStatus::kClaimed);
  db.stored(install(kMemberA, 1, "REINSTALLED"));
  StoredToken before = db.token();
  BOOST_TEST(!store.recordFailure(late, "late", true, kStart + 6));
  t = db.token();
  BOOST_TEST((t.deadAt == before.deadAt));
  BOOST_TEST((t.lastRefreshError == before.lastRefreshError));
  BOOST_TEST((t.lastRefreshAt == before.lastRefreshAt));
  BOOST_TEST(t.refreshFailures == before.refreshFailures);
  BOOST_TEST((t.refreshToken == std::string("REINSTALLED")));
  BOOST_TEST(!t.leaseUntil.has_value());
}

BOOST_AUTO_TEST_SUITE_END()

// ---- EventReader ---------------------------------------------------------------------------

namespace contract {

// 60 events over two portals: four event codes, five entities, two entity types (and none),
// three users (and none), ts one minute apart but stored out of ts order in places.
struct Populated : Db {
  explicit Populated(const test::StorageBackend& backend) : Db(backend) {
    written.push_back(stored(install(kMemberA)));
    written.push_back(stored(install(kMemberB, 1, "REFRESH-B")));
    const char* codes[] = {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMCONTACTADD",
                           "ONCRMDYNAMICITEMADD"};
    for (int i = 0; i < 58; ++i) {
      IncomingEvent e = deal(i % 2 ? kMemberB : kMemberA);
      e.event = codes[i % 4];
      e.entityId = 100 + i % 5;
      e.entityTypeId.reset();
      if (i % 4 == 3) e.entityTypeId = i % 8 == 3 ? 1220 : 1240;
      e.userId.reset();
      if (i % 3 != 2) e.userId = 1 + i % 3;
      e.ts = kStart + 1000 + (i % 10 == 9 ? -1 : i) * 60;  // every tenth goes back in time
      written.push_back(stored(e));
      events.push_back(e);
    }
    events.insert(events.begin(), {install(kMemberA), install(kMemberB, 1, "REFRESH-B")});
  }

  // Ids of the written events that `match`, in `order`.
  std::vector<std::int64_t> expected(const std::function<bool(const IncomingEvent&)>& match,
                                     EventFilter::Order order) const {
    std::vector<std::int64_t> ids;
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (match(events[i])) ids.push_back(written[i]);
    }
    if (order == EventFilter::Order::kDesc) std::reverse(ids.begin(), ids.end());
    return ids;
  }

  // Every page of `filter` at `limit` a page, checking each page's size and cursor.
  std::vector<std::int64_t> paged(EventFilter filter, std::size_t limit) {
    filter.limit = limit;
    std::vector<std::int64_t> ids;
    for (int pages = 0; pages < 1000; ++pages) {
      EventPage page = storage->reader().queryEvents(filter);
      BOOST_TEST(page.items.size() <= limit);
      for (const EventRecord& r : page.items) ids.push_back(r.id);
      if (!page.nextAfterId) return ids;
      BOOST_TEST(page.items.size() == limit);
      BOOST_TEST(*page.nextAfterId == page.items.back().id);
      filter.afterId = page.nextAfterId;
    }
    BOOST_FAIL("paging did not end");
    return ids;
  }

  std::vector<std::int64_t> written;  // ids, in write order
  std::vector<IncomingEvent> events;  // what was written, in the same order
};

}  // namespace contract

BOOST_AUTO_TEST_SUITE(event_reader)

CONTRACT_CASE(every_filter_in_both_orders_pages_without_duplicate_or_gap) {
  Populated db(backend);
  using Match = std::function<bool(const IncomingEvent&)>;
  struct Case {
    std::string name;
    std::function<void(EventFilter&)> set;
    Match match;
  };
  const std::int64_t from = kStart + 1000 + 10 * 60, to = kStart + 1000 + 40 * 60;
  std::vector<Case> cases = {
      {"none", [](EventFilter&) {}, [](const IncomingEvent&) { return true; }},
      {"member_id", [](EventFilter& f) { f.memberId = kMemberB; },
       [](const IncomingEvent& e) { return e.memberId == kMemberB; }},
      {"domain", [](EventFilter& f) { f.domain = "acme-test.bitrix24.com"; },
       [](const IncomingEvent& e) { return e.domain == "acme-test.bitrix24.com"; }},
      {"event", [](EventFilter& f) { f.event = "ONCRMCONTACTADD"; },
       [](const IncomingEvent& e) { return e.event == "ONCRMCONTACTADD"; }},
      {"entity_id", [](EventFilter& f) { f.entityId = 102; },
       [](const IncomingEvent& e) { return e.entityId == 102; }},
      {"entity_type_id", [](EventFilter& f) { f.entityTypeId = 1240; },
       [](const IncomingEvent& e) { return e.entityTypeId == 1240; }},
      {"user_id", [](EventFilter& f) { f.userId = 2; },
       [](const IncomingEvent& e) { return e.userId == 2; }},
      {"from", [&](EventFilter& f) { f.from = from; },
       [&](const IncomingEvent& e) { return e.ts && *e.ts >= from; }},
      {"to", [&](EventFilter& f) { f.to = to; },
       [&](const IncomingEvent& e) { return e.ts && *e.ts <= to; }},
      {"from and to",
       [&](EventFilter& f) {
         f.from = from;
         f.to = to;
       },
       [&](const IncomingEvent& e) { return e.ts && *e.ts >= from && *e.ts <= to; }},
      {"member_id, event and user_id",
       [](EventFilter& f) {
         f.memberId = kMemberA;
         f.event = "ONCRMDEALADD";
         f.userId = 1;
       },
       [](const IncomingEvent& e) {
         return e.memberId == kMemberA && e.event == "ONCRMDEALADD" && e.userId == 1;
       }},
      {"member_id and entity_id",
       [](EventFilter& f) {
         f.memberId = kMemberA;
         f.entityId = 104;
       },
       [](const IncomingEvent& e) { return e.memberId == kMemberA && e.entityId == 104; }},
      {"nothing matches", [](EventFilter& f) { f.memberId = "nobody"; },
       [](const IncomingEvent&) { return false; }},
  };
  for (const Case& c : cases) {
    for (EventFilter::Order order : {EventFilter::Order::kAsc, EventFilter::Order::kDesc}) {
      BOOST_TEST_CONTEXT(c.name << (order == EventFilter::Order::kAsc ? " asc" : " desc")) {
        EventFilter f;
        c.set(f);
        f.order = order;
        std::vector<std::int64_t> want = db.expected(c.match, order);
        BOOST_TEST(!(want.empty() && c.name != "nothing matches"));
        for (std::size_t limit :
             {std::size_t{1}, std::size_t{7}, want.size(), EventFilter::kMaxLimit}) {
          if (limit == 0) continue;
          BOOST_TEST(db.paged(f, limit) == want, boost::test_tools::per_element());
        }
      }
    }
  }
  // Every field of a listed event is as written.
  EventFilter one;
  one.entityTypeId = 1220;
  one.limit = 1;
  EventRecord r = db.storage->reader().queryEvents(one).items.at(0);
  BOOST_TEST((db.storage->reader().findEvent(r.id)->dataJson == r.dataJson));
  BOOST_TEST((r.entityTypeId == 1220));
  BOOST_TEST(r.receivedAt == kStart * 1000);
}

CONTRACT_CASE(after_id_starts_after_the_cursor_in_the_order_asked) {
  Populated db(backend);
  const std::int64_t mid = db.written[30];
  EventFilter asc;
  asc.afterId = mid;
  asc.limit = 3;
  EventPage up = db.storage->reader().queryEvents(asc);
  BOOST_REQUIRE_EQUAL(up.items.size(), 3u);
  BOOST_TEST(up.items[0].id == db.written[31]);
  BOOST_TEST(up.items[2].id == db.written[33]);
  EventFilter desc = asc;
  desc.order = EventFilter::Order::kDesc;
  EventPage down = db.storage->reader().queryEvents(desc);
  BOOST_REQUIRE_EQUAL(down.items.size(), 3u);
  BOOST_TEST(down.items[0].id == db.written[29]);
  BOOST_TEST(down.items[2].id == db.written[27]);
  desc.afterId = db.written[0];
  BOOST_TEST(db.storage->reader().queryEvents(desc).items.empty());
  asc.afterId = 0;
  BOOST_TEST(db.storage->reader().queryEvents(asc).items.at(0).id == db.written[0]);
  // A page that ends exactly with the last match is the last page.
  asc.afterId = db.written[56];
  asc.limit = 3;
  EventPage last = db.storage->reader().queryEvents(asc);
  BOOST_TEST(last.items.size() == 3u);
  BOOST_TEST(!last.nextAfterId.has_value());
}

CONTRACT_CASE(pages_stay_whole_while_events_are_written_between_them) {
  Populated db(backend);
  EventFilter asc;
  asc.memberId = kMemberA;
  asc.limit = 4;
  std::vector<std::int64_t> seen, added;
  for (;;) {
    EventPage page = db.storage->reader().queryEvents(asc);
    for (const EventRecord& r : page.items) seen.push_back(r.id);
    if (!page.nextAfterId) break;
    asc.afterId = page.nextAfterId;
    if (added.size() < 3) added.push_back(db.stored(deal()));  // lands after the cursor
  }
  std::vector<std::int64_t> want = db.expected(
      [](const IncomingEvent& e) { return e.memberId == kMemberA; }, EventFilter::Order::kAsc);
  want.insert(want.end(), added.begin(), added.end());
  BOOST_TEST(seen == want, boost::test_tools::per_element());

  // Newest first, events written meanwhile are newer than the cursor and do not appear.
  EventFilter desc;
  desc.memberId = kMemberA;
  desc.order = EventFilter::Order::kDesc;
  desc.limit = 4;
  EventPage first = db.storage->reader().queryEvents(desc);
  std::vector<std::int64_t> down;
  for (const EventRecord& r : first.items) down.push_back(r.id);
  db.stored(deal());
  desc.afterId = first.nextAfterId;
  std::vector<std::int64_t> rest = db.paged(desc, 4);
  down.insert(down.end(), rest.begin(), rest.end());
  std::vector<std::int64_t> wantDown(want.rbegin(), want.rend());
  BOOST_TEST(down == wantDown, boost::test_tools::per_element());
}

CONTRACT_CASE(find_event_is_nullopt_for_a_missing_id) {
  Db db(backend);
  EventReader& reader = db.storage->reader();
  BOOST_TEST(!reader.findEvent(1).has_value());
  std::int64_t id = db.stored(install());
  BOOST_TEST(reader.findEvent(id).has_value());
  BOOST_TEST(!reader.findEvent(id + 1).has_value());
  BOOST_TEST(!reader.findEvent(0).has_value());
  BOOST_TEST(!reader.findEvent(-1).has_value());
  BOOST_TEST(!reader.findEvent(std::numeric_limits<std::int64_t>::max()).has_value());
}

CONTRACT_CASE(portal_views_count_events_and_show_token_metadata_only) {
  Db db(backend);
  EventReader& reader = db.storage->reader();
  BOOST_TEST(reader.listPortals({}).items.empty());
  BOOST_TEST(!reader.listPortals({}).nextAfter.has_value());
  BOOST_TEST(!reader.findPortalView(kMemberA).has_value());
  db.stored(install(kMemberB));
  db.stored(install(kMemberA, 9));
  IncomingEvent late = deal();
  late.ts = kStart + 500;
  db.stored(late);
  IncomingEvent older = withGrant(deal(), 3, "ACCESS3", std::nullopt, kStart + 50);
  older.ts = kStart + 100;  // stored last, with an older ts
  db.stored(older);
  Claim c = db.claimed(db.request(kMemberA, 9));
  BOOST_REQUIRE(db.storage->tokenStore().recordFailure(c, "http_error: HTTP 503", false, kStart));

  std::vector<PortalView> all = reader.listPortals({}).items;
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  // Keyset pages in member_id order: the cursor is the last member_id of the page.
  PortalFilter first;
  first.limit = 1;
  PortalPage page1 = reader.listPortals(first);
  BOOST_REQUIRE_EQUAL(page1.items.size(), 1u);
  BOOST_TEST(page1.items[0].memberId == kMemberA);
  BOOST_TEST((page1.nextAfter == std::optional<std::string>(kMemberA)));
  first.after = page1.nextAfter;
  PortalPage page2 = reader.listPortals(first);
  BOOST_REQUIRE_EQUAL(page2.items.size(), 1u);
  BOOST_TEST(page2.items[0].memberId == kMemberB);
  BOOST_TEST(!page2.nextAfter.has_value());
  BOOST_TEST(all[0].memberId == kMemberA);  // by member_id, not by install order
  BOOST_TEST(all[1].memberId == kMemberB);
  const PortalView& a = all[0];
  BOOST_TEST(a.domain == "acme-test.bitrix24.com");
  BOOST_TEST((a.clientEndpoint == std::string("https://acme-test.bitrix24.com/rest/")));
  BOOST_TEST((a.serverEndpoint == std::string("https://oauth.bitrix.info/rest/")));
  BOOST_TEST((a.status == std::string("F")));
  BOOST_TEST((a.scope == std::string("crm")));
  BOOST_TEST((a.installedAt == kStart));
  BOOST_TEST(!a.uninstalledAt.has_value());
  BOOST_TEST(a.eventCount == 3);
  BOOST_TEST((a.lastEventTs == kStart + 100));  // the most recently stored, not the latest ts
  BOOST_REQUIRE_EQUAL(a.tokens.size(), 2u);
  BOOST_TEST(a.tokens[0].userId == 3);
  BOOST_TEST((a.tokens[0].expiresAt == kStart + 50));
  BOOST_TEST(!a.tokens[0].hasRefreshToken);
  BOOST_TEST(!a.tokens[0].lastRefreshAt.has_value());
  BOOST_TEST(a.tokens[1].userId == 9);
  BOOST_TEST(a.tokens[1].hasRefreshToken);
  BOOST_TEST((a.tokens[1].lastRefreshAt == kStart));
  BOOST_TEST((a.tokens[1].lastRefreshError == std::string("http_error: HTTP 503")));
  BOOST_TEST(all[1].eventCount == 1);
  BOOST_TEST(all[1].tokens.size() == 1u);

  std::optional<PortalView> one = reader.findPortalView(kMemberA);
  BOOST_REQUIRE(one.has_value());
  BOOST_TEST(one->eventCount == a.eventCount);
  BOOST_TEST(one->tokens.size() == a.tokens.size());
  BOOST_TEST((one->lastEventTs == a.lastEventTs));

  // No string of a view holds a token value (TokenInfo has no field for one).
  for (const PortalView& v : all) {
    for (const std::optional<std::string>& text :
         {std::optional<std::string>(v.domain), v.clientEndpoint, v.serverEndpoint, v.status,
          v.scope}) {
      for (const char* secret : {"ACCESS", "REFRESH", kAppToken.c_str()}) {
        BOOST_TEST(text.value_or("").find(secret) == std::string::npos);
      }
    }
  }

  db.clock.advanceSeconds(10);
  db.stored(uninstall());
  std::optional<PortalView> gone = reader.findPortalView(kMemberA);
  BOOST_TEST((gone->uninstalledAt == kStart + 10));
  BOOST_TEST(gone->tokens.empty());
  BOOST_TEST(gone->eventCount == 4);
}

CONTRACT_CASE(stats_total_events_by_code_and_portal_most_first) {
  Db db(backend);
  EventReader& reader = db.storage->reader();
  EventStats empty = reader.stats();
  BOOST_TEST(empty.total == 0);
  BOOST_TEST(empty.byEvent.empty());
  BOOST_TEST(empty.byPortal.empty());
  BOOST_TEST(!empty.firstTs.has_value());
  BOOST_TEST(!empty.lastTs.has_value());

  db.stored(install(kMemberA));  // ts kStart
  db.stored(install(kMemberB));
  for (int i = 0; i < 3; ++i) {
    IncomingEvent e = deal(kMemberB);
    e.event = "ONCRMCONTACTADD";
    e.ts = kStart + 900 - i;
    db.stored(e);
  }
  IncomingEvent untimed = deal(kMemberB);
  untimed.ts.reset();
  db.stored(untimed);
  IncomingEvent earliest = deal(kMemberA);
  earliest.ts = kStart - 50;  // stored last, earliest ts
  db.stored(earliest);

  EventStats s = reader.stats();
  BOOST_TEST(s.total == 7);
  BOOST_REQUIRE_EQUAL(s.byEvent.size(), 3u);
  BOOST_TEST(s.byEvent[0].event == "ONCRMCONTACTADD");
  BOOST_TEST(s.byEvent[0].count == 3);
  BOOST_TEST(s.byEvent[1].count == 2);  // ONAPPINSTALL and ONCRMDEALADD tie at 2
  BOOST_TEST(s.byEvent[2].count == 2);
  BOOST_REQUIRE_EQUAL(s.byPortal.size(), 2u);
  BOOST_TEST(s.byPortal[0].memberId == kMemberB);
  BOOST_TEST(s.byPortal[0].count == 5);
  BOOST_TEST((s.byPortal[0].domain == std::string("globex.bitrix24.eu")));
  BOOST_TEST(s.byPortal[1].memberId == kMemberA);
  BOOST_TEST(s.byPortal[1].count == 2);
  BOOST_TEST((s.firstTs == kStart - 50));
  BOOST_TEST((s.lastTs == kStart + 900));
}

CONTRACT_CASE(token_states_count_each_row_once_in_the_documented_order) {
  Db db(backend);
  EventReader& reader = db.storage->reader();
  TokenStateCounts none = reader.tokenStates(kStart);
  BOOST_TEST(none.refreshFailed + none.noRefreshToken + none.accessExpired + none.valid == 0);

  // Member A: user 1 valid until kStart + 3600; user 2 expired; user 3 with unknown expiry;
  // user 4 expired and without a refresh token (noRefreshToken wins); user 5 valid and
  // without one; user 6 expired with a failed refresh (refreshFailed wins).
  db.stored(install(kMemberA, 1));
  IncomingEvent e = deal(kMemberA, kStaticToken);
  e = withGrant(e, 2, "A2", std::string("R2"), kStart - 10);
  e = withGrant(e, 3, "A3", std::string("R3"), std::nullopt);
  e = withGrant(e, 4, "A4", std::nullopt, kStart - 10);
  e = withGrant(e, 5, "A5", std::nullopt, kStart + 3600);
  e = withGrant(e, 6, "A6", std::string("R6"), kStart - 10);
  db.stored(e);
  Claim c = db.claimed(db.request(kMemberA, 6));
  BOOST_REQUIRE(db.storage->tokenStore().recordFailure(c, "http_error: HTTP 500", false, kStart));

  TokenStateCounts s = reader.tokenStates(kStart);
  BOOST_TEST(s.refreshFailed == 1);
  BOOST_TEST(s.noRefreshToken == 2);
  BOOST_TEST(s.accessExpired == 2);
  BOOST_TEST(s.valid == 1);
  // An hour later user 1's access token has expired too.
  TokenStateCounts later = reader.tokenStates(kStart + 7200);
  BOOST_TEST(later.refreshFailed == 1);
  BOOST_TEST(later.noRefreshToken == 2);
  BOOST_TEST(later.accessExpired == 3);
  BOOST_TEST(later.valid == 0);
}

// --- rejections (SPEC §5, §7): queued by recordRejection, written in the writer's batches ---

RejectionRecord rejection(int n, const std::string& member = kMemberA) {
  RejectionRecord r;
  r.clientAddr = "198.51.100." + std::to_string(n);
  r.status = 401;
  r.error = "verification_failed";
  r.event = "ONCRMDEALADD";
  r.memberId = member;
  r.domain = "acme-test.bitrix24.com";
  return r;
}

// Rejections never commit alone in these cases: they wait for a batch of events.
void holdRejections(SinkSettings& s) { s.rejectionDelay = std::chrono::hours(1); }

// The rejections' counts reported through SinkSettings::onRejections. Thread-safe.
struct RejectionCounts {
  std::mutex mutex;
  std::size_t written = 0, dropped = 0;
  std::function<void(std::size_t, std::size_t)> callback() {
    return [this](std::size_t w, std::size_t d) {
      std::lock_guard<std::mutex> lock(mutex);
      written += w;
      dropped += d;
    };
  }
};

CONTRACT_CASE(rejections_ride_in_the_next_batch_of_events_newest_first) {
  Db db(backend, 256, holdRejections);
  BOOST_TEST(db.sink->recordRejection(rejection(1)));
  RejectionRecord unclaimed;
  unclaimed.clientAddr = "::1";
  unclaimed.status = 404;
  unclaimed.error = "not_found";
  unclaimed.event = "";  // empty claims are stored as NULL
  BOOST_TEST(db.sink->recordRejection(unclaimed));
  BOOST_TEST(db.storage->reader().listRejections({}).items.empty());  // still queued

  db.stored(install());  // its transaction carries them
  RejectionPage page = db.storage->reader().listRejections({});
  BOOST_REQUIRE_EQUAL(page.items.size(), 2u);
  BOOST_TEST(!page.nextAfterId.has_value());
  const RejectionRecord& newest = page.items[0];
  BOOST_TEST(newest.id > page.items[1].id);
  BOOST_TEST(newest.clientAddr == "::1");
  BOOST_TEST(newest.status == 404);
  BOOST_TEST(newest.error == "not_found");
  BOOST_TEST(!newest.event.has_value());
  BOOST_TEST(!newest.memberId.has_value());
  const RejectionRecord& oldest = page.items[1];
  BOOST_TEST(oldest.clientAddr == "198.51.100.1");
  BOOST_TEST(oldest.status == 401);
  BOOST_TEST(oldest.error == "verification_failed");
  BOOST_TEST(*oldest.event == "ONCRMDEALADD");
  BOOST_TEST(*oldest.memberId == kMemberA);
  BOOST_TEST(*oldest.domain == "acme-test.bitrix24.com");
  BOOST_TEST(oldest.receivedAt == db.clock.nowMillis());
  // No event is stored for a rejection: only the install.
  BOOST_TEST(db.storage->reader().stats().total == 1);
}

CONTRACT_CASE(rejections_commit_on_their_own_when_no_events_come) {
  RejectionCounts counts;
  Db db(backend, 256, [&counts](SinkSettings& s) {
    s.rejectionDelay = std::chrono::milliseconds(10);
    s.onRejections = counts.callback();
  });
  BOOST_TEST(db.sink->recordRejection(rejection(1)));
  // Bounded wait for the writer's own commit (not a timing assertion: only that it comes).
  for (int i = 0; i < 1000 && db.storage->reader().listRejections({}).items.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  BOOST_TEST(db.storage->reader().listRejections({}).items.size() == 1u);
  std::lock_guard<std::mutex> lock(counts.mutex);
  BOOST_TEST(counts.written == 1u);
  BOOST_TEST(counts.dropped == 0u);
}

CONTRACT_CASE(every_value_of_a_rejection_is_cut_to_64_characters) {
  Db db(backend, 256, holdRejections);
  RejectionRecord r = rejection(1);
  const std::string cyrillic = "\xd0\xb6";  // one character, two bytes
  std::string longMember;
  for (int i = 0; i < 100; ++i) longMember += cyrillic;
  r.memberId = longMember;
  r.event = std::string(300, 'E');
  r.domain = std::string(65, 'd');
  r.clientAddr = std::string(70, 'c');
  r.error = std::string(64, 'x');
  BOOST_TEST(db.sink->recordRejection(r));
  db.stored(install());
  RejectionPage page = db.storage->reader().listRejections({});
  BOOST_REQUIRE_EQUAL(page.items.size(), 1u);
  const RejectionRecord& got = page.items[0];
  std::string member64;
  for (int i = 0; i < 64; ++i) member64 += cyrillic;
  BOOST_TEST(*got.memberId == member64);  // 64 characters, 128 bytes: no character split
  BOOST_TEST(*got.event == std::string(64, 'E'));
  BOOST_TEST(*got.domain == std::string(64, 'd'));
  BOOST_TEST(got.clientAddr == std::string(64, 'c'));
  BOOST_TEST(got.error == std::string(64, 'x'));
}

CONTRACT_CASE(only_the_newest_keep_rejections_are_kept) {
  Db db(backend, 256, [](SinkSettings& s) {
    holdRejections(s);
    s.keepRejections = 3;
  });
  for (int i = 1; i <= 5; ++i) BOOST_TEST(db.sink->recordRejection(rejection(i)));
  db.stored(install());
  for (int i = 6; i <= 7; ++i) BOOST_TEST(db.sink->recordRejection(rejection(i)));
  db.stored(deal());
  RejectionPage page = db.storage->reader().listRejections({});
  BOOST_REQUIRE_EQUAL(page.items.size(), 3u);
  BOOST_TEST(page.items[0].clientAddr == "198.51.100.7");
  BOOST_TEST(page.items[1].clientAddr == "198.51.100.6");
  BOOST_TEST(page.items[2].clientAddr == "198.51.100.5");
}

CONTRACT_CASE(keep_rejections_zero_records_none) {
  Db db(backend, 256, [](SinkSettings& s) { s.keepRejections = 0; });
  BOOST_TEST(!db.sink->recordRejection(rejection(1)));
  db.stored(install());
  BOOST_TEST(db.storage->reader().listRejections({}).items.empty());
}

CONTRACT_CASE(a_full_rejection_queue_drops_and_counts) {
  RejectionCounts counts;
  Db db(backend, 256, [&counts](SinkSettings& s) {
    holdRejections(s);
    s.maxPendingRejections = 2;
    s.onRejections = counts.callback();
  });
  BOOST_TEST(db.sink->recordRejection(rejection(1)));
  BOOST_TEST(db.sink->recordRejection(rejection(2)));
  BOOST_TEST(!db.sink->recordRejection(rejection(3)));  // dropped: the queue holds 2
  {
    std::lock_guard<std::mutex> lock(counts.mutex);
    BOOST_TEST(counts.dropped == 1u);
    BOOST_TEST(counts.written == 0u);
  }
  db.stored(install());
  BOOST_TEST(db.storage->reader().listRejections({}).items.size() == 2u);
  BOOST_TEST(db.sink->recordRejection(rejection(4)));  // room again
  std::lock_guard<std::mutex> lock(counts.mutex);
  BOOST_TEST(counts.written == 2u);
}

CONTRACT_CASE(close_writes_the_rejections_still_waiting_then_drops) {
  Db db(backend, 256, holdRejections);
  BOOST_TEST(db.sink->recordRejection(rejection(1)));
  db.sink->close();
  BOOST_TEST(!db.sink->recordRejection(rejection(2)));
  RejectionPage page = db.storage->reader().listRejections({});
  BOOST_REQUIRE_EQUAL(page.items.size(), 1u);
  BOOST_TEST(page.items[0].clientAddr == "198.51.100.1");
}

CONTRACT_CASE(rejection_pages_go_newest_first_by_keyset_and_filter_by_member) {
  Db db(backend, 256, holdRejections);
  for (int i = 1; i <= 5; ++i) {
    BOOST_TEST(db.sink->recordRejection(rejection(i, i % 2 ? kMemberA : kMemberB)));
  }
  db.stored(install());
  EventReader& reader = db.storage->reader();
  RejectionFilter f;
  f.limit = 2;
  RejectionPage first = reader.listRejections(f);
  BOOST_REQUIRE_EQUAL(first.items.size(), 2u);
  BOOST_TEST(first.items[0].clientAddr == "198.51.100.5");
  BOOST_TEST(first.items[1].clientAddr == "198.51.100.4");
  BOOST_REQUIRE(first.nextAfterId.has_value());
  BOOST_TEST(*first.nextAfterId == first.items[1].id);
  f.afterId = first.nextAfterId;
  RejectionPage second = reader.listRejections(f);
  BOOST_REQUIRE_EQUAL(second.items.size(), 2u);
  BOOST_TEST(second.items[0].clientAddr == "198.51.100.3");
  f.afterId = second.nextAfterId;
  RejectionPage last = reader.listRejections(f);
  BOOST_REQUIRE_EQUAL(last.items.size(), 1u);
  BOOST_TEST(last.items[0].clientAddr == "198.51.100.1");
  BOOST_TEST(!last.nextAfterId.has_value());

  RejectionFilter byMember;
  byMember.memberId = kMemberB;
  RejectionPage b = reader.listRejections(byMember);
  BOOST_REQUIRE_EQUAL(b.items.size(), 2u);
  BOOST_TEST(b.items[0].clientAddr == "198.51.100.4");
  BOOST_TEST(b.items[1].clientAddr == "198.51.100.2");
  byMember.memberId = "nobody";
  BOOST_TEST(reader.listRejections(byMember).items.empty());
}

// Issue 12 (SPEC §7, §8): what the store keeps of its conversation with portals.

CONTRACT_CASE(a_confirmed_rotation_replaces_the_application_token_with_the_event) {
  Db db(backend);
  db.stored(install());
  IncomingEvent update = deal();
  update.event = "ONAPPUPDATE";
  update.applicationToken = "rotated-app-token";
  update.confirmed = IncomingEvent::Confirmed::kRotation;
  update.replacedToken = kAppToken;
  db.stored(update);
  BOOST_TEST((db.storage->findPortal(kMemberA)->applicationToken == "rotated-app-token"));
  // The old token verifies nothing now; a second rotation from the old token is refused.
  BOOST_TEST((db.sink->write(deal()).status == Status::kRejected));
  BOOST_TEST((db.sink->write(update).status == Status::kRejected));
  BOOST_TEST((db.sink->write(deal(kMemberA, "rotated-app-token")).status == Status::kStored));
}

CONTRACT_CASE(installed_portals_are_those_installed_and_not_uninstalled) {
  Db db(backend);
  db.stored(install());
  db.stored(install(kMemberB));
  PortalStateStore& state = db.storage->portalState();
  BOOST_TEST(state.installedPortals(std::nullopt).size() == 2u);
  db.stored(uninstall(kMemberB));
  std::vector<PortalRecord> left = state.installedPortals(std::nullopt);
  BOOST_REQUIRE_EQUAL(left.size(), 1u);
  BOOST_TEST(left[0].memberId == kMemberA);
  BOOST_TEST(left[0].clientEndpoint == "https://acme-test.bitrix24.com/rest/");
  BOOST_TEST(state.installedPortals(kMemberB).empty());
  BOOST_TEST(state.installedPortals(kMemberA).size() == 1u);
}

CONTRACT_CASE(bindings_are_recorded_replaced_removed_and_shown_with_the_portal) {
  Db db(backend);
  db.stored(install());
  db.stored(install(kMemberB));
  PortalStateStore& state = db.storage->portalState();
  state.recordBinding(kMemberA, {"ONCRMDEALADD", "online", "error", "ERROR_CORE: no", kStart});
  state.recordBinding(kMemberA, {"ONCRMDEALADD", "online", "bound", std::nullopt, kStart + 1});
  state.recordBinding(kMemberA, {"ONCRMCONTACTADD", "offline", "bound", std::nullopt, kStart});
  state.recordBinding(kMemberB, {"ONCRMDEALADD", "online", "error", "http_500", kStart});
  std::vector<BindingRecord> a = state.bindings(kMemberA);
  BOOST_REQUIRE_EQUAL(a.size(), 2u);
  BOOST_TEST(a[0].event == "ONCRMCONTACTADD");
  BOOST_TEST((a[1].state == "bound" && !a[1].error && a[1].updatedAt == kStart + 1));
  std::optional<PortalView> view = db.storage->reader().findPortalView(kMemberA);
  BOOST_REQUIRE(view.has_value());
  BOOST_TEST(view->bindings.size() == 2u);
  BOOST_TEST(!view->offline.has_value());
  PortalPage page = db.storage->reader().listPortals(PortalFilter{});
  BOOST_REQUIRE_EQUAL(page.items.size(), 2u);
  for (const PortalView& p : page.items) {
    BOOST_TEST(p.bindings.size() == (p.memberId == kMemberA ? 2u : 1u));
  }
  std::vector<BindingStateCount> counts = db.storage->reader().bindingStates();
  BOOST_REQUIRE_EQUAL(counts.size(), 3u);  // offline/bound, online/bound, online/error
  BOOST_TEST((counts[0].type == "offline" && counts[0].state == "bound" && counts[0].count == 1));
  BOOST_TEST((counts[2].type == "online" && counts[2].state == "error" && counts[2].count == 1));
  state.removeBinding(kMemberA, "ONCRMDEALADD", "online");
  BOOST_TEST(state.bindings(kMemberA).size() == 1u);
  BOOST_TEST(state.bindings(kMemberB).size() == 1u);
}

CONTRACT_CASE(an_offline_batch_is_stored_once_with_its_note_and_counted) {
  Db db(backend);
  db.stored(install());
  PortalStateStore& state = db.storage->portalState();
  auto record = [](std::int64_t id) {
    OfflineEvent r;
    r.event = deal();
    r.event.applicationToken.clear();
    r.event.entityId = 1000 + id;
    r.offlineId = id;
    r.messageId = "msg" + std::to_string(id);
    return r;
  };
  BOOST_TEST(state.offlineState(kMemberA).mode == "reserve");  // the default, without a row
  BOOST_TEST(state.storeOfflineBatch(kMemberA, "proc1", {record(1), record(2)}, kStart * 1000) ==
             2u);
  // Handed out again (a lapsed reservation, another process): only the new one is stored.
  BOOST_TEST(state.storeOfflineBatch(kMemberA, "proc2", {record(2), record(3)}, kStart * 1000) ==
             1u);
  std::vector<OfflineNote> notes = state.offlineNotes(kMemberA);
  BOOST_REQUIRE_EQUAL(notes.size(), 2u);
  BOOST_TEST(notes[0].processId == "proc1");
  BOOST_TEST((notes[0].ids == std::vector<std::int64_t>{1, 2}));
  state.dropOfflineNote(kMemberA, "proc1");
  BOOST_TEST(state.offlineNotes(kMemberA).size() == 1u);
  // clear=1 batches have no note.
  BOOST_TEST(state.storeOfflineBatch(kMemberA, "", {record(4)}, kStart * 1000) == 1u);
  BOOST_TEST(state.offlineNotes(kMemberA).size() == 1u);

  EventFilter offline;
  offline.source = "offline";
  BOOST_TEST(db.allIds(offline).size() == 4u);
  EventFilter online;
  online.source = "online";
  BOOST_TEST(db.allIds(online).size() == 1u);  // the install
  EventPage page = db.storage->reader().queryEvents(offline);
  BOOST_TEST(page.items.front().offline);
  BOOST_TEST(page.items.front().event == "ONCRMDEALADD");
  // The counters count them like any stored event.
  std::optional<PortalView> view = db.storage->reader().findPortalView(kMemberA);
  BOOST_TEST(view->eventCount == 5);
  BOOST_TEST(db.storage->reader().stats().total == 5);
  BOOST_REQUIRE(view->offline.has_value());
  BOOST_TEST(view->offline->fetched == 4);

  state.setOfflineMode(kMemberA, "clear");
  state.recordOfflinePass(kMemberA, std::string("event.offline.get: http_500"), kStart + 9);
  OfflineState s = state.offlineState(kMemberA);
  BOOST_TEST(s.mode == "clear");
  BOOST_TEST((s.lastPassAt == kStart + 9));
  BOOST_TEST((s.lastError == "event.offline.get: http_500"));
  BOOST_TEST(s.fetched == 4);
  state.recordOfflinePass(kMemberA, std::nullopt, kStart + 10);
  BOOST_TEST(!state.offlineState(kMemberA).lastError.has_value());
}

// SPEC §4: a verified event is never rejected for its content, and the query API and the
// stream serve its data as decoded. PostgreSQL's jsonb cannot hold the escape \u0000 (a form
// body's %00), so that backend keeps such data in a json column beside it (its migration 0005);
// either way the text comes back exactly as written.
const std::string kNulData = R"({"FIELDS":{"ID":"7405","NAME":"a\u0000b","N\u0000":["\u0000"]}})";
// An escaped backslash, then the text u0000: no NUL, jsonb takes it (and may print it
// differently, so it is compared as JSON).
const std::string kBackslashData = R"({"FIELDS":{"ID":"7405","PATH":"C:\\u0000"}})";

CONTRACT_CASE(event_data_with_nul_is_stored_and_read_back_exactly) {
  Db db(backend);
  db.stored(install());
  IncomingEvent nul = deal();
  nul.dataJson = kNulData;
  IncomingEvent backslash = deal();
  backslash.dataJson = kBackslashData;
  // In one batch with an ordinary event: one row's data must not change how the others go in.
  std::vector<IngestOutcome> out = db.submitTogether({deal(), nul, backslash, nul});
  for (const IngestOutcome& o : out) BOOST_TEST((o.status == Status::kStored), o.reason);
  BOOST_REQUIRE_EQUAL(out.size(), 4u);
  const std::int64_t nulId = out[1].id;
  const std::int64_t backslashId = out[2].id;

  std::optional<EventRecord> found = db.storage->reader().findEvent(nulId);
  BOOST_REQUIRE(found.has_value());
  BOOST_TEST(found->dataJson == kNulData);
  BOOST_TEST((found->entityId == std::optional<std::int64_t>(7405)));
  found = db.storage->reader().findEvent(backslashId);
  BOOST_REQUIRE(found.has_value());
  BOOST_TEST(sameJson(found->dataJson, kBackslashData), found->dataJson);
  BOOST_TEST(found->dataJson.find("\\u0000") != std::string::npos, found->dataJson);

  // A page (the query API) in both orders, and a scan after an id (what the stream reads).
  for (EventFilter::Order order : {EventFilter::Order::kAsc, EventFilter::Order::kDesc}) {
    EventFilter filter;
    filter.order = order;
    filter.entityId = 7405;
    EventPage page = db.storage->reader().queryEvents(filter);
    BOOST_REQUIRE_EQUAL(page.items.size(), 5u);  // and submitTogether's gate event
    for (const EventRecord& r : page.items) {
      BOOST_TEST_CONTEXT("id " << r.id) {
        if (r.id == out[1].id || r.id == out[3].id) {
          BOOST_TEST(r.dataJson == kNulData);
        } else if (r.id == backslashId) {
          BOOST_TEST(sameJson(r.dataJson, kBackslashData), r.dataJson);
        } else {
          BOOST_TEST(sameJson(r.dataJson, deal().dataJson), r.dataJson);
        }
      }
    }
  }
  EventFilter after;
  after.afterId = out[0].id;
  std::vector<std::string> scanned;
  db.storage->reader().scanEvents(after, [&](EventRecord& r) {
    scanned.push_back(r.dataJson);
    return true;
  });
  BOOST_REQUIRE_EQUAL(scanned.size(), 3u);
  BOOST_TEST(scanned[0] == kNulData);
  BOOST_TEST(scanned[2] == kNulData);
  BOOST_TEST(db.storage->reader().stats().total == 6);
}

CONTRACT_CASE(offline_event_data_with_nul_is_stored_and_read_back_exactly) {
  Db db(backend);
  db.stored(install());
  OfflineEvent r;
  r.event = deal();
  r.event.applicationToken.clear();
  r.event.dataJson = kNulData;
  r.offlineId = 1;
  r.messageId = "msg1";
  OfflineEvent plain = r;
  plain.event.dataJson = deal().dataJson;
  plain.offlineId = 2;
  plain.messageId = "msg2";
  BOOST_TEST(db.storage->portalState().storeOfflineBatch(kMemberA, "proc1", {r, plain},
                                                         kStart * 1000) == 2u);
  EventFilter offline;
  offline.source = "offline";
  EventPage page = db.storage->reader().queryEvents(offline);
  BOOST_REQUIRE_EQUAL(page.items.size(), 2u);
  BOOST_TEST(page.items[0].dataJson == kNulData);
  BOOST_TEST(sameJson(page.items[1].dataJson, deal().dataJson), page.items[1].dataJson);
  std::optional<EventRecord> found = db.storage->reader().findEvent(page.items[0].id);
  BOOST_REQUIRE(found.has_value());
  BOOST_TEST(found->dataJson == kNulData);
}

BOOST_AUTO_TEST_SUITE_END()
