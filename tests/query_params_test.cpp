// Unit tests of the query API's parameter parsing (server/query_params.h) and JSON bodies
// (server/query_json.h): pure functions, no server.
#define BOOST_TEST_MODULE query_params
#include <boost/test/unit_test.hpp>

#include <Poco/DateTimeFormatter.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include "query_json.h"
#include "query_params.h"

using b24es::EventFilter;
using b24es::InvalidParameter;
using b24es::parseEventFilter;
using b24es::parseTime;
using b24es::QueryParameters;

namespace {

EventFilter parsed(const QueryParameters& params) {
  auto result = parseEventFilter(params);
  if (auto* error = std::get_if<InvalidParameter>(&result)) {
    BOOST_FAIL("unexpected error: " << error->message);
  }
  return std::get<EventFilter>(result);
}

InvalidParameter rejected(const QueryParameters& params) {
  auto result = parseEventFilter(params);
  BOOST_REQUIRE_MESSAGE(std::holds_alternative<InvalidParameter>(result),
                        "parameters were accepted");
  InvalidParameter error = std::get<InvalidParameter>(result);
  BOOST_CHECK(!error.message.empty());
  return error;
}

Poco::JSON::Object::Ptr parseObject(const std::string& text) {
  return Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(event_filter)

BOOST_AUTO_TEST_CASE(no_parameters_mean_first_100_oldest_first) {
  EventFilter f = parsed({});
  BOOST_CHECK_EQUAL(f.limit, 100u);
  BOOST_CHECK(f.order == EventFilter::Order::kAsc);
  BOOST_CHECK(!f.afterId && !f.memberId && !f.domain && !f.event && !f.entityId &&
              !f.entityTypeId && !f.userId && !f.from && !f.to);
}

BOOST_AUTO_TEST_CASE(every_filter_is_read) {
  EventFilter f = parsed({{"member_id", "abc"},
                          {"domain", "x.bitrix24.com"},
                          {"event", "onCrmDealAdd"},
                          {"entity_id", "7405"},
                          {"entity_type_id", "1220"},
                          {"user_id", "9"},
                          {"from", "1767261600"},
                          {"to", "2026-01-02T00:00:00Z"},
                          {"after_id", "42"},
                          {"limit", "1000"},
                          {"order", "desc"}});
  BOOST_CHECK_EQUAL(*f.memberId, "abc");
  BOOST_CHECK_EQUAL(*f.domain, "x.bitrix24.com");
  BOOST_CHECK_EQUAL(*f.event, "ONCRMDEALADD");
  BOOST_CHECK_EQUAL(*f.entityId, 7405);
  BOOST_CHECK_EQUAL(*f.entityTypeId, 1220);
  BOOST_CHECK_EQUAL(*f.userId, 9);
  BOOST_CHECK_EQUAL(*f.from, 1767261600);
  BOOST_CHECK_EQUAL(*f.to, 1767312000);
  BOOST_CHECK_EQUAL(*f.afterId, 42);
  BOOST_CHECK_EQUAL(f.limit, 1000u);
  BOOST_CHECK(f.order == EventFilter::Order::kDesc);
}

BOOST_AUTO_TEST_CASE(limit_must_be_an_integer_from_1_to_1000) {
  BOOST_CHECK_EQUAL(parsed({{"limit", "1"}}).limit, 1u);
  for (const char* bad :
       {"abc", "5000", "1001", "0", "-1", "10x", "1.5", " 10", "99999999999999999999"}) {
    BOOST_TEST_CONTEXT("limit=" << bad) { rejected({{"limit", bad}}); }
  }
}

BOOST_AUTO_TEST_CASE(after_id_must_be_a_non_negative_integer) {
  BOOST_CHECK_EQUAL(*parsed({{"after_id", "0"}}).afterId, 0);
  BOOST_CHECK_EQUAL(*parsed({{"after_id", "9223372036854775807"}}).afterId, 9223372036854775807LL);
  for (const char* bad : {"-1", "abc", "1e3", "9223372036854775808"}) {
    BOOST_TEST_CONTEXT("after_id=" << bad) { rejected({{"after_id", bad}}); }
  }
}

BOOST_AUTO_TEST_CASE(order_is_asc_or_desc_only) {
  BOOST_CHECK(parsed({{"order", "asc"}}).order == EventFilter::Order::kAsc);
  rejected({{"order", "sideways"}});
  rejected({{"order", "DESC "}});
}

BOOST_AUTO_TEST_CASE(integer_filters_reject_non_integers) {
  for (const char* name : {"entity_id", "entity_type_id", "user_id"}) {
    BOOST_TEST_CONTEXT(name) {
      rejected({{name, "abc"}});
      rejected({{name, "12abc"}});
    }
  }
  BOOST_CHECK_EQUAL(*parsed({{"entity_id", "-5"}}).entityId, -5);
}

BOOST_AUTO_TEST_CASE(unknown_repeated_and_empty_parameters_are_rejected) {
  BOOST_CHECK(rejected({{"member", "abc"}}).message.find("member") != std::string::npos);
  rejected({{"member_id", "a"}, {"member_id", "b"}});
  rejected({{"member_id", ""}});
  rejected({{"event", ""}});
}

BOOST_AUTO_TEST_CASE(parameter_names_in_messages_are_shortened_and_cannot_break_lines) {
  InvalidParameter error = rejected({{"evil\nname" + std::string(200, 'x'), "1"}});
  BOOST_CHECK(error.message.find('\n') == std::string::npos);
  BOOST_CHECK_LT(error.message.size(), 120u);
}

BOOST_AUTO_TEST_CASE(from_later_than_to_is_rejected) {
  rejected({{"from", "200"}, {"to", "100"}});
  EventFilter same = parsed({{"from", "100"}, {"to", "100"}});
  BOOST_CHECK_EQUAL(*same.from, *same.to);
}

BOOST_AUTO_TEST_CASE(unparsable_times_are_rejected) {
  for (const char* bad : {"yesterday", "2026-13-01", "2026-02-30T00:00:00Z", "x2026-01-01",
                          "2026-01-01T25:00:00Z", "2026-01-01T10:00:00Q", "2026/01/01", ""}) {
    BOOST_TEST_CONTEXT("from=" << bad) { rejected({{"from", bad}}); }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(times)

BOOST_AUTO_TEST_CASE(unix_seconds_are_taken_as_they_are) {
  BOOST_CHECK_EQUAL(*parseTime("1767261600"), 1767261600);
  BOOST_CHECK_EQUAL(*parseTime("0"), 0);
  BOOST_CHECK_EQUAL(*parseTime("-60"), -60);
}

BOOST_AUTO_TEST_CASE(iso_8601_forms_are_converted_to_utc) {
  const std::int64_t midnight = 1767225600;  // 2026-01-01T00:00:00Z
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01"), midnight);
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01T10:00"), midnight + 36000);
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01T10:00:00"), midnight + 36000);
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01T10:00:00Z"), midnight + 36000);
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01T10:00:00.750Z"), midnight + 36000);
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01T13:00:00+03:00"), midnight + 36000);
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01T05:30:00-04:30"), midnight + 36000);
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01T13:00:00+0300"), midnight + 36000);
}

BOOST_AUTO_TEST_CASE(an_unencoded_plus_that_arrived_as_a_space_still_means_plus) {
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01T13:00:00 03:00"), 1767225600 + 36000);
}

// Issue 13: from=2026-01-01T10:00:00+99:99 was accepted (as an offset of 100 hours).
BOOST_AUTO_TEST_CASE(offsets_and_times_outside_their_ranges_are_400) {
  for (const char* bad : {"2026-01-01T10:00:00+99:99", "2026-01-01T10:00:00+24:00",
                          "2026-01-01T10:00:00-03:60", "2026-01-01T10:00:00+0960",
                          "2026-01-01T24:00:00Z", "2026-01-01T10:60:00Z", "2026-01-01T10:00:61Z"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(!parseTime(bad).has_value());
      auto parsed = b24es::parseEventFilter({{"from", bad}});
      const auto* error = std::get_if<b24es::InvalidParameter>(&parsed);
      BOOST_TEST_REQUIRE(error != nullptr);
      BOOST_TEST(!error->message.empty());
    }
  }
  BOOST_CHECK_EQUAL(*parseTime("2026-01-01T23:59:00+23:59"), 1767225600);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(json_bodies)

BOOST_AUTO_TEST_CASE(iso_times_match_pocos_formatter) {
  for (std::int64_t ms : {0LL, 999LL, 1000LL, 951782400123LL, 1767261600000LL, 1767225599999LL,
                          4102444800001LL, 1709164800500LL /* 2024-02-29 */, -1LL, -86400001LL}) {
    Poco::Timestamp t(ms * 1000);
    BOOST_CHECK_EQUAL(b24es::isoMillis(ms),
                      Poco::DateTimeFormatter::format(t, "%Y-%m-%dT%H:%M:%S.%iZ"));
    const std::int64_t s = ms / 1000;
    BOOST_CHECK_EQUAL(
        b24es::isoSeconds(s),
        Poco::DateTimeFormatter::format(Poco::Timestamp::fromEpochTime(s), "%Y-%m-%dT%H:%M:%SZ"));
  }
}

BOOST_AUTO_TEST_CASE(strings_are_escaped_only_when_needed) {
  b24es::EventRecord e;
  e.event = "A\"B\\C\nD\x01E";
  e.memberId = "plain/\xC3\xA9";
  auto json = parseObject(b24es::eventJson(e));
  BOOST_CHECK_EQUAL(json->getValue<std::string>("event"), e.event);
  BOOST_CHECK_EQUAL(json->getValue<std::string>("member_id"), e.memberId);
}

BOOST_AUTO_TEST_CASE(event_json_has_every_field_with_nulls_for_absent_numbers) {
  b24es::EventRecord e;
  e.id = 7;
  e.event = "ONCRMDEALADD";
  e.memberId = "m\"1";
  e.receivedAt = 1767261600123;
  e.dataJson = "{\"FIELDS\":{\"ID\":\"5\"}}";
  auto json = parseObject(b24es::eventJson(e));
  for (const char* key : {"id", "event", "member_id", "domain", "event_handler_id", "event_id",
                          "ts", "received_at", "user_id", "entity_id", "entity_type_id", "data"}) {
    BOOST_CHECK_MESSAGE(json->has(key), key);
  }
  BOOST_CHECK_EQUAL(json->getValue<std::string>("member_id"), "m\"1");
  BOOST_CHECK_EQUAL(json->getValue<std::string>("received_at"), "2026-01-01T10:00:00.123Z");
  BOOST_CHECK(json->isNull("ts"));
  BOOST_CHECK(json->isNull("domain"));
  BOOST_CHECK(json->isNull("event_id"));
  BOOST_REQUIRE(json->isObject("data"));
  BOOST_CHECK_EQUAL(json->getObject("data")->getObject("FIELDS")->getValue<std::string>("ID"), "5");
}

BOOST_AUTO_TEST_CASE(numeric_event_ids_are_numbers_and_others_strings) {
  b24es::EventRecord e;
  e.eventId = "0042";
  BOOST_CHECK_EQUAL(parseObject(b24es::eventJson(e))->getValue<std::int64_t>("event_id"), 42);
  e.eventId = "abc-1";
  BOOST_CHECK_EQUAL(parseObject(b24es::eventJson(e))->getValue<std::string>("event_id"), "abc-1");
}

BOOST_AUTO_TEST_CASE(data_that_is_not_an_object_still_gives_valid_json) {
  b24es::EventRecord e;
  e.dataJson = "not json";
  BOOST_CHECK_EQUAL(parseObject(b24es::eventJson(e))->getValue<std::string>("data"), "not json");
  e.dataJson = " [1,2] ";
  BOOST_CHECK_NO_THROW(parseObject(b24es::eventJson(e)));
}

BOOST_AUTO_TEST_CASE(portal_json_reports_token_expiry_without_token_values) {
  b24es::PortalView p;
  p.memberId = "m";
  p.domain = "d";
  p.installedAt = 1767225600;
  p.eventCount = 3;
  p.lastEventTs = 1767261600;
  b24es::TokenInfo expired;
  expired.userId = 1;
  expired.expiresAt = 1000;
  b24es::TokenInfo valid;
  valid.userId = 2;
  valid.expiresAt = 3000;
  valid.hasRefreshToken = true;
  b24es::TokenInfo unknown;
  unknown.userId = 3;
  p.tokens = {expired, valid, unknown};
  auto json = parseObject(b24es::portalJson(p, 2000));
  BOOST_CHECK_EQUAL(json->getValue<std::string>("installed_at"), "2026-01-01T00:00:00Z");
  BOOST_CHECK(json->isNull("uninstalled_at"));
  BOOST_CHECK_EQUAL(json->getValue<std::int64_t>("last_event_ts"), 1767261600);
  auto tokens = json->getArray("tokens");
  BOOST_REQUIRE_EQUAL(tokens->size(), 3u);
  BOOST_CHECK(tokens->getObject(0)->getValue<bool>("expired"));
  BOOST_CHECK(!tokens->getObject(1)->getValue<bool>("expired"));
  BOOST_CHECK(tokens->getObject(2)->isNull("expired"));
  BOOST_CHECK(tokens->getObject(1)->getValue<bool>("has_refresh_token"));
  BOOST_CHECK(!tokens->getObject(0)->has("access_token"));
}

BOOST_AUTO_TEST_CASE(timeline_defaults_to_the_60_minutes_ending_with_now) {
  const std::int64_t now = 1767261690;  // 10:01:30
  auto parsed = b24es::parseTimelineQuery({}, now);
  BOOST_REQUIRE(std::holds_alternative<b24es::TimelineQuery>(parsed));
  auto q = std::get<b24es::TimelineQuery>(parsed);
  BOOST_CHECK_EQUAL(q.width, 60);
  BOOST_CHECK_EQUAL(q.to, now);
  BOOST_CHECK_EQUAL(q.from, 1767261660 - 59 * 60);  // the bucket of now and 59 before it
  BOOST_CHECK(!q.memberId && !q.event);
}

BOOST_AUTO_TEST_CASE(timeline_bucket_from_to_member_and_event) {
  auto parsed = b24es::parseTimelineQuery({{"bucket", "day"},
                                           {"from", "2026-01-01T10:00:00Z"},
                                           {"to", "2026-01-31"},
                                           {"member_id", "m"},
                                           {"event", "onCrmDealAdd"}},
                                          0);
  BOOST_REQUIRE(std::holds_alternative<b24es::TimelineQuery>(parsed));
  auto q = std::get<b24es::TimelineQuery>(parsed);
  BOOST_CHECK_EQUAL(q.width, 86400);
  BOOST_CHECK_EQUAL(q.from, 1767225600);  // rounded down to its day
  BOOST_CHECK_EQUAL(q.to, 1769817600);
  BOOST_CHECK_EQUAL(*q.memberId, "m");
  BOOST_CHECK_EQUAL(*q.event, "ONCRMDEALADD");
  // Without from, the 60 hours ending with the one that holds to; before 1970 rounds down.
  q = std::get<b24es::TimelineQuery>(
      b24es::parseTimelineQuery({{"bucket", "hour"}, {"to", "-1"}}, 0));
  BOOST_CHECK_EQUAL(q.from, -3600 - 59 * 3600);
}

BOOST_AUTO_TEST_CASE(timeline_refuses_bad_parameters) {
  for (const b24es::QueryParameters& params : std::vector<b24es::QueryParameters>{
           {{"bucket", "week"}},
           {{"bucket", ""}},
           {{"from", "yesterday"}},
           {{"to", "2026-02-30"}},
           {{"from", "200"}, {"to", "100"}},
           {{"bucket", "minute"}, {"from", "0"}, {"to", "600000"}},  // 10,001 buckets
           {{"event", "A"}, {"event", "B"}},
           {{"limit", "5"}}}) {
    auto parsed = b24es::parseTimelineQuery(params, 1767261600);
    BOOST_CHECK(std::holds_alternative<b24es::InvalidParameter>(parsed));
  }
  // 10,000 buckets are allowed.
  auto parsed =
      b24es::parseTimelineQuery({{"bucket", "minute"}, {"from", "0"}, {"to", "599999"}}, 0);
  BOOST_CHECK(std::holds_alternative<b24es::TimelineQuery>(parsed));
}

BOOST_AUTO_TEST_SUITE_END()
