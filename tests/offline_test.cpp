// The offline queue (SPEC §8.3) with the real binary and the fake portal on 127.0.0.1: records
// queued while the store is down are all stored once when `serve` starts; a SIGKILL between the
// commit and event.offline.clear loses nothing and stores nothing twice; two processes pulling at
// once store each record once; a plan without reservation (WRONG_LICENSE) is pulled with clear=1;
// ONOFFLINEEVENT starts a pass; the source column, filter and EVENT field; never a clear without
// a process_id. Runs on both backends (offline_test, offline_test_pg; tests/test_backend.h): the
// child processes get the suite's database through backendEnv().
#define BOOST_TEST_MODULE offline
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/URI.h>

#include <signal.h>

#include <fstream>
#include <future>
#include <istream>
#include <set>

#include "b24_fake.h"
#include "oauth_fake.h"
#include "test_support.h"

using namespace b24es;
using namespace b24es::test;

namespace {

struct Harness {
  TempDir dir;
  SystemClock clock;
  FakeBitrix24 portal;
  std::string config;
  std::string db;
  Settings settings;  // names the database the children use, for the checks' SQL
  InstallSpec spec;

  Harness() {
    db = dir.file("events.db");
    settings = testSettings(dir);
    settings.db.path = db;  // serveArgs' --db
    config = dir.file("b24es.properties");
    std::ofstream out(config);
    out << "rest.allowed_hosts = 127.0.0.1\nrest.allow_http = true\n"
        << "bitrix24.offline_events = ONCRMDEALADD\n"
        << "offline.interval = 300\n";
    out.close();
    spec.clientEndpoint = portal.clientEndpoint();
    spec.expires = clock.nowSeconds() + 3600;
    portal.acceptToken(spec.accessToken);
  }
  ~Harness() { BOOST_CHECK_EQUAL(portal.clearsWithoutProcessId(), 0u); }

  std::unique_ptr<ChildProcess> serve(std::string& ingest, std::string& query) {
    std::vector<std::string> args = serveArgs(dir);
    args.push_back("--config");
    args.push_back(config);
    auto child = std::make_unique<ChildProcess>(args, backendEnv(dir));
    BOOST_REQUIRE(child->readListeningLine(ingest, query));
    return child;
  }
  // Installs the portal through a serve that is then stopped.
  void installWhileUp() {
    std::string ingest, query;
    auto child = serve(ingest, query);
    HttpResult r = postForm(ingest, "/bitrix24/events", installForm(spec));
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    child->signal(SIGTERM);
    BOOST_REQUIRE_EQUAL(child->wait(), 0);
  }
  std::string scalar(const std::string& sql) { return queryScalar(settings, sql); }
  std::int64_t offlineStored() {
    return std::stoll(scalar("SELECT count(*) FROM events WHERE source = 'offline'"));
  }
  // Each record at most once.
  void expectStoredOnce() {
    BOOST_CHECK_EQUAL(scalar("SELECT count(*) - count(DISTINCT offline_id) FROM events WHERE "
                             "source = 'offline'"),
                      "0");
  }
  int fetch(std::string& out, std::string& err) {
    return runBinary({"fetch-offline", "--db", db, "--config", config}, out, err, backendEnv(dir));
  }
};

// GET /api/v1/events/stream on the child's query listener, read with POCO's client: the ids
// and EVENT objects of the messages, comments skipped (stream_test has the byte-level client).
class EventStream {
 public:
  EventStream(const std::string& queryUrl, const std::string& target)
      : session_(Poco::URI(queryUrl).getHost(), Poco::URI(queryUrl).getPort()) {
    session_.setTimeout(Poco::Timespan(20, 0));  // only ends a hung test
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, target,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    session_.sendRequest(request);
    body_ = &session_.receiveResponse(response_);
  }
  int status() const { return response_.getStatus(); }
  // The next event's (id, EVENT); false when the stream ended, or when four keep-alive
  // comments (a minute at the default interval) came and no event: that ends a hung case.
  bool next(std::int64_t& id, Poco::JSON::Object::Ptr& event) {
    std::string line, data;
    std::int64_t got = 0;
    int comments = 0;
    while (comments < 4 && std::getline(*body_, line)) {
      if (line.rfind(":", 0) == 0) ++comments;
      if (line.rfind("id: ", 0) == 0) got = std::stoll(line.substr(4));
      if (line.rfind("data: ", 0) == 0) data += line.substr(6);
      if (line.empty() && got > 0) {
        id = got;
        Poco::JSON::Parser parser;
        event = parser.parse(data).extract<Poco::JSON::Object::Ptr>();
        return true;
      }
    }
    return false;
  }

 private:
  Poco::Net::HTTPClientSession session_;
  Poco::Net::HTTPResponse response_;
  std::istream* body_ = nullptr;
};

}  // namespace

BOOST_AUTO_TEST_CASE(records_queued_while_the_store_is_down_are_all_stored_once_at_start) {
  Harness h;
  h.installWhileUp();
  // The install's serve may or may not have made a pass (one empty get) after the install and
  // before its stop, as the machine's load has it; what counts is what this serve calls.
  const std::size_t getsBefore = h.portal.requestsOf("event.offline.get").size();
  h.portal.queueOffline("ONCRMDEALADD", 120);
  std::string ingest, query;
  auto child = h.serve(ingest, query);
  BOOST_REQUIRE(h.portal.waitFor([&] { return h.portal.offlineQueued() == 0; }, 60000));
  BOOST_REQUIRE(h.portal.waitFor([&] { return h.offlineStored() == 120; }, 20000));
  h.expectStoredOnce();
  BOOST_CHECK_EQUAL(h.portal.requestsOf("event.offline.clear").size(), 3u);  // 50 + 50 + 20
  // One call per batch of records: get, then (clear 1, get), (clear 2, get), (clear 3, get []).
  BOOST_CHECK_EQUAL(h.portal.requestsOf("event.offline.get").size() - getsBefore, 4u);
  auto batches = h.portal.requestsOf("batch");
  BOOST_REQUIRE_EQUAL(batches.size(), 3u);
  for (const auto& b : batches) {
    BOOST_CHECK_EQUAL(b.param("halt"), "1");
    BOOST_CHECK_EQUAL(b.param("auth"), h.spec.accessToken);
    const std::string& body = b.body;
    BOOST_CHECK(body.find("cmd%5Bclear%5D=event.offline.clear") < body.find("cmd%5Bget%5D="));
    BOOST_CHECK(body.find(h.spec.accessToken) == body.rfind(h.spec.accessToken));  // once: auth
  }
  for (const auto& get : h.portal.requestsOf("event.offline.get")) {
    BOOST_CHECK_EQUAL(get.param("clear"), "0");
    BOOST_CHECK_EQUAL(get.param("limit"), "50");
    BOOST_CHECK(get.requestLine.find(h.spec.accessToken) == std::string::npos);
  }
  // What the queue's record became.
  BOOST_CHECK_EQUAL(h.scalar("SELECT event || ' ' || user_id || ' ' || entity_id || ' ' || "
                             "message_id || ' ' || ts FROM events WHERE offline_id = 1"),
                    "ONCRMDEALADD 1 1001 msg1 1767261600");
  BOOST_CHECK(h.portal.waitFor(
      [&] { return h.scalar("SELECT count(*) FROM offline_batches") == "0"; }, 10000));
  // The source filter and field of the query API.
  HttpResult offline = httpGet(query, "/api/v1/events?source=offline&limit=1000");
  BOOST_REQUIRE_EQUAL(offline.status, 200);
  auto items = offline.json()->getArray("items");
  BOOST_CHECK_EQUAL(items->size(), 120u);
  BOOST_CHECK_EQUAL(items->getObject(0)->getValue<std::string>("source"), "offline");
  HttpResult online = httpGet(query, "/api/v1/events?source=online");
  BOOST_CHECK_EQUAL(online.json()->getArray("items")->size(), 1u);  // the install
  BOOST_CHECK_EQUAL(online.json()->getArray("items")->getObject(0)->getValue<std::string>("source"),
                    "online");
  HttpResult bad = httpGet(query, "/api/v1/events?source=elsewhere");
  BOOST_CHECK_EQUAL(bad.status, 400);
  HttpResult portal = httpGet(query, "/api/v1/portals/" + h.spec.memberId);
  auto state = portal.json()->getObject("offline");
  BOOST_REQUIRE(state);
  BOOST_CHECK_EQUAL(state->getValue<std::string>("mode"), "reserve");
  BOOST_CHECK_EQUAL(state->getValue<std::int64_t>("fetched"), 120);
  HttpResult metrics = httpGet(query, "/metrics");
  BOOST_CHECK(metrics.body.find("b24es_offline_events_fetched_total 120") != std::string::npos);
  BOOST_CHECK(metrics.body.find("b24es_rest_calls_total{method=\"batch\",result=\"ok\"} 3") !=
              std::string::npos);
  BOOST_CHECK(metrics.body.find("b24es_rest_calls_total{method=\"event.offline.get\",result="
                                "\"ok\"} 1") != std::string::npos);
  child->signal(SIGTERM);
  BOOST_CHECK_EQUAL(child->wait(), 0);
}

BOOST_AUTO_TEST_CASE(a_sigkill_between_commit_and_clear_loses_nothing_and_stores_nothing_twice) {
  Harness h;
  h.installWhileUp();
  std::string ingest, query;
  auto child = h.serve(ingest, query);
  BOOST_REQUIRE(h.portal.waitFor(
      [&] { return h.portal.requestsOf("event.offline.get").size() >= 1; }, 20000));
  h.portal.hold("event.offline.clear");
  h.portal.queueOffline("ONCRMDEALADD", 30);
  // ONOFFLINEEVENT starts a pass.
  InstallSpec event = h.spec;
  std::string form = dealAddForm(event, "x", "", 1);
  form.replace(0, std::string("event=ONCRMDEALADD").size(), "event=ONOFFLINEEVENT");
  BOOST_REQUIRE_EQUAL(postForm(ingest, "/bitrix24/events", form).status, 200);
  BOOST_REQUIRE(h.portal.waitFor(
      [&] { return h.portal.requestsOf("event.offline.clear").size() == 1; }, 20000));
  // The clear is on its way: the batch and its note are committed.
  BOOST_CHECK_EQUAL(h.offlineStored(), 30);
  BOOST_CHECK_EQUAL(h.scalar("SELECT count(*) FROM offline_batches"), "1");
  child->signal(SIGKILL);
  child->wait();
  h.portal.release(/*apply=*/false);  // the clear never reached Bitrix24
  BOOST_CHECK_EQUAL(h.portal.offlineQueued(), 30u);
  const std::string process = h.portal.requestsOf("event.offline.clear")[0].param("process_id");
  h.portal.releaseReservations();  // and the reservation lapsed meanwhile: handed out again

  child = h.serve(ingest, query);
  BOOST_REQUIRE(h.portal.waitFor([&] { return h.portal.offlineQueued() == 0; }, 30000));
  BOOST_REQUIRE(h.portal.waitFor(
      [&] { return h.scalar("SELECT count(*) FROM offline_batches") == "0"; }, 10000));
  BOOST_CHECK_EQUAL(h.offlineStored(), 30);
  h.expectStoredOnce();
  // The note was cleared first, by its process_id.
  auto clears = h.portal.requestsOf("event.offline.clear");
  BOOST_REQUIRE_GE(clears.size(), 3u);
  BOOST_CHECK_EQUAL(clears[1].param("process_id"), process);
  child->signal(SIGTERM);
  BOOST_CHECK_EQUAL(child->wait(), 0);
}

BOOST_AUTO_TEST_CASE(two_processes_pulling_at_once_store_each_record_once) {
  Harness h;
  h.installWhileUp();
  // Both get the same records, for the first six calls (b24_fake.h: unbounded lapses can
  // starve two pullers).
  h.portal.setReservationsLapse(true, 6);
  h.portal.queueOffline("ONCRMDEALADD", 150);
  auto one = std::async(std::launch::async, [&] {
    std::string out, err;
    return h.fetch(out, err);
  });
  std::string out, err;
  int rc = h.fetch(out, err);
  BOOST_CHECK_EQUAL(one.get(), 0);
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_EQUAL(h.portal.offlineQueued(), 0u);
  BOOST_CHECK_EQUAL(h.offlineStored(), 150);
  h.expectStoredOnce();
  BOOST_CHECK_EQUAL(h.scalar("SELECT fetched FROM offline_state"), "150");
}

// The offline writers are writers of events like the ingest's (SPEC §5.1, §8.3): records two
// fetch-offline processes store at once, each skipping what the other stored first, while a
// second portal's online events are posted to a `serve` of the same database, reach the
// serve's streams in id order, each once, with no gap. Neither puller tells the serve of its
// commits; its streams learn of them from the database's watermark. On PostgreSQL the
// portal's advisory lock orders the two pullers of one portal, and the commit-order lock alone
// orders them against the ingest writer storing another portal's events.
BOOST_AUTO_TEST_CASE(records_two_processes_store_at_once_reach_an_open_stream_in_id_order) {
  Harness h;
  h.installWhileUp();
  std::string ingest, query;
  auto child = h.serve(ingest, query);
  // The serve's pass at start has found the queue empty; it pulls nothing more by itself
  // (offline.interval = 300).
  BOOST_REQUIRE(h.portal.waitFor(
      [&] { return h.portal.requestsOf("event.offline.get").size() >= 1; }, 20000));
  // The second portal, on a fake of its own with an empty offline queue.
  FakeBitrix24 secondPortal;
  InstallSpec second = h.spec;
  second.memberId = "5e2c8a0b4d6f1397a2c4e6081b3d5f79";
  second.domain = "second-test.bitrix24.com";
  second.applicationToken = "9d7b5f3e1c0a28466e4c2a0f8d6b4e21";
  second.accessToken = "second-install-access-4c2a90d1";
  second.clientEndpoint = secondPortal.clientEndpoint();
  secondPortal.acceptToken(second.accessToken);
  HttpResult installed = postForm(ingest, "/bitrix24/events", installForm(second));
  BOOST_REQUIRE_MESSAGE(installed.status == 200, installed.body);
  const std::int64_t startAfter = installed.json()->getValue<std::int64_t>("id");
  if (testBackend() == Backend::postgresql) {
    // Fault injection, as in stream_test: each INSERT into events sleeps a few ms between its
    // ids and its commit, so that batches would commit out of id order if anything let them.
    pgQuery(h.settings.pg.url,
            "CREATE FUNCTION test_commit_delay() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "PERFORM pg_sleep(0.002 + random() * 0.006); RETURN NULL; END $$; CREATE TRIGGER "
            "test_commit_delay AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION "
            "test_commit_delay()");
  }
  EventStream offline(query, "/api/v1/events/stream?source=offline");
  EventStream all(query, "/api/v1/events/stream");
  BOOST_REQUIRE_EQUAL(offline.status(), 200);
  BOOST_REQUIRE_EQUAL(all.status(), 200);
  // Both get the same records, for the first six calls (b24_fake.h: unbounded lapses can
  // starve two pullers).
  h.portal.setReservationsLapse(true, 6);
  h.portal.queueOffline("ONCRMDEALADD", 150);
  constexpr int kOnline = 60;
  auto online = std::async(std::launch::async, [&] {
    int ok = 0;
    for (int i = 0; i < kOnline; ++i) {
      ok += postForm(ingest, "/bitrix24/events", dealAddForm(second, "x", "", 1)).status == 200;
    }
    return ok;
  });
  auto one = std::async(std::launch::async, [&] {
    std::string out, err;
    return h.fetch(out, err);
  });
  std::string out, err;
  BOOST_CHECK_EQUAL(h.fetch(out, err), 0);
  BOOST_CHECK_EQUAL(one.get(), 0);
  BOOST_REQUIRE_EQUAL(online.get(), kOnline);
  BOOST_CHECK_EQUAL(h.offlineStored(), 150);
  h.expectStoredOnce();
  // What is stored after the second install, in id order, by the query API.
  auto listed = [&](const std::string& filter) {
    HttpResult r =
        httpGet(query, "/api/v1/events?limit=1000&after_id=" + std::to_string(startAfter) + filter);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    auto items = r.json()->getArray("items");
    std::vector<std::int64_t> ids;
    for (std::size_t i = 0; i < items->size(); ++i) {
      ids.push_back(items->getObject(i)->getValue<std::int64_t>("id"));
    }
    return ids;
  };
  const std::vector<std::int64_t> expectedAll = listed("");
  const std::vector<std::int64_t> expectedOffline = listed("&source=offline");
  BOOST_REQUIRE_EQUAL(expectedAll.size(), 150u + kOnline);
  BOOST_REQUIRE_EQUAL(expectedOffline.size(), 150u);
  std::vector<std::int64_t> seenAll, seenOffline;
  std::set<std::int64_t> offlineIds;
  for (std::size_t i = 0; i < expectedOffline.size(); ++i) {
    std::int64_t id = 0;
    Poco::JSON::Object::Ptr event;
    BOOST_REQUIRE(offline.next(id, event));
    BOOST_CHECK_EQUAL(event->getValue<std::int64_t>("id"), id);
    BOOST_CHECK_EQUAL(event->getValue<std::string>("source"), "offline");
    seenOffline.push_back(id);
    offlineIds.insert(
        std::stoll(h.scalar("SELECT offline_id FROM events WHERE id = " + std::to_string(id))));
  }
  BOOST_CHECK_EQUAL(offlineIds.size(), 150u);  // each record once
  for (std::size_t i = 0; i < expectedAll.size(); ++i) {
    std::int64_t id = 0;
    Poco::JSON::Object::Ptr event;
    BOOST_REQUIRE(all.next(id, event));
    seenAll.push_back(id);
  }
  BOOST_CHECK_EQUAL_COLLECTIONS(seenOffline.begin(), seenOffline.end(), expectedOffline.begin(),
                                expectedOffline.end());
  BOOST_CHECK_EQUAL_COLLECTIONS(seenAll.begin(), seenAll.end(), expectedAll.begin(),
                                expectedAll.end());
  child->signal(SIGTERM);
  BOOST_CHECK_EQUAL(child->wait(), 0);
}

BOOST_AUTO_TEST_CASE(a_plan_without_reservation_is_pulled_with_clear_1_from_then_on) {
  Harness h;
  h.installWhileUp();
  h.portal.setPlanWithoutReservation(true);
  h.portal.queueOffline("ONCRMDEALADD", 70);
  std::string out, err;
  BOOST_CHECK_EQUAL(h.fetch(out, err), 0);
  BOOST_CHECK_EQUAL(out, "portals=1 fetched=70 failed=0\n");
  BOOST_CHECK(err.find("WRONG_LICENSE") != std::string::npos);
  BOOST_CHECK_EQUAL(h.scalar("SELECT mode FROM offline_state"), "clear");
  BOOST_CHECK(h.portal.requestsOf("event.offline.clear").empty());
  h.portal.queueOffline("ONCRMDEALADD", 5);
  auto before = h.portal.requestsOf("event.offline.get").size();
  BOOST_CHECK_EQUAL(h.fetch(out, err), 0);
  BOOST_CHECK_EQUAL(out, "portals=1 fetched=5 failed=0\n");
  auto gets = h.portal.requestsOf("event.offline.get");
  for (std::size_t i = before; i < gets.size(); ++i) BOOST_CHECK_EQUAL(gets[i].param("clear"), "1");
  BOOST_CHECK_EQUAL(h.offlineStored(), 75);
  h.expectStoredOnce();
}

BOOST_AUTO_TEST_CASE(a_failed_clear_keeps_the_note_and_the_next_pass_clears_it) {
  Harness h;
  h.installWhileUp();
  h.portal.queueOffline("ONCRMDEALADD", 10);
  h.portal.failClears(1);
  std::string out, err;
  BOOST_CHECK_EQUAL(h.fetch(out, err), 1);
  BOOST_CHECK_EQUAL(out, "portals=1 fetched=10 failed=1\n");
  BOOST_CHECK_EQUAL(h.scalar("SELECT count(*) FROM offline_batches"), "1");
  BOOST_CHECK_EQUAL(h.fetch(out, err), 0);
  BOOST_CHECK_EQUAL(out, "portals=1 fetched=0 failed=0\n");
  BOOST_CHECK_EQUAL(h.scalar("SELECT count(*) FROM offline_batches"), "0");
  BOOST_CHECK_EQUAL(h.portal.offlineQueued(), 0u);
  BOOST_CHECK_EQUAL(h.offlineStored(), 10);
}

BOOST_AUTO_TEST_CASE(fetch_offline_without_offline_events_exits_2) {
  Harness h;
  h.installWhileUp();
  std::ofstream(h.config, std::ios::app) << "bitrix24.offline_events =\n";
  // The install's own background calls (bindings) may or may not have run before its stop;
  // what counts is that the refused command adds none.
  const std::size_t before = h.portal.requests().size();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.fetch(out, err), 2);
  BOOST_CHECK_EQUAL(h.portal.requests().size(), before);
}
