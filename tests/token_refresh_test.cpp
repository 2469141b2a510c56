// Token refresh end to end inside the test process (SPEC §6): the real service ingests an
// install whose server_endpoint points at a fake OAuth server on 127.0.0.1, and the refresher
// talks to that fake over real HTTP (and HTTPS). Covers the request shape, rotation, each error
// class, the allowlist, leases and concurrent refreshers, `token`'s on-demand refresh and the
// keep-alive timer of serve. Runs on both backends (token_refresh_test and token_refresh_test_pg,
// tests/test_backend.h): every case of SPEC §6 holds on PostgreSQL as on SQLite.
#define BOOST_TEST_MODULE token_refresh
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <algorithm>
#include <condition_variable>
#include <future>
#include <memory>
#include <set>
#include <thread>

#include "oauth_client.h"
#include "oauth_fake.h"
#include "refresh_timer.h"
#include "service.h"
#include "test_support.h"
#include "token_refresher.h"

using namespace b24es;
using namespace b24es::test;

namespace {

const std::string kClientId = "app.6752f1a3b4c8d9.41234567";
const std::string kClientSecret = "fake-client-secret";

// Lets threads start together (std::barrier is C++20).
class StartLine {
 public:
  explicit StartLine(int n) : waiting_(n) {}
  void arriveAndWait() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (--waiting_ == 0) {
      go_.notify_all();
      return;
    }
    go_.wait(lock, [this] { return waiting_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable go_;
  int waiting_;
};

// The service with credentials, an allowlist of 127.0.0.1 and plain HTTP allowed, a fake OAuth
// server, and helpers to install portals and read rows.
struct Harness {
  TempDir dir;
  // Starts at the real time, so that peers on the system clock agree on expiries and leases.
  FakeClock clock{SystemClock().nowMillis()};
  FakeOAuthServer fake{clock};
  Settings settings;
  std::unique_ptr<Service> service;
  int portals = 0;

  explicit Harness(const std::function<void(Settings&)>& adjust = {}) {
    settings = testSettings(dir);
    settings.oauth.clientId = kClientId;
    settings.oauth.clientSecret = kClientSecret;
    settings.oauth.allowedHosts = {"127.0.0.1"};
    settings.oauth.allowHttp = true;
    settings.refresh.intervalSeconds = 0;
    settings.refresh.rate = 1000;
    if (adjust) adjust(settings);
    service = std::make_unique<Service>(settings, clock);
    service->start();
  }
  ~Harness() {
    if (service) service->stop();
  }

  // A new portal whose server_endpoint is the fake (or `endpoint`), access token valid 1 hour.
  InstallSpec newPortal(const std::string& endpoint = {}) {
    ++portals;
    InstallSpec p;
    char id[33];
    std::snprintf(id, sizeof id, "%032x", 0x7c1e0000 + portals);
    p.memberId = id;
    p.domain = "portal" + std::to_string(portals) + ".bitrix24.com";
    p.applicationToken = "app-token-" + std::to_string(portals);
    p.serverEndpoint = endpoint.empty() ? fake.serverEndpoint() : endpoint;
    p.accessToken = "install-access-" + std::to_string(portals);
    p.refreshToken = "install-refresh-" + std::to_string(portals);
    p.expires = clock.nowSeconds() + 3600;
    return p;
  }

  // The install, and then (when `proven`) an ordinary event of the portal carrying the same
  // token: a portal that sent nothing but its install is refreshed on demand only.
  void install(const InstallSpec& p, FakeOAuthServer* at = nullptr, bool proven = true) {
    HttpResult r = postForm(service->ingestUrl(), settings.ingest.path, installForm(p));
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    (at ? at : &fake)->accept(p.refreshToken, p.memberId, p.userId);
    if (proven) {
      r = postForm(service->ingestUrl(), settings.ingest.path,
                   dealAddForm(p, p.accessToken, "", p.expires));
      BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    }
  }

  InstallSpec installNew(const std::string& endpoint = {}) {
    InstallSpec p = newPortal(endpoint);
    install(p);
    return p;
  }

  std::string column(const InstallSpec& p, const std::string& column, std::int64_t userId = 1) {
    return queryScalar(settings, "SELECT " + column + " FROM tokens WHERE member_id = '" +
                                     p.memberId + "' AND user_id = " + std::to_string(userId));
  }
  std::string portalColumn(const InstallSpec& p, const std::string& column) {
    return queryScalar(settings,
                       "SELECT " + column + " FROM portals WHERE member_id = '" + p.memberId + "'");
  }

  TokenStore& store() { return service->storage().tokenStore(); }
};

// The harness's refresher over a given client; pacing does not sleep (tested in the policy test).
struct Refresher {
  Refresher(Harness& h, OAuthClient& client)
      : refresher(h.store(), client, h.settings.oauth, h.settings.refresh, h.clock,
                  [](std::int64_t) { return true; }) {}
  TokenRefresher refresher;
};

PassReport forcedPass(TokenRefresher& r, const std::optional<std::string>& memberId = {}) {
  RefreshSelection s;
  s.force = true;
  s.memberId = memberId;
  return r.runPass(s, false);
}

// A success answer that arrives one byte every 50 ms: 100 s for all of it.
FakeOAuthServer::Scripted trickling() {
  FakeOAuthServer::Scripted s;
  s.body = std::string(2000 - 60, ' ') +
           R"({"access_token":"slow-access","refresh_token":"slow-refresh","expires_in":3600})";
  s.trickleMillis = 50;
  return s;
}

std::string now(Harness& h, std::int64_t plus = 0) {
  return std::to_string(h.clock.nowSeconds() + plus);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(request_and_rotation)

BOOST_AUTO_TEST_CASE(a_refresh_posts_one_form_with_grant_type_credentials_and_the_refresh_token) {
  Harness h;
  InstallSpec p = h.installNew();
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  PassReport report = forcedPass(r.refresher);
  BOOST_CHECK_EQUAL(report.success, 1u);

  auto requests = h.fake.requests();
  BOOST_REQUIRE_EQUAL(requests.size(), 1u);
  const auto& req = requests[0];
  BOOST_CHECK_EQUAL(req.method, "POST");
  BOOST_CHECK_EQUAL(req.target, "/oauth/token/");  // nothing secret in the URL
  BOOST_CHECK(req.contentType.rfind("application/x-www-form-urlencoded", 0) == 0);
  BOOST_CHECK_EQUAL(req.form.at("grant_type"), "refresh_token");
  BOOST_CHECK_EQUAL(req.form.at("client_id"), kClientId);
  BOOST_CHECK_EQUAL(req.form.at("client_secret"), kClientSecret);
  BOOST_CHECK_EQUAL(req.form.at("refresh_token"), p.refreshToken);
  BOOST_CHECK_EQUAL(req.form.size(), 4u);
}

BOOST_AUTO_TEST_CASE(a_success_stores_the_rotated_pair_and_the_next_refresh_spends_the_new_one) {
  Harness h;
  InstallSpec p = h.installNew();
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  BOOST_REQUIRE_EQUAL(forcedPass(r.refresher).success, 1u);

  const std::string stored = h.column(p, "refresh_token");
  BOOST_CHECK(stored != p.refreshToken);
  BOOST_CHECK(h.fake.isLive(stored));
  BOOST_CHECK(!h.fake.isLive(p.refreshToken));
  BOOST_CHECK(h.fake.liveAccessTokens().count(h.column(p, "access_token")));
  BOOST_CHECK_EQUAL(h.column(p, "source"), "refresh");
  BOOST_CHECK_EQUAL(h.column(p, "expires_at"), now(h, 3600));
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token_at"), now(h));
  BOOST_CHECK_EQUAL(h.column(p, "last_refresh_at"), now(h));
  BOOST_CHECK_EQUAL(h.column(p, "last_refresh_error"), "NULL");
  BOOST_CHECK_EQUAL(h.column(p, "refresh_failures"), "0");
  BOOST_CHECK_EQUAL(h.column(p, "refresh_lease_until"), "NULL");
  BOOST_CHECK_EQUAL(h.column(p, "from_install"), "1");
  BOOST_CHECK_EQUAL(h.column(p, "scope"), "crm,task,imbot,im,user,calendar,placement");
  BOOST_CHECK_EQUAL(h.portalColumn(p, "server_endpoint"), h.fake.serverEndpoint());
  BOOST_CHECK_EQUAL(h.portalColumn(p, "client_endpoint"), "https://acme-test.bitrix24.com/rest/");
  BOOST_CHECK_EQUAL(h.portalColumn(p, "status"), "F");

  h.clock.advanceSeconds(5);
  BOOST_REQUIRE_EQUAL(forcedPass(r.refresher).success, 1u);
  std::vector<std::string> sent = h.fake.receivedRefreshTokens();
  BOOST_REQUIRE_EQUAL(sent.size(), 2u);
  BOOST_CHECK_EQUAL(sent[0], p.refreshToken);
  BOOST_CHECK_EQUAL(sent[1], stored);
  BOOST_CHECK(h.fake.isLive(h.column(p, "refresh_token")));
}

BOOST_AUTO_TEST_CASE(keep_alive_renews_only_refresh_tokens_older_than_max_age_days_once) {
  Harness h([](Settings& s) { s.refresh.maxAgeDays = 30; });
  h.installNew();
  h.installNew();
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);

  h.clock.advanceSeconds(29 * 86400);
  PassReport early = r.refresher.runPass({}, false);
  BOOST_CHECK_EQUAL(early.checked, 2u);
  BOOST_CHECK_EQUAL(early.due, 0u);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);

  h.clock.advanceSeconds(86400);
  PassReport due = r.refresher.runPass({}, false);
  BOOST_CHECK_EQUAL(due.due, 2u);
  BOOST_CHECK_EQUAL(due.success, 2u);

  // Renewed: not due again for another 30 days, however often passes run.
  for (int day = 0; day < 29; ++day) {
    h.clock.advanceSeconds(86400);
    BOOST_CHECK_EQUAL(r.refresher.runPass({}, false).due, 0u);
  }
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 2u);
  h.clock.advanceSeconds(86400);
  BOOST_CHECK_EQUAL(r.refresher.runPass({}, false).success, 2u);
}

BOOST_AUTO_TEST_CASE(expiring_within_adds_access_tokens_that_expire_in_the_window) {
  Harness h;
  InstallSpec later = h.newPortal();
  h.install(later);
  InstallSpec soon = h.newPortal();
  soon.expires = h.clock.nowSeconds() + 100;
  h.install(soon);
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  RefreshSelection s;
  s.expiringWithinSeconds = 600;
  PassReport report = r.refresher.runPass(s, false);
  BOOST_CHECK_EQUAL(report.due, 1u);
  BOOST_CHECK_EQUAL(report.success, 1u);
  BOOST_CHECK(h.fake.receivedRefreshTokens() == std::vector<std::string>{soon.refreshToken});
}

BOOST_AUTO_TEST_CASE(member_id_limits_the_pass_to_one_portal) {
  Harness h;
  h.installNew();
  InstallSpec b = h.installNew();
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  PassReport report = forcedPass(r.refresher, b.memberId);
  BOOST_CHECK_EQUAL(report.checked, 1u);
  BOOST_CHECK(h.fake.receivedRefreshTokens() == std::vector<std::string>{b.refreshToken});
}

BOOST_AUTO_TEST_CASE(a_dry_run_lists_due_tokens_and_sends_nothing) {
  Harness h;
  InstallSpec p = h.installNew();
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  RefreshSelection s;
  s.force = true;
  PassReport report = r.refresher.runPass(s, true);
  BOOST_CHECK_EQUAL(report.due, 1u);
  BOOST_REQUIRE_EQUAL(report.dueTokens.size(), 1u);
  BOOST_CHECK_EQUAL(report.dueTokens[0].memberId, p.memberId);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), p.refreshToken);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(error_classes)

BOOST_AUTO_TEST_CASE(dead_answers_mark_the_row_keep_the_refresh_token_and_are_not_retried) {
  Harness h;
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  std::vector<InstallSpec> dead;
  for (const char* error : {"invalid_grant", "expired_token", "invalid_client", "wrong_client",
                            "PAYMENT_REQUIRED", "NO_AUTH_FOUND"}) {
    for (int status : {200, 400}) {
      InstallSpec p = h.installNew();
      h.fake.script({status, std::string(R"({"error":")") + error + R"("})", 0});
      PassReport report = forcedPass(r.refresher, p.memberId);
      BOOST_CHECK_MESSAGE(report.dead == 1, error << " with HTTP " << status);
      BOOST_CHECK_EQUAL(h.column(p, "refresh_dead_at"), now(h));
      BOOST_CHECK(h.column(p, "last_refresh_error").rfind(std::string(error) + ": HTTP ", 0) == 0);
      BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), p.refreshToken);
      BOOST_CHECK_EQUAL(h.column(p, "refresh_failures"), "1");
      BOOST_CHECK_EQUAL(h.column(p, "refresh_lease_until"), "NULL");
      dead.push_back(p);
    }
  }
  const std::size_t sent = h.fake.requestCount();
  PassReport later = r.refresher.runPass({}, false);
  BOOST_CHECK_EQUAL(later.needReinstall, dead.size());
  BOOST_CHECK_EQUAL(later.due, 0u);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), sent);

  // `token` cannot refresh a dead row and says why.
  h.clock.advanceSeconds(7200);
  AccessTokenResult t = r.refresher.accessToken(dead[0].memberId, std::nullopt, false);
  BOOST_CHECK(!t.accessToken);
  BOOST_CHECK(t.error.find("dead") != std::string::npos);
  BOOST_CHECK(t.error.find("reinstall") != std::string::npos);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), sent);
}

BOOST_AUTO_TEST_CASE(a_reinstall_or_an_event_with_a_refresh_token_clears_the_dead_marker) {
  Harness h;
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.installNew();
  h.fake.script({400, R"({"error":"invalid_grant"})", 0});
  BOOST_REQUIRE_EQUAL(forcedPass(r.refresher).dead, 1u);

  // An ordinary event brings only an access token: still dead.
  HttpResult e = postForm(h.service->ingestUrl(), h.settings.ingest.path,
                          dealAddForm(p, "event-access-1", "", h.clock.nowSeconds() + 4000));
  BOOST_REQUIRE_EQUAL(e.status, 200);
  BOOST_CHECK(h.column(p, "refresh_dead_at") != "NULL");

  // An event with a new refresh token revives the row.
  e = postForm(h.service->ingestUrl(), h.settings.ingest.path,
               dealAddForm(p, "event-access-2", "event-refresh-2", h.clock.nowSeconds() + 5000));
  BOOST_REQUIRE_EQUAL(e.status, 200);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_dead_at"), "NULL");
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), "event-refresh-2");

  // A reinstall revives a dead row too.
  InstallSpec q = h.installNew();
  h.fake.script({200, R"({"error":"NO_AUTH_FOUND"})", 0});
  BOOST_REQUIRE_EQUAL(forcedPass(r.refresher, q.memberId).dead, 1u);
  q.accessToken = "reinstall-access";
  q.refreshToken = "reinstall-refresh";
  h.install(q);
  BOOST_CHECK_EQUAL(h.column(q, "refresh_dead_at"), "NULL");
  BOOST_CHECK_EQUAL(h.column(q, "last_refresh_error"), "NULL");
  BOOST_CHECK_EQUAL(forcedPass(r.refresher, q.memberId).success, 1u);
}

BOOST_AUTO_TEST_CASE(server_errors_are_transient_keep_the_refresh_token_and_count_failures) {
  Harness h;
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.installNew();
  h.fake.script({503, "<html>Service Unavailable</html>", 0});
  PassReport first = forcedPass(r.refresher);
  BOOST_CHECK_EQUAL(first.transient, 1u);
  BOOST_CHECK_EQUAL(first.failed(), 1u);
  BOOST_CHECK_EQUAL(h.column(p, "last_refresh_error"), "http_503: HTTP 503");
  BOOST_CHECK_EQUAL(h.column(p, "refresh_failures"), "1");
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), p.refreshToken);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_dead_at"), "NULL");
  BOOST_CHECK_EQUAL(h.column(p, "refresh_lease_until"), "NULL");

  h.fake.script({200, "<html>not json</html>", 0});
  BOOST_CHECK_EQUAL(forcedPass(r.refresher).transient, 1u);
  BOOST_CHECK(h.column(p, "last_refresh_error").rfind("malformed_answer: ", 0) == 0);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_failures"), "2");

  // The kept refresh token still works, and success clears the failure record.
  BOOST_CHECK_EQUAL(forcedPass(r.refresher).success, 1u);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_failures"), "0");
  BOOST_CHECK_EQUAL(h.column(p, "last_refresh_error"), "NULL");
  auto sent = h.fake.receivedRefreshTokens();
  BOOST_CHECK(std::count(sent.begin(), sent.end(), p.refreshToken) == 3);
}

BOOST_AUTO_TEST_CASE(a_timeout_is_transient) {
  Harness h;
  HttpOAuthOptions fast;
  fast.ioTimeout = Poco::Timespan(0, 300000);
  HttpOAuthClient client(h.settings.oauth, fast);
  Refresher r(h, client);
  InstallSpec p = h.installNew();
  h.fake.script({200, "{}", 5000});
  BOOST_CHECK_EQUAL(forcedPass(r.refresher).transient, 1u);
  BOOST_CHECK(h.column(p, "last_refresh_error").rfind("timeout: ", 0) == 0);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), p.refreshToken);
}

BOOST_AUTO_TEST_CASE(a_refused_connection_is_transient) {
  Harness h;
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.installNew("http://127.0.0.1:" + std::to_string(closedPort()) + "/rest/");
  BOOST_CHECK_EQUAL(forcedPass(r.refresher).transient, 1u);
  BOOST_CHECK(h.column(p, "last_refresh_error").rfind("connection_failed: ", 0) == 0);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_failures"), "1");
}

// Issue 13: an error text echoing the client secret minus its last character was stored and
// shown (last_refresh_error, /api/v1/portals/{id}, the token_health view).
BOOST_AUTO_TEST_CASE(most_of_a_secret_echoed_by_the_server_is_not_stored_or_shown) {
  Harness h;
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.installNew();
  const std::string almostSecret = kClientSecret.substr(0, kClientSecret.size() - 1);
  const std::string almostRefresh = p.refreshToken.substr(1);
  h.fake.script({400,
                 R"({"error":"invalid_request )" + almostSecret +
                     R"(","error_description":"client )" + almostSecret + " token " +
                     almostRefresh + R"( is wrong"})",
                 0});
  forcedPass(r.refresher);
  const std::string error = h.column(p, "last_refresh_error");
  BOOST_CHECK(error.find("[redacted]") != std::string::npos);
  BOOST_CHECK(error.find("is wrong") != std::string::npos);  // the server's words stay
  const std::string portal = httpGet(h.service->queryUrl(), "/api/v1/portals/" + p.memberId).body;
  const std::string view =
      queryScalar(h.settings, testBackend() == Backend::postgresql
                                  ? "SELECT string_agg(last_refresh_error, ',') FROM token_health"
                                  : "SELECT group_concat(last_refresh_error) FROM token_health");
  for (const std::string& shown : {error, portal, view}) {
    BOOST_CHECK(shown.find(almostSecret.substr(0, 8)) == std::string::npos);
    BOOST_CHECK(shown.find(almostRefresh.substr(almostRefresh.size() - 8)) == std::string::npos);
  }
  BOOST_CHECK(portal.find("[redacted]") != std::string::npos);
}

// A portal that sent nothing but its install may be anyone's invention: issue 13 had 20,000.
BOOST_AUTO_TEST_CASE(keep_alive_does_not_spend_the_secret_on_a_portal_that_sent_only_its_install) {
  Harness h([](Settings& s) { s.refresh.maxAgeDays = 0; });
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec unproven = h.newPortal();
  unproven.expires = h.clock.nowSeconds() - 60;
  h.install(unproven, nullptr, false);
  InstallSpec proven = h.installNew();
  PassReport pass = r.refresher.runPass({}, false);
  BOOST_CHECK_EQUAL(pass.checked, 2u);
  BOOST_CHECK_EQUAL(pass.due, 1u);
  BOOST_CHECK(h.fake.receivedRefreshTokens() == std::vector<std::string>{proven.refreshToken});
  RefreshSelection expiring;
  expiring.expiringWithinSeconds = 3600;
  BOOST_CHECK_EQUAL(r.refresher.runPass(expiring, true).dueTokens.size(), 1u);
  BOOST_CHECK(keepAliveReason(*h.store().findToken(unproven.memberId, 1), {}, 0,
                              h.clock.nowSeconds()) == DueReason::kUnproven);

  // On demand it is refreshed: something is using the token.
  AccessTokenResult onDemand = r.refresher.accessToken(unproven.memberId, {}, false);
  BOOST_CHECK(onDemand.refreshed);
  // And a refresh Bitrix24 accepted proves it: keep-alive passes renew it from then on.
  const std::size_t before = h.fake.requestCount();
  BOOST_CHECK_EQUAL(r.refresher.runPass({}, false).success, 2u);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), before + 2);

  // So does an ordinary event of the portal.
  InstallSpec later = h.newPortal();
  h.install(later, nullptr, false);
  BOOST_CHECK_EQUAL(r.refresher.runPass({}, false).due, 2u);
  HttpResult event = postForm(h.service->ingestUrl(), h.settings.ingest.path,
                              dealAddForm(later, later.accessToken, "", later.expires));
  BOOST_REQUIRE_EQUAL(event.status, 200);
  BOOST_CHECK_EQUAL(r.refresher.runPass({}, false).due, 3u);
}

BOOST_AUTO_TEST_CASE(secrets_echoed_by_the_server_are_not_stored_or_returned) {
  Harness h;
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.installNew();
  h.fake.script({400,
                 R"({"error":"invalid_request","error_description":"bad )" + p.refreshToken +
                     " for " + kClientSecret + R"("})",
                 0});
  forcedPass(r.refresher);
  const std::string error = h.column(p, "last_refresh_error");
  BOOST_CHECK(error.find("[redacted]") != std::string::npos);
  BOOST_CHECK(error.find(p.refreshToken) == std::string::npos);
  BOOST_CHECK(error.find(kClientSecret) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(allowlist_and_tls)

BOOST_AUTO_TEST_CASE(a_host_outside_the_allowlist_never_receives_a_request) {
  Harness h;
  FakeOAuthServer other(h.clock, "127.0.0.2");
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.newPortal(other.serverEndpoint());
  h.install(p, &other);

  PassReport report = forcedPass(r.refresher);
  BOOST_CHECK_EQUAL(report.refused, 1u);
  BOOST_CHECK_EQUAL(other.requestCount(), 0u);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
  const std::string error = h.column(p, "last_refresh_error");
  BOOST_CHECK(error.rfind("host_not_allowed: ", 0) == 0);
  BOOST_CHECK(error.find("127.0.0.2") != std::string::npos);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_failures"), "1");
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), p.refreshToken);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_dead_at"), "NULL");

  // The client refuses by itself too, whoever hands it the URL.
  OAuthAnswer direct =
      client.refresh(other.baseUrl() + "/oauth/token/", kClientId, kClientSecret, "x");
  BOOST_CHECK(direct.kind == OAuthAnswer::Kind::kRefused);
  BOOST_CHECK_EQUAL(other.requestCount(), 0u);

  // Listed, the same host is reachable: the refusal above is the allowlist's doing.
  OAuthSettings listed = h.settings.oauth;
  listed.allowedHosts.push_back("127.0.0.2");
  HttpOAuthClient listedClient(listed);
  TokenRefresher allowed(h.store(), listedClient, listed, h.settings.refresh, h.clock,
                         [](std::int64_t) { return true; });
  BOOST_CHECK_EQUAL(forcedPass(allowed).success, 1u);
  BOOST_CHECK_EQUAL(other.requestCount(), 1u);
}

BOOST_AUTO_TEST_CASE(plain_http_is_refused_without_allow_http) {
  Harness h([](Settings& s) { s.oauth.allowHttp = false; });
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.installNew();
  BOOST_CHECK_EQUAL(forcedPass(r.refresher).refused, 1u);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
  BOOST_CHECK(h.column(p, "last_refresh_error").find("only https") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(https_verifies_the_certificate_before_sending_anything) {
  Harness h;
  FakeOAuthServer tls(h.clock, "127.0.0.1", true);
  InstallSpec p = h.newPortal(tls.serverEndpoint());
  h.install(p, &tls);

  // The system CA store does not know the fake's self-signed certificate.
  HttpOAuthClient system(h.settings.oauth);
  Refresher untrusted(h, system);
  BOOST_CHECK_EQUAL(forcedPass(untrusted.refresher).transient, 1u);
  BOOST_CHECK(h.column(p, "last_refresh_error").rfind("tls_error: ", 0) == 0);
  BOOST_CHECK_EQUAL(tls.requestCount(), 0u);

  // Trusting it (as the system store trusts Bitrix24's CA), the same endpoint works.
  HttpOAuthOptions trusting;
  trusting.caLocation = std::string(B24ES_TEST_DATA) + "/tls/fake-oauth-cert.pem";
  HttpOAuthClient trusted(h.settings.oauth, trusting);
  Refresher ok(h, trusted);
  BOOST_CHECK_EQUAL(forcedPass(ok.refresher).success, 1u);
  BOOST_CHECK_EQUAL(tls.requestCount(), 1u);
  BOOST_CHECK(tls.isLive(h.column(p, "refresh_token")));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(leases_and_concurrency)

// Issue 13: a token endpoint that trickled its answer kept one refresh waiting 150 s, past its
// lease; each byte came before the 20 s receive timeout.
BOOST_AUTO_TEST_CASE(a_trickling_answer_is_cut_at_refresh_timeout) {
  Harness h([](Settings& s) { s.refresh.timeoutSeconds = 1; });
  HttpOAuthClient client(h.settings.oauth, httpOAuthOptions(h.settings.refresh));
  Refresher r(h, client);
  InstallSpec p = h.installNew();
  h.fake.script(trickling());
  BOOST_CHECK_EQUAL(forcedPass(r.refresher).transient, 1u);
  BOOST_CHECK(h.column(p, "last_refresh_error").rfind("timeout: ", 0) == 0);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), p.refreshToken);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_lease_until"), "NULL");
  // The client still works for the next request.
  BOOST_CHECK_EQUAL(forcedPass(r.refresher).success, 1u);
}

BOOST_AUTO_TEST_CASE(the_lease_outlives_the_deadline_of_the_request) {
  RefreshSettings refresh;
  refresh.timeoutSeconds = 20;
  refresh.rate = 0.5;
  BOOST_CHECK_GT(refreshLeaseSeconds(refresh), 20 + 2);
  refresh.timeoutSeconds = 600;
  BOOST_CHECK_GT(refreshLeaseSeconds(refresh), 600 + 2);
  // And a refresher holds that lease while its request runs.
  Harness h([](Settings& s) { s.refresh.timeoutSeconds = 3; });
  InstallSpec p = h.installNew();
  HttpOAuthClient client(h.settings.oauth, httpOAuthOptions(h.settings.refresh));
  Refresher r(h, client);
  h.fake.script(trickling());
  std::thread pass([&] { forcedPass(r.refresher); });
  BOOST_REQUIRE(h.fake.waitForRequests(1, 20000));
  const std::int64_t leaseUntil = std::stoll(h.column(p, "refresh_lease_until"));
  pass.join();
  BOOST_CHECK_GE(leaseUntil, h.clock.nowSeconds() + refreshLeaseSeconds(h.settings.refresh));
  BOOST_CHECK_EQUAL(h.column(p, "refresh_lease_until"), "NULL");  // released after the cut
}

// Issue 13: serve took 117 s to stop with its timer stuck in a trickling refresh.
BOOST_AUTO_TEST_CASE(serve_stops_within_its_grace_period_with_a_refresh_in_flight) {
  Harness h([](Settings& s) {
    s.refresh.intervalSeconds = 1;
    s.refresh.maxAgeDays = 0;
    s.refresh.timeoutSeconds = 200;  // far beyond the grace period
  });
  h.fake.script(trickling());
  InstallSpec p = h.installNew();
  BOOST_REQUIRE(h.fake.waitForRequests(1, 20000));
  auto stopped = std::async(std::launch::async, [&h] { h.service->stop(); });
  BOOST_CHECK(stopped.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  stopped.get();
  h.service.reset();
  BOOST_CHECK(h.column(p, "last_refresh_error").rfind("stopped: ", 0) == 0);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_lease_until"), "NULL");
}

BOOST_AUTO_TEST_CASE(a_claimed_row_is_left_alone_until_its_lease_expires) {
  Harness h;
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.installNew();
  ClaimRequest request;
  request.memberId = p.memberId;
  request.userId = 1;
  request.leaseSeconds = 300;
  Claim held = h.store().claim(request, h.clock.nowSeconds());
  BOOST_REQUIRE(held.status == Claim::Status::kClaimed);
  BOOST_CHECK(h.store().claim(request, h.clock.nowSeconds()).status == Claim::Status::kBusy);

  PassReport busy = forcedPass(r.refresher);
  BOOST_CHECK_EQUAL(busy.skipped, 1u);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);

  // A refresher that died holding the lease delays the row, it does not lose it.
  h.clock.advanceSeconds(301);
  BOOST_CHECK_EQUAL(forcedPass(r.refresher).success, 1u);
}

BOOST_AUTO_TEST_CASE(a_result_for_a_row_replaced_meanwhile_is_not_written) {
  Harness h;
  InstallSpec p = h.installNew();
  ClaimRequest request;
  request.memberId = p.memberId;
  request.userId = 1;
  Claim claim = h.store().claim(request, h.clock.nowSeconds());
  BOOST_REQUIRE(claim.status == Claim::Status::kClaimed);
  InstallSpec again = p;
  again.accessToken = "reinstalled-access";
  again.refreshToken = "reinstalled-refresh";
  h.install(again);

  RefreshedTokens fresh;
  fresh.accessToken = "late-access";
  fresh.refreshToken = "late-refresh";
  BOOST_CHECK(!h.store().recordSuccess(claim, fresh, h.clock.nowSeconds()));
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), "reinstalled-refresh");
  BOOST_CHECK_EQUAL(h.column(p, "access_token"), "reinstalled-access");
  BOOST_CHECK_EQUAL(h.column(p, "refresh_lease_until"), "NULL");
  BOOST_CHECK(!h.store().recordFailure(claim, "x", true, h.clock.nowSeconds()));
  BOOST_CHECK_EQUAL(h.column(p, "refresh_dead_at"), "NULL");
}

// Each thread has its own database connection and client, like a separate process would.
struct Peer {
  Peer(Harness& h, const Clock& clock)
      : storage(openTestStorage(h.settings, clock)),
        client(h.settings.oauth),
        refresher(storage->tokenStore(), client, h.settings.oauth, h.settings.refresh, clock) {}
  std::unique_ptr<Storage> storage;
  HttpOAuthClient client;
  TokenRefresher refresher;
};

BOOST_AUTO_TEST_CASE(three_refreshers_in_threads_never_send_one_refresh_token_twice) {
  Harness h;
  std::vector<InstallSpec> portals;
  for (int i = 0; i < 6; ++i) portals.push_back(h.installNew());
  SystemClock realTime;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::unique_ptr<Peer>> peers;
    for (int i = 0; i < 3; ++i) peers.push_back(std::make_unique<Peer>(h, realTime));
    StartLine start(3);
    std::vector<PassReport> reports(3);
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) {
      threads.emplace_back([&, i] {
        start.arriveAndWait();
        reports[i] = forcedPass(peers[i]->refresher);
      });
    }
    for (auto& t : threads) t.join();
    std::size_t success = 0;
    for (const PassReport& r : reports) {
      success += r.success;
      BOOST_CHECK_EQUAL(r.failed(), 0u);
    }
    BOOST_CHECK_GE(success, portals.size());
  }
  std::vector<std::string> sent = h.fake.receivedRefreshTokens();
  std::set<std::string> unique(sent.begin(), sent.end());
  BOOST_CHECK_EQUAL(unique.size(), sent.size());
  for (const InstallSpec& p : portals) {
    BOOST_CHECK(h.fake.isLive(h.column(p, "refresh_token")));
    BOOST_CHECK_EQUAL(h.column(p, "refresh_dead_at"), "NULL");
  }
}

BOOST_AUTO_TEST_CASE(three_token_calls_at_once_refresh_an_expired_token_once) {
  Harness h;
  InstallSpec p = h.newPortal();
  p.expires = h.clock.nowSeconds() - 10;
  h.install(p);
  SystemClock realTime;
  std::vector<std::unique_ptr<Peer>> peers;
  for (int i = 0; i < 3; ++i) peers.push_back(std::make_unique<Peer>(h, realTime));
  StartLine start(3);
  std::vector<AccessTokenResult> results(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      start.arriveAndWait();
      results[i] = peers[i]->refresher.accessToken(p.memberId, std::nullopt, false);
    });
  }
  for (auto& t : threads) t.join();
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 1u);
  for (const AccessTokenResult& r : results) {
    BOOST_REQUIRE_MESSAGE(r.accessToken, r.error);
    BOOST_CHECK_EQUAL(*r.accessToken, h.column(p, "access_token"));
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(on_demand)

BOOST_AUTO_TEST_CASE(token_uses_a_valid_token_and_refreshes_only_an_expired_one) {
  Harness h;
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.installNew();

  AccessTokenResult valid = r.refresher.accessToken(p.memberId, std::nullopt, false);
  BOOST_REQUIRE(valid.accessToken);
  BOOST_CHECK_EQUAL(*valid.accessToken, p.accessToken);
  BOOST_CHECK(!valid.refreshed);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);

  h.clock.advanceSeconds(3600);
  AccessTokenResult expired = r.refresher.accessToken(p.memberId, std::nullopt, false);
  BOOST_REQUIRE_MESSAGE(expired.accessToken, expired.error);
  BOOST_CHECK(expired.refreshed);
  BOOST_CHECK(*expired.accessToken != p.accessToken);
  BOOST_CHECK(h.fake.liveAccessTokens().count(*expired.accessToken));
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 1u);

  AccessTokenResult again = r.refresher.accessToken(p.memberId, 1, false);
  BOOST_CHECK(again.accessToken == expired.accessToken);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 1u);

  // --refresh: a REST call answered expired_token although the expiry says otherwise.
  AccessTokenResult forced = r.refresher.accessToken(p.memberId, std::nullopt, true);
  BOOST_REQUIRE(forced.accessToken);
  BOOST_CHECK(forced.accessToken != expired.accessToken);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 2u);

  AccessTokenResult nobody = r.refresher.accessToken(p.memberId, 42, false);
  BOOST_CHECK(!nobody.accessToken);
  BOOST_CHECK(nobody.error.find("no token stored") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(token_defaults_to_the_installing_user_even_after_a_refresh) {
  Harness h;
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.newPortal();
  p.userId = 9;
  h.install(p);
  InstallSpec colleague = p;
  colleague.userId = 3;  // a lower user id, known only from an event
  HttpResult e =
      postForm(h.service->ingestUrl(), h.settings.ingest.path,
               dealAddForm(colleague, "colleague-access", "", h.clock.nowSeconds() + 3600));
  BOOST_REQUIRE_EQUAL(e.status, 200);

  BOOST_CHECK(r.refresher.accessToken(p.memberId, std::nullopt, false).accessToken ==
              std::optional<std::string>(p.accessToken));
  BOOST_CHECK(r.refresher.accessToken(p.memberId, 3, false).accessToken ==
              std::optional<std::string>("colleague-access"));
  AccessTokenResult refreshed = r.refresher.accessToken(p.memberId, std::nullopt, true);
  BOOST_REQUIRE(refreshed.accessToken);
  BOOST_CHECK_EQUAL(h.column(p, "source", 9), "refresh");
  BOOST_CHECK(r.refresher.accessToken(p.memberId, std::nullopt, false).accessToken ==
              refreshed.accessToken);
}

BOOST_AUTO_TEST_CASE(token_without_credentials_is_a_configuration_error) {
  Harness h([](Settings& s) { s.oauth.clientSecret.clear(); });
  HttpOAuthClient client(h.settings.oauth);
  Refresher r(h, client);
  InstallSpec p = h.installNew();
  BOOST_CHECK(r.refresher.accessToken(p.memberId, std::nullopt, false).accessToken);
  AccessTokenResult forced = r.refresher.accessToken(p.memberId, std::nullopt, true);
  BOOST_CHECK(!forced.accessToken);
  BOOST_CHECK(forced.configError);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(serve_timer)

BOOST_AUTO_TEST_CASE(serve_runs_keep_alive_passes_on_its_own_thread_without_blocking_ingest) {
  Harness h([](Settings& s) {
    s.refresh.intervalSeconds = 1;
    s.refresh.maxAgeDays = 0;
  });
  // The first answer is slow: ingest must go on while the timer waits for it.
  h.fake.script({200, "{}", 3000});
  InstallSpec p = h.installNew();
  BOOST_REQUIRE(h.fake.waitForRequests(1, 10000));
  HttpResult event = postForm(h.service->ingestUrl(), h.settings.ingest.path,
                              dealAddForm(p, "event-access", "", h.clock.nowSeconds() + 100));
  BOOST_CHECK_EQUAL(event.status, 200);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), p.refreshToken);  // refresh still pending

  // The slow answer was garbage (transient); a later pass refreshes for real.
  BOOST_REQUIRE(h.fake.waitForRequests(2, 10000));
  for (int i = 0; i < 100 && h.column(p, "source") != "refresh"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  BOOST_CHECK_EQUAL(h.column(p, "source"), "refresh");
  h.service->stop();
  h.service.reset();
  BOOST_CHECK(h.fake.isLive(h.column(p, "refresh_token")));
  const std::size_t after = h.fake.requestCount();
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  BOOST_CHECK_EQUAL(h.fake.requestCount(), after);  // stopped means stopped
}

BOOST_AUTO_TEST_CASE(serve_has_no_timer_without_credentials_or_with_interval_zero) {
  Settings s;
  s.refresh.intervalSeconds = 0;
  s.oauth.clientId = "id";
  s.oauth.clientSecret = "secret";
  BOOST_CHECK(!keepAliveDisabledReason(s.oauth, s.refresh).empty());
  s.refresh.intervalSeconds = 1;
  BOOST_CHECK(keepAliveDisabledReason(s.oauth, s.refresh).empty());
  s.oauth.clientSecret.clear();
  BOOST_CHECK(!keepAliveDisabledReason(s.oauth, s.refresh).empty());
}

BOOST_AUTO_TEST_SUITE_END()
