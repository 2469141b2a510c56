// The query API (SPEC §5) end to end: a Service in-process on port 0, fed through the real
// ingest path (the Bitrix24 samples and generated events of two portals, POSTed with their
// tokens), then asked over real HTTP. The test keeps its own model of what it posted and
// compares every answer with it.
#define BOOST_TEST_MODULE query_api
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/DateTimeFormatter.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/RegularExpression.h>
#include <Poco/String.h>
#include <Poco/StringTokenizer.h>
#include <Poco/URI.h>

#include <algorithm>
#include <functional>
#include <iterator>
#include <optional>
#include <set>

#include "portal_state.h"
#include "query_handler.h"
#include "service.h"
#include "test_support.h"
#include "token_store.h"

namespace {

using b24es::test::HttpResult;
using Poco::JSON::Array;
using Poco::JSON::Object;
using Fields = std::vector<std::pair<std::string, std::string>>;

const std::string kMemberA = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";
const std::string kDomainA = "acme-test.bitrix24.com";
const std::string kAppTokenA = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";
const std::string kMemberB = "b2d6f0c4e8a1937560bd4f2a8c1e7d93";
const std::string kDomainB = "globex.bitrix24.eu";
const std::string kAppTokenB = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::int64_t kNow = 1767261600;  // FakeClock's default, 2026-01-01T10:00:00Z

// What the test posted and the store acknowledged, as the API should report it.
struct Posted {
  std::int64_t id = 0;
  std::string member;
  std::string domain;
  std::string event;
  std::optional<std::int64_t> entityId;
  std::optional<std::int64_t> entityTypeId;
  std::optional<std::int64_t> userId;
  std::optional<std::int64_t> ts;
};

std::string encoded(const std::string& text) {
  std::string out;
  Poco::URI::encode(text, "!#$&'()*+,/:;=?@[]", out);
  return out;
}

std::string formOf(const Fields& fields) {
  std::string body;
  for (const auto& [key, value] : fields) {
    if (!body.empty()) body += '&';
    body += encoded(key) + "=" + encoded(value);
  }
  return body;
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Every token value in a form body: the strings no response may ever contain.
void collectSecrets(const std::string& form, std::set<std::string>& secrets) {
  Poco::StringTokenizer pairs(form, "&");
  for (const std::string& pair : pairs) {
    std::size_t eq = pair.find('=');
    if (eq == std::string::npos) continue;
    std::string key, value;
    Poco::URI::decode(pair.substr(0, eq), key, true);
    Poco::URI::decode(pair.substr(eq + 1), value, true);
    if (endsWith(key, "[access_token]") || endsWith(key, "[refresh_token]") ||
        endsWith(key, "[application_token]")) {
      secrets.insert(value);
    }
  }
}

// `unixSeconds` as ISO 8601 in the time zone `tzd` seconds east of UTC (Poco's formatter only
// prints the offset, so the time is shifted here).
std::string iso(std::int64_t unixSeconds, int tzd = 0) {
  return Poco::DateTimeFormatter::format(Poco::Timestamp::fromEpochTime(unixSeconds + tzd),
                                         "%Y-%m-%dT%H:%M:%S%z", tzd);
}

// `unixSeconds` as the API prints times (SPEC §5: ISO 8601 UTC, seconds).
std::string isoUtc(std::int64_t unixSeconds) {
  return Poco::DateTimeFormatter::format(Poco::Timestamp::fromEpochTime(unixSeconds),
                                         "%Y-%m-%dT%H:%M:%SZ");
}

// A running service, what was posted to it, and every answer it gave.
class Api {
 public:
  explicit Api(const std::string& queryToken = {}) : settings_(b24es::test::testSettings(dir_)) {
    settings_.query.token = queryToken;
    settings_.db.synchronous = "normal";  // durability is not under test here; speed is welcome
    service_ = std::make_unique<b24es::Service>(settings_, clock_);
    service_->start();
  }
  ~Api() { service_->stop(); }

  // POSTs a form body; on 200 records the event in the model with the id the store gave it.
  HttpResult postForm(const std::string& body, Posted meta) {
    collectSecrets(body, secrets);
    HttpResult r = b24es::test::postForm(service_->ingestUrl(), settings_.ingest.path, body);
    answers.push_back(r.body);
    if (r.status == 200) {
      meta.id = r.json()->getValue<std::int64_t>("id");
      posted.push_back(meta);
    }
    return r;
  }

  // GET (or another method) on the query listener, with the bearer token when configured,
  // unless `headers` has its own Authorization or `authorize` is false.
  HttpResult request(const std::string& method, const std::string& target,
                     std::map<std::string, std::string> headers = {}, bool authorize = true) {
    if (authorize && !settings_.query.token.empty() && !headers.count("Authorization")) {
      headers["Authorization"] = "Bearer " + settings_.query.token;
    }
    HttpResult r = b24es::test::httpRequest(service_->queryUrl(), method, target, {}, {}, headers);
    answers.push_back(r.body);
    for (const auto& [name, value] : r.headers) answers.push_back(name + ": " + value);
    return r;
  }
  HttpResult get(const std::string& target) { return request("GET", target); }

  // Ids of the posted events that satisfy `match`, ascending.
  std::vector<std::int64_t> ids(const std::function<bool(const Posted&)>& match) const {
    std::vector<std::int64_t> out;
    for (const Posted& p : posted) {
      if (match(p)) out.push_back(p.id);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  const Posted& byId(std::int64_t id) const {
    for (const Posted& p : posted) {
      if (p.id == id) return p;
    }
    throw std::runtime_error("no posted event " + std::to_string(id));
  }

  // The Bitrix24 samples of portal A, an install of portal B, and 60 generated events spread
  // over both portals, four event codes, five entities, two smart-process types, two users (and
  // none), one minute apart; plus a bot event whose data carries the bot's tokens.
  void populate() {
    auto sample = [this](const std::string& name, Posted meta) {
      meta.member = kMemberA;
      meta.domain = kDomainA;
      BOOST_REQUIRE_EQUAL(postForm(b24es::test::sample(name), meta).status, 200);
    };
    sample("01-ONAPPINSTALL.form", {0, "", "", "ONAPPINSTALL", {}, {}, 1, 1767261600});
    sample("03-ONCRMDEALADD.form", {0, "", "", "ONCRMDEALADD", 7405, {}, 9, 1767262200});
    sample("06-ONCRMCONTACTADD.form", {0, "", "", "ONCRMCONTACTADD", 264442, {}, 9, 1767262380});
    sample("09-ONCRMTIMELINECOMMENTADD.form",
           {0, "", "", "ONCRMTIMELINECOMMENTADD", 999, {}, 9, 1767262560});
    sample("12-ONCRMDYNAMICITEMADD.form",
           {0, "", "", "ONCRMDYNAMICITEMADD", 22, 1220, 9, 1767262740});
    sample("21-ONCRMDEALUPDATE-notokens.form",
           {0, "", "", "ONCRMDEALUPDATE", 7405, {}, {}, 1767263280});
    {
      std::string json = b24es::test::sample("41-ONCRMDEALADD.json");
      secrets.insert("0856566900b7e2a1005a3c4d000000096d1c33ee95d56cac0296ea4a555d266d4ababb");
      HttpResult r = b24es::test::postJson(service_->ingestUrl(), settings_.ingest.path, json);
      BOOST_REQUIRE_EQUAL(r.status, 200);
      posted.push_back({r.json()->getValue<std::int64_t>("id"),
                        kMemberA,
                        kDomainA,
                        "ONCRMDEALADD",
                        7405,
                        {},
                        9,
                        1767262200});
    }
    BOOST_REQUIRE_EQUAL(
        postForm(formOf(installB()), {0, kMemberB, kDomainB, "ONAPPINSTALL", {}, {}, 1, 1767270000})
            .status,
        200);
    const char* codes[] = {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMCONTACTADD",
                           "ONCRMDYNAMICITEMADD"};
    for (int i = 0; i < 60; ++i) {
      const bool b = i % 2 == 1;
      Posted meta{
          0,  b ? kMemberB : kMemberA, b ? kDomainB : kDomainA, codes[i % 4], 100 + i % 5, {},
          {}, 1767280000 + i * 60};
      if (i % 4 == 3) meta.entityTypeId = i % 8 == 3 ? 1220 : 1240;
      if (i % 3 != 2) meta.userId = 1 + i % 3;
      Fields f{{"event", meta.event},
               {"event_handler_id", std::to_string(200 + i % 4)},
               {"data[FIELDS][ID]", std::to_string(*meta.entityId)},
               {"ts", std::to_string(*meta.ts)}};
      if (meta.entityTypeId) {
        f.emplace_back("data[FIELDS][ENTITY_TYPE_ID]", std::to_string(*meta.entityTypeId));
      }
      f.emplace_back("auth[domain]", meta.domain);
      f.emplace_back("auth[member_id]", meta.member);
      f.emplace_back("auth[application_token]", b ? kAppTokenB : kAppTokenA);
      if (meta.userId) {
        f.emplace_back("auth[user_id]", std::to_string(*meta.userId));
        f.emplace_back("auth[access_token]", "access-" + std::to_string(i) + "-9f3b2c71d0e4");
        // user 2's tokens of portal B are already expired, the others valid for an hour
        f.emplace_back("auth[expires]",
                       std::to_string(kNow + (b && *meta.userId == 2 ? -60 : 3600) + i));
      }
      BOOST_REQUIRE_EQUAL(postForm(formOf(f), meta).status, 200);
    }
    Fields bot{{"event", "ONIMBOTMESSAGEADD"},
               {"data[BOT][77][access_token]", "bot-access-5e1f0a9c7b3d"},
               {"data[BOT][77][refresh_token]", "bot-refresh-8d2a6c4e0f1b"},
               {"data[BOT][77][expires]", std::to_string(kNow + 3600)},
               {"data[PARAMS][MESSAGE]", "hello"},
               {"ts", "1767290000"},
               {"auth[domain]", kDomainA},
               {"auth[member_id]", kMemberA},
               {"auth[user_id]", "1"},
               {"auth[application_token]", kAppTokenA}};
    BOOST_REQUIRE_EQUAL(
        postForm(formOf(bot), {0, kMemberA, kDomainA, "ONIMBOTMESSAGEADD", {}, {}, 1, 1767290000})
            .status,
        200);
  }

  static Fields installB() {
    return {{"event", "ONAPPINSTALL"},
            {"event_handler_id", "11"},
            {"data[VERSION]", "1"},
            {"ts", "1767270000"},
            {"auth[access_token]", "b-install-access-71c3e9d05a2f"},
            {"auth[expires]", std::to_string(kNow + 3600)},
            {"auth[scope]", "crm"},
            {"auth[domain]", kDomainB},
            {"auth[server_endpoint]", "https://oauth.bitrix.info/rest/"},
            {"auth[status]", "P"},
            {"auth[client_endpoint]", "https://" + kDomainB + "/rest/"},
            {"auth[member_id]", kMemberB},
            {"auth[user_id]", "1"},
            {"auth[refresh_token]", "b-install-refresh-0e8d4b6a2c19"},
            {"auth[application_token]", kAppTokenB}};
  }

  b24es::Service& service() { return *service_; }
  b24es::test::FakeClock& clock() { return clock_; }
  const b24es::Settings& settings() const { return settings_; }

  std::vector<Posted> posted;        // acknowledged events, in posting order
  std::set<std::string> secrets;     // every token value posted
  std::vector<std::string> answers;  // every body and header line received

 private:
  b24es::test::TempDir dir_;
  b24es::test::FakeClock clock_;
  b24es::Settings settings_;
  std::unique_ptr<b24es::Service> service_;
};

std::vector<std::int64_t> itemIds(const HttpResult& r) {
  std::vector<std::int64_t> ids;
  Array::Ptr items = r.json()->getArray("items");
  for (std::size_t i = 0; i < items->size(); ++i) {
    ids.push_back(items->getObject(static_cast<unsigned>(i))->getValue<std::int64_t>("id"));
  }
  return ids;
}

// Follows next_after_id from the first page to the last; fails on a page over `limit`, a
// short page with a cursor, a cursor that is not the page's last id, or more than 1000 pages.
std::vector<std::int64_t> walk(Api& api, const std::string& query, int limit, bool desc) {
  std::vector<std::int64_t> ids;
  std::optional<std::int64_t> after;
  for (int page = 0; page < 1000; ++page) {
    std::string target = "/api/v1/events?limit=" + std::to_string(limit) +
                         (desc ? "&order=desc" : "") + (query.empty() ? "" : "&" + query) +
                         (after ? "&after_id=" + std::to_string(*after) : "");
    HttpResult r = api.get(target);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    std::vector<std::int64_t> pageIds = itemIds(r);
    BOOST_REQUIRE_LE(pageIds.size(), static_cast<std::size_t>(limit));
    ids.insert(ids.end(), pageIds.begin(), pageIds.end());
    if (r.json()->isNull("next_after_id")) return ids;
    BOOST_REQUIRE_EQUAL(pageIds.size(), static_cast<std::size_t>(limit));
    after = r.json()->getValue<std::int64_t>("next_after_id");
    BOOST_REQUIRE_EQUAL(*after, pageIds.back());
  }
  BOOST_FAIL("the cursor walk did not end within 1000 pages");
  return ids;
}

std::string errorCode(const HttpResult& r) { return r.json()->getValue<std::string>("error"); }

// Whether two parsed JSON values are the same data: objects by their keys in any order, lists
// in order, strings byte for byte, numbers by value (jsonb prints 2.5e3 as 2500: a double
// against an integer). Hand-written: Poco's Var compares 2500.0 and 2500 as different types.
// On a difference, `where` names it.
bool sameJson(const Poco::Dynamic::Var& a, const Poco::Dynamic::Var& b, const std::string& path,
              std::string& where) {
  auto differ = [&](const std::string& what) {
    where = path + ": " + what;
    return false;
  };
  if (a.type() == typeid(Object::Ptr) || b.type() == typeid(Object::Ptr)) {
    if (a.type() != b.type()) return differ("an object against something else");
    Object::Ptr x = a.extract<Object::Ptr>(), y = b.extract<Object::Ptr>();
    if (x->size() != y->size()) return differ("another number of members");
    for (const auto& [key, value] : *x) {
      if (!y->has(key)) return differ("no member '" + key + "'");
      if (!sameJson(value, y->get(key), path + "." + key, where)) return false;
    }
    return true;
  }
  if (a.type() == typeid(Array::Ptr) || b.type() == typeid(Array::Ptr)) {
    if (a.type() != b.type()) return differ("a list against something else");
    Array::Ptr x = a.extract<Array::Ptr>(), y = b.extract<Array::Ptr>();
    if (x->size() != y->size()) return differ("lists of other lengths");
    for (unsigned i = 0; i < x->size(); ++i) {
      if (!sameJson(x->get(i), y->get(i), path + "[" + std::to_string(i) + "]", where)) {
        return false;
      }
    }
    return true;
  }
  if (a.isEmpty() || b.isEmpty()) return a.isEmpty() == b.isEmpty() || differ("null");
  if (a.isString() || b.isString()) {
    if (!a.isString() || !b.isString()) return differ("a string against something else");
    return a.extract<std::string>() == b.extract<std::string>() || differ("other text");
  }
  if (a.isBoolean() || b.isBoolean()) {
    if (!a.isBoolean() || !b.isBoolean()) return differ("a boolean against something else");
    return a.convert<bool>() == b.convert<bool>() || differ(a.toString() + " != " + b.toString());
  }
  if (a.isInteger() && b.isInteger()) {
    return a.toString() == b.toString() || differ(a.toString() + " != " + b.toString());
  }
  return a.convert<double>() == b.convert<double>() || differ(a.toString() + " != " + b.toString());
}

}  // namespace

BOOST_AUTO_TEST_CASE(lists_a_portals_events_of_one_code_case_insensitively) {
  Api api;
  api.populate();
  HttpResult r = api.get("/api/v1/events?member_id=" + kMemberA + "&event=oncrmdealadd");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  std::vector<std::int64_t> expected =
      api.ids([](const Posted& p) { return p.member == kMemberA && p.event == "ONCRMDEALADD"; });
  BOOST_CHECK_GE(expected.size(), 3u);
  std::vector<std::int64_t> got = itemIds(r);
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
  BOOST_CHECK(r.json()->isNull("next_after_id"));
}

BOOST_AUTO_TEST_CASE(each_filter_alone_returns_exactly_the_matching_events) {
  Api api;
  api.populate();
  const std::int64_t from = 1767280000 + 10 * 60, to = 1767280000 + 30 * 60;
  struct Case {
    std::string query;
    std::function<bool(const Posted&)> match;
  };
  const std::vector<Case> cases = {
      {"member_id=" + kMemberB, [](const Posted& p) { return p.member == kMemberB; }},
      {"domain=" + kDomainA, [](const Posted& p) { return p.domain == kDomainA; }},
      {"event=OnCrmDynamicItemAdd",
       [](const Posted& p) { return p.event == "ONCRMDYNAMICITEMADD"; }},
      {"entity_id=7405", [](const Posted& p) { return p.entityId == 7405; }},
      {"entity_id=102", [](const Posted& p) { return p.entityId == 102; }},
      {"entity_type_id=1240", [](const Posted& p) { return p.entityTypeId == 1240; }},
      {"user_id=2", [](const Posted& p) { return p.userId == 2; }},
      {"from=" + std::to_string(from), [&](const Posted& p) { return p.ts && *p.ts >= from; }},
      {"to=" + std::to_string(to), [&](const Posted& p) { return p.ts && *p.ts <= to; }},
      {"from=" + encoded(iso(from, 10800)) + "&to=" + encoded(iso(to)),
       [&](const Posted& p) { return p.ts && *p.ts >= from && *p.ts <= to; }},
      {"from=" + std::to_string(to) + "&to=" + std::to_string(to),
       [&](const Posted& p) { return p.ts == to; }},
      {"member_id=nobody", [](const Posted&) { return false; }},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.query) {
      HttpResult r = api.get("/api/v1/events?limit=1000&" + c.query);
      BOOST_REQUIRE_EQUAL(r.status, 200);
      std::vector<std::int64_t> expected = api.ids(c.match), got = itemIds(r);
      BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
    }
  }
}

BOOST_AUTO_TEST_CASE(every_combination_of_filters_returns_exactly_the_matching_events) {
  Api api;
  api.populate();
  // Two reference events that have every field; each subset of their values is a query.
  std::vector<std::int64_t> references;
  for (const std::string& member : {kMemberA, kMemberB}) {
    references.push_back(
        api.ids([&](const Posted& p) { return p.member == member && p.entityTypeId && p.userId; })
            .at(0));
  }
  int requests = 0;
  for (std::int64_t refId : references) {
    const Posted ref = api.byId(refId);
    for (unsigned mask = 1; mask < 256; ++mask) {
      std::string query;
      auto add = [&](const std::string& name, const std::string& value) {
        query += "&" + name + "=" + encoded(value);
      };
      if (mask & 1u) add("member_id", ref.member);
      if (mask & 2u) add("domain", ref.domain);
      if (mask & 4u) add("event", mask & 8u ? ref.event : Poco::toLower(ref.event));
      if (mask & 8u) add("entity_id", std::to_string(*ref.entityId));
      if (mask & 16u) add("entity_type_id", std::to_string(*ref.entityTypeId));
      if (mask & 32u) add("user_id", std::to_string(*ref.userId));
      if (mask & 64u) add("from", std::to_string(*ref.ts - 1800));
      if (mask & 128u) add("to", iso(*ref.ts + 600));
      const bool desc = mask % 3 == 0;
      if (desc) query += "&order=desc";
      std::vector<std::int64_t> expected = api.ids([&](const Posted& p) {
        return (!(mask & 1u) || p.member == ref.member) &&
               (!(mask & 2u) || p.domain == ref.domain) && (!(mask & 4u) || p.event == ref.event) &&
               (!(mask & 8u) || p.entityId == ref.entityId) &&
               (!(mask & 16u) || p.entityTypeId == ref.entityTypeId) &&
               (!(mask & 32u) || p.userId == ref.userId) &&
               (!(mask & 64u) || (p.ts && *p.ts >= *ref.ts - 1800)) &&
               (!(mask & 128u) || (p.ts && *p.ts <= *ref.ts + 600));
      });
      if (desc) std::reverse(expected.begin(), expected.end());
      BOOST_TEST_CONTEXT("ref " << refId << " query " << query) {
        HttpResult r = api.get("/api/v1/events?limit=1000" + query);
        BOOST_REQUIRE_EQUAL(r.status, 200);
        std::vector<std::int64_t> got = itemIds(r);
        BOOST_CHECK(std::find(got.begin(), got.end(), refId) != got.end());
        BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
      }
      ++requests;
    }
  }
  BOOST_CHECK_EQUAL(requests, 510);
}

BOOST_AUTO_TEST_CASE(cursor_walk_visits_every_event_once_in_both_orders) {
  Api api;
  api.populate();
  std::vector<std::int64_t> all = api.ids([](const Posted&) { return true; });
  BOOST_REQUIRE_GT(all.size(), 60u);

  std::vector<std::int64_t> asc = walk(api, "", 7, false);
  BOOST_CHECK_EQUAL_COLLECTIONS(asc.begin(), asc.end(), all.begin(), all.end());

  std::vector<std::int64_t> desc = walk(api, "", 7, true);
  std::vector<std::int64_t> reversed(all.rbegin(), all.rend());
  BOOST_CHECK_EQUAL_COLLECTIONS(desc.begin(), desc.end(), reversed.begin(), reversed.end());

  std::vector<std::int64_t> portalB = api.ids([](const Posted& p) { return p.member == kMemberB; });
  std::vector<std::int64_t> walkedB = walk(api, "member_id=" + kMemberB, 3, false);
  BOOST_CHECK_EQUAL_COLLECTIONS(walkedB.begin(), walkedB.end(), portalB.begin(), portalB.end());
  std::vector<std::int64_t> walkedBDesc = walk(api, "member_id=" + kMemberB, 4, true);
  std::reverse(portalB.begin(), portalB.end());
  BOOST_CHECK_EQUAL_COLLECTIONS(walkedBDesc.begin(), walkedBDesc.end(), portalB.begin(),
                                portalB.end());

  // A page that ends exactly at the last event says so: no cursor to an empty page.
  HttpResult exact = api.get("/api/v1/events?limit=" + std::to_string(all.size()));
  BOOST_CHECK(exact.json()->isNull("next_after_id"));
  // The default page is 100 events.
  BOOST_CHECK_EQUAL(itemIds(api.get("/api/v1/events")).size(),
                    std::min<std::size_t>(100, all.size()));
}

BOOST_AUTO_TEST_CASE(after_id_continues_upwards_or_downwards_by_order) {
  Api api;
  api.populate();
  std::vector<std::int64_t> all = api.ids([](const Posted&) { return true; });
  const std::int64_t middle = all[all.size() / 2];
  std::vector<std::int64_t> up =
      itemIds(api.get("/api/v1/events?limit=2&after_id=" + std::to_string(middle)));
  std::vector<std::int64_t> down =
      itemIds(api.get("/api/v1/events?limit=2&order=desc&after_id=" + std::to_string(middle)));
  BOOST_REQUIRE_EQUAL(up.size(), 2u);
  BOOST_REQUIRE_EQUAL(down.size(), 2u);
  BOOST_CHECK_EQUAL(up[0], all[all.size() / 2 + 1]);
  BOOST_CHECK_EQUAL(up[1], all[all.size() / 2 + 2]);
  BOOST_CHECK_EQUAL(down[0], all[all.size() / 2 - 1]);
  BOOST_CHECK_EQUAL(down[1], all[all.size() / 2 - 2]);
  BOOST_CHECK(itemIds(api.get("/api/v1/events?order=desc&after_id=0")).empty());
  BOOST_CHECK(itemIds(api.get("/api/v1/events?after_id=" + std::to_string(all.back()))).empty());
}

BOOST_AUTO_TEST_CASE(an_event_has_every_field_of_spec_5_with_data_as_an_object) {
  Api api;
  api.populate();
  std::int64_t id =
      api.ids([](const Posted& p) {
           return p.member == kMemberA && p.event == "ONCRMDYNAMICITEMADD" && p.entityId == 22;
         })
          .at(0);
  HttpResult r = api.get("/api/v1/events/" + std::to_string(id));
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_CHECK_EQUAL(r.headers["Content-Type"], "application/json");
  Object::Ptr e = r.json();
  BOOST_CHECK_EQUAL(e->size(), 13u);
  BOOST_CHECK_EQUAL(e->getValue<std::string>("source"), "online");  // v2 (issue 12)
  BOOST_CHECK_EQUAL(e->getValue<std::int64_t>("id"), id);
  BOOST_CHECK_EQUAL(e->getValue<std::string>("event"), "ONCRMDYNAMICITEMADD");
  BOOST_CHECK_EQUAL(e->getValue<std::string>("member_id"), kMemberA);
  BOOST_CHECK_EQUAL(e->getValue<std::string>("domain"), kDomainA);
  BOOST_CHECK_EQUAL(e->getValue<std::int64_t>("event_handler_id"), 194);
  BOOST_CHECK(e->has("event_id") && e->isNull("event_id"));
  BOOST_CHECK_EQUAL(e->getValue<std::int64_t>("ts"), 1767262740);
  BOOST_CHECK_EQUAL(e->getValue<std::string>("received_at"), "2026-01-01T10:00:00.000Z");
  BOOST_CHECK_EQUAL(e->getValue<std::int64_t>("user_id"), 9);
  BOOST_CHECK_EQUAL(e->getValue<std::int64_t>("entity_id"), 22);
  BOOST_CHECK_EQUAL(e->getValue<std::int64_t>("entity_type_id"), 1220);
  BOOST_REQUIRE(e->isObject("data"));
  BOOST_CHECK_EQUAL(
      e->getObject("data")->getObject("FIELDS")->getValue<std::string>("ENTITY_TYPE_ID"), "1220");

  // The same event in a list is the same object.
  HttpResult list = api.get("/api/v1/events?entity_type_id=1220&member_id=" + kMemberA);
  BOOST_CHECK(list.body.find(r.body) != std::string::npos);

  // An event without auth.user_id has null there.
  std::int64_t noUser = api.ids([](const Posted& p) { return !p.userId; }).at(0);
  BOOST_CHECK(api.get("/api/v1/events/" + std::to_string(noUser)).json()->isNull("user_id"));
}

// SPEC §5: `data` is served as decoded. PostgreSQL keeps it as jsonb, which prints it its own
// way (keys reordered, spaces, numbers normalised), so the answers are compared as parsed JSON
// with the data posted: every string byte for byte, every number by value, the same structure.
BOOST_AUTO_TEST_CASE(event_data_is_served_as_decoded_whatever_its_characters_and_numbers) {
  Api api;
  BOOST_REQUIRE_EQUAL(api.postForm(b24es::test::sample("01-ONAPPINSTALL.form"), {}).status, 200);
  std::string controls;
  for (char c = 1; c < 0x20; ++c) controls += c;
  const std::vector<std::string> texts = {
      "plain",
      "quote \" backslash \\ slash / apostrophe '",
      controls + "\x7f",
      "tab\tnewline\ncarriage\r",
      "Grüße, Привет, 中文, emoji 🎉, U+2028 \u2028 U+FEFF \ufeff",
      "<b>&amp;</b> %41 + = & ? #",
      "\\u0041 is not an escape here",
      "",
      std::string(3000, 'x'),
  };
  // Through the form path, as Bitrix24 posts: every value is a string.
  std::vector<std::int64_t> formIds;
  for (const std::string& text : texts) {
    Fields f{{"event", "ONCRMDEALUPDATE"},
             {"data[FIELDS][ID]", "8001"},
             {"data[FIELDS][TEXT]", text},
             {"data[FIELDS][KEY é \"q\"]", text},
             {"auth[domain]", kDomainA},
             {"auth[member_id]", kMemberA},
             {"auth[application_token]", kAppTokenA}};
    HttpResult r = api.postForm(formOf(f), {});
    BOOST_REQUIRE_EQUAL(r.status, 200);
    formIds.push_back(r.json()->getValue<std::int64_t>("id"));
  }
  for (std::size_t i = 0; i < texts.size(); ++i) {
    BOOST_TEST_CONTEXT("text " << i) {
      Object::Ptr fields = api.get("/api/v1/events/" + std::to_string(formIds[i]))
                               .json()
                               ->getObject("data")
                               ->getObject("FIELDS");
      BOOST_CHECK_EQUAL(fields->size(), 3u);
      BOOST_CHECK_EQUAL(fields->getValue<std::string>("ID"), "8001");
      BOOST_CHECK(fields->getValue<std::string>("TEXT") == texts[i]);
      BOOST_CHECK(fields->getValue<std::string>("KEY é \"q\"") == texts[i]);
    }
  }
  // Through a JSON body: numbers, booleans, nulls, lists and empty containers too.
  const std::string data =
      R"({"FIELDS":{"ID":8002,"TITLE":"Grüße \"quoted\" \\ \u00e9\ud83c\udf89\t"},)"
      R"("NUMBERS":{"int":42,"neg":-7,"zero":0,"big":9007199254740993,)"
      R"("max":9223372036854775807,"min":-9223372036854775808,"real":1.5,"exp":2.5e3,)"
      R"("small":-0.125,"trailing":1.50},)"
      R"("FLAGS":[true,false,null],"NESTED":{"b":{"a":["x",{"d":"y"},[1,[2,[]]]]}},)"
      R"("EMPTY_OBJECT":{},"EMPTY_LIST":[],"zz":"last","a":"first","":"empty key"})";
  const std::string body = R"({"event":"ONCRMDEALUPDATE","data":)" + data +
                           R"(,"auth":{"domain":")" + kDomainA + R"(","member_id":")" + kMemberA +
                           R"(","application_token":")" + kAppTokenA + R"("}})";
  HttpResult posted =
      b24es::test::postJson(api.service().ingestUrl(), api.settings().ingest.path, body);
  BOOST_REQUIRE_EQUAL(posted.status, 200);
  const std::int64_t id = posted.json()->getValue<std::int64_t>("id");
  HttpResult one = api.get("/api/v1/events/" + std::to_string(id));
  BOOST_REQUIRE_EQUAL(one.status, 200);
  BOOST_CHECK_EQUAL(one.json()->getValue<std::int64_t>("entity_id"), 8002);
  std::string difference;
  // The comparison itself tells what differs.
  for (const auto& [x, y] : std::vector<std::pair<std::string, std::string>>{
           {R"({"a":1})", R"({"a":2})"},
           {R"({"a":1})", R"({"a":"1"})"},
           {R"({"a":[1,2]})", R"({"a":[2,1]})"},
           {R"({"a":{}})", R"({"a":{},"b":null})"},
           {R"({"a":1.5})", R"({"a":1.25})"},
           {R"({"a":9007199254740993})", R"({"a":9007199254740992})"},
           {R"({"a":true})", R"({"a":1})"}}) {
    BOOST_CHECK_MESSAGE(
        !sameJson(Poco::JSON::Parser().parse(x), Poco::JSON::Parser().parse(y), "data", difference),
        x << " and " << y << " compare equal");
  }
  BOOST_CHECK(sameJson(Poco::JSON::Parser().parse(R"({"a":2500,"b":[1]})"),
                       Poco::JSON::Parser().parse(R"({"b":[1],"a":2.5e3})"), "data", difference));
  Poco::Dynamic::Var expected = Poco::JSON::Parser().parse(data);
  BOOST_CHECK_MESSAGE(sameJson(expected, one.json()->get("data"), "data", difference),
                      difference << " in " << one.body);
  // The list serves the same data.
  HttpResult list = api.get(
      "/api/v1/events?event=ONCRMDEALUPDATE&after_id=" + std::to_string(id - 1) + "&limit=1");
  BOOST_REQUIRE(itemIds(list) == std::vector<std::int64_t>{id});
  BOOST_CHECK_MESSAGE(sameJson(expected, list.json()->getArray("items")->getObject(0)->get("data"),
                               "data", difference),
                      difference);
}

BOOST_AUTO_TEST_CASE(portals_show_counts_last_event_and_token_metadata_only) {
  Api api;
  api.populate();
  HttpResult r = api.get("/api/v1/portals");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  Array::Ptr items = r.json()->getArray("items");
  BOOST_REQUIRE_EQUAL(items->size(), 2u);
  BOOST_CHECK_EQUAL(items->getObject(0)->getValue<std::string>("member_id"), kMemberA);
  BOOST_CHECK_EQUAL(items->getObject(1)->getValue<std::string>("member_id"), kMemberB);
  for (unsigned i = 0; i < 2; ++i) {
    Object::Ptr p = items->getObject(i);
    const std::string member = p->getValue<std::string>("member_id");
    BOOST_TEST_CONTEXT(member) {
      BOOST_CHECK_EQUAL(p->size(), 13u);  // with v2's bindings and offline (issue 12)
      BOOST_CHECK_EQUAL(p->getArray("bindings")->size(), 0u);
      BOOST_CHECK(p->isNull("offline"));
      std::vector<std::int64_t> events =
          api.ids([&](const Posted& e) { return e.member == member; });
      BOOST_CHECK_EQUAL(p->getValue<std::int64_t>("event_count"),
                        static_cast<std::int64_t>(events.size()));
      BOOST_CHECK_EQUAL(p->getValue<std::int64_t>("last_event_ts"), *api.byId(events.back()).ts);
      BOOST_CHECK_EQUAL(p->getValue<std::string>("installed_at"), "2026-01-01T10:00:00Z");
      BOOST_CHECK(p->isNull("uninstalled_at"));
      BOOST_CHECK(!p->has("application_token"));
      Array::Ptr tokens = p->getArray("tokens");
      BOOST_CHECK_GE(tokens->size(), 2u);
      for (unsigned t = 0; t < tokens->size(); ++t) {
        Object::Ptr token = tokens->getObject(t);
        BOOST_CHECK_EQUAL(token->size(), 6u);
        BOOST_CHECK(!token->has("access_token") && !token->has("refresh_token"));
        std::string expiresAt = token->getValue<std::string>("expires_at");
        BOOST_CHECK(Poco::RegularExpression("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$")
                        .match(expiresAt));
        BOOST_CHECK(token->isNull("last_refresh_at"));
        BOOST_CHECK(token->isNull("last_refresh_error"));
      }
    }
  }
  // Portal B: the installing user's token (refreshable, valid) and user 2's expired one.
  HttpResult b = api.get("/api/v1/portals/" + kMemberB);
  BOOST_REQUIRE_EQUAL(b.status, 200);
  BOOST_CHECK_EQUAL(b.json()->getValue<std::string>("domain"), kDomainB);
  BOOST_CHECK_EQUAL(b.json()->getValue<std::string>("status"), "P");
  Array::Ptr tokens = b.json()->getArray("tokens");
  BOOST_REQUIRE_EQUAL(tokens->size(), 2u);
  BOOST_CHECK_EQUAL(tokens->getObject(0)->getValue<std::int64_t>("user_id"), 1);
  BOOST_CHECK(tokens->getObject(0)->getValue<bool>("has_refresh_token"));
  BOOST_CHECK(!tokens->getObject(0)->getValue<bool>("expired"));
  BOOST_CHECK_EQUAL(tokens->getObject(1)->getValue<std::int64_t>("user_id"), 2);
  BOOST_CHECK(!tokens->getObject(1)->getValue<bool>("has_refresh_token"));
  BOOST_CHECK(tokens->getObject(1)->getValue<bool>("expired"));
  // Portal A also has the bot's token under the bot's user id.
  HttpResult a = api.get("/api/v1/portals/" + kMemberA);
  BOOST_CHECK(a.body.find("\"user_id\":77") != std::string::npos);

  BOOST_CHECK_EQUAL(api.get("/api/v1/portals/" + std::string(32, '0')).status, 404);
}

// Issue 13: 20,000 portals made /api/v1/portals answer 9.2 MB in one page.
BOOST_AUTO_TEST_CASE(portals_come_in_pages_in_member_id_order) {
  Api api;
  std::vector<std::string> members;
  for (int i = 0; i < 7; ++i) {
    Fields install = Api::installB();
    const std::string member = "m" + std::to_string(7 - i) + "-portal";  // posted out of order
    for (auto& [key, value] : install) {
      if (key == "auth[member_id]") value = member;
      if (key == "auth[application_token]") value = "app-token-" + member;
    }
    BOOST_REQUIRE_EQUAL(api.postForm(formOf(install), {}).status, 200);
    members.push_back(member);
  }
  std::sort(members.begin(), members.end());
  std::vector<std::string> seen;
  std::string target = "/api/v1/portals?limit=3";
  for (int page = 0; page < 10; ++page) {
    HttpResult r = api.get(target);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    Object::Ptr body = r.json();
    Array::Ptr items = body->getArray("items");
    BOOST_CHECK_LE(items->size(), 3u);
    for (std::size_t i = 0; i < items->size(); ++i) {
      seen.push_back(items->getObject(i)->getValue<std::string>("member_id"));
    }
    if (body->isNull("next_after")) break;
    BOOST_CHECK_EQUAL(body->getValue<std::string>("next_after"), seen.back());
    target = "/api/v1/portals?limit=3&after=" + seen.back();
  }
  BOOST_CHECK(seen == members);
  // The default page holds 100; a cursor after the last portal gives an empty last page.
  BOOST_CHECK_EQUAL(api.get("/api/v1/portals").json()->getArray("items")->size(), 7u);
  BOOST_CHECK_EQUAL(api.get("/api/v1/portals?after=zzz").body, R"({"items":[],"next_after":null})");
  HttpResult exact = api.get("/api/v1/portals?limit=7");
  BOOST_CHECK(exact.json()->isNull("next_after"));
}

// Issue 13: limit=1000 over events of 1 MB built a 1 GB answer (2 GB peak RSS).
BOOST_AUTO_TEST_CASE(a_page_of_events_ends_with_the_event_that_brings_it_to_8_mib) {
  Api api;
  BOOST_REQUIRE_EQUAL(api.postForm(formOf(Api::installB()), {}).status, 200);
  const std::size_t kBig = 900 * 1024;  // within ingest.max_body_bytes
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 12; ++i) {
    Fields f = Api::installB();
    f[0].second = "ONCRMDEALADD";
    f.emplace_back("data[FIELDS][TEXT]", std::string(kBig, static_cast<char>('a' + i)));
    HttpResult r = api.postForm(formOf(f), {});
    BOOST_REQUIRE_EQUAL(r.status, 200);
    ids.push_back(r.json()->getValue<std::int64_t>("id"));
  }
  const std::size_t kPage = 8 * 1024 * 1024;
  std::vector<std::int64_t> seen;
  std::string target = "/api/v1/events?event=ONCRMDEALADD&limit=1000";
  for (int page = 0; page < 10; ++page) {
    HttpResult r = api.get(target);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    Object::Ptr body = r.json();
    Array::Ptr items = body->getArray("items");
    BOOST_REQUIRE_GE(items->size(), 1u);
    for (std::size_t i = 0; i < items->size(); ++i) {
      seen.push_back(items->getObject(i)->getValue<std::int64_t>("id"));
    }
    if (body->isNull("next_after_id")) break;
    BOOST_CHECK_EQUAL(body->getValue<std::int64_t>("next_after_id"), seen.back());
    // Full: 8 MiB or more, and less without its last event.
    BOOST_CHECK_GE(r.body.size(), kPage);
    const std::size_t last = r.body.rfind(",{\"id\":" + std::to_string(seen.back()) + ",");
    BOOST_REQUIRE(last != std::string::npos);
    BOOST_CHECK_LT(last, kPage);
    target = "/api/v1/events?event=ONCRMDEALADD&limit=1000&after_id=" + std::to_string(seen.back());
  }
  BOOST_CHECK(seen == ids);
  BOOST_CHECK_LT(
      api.get("/api/v1/events?event=ONCRMDEALADD&limit=1000").json()->getArray("items")->size(),
      ids.size());
  // Descending pages are cut the same way and start with the newest event.
  HttpResult one = api.get("/api/v1/events?event=ONCRMDEALADD&limit=1000&order=desc");
  BOOST_CHECK_EQUAL(one.json()->getArray("items")->getObject(0)->getValue<std::int64_t>("id"),
                    ids.back());
}

BOOST_AUTO_TEST_CASE(an_uninstalled_portal_keeps_its_events_and_loses_its_tokens) {
  Api api;
  api.populate();
  BOOST_REQUIRE_EQUAL(
      api.postForm(b24es::test::sample("32-ONAPPUNINSTALL.form"),
                   {0, kMemberA, kDomainA, "ONAPPUNINSTALL", {}, {}, {}, 1767268800})
          .status,
      200);
  HttpResult a = api.get("/api/v1/portals/" + kMemberA);
  BOOST_CHECK_EQUAL(a.json()->getValue<std::string>("uninstalled_at"), "2026-01-01T10:00:00Z");
  BOOST_CHECK_EQUAL(a.json()->getArray("tokens")->size(), 0u);
  BOOST_CHECK_EQUAL(a.json()->getValue<std::int64_t>("last_event_ts"), 1767268800);
  BOOST_CHECK_EQUAL(a.json()->getValue<std::int64_t>("event_count"),
                    static_cast<std::int64_t>(
                        api.ids([](const Posted& p) { return p.member == kMemberA; }).size()));
}

// Offline events (SPEC §8.3) come in through the storage interface, as the offline queue stores
// them; the source filter then separates them from the ingested ones, alone, combined with the
// other filters, in both orders and across cursor pages.
BOOST_AUTO_TEST_CASE(source_filter_separates_offline_events_from_ingested_ones) {
  Api api;
  api.populate();
  std::vector<b24es::OfflineEvent> records;
  for (int i = 0; i < 5; ++i) {
    b24es::OfflineEvent r;
    r.offlineId = 900 + i;
    r.event.event = i % 2 == 0 ? "ONCRMDEALADD" : "ONCRMCONTACTADD";
    r.event.memberId = kMemberA;
    r.event.domain = kDomainA;
    r.event.ts = 1767295000 + i;
    r.event.entityId = 500 + i;
    r.event.dataJson = "{\"FIELDS\":{\"ID\":\"" + std::to_string(500 + i) + "\"}}";
    records.push_back(r);
  }
  BOOST_REQUIRE_EQUAL(api.service().storage().portalState().storeOfflineBatch(
                          kMemberA, "", records, api.clock().nowMillis()),
                      records.size());
  std::vector<std::int64_t> all = itemIds(api.get("/api/v1/events?limit=1000"));
  const std::vector<std::int64_t> online = api.ids([](const Posted&) { return true; });
  BOOST_REQUIRE_EQUAL(all.size(), online.size() + records.size());
  std::vector<std::int64_t> offline;
  std::set_difference(all.begin(), all.end(), online.begin(), online.end(),
                      std::back_inserter(offline));
  BOOST_REQUIRE_EQUAL(offline.size(), records.size());
  BOOST_CHECK_GT(offline.front(), online.back());  // stored last, so the ids are the largest

  std::vector<std::int64_t> got = itemIds(api.get("/api/v1/events?limit=1000&source=offline"));
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), offline.begin(), offline.end());
  got = itemIds(api.get("/api/v1/events?limit=1000&source=online"));
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), online.begin(), online.end());
  std::vector<std::int64_t> walked = walk(api, "source=offline", 2, false);
  BOOST_CHECK_EQUAL_COLLECTIONS(walked.begin(), walked.end(), offline.begin(), offline.end());
  walked = walk(api, "source=offline&member_id=" + kMemberA, 2, true);
  BOOST_CHECK_EQUAL_COLLECTIONS(walked.rbegin(), walked.rend(), offline.begin(), offline.end());
  // With other filters: portal B has none; of the deals, the offline ones are ids 0, 2 and 4.
  BOOST_CHECK(itemIds(api.get("/api/v1/events?source=offline&member_id=" + kMemberB)).empty());
  got = itemIds(api.get("/api/v1/events?source=offline&event=oncrmdealadd&order=desc"));
  BOOST_CHECK(got == (std::vector<std::int64_t>{offline[4], offline[2], offline[0]}));
  got = itemIds(
      api.get("/api/v1/events?source=offline&entity_id=503&from=1767295003&to=" + iso(1767295003)));
  BOOST_CHECK(got == std::vector<std::int64_t>{offline[3]});
  // The event itself says where it came from, with its data as stored.
  Object::Ptr e = api.get("/api/v1/events/" + std::to_string(offline[1])).json();
  BOOST_CHECK_EQUAL(e->getValue<std::string>("source"), "offline");
  BOOST_CHECK_EQUAL(e->getValue<std::string>("event"), "ONCRMCONTACTADD");
  BOOST_CHECK_EQUAL(e->getValue<std::int64_t>("ts"), 1767295001);
  BOOST_CHECK_EQUAL(e->getValue<std::int64_t>("entity_id"), 501);
  BOOST_CHECK(e->isNull("user_id"));
  BOOST_CHECK_EQUAL(e->getObject("data")->getObject("FIELDS")->getValue<std::string>("ID"), "501");
  // The counters include them: stats, and the portal's count and offline state.
  BOOST_CHECK_EQUAL(api.get("/api/v1/stats").json()->getValue<std::int64_t>("total"),
                    static_cast<std::int64_t>(all.size()));
  Object::Ptr a = api.get("/api/v1/portals/" + kMemberA).json();
  BOOST_CHECK_EQUAL(
      a->getValue<std::int64_t>("event_count"),
      static_cast<std::int64_t>(
          api.ids([](const Posted& p) { return p.member == kMemberA; }).size() + records.size()));
  BOOST_CHECK_EQUAL(a->getValue<std::int64_t>("last_event_ts"), 1767295004);
  BOOST_REQUIRE(a->isObject("offline"));
  BOOST_CHECK_EQUAL(a->getObject("offline")->getValue<std::int64_t>("fetched"), 5);
  for (const char* bad :
       {"source=", "source=OFFLINE", "source=elsewhere", "source=online&source=offline"}) {
    BOOST_TEST_CONTEXT(bad) {
      HttpResult r = api.get("/api/v1/events?" + std::string(bad));
      BOOST_CHECK_EQUAL(r.status, 400);
      BOOST_CHECK_EQUAL(errorCode(r), "invalid_parameter");
    }
  }
}

// What the store records about bindings, offline passes and token refreshes (SPEC §5 PORTAL),
// written through the storage interfaces as the binding sync, the offline queue and the
// refresher write it: served with ISO times, in (event, type) order, and never a token.
BOOST_AUTO_TEST_CASE(portals_show_bindings_offline_state_and_refresh_results_without_secrets) {
  Api api;
  api.populate();
  b24es::Storage& storage = api.service().storage();
  b24es::PortalStateStore& state = storage.portalState();
  state.recordBinding(kMemberA, {"ONCRMDEALUPDATE", "offline", "error",
                                 std::string("ACCESS_DENIED: no scope crm"), kNow + 20});
  state.recordBinding(kMemberA, {"ONCRMDEALADD", "online", "bound", std::nullopt, kNow + 10});
  state.recordBinding(kMemberA, {"ONCRMDEALADD", "offline", "bound", std::nullopt, kNow + 11});
  state.setOfflineMode(kMemberA, "clear");
  state.recordOfflinePass(kMemberA, std::string("WRONG_LICENSE: the plan has no queue"), kNow + 30);

  // Portal A's installing user is refreshed; portal B's is told its refresh token is dead.
  const std::int64_t refreshedAt = kNow + 120;
  std::set<std::string> fresh = {"fresh-access-4c1d8e2b", "fresh-refresh-9a7f3e05"};
  auto claimed = [&](const std::string& member) {
    std::optional<b24es::StoredToken> token = storage.tokenStore().findToken(member, 1);
    BOOST_REQUIRE(token && token->refreshToken);
    b24es::ClaimRequest request;
    request.memberId = member;
    request.userId = 1;
    request.expectedRefreshToken = token->refreshToken;
    b24es::Claim claim = storage.tokenStore().claim(request, refreshedAt);
    BOOST_REQUIRE(claim.status == b24es::Claim::Status::kClaimed);
    return claim;
  };
  b24es::RefreshedTokens tokens;
  tokens.accessToken = "fresh-access-4c1d8e2b";
  tokens.refreshToken = "fresh-refresh-9a7f3e05";
  tokens.expiresAt = refreshedAt + 3600;
  BOOST_REQUIRE(storage.tokenStore().recordSuccess(claimed(kMemberA), tokens, refreshedAt));
  BOOST_REQUIRE(storage.tokenStore().recordFailure(
      claimed(kMemberB), "invalid_grant: the refresh token is dead", true, refreshedAt));

  auto token = [](const Object::Ptr& portal, std::int64_t userId) {
    Array::Ptr list = portal->getArray("tokens");
    for (unsigned i = 0; i < list->size(); ++i) {
      if (list->getObject(i)->getValue<std::int64_t>("user_id") == userId) {
        return list->getObject(i);
      }
    }
    BOOST_FAIL("no token of user " << userId);
    return Object::Ptr();
  };
  HttpResult page = api.get("/api/v1/portals");
  BOOST_REQUIRE_EQUAL(page.status, 200);
  Array::Ptr items = page.json()->getArray("items");
  BOOST_REQUIRE_EQUAL(items->size(), 2u);
  for (unsigned i = 0; i < 2; ++i) {
    Object::Ptr fromPage = items->getObject(i);
    const std::string member = fromPage->getValue<std::string>("member_id");
    HttpResult one = api.get("/api/v1/portals/" + member);
    BOOST_REQUIRE_EQUAL(one.status, 200);
    // The page and the single portal are the same object.
    BOOST_CHECK(page.body.find(one.body) != std::string::npos);
  }
  Object::Ptr a = items->getObject(0), b = items->getObject(1);
  BOOST_REQUIRE_EQUAL(a->getValue<std::string>("member_id"), kMemberA);

  Array::Ptr bindings = a->getArray("bindings");
  BOOST_REQUIRE_EQUAL(bindings->size(), 3u);
  const std::vector<std::vector<std::string>> expected = {
      {"ONCRMDEALADD", "offline", "bound", "", isoUtc(kNow + 11)},
      {"ONCRMDEALADD", "online", "bound", "", isoUtc(kNow + 10)},
      {"ONCRMDEALUPDATE", "offline", "error", "ACCESS_DENIED: no scope crm", isoUtc(kNow + 20)}};
  for (unsigned i = 0; i < 3; ++i) {
    Object::Ptr binding = bindings->getObject(i);
    BOOST_TEST_CONTEXT("binding " << i) {
      BOOST_CHECK_EQUAL(binding->size(), 5u);
      BOOST_CHECK_EQUAL(binding->getValue<std::string>("event"), expected[i][0]);
      BOOST_CHECK_EQUAL(binding->getValue<std::string>("type"), expected[i][1]);
      BOOST_CHECK_EQUAL(binding->getValue<std::string>("state"), expected[i][2]);
      if (expected[i][3].empty()) {
        BOOST_CHECK(binding->isNull("error"));
      } else {
        BOOST_CHECK_EQUAL(binding->getValue<std::string>("error"), expected[i][3]);
      }
      BOOST_CHECK_EQUAL(binding->getValue<std::string>("updated_at"), expected[i][4]);
    }
  }
  BOOST_REQUIRE(a->isObject("offline"));
  Object::Ptr offline = a->getObject("offline");
  BOOST_CHECK_EQUAL(offline->size(), 4u);
  BOOST_CHECK_EQUAL(offline->getValue<std::string>("mode"), "clear");
  BOOST_CHECK_EQUAL(offline->getValue<std::string>("last_pass_at"), isoUtc(kNow + 30));
  BOOST_CHECK_EQUAL(offline->getValue<std::string>("last_error"),
                    "WRONG_LICENSE: the plan has no queue");
  BOOST_CHECK_EQUAL(offline->getValue<std::int64_t>("fetched"), 0);

  Object::Ptr refreshed = token(a, 1);
  BOOST_CHECK_EQUAL(refreshed->getValue<std::string>("expires_at"), isoUtc(refreshedAt + 3600));
  BOOST_CHECK(!refreshed->getValue<bool>("expired"));
  BOOST_CHECK(refreshed->getValue<bool>("has_refresh_token"));
  BOOST_CHECK_EQUAL(refreshed->getValue<std::string>("last_refresh_at"), isoUtc(refreshedAt));
  BOOST_CHECK(refreshed->isNull("last_refresh_error"));

  BOOST_CHECK_EQUAL(b->getArray("bindings")->size(), 0u);
  BOOST_CHECK(b->isNull("offline"));
  Object::Ptr dead = token(b, 1);
  // recordFailure keeps the stored refresh token (token_store.h), dead or not.
  BOOST_CHECK(dead->getValue<bool>("has_refresh_token"));
  BOOST_CHECK_EQUAL(dead->getValue<std::string>("last_refresh_at"), isoUtc(refreshedAt));
  BOOST_CHECK_EQUAL(dead->getValue<std::string>("last_refresh_error"),
                    "invalid_grant: the refresh token is dead");
  BOOST_CHECK(token(b, 2)->isNull("last_refresh_at"));

  // Metrics count the same rows: one refresh failed, bindings by type and state.
  const std::string metrics = api.get("/metrics").body;
  for (const char* line : {"b24es_tokens{state=\"refresh_failed\"} 1",
                           "b24es_bindings{type=\"online\",state=\"bound\"} 1",
                           "b24es_bindings{type=\"online\",state=\"error\"} 0",
                           "b24es_bindings{type=\"offline\",state=\"bound\"} 1",
                           "b24es_bindings{type=\"offline\",state=\"error\"} 1"}) {
    BOOST_CHECK_MESSAGE(metrics.find(std::string(line) + "\n") != std::string::npos,
                        "no line " << line);
  }
  for (const std::string& secret : fresh) api.secrets.insert(secret);
  for (const std::string& secret : api.secrets) {
    for (const std::string& answer : api.answers) {
      BOOST_CHECK_MESSAGE(answer.find(secret) == std::string::npos,
                          "a token appears in an answer: " << answer.substr(0, 200));
    }
  }
}

BOOST_AUTO_TEST_CASE(stats_count_events_by_code_and_portal) {
  Api api;
  api.populate();
  HttpResult r = api.get("/api/v1/stats");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  Object::Ptr s = r.json();
  BOOST_CHECK_EQUAL(s->getValue<std::int64_t>("total"),
                    static_cast<std::int64_t>(api.posted.size()));
  std::map<std::string, std::int64_t> byEvent;
  for (const Posted& p : api.posted) ++byEvent[p.event];
  Array::Ptr events = s->getArray("by_event");
  BOOST_CHECK_EQUAL(events->size(), byEvent.size());
  std::int64_t previous = std::numeric_limits<std::int64_t>::max();
  for (unsigned i = 0; i < events->size(); ++i) {
    Object::Ptr e = events->getObject(i);
    std::int64_t count = e->getValue<std::int64_t>("count");
    BOOST_CHECK_EQUAL(count, byEvent[e->getValue<std::string>("event")]);
    BOOST_CHECK_LE(count, previous);  // most frequent first
    previous = count;
  }
  Array::Ptr portals = s->getArray("by_portal");
  BOOST_REQUIRE_EQUAL(portals->size(), 2u);
  for (unsigned i = 0; i < 2; ++i) {
    Object::Ptr p = portals->getObject(i);
    std::string member = p->getValue<std::string>("member_id");
    BOOST_CHECK_EQUAL(p->getValue<std::string>("domain"), member == kMemberA ? kDomainA : kDomainB);
    BOOST_CHECK_EQUAL(p->getValue<std::int64_t>("count"),
                      static_cast<std::int64_t>(
                          api.ids([&](const Posted& e) { return e.member == member; }).size()));
  }
  std::int64_t first = std::numeric_limits<std::int64_t>::max(), last = 0;
  for (const Posted& p : api.posted) {
    first = std::min(first, *p.ts);
    last = std::max(last, *p.ts);
  }
  BOOST_CHECK_EQUAL(s->getValue<std::int64_t>("first_ts"), first);
  BOOST_CHECK_EQUAL(s->getValue<std::int64_t>("last_ts"), last);
}

// The timeline counts events by the time they were received (the writer's clock), per bucket
// and event code; filters narrow it; the default is the 60 buckets that end with now.
BOOST_AUTO_TEST_CASE(timeline_counts_received_events_per_bucket_and_code) {
  Api api;
  api.populate();  // 67 events, all received at kNow
  auto post = [&](bool b, const std::string& code) {
    Fields f{{"event", code},
             {"ts", "1767300000"},
             {"auth[domain]", b ? kDomainB : kDomainA},
             {"auth[member_id]", b ? kMemberB : kMemberA},
             {"auth[application_token]", b ? kAppTokenB : kAppTokenA}};
    BOOST_REQUIRE_EQUAL(
        api.postForm(formOf(f), {0, b ? kMemberB : kMemberA, "", code, {}, {}, {}, 1767300000})
            .status,
        200);
  };
  api.clock().setSeconds(kNow + 90);  // the next minute, same hour
  post(false, "ONCRMDEALADD");
  post(false, "ONCRMDEALADD");
  post(true, "ONCRMDEALADD");
  api.clock().setSeconds(kNow + 3600 + 30);  // the next hour
  post(true, "ONCRMCONTACTADD");
  post(false, "ONCRMCONTACTADD");

  auto series = [&](const std::string& target) {
    HttpResult r = api.get(target);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    std::map<std::string, std::vector<std::pair<std::int64_t, std::int64_t>>> out;
    Array::Ptr list = r.json()->getArray("series");
    for (unsigned i = 0; i < list->size(); ++i) {
      Object::Ptr s = list->getObject(i);
      Array::Ptr points = s->getArray("points");
      auto& into = out[s->getValue<std::string>("event")];
      for (unsigned j = 0; j < points->size(); ++j) {
        Array::Ptr p = points->getArray(j);
        into.emplace_back(p->getElement<std::int64_t>(0), p->getElement<std::int64_t>(1));
      }
    }
    return out;
  };
  using Points = std::vector<std::pair<std::int64_t, std::int64_t>>;
  // Default: minute buckets, the 60 ending with the one that holds now (kNow+3630).
  HttpResult plain = api.get("/api/v1/stats/timeline");
  BOOST_CHECK_EQUAL(plain.json()->getValue<std::string>("bucket"), "minute");
  // That is kNow+60 .. kNow+3600: the populated minute (kNow) is out.
  auto minutes = series("/api/v1/stats/timeline");
  BOOST_CHECK_EQUAL(minutes.size(), 2u);
  BOOST_CHECK(minutes["ONCRMDEALADD"] == (Points{{kNow + 60, 3}}));
  BOOST_CHECK(minutes["ONCRMCONTACTADD"] == (Points{{kNow + 3600, 2}}));

  std::map<std::string, std::int64_t> populated;
  for (const Posted& p : api.posted) ++populated[p.event];
  populated["ONCRMDEALADD"] -= 3;
  populated["ONCRMCONTACTADD"] -= 2;
  auto hours = series("/api/v1/stats/timeline?bucket=hour&from=" + std::to_string(kNow - 7200));
  BOOST_CHECK_EQUAL(hours.size(), populated.size());
  for (const auto& [event, count] : populated) {
    Points expected{{kNow, count + (event == "ONCRMDEALADD" ? 3 : 0)}};
    if (event == "ONCRMCONTACTADD") expected.emplace_back(kNow + 3600, 2);
    BOOST_CHECK_MESSAGE(hours[event] == expected, event);
  }
  // One portal, one code, minute buckets over the first two minutes (ISO 8601 times).
  auto deals = series("/api/v1/stats/timeline?member_id=" + kMemberA +
                      "&event=oncrmdealadd&from=" + iso(kNow) + "&to=" + iso(kNow + 119));
  std::int64_t dealsA = 0;
  for (const Posted& p : api.posted) dealsA += p.member == kMemberA && p.event == "ONCRMDEALADD";
  BOOST_CHECK(deals["ONCRMDEALADD"] == (Points{{kNow, dealsA - 2}, {kNow + 60, 2}}));
  BOOST_CHECK_EQUAL(deals.size(), 1u);
  // Day buckets start at midnight UTC.
  auto days =
      series("/api/v1/stats/timeline?bucket=day&member_id=" + kMemberB + "&event=ONCRMCONTACTADD");
  BOOST_CHECK(days["ONCRMCONTACTADD"] ==
              (Points{{kNow - 36000, static_cast<std::int64_t>(api.ids([](const Posted& p) {
                                                                    return p.member == kMemberB &&
                                                                           p.event ==
                                                                               "ONCRMCONTACTADD";
                                                                  })
                                                                   .size())}}));
  for (const char* target :
       {"/api/v1/stats/timeline?bucket=week", "/api/v1/stats/timeline?from=yesterday",
        "/api/v1/stats/timeline?from=200&to=100",
        "/api/v1/stats/timeline?member_id=", "/api/v1/stats/timeline?bucket=minute&from=0",
        "/api/v1/stats/timeline?limit=3", "/api/v1/stats/timeline?event=A&event=B"}) {
    BOOST_TEST_CONTEXT(target) {
      HttpResult r = api.get(target);
      BOOST_CHECK_EQUAL(r.status, 400);
      BOOST_CHECK_EQUAL(errorCode(r), "invalid_parameter");
      BOOST_CHECK_EQUAL(r.json()->size(), 2u);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_empty_store_answers_with_empty_lists_and_nulls) {
  Api api;
  HttpResult events = api.get("/api/v1/events");
  BOOST_CHECK_EQUAL(events.body, "{\"items\":[],\"next_after_id\":null}");
  BOOST_CHECK_EQUAL(api.get("/api/v1/portals").body, "{\"items\":[],\"next_after\":null}");
  BOOST_CHECK_EQUAL(
      api.get("/api/v1/stats").body,
      "{\"total\":0,\"by_event\":[],\"by_portal\":[],\"first_ts\":null,\"last_ts\":null}");
  BOOST_CHECK_EQUAL(api.get("/api/v1/events/1").status, 404);
  BOOST_CHECK_EQUAL(api.get("/api/v1/stats/timeline").body,
                    "{\"bucket\":\"minute\",\"series\":[]}");
}

BOOST_AUTO_TEST_CASE(bad_parameters_get_400_with_the_json_error_body) {
  Api api;
  api.populate();
  for (const char* target :
       {"/api/v1/events?limit=abc", "/api/v1/events?limit=5000", "/api/v1/events?limit=0",
        "/api/v1/events?after_id=-1", "/api/v1/events?after_id=x", "/api/v1/events?from=yesterday",
        "/api/v1/events?to=2026-02-30", "/api/v1/events?from=200&to=100",
        "/api/v1/events?order=sideways", "/api/v1/events?entity_id=7405abc",
        "/api/v1/events?user_id=", "/api/v1/events?member=abc", "/api/v1/events?event=A&event=B",
        "/api/v1/events/abc", "/api/v1/events/0", "/api/v1/events/-3",
        "/api/v1/portals?member_id=x", "/api/v1/stats?total=1", "/api/v1/portals?limit=0",
        "/api/v1/portals?limit=1001", "/api/v1/portals?limit=x",
        "/api/v1/portals?after=", "/api/v1/portals?after=a&after=b",
        // Issue 13: an offset of 99 hours 99 minutes was accepted.
        "/api/v1/events?from=2026-01-01T10:00:00%2B99:99"}) {
    BOOST_TEST_CONTEXT(target) {
      HttpResult r = api.get(target);
      BOOST_CHECK_EQUAL(r.status, 400);
      BOOST_CHECK_EQUAL(r.headers["Content-Type"], "application/json");
      Object::Ptr body = r.json();
      BOOST_CHECK_EQUAL(body->size(), 2u);
      BOOST_CHECK_EQUAL(errorCode(r), "invalid_parameter");
      BOOST_CHECK(!body->getValue<std::string>("message").empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(dashboard_and_its_assets_are_served_by_the_binary_without_the_token) {
  Api api("dashboard-token");
  auto httpGet = [&](const std::string&, const std::string& target) {
    return api.request("GET", target, {}, false);
  };
  const std::string url;
  HttpResult page = httpGet(url, "/");
  BOOST_CHECK_EQUAL(page.status, 200);
  BOOST_CHECK_EQUAL(page.headers["Content-Type"], "text/html; charset=utf-8");
  BOOST_CHECK(page.body.find("/assets/chart.min.js") != std::string::npos);
  BOOST_CHECK(page.body.find("dashboard-token") == std::string::npos);  // holds no secret
  // Chart.js is Debian's file, embedded whole: no other host serves any part of the page.
  HttpResult chart = httpGet(url, "/assets/chart.min.js");
  BOOST_CHECK_EQUAL(chart.status, 200);
  BOOST_CHECK(chart.body == b24es::test::readFile("/usr/share/javascript/chart.js/chart.min.js"));
  for (const char* asset : {"/assets/dashboard.js", "/assets/dashboard.css"}) {
    HttpResult r = httpGet(url, asset);
    BOOST_CHECK_EQUAL(r.status, 200);
    BOOST_CHECK(r.body.find("http://") == std::string::npos);
    BOOST_CHECK(r.body.find("https://") == std::string::npos);
  }
  // The API itself still needs the token.
  BOOST_CHECK_EQUAL(httpGet(url, "/api/v1/stats").status, 401);
}

BOOST_AUTO_TEST_CASE(unknown_paths_get_404_and_other_methods_405) {
  Api api;
  api.populate();
  for (const char* target :
       {"/api/v1", "/api/v1/nope", "/index.html", "/assets/", "/assets/nope.js", "/api/v1/events/",
        "/api/v2/events", "/api/v1/events/1/data", "/api/v1/portals/", "/bitrix24/events",
        "/api/v1/events/99999"}) {
    BOOST_TEST_CONTEXT(target) {
      HttpResult r = api.get(target);
      BOOST_CHECK_EQUAL(r.status, 404);
      BOOST_CHECK_EQUAL(errorCode(r), "not_found");
    }
  }
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    for (const char* target : {"/api/v1/events", "/api/v1/events/1", "/healthz", "/nope"}) {
      BOOST_TEST_CONTEXT(method << " " << target) {
        HttpResult r = api.request(method, target);
        BOOST_CHECK_EQUAL(r.status, 405);
        BOOST_CHECK_EQUAL(r.headers["Allow"], "GET, HEAD");
        BOOST_CHECK_EQUAL(errorCode(r), "method_not_allowed");
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(head_answers_the_headers_of_get_without_a_body) {
  Api api;
  api.populate();
  for (const std::string target : {"/api/v1/events?limit=3", "/api/v1/portals", "/api/v1/stats",
                                   "/healthz", "/api/v1/nope", "/api/v1/events?limit=abc"}) {
    BOOST_TEST_CONTEXT(target) {
      HttpResult get = api.get(target);
      // A raw socket, so that a body sent after the headers would be seen.
      Poco::URI url(api.service().queryUrl());
      Poco::Net::StreamSocket socket(Poco::Net::SocketAddress(url.getHost(), url.getPort()));
      socket.setReceiveTimeout(Poco::Timespan(10, 0));
      std::string request =
          "HEAD " + target + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
      socket.sendBytes(request.data(), static_cast<int>(request.size()));
      std::string received;
      char buffer[4096];
      for (int n;
           received.size() < 1000000 && (n = socket.receiveBytes(buffer, sizeof buffer)) > 0;) {
        received.append(buffer, static_cast<std::size_t>(n));
      }
      std::size_t end = received.find("\r\n\r\n");
      BOOST_REQUIRE(end != std::string::npos);
      BOOST_CHECK_EQUAL(received.size(), end + 4);  // nothing after the headers
      BOOST_CHECK(received.rfind("HTTP/1.1 " + std::to_string(get.status), 0) == 0);
      BOOST_CHECK(received.find("Content-Length: " + std::to_string(get.body.size()) + "\r\n") !=
                  std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_configured_bearer_token_is_required_except_for_healthz) {
  const std::string token = "q-token-6b0f2d9e4a7c1835";
  Api api(token);
  api.populate();
  auto as = [&](const std::string& target, const std::string& authorization) {
    std::map<std::string, std::string> headers;
    if (!authorization.empty()) headers["Authorization"] = authorization;
    return api.request("GET", target, headers, false);
  };
  for (const std::string target :
       {"/api/v1/events", "/api/v1/events/1", "/api/v1/portals", "/api/v1/stats", "/metrics",
        "/api/v1/openapi.json", "/api/v1/nope"}) {
    BOOST_TEST_CONTEXT(target) {
      const std::vector<std::string> refused = {"",
                                                "Bearer wrong",
                                                "Bearer " + token + "x",
                                                "Bearer " + token.substr(1),
                                                "Basic " + token,
                                                "Bearer"};
      for (const std::string& bad : refused) {
        HttpResult r = as(target, bad);
        BOOST_CHECK_EQUAL(r.status, 401);
        BOOST_CHECK_EQUAL(errorCode(r), "unauthorized");
        BOOST_CHECK(r.headers.count("WWW-Authenticate"));
      }
      int expected = target == "/api/v1/nope" ? 404 : 200;
      BOOST_CHECK_EQUAL(as(target, "Bearer " + token).status, expected);
      BOOST_CHECK_EQUAL(as(target, "bearer " + token).status, expected);
    }
  }
  BOOST_CHECK_EQUAL(as("/healthz", "").status, 200);
  for (const std::string& answer : api.answers) {
    BOOST_CHECK_MESSAGE(answer.find(token) == std::string::npos, "query token in: " << answer);
  }
}

BOOST_AUTO_TEST_CASE(without_a_configured_token_no_authorization_is_needed) {
  Api api;
  api.populate();
  HttpResult r = api.request("GET", "/api/v1/events", {{"Authorization", "Bearer anything"}});
  BOOST_CHECK_EQUAL(r.status, 200);
  BOOST_CHECK_EQUAL(api.get("/api/v1/stats").status, 200);
}

BOOST_AUTO_TEST_CASE(no_answer_ever_contains_a_posted_token) {
  Api api;
  api.populate();
  BOOST_REQUIRE_GE(api.secrets.size(), 40u);
  // Every route, every event by id, every portal, pages and filters.
  for (const Posted& p : api.posted) {
    BOOST_CHECK_EQUAL(api.get("/api/v1/events/" + std::to_string(p.id)).status, 200);
  }
  walk(api, "", 10, false);
  walk(api, "", 1000, true);
  for (const std::string& member : {kMemberA, kMemberB}) {
    api.get("/api/v1/portals/" + member);
    api.get("/api/v1/events?member_id=" + member);
  }
  api.get("/api/v1/portals");
  api.get("/api/v1/stats");
  api.get("/metrics");
  api.get("/healthz");
  api.get("/api/v1/events?limit=abc");
  api.get("/api/v1/nope");
  BOOST_CHECK_GT(api.answers.size(), 100u);
  for (const std::string& secret : api.secrets) {
    for (const std::string& answer : api.answers) {
      BOOST_CHECK_MESSAGE(answer.find(secret) == std::string::npos,
                          "a posted token appears in an answer: " << answer.substr(0, 200));
    }
  }
  // The bot's tokens inside data are served redacted.
  std::int64_t bot = api.ids([](const Posted& p) { return p.event == "ONIMBOTMESSAGEADD"; }).at(0);
  Object::Ptr data = api.get("/api/v1/events/" + std::to_string(bot)).json()->getObject("data");
  BOOST_CHECK_EQUAL(data->getObject("BOT")->getObject("77")->getValue<std::string>("access_token"),
                    "[redacted]");
}

BOOST_AUTO_TEST_CASE(every_route_answers_and_is_in_the_openapi_document) {
  Api api;
  api.populate();
  HttpResult doc = api.get("/api/v1/openapi.json");
  BOOST_REQUIRE_EQUAL(doc.status, 200);
  BOOST_CHECK_EQUAL(doc.json()->getValue<std::string>("openapi").substr(0, 2), "3.");
  Object::Ptr paths = doc.json()->getObject("paths");
  std::set<std::string> documented;
  for (const auto& entry : *paths) documented.insert(entry.first);
  std::set<std::string> answered;
  const std::int64_t someId = api.posted.front().id;
  for (const std::string& route : b24es::queryRoutes()) {
    BOOST_TEST_CONTEXT(route) {
      std::string target = route;
      if (std::size_t at = target.find("{id}"); at != std::string::npos) {
        target.replace(at, 4, std::to_string(someId));
      }
      if (std::size_t at = target.find("{member_id}"); at != std::string::npos) {
        target.replace(at, 11, kMemberA);
      }
      if (std::size_t at = target.find("{name}"); at != std::string::npos) {
        target.replace(at, 6, "dashboard.js");
      }
      // The stream's GET answers for as long as it is open (stream_test reads it); its HEAD
      // answers the same status and headers at once.
      const std::string method = route == "/api/v1/events/stream" ? "HEAD" : "GET";
      BOOST_CHECK_EQUAL(api.request(method, target).status, 200);
      BOOST_CHECK_MESSAGE(documented.count(route), route << " is not in openapi.json");
      BOOST_CHECK(paths->getObject(route) && paths->getObject(route)->has("get"));
      answered.insert(route);
    }
  }
  BOOST_CHECK_EQUAL(answered.size(), 13u);  // 11 + the stream + /api/v1/rejections (issue 15)
  for (const std::string& path : documented) {
    BOOST_CHECK_MESSAGE(answered.count(path), path << " is documented but not served");
  }
}

BOOST_AUTO_TEST_CASE(health_is_ok_on_the_query_listener) {
  Api api;
  HttpResult r = api.get("/healthz");
  BOOST_CHECK_EQUAL(r.status, 200);
  BOOST_CHECK_EQUAL(r.body, "{\"status\":\"ok\"}");
}

BOOST_AUTO_TEST_CASE(metrics_count_what_the_ingest_path_received) {
  Api api;
  api.populate();
  Fields wrongToken{{"event", "ONCRMDEALADD"},
                    {"auth[member_id]", kMemberA},
                    {"auth[domain]", kDomainA},
                    {"auth[application_token]", "not-the-token-3c9e"}};
  BOOST_CHECK_EQUAL(api.postForm(formOf(wrongToken), {}).status, 401);
  BOOST_CHECK_EQUAL(api.postForm("auth%5Bmember_id%5D=x", {}).status, 400);

  HttpResult r = api.get("/metrics");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_CHECK(r.headers["Content-Type"].rfind("text/plain; version=0.0.4", 0) == 0);
  std::map<std::string, std::string> samples;  // "name{labels}" -> value
  Poco::StringTokenizer lines(r.body, "\n", Poco::StringTokenizer::TOK_IGNORE_EMPTY);
  for (const std::string& line : lines) {
    if (line[0] == '#') continue;
    std::size_t space = line.rfind(' ');
    samples[line.substr(0, space)] = line.substr(space + 1);
  }
  std::map<std::string, int> stored;
  for (const Posted& p : api.posted) ++stored[p.event];
  for (const auto& [event, count] : stored) {
    BOOST_CHECK_EQUAL(
        samples["b24es_events_received_total{result=\"stored\",event=\"" + event + "\"}"],
        std::to_string(count));
  }
  BOOST_CHECK_EQUAL(
      samples["b24es_events_received_total{result=\"rejected\",event=\"_unverified\"}"], "1");
  BOOST_CHECK_EQUAL(
      samples["b24es_events_received_total{result=\"invalid\",event=\"_unverified\"}"], "1");
  // What an unverified sender calls its event never becomes a label value.
  BOOST_CHECK(samples.count(
                  "b24es_events_received_total{result=\"rejected\",event=\"ONCRMDEALADD\"}") == 0);
  BOOST_CHECK_EQUAL(samples["b24es_ingest_duration_seconds_count"],
                    std::to_string(api.posted.size() + 2));
  BOOST_CHECK_EQUAL(samples["b24es_writer_batch_events_sum"],
                    std::to_string(api.posted.size() + 1));
  BOOST_CHECK_EQUAL(samples["b24es_storage_up"], "1");
  // Tokens by state add up to the token rows: A has users 1, 2, 9 and the bot 77; B users 1, 2.
  std::int64_t tokens = 0;
  for (const char* state : {"valid", "access_expired", "no_refresh_token", "refresh_failed"}) {
    tokens += std::stoll(samples["b24es_tokens{state=\"" + std::string(state) + "\"}"]);
  }
  BOOST_CHECK_EQUAL(tokens, 6);
  BOOST_CHECK_EQUAL(samples["b24es_tokens{state=\"refresh_failed\"}"], "0");
}

BOOST_AUTO_TEST_CASE(serve_refuses_a_non_loopback_query_listener_without_a_token) {
  b24es::test::TempDir dir;
  b24es::test::FakeClock clock;
  b24es::Settings settings = b24es::test::testSettings(dir);
  settings.query.listen = "0.0.0.0:0";
  try {
    b24es::Service service(settings, clock);
    BOOST_FAIL("the service started");
  } catch (const b24es::ServiceError& e) {
    BOOST_CHECK(std::string(e.what()).find("query.token") != std::string::npos);
  }
  // The command line says so and exits 1, before binding anything.
  std::string out, err;
  int rc = b24es::test::runBinary({"serve", "--db", dir.file("cli.db"), "--listen", "127.0.0.1:0",
                                   "--query-listen", "0.0.0.0:0"},
                                  out, err, b24es::test::backendEnv(dir));
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK(err.find("query.token") != std::string::npos);
  BOOST_CHECK(out.find("listening") == std::string::npos);
}

// Filter values that no stored text can be (a NUL byte, bytes that are not UTF-8) match nothing
// and are no storage fault. On PostgreSQL such a value bound as it was failed the statement (503
// storage_unavailable) or, for NUL, was cut there by libpq, so that member_id=A%00x listed
// portal A's events and /api/v1/portals/A%00 answered portal A (pg_event_reader: holdable()).
BOOST_AUTO_TEST_CASE(filter_values_no_stored_text_can_be_match_nothing) {
  Api api;
  api.populate();
  const std::string a = kMemberA;
  const std::string hourly = std::to_string(kNow - 7200);
  for (const std::string& target : std::vector<std::string>{
           "/api/v1/events?member_id=%FF", "/api/v1/events?member_id=" + a + "%00x",
           "/api/v1/events?member_id=" + a + "%00", "/api/v1/events?domain=%C3",
           "/api/v1/events?domain=" + kDomainA + "%00", "/api/v1/events?event=%FF",
           "/api/v1/events?event=ONCRMDEALADD%00&order=desc",
           "/api/v1/events?event=ONCRMDEALADD%ED%A0%80",  // an encoded surrogate is no UTF-8
           "/api/v1/rejections?member_id=%FF", "/api/v1/rejections?member_id=" + a + "%00"}) {
    BOOST_TEST_CONTEXT(target) {
      HttpResult r = api.get(target);
      BOOST_CHECK_EQUAL(r.status, 200);
      BOOST_CHECK_EQUAL(r.body, R"({"items":[],"next_after_id":null})");
    }
  }
  for (const std::string& target : std::vector<std::string>{
           "/api/v1/stats/timeline?member_id=%FF&bucket=hour&from=" + hourly,
           "/api/v1/stats/timeline?member_id=" + a + "%00&bucket=hour&from=" + hourly,
           "/api/v1/stats/timeline?event=%FF&bucket=hour&from=" + hourly,
           "/api/v1/stats/timeline?event=ONAPPINSTALL%00&bucket=hour&from=" + hourly}) {
    BOOST_TEST_CONTEXT(target) {
      HttpResult r = api.get(target);
      BOOST_CHECK_EQUAL(r.status, 200);
      BOOST_CHECK_EQUAL(r.body, R"({"bucket":"hour","series":[]})");
    }
  }
  // The same queries without the bad bytes do find something (so the ones above could fail).
  BOOST_CHECK(!itemIds(api.get("/api/v1/events?member_id=" + a)).empty());
  BOOST_CHECK(!itemIds(api.get("/api/v1/events?event=ONCRMDEALADD")).empty());
  BOOST_CHECK_GT(api.get("/api/v1/stats/timeline?member_id=" + a + "&bucket=hour&from=" + hourly)
                     .json()
                     ->getArray("series")
                     ->size(),
                 0u);
  for (const std::string& target : std::vector<std::string>{
           "/api/v1/portals/%FF", "/api/v1/portals/" + a + "%00", "/api/v1/portals/" + a + "%C3"}) {
    BOOST_TEST_CONTEXT(target) {
      HttpResult r = api.get(target);
      BOOST_CHECK_EQUAL(r.status, 404);
      BOOST_CHECK_EQUAL(errorCode(r), "not_found");
    }
  }
  // A portal cursor of such bytes continues in byte order, as after any other text.
  auto members = [&](const std::string& after) {
    std::vector<std::string> out;
    HttpResult r = api.get("/api/v1/portals?after=" + after);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    Array::Ptr items = r.json()->getArray("items");
    for (unsigned i = 0; i < items->size(); ++i) {
      out.push_back(items->getObject(i)->getValue<std::string>("member_id"));
    }
    return out;
  };
  using Members = std::vector<std::string>;
  BOOST_CHECK(members("%00") == (Members{kMemberA, kMemberB}));
  BOOST_CHECK(members("%FF").empty());
  BOOST_CHECK(members(a + "%00") == Members{kMemberB});
  BOOST_CHECK(members(a + "%FF") == Members{kMemberB});
  BOOST_CHECK(members(a.substr(0, 4) + "%C3") == Members{kMemberB});
  BOOST_CHECK(members("0%FF") == (Members{kMemberA, kMemberB}));
  // The store stays up throughout.
  BOOST_CHECK_EQUAL(api.get("/healthz").status, 200);
  BOOST_CHECK(api.get("/metrics").body.find("\nb24es_storage_up 1\n") != std::string::npos);
}
