// Unit tests of the pure parts of token refresh: which tokens a pass selects, when `token`
// refreshes, request pacing (with a fake clock: nothing sleeps), the token endpoint and its
// allowlist, and the classification of token endpoint answers.
#define BOOST_TEST_MODULE refresh_policy
#include <boost/test/unit_test.hpp>

#include <vector>

#include "oauth_client.h"
#include "refresh_policy.h"
#include "test_support.h"

using namespace b24es;
using b24es::test::sample;

namespace {

constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kNow = 1767261600;

StoredToken tokenObtainedDaysAgo(std::int64_t days, std::int64_t expiresIn = 3600) {
  StoredToken t;
  t.memberId = "m";
  t.userId = 1;
  t.accessToken = "access";
  t.refreshToken = "refresh";
  t.refreshTokenAt = kNow - days * kDay;
  t.expiresAt = kNow + expiresIn;
  return t;
}

OAuthSettings allowing(std::vector<std::string> hosts, bool allowHttp = false) {
  OAuthSettings s;
  s.allowedHosts = std::move(hosts);
  s.allowHttp = allowHttp;
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(keep_alive_selection)

BOOST_AUTO_TEST_CASE(a_refresh_token_younger_than_max_age_is_not_due) {
  BOOST_CHECK(keepAliveReason(tokenObtainedDaysAgo(29), {}, 30, kNow) == DueReason::kNotDue);
}

BOOST_AUTO_TEST_CASE(a_refresh_token_of_max_age_or_older_is_due) {
  BOOST_CHECK(keepAliveReason(tokenObtainedDaysAgo(30), {}, 30, kNow) ==
              DueReason::kOldRefreshToken);
  BOOST_CHECK(keepAliveReason(tokenObtainedDaysAgo(200), {}, 30, kNow) ==
              DueReason::kOldRefreshToken);
}

BOOST_AUTO_TEST_CASE(max_age_zero_makes_every_token_due) {
  BOOST_CHECK(keepAliveReason(tokenObtainedDaysAgo(0), {}, 0, kNow) == DueReason::kOldRefreshToken);
}

BOOST_AUTO_TEST_CASE(a_refresh_token_of_unknown_age_counts_as_old) {
  StoredToken t = tokenObtainedDaysAgo(0);
  t.refreshTokenAt.reset();
  BOOST_CHECK(keepAliveReason(t, {}, 30, kNow) == DueReason::kOldRefreshToken);
}

BOOST_AUTO_TEST_CASE(an_access_token_that_expires_soon_is_not_due_without_expiring_within) {
  // No "just in case" refreshes: an expiring access token alone is refreshed on demand.
  BOOST_CHECK(keepAliveReason(tokenObtainedDaysAgo(1, 10), {}, 30, kNow) == DueReason::kNotDue);
}

BOOST_AUTO_TEST_CASE(expiring_within_selects_access_tokens_expiring_in_the_window) {
  RefreshSelection s;
  s.expiringWithinSeconds = 600;
  BOOST_CHECK(keepAliveReason(tokenObtainedDaysAgo(1, 600), s, 30, kNow) ==
              DueReason::kAccessExpiring);
  BOOST_CHECK(keepAliveReason(tokenObtainedDaysAgo(1, -100), s, 30, kNow) ==
              DueReason::kAccessExpiring);
  BOOST_CHECK(keepAliveReason(tokenObtainedDaysAgo(1, 601), s, 30, kNow) == DueReason::kNotDue);
}

BOOST_AUTO_TEST_CASE(force_selects_fresh_and_dead_tokens) {
  RefreshSelection s;
  s.force = true;
  StoredToken dead = tokenObtainedDaysAgo(0);
  dead.deadAt = kNow - 10;
  BOOST_CHECK(keepAliveReason(tokenObtainedDaysAgo(0), s, 30, kNow) == DueReason::kForced);
  BOOST_CHECK(keepAliveReason(dead, s, 30, kNow) == DueReason::kForced);
}

BOOST_AUTO_TEST_CASE(a_dead_token_is_left_for_a_reinstall) {
  StoredToken t = tokenObtainedDaysAgo(100);
  t.deadAt = kNow - 10;
  BOOST_CHECK(keepAliveReason(t, {}, 30, kNow) == DueReason::kDead);
  BOOST_CHECK(!isDue(DueReason::kDead));
}

BOOST_AUTO_TEST_CASE(a_row_without_refresh_token_is_never_due_even_forced) {
  StoredToken t = tokenObtainedDaysAgo(100);
  t.refreshToken.reset();
  RefreshSelection s;
  s.force = true;
  BOOST_CHECK(keepAliveReason(t, s, 30, kNow) == DueReason::kNoRefreshToken);
}

BOOST_AUTO_TEST_CASE(a_renewed_token_is_not_due_again_for_max_age_days) {
  // At most once per max_age_days per token: renewal moves refresh_token_at to now.
  StoredToken t = tokenObtainedDaysAgo(30);
  BOOST_REQUIRE(isDue(keepAliveReason(t, {}, 30, kNow)));
  t.refreshTokenAt = kNow;
  for (std::int64_t day = 0; day < 30; ++day) {
    BOOST_CHECK(!isDue(keepAliveReason(t, {}, 30, kNow + day * kDay)));
  }
  BOOST_CHECK(isDue(keepAliveReason(t, {}, 30, kNow + 30 * kDay)));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(on_demand)

BOOST_AUTO_TEST_CASE(an_access_token_valid_beyond_the_margin_is_usable) {
  StoredToken t = tokenObtainedDaysAgo(0, kAccessTokenMarginSeconds);
  BOOST_CHECK(accessTokenUsable(t, kNow));
  BOOST_CHECK(!accessTokenUsable(t, kNow + 1));
}

BOOST_AUTO_TEST_CASE(an_expired_or_missing_access_token_is_not_usable) {
  BOOST_CHECK(!accessTokenUsable(tokenObtainedDaysAgo(0, -1), kNow));
  StoredToken empty = tokenObtainedDaysAgo(0);
  empty.accessToken.clear();
  BOOST_CHECK(!accessTokenUsable(empty, kNow));
}

BOOST_AUTO_TEST_CASE(an_access_token_of_unknown_expiry_is_used_until_a_call_rejects_it) {
  StoredToken t = tokenObtainedDaysAgo(0);
  t.expiresAt.reset();
  BOOST_CHECK(accessTokenUsable(t, kNow));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pacing)

// A clock that a sleeper moves by exactly the time asked: pacing is tested without sleeping.
class MillisClock final : public Clock {
 public:
  std::int64_t nowMillis() const override { return millis; }
  std::int64_t millis = 1767261600000;
};

BOOST_AUTO_TEST_CASE(requests_are_spaced_by_the_rate_and_the_first_goes_at_once) {
  MillisClock clock;
  std::vector<std::int64_t> asked;
  Pacer pacer(2, clock, [&](std::int64_t ms) {
    asked.push_back(ms);
    clock.millis += ms;
    return true;
  });
  const std::int64_t start = clock.millis;
  for (int i = 0; i < 5; ++i) BOOST_REQUIRE(pacer.wait());
  BOOST_CHECK_EQUAL(asked.size(), 4u);
  for (std::int64_t ms : asked) BOOST_CHECK_EQUAL(ms, 500);
  BOOST_CHECK_EQUAL(clock.millis - start, 2000);
}

BOOST_AUTO_TEST_CASE(time_spent_between_requests_counts_towards_the_gap) {
  MillisClock clock;
  std::vector<std::int64_t> asked;
  Pacer pacer(4, clock, [&](std::int64_t ms) {
    asked.push_back(ms);
    clock.millis += ms;
    return true;
  });
  BOOST_REQUIRE(pacer.wait());
  clock.millis += 100;  // the request itself took 100 ms
  BOOST_REQUIRE(pacer.wait());
  clock.millis += 300;  // longer than the 250 ms gap: no wait at all
  BOOST_REQUIRE(pacer.wait());
  BOOST_REQUIRE_EQUAL(asked.size(), 1u);
  BOOST_CHECK_EQUAL(asked[0], 150);
}

BOOST_AUTO_TEST_CASE(an_interrupted_sleep_stops_the_pacer) {
  MillisClock clock;
  Pacer pacer(1, clock, [](std::int64_t) { return false; });
  BOOST_CHECK(pacer.wait());
  BOOST_CHECK(!pacer.wait());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(token_endpoint)

BOOST_AUTO_TEST_CASE(is_server_endpoint_scheme_and_host_with_path_oauth_token) {
  TokenEndpoint e = tokenEndpointFor("https://oauth.bitrix.info/rest/", OAuthSettings{});
  BOOST_CHECK(e.allowed);
  BOOST_CHECK_EQUAL(e.url, "https://oauth.bitrix.info/oauth/token/");
  e = tokenEndpointFor("https://OAuth.Bitrix24.tech/rest/?x=1", OAuthSettings{});
  BOOST_CHECK(e.allowed);
  BOOST_CHECK_EQUAL(e.url, "https://oauth.bitrix24.tech/oauth/token/");
}

BOOST_AUTO_TEST_CASE(keeps_a_non_default_port) {
  TokenEndpoint e = tokenEndpointFor("http://127.0.0.1:4711/rest/", allowing({"127.0.0.1"}, true));
  BOOST_CHECK(e.allowed);
  BOOST_CHECK_EQUAL(e.url, "http://127.0.0.1:4711/oauth/token/");
}

BOOST_AUTO_TEST_CASE(refuses_hosts_outside_the_allowlist_naming_the_host) {
  for (const char* endpoint :
       {"https://evil.example/rest/", "https://oauth.bitrix.info.evil.example/rest/",
        "https://xoauth.bitrix.info/rest/", "https://127.0.0.2/rest/"}) {
    TokenEndpoint e = tokenEndpointFor(endpoint, OAuthSettings{});
    BOOST_CHECK_MESSAGE(!e.allowed, endpoint);
    BOOST_CHECK(e.url.empty());
    BOOST_CHECK(e.error.find("not in oauth.allowed_hosts") != std::string::npos);
  }
  BOOST_CHECK(
      tokenEndpointFor("https://evil.example/", OAuthSettings{}).error.find("evil.example") !=
      std::string::npos);
}

BOOST_AUTO_TEST_CASE(refuses_http_unless_allowed) {
  BOOST_CHECK(!tokenEndpointFor("http://oauth.bitrix.info/rest/", OAuthSettings{}).allowed);
  BOOST_CHECK(
      tokenEndpointFor("http://oauth.bitrix.info/rest/", allowing({"oauth.bitrix.info"}, true))
          .allowed);
  BOOST_CHECK(
      !tokenEndpointFor("ftp://oauth.bitrix.info/rest/", allowing({"oauth.bitrix.info"}, true))
           .allowed);
}

BOOST_AUTO_TEST_CASE(refuses_empty_unparsable_and_user_info_endpoints) {
  BOOST_CHECK(!tokenEndpointFor("", OAuthSettings{}).allowed);
  BOOST_CHECK(!tokenEndpointFor("not a url", OAuthSettings{}).allowed);
  BOOST_CHECK(
      !tokenEndpointFor("https://user:pw@oauth.bitrix.info/rest/", OAuthSettings{}).allowed);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(answer_classification)

BOOST_AUTO_TEST_CASE(the_documented_success_answer_is_a_success_with_the_new_pair) {
  OAuthAnswer a = classifyTokenAnswer(200, sample("refresh-200-success-portalA.json"));
  BOOST_REQUIRE(a.kind == OAuthAnswer::Kind::kSuccess);
  BOOST_CHECK_EQUAL(a.tokens.accessToken,
                    "e08c566900b7e2a1005a3c4d0000000190bd1c7a96c4b48542d637cc5ea8e539a36f1d");
  BOOST_CHECK_EQUAL(a.tokens.refreshToken,
                    "d00b7e6900b7e2a1005a3c4d00000001ce1dfd3174e071ae3e344e3210ec6329a02cf4");
  BOOST_CHECK(a.tokens.expires == std::optional<std::int64_t>(1767279840));
  BOOST_CHECK(a.tokens.expiresIn == std::optional<std::int64_t>(3600));
  BOOST_CHECK_EQUAL(a.tokens.serverEndpoint, "https://oauth.bitrix.info/rest/");
  BOOST_CHECK_EQUAL(a.tokens.clientEndpoint, "https://acme-test.bitrix24.com/rest/");
  BOOST_CHECK_EQUAL(a.tokens.status, "F");
  BOOST_CHECK_EQUAL(a.tokens.scope, "crm,task,imbot,im,user,calendar,placement");
}

BOOST_AUTO_TEST_CASE(the_documented_invalid_grant_answer_is_dead) {
  OAuthAnswer a = classifyTokenAnswer(400, sample("refresh-400-invalid_grant.json"));
  BOOST_CHECK(a.kind == OAuthAnswer::Kind::kDead);
  BOOST_CHECK_EQUAL(a.error, "invalid_grant");
  BOOST_CHECK(a.description.find("HTTP 400") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_dead_error_is_dead_with_any_status_including_200) {
  for (const char* error : {"invalid_grant", "expired_token", "invalid_client", "wrong_client",
                            "PAYMENT_REQUIRED", "NO_AUTH_FOUND"}) {
    for (int status : {200, 400, 401, 403}) {
      OAuthAnswer a = classifyTokenAnswer(status, std::string(R"({"error":")") + error + R"("})");
      BOOST_CHECK_MESSAGE(a.kind == OAuthAnswer::Kind::kDead, error << " " << status);
      BOOST_CHECK_EQUAL(a.error, error);
    }
  }
}

BOOST_AUTO_TEST_CASE(server_errors_and_unknown_errors_are_transient) {
  BOOST_CHECK(classifyTokenAnswer(503, "<html>busy</html>").kind == OAuthAnswer::Kind::kTransient);
  BOOST_CHECK_EQUAL(classifyTokenAnswer(503, "<html>busy</html>").error, "http_503");
  BOOST_CHECK_EQUAL(classifyTokenAnswer(500, "{}").error, "http_500");
  OAuthAnswer other = classifyTokenAnswer(400, R"({"error":"invalid_request"})");
  BOOST_CHECK(other.kind == OAuthAnswer::Kind::kTransient);
  BOOST_CHECK_EQUAL(other.error, "invalid_request");
}

BOOST_AUTO_TEST_CASE(unparsable_or_incomplete_success_answers_are_transient) {
  for (const char* body : {"", "<html>ok</html>", "[1,2]", R"({"access_token":"a"})",
                           R"({"refresh_token":"r"})", "{\"access_token\":"}) {
    OAuthAnswer a = classifyTokenAnswer(200, body);
    BOOST_CHECK_MESSAGE(a.kind == OAuthAnswer::Kind::kTransient, body);
    BOOST_CHECK_EQUAL(a.error, "malformed_answer");
  }
}

// Issue 13: a 200 answer with "access_token":123, or an array, was stored as a success.
BOOST_AUTO_TEST_CASE(success_answers_of_the_wrong_types_are_malformed_answers) {
  for (const char* body : {
           R"({"access_token":123,"refresh_token":"r","expires_in":3600})",
           R"({"access_token":"a","refresh_token":["r"],"expires_in":3600})",
           R"({"access_token":["a"],"refresh_token":"r","expires_in":3600})",
           R"({"access_token":{"v":"a"},"refresh_token":"r","expires_in":3600})",
           R"({"access_token":"","refresh_token":"r","expires_in":3600})",
           R"({"access_token":"a","refresh_token":null,"expires_in":3600})",
           R"({"access_token":"a","refresh_token":"r"})",
           R"({"access_token":"a","refresh_token":"r","expires_in":"soon"})",
           R"({"access_token":"a","refresh_token":"r","expires_in":[3600]})",
           R"({"access_token":"a","refresh_token":"r","expires":true,"expires_in":3600})",
           R"([{"access_token":"a","refresh_token":"r","expires_in":3600}])",
       }) {
    OAuthAnswer a = classifyTokenAnswer(200, body);
    BOOST_CHECK_MESSAGE(a.kind == OAuthAnswer::Kind::kTransient, body);
    BOOST_CHECK_EQUAL(a.error, "malformed_answer");
  }
  BOOST_CHECK(
      classifyTokenAnswer(200, R"({"access_token":"a","refresh_token":"r","expires":1})").kind ==
      OAuthAnswer::Kind::kSuccess);
}

// Issue 13: an error text that echoed the client secret minus its last character was stored.
BOOST_AUTO_TEST_CASE(redaction_removes_every_run_of_eight_characters_of_a_secret) {
  const std::string secret = "Zq7xW2pLm9Rt4Kv8";
  const std::string almost = secret.substr(0, secret.size() - 1);
  BOOST_CHECK_EQUAL(redactSecrets("bad client " + almost + " here", {secret}),
                    "bad client [redacted] here");
  // Any stretch of 8 from the middle, even glued to other text, and several of them.
  BOOST_CHECK_EQUAL(redactSecrets("x" + secret.substr(3, 8) + "y" + secret.substr(5), {secret}),
                    "x[redacted]y[redacted]");
  // Seven characters are not a run (words of an ordinary sentence must survive).
  BOOST_CHECK_EQUAL(redactSecrets("x" + secret.substr(0, 7) + "y", {secret}),
                    "x" + secret.substr(0, 7) + "y");
  // Two secrets whose runs overlap in the text become one redaction.
  BOOST_CHECK_EQUAL(redactSecrets("<AAAAAAAABBBBBBBB>", {"AAAAAAAAB", "ABBBBBBBB"}),
                    "<[redacted]>");
}

BOOST_AUTO_TEST_CASE(expires_may_come_as_a_string) {
  OAuthAnswer a = classifyTokenAnswer(
      200,
      R"({"access_token":"a","refresh_token":"r","expires":"1767279840","expires_in":"3600"})");
  BOOST_REQUIRE(a.kind == OAuthAnswer::Kind::kSuccess);
  BOOST_CHECK(a.tokens.expires == std::optional<std::int64_t>(1767279840));
  BOOST_CHECK(a.tokens.expiresIn == std::optional<std::int64_t>(3600));
}

BOOST_AUTO_TEST_CASE(redaction_removes_every_occurrence_of_each_secret) {
  BOOST_CHECK_EQUAL(redactSecrets("token abc and abc, secret s3", {"abc", "s3", ""}),
                    "token [redacted] and [redacted], secret [redacted]");
}

BOOST_AUTO_TEST_SUITE_END()
