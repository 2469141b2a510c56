// Integration tests of ingest (SPEC §4): the real Service on port 0 with a temp database,
// real HTTP requests carrying the Bitrix24 samples, and the rows they leave behind. Runs on
// both backends (ingest_test on SQLite, ingest_test_pg on PostgreSQL; tests/test_backend.h):
// the SQL of a check goes through the helpers below where the dialects differ.
#define BOOST_TEST_MODULE ingest
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/AutoPtr.h>
#include <Poco/Channel.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/Logger.h>
#include <Poco/Message.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <libpq-fe.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "service.h"
#include "test_support.h"

using namespace b24es;

namespace {

const std::string kPath = "/bitrix24/events";
const std::string kMember = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";

// Every token value in the samples: none may appear in a response, a log line or events.
const std::vector<std::string> kSecrets = {
    "b053566900b7e2a1005a3c4d00000001f8d1386963934cba6bd69a4a9fb6c316c0ac26",
    "a0d27d6900b7e2a1005a3c4d000000017e06216efe7d340cfddfee5c84ab5ad9fe1d3b",
    "0856566900b7e2a1005a3c4d000000096d1c33ee95d56cac0296ea4a555d266d4ababb",
    "f4a8c2e61b9d7035e8c4a1f6d2b97e53", "FORGED-TOKEN-VALUE"};

bool onPostgresql() { return test::testBackend() == test::Backend::postgresql; }

// The value at `keys` in `data` as text: json_extract on SQLite, #>> on PostgreSQL's jsonb.
std::string dataField(const std::vector<std::string>& keys) {
  std::string sqlite = "json_extract(data, '$", pg = "(data #>> '{";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    sqlite += "." + keys[i];
    pg += (i ? "," : "") + keys[i];
  }
  return onPostgresql() ? pg + "}')" : sqlite + "')";
}

// JSON text with its object keys sorted and no spaces: jsonb prints `data` in its own key order
// with spaces (README, PostgreSQL), so stored data is compared as JSON, not as text.
std::string canonicalJson(const std::string& text) {
  Poco::JSON::Parser parser;  // objects into sorted maps: the order of the input is dropped
  std::ostringstream out;
  // Wrapped in a list: POCO's parser takes only an object or a list at the top, and stored
  // data may be a string (issue 12).
  Poco::JSON::Stringifier::stringify(parser.parse("[" + text + "]"), out);
  const std::string list = out.str();
  return list.substr(1, list.size() - 2);
}

// Every column of every row of `table` as one text, for the secrets scan. SQLite has no row to
// text conversion, so its columns are listed from pragma_table_info and concatenated.
std::string tableText(const Settings& settings, const std::string& table) {
  if (onPostgresql()) {
    return test::queryScalar(settings,
                             "SELECT coalesce(string_agg(t::text, ' '), '') FROM " + table + " t");
  }
  std::string row;
  const std::string columns = test::queryScalar(
      settings, "SELECT group_concat(name, ',') FROM pragma_table_info('" + table + "')");
  std::istringstream names(columns);
  for (std::string name; std::getline(names, name, ',');) {
    row += (row.empty() ? "" : " || ' ' || ") + std::string("coalesce(CAST(") + name +
           " AS text), '')";
  }
  return test::queryScalar(settings,
                           "SELECT ifnull(group_concat(" + row + ", ' '), '') FROM " + table);
}

// A session on the PostgreSQL database that holds a transaction open across statements, to
// stand in the writer's way (pgQuery opens a connection per statement).
class PgSession {
 public:
  explicit PgSession(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(conn_));
  }
  ~PgSession() { PQfinish(conn_); }
  void exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    const std::string error = ok ? "" : PQresultErrorMessage(r);
    PQclear(r);
    if (!ok) throw std::runtime_error(sql + ": " + error);
  }

 private:
  PGconn* conn_;
};

// Holds the database's write lock from another connection until release(), so that the
// service's writer waits with its batch: BEGIN IMMEDIATE on SQLite; on PostgreSQL a lock on
// events that conflicts with the writer's INSERT (and not with reads).
class WriteBlocker {
 public:
  explicit WriteBlocker(const Settings& settings) {
    if (onPostgresql()) {
      pg_ = std::make_unique<PgSession>(settings.pg.url);
      pg_->exec("BEGIN");
      pg_->exec("LOCK TABLE events IN EXCLUSIVE MODE");
    } else {
      Poco::Data::SQLite::Connector::registerConnector();
      sqlite_ = std::make_unique<Poco::Data::Session>("SQLite", settings.db.path);
      *sqlite_ << "BEGIN IMMEDIATE", Poco::Data::Keywords::now;
    }
  }
  ~WriteBlocker() {
    try {
      release();
    } catch (const std::exception&) {
      // The case failed already; the session closes with it.
    }
  }
  void release() {
    if (released_) return;
    released_ = true;
    if (pg_) {
      pg_->exec("ROLLBACK");
    } else {
      *sqlite_ << "ROLLBACK", Poco::Data::Keywords::now;
    }
  }

 private:
  std::unique_ptr<PgSession> pg_;
  std::unique_ptr<Poco::Data::Session> sqlite_;
  bool released_ = false;
};

// Collects every log line of the process for the secrets scan.
class CapturingChannel final : public Poco::Channel {
 public:
  void log(const Poco::Message& msg) override {
    std::lock_guard<std::mutex> lock(mutex_);
    text_ += msg.getSource() + ": " + msg.getText() + "\n";
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }

 private:
  std::mutex mutex_;
  std::string text_;
};

struct Server {
  explicit Server(std::function<void(Settings&)> adjust = {}) : log(new CapturingChannel) {
    // setChannel("") reaches the loggers created by earlier test cases too.
    Poco::Logger::setChannel("", log);
    Poco::Logger::setLevel("", Poco::Message::PRIO_DEBUG);
    settings = test::testSettings(dir);
    if (adjust) adjust(settings);
    service = std::make_unique<Service>(settings, clock);
    service->start();
    url = service->ingestUrl();
  }
  ~Server() { service->stop(); }

  test::HttpResult post(const std::string& sampleName) {
    bool json = sampleName.size() > 5 && sampleName.substr(sampleName.size() - 5) == ".json";
    test::HttpResult r = json ? test::postJson(url, kPath, test::sample(sampleName))
                              : test::postForm(url, kPath, test::sample(sampleName));
    responses += r.body + "\n";
    return r;
  }
  test::HttpResult postForm(const std::string& body) {
    test::HttpResult r = test::postForm(url, kPath, body);
    responses += r.body + "\n";
    return r;
  }
  std::string q(const std::string& sql) { return test::queryScalar(settings, sql); }
  int events() { return std::stoi(q("SELECT count(*) FROM events")); }
  // Waits (10 s at most) until `n` rejections are written: the writer commits them shortly
  // after the answer, with the next batch. Not a timing assertion: the count is checked after.
  int rejections(int n) {
    int have = 0;
    for (int i = 0; i < 1000 && (have = std::stoi(q("SELECT count(*) FROM rejections"))) < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return have;
  }

  test::TempDir dir;
  test::FakeClock clock;
  Settings settings;
  Poco::AutoPtr<CapturingChannel> log;
  std::unique_ptr<Service> service;
  std::string url;
  std::string responses;
};

void checkError(const test::HttpResult& r, int status, const std::string& code) {
  BOOST_TEST(r.status == status);
  BOOST_TEST(r.headers.at("Content-Type") == "application/json");
  auto body = r.json();
  BOOST_TEST(body->getValue<std::string>("error") == code);
  BOOST_TEST(!body->getValue<std::string>("message").empty());
  BOOST_TEST(body->size() == 2u);
}

void checkNoSecrets(const std::string& where, const std::string& text) {
  for (const std::string& secret : kSecrets) {
    BOOST_TEST(text.find(secret) == std::string::npos, where << " contains a secret");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(install_then_events_are_stored_with_their_columns) {
  Server s;
  test::HttpResult r = s.post("01-ONAPPINSTALL.form");
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.body == R"({"status":"stored","id":1})");
  BOOST_TEST(s.post("03-ONCRMDEALADD.form").body == R"({"status":"stored","id":2})");
  for (const char* name :
       {"06-ONCRMCONTACTADD.form", "09-ONCRMTIMELINECOMMENTADD.form", "12-ONCRMDYNAMICITEMADD.form",
        "21-ONCRMDEALUPDATE-notokens.form", "41-ONCRMDEALADD.json"}) {
    BOOST_TEST(s.post(name).status == 200, name);
  }
  BOOST_TEST(s.events() == 7);
  BOOST_TEST(s.q("SELECT event || '|' || member_id || '|' || domain || '|' || event_handler_id "
                 "|| '|' || ts || '|' || received_at || '|' || user_id || '|' || entity_id || "
                 "'|' || " +
                 dataField({"FIELDS", "ID"}) + " FROM events WHERE id = 2") ==
             "ONCRMDEALADD|" + kMember +
                 "|acme-test.bitrix24.com|185|1767262200|1767261600000|9|7405|7405");
  BOOST_TEST(s.q("SELECT entity_id || ' ' || entity_type_id FROM events "
                 "WHERE event = 'ONCRMDYNAMICITEMADD'") == "22 1220");
  BOOST_TEST(s.q("SELECT entity_id FROM events WHERE event = 'ONCRMTIMELINECOMMENTADD'") == "999");
  BOOST_TEST(s.q("SELECT coalesce(CAST(user_id AS text), 'null') FROM events "
                 "WHERE event = 'ONCRMDEALUPDATE'") == "null");
  BOOST_TEST(canonicalJson(s.q("SELECT data FROM events WHERE id = 1")) ==
             canonicalJson(R"({"VERSION":"1","ACTIVE":"Y","INSTALLED":"Y","LANGUAGE_ID":"en"})"));
  // The JSON delivery of the deal stores the same columns as the form delivery.
  BOOST_TEST(s.q("SELECT count(DISTINCT CAST(data AS text) || entity_id || user_id || ts) "
                 "FROM events WHERE event = 'ONCRMDEALADD'") == "1");
  // Tokens: the installer's with its refresh token, user 9's from the events.
  BOOST_TEST(s.q("SELECT source || ' ' || CAST(refresh_token IS NOT NULL AS integer) FROM tokens "
                 "WHERE user_id = 1") == "install 1");
  BOOST_TEST(s.q("SELECT source || ' ' || CAST(refresh_token IS NULL AS integer) || ' ' || "
                 "expires_at FROM tokens WHERE user_id = 9") == "event 1 1767266340");
  const std::string events = tableText(s.settings, "events");
  BOOST_TEST(events.find("acme-test.bitrix24.com") != std::string::npos);  // the scan sees rows
  checkNoSecrets("events", events);
  checkNoSecrets("responses", s.responses);
  checkNoSecrets("log", s.log->text());
}

BOOST_AUTO_TEST_CASE(json_install_sample_registers_the_portal) {
  Server s;
  BOOST_TEST(s.post("40-ONAPPINSTALL.json").status == 200);
  BOOST_TEST(s.post("41-ONCRMDEALADD.json").status == 200);
  BOOST_TEST(s.q("SELECT status || ' ' || scope FROM portals") ==
             "F crm,task,imbot,im,user,calendar,placement");
}

BOOST_AUTO_TEST_CASE(every_delivery_is_stored_even_when_repeated) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  s.post("03-ONCRMDEALADD.form");
  s.post("03-ONCRMDEALADD.form");
  BOOST_TEST(s.q("SELECT count(*) FROM events WHERE event = 'ONCRMDEALADD'") == "2");
}

BOOST_AUTO_TEST_CASE(forged_application_token_gets_401_and_stores_nothing) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  std::string forged = test::sample("03-ONCRMDEALADD.form");
  forged.replace(forged.find("f4a8c2e61b9d7035e8c4a1f6d2b97e53"), 32, "FORGED-TOKEN-VALUE");
  checkError(s.postForm(forged), 401, "verification_failed");
  BOOST_TEST(s.events() == 1);
  BOOST_TEST(s.q("SELECT count(*) FROM tokens") == "1");
  BOOST_TEST(s.log->text().find("verification_failed") != std::string::npos);
  // The 401 is recorded without the forged token (nor any other).
  BOOST_TEST(s.rejections(1) == 1);
  const std::string rejections = tableText(s.settings, "rejections");
  BOOST_TEST(rejections.find("verification_failed") != std::string::npos);
  checkNoSecrets("rejections", rejections);
  checkNoSecrets("events", tableText(s.settings, "events"));
  checkNoSecrets("responses", s.responses);
  checkNoSecrets("log", s.log->text());
}

BOOST_AUTO_TEST_CASE(event_of_an_unknown_portal_gets_401) {
  Server s;
  checkError(s.post("03-ONCRMDEALADD.form"), 401, "verification_failed");
  BOOST_TEST(s.events() == 0);
  BOOST_TEST(s.q("SELECT count(*) FROM portals") == "0");
}

BOOST_AUTO_TEST_CASE(second_install_with_another_token_cannot_take_over) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  std::string takeover = test::sample("01-ONAPPINSTALL.form");
  takeover.replace(takeover.find("f4a8c2e61b9d7035e8c4a1f6d2b97e53"), 32, "FORGED-TOKEN-VALUE");
  checkError(s.postForm(takeover), 401, "verification_failed");
  BOOST_TEST(s.q("SELECT application_token FROM portals") == "f4a8c2e61b9d7035e8c4a1f6d2b97e53");
  BOOST_TEST(s.events() == 1);
}

BOOST_AUTO_TEST_CASE(uninstall_keeps_events_and_then_the_old_token_is_refused) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  s.post("03-ONCRMDEALADD.form");
  BOOST_TEST(s.post("32-ONAPPUNINSTALL.form").status == 200);
  BOOST_TEST(s.q("SELECT count(*) FROM tokens") == "0");
  BOOST_TEST(s.q("SELECT CAST(uninstalled_at IS NOT NULL AS integer) FROM portals") == "1");
  checkError(s.post("03-ONCRMDEALADD.form"), 401, "verification_failed");
  BOOST_TEST(s.events() == 3);
  BOOST_TEST(s.post("01-ONAPPINSTALL.form").status == 200);
  BOOST_TEST(s.post("03-ONCRMDEALADD.form").status == 200);
}

BOOST_AUTO_TEST_CASE(static_application_token_admits_a_portal_without_install) {
  Server s([](Settings& settings) {
    settings.ingest.staticTokens = {"f4a8c2e61b9d7035e8c4a1f6d2b97e53"};
  });
  BOOST_TEST(s.post("03-ONCRMDEALADD.form").status == 200);
  BOOST_TEST(s.q("SELECT domain || ' ' || coalesce(application_token, 'none') FROM portals") ==
             "acme-test.bitrix24.com none");
}

// Issue 13: a static token uninstalled an installed portal, an attacker's ONAPPINSTALL then
// registered the portal with the attacker's token, and the real portal's events got 401.
BOOST_AUTO_TEST_CASE(static_token_cannot_uninstall_or_take_over_an_installed_portal) {
  const std::string staticToken = "static-token-of-the-app-000000001";
  Server s([&](Settings& settings) { settings.ingest.staticTokens = {staticToken}; });
  BOOST_TEST(s.post("01-ONAPPINSTALL.form").status == 200);
  const std::string realToken = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";
  auto withToken = [&](const std::string& sample, const std::string& token) {
    std::string body = test::sample(sample);
    body.replace(body.find(realToken), realToken.size(), token);
    return body;
  };
  checkError(s.postForm(withToken("32-ONAPPUNINSTALL.form", staticToken)), 401,
             "verification_failed");
  checkError(s.postForm(withToken("03-ONCRMDEALADD.form", staticToken)), 401,
             "verification_failed");
  BOOST_TEST(s.q("SELECT CAST(uninstalled_at IS NULL AS integer) FROM portals") == "1");
  BOOST_TEST(s.q("SELECT count(*) FROM tokens") == "1");
  checkError(s.postForm(withToken("01-ONAPPINSTALL.form", "FORGED-TOKEN-VALUE")), 401,
             "verification_failed");
  BOOST_TEST(s.q("SELECT application_token FROM portals") == realToken);
  BOOST_TEST(s.post("03-ONCRMDEALADD.form").status == 200);
  BOOST_TEST(s.events() == 2);
  // After a real uninstall the portal's old row still says it was installed: the static token
  // stays refused until a new install.
  BOOST_TEST(s.post("32-ONAPPUNINSTALL.form").status == 200);
  checkError(s.postForm(withToken("03-ONCRMDEALADD.form", staticToken)), 401,
             "verification_failed");
  BOOST_TEST(s.events() == 3);
  BOOST_TEST(s.rejections(4) == 4);  // the four 401s above
  const std::string rejections = tableText(s.settings, "rejections");
  BOOST_TEST(rejections.find("verification_failed") != std::string::npos);
  checkNoSecrets("rejections", rejections);
  BOOST_TEST(rejections.find(staticToken) == std::string::npos);
  checkNoSecrets("log", s.log->text());
}

// Issue 13: a member_id holding a newline and a timestamp forged a log line; ESC bytes passed.
BOOST_AUTO_TEST_CASE(request_values_cannot_forge_or_colour_a_log_line) {
  Server s;
  std::string body = test::sample("03-ONCRMDEALADD.form");
  const std::string member = "auth%5Bmember_id%5D=" + kMember;
  body.replace(body.find(member), member.size(),
               "auth%5Bmember_id%5D=x%0A2026-12-01T00%3A00%3A00.000Z%20Error%20b24es%3A%20FORGED%"
               "20LINE%1B%5B2J" +
                   std::string(400, 'm'));
  checkError(s.postForm(body), 401, "verification_failed");
  const std::string log = s.log->text();
  const std::string escaped = "x\\n2026-12-01T00:00:00.000Z Error b24es: FORGED LINE\\x1b[2J";
  BOOST_TEST(log.find("member_id=" + escaped + std::string(256 - 55, 'm') + "...") !=
             std::string::npos);  // escaped, and cut after 256 characters of the value
  BOOST_TEST(log.find(std::string(256 - 55 + 1, 'm')) == std::string::npos);
  for (std::size_t at = log.find('\n'); at != std::string::npos; at = log.find('\n', at + 1)) {
    BOOST_TEST(log.compare(at + 1, 4, "2026") != 0, "a log line starts with the forged time");
  }
  BOOST_TEST(log.find('\x1b') == std::string::npos);
  // A path is a request value too.
  test::httpRequest(s.url, "GET", "/x%1b%5b2Jy");
  BOOST_TEST(s.log->text().find('\x1b') == std::string::npos);
}

// Issue 13: an unauthenticated client installed 20,000 random portals in 17 s.
BOOST_AUTO_TEST_CASE(installs_of_new_portals_over_the_hourly_limit_get_429_even_after_a_restart) {
  auto settingsOf = [](Settings& settings) { settings.ingest.maxNewPortals = 2; };
  Server s(settingsOf);
  auto install = [&](int n) {
    std::string body = test::sample("01-ONAPPINSTALL.form");
    body.replace(body.find(kMember), kMember.size(), "portal-" + std::to_string(n));
    return s.postForm(body);
  };
  BOOST_TEST(install(1).status == 200);
  s.clock.advanceSeconds(600);
  BOOST_TEST(install(2).status == 200);
  test::HttpResult limited = install(3);
  checkError(limited, 429, "too_many_new_portals");
  // The first install leaves the window 3000 s from now.
  BOOST_TEST(limited.headers.at("Retry-After") == "3000");
  BOOST_TEST(s.q("SELECT count(*) FROM portals WHERE member_id = 'portal-3'") == "0");
  BOOST_TEST(s.events() == 2);
  // Known portals are never limited: a repeated install, or a reinstall after an uninstall.
  BOOST_TEST(install(1).status == 200);
  BOOST_TEST(s.events() == 3);

  // The count lives in the database: a restarted server keeps refusing.
  s.service->stop();
  s.service = std::make_unique<Service>(s.settings, s.clock);
  s.service->start();
  s.url = s.service->ingestUrl();
  checkError(install(3), 429, "too_many_new_portals");
  s.clock.advanceSeconds(3000);
  BOOST_TEST(install(3).status == 200);
  checkError(install(4), 429, "too_many_new_portals");
  BOOST_TEST(s.q("SELECT count(*) FROM portals") == "3");
  BOOST_TEST(s.log->text().find("429 too_many_new_portals") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bot_tokens_go_to_the_tokens_table_not_to_events) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  std::string body =
      "event=ONIMBOTMESSAGEADD&data%5BBOT%5D%5B539%5D%5Baccess_token%5D=BOTACCESS539&"
      "data%5BBOT%5D%5B539%5D%5Brefresh_token%5D=BOTREFRESH539&data%5BBOT%5D%5B539%5D%5B"
      "expires%5D=1767265200&data%5BBOT%5D%5B539%5D%5BAUTH%5D%5Baccess_token%5D=BOTACCESS539&"
      "data%5BPARAMS%5D%5BMESSAGE%5D=hello&auth%5Bmember_id%5D=" +
      kMember + "&auth%5Bapplication_token%5D=f4a8c2e61b9d7035e8c4a1f6d2b97e53";
  BOOST_TEST(s.postForm(body).status == 200);
  BOOST_TEST(s.q("SELECT access_token || ' ' || refresh_token FROM tokens WHERE user_id = 539") ==
             "BOTACCESS539 BOTREFRESH539");
  std::string data = s.q("SELECT data FROM events WHERE event = 'ONIMBOTMESSAGEADD'");
  BOOST_TEST(data.find("BOTACCESS539") == std::string::npos);
  BOOST_TEST(data.find("BOTREFRESH539") == std::string::npos);
  BOOST_TEST(s.q("SELECT " + dataField({"BOT", "539", "AUTH", "access_token"}) +
                 " FROM events WHERE event = 'ONIMBOTMESSAGEADD'") == "[redacted]");
  const std::string events = tableText(s.settings, "events");  // every column, not only data
  BOOST_TEST(events.find("BOTACCESS539") == std::string::npos);
  BOOST_TEST(events.find("BOTREFRESH539") == std::string::npos);
  BOOST_TEST(s.log->text().find("BOTACCESS539") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(malformed_bodies_get_400_and_store_nothing) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  checkError(test::postJson(s.url, kPath, "{\"event\":"), 400, "malformed_body");
  checkError(test::postJson(s.url, kPath, "[1,2]"), 400, "malformed_body");
  checkError(s.postForm("auth%5Bmember_id%5D=" + kMember), 400, "missing_field");
  checkError(s.postForm("event=ONCRMDEALADD&auth%5Bdomain%5D=x"), 400, "missing_field");
  std::string deep = "event=X&auth[member_id]=m&data";
  for (int i = 0; i < 33; ++i) deep += "[a]";
  checkError(s.postForm(deep + "=1"), 400, "nesting_too_deep");
  std::string many = "event=X&auth[member_id]=m";
  for (int i = 0; i < 10000; ++i) many += "&k" + std::to_string(i) + "=v";
  checkError(s.postForm(many), 400, "too_many_fields");
  BOOST_TEST(s.events() == 1);
}

BOOST_AUTO_TEST_CASE(body_over_the_limit_gets_413_and_stores_nothing) {
  Server s([](Settings& settings) { settings.ingest.maxBodyBytes = 1000; });
  s.post("01-ONAPPINSTALL.form");  // 983 bytes: under the limit
  std::string big =
      test::sample("03-ONCRMDEALADD.form") + "&data%5Bpad%5D=" + std::string(500, 'x');
  checkError(s.postForm(big), 413, "body_too_large");
  // Without Content-Length (chunked), the limit is enforced while reading.
  Poco::URI uri(s.url);
  Poco::Net::HTTPClientSession session(uri.getHost(), uri.getPort());
  Poco::Net::HTTPRequest request("POST", kPath, Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentType("application/x-www-form-urlencoded");
  request.setChunkedTransferEncoding(true);
  session.sendRequest(request) << big;
  Poco::Net::HTTPResponse response;
  std::string body;
  Poco::StreamCopier::copyToString(session.receiveResponse(response), body);
  BOOST_TEST(response.getStatus() == 413);
  BOOST_TEST(body.find("body_too_large") != std::string::npos);
  BOOST_TEST(s.events() == 1);
}

BOOST_AUTO_TEST_CASE(other_content_types_get_415) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  checkError(
      test::httpRequest(s.url, "POST", kPath, test::sample("03-ONCRMDEALADD.form"), "text/plain"),
      415, "unsupported_media_type");
  checkError(test::httpRequest(s.url, "POST", kPath, test::sample("03-ONCRMDEALADD.form")), 415,
             "unsupported_media_type");
  BOOST_TEST(s.events() == 1);
}

BOOST_AUTO_TEST_CASE(content_type_with_charset_is_accepted) {
  Server s;
  BOOST_TEST(test::httpRequest(s.url, "POST", kPath, test::sample("01-ONAPPINSTALL.form"),
                               "application/x-www-form-urlencoded; charset=UTF-8")
                 .status == 200);
}

BOOST_AUTO_TEST_CASE(other_methods_get_405_with_allow) {
  Server s;
  for (const char* method : {"GET", "PUT", "DELETE"}) {
    test::HttpResult r = test::httpRequest(s.url, method, kPath);
    checkError(r, 405, "method_not_allowed");
    BOOST_TEST(r.headers.at("Allow") == "POST");
  }
  // A body sent with another method is not stored either.
  checkError(test::httpRequest(s.url, "PUT", kPath, test::sample("01-ONAPPINSTALL.form"),
                               "application/x-www-form-urlencoded"),
             405, "method_not_allowed");
  BOOST_TEST(s.events() == 0);
  BOOST_TEST(s.q("SELECT count(*) FROM portals") == "0");
}

BOOST_AUTO_TEST_CASE(unknown_path_gets_404) {
  Server s;
  checkError(test::postForm(s.url, "/other", test::sample("01-ONAPPINSTALL.form")), 404,
             "not_found");
  BOOST_TEST(s.events() == 0);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_kept_as_replacement_characters) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  std::string body = test::sample("03-ONCRMDEALADD.form") + "&data%5BTITLE%5D=a%FFb%C3%A9";
  BOOST_TEST(s.postForm(body).status == 200);
  // Valid JSON (the parse throws otherwise), the bad byte replaced.
  BOOST_CHECK_NO_THROW(canonicalJson(s.q("SELECT data FROM events WHERE id = 2")));
  BOOST_TEST(s.q("SELECT " + dataField({"TITLE"}) + " FROM events WHERE id = 2") ==
             "a\xEF\xBF\xBD"
             "b\xC3\xA9");
}

BOOST_AUTO_TEST_CASE(healthz_answers_on_both_listeners) {
  Server s;
  BOOST_TEST(test::httpGet(s.url, "/healthz").body == R"({"status":"ok"})");
  BOOST_TEST(test::httpGet(s.service->queryUrl(), "/healthz").status == 200);
  checkError(test::httpGet(s.service->queryUrl(), "/nothing"), 404, "not_found");
  checkError(test::httpRequest(s.service->queryUrl(), "POST", "/healthz"), 405,
             "method_not_allowed");
}

BOOST_AUTO_TEST_CASE(commit_failure_answers_503_with_retry_after_and_healthz_fails) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  if (onPostgresql()) {
    // The writer's statements name `events`; renamed, they fail at their next planning.
    test::queryScalar(s.settings, "ALTER TABLE events RENAME TO events_gone");
  } else {
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::Session admin("SQLite", s.settings.db.path);
    // The table behind the events view (migration 0011).
    admin << "ALTER TABLE event_rows RENAME TO events_gone", Poco::Data::Keywords::now;
  }
  test::HttpResult r = s.post("03-ONCRMDEALADD.form");
  checkError(r, 503, "storage_unavailable");
  BOOST_TEST(r.headers.at("Retry-After") == "1");
  BOOST_TEST(s.log->text().find("storage_unavailable") != std::string::npos);
  checkError(test::httpGet(s.url, "/healthz"), 503, "unhealthy");
  BOOST_TEST(s.q("SELECT count(*) FROM events_gone") == "1");
  checkNoSecrets("log", s.log->text());
}

// Issue 6 refused these with an internal container limit; issue 12 (SPEC §4 v2): a body within
// 32 levels and 10,000 pairs is never refused for its shape, so both are stored.
BOOST_AUTO_TEST_CASE(regression_issue12_body_nesting_many_maps_within_the_limits_is_stored) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  const std::string auth =
      "&auth[member_id]=" + kMember + "&auth[application_token]=f4a8c2e61b9d7035e8c4a1f6d2b97e53";
  std::string nested = "event=ONCRMDEALADD" + auth;
  // 9,000 pairs of 32 levels: 288,000 maps, as much as fits in the 1 MiB body limit.
  for (int i = 0; i < 9000; ++i) {
    nested += "&data[n" + std::to_string(i) + "]";
    for (int level = 1; level < 32; ++level) nested += "[b]";
    nested += "=v";
  }
  BOOST_TEST(s.postForm(nested).status == 200);
  std::string json = "{\"event\":\"ONCRMDEALADD\",\"auth\":{\"member_id\":\"" + kMember +
                     "\",\"application_token\":\"f4a8c2e61b9d7035e8c4a1f6d2b97e53\"},\"data\":[";
  for (int i = 0; i < 9990; ++i)
    json += (i > 0 ? ",[" : "[") + std::string(30, '[') + std::string(31, ']');
  BOOST_TEST(test::postJson(s.url, kPath, json + "]}").status == 200);
  BOOST_TEST(s.events() == 3);
  BOOST_TEST(s.q(std::string("SELECT ") +
                 (onPostgresql() ? "jsonb_array_length" : "json_array_length") +
                 "(data) FROM events WHERE id = 3") == "9990");
  std::vector<std::string> path = {"n8999"};
  path.resize(32, "b");
  BOOST_TEST(s.q("SELECT " + dataField(path) + " FROM events WHERE id = 2") == "v");
}

namespace {

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

// The one response in `answer` (status 0 when there is none).
test::HttpResult parseAnswer(const std::string& answer) {
  test::HttpResult r;
  std::size_t end = answer.find("\r\n\r\n");
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return r;
  r.status = std::stoi(answer.substr(9, 3));
  for (std::size_t line = answer.find("\r\n") + 2; line < end;) {
    std::size_t next = answer.find("\r\n", line);
    std::size_t colon = answer.find(": ", line);
    if (colon < next)
      r.headers[answer.substr(line, colon - line)] = answer.substr(colon + 2, next - colon - 2);
    line = next + 2;
  }
  r.body = answer.substr(end + 4);
  return r;
}

// Sends `raw`, which POCO cannot parse as a request, and checks the answer: 400 with the JSON
// error body, not quoting the request, and the connection closed after it.
void checkMalformedRequest(const std::string& url, const std::string& name,
                           const std::string& raw) {
  BOOST_TEST_CONTEXT(name) {
    std::string answer = rawExchange(url, raw);
    test::HttpResult r = parseAnswer(answer);
    BOOST_TEST(r.status == 400, "answer: " << answer.substr(0, 300));
    BOOST_TEST(r.headers["Content-Type"] == "application/json");
    if (r.status != 400 || r.headers["Content-Type"] != "application/json") return;
    checkError(r, 400, "malformed_request");
    BOOST_TEST(r.headers["Connection"] == "Close");
    BOOST_TEST(r.body.find("aaaa") == std::string::npos);
    BOOST_TEST(r.body.find("NOT-AN-HTTP") == std::string::npos);
  }
}

// Headers of a valid delivery of the deal sample, after the request line.
std::string dealHeaders(const std::string& body) {
  return "Host: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n";
}

}  // namespace

// POCO's own loop answered these with an empty 400 body, and served a request whose version is
// any word of up to 8 bytes (echoing it as the response's version).
BOOST_AUTO_TEST_CASE(regression_issue6_garbage_request_line_gets_400_json_and_stores_nothing) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  const std::string body = test::sample("03-ONCRMDEALADD.form");
  checkMalformedRequest(s.url, "method too long",
                        "THIS-IS-NOT-AN-HTTP-REQUEST-LINE-AT-ALL-0123456789\r\n\r\n");
  checkMalformedRequest(s.url, "method alone", "POST\r\n\r\n");
  checkMalformedRequest(s.url, "not HTTP/1.x",
                        "POST /bitrix24/events FOO/1.1\r\n" + dealHeaders(body) + "\r\n" + body);
  BOOST_TEST(s.events() == 1);
  BOOST_TEST(s.log->text().find("400 malformed_request") != std::string::npos);
}

// POCO's own loop did not answer at all: the number parser's exception ended the connection.
BOOST_AUTO_TEST_CASE(regression_issue6_content_length_that_is_not_a_number_gets_400_json) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  const std::string body = test::sample("03-ONCRMDEALADD.form");
  for (const std::string length : {"abc", "12x", "-1", "-5"}) {
    checkMalformedRequest(s.url, "Content-Length: " + length,
                          "POST /bitrix24/events HTTP/1.1\r\nHost: x\r\n"
                          "Content-Type: application/x-www-form-urlencoded\r\n"
                          "Content-Length: " +
                              length + "\r\n\r\n" + body);
  }
  BOOST_TEST(s.events() == 1);
}

// POCO reads header values up to 8192 bytes, names up to 256 and 100 fields; its own loop
// answered more with an empty 400 body.
BOOST_AUTO_TEST_CASE(regression_issue6_header_over_pocos_limits_gets_400_json_and_stores_nothing) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  const std::string body = test::sample("03-ONCRMDEALADD.form");
  const std::string start = "POST /bitrix24/events HTTP/1.1\r\n" + dealHeaders(body);
  checkMalformedRequest(s.url, "value of 9000 bytes",
                        start + "X-Long: " + std::string(9000, 'a') + "\r\n\r\n" + body);
  // Far over the limit: the server stops reading at the limit, answers, and must not reset the
  // connection before the client has read the answer.
  checkMalformedRequest(s.url, "value of 200000 bytes",
                        start + "X-Long: " + std::string(200000, 'a') + "\r\n\r\n" + body);
  checkMalformedRequest(s.url, "name of 300 bytes",
                        start + std::string(300, 'N') + ": v\r\n\r\n" + body);
  std::string many = start;
  for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  checkMalformedRequest(s.url, "101 more fields", many + "\r\n" + body);
  BOOST_TEST(s.events() == 1);
}

BOOST_AUTO_TEST_CASE(regression_issue6_body_shorter_than_its_content_length_is_not_stored) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  std::string body = test::sample("03-ONCRMDEALADD.form");
  std::string answer =
      rawExchange(s.url,
                  "POST /bitrix24/events HTTP/1.1\r\nHost: x\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                      std::to_string(body.size() + 500) + "\r\n\r\n" + body);
  BOOST_TEST(answer.rfind("HTTP/1.1 400", 0) == 0u, answer);
  BOOST_TEST(answer.find("\"error\":\"malformed_body\"") != std::string::npos, answer);
  BOOST_TEST(s.events() == 1);
}

// Issue 12 (SPEC §4 v2, amended): data that PHP decodes as a list or a string is stored as it
// is, with null derived columns; it never makes a verified event fail.
BOOST_AUTO_TEST_CASE(regression_issue12_data_that_is_a_list_or_a_string_is_stored_as_such) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  const std::string auth = "&auth%5Bmember_id%5D=" + kMember +
                           "&auth%5Bapplication_token%5D=f4a8c2e61b9d7035e8c4a1f6d2b97e53";
  BOOST_TEST(s.postForm("event=ONCRMDEALADD&data=scalar" + auth).status == 200);
  BOOST_TEST(s.postForm("event=ONCRMDEALADD&data%5B0%5D=a&data%5B1%5D%5BID%5D=5" + auth).status ==
             200);
  BOOST_TEST(test::postJson(s.url, kPath,
                            "{\"event\":\"X\",\"data\":[1,2],\"auth\":{\"member_id\":\"" + kMember +
                                "\",\"application_token\":\"f4a8c2e61b9d7035e8c4a1f6d2b97e53\"}}")
                 .status == 200);
  BOOST_TEST(s.events() == 4);
  // Compared as JSON: jsonb prints `["a", {"ID": "5"}]`.
  BOOST_TEST(canonicalJson(s.q("SELECT data FROM events WHERE id = 2")) == "\"scalar\"");
  BOOST_TEST(canonicalJson(s.q("SELECT data FROM events WHERE id = 3")) == R"(["a",{"ID":"5"}])");
  BOOST_TEST(canonicalJson(s.q("SELECT data FROM events WHERE id = 4")) == "[1,2]");
  BOOST_TEST(s.q("SELECT count(*) FROM events WHERE id > 1 AND entity_id IS NULL") == "3");
}

BOOST_AUTO_TEST_CASE(regression_issue12_onappmethodconfirm_token_never_reaches_the_events_table) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  const std::string body =
      "event=ONAPPMETHODCONFIRM&data%5BMETHOD%5D=crm.deal.add&"
      "data%5BTOKEN%5D=c0nf1rmT0ken42&data%5BCONFIRMED%5D=1&"
      "data%5BEXTRA%5D%5BClient_Secret%5D=s3cr3tV4lue&auth%5Bmember_id%5D=" +
      kMember + "&auth%5Bapplication_token%5D=f4a8c2e61b9d7035e8c4a1f6d2b97e53";
  BOOST_TEST(s.postForm(body).status == 200);
  BOOST_TEST(s.q("SELECT " + dataField({"TOKEN"}) + " FROM events WHERE id = 2") == "[redacted]");
  const std::string events = tableText(s.settings, "events");
  for (const char* secret : {"c0nf1rmT0ken42", "s3cr3tV4lue"}) {
    BOOST_TEST(events.find(secret) == std::string::npos, secret);
  }
  BOOST_TEST(s.log->text().find("c0nf1rmT0ken42") == std::string::npos);
}

// The ingest listener's HTTP transport (server/http_server.cpp): what POCO's server did for
// it, and what a loop that buffers requests must get right besides.
namespace {

Poco::Net::StreamSocket connectTo(const std::string& url) {
  Poco::URI uri(url);
  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress(uri.getHost(), uri.getPort()));
  socket.setReceiveTimeout(Poco::Timespan(30, 0));
  return socket;
}

void sendAll(Poco::Net::StreamSocket& socket, const std::string& bytes) {
  socket.sendBytes(bytes.data(), static_cast<int>(bytes.size()));
}

// Reads `count` answers (each with a Content-Length) from `socket`; fewer when it closes.
std::vector<test::HttpResult> readAnswers(Poco::Net::StreamSocket& socket, std::size_t count) {
  std::vector<test::HttpResult> answers;
  std::string in;
  char buffer[4096];
  while (answers.size() < count) {
    std::size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos) {
      test::HttpResult head = parseAnswer(in.substr(0, end + 4));
      std::size_t length = head.status == 100 ? 0 : std::stoul(head.headers["Content-Length"]);
      if (in.size() >= end + 4 + length) {
        test::HttpResult r = parseAnswer(in.substr(0, end + 4 + length));
        in.erase(0, end + 4 + length);
        answers.push_back(r);
        continue;
      }
    }
    int n = socket.receiveBytes(buffer, sizeof buffer);
    if (n <= 0) break;
    in.append(buffer, static_cast<std::size_t>(n));
  }
  return answers;
}

// What the server sends on `socket` until it closes it; nothing when it does not within 10 s.
std::optional<std::string> readUntilClosed(Poco::Net::StreamSocket& socket) {
  socket.setReceiveTimeout(Poco::Timespan(10, 0));
  std::string text;
  char buffer[4096];
  try {
    for (int n; (n = socket.receiveBytes(buffer, sizeof buffer)) > 0;) text.append(buffer, n);
    return text;
  } catch (const Poco::TimeoutException&) {
    return std::nullopt;
  }
}

std::string dealRequest(const std::string& extraHeaders = {}) {
  const std::string body = test::sample("03-ONCRMDEALADD.form");
  return "POST /bitrix24/events HTTP/1.1\r\n" + dealHeaders(body) + extraHeaders + "\r\n" + body;
}

std::string installRequest() {
  const std::string body = test::sample("01-ONAPPINSTALL.form");
  return "POST /bitrix24/events HTTP/1.1\r\n" + dealHeaders(body) + "\r\n" + body;
}

}  // namespace

BOOST_AUTO_TEST_CASE(pipelined_requests_are_answered_in_order) {
  Server s;
  Poco::Net::StreamSocket socket = connectTo(s.url);
  sendAll(socket, installRequest() + dealRequest() + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
                      dealRequest());
  std::vector<test::HttpResult> answers = readAnswers(socket, 4);
  BOOST_REQUIRE(answers.size() == 4u);
  BOOST_TEST(answers[0].body == "{\"status\":\"stored\",\"id\":1}");
  BOOST_TEST(answers[1].body == "{\"status\":\"stored\",\"id\":2}");
  BOOST_TEST(answers[2].body == "{\"status\":\"ok\"}");
  BOOST_TEST(answers[3].body == "{\"status\":\"stored\",\"id\":3}");
  BOOST_TEST(s.events() == 3);
}

BOOST_AUTO_TEST_CASE(request_arriving_a_few_bytes_at_a_time_is_stored) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  Poco::Net::StreamSocket socket = connectTo(s.url);
  socket.setNoDelay(true);
  const std::string request = dealRequest();
  for (std::size_t at = 0; at < request.size(); at += 7) {
    sendAll(socket, request.substr(at, 7));
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  std::vector<test::HttpResult> answers = readAnswers(socket, 1);
  BOOST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].status == 200);
  BOOST_TEST(s.q("SELECT event FROM events WHERE id = 2") == "ONCRMDEALADD");
}

BOOST_AUTO_TEST_CASE(lines_ending_in_lf_alone_are_accepted) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  const std::string body = test::sample("03-ONCRMDEALADD.form");
  Poco::Net::StreamSocket socket = connectTo(s.url);
  sendAll(socket,
          "POST /bitrix24/events HTTP/1.1\nHost: x\n"
          "Content-Type: application/x-www-form-urlencoded\nContent-Length: " +
              std::to_string(body.size()) + "\n\n" + body);
  std::vector<test::HttpResult> answers = readAnswers(socket, 1);
  BOOST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].status == 200);
  BOOST_TEST(s.events() == 2);
}

BOOST_AUTO_TEST_CASE(chunked_body_is_stored_like_a_plain_one) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  const std::string body = test::sample("03-ONCRMDEALADD.form");
  // Three chunks, one with an extension, and a trailer field.
  std::ostringstream chunked;
  chunked << std::hex << 10 << ";ext=1\r\n"
          << body.substr(0, 10) << "\r\n"
          << (body.size() - 110) << "\r\n"
          << body.substr(10, body.size() - 110) << "\r\n"
          << 100 << "\r\n"
          << body.substr(body.size() - 100) << "\r\n0\r\nX-Trailer: t\r\n\r\n";
  Poco::Net::StreamSocket socket = connectTo(s.url);
  sendAll(socket,
          "POST /bitrix24/events HTTP/1.1\r\nHost: x\r\n"
          "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n" +
              chunked.str() + dealRequest());
  std::vector<test::HttpResult> answers = readAnswers(socket, 2);
  BOOST_REQUIRE(answers.size() == 2u);
  BOOST_TEST(answers[0].status == 200);
  BOOST_TEST(answers[1].status == 200);  // the request after it was read from the right place
  BOOST_TEST(s.q("SELECT count(DISTINCT data) FROM events WHERE event = 'ONCRMDEALADD'") == "1");
  BOOST_TEST(s.events() == 3);
}

BOOST_AUTO_TEST_CASE(malformed_chunked_body_gets_400_and_stores_nothing) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  std::string answer = rawExchange(s.url,
                                   "POST /bitrix24/events HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Type: application/x-www-form-urlencoded\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\nzz\r\nevent=X\r\n0\r\n\r\n");
  test::HttpResult r = parseAnswer(answer);
  checkError(r, 400, "malformed_request");  // chunk framing, refused like header framing (issue 11)
  BOOST_TEST(r.headers["Connection"] == "Close");
  BOOST_TEST(s.events() == 1);
}

BOOST_AUTO_TEST_CASE(expect_100_continue_gets_continue_before_the_body) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  const std::string body = test::sample("03-ONCRMDEALADD.form");
  Poco::Net::StreamSocket socket = connectTo(s.url);
  sendAll(socket, "POST /bitrix24/events HTTP/1.1\r\n" + dealHeaders(body) +
                      "Expect: 100-continue\r\n\r\n");
  std::vector<test::HttpResult> interim = readAnswers(socket, 1);
  BOOST_REQUIRE(interim.size() == 1u);
  BOOST_TEST(interim[0].status == 100);
  sendAll(socket, body);
  std::vector<test::HttpResult> answers = readAnswers(socket, 1);
  BOOST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].status == 200);
  BOOST_TEST(s.events() == 2);
}

BOOST_AUTO_TEST_CASE(http_1_0_request_is_answered_in_1_0_and_closed) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  Poco::Net::StreamSocket socket = connectTo(s.url);
  std::string request = dealRequest();
  request.replace(request.find("HTTP/1.1"), 8, "HTTP/1.0");
  sendAll(socket, request);
  std::optional<std::string> answer = readUntilClosed(socket);  // no keep-alive asked for
  BOOST_REQUIRE(answer.has_value());
  BOOST_TEST(answer->rfind("HTTP/1.0 200 OK\r\n", 0) == 0u, *answer);
  BOOST_TEST(answer->find("{\"status\":\"stored\",\"id\":2}") != std::string::npos);
  BOOST_TEST(s.events() == 2);
}

// Every connection here is closed by the server right after its answer, and the next one is
// accepted at once: a new connection often gets the descriptor number the previous one had.
// The loop once kept its connections by descriptor and closed such a newcomer unanswered.
BOOST_AUTO_TEST_CASE(regression_issue6_connections_closed_one_after_another_all_get_answers) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  int stored = 0;
  for (int i = 0; i < 300; ++i) {
    // The client closes right after reading the answer and connects again at once, so the
    // server often sees that close and the new connection in one wake-up.
    Poco::Net::StreamSocket socket = connectTo(s.url);
    sendAll(socket, dealRequest("Connection: close\r\n"));
    std::vector<test::HttpResult> answers = readAnswers(socket, 1);
    if (answers.size() == 1 && answers[0].status == 200) ++stored;
  }
  BOOST_TEST(stored == 300);
  BOOST_TEST(s.events() == 301);
}

BOOST_AUTO_TEST_CASE(event_of_a_client_that_hangs_up_after_sending_is_still_stored) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  for (int i = 0; i < 20; ++i) {
    Poco::Net::StreamSocket socket = connectTo(s.url);
    sendAll(socket, dealRequest());
    socket.close();  // before the answer
  }
  // Acknowledged or not, a request received whole is committed; wait for the writer.
  for (int tries = 0; tries < 500 && s.events() < 21; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  BOOST_TEST(s.events() == 21);
  BOOST_TEST(s.post("03-ONCRMDEALADD.form").status == 200);
}

// Answers are queued on the connection while the client does not read them; past a bound the
// loop stops starting requests and stops reading, and must start again once the answers drain.
// The client sends far more than the socket buffers hold and reads only after a pause.
BOOST_AUTO_TEST_CASE(pipelined_requests_of_a_client_slow_to_read_all_get_answers) {
  Server s;
  const std::size_t count = 100000;
  std::string requests;
  for (std::size_t i = 0; i < count; ++i) requests += "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  Poco::Net::StreamSocket socket = connectTo(s.url);
  std::thread sender([&] {
    try {
      sendAll(socket, requests);
    } catch (const Poco::Exception&) {
      // The reading side gave up and shut the socket down.
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::vector<test::HttpResult> answers;
  try {
    answers = readAnswers(socket, count);
  } catch (const Poco::Exception& e) {
    BOOST_TEST_MESSAGE("reading the answers failed: " << e.displayText());
  }
  socket.shutdown();
  sender.join();
  BOOST_TEST(answers.size() == count);
  BOOST_TEST(std::all_of(answers.begin(), answers.end(),
                         [](const test::HttpResult& r) { return r.status == 200; }));
}

// A client may send its requests and close its sending side at once: every request that arrived
// whole is answered before the connection closes, the last answer saying so.
BOOST_AUTO_TEST_CASE(requests_sent_before_a_half_close_are_all_answered) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  Poco::Net::StreamSocket socket = connectTo(s.url);
  sendAll(socket, dealRequest() + "\r\n" + dealRequest() + "\r\n\r\n");  // blank lines skipped
  socket.shutdownSend();
  std::optional<std::string> text = readUntilClosed(socket);
  BOOST_REQUIRE(text.has_value());
  std::size_t second = text->find("HTTP/1.1", 1);
  BOOST_REQUIRE(second != std::string::npos);
  test::HttpResult first = parseAnswer(text->substr(0, second));
  test::HttpResult last = parseAnswer(text->substr(second));
  BOOST_TEST(first.status == 200);
  BOOST_TEST(last.status == 200);
  BOOST_TEST(last.headers["Connection"] == "Close");
  BOOST_TEST(s.events() == 3);
}

// A request whose commit finishes after stop() began is answered, and its answer closes the
// connection: it said keep-alive before, and the connection was then closed as idle.
BOOST_AUTO_TEST_CASE(answer_committed_after_stop_began_closes_the_connection) {
  Server s;
  s.post("01-ONAPPINSTALL.form");
  Poco::Net::StreamSocket socket = connectTo(s.url);
  WriteBlocker blocker(s.settings);  // the writer waits with the event
  sendAll(socket, dealRequest());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::thread stopper([&] { s.service->stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  blocker.release();
  stopper.join();
  std::optional<std::string> text = readUntilClosed(socket);
  BOOST_REQUIRE(text.has_value());
  test::HttpResult r = parseAnswer(*text);
  BOOST_TEST(r.status == 200, *text);
  BOOST_TEST(r.headers["Connection"] == "Close");
  BOOST_TEST(s.events() == 2);
}

// Group commit (README: the writer): deliveries of many connections that wait for the writer at
// once are committed together, and each is answered with its own id after its commit. The
// write lock is held while the clients send, so their events queue behind the first.
BOOST_AUTO_TEST_CASE(concurrent_deliveries_are_committed_in_groups_each_with_its_own_id) {
  Server s;
  BOOST_TEST(s.post("01-ONAPPINSTALL.form").status == 200);
  constexpr int kClients = 16;
  constexpr int kEach = 20;
  std::vector<std::vector<std::int64_t>> ids(kClients);
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> clients;
  {
    WriteBlocker blocker(s.settings);
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        try {
          Poco::Net::StreamSocket socket = connectTo(s.url);
          for (int i = 0; i < kEach; ++i) {
            sendAll(socket, dealRequest());
            std::vector<test::HttpResult> answers = readAnswers(socket, 1);
            if (answers.size() != 1 || answers[0].status != 200) {
              failures[c] = answers.empty() ? "no answer" : answers[0].body;
              return;
            }
            ids[c].push_back(answers[0].json()->getValue<std::int64_t>("id"));
          }
        } catch (const std::exception& e) {
          failures[c] = e.what();
        }
      });
    }
    // Time for the clients' first requests to reach the writer's queue; a batch of more than
    // one needs only two of them there while the first commit waits.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    blocker.release();
    for (std::thread& t : clients) t.join();
  }
  std::vector<std::int64_t> all;
  for (int c = 0; c < kClients; ++c) {
    BOOST_TEST(failures[c].empty(), "client " << c << ": " << failures[c]);
    BOOST_TEST(std::is_sorted(ids[c].begin(), ids[c].end()));  // one connection's, in order
    all.insert(all.end(), ids[c].begin(), ids[c].end());
  }
  std::sort(all.begin(), all.end());
  BOOST_TEST(all.size() == std::size_t{kClients * kEach});
  BOOST_TEST((std::adjacent_find(all.begin(), all.end()) == all.end()));  // no id twice
  BOOST_TEST(s.events() == 1 + kClients * kEach);
  BOOST_TEST(s.q("SELECT count(*) FROM events WHERE id IN (" + [&] {
    std::string list;
    for (std::int64_t id : all) list += (list.empty() ? "" : ",") + std::to_string(id);
    return list;
  }() + ") AND event = 'ONCRMDEALADD'") == std::to_string(kClients * kEach));
  // Every event went through a batch, and fewer batches than events were committed.
  const std::string metrics = test::httpGet(s.service->queryUrl(), "/metrics").body;
  auto value = [&](const std::string& name) {
    const std::size_t at = metrics.find("\n" + name + " ");
    BOOST_REQUIRE_MESSAGE(at != std::string::npos, name << " missing");
    return std::stod(metrics.substr(at + name.size() + 2));
  };
  const double events = value("b24es_writer_batch_events_sum");
  const double batches = value("b24es_writer_batch_events_count");
  BOOST_TEST(events == 1.0 + kClients * kEach);
  BOOST_TEST(batches < events, batches << " batches for " << events << " events");
  BOOST_TEST_MESSAGE(test::backendName(test::testBackend())
                     << ": " << events << " events in " << batches << " batches");
}
