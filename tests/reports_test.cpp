// scripts/report, the report views of migration 0004 and scripts/backup, end to end: a database
// built through the real ingest path (the service in-process on port 0, a fake clock moved
// across days), then the shell scripts run as child processes against it, in every format.
#define BOOST_TEST_MODULE reports
#include <boost/test/unit_test.hpp>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/DirectoryIterator.h>
#include <Poco/File.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Path.h>
#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pg_test_support.h"
#include "service.h"
#include "test_support.h"

using b24es::Service;
using b24es::test::FakeClock;
using b24es::test::postForm;
using b24es::test::queryScalar;
using b24es::test::TempDir;
using b24es::test::testSettings;
using Poco::JSON::Array;
using Poco::JSON::Object;

namespace {

constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kHour = 3600;
const std::string kPath = "/bitrix24/events";

// ---- running the scripts -------------------------------------------------------------------

struct ScriptResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

// Runs scripts/NAME with `args` and waits for it; stdout and stderr are read at the same time
// so that neither pipe can fill up and stall the child.
ScriptResult runScript(const std::string& name, const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env = {}) {
  Poco::Pipe outPipe, errPipe;
  Poco::Process::Env environment(env.begin(), env.end());
  Poco::ProcessHandle handle =
      Poco::Process::launch(std::string(B24ES_SOURCE_DIR) + "/scripts/" + name, args, "", nullptr,
                            &outPipe, &errPipe, environment);
  ScriptResult result;
  std::thread errReader([&] {
    Poco::PipeInputStream in(errPipe);
    Poco::StreamCopier::copyToString(in, result.err);
  });
  Poco::PipeInputStream in(outPipe);
  Poco::StreamCopier::copyToString(in, result.out);
  errReader.join();
  result.exitCode = handle.wait();
  return result;
}

ScriptResult report(const std::string& name, const std::string& db,
                    std::vector<std::string> options = {}) {
  std::vector<std::string> args{name, "--db", db};
  args.insert(args.end(), options.begin(), options.end());
  return runScript("report", args);
}

// The report's rows as JSON objects; fails the test when the script fails or prints no array.
std::vector<Object::Ptr> jsonReport(const std::string& name, const std::string& db,
                                    std::vector<std::string> options = {}) {
  options.push_back("--format");
  options.push_back("json");
  ScriptResult r = report(name, db, options);
  BOOST_REQUIRE_MESSAGE(r.exitCode == 0, name << " exited " << r.exitCode << ": " << r.err);
  Poco::JSON::Parser parser;
  Array::Ptr array = parser.parse(r.out).extract<Array::Ptr>();
  std::vector<Object::Ptr> rows;
  for (std::size_t i = 0; i < array->size(); ++i) rows.push_back(array->getObject(i));
  return rows;
}

std::string text(const Object::Ptr& row, const std::string& key) {
  return row->isNull(key) ? "null" : row->getValue<std::string>(key);
}

std::int64_t number(const Object::Ptr& row, const std::string& key) {
  return row->getValue<std::int64_t>(key);
}

std::vector<std::string> reportNames() {
  ScriptResult r = runScript("report", {"--list"});
  BOOST_REQUIRE_EQUAL(r.exitCode, 0);
  std::vector<std::string> names;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) names.push_back(line.substr(0, line.find(' ')));
  return names;
}

// ---- the database ---------------------------------------------------------------------------

// `sql` with one placeholder, bound to memberId.
void execSql(const std::string& db, const std::string& sql, std::string memberId) {
  Poco::Data::SQLite::Connector::registerConnector();
  Poco::Data::Session session("SQLite", db);
  session << sql, Poco::Data::Keywords::use(memberId), Poco::Data::Keywords::now;
}

std::string day(std::int64_t seconds) {
  return Poco::DateTimeFormatter::format(Poco::Timestamp::fromEpochTime(seconds), "%Y-%m-%d");
}

std::string formEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string body;
  for (const auto& [key, value] : fields) {
    if (!body.empty()) body += '&';
    Poco::URI::encode(key, "[]&=+%", body);
    body += '=';
    Poco::URI::encode(value, "[]&=+%:/,", body);
  }
  return body;
}

struct Portal {
  std::string memberId;
  std::string domain;
  std::string applicationToken;
};

// What a body carries in auth besides the portal's identity.
enum class Auth {
  kInstall,   // user 1's access and refresh token, as ONAPPINSTALL has them
  kAccess,    // user 9's access token only, as ordinary events have it
  kNoTokens,  // no token at all (an automation rule's change, an uninstall)
};

// The events a test posts and what it expects the reports to make of them. The service runs
// in-process with a fake clock; the clock is aligned with the real time, because the reports
// measure silence and token ages against SQLite's 'now'.
class ReportDatabase {
 public:
  // Seven portals: A and B busy every day; C silent since day 1; D installed 170 days ago (its
  // refresh token is near the end of its life); E installed 190 days ago and quiet since
  // (refresh token expired); F uninstalled on day 2; G known only through a static token, so
  // without OAuth tokens.
  const Portal A{"7c1e5a93d2b84f06a9e3c5d71b2f8e40", "acme-test.bitrix24.com",
                 "f4a8c2e61b9d7035e8c4a1f6d2b97e53"};
  const Portal B{"b0b1b2b3b4b5b6b7b8b9babbbcbdbebf", "beta.bitrix24.com",
                 "b1000000000000000000000000000001"};
  const Portal C{"c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", "gamma.bitrix24.com",
                 "c1000000000000000000000000000001"};
  const Portal D{"d0d1d2d3d4d5d6d7d8d9dadbdcdddedf", "delta.bitrix24.com",
                 "d1000000000000000000000000000001"};
  const Portal E{"e0e1e2e3e4e5e6e7e8e9eaebecedeeef", "epsilon.bitrix24.com",
                 "e1000000000000000000000000000001"};
  const Portal F{"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", "zeta.bitrix24.com",
                 "f1000000000000000000000000000001"};
  const Portal G{"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", "eta.bitrix24.com",
                 "a9000000000000000000000000000001"};

  TempDir dir;
  FakeClock clock;
  std::string db;
  std::unique_ptr<Service> service;

  const std::int64_t realNow = Poco::Timestamp().epochTime();
  const std::int64_t base = realNow / kDay * kDay - 5 * kDay;  // midnight UTC, 5 days ago

  std::map<std::pair<std::string, std::string>, int> perDay;  // (day, event) -> events
  std::map<std::pair<std::string, std::string>, std::set<std::string>> portalsPerDay;
  std::map<std::string, int> eventsOf;                           // member_id -> events
  std::map<std::string, int> eventsFromDay3;                     // member_id -> since day 3
  std::map<std::pair<std::string, std::string>, int> lastHours;  // the final batch's (day, event)
  std::vector<std::string> secrets;                              // every token value posted
  std::vector<std::int64_t> repeatedA, repeatedB;                // ids of the repeated deliveries

  ReportDatabase() : clock(0) {
    auto settings = testSettings(dir);
    settings.ingest.staticTokens = {G.applicationToken};
    db = settings.db.path;
    secrets.push_back(G.applicationToken);
    for (const Portal* p : {&A, &B, &C, &D, &E, &F}) secrets.push_back(p->applicationToken);
    service = std::make_unique<Service>(settings, clock);
    service->start();
    build();
  }

  ~ReportDatabase() { service->stop(); }

  std::vector<const Portal*> portals() const { return {&A, &B, &C, &D, &E, &F, &G}; }

  std::string body(const Portal& p, const std::string& event, int handlerId,
                   const std::vector<std::pair<std::string, std::string>>& data, Auth auth,
                   std::int64_t expiresIn = kHour) {
    std::int64_t ts = clock.nowSeconds();
    std::vector<std::pair<std::string, std::string>> fields{
        {"event", event}, {"event_handler_id", std::to_string(handlerId)}};
    for (const auto& [key, value] : data) fields.emplace_back("data" + key, value);
    fields.emplace_back("ts", std::to_string(ts));
    std::string serial = std::to_string(++tokenSerial_);
    if (auth != Auth::kNoTokens) {
      std::string access = "at" + serial + p.memberId.substr(0, 8) + "00b7e2a1005a3c4d000000";
      secrets.push_back(access);
      fields.emplace_back("auth[access_token]", access);
      fields.emplace_back("auth[expires]", std::to_string(ts + expiresIn));
      fields.emplace_back("auth[expires_in]", std::to_string(expiresIn));
      fields.emplace_back("auth[scope]", "crm,user,placement");
    }
    fields.emplace_back("auth[domain]", p.domain);
    fields.emplace_back("auth[server_endpoint]", "https://oauth.bitrix.info/rest/");
    fields.emplace_back("auth[status]", "F");
    fields.emplace_back("auth[client_endpoint]", "https://" + p.domain + "/rest/");
    fields.emplace_back("auth[member_id]", p.memberId);
    if (auth == Auth::kInstall) {
      std::string refresh = "rt" + serial + p.memberId.substr(0, 8) + "7e06216efe7d340cfdd";
      secrets.push_back(refresh);
      fields.emplace_back("auth[user_id]", "1");
      fields.emplace_back("auth[refresh_token]", refresh);
    } else if (auth == Auth::kAccess) {
      fields.emplace_back("auth[user_id]", "9");
    }
    fields.emplace_back("auth[application_token]", p.applicationToken);
    return formEncode(fields);
  }

  // Posts at the clock's current time, records what the reports should count, moves the clock
  // on by 30 seconds and returns the stored id.
  std::int64_t post(const Portal& p, const std::string& event, const std::string& form) {
    std::int64_t now = clock.nowSeconds();
    auto result = postForm(service->ingestUrl(), kPath, form);
    BOOST_REQUIRE_MESSAGE(result.status == 200, event << " for " << p.domain << " got "
                                                      << result.status << " " << result.body);
    ++perDay[{day(now), event}];
    portalsPerDay[{day(now), event}].insert(p.memberId);
    ++eventsOf[p.memberId];
    if (now >= base + 3 * kDay) ++eventsFromDay3[p.memberId];
    if (now >= realNow - 2 * kHour) ++lastHours[{day(now), event}];
    clock.advanceSeconds(30);
    return result.json()->getValue<std::int64_t>("id");
  }

  void install(const Portal& p) {
    post(
        p, "ONAPPINSTALL",
        body(p, "ONAPPINSTALL", 11, {{"[VERSION]", "1"}, {"[LANGUAGE_ID]", "en"}}, Auth::kInstall));
  }

  // The n-th of a cycle of CRM events: new deals, contacts, timeline comments and smart-process
  // items, and an update of the deal just created, so each ordinary entity gets one or two events.
  void crmEvent(const Portal& p, int n, Auth auth = Auth::kAccess, std::int64_t expiresIn = kHour) {
    int id = 1000 + n / 5;
    switch (n % 5) {
      case 0:
        post(p, "ONCRMDEALADD",
             body(p, "ONCRMDEALADD", 185, {{"[FIELDS][ID]", std::to_string(id)}}, auth, expiresIn));
        break;
      case 1:
        post(p, "ONCRMCONTACTADD",
             body(p, "ONCRMCONTACTADD", 188, {{"[FIELDS][ID]", std::to_string(20000 + n)}}, auth,
                  expiresIn));
        break;
      case 2:
        post(p, "ONCRMDEALUPDATE",
             body(p, "ONCRMDEALUPDATE", 186, {{"[FIELDS][ID]", std::to_string(id)}}, auth,
                  expiresIn));
        break;
      case 3:
        post(p, "ONCRMTIMELINECOMMENTADD",
             body(p, "ONCRMTIMELINECOMMENTADD", 191, {{"[FIELDS][ID]", std::to_string(30000 + n)}},
                  auth, expiresIn));
        break;
      default:
        post(p, "ONCRMDYNAMICITEMADD",
             body(p, "ONCRMDYNAMICITEMADD", 194,
                  {{"[FIELDS][ID]", std::to_string(40000 + n)},
                   {"[FIELDS][ENTITY_TYPE_ID]", "1220"}},
                  auth, expiresIn));
    }
  }

  void build() {
    clock.setSeconds(realNow - 190 * kDay);
    install(E);
    // An hour more than 170 days, so that D has 9 full days left however fast the test runs.
    clock.setSeconds(realNow - 170 * kDay - kHour);
    install(D);

    clock.setSeconds(base + kHour);
    for (const Portal* p : {&A, &B, &C, &F}) install(*p);
    int serial = 0;  // entity numbers stay unique across days
    for (int d = 0; d < 5; ++d) {
      clock.setSeconds(base + d * kDay + 2 * kHour);
      for (int i = 0; i < 24 + d; ++i) crmEvent(A, serial++);
      for (int i = 0; i < 16 + 2 * d; ++i) crmEvent(B, serial++);
      // B's deal 900001 is the busiest entity: three updates a day.
      for (int i = 0; i < 3; ++i) {
        post(B, "ONCRMDEALUPDATE",
             body(B, "ONCRMDEALUPDATE", 186, {{"[FIELDS][ID]", "900001"}}, Auth::kAccess));
      }
      if (d <= 1) {
        for (int i = 0; i < 8; ++i) crmEvent(C, serial++);
        for (int i = 0; i < 5; ++i) crmEvent(F, serial++);
      }
      if (d == 2) {
        post(F, "ONAPPUNINSTALL",
             body(F, "ONAPPUNINSTALL", 12, {{"[CLEAN]", "1"}}, Auth::kNoTokens));
      }
      for (int i = 0; i < 6; ++i) crmEvent(D, serial++);
      for (int i = 0; i < 2; ++i) crmEvent(G, serial++, Auth::kNoTokens);
      if (d == 3) {
        // One body delivered twice, and another deal created in the same second: same portal,
        // event, handler and ts, other data, so not a repeat.
        std::string twice =
            body(A, "ONCRMDEALADD", 185, {{"[FIELDS][ID]", "700001"}}, Auth::kAccess);
        std::string sameSecond =
            body(A, "ONCRMDEALADD", 185, {{"[FIELDS][ID]", "700002"}}, Auth::kAccess);
        for (int i = 0; i < 2; ++i) repeatedA.push_back(post(A, "ONCRMDEALADD", twice));
        post(A, "ONCRMDEALADD", sameSecond);
      }
      if (d == 4) {  // and one three times
        std::string thrice =
            body(B, "ONCRMCONTACTADD", 188, {{"[FIELDS][ID]", "800001"}}, Auth::kAccess);
        for (int i = 0; i < 3; ++i) repeatedB.push_back(post(B, "ONCRMCONTACTADD", thrice));
      }
    }

    // The last hour: the busy portals again, with access tokens valid for two more hours.
    clock.setSeconds(realNow - kHour);
    for (const Portal* p : {&A, &B}) {
      for (int i = 0; i < 8; ++i) crmEvent(*p, serial++, Auth::kAccess, 2 * kHour);
    }
    for (int i = 0; i < 4; ++i) crmEvent(D, serial++, Auth::kAccess, 2 * kHour);
    // Three forged deliveries for A (a wrong application token), refused 401 and recorded in
    // rejections, without their tokens; the events after them carry them into the database.
    Portal forger{A.memberId, A.domain, "forged0000000000000000000000000"};
    secrets.push_back(forger.applicationToken);
    for (int i = 0; i < 3; ++i) {
      auto refused = postForm(service->ingestUrl(), kPath,
                              body(forger, "ONCRMDEALADD", 185, {}, Auth::kAccess));
      BOOST_REQUIRE_EQUAL(refused.status, 401);
    }
    for (int i = 0; i < 2; ++i) crmEvent(G, serial++, Auth::kNoTokens);

    // What the token refresher (another component) records after failed attempts: A's OAuth
    // server timed out twice; B's refresh token was refused as dead.
    execSql(db,
            "UPDATE tokens SET last_refresh_at = strftime('%s','now') - 600, "
            "last_refresh_error = 'HTTP 503 from https://oauth.bitrix.info/oauth/token/', "
            "refresh_failures = 2 WHERE member_id = ? AND user_id = 1",
            A.memberId);
    execSql(db,
            "UPDATE tokens SET last_refresh_at = strftime('%s','now') - 300, "
            "last_refresh_error = 'invalid_grant: The provided authorization grant is invalid', "
            "refresh_failures = 1 WHERE member_id = ? AND user_id = 1",
            B.memberId);
  }

  int totalEvents() const {
    int total = 0;
    for (const auto& [key, n] : perDay) total += n;
    return total;
  }

 private:
  int tokenSerial_ = 0;
};

// Rows keyed by member_id (for reports with one row per portal).
std::map<std::string, Object::Ptr> byMember(const std::vector<Object::Ptr>& rows) {
  std::map<std::string, Object::Ptr> out;
  for (const auto& row : rows) out[text(row, "member_id")] = row;
  return out;
}

std::set<std::string> membersWhere(const std::vector<Object::Ptr>& rows, const std::string& key,
                                   const std::string& value) {
  std::set<std::string> out;
  for (const auto& row : rows) {
    if (text(row, key) == value) out.insert(text(row, "member_id"));
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(reports)

BOOST_FIXTURE_TEST_CASE(every_report_runs_in_every_format_without_token_values, ReportDatabase) {
  std::vector<std::string> names = reportNames();
  BOOST_REQUIRE_GE(names.size(), 6u);
  for (const std::string& name : names) {
    std::vector<Object::Ptr> rows = jsonReport(name, db);
    BOOST_TEST_CONTEXT("report " << name) {
      BOOST_TEST(!rows.empty());

      ScriptResult csv = report(name, db, {"--format", "csv"});
      BOOST_REQUIRE_EQUAL(csv.exitCode, 0);
      // A header line, then one line per row: no value in these reports holds a line break.
      BOOST_TEST(std::count(csv.out.begin(), csv.out.end(), '\n') ==
                 static_cast<long>(rows.size()) + 1);
      std::string header = csv.out.substr(0, csv.out.find('\n'));
      for (const auto& [key, value] : *rows.front()) {
        BOOST_TEST(header.find(key) != std::string::npos, key << " in the csv header");
      }

      ScriptResult box = report(name, db);  // box is the default
      BOOST_REQUIRE_EQUAL(box.exitCode, 0);
      BOOST_TEST(box.out.rfind("┌", 0) == 0);
      for (const auto& [key, value] : *rows.front()) {
        BOOST_TEST(box.out.find(" " + key + " ") != std::string::npos, key << " in the box header");
      }

      for (const std::string& secret : secrets) {
        for (const std::string* out : {&csv.out, &box.out, &csv.err, &box.err}) {
          BOOST_TEST(out->find(secret) == std::string::npos, "token value in " << name);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(list_names_each_report_with_its_first_comment_line) {
  ScriptResult r = runScript("report", {"--list"});
  BOOST_REQUIRE_EQUAL(r.exitCode, 0);
  for (const std::string name :
       {"events_per_day", "portal_activity", "silent_portals", "token_health",
        "repeated_deliveries", "busiest_entities", "rejections"}) {
    std::string first =
        b24es::test::readFile(std::string(B24ES_SOURCE_DIR) + "/scripts/reports/" + name + ".sql");
    first = first.substr(3, first.find('\n') - 3);  // without "-- "
    BOOST_TEST(r.out.find(name) != std::string::npos, name);
    BOOST_TEST(r.out.find(first) != std::string::npos, first);
  }
}

BOOST_FIXTURE_TEST_CASE(rejections_counts_refusals_by_client_status_and_error, ReportDatabase) {
  std::vector<Object::Ptr> rows = jsonReport("rejections", db);
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_TEST(text(rows[0], "client_addr") == "127.0.0.1");
  BOOST_TEST(number(rows[0], "status") == 401);
  BOOST_TEST(text(rows[0], "error") == "verification_failed");
  BOOST_TEST(number(rows[0], "rejections") == 3);
  BOOST_TEST(number(rows[0], "portals_claimed") == 1);
  BOOST_TEST(text(rows[0], "first_utc").size() == 24u);  // 2026-01-01T10:00:00.000Z
  // Received an hour ago (the test's clock): --since 30 minutes leaves them out.
  BOOST_TEST(jsonReport("rejections", db, {"--since", "30 minutes"}).empty());
}

BOOST_FIXTURE_TEST_CASE(events_per_day_counts_what_was_posted_each_day, ReportDatabase) {
  std::vector<Object::Ptr> rows = jsonReport("events_per_day", db);
  std::map<std::pair<std::string, std::string>, int> reported;
  int total = 0;
  for (const auto& row : rows) {
    std::pair<std::string, std::string> key{text(row, "day"), text(row, "event")};
    reported[key] = static_cast<int>(number(row, "events"));
    BOOST_TEST(number(row, "portals") == static_cast<std::int64_t>(portalsPerDay[key].size()),
               key.first << " " << key.second);
    total += reported[key];
  }
  BOOST_TEST((reported == perDay));
  BOOST_TEST(total == totalEvents());
  BOOST_TEST(total >= 300);
  BOOST_TEST(queryScalar(db, "SELECT count(*) FROM events") == std::to_string(total));
}

BOOST_FIXTURE_TEST_CASE(since_takes_a_date_unix_seconds_or_an_age, ReportDatabase) {
  std::map<std::pair<std::string, std::string>, int> fromDay3;
  for (const auto& [key, n] : perDay) {
    if (key.first >= day(base + 3 * kDay)) fromDay3[key] = n;
  }
  auto counted = [&](std::vector<std::string> options) {
    std::map<std::pair<std::string, std::string>, int> out;
    for (const auto& row : jsonReport("events_per_day", db, options)) {
      out[{text(row, "day"), text(row, "event")}] = static_cast<int>(number(row, "events"));
    }
    return out;
  };
  BOOST_TEST((counted({"--since", day(base + 3 * kDay)}) == fromDay3));
  BOOST_TEST((counted({"--since", std::to_string(base + 3 * kDay)}) == fromDay3));
  BOOST_TEST((counted({"--since", day(base + 3 * kDay) + "T00:00:00Z"}) == fromDay3));
  // An hour ahead of UTC: 01:00+01:00 is midnight UTC.
  BOOST_TEST((counted({"--since", day(base + 3 * kDay) + "T01:00:00+01:00"}) == fromDay3));
  // The final batch was posted in the last hour; everything before it is over 20 hours old.
  BOOST_TEST((counted({"--since", "3 hours"}) == lastHours));
  BOOST_TEST((counted({"--since", "3 hours ago"}) == lastHours));
  BOOST_TEST((counted({"--since", "2099-01-01"}).empty()));

  // Portal activity counts the events since then, and still shows the last event ever.
  auto rows = byMember(jsonReport("portal_activity", db, {"--since", day(base + 3 * kDay)}));
  for (const Portal* p : portals()) {
    BOOST_TEST(number(rows.at(p->memberId), "events") == eventsFromDay3[p->memberId], p->domain);
  }
  BOOST_TEST(text(rows.at(C.memberId), "last_event_utc") != "null");
}

BOOST_FIXTURE_TEST_CASE(bad_option_values_are_refused_with_exit_code_2, ReportDatabase) {
  std::string before = queryScalar(db, "SELECT count(*) FROM events");
  for (const std::string since :
       {"yesterday", "2026-13-45", "2026-02-30", "7 fortnights", "", "1; DROP TABLE events",
        "0) OR (1=1", "'", "2026-01-01T10:00:00Z; .shell touch x", "-5", "1e9"}) {
    ScriptResult r = report("events_per_day", db, {"--since", since});
    BOOST_TEST(r.exitCode == 2, "--since '" << since << "'");
    BOOST_TEST(r.out.empty());
    BOOST_TEST(r.err.find("--since") != std::string::npos);
  }
  for (const std::vector<std::string>& options :
       std::vector<std::vector<std::string>>{{"--silent-hours", "24h"},
                                             {"--limit", "1 OR 1"},
                                             {"--warn-days", "-1"},
                                             {"--format", "xml"},
                                             {"--since"},
                                             {"--nonsense"}}) {
    BOOST_TEST(report("portal_activity", db, options).exitCode == 2, options.front());
  }
  BOOST_TEST(runScript("report", {"no_such_report", "--db", db}).exitCode == 2);
  BOOST_TEST(runScript("report", {"../report", "--db", db}).exitCode == 2);
  BOOST_TEST(runScript("report", {}).exitCode == 2);
  BOOST_TEST(queryScalar(db, "SELECT count(*) FROM events") == before);
}

BOOST_AUTO_TEST_CASE(a_missing_database_is_an_error_not_a_new_file) {
  TempDir dir;
  ScriptResult r = report("events_per_day", dir.file("none.db"));
  BOOST_TEST(r.exitCode == 1);
  BOOST_TEST(r.err.find("no database") != std::string::npos);
  BOOST_TEST(!Poco::File(dir.file("none.db")).exists());
}

BOOST_FIXTURE_TEST_CASE(the_database_can_come_from_b24es_db, ReportDatabase) {
  ScriptResult r = runScript("report", {"events_per_day", "--format", "csv"}, {{"B24ES_DB", db}});
  BOOST_REQUIRE_EQUAL(r.exitCode, 0);
  BOOST_TEST(r.out.find("ONCRMDEALADD") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(portal_activity_marks_the_silent_portals, ReportDatabase) {
  std::vector<Object::Ptr> rows = jsonReport("portal_activity", db);
  BOOST_REQUIRE_EQUAL(rows.size(), 7u);
  // Silent: C (nothing since day 1) and E (nothing since its install 190 days ago). F is quiet
  // too, but uninstalled; G is known only through a static token and sent events an hour ago.
  BOOST_TEST(
      (membersWhere(rows, "silent", "SILENT") == std::set<std::string>{C.memberId, E.memberId}));
  BOOST_TEST(text(rows[0], "silent") == "SILENT");  // silent portals come first
  auto portal = byMember(rows);
  BOOST_TEST(text(portal.at(F.memberId), "state") == "uninstalled");
  BOOST_TEST(text(portal.at(G.memberId), "state") == "never installed");
  BOOST_TEST(text(portal.at(A.memberId), "state") == "installed");
  BOOST_TEST(text(portal.at(C.memberId), "last_event_utc").substr(0, 10) == day(base + kDay));
  BOOST_TEST(number(portal.at(F.memberId), "tokens") == 0);  // the uninstall deleted them
  for (const Portal* p : portals()) {
    BOOST_TEST(number(portal.at(p->memberId), "events") == eventsOf[p->memberId], p->domain);
  }

  // C's last event is three to four days old: silent at 24 hours, not at 2000.
  rows = jsonReport("portal_activity", db, {"--silent-hours", "2000"});
  BOOST_TEST((membersWhere(rows, "silent", "SILENT") == std::set<std::string>{E.memberId}));
}

BOOST_FIXTURE_TEST_CASE(silent_portals_lists_only_installed_portals_gone_quiet, ReportDatabase) {
  auto members = [](const std::vector<Object::Ptr>& rows) {
    std::set<std::string> out;
    for (const auto& row : rows) out.insert(text(row, "member_id"));
    return out;
  };
  BOOST_TEST(
      (members(jsonReport("silent_portals", db)) == std::set<std::string>{C.memberId, E.memberId}));
  BOOST_TEST((members(jsonReport("silent_portals", db, {"--silent-hours", "2000"})) ==
              std::set<std::string>{E.memberId}));
  BOOST_TEST(jsonReport("silent_portals", db, {"--silent-hours", "100000"}).empty());
  // An empty answer is still an answer in each format.
  BOOST_TEST(report("silent_portals", db, {"--silent-hours", "100000"}).out == "(no rows)\n");
  BOOST_TEST(report("silent_portals", db, {"--silent-hours", "100000", "--format", "json"}).out ==
             "[]\n");
}

BOOST_FIXTURE_TEST_CASE(token_health_finds_failing_ageing_and_dead_tokens_and_reinstalls,
                        ReportDatabase) {
  std::vector<Object::Ptr> rows = jsonReport("token_health", db);
  std::map<std::string, std::string> reinstall;  // member_id -> status
  std::map<std::pair<std::string, std::string>, Object::Ptr> token;
  for (const auto& row : rows) {
    if (text(row, "user_id") == "null") {
      reinstall[text(row, "member_id")] = text(row, "status");
    } else {
      token[{text(row, "member_id"), text(row, "user_id")}] = row;
    }
  }
  // Reinstall rows come first.
  BOOST_TEST(text(rows[0], "user_id") == "null");

  std::map<std::string, std::string> expected{
      {B.memberId,
       "NEEDS REINSTALL: refresh token refused: invalid_grant: The provided authorization grant "
       "is invalid"},
      {E.memberId, "NEEDS REINSTALL: refresh token older than 180 days"},
      {F.memberId, "NEEDS REINSTALL: uninstalled"},
      {G.memberId, "NEEDS REINSTALL: no OAuth tokens stored"}};
  BOOST_TEST((reinstall == expected));

  auto status = [&](const Portal& p, const std::string& user) {
    return text(token.at({p.memberId, user}), "status");
  };
  BOOST_TEST(status(A, "1") == "refresh failing");
  BOOST_TEST(number(token.at({A.memberId, "1"}), "refresh_failures") == 2);
  BOOST_TEST(status(B, "1") == "refresh token refused");
  BOOST_TEST(status(E, "1") == "refresh token expired");
  BOOST_TEST(status(C, "1") == "ok");
  BOOST_TEST(status(C, "9") == "access only");
  // D's refresh token is 170 days and an hour old: 9 full days left.
  BOOST_TEST(status(D, "1") == "refresh token ends in 9 days");
  BOOST_TEST(number(token.at({D.memberId, "1"}), "refresh_days_left") == 9);
  BOOST_TEST(status(D, "1") != "ok");
  // Within --warn-days 5, 9 days left is no longer a warning.
  for (const auto& row : jsonReport("token_health", db, {"--warn-days", "5"})) {
    if (text(row, "member_id") == D.memberId && text(row, "user_id") == "1") {
      BOOST_TEST(text(row, "status") == "ok");
    }
  }
  // Access tokens: the final batch's are valid for about another hour; C's expired days ago.
  std::string access = text(token.at({A.memberId, "9"}), "access");
  BOOST_TEST(access.rfind("expires in ", 0) == 0, access);
  BOOST_TEST(text(token.at({C.memberId, "9"}), "access") == "expired");
  BOOST_TEST(token.count({F.memberId, "1"}) == 0);
}

BOOST_FIXTURE_TEST_CASE(repeated_deliveries_finds_each_body_posted_more_than_once, ReportDatabase) {
  std::vector<Object::Ptr> rows = jsonReport("repeated_deliveries", db);
  BOOST_REQUIRE_EQUAL(rows.size(), 2u);
  auto ids = [](const std::vector<std::int64_t>& v) {
    std::string out;
    for (auto id : v) out += (out.empty() ? "" : ",") + std::to_string(id);
    return out;
  };
  BOOST_TEST(text(rows[0], "member_id") == B.memberId);  // the most repeated first
  BOOST_TEST(number(rows[0], "deliveries") == 3);
  BOOST_TEST(text(rows[0], "ids") == ids(repeatedB));
  BOOST_TEST(text(rows[0], "event") == "ONCRMCONTACTADD");
  BOOST_TEST(number(rows[0], "entity_id") == 800001);
  BOOST_TEST(text(rows[1], "member_id") == A.memberId);
  BOOST_TEST(number(rows[1], "deliveries") == 2);
  BOOST_TEST(text(rows[1], "ids") == ids(repeatedA));
  // B's body was posted on day 4: a window from day 4 keeps it, and drops A's from day 3.
  rows = jsonReport("repeated_deliveries", db, {"--since", day(base + 4 * kDay)});
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_TEST(text(rows[0], "member_id") == B.memberId);
}

BOOST_FIXTURE_TEST_CASE(busiest_entities_ranks_the_deal_updated_in_a_loop_first, ReportDatabase) {
  std::vector<Object::Ptr> rows = jsonReport("busiest_entities", db, {"--limit", "3"});
  BOOST_REQUIRE_EQUAL(rows.size(), 3u);
  BOOST_TEST(text(rows[0], "member_id") == B.memberId);
  BOOST_TEST(text(rows[0], "kind") == "CRMDEAL");
  BOOST_TEST(number(rows[0], "entity_id") == 900001);
  BOOST_TEST(number(rows[0], "events") == 15);  // three updates a day for five days
  BOOST_TEST(text(rows[0], "event_codes") == "ONCRMDEALUPDATE");
  BOOST_TEST(number(rows[1], "events") < 15);
  // The default limit is 20; smart-process items keep their entity type.
  rows = jsonReport("busiest_entities", db, {"--limit", "100000"});
  BOOST_TEST(rows.size() > 20u);
  BOOST_TEST(jsonReport("busiest_entities", db).size() == 20u);
  bool sawItem = false;
  for (const auto& row : rows) {
    if (text(row, "kind") == "CRMDYNAMICITEM") {
      sawItem = true;
      BOOST_TEST(number(row, "entity_type_id") == 1220);
    }
  }
  BOOST_TEST(sawItem);
}

BOOST_AUTO_TEST_CASE(views_show_times_as_iso_text_and_hold_no_token_columns) {
  TempDir dir;
  FakeClock clock(1767261600123);  // 2026-01-01T10:00:00.123Z
  auto settings = testSettings(dir);
  {
    Service service(settings, clock);
    service.start();
    BOOST_REQUIRE_EQUAL(
        postForm(service.ingestUrl(), kPath, b24es::test::sample("01-ONAPPINSTALL.form")).status,
        200);
    service.stop();
  }
  const std::string& db = settings.db.path;
  BOOST_TEST(queryScalar(db, "SELECT received_at_utc FROM events_readable") ==
             "2026-01-01T10:00:00.123Z");
  BOOST_TEST(queryScalar(db, "SELECT ts_utc FROM events_readable") == "2026-01-01T10:00:00Z");
  BOOST_TEST(queryScalar(db, "SELECT expires_utc FROM token_health") == "2026-01-01T11:00:00Z");
  BOOST_TEST(queryScalar(db, "SELECT refresh_token_ends_utc FROM token_health") ==
             "2026-06-30T10:00:00Z");
  BOOST_TEST(queryScalar(db, "SELECT installed_utc FROM portal_activity") ==
             "2026-01-01T10:00:00Z");
  for (const std::string view :
       {"events_readable", "portal_activity", "token_health", "portals_needing_reinstall"}) {
    BOOST_TEST(queryScalar(db, "SELECT count(*) FROM pragma_table_info('" + view +
                                   "') WHERE name IN ('access_token', 'refresh_token', "
                                   "'application_token')") == "0",
               view);
  }
  // No column of these views, read as text, holds one of the sample's token values.
  for (const std::string view : {"token_health", "portal_activity", "portals_needing_reinstall"}) {
    std::string everyColumn = queryScalar(
        db,
        "SELECT group_concat('coalesce(CAST(\"' || name || '\" AS TEXT), '''')', ' || ') "
        "FROM pragma_table_info('" +
            view + "')");
    for (const std::string secret : {"b053566900b7e2a1005a3c4d00000001f8d1386963934cba6bd69a4a9f",
                                     "a0d27d6900b7e2a1005a3c4d000000017e06216efe7d340cfddfee5c84",
                                     "f4a8c2e61b9d7035e8c4a1f6d2b97e53"}) {
      BOOST_TEST(queryScalar(db, "SELECT count(*) FROM " + view + " WHERE instr(" + everyColumn +
                                     ", '" + secret + "') > 0") == "0",
                 view);
    }
  }
}

namespace {

// Every row's first column, on SQLite.
std::vector<std::string> sqliteColumn(const std::string& db, const std::string& sql) {
  Poco::Data::SQLite::Connector::registerConnector();
  Poco::Data::Session session("SQLite", db);
  std::vector<std::string> rows;
  session << sql, Poco::Data::Keywords::into(rows), Poco::Data::Keywords::now;
  return rows;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

// Cases that compare the two backends need the suite's PostgreSQL (scripts/test starts one and
// requires it, so there the case never skips).
boost::test_tools::assertion_result postgresqlAvailable(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result result(b24es::test::pgServerUrl().has_value());
  if (!result) result.message() << "no B24ES_TEST_PG_URL (scripts/test starts a PostgreSQL)";
  return result;
}

}  // namespace

// SPEC §11: PostgreSQL users run the same views with psql. Each view of SPEC §7 has the same
// columns in the same order on both backends (migrations/ and migrations/postgresql/), and the
// text columns show the same text for the same ingest. `events` is a view over event_rows on
// SQLite and a table on PostgreSQL, which has one more column: data_json (its migration 0005).
BOOST_AUTO_TEST_CASE(every_view_has_the_same_columns_and_text_on_sqlite_and_postgresql,
                     *boost::unit_test::precondition(postgresqlAvailable)) {
  TempDir dir;
  FakeClock clock(1767261600123);  // 2026-01-01T10:00:00.123Z
  b24es::Settings sqlite = testSettings(dir);
  b24es::Settings pg = sqlite;
  pg.pg.url = b24es::test::pgDatabaseFor(dir.path());
  for (const b24es::Settings* settings : {&sqlite, &pg}) {
    Service service(*settings, clock);
    service.start();
    for (const char* name : {"01-ONAPPINSTALL.form", "03-ONCRMDEALADD.form"}) {
      BOOST_REQUIRE_EQUAL(postForm(service.ingestUrl(), kPath, b24es::test::sample(name)).status,
                          200);
    }
    service.stop();
  }
  const std::string& db = sqlite.db.path;
  std::vector<std::string> views =
      sqliteColumn(db, "SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name");
  std::vector<std::string> pgViews = b24es::test::pgQuery(
      pg.pg.url,
      "SELECT table_name FROM information_schema.views WHERE table_schema = current_schema() "
      "UNION ALL SELECT 'events' ORDER BY 1");
  BOOST_TEST(joined(views) == joined(pgViews));
  BOOST_TEST(views.size() == 6u, joined(views));
  for (const std::string& view : views) {
    BOOST_TEST_CONTEXT(view) {
      std::string columns = joined(
          sqliteColumn(db, "SELECT name FROM pragma_table_info('" + view + "') ORDER BY cid"));
      std::string pgColumns = joined(b24es::test::pgQuery(
          pg.pg.url,
          "SELECT column_name FROM information_schema.columns WHERE table_schema = "
          "current_schema() AND table_name = '" +
              view + "' ORDER BY ordinal_position"));
      if (view == "events") columns += ",data_json";
      BOOST_TEST(!columns.empty());
      BOOST_TEST(columns == pgColumns);
    }
  }
  // The text columns (times as ISO 8601, states, counts), which do not depend on "now".
  for (const std::string sql :
       {"SELECT received_at_utc FROM events_readable ORDER BY id",
        "SELECT ts_utc FROM events_readable ORDER BY id DESC",
        "SELECT received_day FROM events_readable ORDER BY id",
        "SELECT expires_utc FROM token_health", "SELECT refresh_token_utc FROM token_health",
        "SELECT refresh_token_ends_utc FROM token_health", "SELECT source FROM token_health",
        "SELECT state FROM portal_activity", "SELECT installed_utc FROM portal_activity",
        "SELECT event_count FROM portal_activity", "SELECT first_received_utc FROM portal_activity",
        "SELECT last_received_utc FROM portal_activity", "SELECT last_event FROM portal_activity",
        "SELECT token_count FROM portal_activity",
        "SELECT count(*) FROM portals_needing_reinstall"}) {
    BOOST_TEST_CONTEXT(sql) {
      BOOST_TEST(queryScalar(db, sql) == queryScalar(pg, sql));
      BOOST_TEST(queryScalar(db, sql) != "");
    }
  }
}

BOOST_FIXTURE_TEST_CASE(token_health_view_has_no_token_value_columns, ReportDatabase) {
  // The token refresh migration (0003) adds columns to tokens; the views name theirs, so they
  // never start showing a token value, whatever later migrations add.
  for (const char* view : {"token_health", "portal_activity", "events_readable"}) {
    std::string columns = queryScalar(
        db, std::string("SELECT group_concat(name) FROM pragma_table_info('") + view + "')");
    BOOST_TEST(!columns.empty(), view);
    for (const char* secret : {"access_token", "refresh_token", "application_token"}) {
      BOOST_TEST(("," + columns + ",").find(std::string(",") + secret + ",") == std::string::npos,
                 view << " exposes " << secret);
    }
  }
}

// A form body of an ONCRMDEALADD for portal A (installed by the 01 sample) with a 4 KB comment,
// so that a few thousand of them make a database the backup copies in many steps.
std::string largeDealBody(int dealId, std::int64_t ts) {
  return formEncode({{"event", "ONCRMDEALADD"},
                     {"event_handler_id", "185"},
                     {"data[FIELDS][ID]", std::to_string(dealId)},
                     {"data[FIELDS][COMMENTS]", std::string(4000, 'x')},
                     {"ts", std::to_string(ts)},
                     {"auth[domain]", "acme-test.bitrix24.com"},
                     {"auth[member_id]", "7c1e5a93d2b84f06a9e3c5d71b2f8e40"},
                     {"auth[application_token]", "f4a8c2e61b9d7035e8c4a1f6d2b97e53"}});
}

// Waits (bounded) until `counter` reaches `target`; false when it did not within a minute.
bool waitFor(const std::atomic<int>& counter, int target) {
  for (int i = 0; i < 6000 && counter.load() < target; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return counter.load() >= target;
}

BOOST_AUTO_TEST_CASE(backup_copies_a_database_being_written_as_one_consistent_snapshot) {
  TempDir dir;
  FakeClock clock;
  auto settings = testSettings(dir);
  Service service(settings, clock);
  service.start();
  const std::string url = service.ingestUrl();
  const std::string& db = settings.db.path;
  BOOST_REQUIRE_EQUAL(postForm(url, kPath, b24es::test::sample("01-ONAPPINSTALL.form")).status,
                      200);
  // About 6 MB: the copy takes many steps of the backup API (sqlite3 copies 100 pages a step).
  constexpr int kThreads = 4, kPerThread = 350;
  std::vector<std::thread> fillers;
  for (int t = 0; t < kThreads; ++t) {
    fillers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        postForm(url, kPath, largeDealBody(t * kPerThread + i, clock.nowSeconds()));
      }
    });
  }
  for (auto& f : fillers) f.join();
  const int prefilled = 1 + kThreads * kPerThread;
  BOOST_REQUIRE_EQUAL(queryScalar(db, "SELECT count(*) FROM events"), std::to_string(prefilled));

  // A writer that keeps posting until told to stop (bounded in count).
  std::atomic<bool> stop{false};
  std::atomic<int> posted{0};
  std::thread writer([&] {
    for (int i = 0; i < 100000 && !stop.load(); ++i) {
      if (postForm(url, kPath, largeDealBody(100000 + i, clock.nowSeconds())).status != 200) break;
      ++posted;
    }
  });
  BOOST_REQUIRE(waitFor(posted, 20));
  const std::string dest = dir.file("copy.db");
  ScriptResult backup = runScript("backup", {"--db", db, dest});
  const int postedByBackupEnd = posted.load();
  bool wroteAfter = waitFor(posted, postedByBackupEnd + 20);
  stop = true;
  writer.join();
  service.stop();
  BOOST_REQUIRE_MESSAGE(backup.exitCode == 0, backup.err);
  BOOST_REQUIRE(wroteAfter);

  BOOST_TEST(backup.out.find("integrity_check ok") != std::string::npos, backup.out);
  struct stat st {};
  BOOST_REQUIRE_EQUAL(::stat(dest.c_str(), &st), 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  BOOST_TEST(!Poco::File(dest + "-wal").exists());  // one self-contained file
  BOOST_TEST(queryScalar(dest, "PRAGMA integrity_check") == "ok");

  // The copy is the database as of one moment: ids 1..N with nothing missing, N between the
  // events before the backup started and those after it ended, and its rows equal the source's.
  const long copied = std::stol(queryScalar(dest, "SELECT count(*) FROM events"));
  const long sourceNow = std::stol(queryScalar(db, "SELECT count(*) FROM events"));
  BOOST_TEST_MESSAGE("prefilled " << prefilled << ", posted during the test " << posted.load()
                                  << " (" << postedByBackupEnd << " by the backup's end), copied "
                                  << copied << ", source " << sourceNow);
  BOOST_TEST(queryScalar(dest, "SELECT max(id) FROM events") == std::to_string(copied));
  BOOST_TEST(copied >= prefilled + 20);
  BOOST_TEST(copied <= prefilled + postedByBackupEnd);
  BOOST_TEST(sourceNow > copied);
  const std::string sameRows =
      "SELECT count(*) || ' ' || sum(length(data)) || ' ' || sum(received_at) || ' ' || "
      "sum(entity_id) FROM events WHERE id <= " +
      std::to_string(copied);
  BOOST_TEST(queryScalar(dest, sameRows) == queryScalar(db, sameRows));
  BOOST_TEST(queryScalar(dest, "SELECT count(*) FROM portals") == "1");
  BOOST_TEST(queryScalar(dest, "SELECT count(*) FROM tokens") ==
             queryScalar(db, "SELECT count(*) FROM tokens"));
  // The counts it printed are the copy's.
  BOOST_TEST(backup.out.find(": " + std::to_string(copied) + " events (max id " +
                             std::to_string(copied) + ")") != std::string::npos,
             backup.out);
}

BOOST_AUTO_TEST_CASE(backup_refuses_an_existing_destination_and_a_missing_database) {
  TempDir dir;
  FakeClock clock;
  auto settings = testSettings(dir);
  {
    Service service(settings, clock);  // creates and migrates the database
  }
  const std::string dest = dir.file("exists.db");
  { std::ofstream(dest) << "keep me"; }
  ScriptResult r = runScript("backup", {"--db", settings.db.path, dest});
  BOOST_TEST(r.exitCode == 2);
  BOOST_TEST(r.err.find("exists") != std::string::npos);
  BOOST_TEST(b24es::test::readFile(dest) == "keep me");

  r = runScript("backup", {"--db", dir.file("none.db"), dir.file("copy.db")});
  BOOST_TEST(r.exitCode == 1);
  BOOST_TEST(!Poco::File(dir.file("copy.db")).exists());
  BOOST_TEST(runScript("backup", {"--db", settings.db.path}).exitCode == 2);
  BOOST_TEST(runScript("backup", {"--db", settings.db.path, dir.file("it's.db")}).exitCode == 2);

  r = runScript("backup", {"--db", settings.db.path, dir.file("empty-copy.db")});
  BOOST_TEST(r.exitCode == 0, r.err);
  BOOST_TEST(r.out.find(": 0 events (max id 0), 0 portals, 0 tokens") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_SUITE_END()

// Issue 14: a csv reader (and a cron job alerting on "a line after the header") needs the header
// even when the report has no rows; sqlite3 prints none for an empty result.
BOOST_AUTO_TEST_CASE(every_csv_report_prints_its_header_when_it_has_no_rows) {
  TempDir dir;
  const std::string db = dir.file("empty.db");
  std::string out, err;
  BOOST_REQUIRE_EQUAL(b24es::test::runBinary({"migrate", "--db", db}, out, err), 0);
  Poco::DirectoryIterator end;
  int reports = 0;
  for (Poco::DirectoryIterator it(std::string(B24ES_SOURCE_DIR) + "/scripts/reports"); it != end;
       ++it) {
    if (Poco::Path(it.name()).getExtension() != "sql") continue;
    const std::string name = Poco::Path(it.name()).getBaseName();
    ++reports;
    ScriptResult csv = report(name, db, {"--format", "csv"});
    BOOST_REQUIRE_EQUAL(csv.exitCode, 0);
    BOOST_TEST(std::count(csv.out.begin(), csv.out.end(), '\n') == 1, name << ": " << csv.out);
    BOOST_TEST(csv.out.find(',') < csv.out.find('\n'), name << ": " << csv.out);
  }
  BOOST_TEST(reports == 7);
}
