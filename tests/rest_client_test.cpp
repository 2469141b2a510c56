// The REST client of SPEC §8.1 against the fake Bitrix24 portal on 127.0.0.1: the token goes in
// the body and never in a URL, expired_token refreshes and retries once, QUERY_LIMIT_EXCEEDED
// backs off 1, 2, 4 s (on a fake clock), calls to one portal are paced, the host rules (https,
// allowed hosts, public addresses only), certificates verified; and the `call` command as a user
// runs it, with the real binary, the refresh lease and the fake OAuth server.
#define BOOST_TEST_MODULE rest_client
#include <boost/test/unit_test.hpp>

#include <Poco/JSON/Parser.h>

#include <fstream>
#include <sstream>

#include "b24_fake.h"
#include "oauth_fake.h"
#include "rest_client.h"
#include "service.h"
#include "test_support.h"

using namespace b24es;
using namespace b24es::test;
using Poco::Net::IPAddress;

namespace {

const std::string kToken = "rest-test-access-token-5f1c2a";

RestSettings loopbackSettings() {
  RestSettings s;
  s.allowHttp = true;
  s.allowedHosts = {"127.0.0.1"};
  return s;
}

PortalRecord portalAt(const std::string& clientEndpoint, const std::string& memberId = "m1") {
  PortalRecord p;
  p.memberId = memberId;
  p.clientEndpoint = clientEndpoint;
  p.installedAt = 1;
  return p;
}

struct Client {
  FakeClock clock;
  std::vector<std::int64_t> waits;
  std::vector<bool> tokenAsks;  // forceRefresh of each token request
  std::string token = kToken;
  std::string refreshedToken = "rest-test-refreshed-token-99";
  std::vector<std::pair<std::string, std::string>> calls;  // metrics callback
  RestClient rest;

  explicit Client(RestSettings settings = loopbackSettings(), RestClientOptions options = {})
      : rest(
            settings,
            [this](const std::string&, const std::optional<std::int64_t>&, bool force) {
              tokenAsks.push_back(force);
              AccessTokenResult r;
              r.accessToken = force ? refreshedToken : token;
              return r;
            },
            clock,
            [this](std::int64_t ms) {
              waits.push_back(ms);
              clock.advanceMillis(ms);
              return true;
            },
            options, systemResolver(),
            [this](const std::string& method, const std::string& result) {
              calls.emplace_back(method, result);
            }) {}
};

Resolver fixedResolver(std::vector<std::string> addresses) {
  return [addresses](const std::string&) {
    std::vector<IPAddress> out;
    for (const std::string& a : addresses) out.push_back(IPAddress(a));
    return out;
  };
}

}  // namespace

BOOST_AUTO_TEST_SUITE(host_rules)

BOOST_AUTO_TEST_CASE(only_public_addresses_count_as_public) {
  for (const char* a : {"127.0.0.1",
                        "10.1.2.3",
                        "172.16.0.1",
                        "172.31.255.255",
                        "192.168.1.1",
                        "169.254.169.254",
                        "100.64.0.1",
                        "100.127.255.255",
                        "224.0.0.1",
                        "0.0.0.0",
                        "0.1.2.3",
                        "255.255.255.255",
                        "::1",
                        "::",
                        "fe80::1",
                        "fc00::1",
                        "fd12:3456::1",
                        "ff02::1",
                        "::ffff:127.0.0.1",
                        "::ffff:10.0.0.1"}) {
    BOOST_CHECK_MESSAGE(!isPublicAddress(IPAddress(a)), a << " counted as public");
  }
  for (const char* a : {"93.184.216.34", "8.8.8.8", "100.63.255.255", "100.128.0.1", "172.32.0.1",
                        "2606:4700::1111", "::ffff:8.8.8.8"}) {
    BOOST_CHECK_MESSAGE(isPublicAddress(IPAddress(a)), a << " counted as not public");
  }
}

BOOST_AUTO_TEST_CASE(without_allowed_hosts_every_resolved_address_must_be_public) {
  RestSettings s;
  RestTarget ok = restTargetFor("https://acme.bitrix24.com/rest/", "event.get", s,
                                fixedResolver({"93.184.216.34"}));
  BOOST_REQUIRE_MESSAGE(ok.allowed, ok.error);
  BOOST_CHECK_EQUAL(ok.uri.toString(), "https://acme.bitrix24.com/rest/event.get");
  BOOST_CHECK_EQUAL(ok.host, "acme.bitrix24.com");
  BOOST_CHECK_EQUAL(ok.address.toString(), "93.184.216.34");  // where the connection goes

  RestTarget mixed = restTargetFor("https://acme.bitrix24.com/rest/", "event.get", s,
                                   fixedResolver({"93.184.216.34", "10.0.0.7"}));
  BOOST_CHECK(!mixed.allowed);
  BOOST_CHECK(mixed.error.find("10.0.0.7") != std::string::npos);
  BOOST_CHECK(!restTargetFor("https://127.0.0.1/rest/", "app.info", s, systemResolver()).allowed);
  BOOST_CHECK(!restTargetFor("https://[::1]/rest/", "app.info", s, systemResolver()).allowed);
  BOOST_CHECK(
      !restTargetFor("https://x/rest/", "app.info", s, fixedResolver({"169.254.169.254"})).allowed);
}

BOOST_AUTO_TEST_CASE(allowed_hosts_are_exact_names_or_suffixes_and_nothing_else) {
  RestSettings s;
  s.allowedHosts = {"portal.example.com", "*.bitrix24.de"};
  auto resolve = fixedResolver({"10.0.0.1"});  // listed hosts may be private
  BOOST_CHECK(restTargetFor("https://PORTAL.example.com/rest/", "app.info", s, resolve).allowed);
  BOOST_CHECK(restTargetFor("https://acme.bitrix24.de/rest/", "app.info", s, resolve).allowed);
  BOOST_CHECK(!restTargetFor("https://bitrix24.de/rest/", "app.info", s, resolve).allowed);
  BOOST_CHECK(!restTargetFor("https://evilbitrix24.de/rest/", "app.info", s, resolve).allowed);
  BOOST_CHECK(!restTargetFor("https://other.example.com/rest/", "app.info", s, resolve).allowed);
}

BOOST_AUTO_TEST_CASE(http_needs_allow_http_and_endpoints_must_be_plain) {
  RestSettings s;
  s.allowedHosts = {"127.0.0.1"};
  RestTarget http = restTargetFor("http://127.0.0.1:8/rest/", "app.info", s, systemResolver());
  BOOST_CHECK(!http.allowed);
  BOOST_CHECK(http.error.find("rest.allow_http") != std::string::npos);
  s.allowHttp = true;
  BOOST_CHECK(restTargetFor("http://127.0.0.1:8/rest/", "app.info", s, systemResolver()).allowed);
  BOOST_CHECK(!restTargetFor("ftp://127.0.0.1/rest/", "app.info", s, systemResolver()).allowed);
  BOOST_CHECK(
      !restTargetFor("http://u:p@127.0.0.1/rest/", "app.info", s, systemResolver()).allowed);
  BOOST_CHECK(
      !restTargetFor("http://127.0.0.1/rest/?a=1", "app.info", s, systemResolver()).allowed);
  BOOST_CHECK(!restTargetFor("", "app.info", s, systemResolver()).allowed);
  for (const char* bad : {"", "../oauth/token", "app.info?auth=x", "a/b", "a b"}) {
    BOOST_CHECK_MESSAGE(!restTargetFor("http://127.0.0.1/rest/", bad, s, systemResolver()).allowed,
                        bad);
  }
}

BOOST_AUTO_TEST_CASE(a_refused_endpoint_is_never_contacted) {
  FakeBitrix24 fake;
  RestSettings s;  // no allowed hosts: 127.0.0.1 is not public
  s.allowHttp = true;
  Client c(s);
  RestResult r = c.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "app.info", {});
  BOOST_CHECK(r.kind == RestResult::Kind::kRefused);
  BOOST_CHECK_EQUAL(r.error, "host_not_allowed");
  BOOST_CHECK(fake.requests().empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pacing)

BOOST_AUTO_TEST_CASE(a_bucket_lets_a_burst_through_then_spaces_calls_by_the_rate) {
  TokenBucket bucket(2, 10);
  for (int i = 0; i < 10; ++i) BOOST_CHECK_EQUAL(bucket.reserve(1000), 0);
  BOOST_CHECK_EQUAL(bucket.reserve(1000), 500);
  BOOST_CHECK_EQUAL(bucket.reserve(1000), 1000);  // queued behind the previous one
  BOOST_CHECK_EQUAL(bucket.reserve(2000), 500);   // 1 s refilled two, both were owed
  // Quiet for a long time: full again, never more than the burst.
  for (int i = 0; i < 10; ++i) BOOST_CHECK_EQUAL(bucket.reserve(100000), 0);
  BOOST_CHECK_EQUAL(bucket.reserve(100000), 500);
}

BOOST_AUTO_TEST_CASE(calls_to_one_portal_are_paced_and_other_portals_have_their_own_bucket) {
  FakeBitrix24 fake;
  fake.acceptToken(kToken);
  RestSettings s = loopbackSettings();
  s.rate = 2;
  s.burst = 3;
  FakeClock clock;
  std::vector<std::int64_t> waits;
  RestClient rest(
      s,
      [](const std::string&, const std::optional<std::int64_t>&, bool) {
        AccessTokenResult r;
        r.accessToken = kToken;
        return r;
      },
      clock,
      [&](std::int64_t ms) {
        waits.push_back(ms);
        clock.advanceMillis(ms);  // time passes only as slept
        return true;
      });
  for (int i = 0; i < 5; ++i) {
    BOOST_CHECK(rest.call(portalAt(fake.clientEndpoint(), "a"), std::nullopt, "x.y", {}).ok());
  }
  BOOST_CHECK(waits == (std::vector<std::int64_t>{500, 500}));
  waits.clear();
  BOOST_CHECK(rest.call(portalAt(fake.clientEndpoint(), "b"), std::nullopt, "x.y", {}).ok());
  BOOST_CHECK(waits.empty());
  BOOST_CHECK_EQUAL(fake.requests().size(), 6u);
}

BOOST_AUTO_TEST_CASE(a_stopping_service_makes_no_call_that_waits_for_the_bucket) {
  FakeBitrix24 fake;
  fake.acceptToken(kToken);
  RestSettings s = loopbackSettings();
  s.rate = 2;
  s.burst = 2;
  FakeClock clock;
  Interrupter stop;
  RestClient rest(
      s,
      [](const std::string&, const std::optional<std::int64_t>&, bool) {
        AccessTokenResult r;
        r.accessToken = kToken;
        return r;
      },
      clock, stop.sleeper());
  stop.stop();
  const PortalRecord portal = portalAt(fake.clientEndpoint(), "a");
  BOOST_CHECK(rest.call(portal, std::nullopt, "x.y", {}).ok());  // the burst
  BOOST_CHECK(rest.call(portal, std::nullopt, "x.y", {}).ok());
  RestResult refused = rest.call(portal, std::nullopt, "x.y", {});
  BOOST_CHECK(refused.kind == RestResult::Kind::kUnreachable);
  BOOST_CHECK_EQUAL(refused.error, "stopped");
  BOOST_CHECK_EQUAL(fake.requests().size(), 2u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(calls)

// Bitrix24's batch: each command's query is encoded once more, so that it survives the body's
// own form encoding, and each command's part of the answer is read back as a call of its own.
BOOST_AUTO_TEST_CASE(batch_commands_are_encoded_and_their_parts_read_back) {
  BOOST_CHECK_EQUAL(batchCommand("event.offline.clear",
                                 {{"process_id", "p 1&x=2"}, {"id[]", "7"}, {"id[]", "8"}}),
                    "event.offline.clear?process_id=p%201%26x%3D2&id%5B%5D=7&id%5B%5D=8");
  BOOST_CHECK_EQUAL(batchCommand("app.info", {}), "app.info");
  RestResult both = classifyRestAnswer(
      200, R"({"result":{"result":{"clear":true,"get":{"process_id":"p2","events":[]}},)"
           R"("result_error":[],"result_total":[],"result_next":[]},"time":{}})");
  BOOST_REQUIRE(both.ok());
  RestResult cleared = batchPart(both, "clear");
  BOOST_CHECK(cleared.ok());
  BOOST_CHECK(cleared.result().convert<bool>());
  RestResult got = batchPart(both, "get");
  BOOST_REQUIRE(got.ok());
  BOOST_CHECK_EQUAL(
      got.result().extract<Poco::JSON::Object::Ptr>()->getValue<std::string>("process_id"), "p2");
  RestResult halted = classifyRestAnswer(
      200, R"({"result":{"result":[],"result_error":{"clear":{"error":"ERROR_CORE",)"
           R"("error_description":"no such process"}}},"time":{}})");
  RestResult failed = batchPart(halted, "clear");
  BOOST_CHECK(failed.kind == RestResult::Kind::kError);
  BOOST_CHECK_EQUAL(failed.error, "ERROR_CORE");
  BOOST_CHECK_EQUAL(failed.description, "no such process");
  RestResult notRun = batchPart(halted, "get");
  BOOST_CHECK(notRun.kind == RestResult::Kind::kError);
  BOOST_CHECK_EQUAL(notRun.error, "not_run");
}

BOOST_AUTO_TEST_CASE(the_token_goes_in_the_body_never_in_the_url) {
  FakeBitrix24 fake;
  fake.acceptToken(kToken);
  Client c;
  RestParams form;
  form.form = {{"id", "7405"}, {"select[]", "TITLE"}, {"select[]", "STAGE_ID"}};
  RestResult r = c.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "crm.deal.get", form);
  BOOST_REQUIRE_MESSAGE(r.ok(), r.error + ": " + r.description);
  BOOST_CHECK_EQUAL(r.result().extract<Poco::JSON::Object::Ptr>()->getValue<std::string>("ID"),
                    "7405");
  RestParams json;
  json.json = new Poco::JSON::Object;
  json.json->set("id", 7405);
  BOOST_REQUIRE(
      c.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "crm.deal.get", json).ok());
  BOOST_CHECK(!json.json->has("auth"));  // the caller's object is not changed
  auto requests = fake.requests();
  BOOST_REQUIRE_EQUAL(requests.size(), 2u);
  for (const auto& q : requests) {
    BOOST_CHECK_EQUAL(q.requestLine, "POST /rest/crm.deal.get HTTP/1.1");
    BOOST_CHECK(q.requestLine.find(kToken) == std::string::npos);
    BOOST_CHECK_EQUAL(q.param("auth"), kToken);
  }
  BOOST_CHECK(requests[0].contentType.find("x-www-form-urlencoded") != std::string::npos);
  BOOST_CHECK(requests[1].contentType.find("application/json") != std::string::npos);
  BOOST_CHECK_EQUAL(requests[0].form.count("select[]"), 2u);
  BOOST_CHECK(c.calls == (std::vector<std::pair<std::string, std::string>>{
                             {"crm.deal.get", "ok"}, {"crm.deal.get", "ok"}}));
}

BOOST_AUTO_TEST_CASE(expired_token_refreshes_once_and_retries) {
  FakeBitrix24 fake;
  fake.expireToken(kToken);
  Client c;
  fake.acceptToken(c.refreshedToken);
  RestResult r = c.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "app.info", {});
  BOOST_REQUIRE_MESSAGE(r.ok(), r.error);
  BOOST_CHECK(c.tokenAsks == (std::vector<bool>{false, true}));
  auto requests = fake.requests();
  BOOST_REQUIRE_EQUAL(requests.size(), 2u);
  BOOST_CHECK_EQUAL(requests[1].param("auth"), c.refreshedToken);

  // A refreshed token that is expired too: one retry only, then the error.
  fake.expireToken(c.refreshedToken);
  c.tokenAsks.clear();
  r = c.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "app.info", {});
  BOOST_CHECK(r.kind == RestResult::Kind::kError);
  BOOST_CHECK_EQUAL(r.error, "expired_token");
  BOOST_CHECK_EQUAL(c.tokenAsks.size(), 2u);
  BOOST_CHECK_EQUAL(fake.requests().size(), 4u);
}

BOOST_AUTO_TEST_CASE(query_limit_exceeded_waits_1_2_4_seconds_and_gives_up_after_three) {
  FakeBitrix24 fake;
  fake.acceptToken(kToken);
  Client c;
  fake.injectQueryLimit(2);
  BOOST_CHECK(c.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "x.y", {}).ok());
  BOOST_CHECK(c.waits == (std::vector<std::int64_t>{1000, 2000}));
  c.waits.clear();
  fake.injectQueryLimit(10);
  RestResult r = c.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "x.y", {});
  BOOST_CHECK_EQUAL(r.error, "QUERY_LIMIT_EXCEEDED");
  BOOST_CHECK_EQUAL(r.httpStatus, 503);
  BOOST_CHECK(c.waits == (std::vector<std::int64_t>{1000, 2000, 4000}));
  BOOST_CHECK_EQUAL(fake.requests().size(), 3u + 4u);
}

BOOST_AUTO_TEST_CASE(other_errors_fail_with_bitrix24s_error_and_description) {
  FakeBitrix24 fake;
  Client c;  // its token is not accepted
  RestResult r = c.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "x.y", {});
  BOOST_CHECK(r.kind == RestResult::Kind::kError);
  BOOST_CHECK_EQUAL(r.error, "invalid_token");
  BOOST_CHECK_EQUAL(r.description, "The access token provided is invalid.");
  BOOST_CHECK_EQUAL(c.tokenAsks.size(), 1u);  // not a reason to refresh

  fake.acceptToken(kToken);
  fake.injectServerError("x.y", 1);
  r = c.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "x.y", {});
  BOOST_CHECK(r.kind == RestResult::Kind::kUnreachable);
  BOOST_CHECK_EQUAL(r.error, "http_500");

  r = c.rest.call(portalAt("http://127.0.0.1:" + std::to_string(closedPort()) + "/rest/"),
                  std::nullopt, "x.y", {});
  BOOST_CHECK(r.kind == RestResult::Kind::kUnreachable);
  BOOST_CHECK(r.description.find(kToken) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(https_verifies_the_certificate_against_the_name_it_connects_for) {
  FakeBitrix24 fake(/*tls=*/true);
  fake.acceptToken(kToken);
  RestSettings s;
  s.allowedHosts = {"127.0.0.1"};
  RestClientOptions trusted;
  trusted.caLocation = std::string(B24ES_TEST_DATA) + "/tls/fake-oauth-cert.pem";
  Client good(s, trusted);
  RestResult r = good.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "app.info", {});
  BOOST_CHECK_MESSAGE(r.ok(), r.error + ": " + r.description);

  // The same address under another name: the certificate names 127.0.0.1 only.
  RestSettings byName = s;
  byName.allowedHosts = {"localhost"};
  Client wrongName(byName, trusted);
  std::string port = std::to_string(Poco::URI(fake.baseUrl()).getPort());
  r = wrongName.rest.call(portalAt("https://localhost:" + port + "/rest/"), std::nullopt,
                          "app.info", {});
  BOOST_CHECK_EQUAL(r.error, "tls_error");

  Client untrusted(s);  // the system store does not know the fake's certificate
  r = untrusted.rest.call(portalAt(fake.clientEndpoint()), std::nullopt, "app.info", {});
  BOOST_CHECK(r.kind == RestResult::Kind::kUnreachable);
  BOOST_CHECK_EQUAL(r.error, "tls_error");
  BOOST_CHECK_EQUAL(fake.requests().size(), 1u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(call_command)

namespace {

const std::string kClientId = "app.6752f1a3b4c8d9.41234567";
const std::string kClientSecret = "fake-client-secret";

struct Harness {
  TempDir dir;
  SystemClock clock;
  FakeOAuthServer oauth{clock};
  FakeBitrix24 portal;
  Settings settings;
  std::unique_ptr<Service> service;
  std::string config;
  InstallSpec spec;

  Harness() {
    settings = testSettings(dir);
    service = std::make_unique<Service>(settings, clock);
    service->start();
    config = dir.file("b24es.properties");
    std::ofstream out(config);
    out << "db.path = " << settings.db.path << "\n"
        << "bitrix24.client_id = " << kClientId << "\n"
        << "bitrix24.client_secret = " << kClientSecret << "\n"
        << "oauth.allowed_hosts = 127.0.0.1\noauth.allow_http = true\n"
        << "rest.allowed_hosts = 127.0.0.1\nrest.allow_http = true\n";
    spec.serverEndpoint = oauth.serverEndpoint();
    spec.clientEndpoint = portal.clientEndpoint();
    spec.expires = clock.nowSeconds() + 3600;
    HttpResult r = postForm(service->ingestUrl(), settings.ingest.path, installForm(spec));
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    oauth.accept(spec.refreshToken, spec.memberId, spec.userId);
    portal.setTokenCheck(
        [this](const std::string& t) { return oauth.liveAccessTokens().count(t); });
  }
  ~Harness() { service->stop(); }

  int run(std::vector<std::string> args, std::string& out, std::string& err) {
    args.push_back("--config");
    args.push_back(config);
    return runBinary(args, out, err);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(prints_the_whole_answer_of_the_portal) {
  Harness h;
  h.portal.acceptToken(h.spec.accessToken);
  std::string out, err;
  BOOST_CHECK_EQUAL(
      h.run({"call", h.spec.memberId, "crm.deal.get", "--param", "id=7405"}, out, err), 0);
  Poco::JSON::Parser parser;
  auto answer = parser.parse(out).extract<Poco::JSON::Object::Ptr>();
  BOOST_CHECK_EQUAL(answer->getObject("result")->getValue<std::string>("ID"), "7405");
  BOOST_CHECK(answer->has("time"));
  auto requests = h.portal.requests();
  BOOST_REQUIRE_EQUAL(requests.size(), 1u);
  BOOST_CHECK_EQUAL(requests[0].requestLine, "POST /rest/crm.deal.get HTTP/1.1");
  BOOST_CHECK_EQUAL(requests[0].param("auth"), h.spec.accessToken);
  BOOST_CHECK(out.find(h.spec.accessToken) == std::string::npos);
  BOOST_CHECK(err.find(h.spec.accessToken) == std::string::npos);

  BOOST_CHECK_EQUAL(
      h.run({"call", h.spec.memberId, "crm.deal.get", "--json", R"({"id":12})"}, out, err), 0);
  BOOST_CHECK(out.find("\"ID\":\"12\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_expired_token_is_refreshed_through_the_lease_and_the_call_retried) {
  Harness h;
  h.portal.expireToken(h.spec.accessToken);
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"call", h.spec.memberId, "app.info"}, out, err), 0);
  BOOST_CHECK(out.find("\"CODE\":\"local.fake\"") != std::string::npos);
  BOOST_CHECK_EQUAL(h.oauth.requestCount(), 1u);
  auto requests = h.portal.requests();
  BOOST_REQUIRE_EQUAL(requests.size(), 2u);
  BOOST_CHECK(h.oauth.liveAccessTokens().count(requests[1].param("auth")));
  // The new pair is stored, as `token --refresh` would store it.
  BOOST_CHECK_EQUAL(queryScalar(h.settings.db.path, "SELECT source FROM tokens"), "refresh");
  for (const auto& r : requests) BOOST_CHECK(r.requestLine.find("auth") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(errors_exit_1_with_code_and_description_on_stderr) {
  Harness h;  // the portal accepts no token
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"call", h.spec.memberId, "crm.deal.get"}, out, err), 1);
  BOOST_CHECK(out.empty());
  BOOST_CHECK(err.find("error: invalid_token: The access token provided is invalid.") !=
              std::string::npos);
  BOOST_CHECK_EQUAL(h.run({"call", "00000000000000000000000000000000", "app.info"}, out, err), 1);
  BOOST_CHECK(err.find("error: no_portal:") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2_and_call_nothing) {
  Harness h;
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"call", h.spec.memberId}, out, err), 2);
  BOOST_CHECK_EQUAL(h.run({"call", h.spec.memberId, "x.y", "--param", "novalue"}, out, err), 2);
  BOOST_CHECK_EQUAL(h.run({"call", h.spec.memberId, "x.y", "--json", "[1]"}, out, err), 2);
  BOOST_CHECK_EQUAL(h.run({"call", h.spec.memberId, "x.y", "--force"}, out, err), 2);
  BOOST_CHECK_EQUAL(
      h.run({"call", h.spec.memberId, "x.y", "--param", "a=1", "--json", "{}"}, out, err), 2);
  BOOST_CHECK_EQUAL(h.run({"bind", "--param", "a=1"}, out, err), 2);
  BOOST_CHECK(err.find("bind does not take --param") != std::string::npos);
  BOOST_CHECK_EQUAL(h.run({"fetch-offline", "--json", "{}"}, out, err), 2);
  BOOST_CHECK(h.portal.requests().empty());
}

BOOST_AUTO_TEST_SUITE_END()
