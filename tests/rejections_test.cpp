// Rejections end to end (SPEC §5 GET /api/v1/rejections, §7 `rejections`, issue 15 item 2): the
// real Service on port 0 with a temp database, real HTTP requests that the ingest listener
// refuses at every layer (framing, routing, limits, decoding, verification), the rows they
// leave in `rejections`, and the query route that serves them. The storage side (queueing,
// batches, trimming, drops) is in storage_contract_test. Runs on both backends (rejections_test
// on SQLite, rejections_test_pg on PostgreSQL; tests/test_backend.h).
#define BOOST_TEST_MODULE rejections
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/JSON/Array.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/URI.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pg_test_support.h"
#include "service.h"
#include "test_support.h"

using namespace b24es;

namespace {

const std::string kPath = "/bitrix24/events";
const std::string kMember = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";  // the samples' portal
// Secrets only forged requests carry: none may reach the database file.
const std::string kForgedAppToken = "FORGED-APP-TOKEN-5f1e";
const std::string kForgedAccess = "FORGED-ACCESS-TOKEN-9c3d";
const std::string kForgedRefresh = "FORGED-REFRESH-TOKEN-77ab";

struct Server {
  explicit Server(const std::function<void(Settings&)>& adjust = {}) {
    settings = test::testSettings(dir);
    if (adjust) adjust(settings);
    service = std::make_unique<Service>(settings, clock);
    service->start();
    ingest = service->ingestUrl();
    query = service->queryUrl();
  }
  ~Server() { service->stop(); }

  std::string q(const std::string& sql) { return test::queryScalar(settings, sql); }
  int count(const std::string& table) { return std::stoi(q("SELECT count(*) FROM " + table)); }
  // Waits until `sql` answers `value` (the writer commits rejections within 100 ms when no
  // events come); at most 10 s, then the caller's checks fail. Not a timing assertion.
  bool waitFor(const std::string& sql, const std::string& value) {
    for (int i = 0; i < 1000; ++i) {
      if (q(sql) == value) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  bool waitForRejections(int n) {
    return waitFor("SELECT count(*) FROM rejections", std::to_string(n));
  }
  // The newest row as "status|error|event|member_id|domain|client_addr", NULL as "-".
  std::string newest() {
    return q(
        "SELECT status || '|' || error || '|' || coalesce(event, '-') || '|' || "
        "coalesce(member_id, '-') || '|' || coalesce(domain, '-') || '|' || client_addr "
        "FROM rejections ORDER BY id DESC LIMIT 1");
  }
  test::HttpResult forged(const std::string& member = kMember,
                          const std::map<std::string, std::string>& headers = {}) {
    return test::httpRequest(
        ingest, "POST", kPath,
        "event=ONCRMDEALADD&data[FIELDS][ID]=7&auth[member_id]=" + member +
            "&auth[domain]=acme-test.bitrix24.com&auth[application_token]=" + kForgedAppToken +
            "&auth[access_token]=" + kForgedAccess + "&auth[refresh_token]=" + kForgedRefresh,
        "application/x-www-form-urlencoded", headers);
  }

  test::TempDir dir;
  test::FakeClock clock;
  Settings settings;
  std::unique_ptr<Service> service;
  std::string ingest, query;
};

// Sends `raw` on a new connection, half-closes it and returns everything the server answered.
std::string rawExchange(const std::string& url, const std::string& raw) {
  Poco::URI uri(url);
  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress(uri.getHost(), uri.getPort()));
  socket.setReceiveTimeout(Poco::Timespan(30, 0));
  socket.sendBytes(raw.data(), static_cast<int>(raw.size()));
  socket.shutdownSend();
  std::string answer;
  char buffer[4096];
  for (int n; (n = socket.receiveBytes(buffer, sizeof buffer)) > 0;) answer.append(buffer, n);
  return answer;
}

// The answer's status and error code, from an HttpResult or raw bytes.
struct Answer {
  int status = 0;
  std::string error;
};

Answer answerOf(const test::HttpResult& r) {
  return {r.status, r.json()->getValue<std::string>("error")};
}

Answer answerOf(const std::string& raw) {
  Answer a;
  if (raw.rfind("HTTP/1.1 ", 0) != 0) return a;
  a.status = std::stoi(raw.substr(9, 3));
  test::HttpResult r;
  r.body = raw.substr(raw.find("\r\n\r\n") + 4);
  a.error = r.json()->getValue<std::string>("error");
  return a;
}

void checkError(const test::HttpResult& r, int status, const std::string& code) {
  BOOST_TEST(r.status == status);
  BOOST_TEST(r.headers.at("Content-Type") == "application/json");
  auto body = r.json();
  BOOST_TEST(body->getValue<std::string>("error") == code);
  BOOST_TEST(!body->getValue<std::string>("message").empty());
  BOOST_TEST(body->size() == 2u);
}

test::HttpResult bearerGet(const Server& s, const std::string& target, const std::string& token) {
  return test::httpRequest(s.query, "GET", target, {}, {}, {{"Authorization", "Bearer " + token}});
}

}  // namespace

// The pure part (storage/rejections.h): how a value is cut.
BOOST_AUTO_TEST_CASE(cut_to_chars_counts_characters_never_splits_one_and_repairs_bad_bytes) {
  BOOST_TEST(cutToChars("") == "");
  BOOST_TEST(cutToChars(std::string(64, 'a')) == std::string(64, 'a'));
  BOOST_TEST(cutToChars(std::string(65, 'a')) == std::string(64, 'a'));
  BOOST_TEST(cutToChars("\xd0\xb6\xd0\xb6\xd0\xb6", 2) == "\xd0\xb6\xd0\xb6");  // 2 of 3
  BOOST_TEST(cutToChars("ab\xf0\x9f\x98\x80"
                        "cd",
                        3) == "ab\xf0\x9f\x98\x80");  // 4-byte char
  // Bytes that begin no valid sequence: one U+FFFD each.
  BOOST_TEST(cutToChars("a\xff"
                        "b",
                        64) ==
             "a\xef\xbf\xbd"
             "b");
  BOOST_TEST(cutToChars("\x80\x80\x80", 2) == "\xef\xbf\xbd\xef\xbf\xbd");
  BOOST_TEST(cutToChars("x\xd0", 64) == "x\xef\xbf\xbd");                // cut short
  BOOST_TEST(cutToChars("\xc0\xaf", 64) == "\xef\xbf\xbd\xef\xbf\xbd");  // overlong '/'
  RejectionRecord r;
  r.event = "";
  r.memberId = std::string(100, 'm');
  RejectionRecord cut = cutRejection(r);
  BOOST_TEST(!cut.event.has_value());  // nothing claimed
  BOOST_TEST(*cut.memberId == std::string(64, 'm'));
  BOOST_TEST(!cut.domain.has_value());
}

BOOST_AUTO_TEST_CASE(a_forged_event_is_recorded_with_what_it_claimed_and_no_body_or_token) {
  Server s;
  BOOST_REQUIRE_EQUAL(test::postForm(s.ingest, kPath, test::sample("01-ONAPPINSTALL.form")).status,
                      200);
  // From 127.0.0.1, a trusted proxy by default: the client is the forwarded address.
  test::HttpResult r = s.forged(kMember, {{"X-Forwarded-For", "198.51.100.7, 203.0.113.9"}});
  checkError(r, 401, "verification_failed");
  BOOST_REQUIRE(s.waitForRejections(1));
  BOOST_TEST(s.newest() == "401|verification_failed|ONCRMDEALADD|" + kMember +
                               "|acme-test.bitrix24.com|203.0.113.9");
  BOOST_TEST(s.q("SELECT received_at FROM rejections") == std::to_string(s.clock.nowMillis()));
  BOOST_TEST(s.q("SELECT received_at_utc FROM rejections_readable") == "2026-01-01T10:00:00.000Z");
  // Only the install is stored; the forged event is not, and its tokens went nowhere.
  BOOST_TEST(s.count("events") == 1);
  BOOST_TEST(s.q("SELECT count(*) FROM tokens WHERE access_token = '" + kForgedAccess + "'") ==
             "0");
  s.service->stop();
  // Where the database keeps its bytes: on SQLite the files as they are, the WAL included; on
  // PostgreSQL (whose files are the server's) every row of every table as text.
  std::vector<std::pair<std::string, std::string>> places;
  if (test::testBackend() == test::Backend::postgresql) {
    for (const std::string& table :
         test::pgQuery(s.settings.pg.url,
                       "SELECT table_name FROM information_schema.tables "
                       "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")) {
      places.emplace_back(
          table, s.q("SELECT coalesce(string_agg(t::text, ' '), '') FROM \"" + table + "\" t"));
    }
    BOOST_TEST(places.size() > 5u);  // the scan saw the schema's tables
  } else {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      places.emplace_back(std::string("events.db") + suffix,
                          test::readFile(s.settings.db.path + suffix));
    }
  }
  std::string all;
  for (const auto& [where, bytes] : places) {
    all += bytes;
    for (const std::string& secret : {kForgedAppToken, kForgedAccess, kForgedRefresh}) {
      BOOST_TEST(bytes.find(secret) == std::string::npos, where << " holds " << secret);
    }
    BOOST_TEST(bytes.find("data[FIELDS]") == std::string::npos);  // nor the body
  }
  // The scan reads where the row is.
  BOOST_TEST(all.find("verification_failed") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(without_a_trusted_proxy_the_client_is_the_peer) {
  Server s([](Settings& settings) { settings.ingest.trustedProxies.clear(); });
  checkError(s.forged(kMember, {{"X-Forwarded-For", "198.51.100.7"}, {"X-Real-IP", "192.0.2.1"}}),
             401, "verification_failed");
  BOOST_REQUIRE(s.waitForRejections(1));
  BOOST_TEST(s.q("SELECT client_addr FROM rejections") == "127.0.0.1");
}

BOOST_AUTO_TEST_CASE(every_kind_of_ingest_rejection_is_recorded_with_its_status_and_error) {
  Server s([](Settings& settings) {
    settings.ingest.maxBodyBytes = 4096;
    settings.ingest.maxNewPortals = 0;  // every install of a new portal gets 429
  });
  const std::string form = "application/x-www-form-urlencoded";
  struct Case {
    const char* what;
    std::function<Answer()> send;
    Answer expected;
    std::string claimed;  // "event|member_id|domain" as recorded, "-" for NULL
  };
  const std::vector<Case> cases = {
      {"no event field",
       [&] { return answerOf(test::postForm(s.ingest, kPath, "auth[member_id]=only-member")); },
       {400, "missing_field"},
       "-|only-member|-"},
      {"no member_id",
       [&] { return answerOf(test::postForm(s.ingest, kPath, "event=onCrmDealAdd")); },
       {400, "missing_field"},
       "ONCRMDEALADD|-|-"},
      {"a JSON body that does not parse",
       [&] { return answerOf(test::postJson(s.ingest, kPath, "{\"event\":")); },
       {400, ""},
       "-|-|-"},
      {"a claimed event code that is not UTF-8 (stored as U+FFFD)",
       [&] { return answerOf(test::postForm(s.ingest, kPath, "event=%FF&auth[member_id]=m")); },
       {401, "verification_failed"},
       "\xEF\xBF\xBD|m|-"},
      {"another content type",
       [&] {
         return answerOf(test::httpRequest(s.ingest, "POST", kPath, "event=X", "text/plain"));
       },
       {415, "unsupported_media_type"},
       "-|-|-"},
      {"a body over ingest.max_body_bytes",
       [&] { return answerOf(test::postForm(s.ingest, kPath, std::string(5000, 'a'))); },
       {413, "body_too_large"},
       "-|-|-"},
      {"GET on the ingest path",
       [&] { return answerOf(test::httpGet(s.ingest, kPath)); },
       {405, "method_not_allowed"},
       "-|-|-"},
      {"POST on /healthz",
       [&] { return answerOf(test::httpRequest(s.ingest, "POST", "/healthz", "x", form)); },
       {405, "method_not_allowed"},
       "-|-|-"},
      {"an unknown path",
       [&] { return answerOf(test::httpGet(s.ingest, "/bitrix24/other")); },
       {404, "not_found"},
       "-|-|-"},
      {"two Content-Length headers (framing)",
       [&] {
         return answerOf(rawExchange(s.ingest,
                                     "POST /bitrix24/events HTTP/1.1\r\nHost: x\r\n"
                                     "Content-Type: " +
                                         form +
                                         "\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"));
       },
       {400, "malformed_request"},
       "-|-|-"},
      {"a header line without a colon (framing)",
       [&] {
         return answerOf(
             rawExchange(s.ingest, "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"));
       },
       {400, "malformed_request"},
       "-|-|-"},
      {"headers over 64 KiB (framing)",
       [&] {
         return answerOf(rawExchange(s.ingest, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                                   std::string(70000, 'b') + "\r\n\r\n"));
       },
       {400, "malformed_request"},
       "-|-|-"},
      {"a new portal over ingest.max_new_portals",
       [&] {
         return answerOf(test::postForm(s.ingest, kPath, test::sample("01-ONAPPINSTALL.form")));
       },
       {429, "too_many_new_portals"},
       "ONAPPINSTALL|" + kMember + "|acme-test.bitrix24.com"},
      {"an event of an unknown portal",
       [&] { return answerOf(s.forged("unknown-portal")); },
       {401, "verification_failed"},
       "ONCRMDEALADD|unknown-portal|acme-test.bitrix24.com"},
  };
  int n = 0;
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.what) {
      const Answer got = c.send();
      BOOST_TEST(got.status == c.expected.status);
      if (!c.expected.error.empty()) BOOST_TEST(got.error == c.expected.error);
      BOOST_REQUIRE(s.waitForRejections(++n));
      // The row says what the answer said, and what the request claimed.
      BOOST_TEST(s.newest() ==
                 std::to_string(got.status) + "|" + got.error + "|" + c.claimed + "|127.0.0.1");
    }
  }
  BOOST_TEST(s.count("events") == 0);  // a rejection never stores an event
  BOOST_TEST(s.count("portals") == 0);
  // The query listener's own refusals are not ingest rejections.
  BOOST_TEST(test::httpGet(s.query, "/nope").status == 404);
  BOOST_TEST(test::httpGet(s.query, "/api/v1/rejections?limit=0").status == 400);
  // One more ingest rejection after them: had they been queued, they would be written by the
  // time it is, and the count would not be n + 1.
  checkError(s.forged("the-last-one"), 401, "verification_failed");
  BOOST_TEST(s.waitForRejections(n + 1));
  BOOST_TEST(s.q("SELECT member_id FROM rejections ORDER BY id DESC LIMIT 1") == "the-last-one");
}

BOOST_AUTO_TEST_CASE(claimed_values_are_cut_to_64_characters) {
  Server s;
  std::string member, memberCut;  // "é" is two bytes, one character
  for (int i = 0; i < 100; ++i) member += "%C3%A9";
  for (int i = 0; i < 64; ++i) memberCut += "\xc3\xa9";
  const std::string body = "event=" + std::string(300, 'e') + "&auth[member_id]=" + member +
                           "&auth[domain]=" + std::string(200, 'd') + ".bitrix24.com";
  checkError(test::postForm(s.ingest, kPath, body), 401, "verification_failed");
  BOOST_REQUIRE(s.waitForRejections(1));
  // length() counts characters of text, on SQLite as on PostgreSQL.
  BOOST_TEST(s.q("SELECT length(event) || ' ' || length(member_id) || ' ' || length(domain) "
                 "FROM rejections") == "64 64 64");
  BOOST_TEST(s.q("SELECT member_id FROM rejections") == memberCut);
  BOOST_TEST(s.q("SELECT event FROM rejections") == std::string(64, 'E'));
  auto item = test::httpGet(s.query, "/api/v1/rejections").json()->getArray("items")->getObject(0);
  BOOST_TEST(item->getValue<std::string>("member_id") == memberCut);
  BOOST_TEST(item->getValue<std::string>("domain") == std::string(64, 'd'));
}

BOOST_AUTO_TEST_CASE(keep_rejections_keeps_only_the_newest) {
  Server s([](Settings& settings) { settings.ingest.keepRejections = 5; });
  for (int i = 1; i <= 12; ++i) {
    checkError(s.forged("portal-" + std::to_string(i)), 401, "verification_failed");
  }
  BOOST_REQUIRE(s.waitFor("SELECT max(id) FROM rejections", "12"));
  BOOST_TEST(s.count("rejections") == 5);
  BOOST_TEST(
      s.q(std::string("SELECT ") +
          (test::testBackend() == test::Backend::postgresql ? "string_agg" : "group_concat") +
          "(member_id, ',') FROM (SELECT member_id FROM rejections ORDER BY id) r") ==
      "portal-8,portal-9,portal-10,portal-11,portal-12");
}

BOOST_AUTO_TEST_CASE(keep_rejections_zero_records_none) {
  Server s([](Settings& settings) { settings.ingest.keepRejections = 0; });
  checkError(s.forged(), 401, "verification_failed");
  // A verified event after it: its batch would have carried the rejection.
  BOOST_REQUIRE_EQUAL(test::postForm(s.ingest, kPath, test::sample("01-ONAPPINSTALL.form")).status,
                      200);
  BOOST_TEST(s.count("rejections") == 0);
}

BOOST_AUTO_TEST_CASE(the_rejections_route_pages_newest_first_and_filters_by_member) {
  Server s;
  for (int i = 1; i <= 5; ++i) {
    checkError(s.forged(i % 2 ? "portal-odd" : "portal-even"), 401, "verification_failed");
  }
  BOOST_REQUIRE(s.waitForRejections(5));
  auto ids = [](const test::HttpResult& r) {
    std::string out;
    auto items = r.json()->getArray("items");
    for (std::size_t i = 0; i < items->size(); ++i) {
      out += (out.empty() ? "" : ",") + std::to_string(items->getObject(i)->getValue<int>("id"));
    }
    auto next = r.json()->get("next_after_id");
    return out + " next=" + (next.isEmpty() ? std::string("null") : next.toString());
  };
  test::HttpResult first = test::httpGet(s.query, "/api/v1/rejections?limit=2");
  BOOST_TEST(first.status == 200);
  BOOST_TEST(first.headers.at("Content-Type") == "application/json");
  BOOST_TEST(ids(first) == "5,4 next=4");
  BOOST_TEST(ids(test::httpGet(s.query, "/api/v1/rejections?limit=2&after_id=4")) == "3,2 next=2");
  BOOST_TEST(ids(test::httpGet(s.query, "/api/v1/rejections?after_id=2&limit=2")) == "1 next=null");
  BOOST_TEST(ids(test::httpGet(s.query, "/api/v1/rejections")) == "5,4,3,2,1 next=null");
  BOOST_TEST(ids(test::httpGet(s.query, "/api/v1/rejections?member_id=portal-even")) ==
             "4,2 next=null");
  BOOST_TEST(ids(test::httpGet(s.query, "/api/v1/rejections?member_id=nobody")) == " next=null");
  // Every field of SPEC §5, in its order, and nothing else.
  auto item = first.json()->getArray("items")->getObject(0);
  std::vector<std::string> names;
  item->getNames(names);
  std::sort(names.begin(), names.end());
  BOOST_TEST((names == std::vector<std::string>{"client_addr", "domain", "error", "event", "id",
                                                "member_id", "received_at", "status"}));
  BOOST_TEST(first.body.find(R"({"id":5,"received_at":"2026-01-01T10:00:00.000Z",)"
                             R"("client_addr":"127.0.0.1","status":401,)"
                             R"("error":"verification_failed","event":"ONCRMDEALADD",)"
                             R"("member_id":"portal-odd","domain":"acme-test.bitrix24.com"})") !=
             std::string::npos);
  BOOST_TEST(test::httpRequest(s.query, "HEAD", "/api/v1/rejections").status == 200);
}

BOOST_AUTO_TEST_CASE(bad_parameters_of_the_rejections_route_get_400_with_the_error_body) {
  Server s;
  for (const char* target : {"/api/v1/rejections?limit=abc", "/api/v1/rejections?limit=0",
                             "/api/v1/rejections?limit=1001", "/api/v1/rejections?after_id=-1",
                             "/api/v1/rejections?after_id=1.5", "/api/v1/rejections?member_id=",
                             "/api/v1/rejections?order=desc", "/api/v1/rejections?limit=1&limit=2",
                             "/api/v1/rejections?limit=%ZZ"}) {
    BOOST_TEST_CONTEXT(target) {
      checkError(test::httpGet(s.query, target), 400, "invalid_parameter");
    }
  }
  BOOST_TEST(test::httpRequest(s.query, "POST", "/api/v1/rejections", "x").status == 405);
  BOOST_TEST(test::httpGet(s.query, "/api/v1/rejections/1").status == 404);
  // The query listener records nothing: the next ingest rejection is the only row.
  checkError(s.forged(), 401, "verification_failed");
  BOOST_TEST(s.waitForRejections(1));
}

BOOST_AUTO_TEST_CASE(the_rejections_route_needs_the_bearer_token_when_one_is_set) {
  Server s([](Settings& settings) { settings.query.token = "query-secret-3b9f"; });
  test::HttpResult none = test::httpGet(s.query, "/api/v1/rejections");
  checkError(none, 401, "unauthorized");
  BOOST_TEST(none.headers.at("WWW-Authenticate").rfind("Bearer", 0) == 0);
  checkError(bearerGet(s, "/api/v1/rejections", "wrong"), 401, "unauthorized");
  test::HttpResult ok = bearerGet(s, "/api/v1/rejections?limit=20", "query-secret-3b9f");
  BOOST_TEST(ok.status == 200);
  BOOST_TEST(ok.body == R"({"items":[],"next_after_id":null})");
}

BOOST_AUTO_TEST_CASE(metrics_count_the_rejections_recorded) {
  Server s;
  for (int i = 0; i < 3; ++i) checkError(s.forged(), 401, "verification_failed");
  BOOST_REQUIRE(s.waitForRejections(3));
  // Counted by the writer right after its commit: read until it shows (bounded).
  std::string metrics;
  for (int i = 0; i < 1000; ++i) {
    metrics = test::httpGet(s.query, "/metrics").body;
    if (metrics.find("\nb24es_rejections_recorded_total 3\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  BOOST_TEST(metrics.find("\nb24es_rejections_recorded_total 3\n") != std::string::npos, metrics);
  BOOST_TEST(metrics.find("\nb24es_rejections_dropped_total 0\n") != std::string::npos);
}
