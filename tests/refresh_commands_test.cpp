// The token commands as a user runs them (SPEC §2, §6): the real binary as a child process,
// against a database an in-process service filled with installs whose server_endpoint is a fake
// OAuth server on 127.0.0.1. Covers `refresh-tokens` (summary line, --dry-run, --member-id, exit
// codes), `token` (prints only the token, refreshes only an expired one), separate processes
// refreshing at once, the example REST script, and that no output carries a secret. Runs on both
// backends (refresh_commands_test_pg: the children get B24ES_DB_URL, tests/test_backend.h).
#define BOOST_TEST_MODULE refresh_commands
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/File.h>
#include <Poco/String.h>
#include <Poco/URI.h>
#include <sys/wait.h>

#include <fstream>
#include <set>
#include <sstream>

#include "oauth_fake.h"
#include "service.h"
#include "test_support.h"

using namespace b24es;
using namespace b24es::test;

namespace {

const std::string kClientId = "app.6752f1a3b4c8d9.41234567";
const std::string kClientSecret = "fake-client-secret";

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

struct Harness {
  TempDir dir;
  SystemClock clock;
  FakeOAuthServer fake{clock};
  Settings settings;
  std::unique_ptr<Service> service;  // ingests the installs; no credentials, so no timer
  std::string config;
  std::vector<InstallSpec> installed;

  explicit Harness(const std::string& extraConfig = "", bool withSecret = true) {
    settings = testSettings(dir);
    service = std::make_unique<Service>(settings, clock);
    service->start();
    config = dir.file("b24es.properties");
    std::ofstream out(config);
    out << "db.path = " << settings.db.path << "\n"
        << "bitrix24.client_id = " << kClientId << "\n"
        << (withSecret ? "bitrix24.client_secret = " + kClientSecret + "\n" : "")
        << "oauth.allowed_hosts = 127.0.0.1\n"
        << "oauth.allow_http = true\n"
        << "refresh.rate = 100\n"
        << extraConfig;
  }
  ~Harness() { service->stop(); }

  InstallSpec install(std::int64_t expiresIn = 3600) {
    InstallSpec p;
    const int n = static_cast<int>(installed.size()) + 1;
    char id[33];
    std::snprintf(id, sizeof id, "%032x", 0x5a000000 + n);
    p.memberId = id;
    p.domain = "cli" + std::to_string(n) + ".bitrix24.com";
    p.applicationToken = "cli-app-token-" + std::to_string(n);
    p.serverEndpoint = fake.serverEndpoint();
    p.accessToken = "cli-install-access-" + std::to_string(n);
    p.refreshToken = "cli-install-refresh-" + std::to_string(n);
    p.expires = clock.nowSeconds() + expiresIn;
    HttpResult r = postForm(service->ingestUrl(), settings.ingest.path, installForm(p));
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    // An ordinary event too: a portal that sent nothing but its install is refreshed on demand
    // only (token_refresh_test covers that rule).
    r = postForm(service->ingestUrl(), settings.ingest.path,
                 dealAddForm(p, p.accessToken, "", p.expires));
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    fake.accept(p.refreshToken, p.memberId, p.userId);
    installed.push_back(p);
    return p;
  }

  // The binary with the test's configuration, on the suite's backend (on PostgreSQL
  // B24ES_DB_URL in `env` names the test's database; it wins over db.path and --db).
  int run(std::vector<std::string> args, std::string& out, std::string& err) {
    args.push_back("--config");
    args.push_back(config);
    return runBinary(args, out, err, backendEnv(dir));
  }
  std::unique_ptr<ChildProcess> start(const std::vector<std::string>& args) const {
    return std::make_unique<ChildProcess>(withConfig(args), backendEnv(dir));
  }
  std::vector<std::string> withConfig(std::vector<std::string> args) const {
    args.push_back("--config");
    args.push_back(config);
    return args;
  }

  std::string column(const InstallSpec& p, const std::string& column) {
    return queryScalar(settings,
                       "SELECT " + column + " FROM tokens WHERE member_id = '" + p.memberId + "'");
  }

  // Every secret this test knows of: the client secret and every token ever stored or issued.
  std::vector<std::string> secrets() const {
    std::vector<std::string> s{kClientSecret};
    for (const InstallSpec& p : installed) {
      s.push_back(p.accessToken);
      s.push_back(p.refreshToken);
      s.push_back(p.applicationToken);
    }
    for (const std::string& t : fake.receivedRefreshTokens()) s.push_back(t);
    for (const std::string& t : fake.liveAccessTokens()) s.push_back(t);
    return s;
  }
  void expectNoSecrets(const std::string& text, const std::string& context) const {
    for (const std::string& secret : secrets()) {
      BOOST_CHECK_MESSAGE(text.find(secret) == std::string::npos,
                          context << " contains a secret: " << text);
    }
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(refresh_tokens_command)

BOOST_AUTO_TEST_CASE(force_rotates_the_pair_and_prints_one_summary_line) {
  Harness h;
  InstallSpec p = h.install();
  std::string out, err;
  int rc = h.run({"refresh-tokens", "--force"}, out, err);
  BOOST_CHECK_EQUAL(rc, 0);
  auto printed = lines(out);
  BOOST_REQUIRE_EQUAL(printed.size(), 1u);
  BOOST_CHECK_EQUAL(printed[0],
                    "refresh-tokens: checked=1 due=1 success=1 dead=0 transient=0 refused=0 "
                    "skipped=0 need_reinstall=0");
  // What sqlite3 shows: the rotated pair, stored by the refresh.
  BOOST_CHECK(h.fake.isLive(h.column(p, "refresh_token")));
  BOOST_CHECK(h.column(p, "refresh_token") != p.refreshToken);
  BOOST_CHECK_EQUAL(h.column(p, "source"), "refresh");
  BOOST_CHECK(h.column(p, "last_refresh_at") != "NULL");
  BOOST_CHECK(err.find("refreshed the token of portal " + p.memberId) != std::string::npos);
  h.expectNoSecrets(out, "stdout");
  h.expectNoSecrets(err, "stderr");
}

BOOST_AUTO_TEST_CASE(without_force_a_young_refresh_token_is_left_alone) {
  Harness h;
  InstallSpec p = h.install();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens"}, out, err), 0);
  BOOST_CHECK(out.find("checked=1 due=0 success=0") != std::string::npos);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), p.refreshToken);
}

BOOST_AUTO_TEST_CASE(max_age_days_zero_makes_every_token_due) {
  Harness h("refresh.max_age_days = 0\n");
  h.install();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens"}, out, err), 0);
  BOOST_CHECK(out.find("due=1 success=1") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(dry_run_lists_what_it_would_refresh_and_sends_nothing) {
  Harness h;
  InstallSpec a = h.install();
  InstallSpec b = h.install();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--force", "--dry-run"}, out, err), 0);
  auto printed = lines(out);
  BOOST_REQUIRE_EQUAL(printed.size(), 3u);
  BOOST_CHECK_EQUAL(printed[0],
                    "would refresh portal " + a.memberId + " (" + a.domain + ") user 1: forced");
  BOOST_CHECK_EQUAL(printed[1],
                    "would refresh portal " + b.memberId + " (" + b.domain + ") user 1: forced");
  BOOST_CHECK_EQUAL(printed[2], "refresh-tokens (dry run): checked=2 due=2 need_reinstall=0");
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
  BOOST_CHECK_EQUAL(h.column(a, "refresh_token"), a.refreshToken);
}

BOOST_AUTO_TEST_CASE(member_id_limits_the_run_to_one_portal) {
  Harness h;
  h.install();
  InstallSpec b = h.install();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--force", "--member-id", b.memberId}, out, err), 0);
  BOOST_CHECK(h.fake.receivedRefreshTokens() == std::vector<std::string>{b.refreshToken});
  BOOST_CHECK(out.find("checked=1 due=1 success=1") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(exits_1_when_a_refresh_fails_and_says_why_on_stderr) {
  Harness h;
  InstallSpec p = h.install();
  h.fake.script({503, "busy", 0});
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--force"}, out, err), 1);
  BOOST_CHECK_EQUAL(lines(out).size(), 1u);
  BOOST_CHECK(out.find("success=0 dead=0 transient=1") != std::string::npos);
  BOOST_CHECK(err.find("portal " + p.memberId) != std::string::npos);
  BOOST_CHECK(err.find("http_503") != std::string::npos);

  h.fake.script({400, R"({"error":"invalid_grant"})", 0});
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--force"}, out, err), 1);
  BOOST_CHECK(out.find("dead=1") != std::string::npos);
  BOOST_CHECK(err.find("needs a reinstall") != std::string::npos);
  // Dead rows are left alone afterwards, and counted.
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens"}, out, err), 0);
  BOOST_CHECK(out.find("due=0") != std::string::npos);
  BOOST_CHECK(out.find("need_reinstall=1") != std::string::npos);
  h.expectNoSecrets(out + err, "output");
}

BOOST_AUTO_TEST_CASE(exits_2_without_client_credentials_and_sends_nothing) {
  Harness h("", /*withSecret=*/false);
  h.install();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--force"}, out, err), 2);
  BOOST_CHECK(err.find("client_secret") != std::string::npos);
  BOOST_CHECK(out.empty());
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
  // A dry run needs no credentials.
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--dry-run", "--force"}, out, err), 0);
}

BOOST_AUTO_TEST_CASE(exits_2_on_usage_errors) {
  Harness h;
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--expiring-within", "soon"}, out, err), 2);
  BOOST_CHECK(err.find("--expiring-within") != std::string::npos);
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--expiring-within", "-5"}, out, err), 2);
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "extra"}, out, err), 2);
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--user-id", "1"}, out, err), 2);
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--no-such-option"}, out, err), 2);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
}

// About SQLite's file: on PostgreSQL db.url wins over --db (the case below is its counterpart).
BOOST_AUTO_TEST_CASE(a_missing_database_is_an_error_not_an_empty_run, *onlyOn(Backend::sqlite)) {
  Harness h;
  const std::string missing = h.dir.file("nowhere/events.db");
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--db", missing}, out, err), 1);
  BOOST_CHECK(err.find("does not exist") != std::string::npos);
  BOOST_CHECK(out.empty());
  BOOST_CHECK_EQUAL(h.run({"token", "abc", "--db", missing}, out, err), 1);
  BOOST_CHECK(!Poco::File(missing).exists());
}

// The PostgreSQL form of the case above: db.url names a database the server does not have.
// Both commands fail with the server's reason and without the password of the URL; neither
// creates the database.
BOOST_AUTO_TEST_CASE(a_database_the_server_does_not_have_is_an_error_not_an_empty_run,
                     *onlyOn(Backend::postgresql)) {
  Harness h;
  std::string url = backendEnv(h.dir).at("B24ES_DB_URL");
  const std::size_t name = url.rfind('/') + 1;
  const std::size_t params = url.find('?', name);
  url.insert(params == std::string::npos ? url.size() : params, "_nowhere");
  const std::string dbName = url.substr(name, url.find('?', name) - name);
  const std::string password =
      Poco::URI(url).getUserInfo().substr(Poco::URI(url).getUserInfo().find(':') + 1);
  std::string out, err;
  BOOST_CHECK_EQUAL(
      runBinary(h.withConfig({"refresh-tokens", "--force"}), out, err, {{"B24ES_DB_URL", url}}), 1);
  BOOST_CHECK_MESSAGE(err.find("database: ") != std::string::npos, err);
  BOOST_CHECK_MESSAGE(err.find(dbName) != std::string::npos, err);
  BOOST_CHECK(out.empty());
  if (!password.empty()) BOOST_CHECK(err.find(password) == std::string::npos);
  BOOST_CHECK_EQUAL(runBinary(h.withConfig({"token", "abc"}), out, err, {{"B24ES_DB_URL", url}}),
                    1);
  BOOST_CHECK(out.empty());
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
  BOOST_CHECK_EQUAL(
      queryScalar(h.settings, "SELECT count(*) FROM pg_database WHERE datname = '" + dbName + "'"),
      "0");
}

BOOST_AUTO_TEST_CASE(expiring_within_refreshes_access_tokens_about_to_expire) {
  Harness h;
  h.install(3600);
  InstallSpec soon = h.install(120);
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--expiring-within", "300"}, out, err), 0);
  BOOST_CHECK(h.fake.receivedRefreshTokens() == std::vector<std::string>{soon.refreshToken});
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(token_command)

BOOST_AUTO_TEST_CASE(prints_only_the_stored_token_while_it_is_valid) {
  Harness h;
  InstallSpec p = h.install();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"token", p.memberId}, out, err), 0);
  BOOST_CHECK_EQUAL(out, p.accessToken + "\n");
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 0u);
  h.expectNoSecrets(err, "stderr");
}

BOOST_AUTO_TEST_CASE(refreshes_an_expired_token_once_and_then_reuses_it) {
  Harness h;
  InstallSpec p = h.install(-60);
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"token", p.memberId}, out, err), 0);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 1u);
  const std::string fresh = Poco::trim(out);
  BOOST_CHECK(h.fake.liveAccessTokens().count(fresh));
  BOOST_CHECK_EQUAL(out, fresh + "\n");
  BOOST_CHECK_EQUAL(h.column(p, "access_token"), fresh);
  h.expectNoSecrets(err, "stderr");

  BOOST_CHECK_EQUAL(h.run({"token", p.memberId}, out, err), 0);
  BOOST_CHECK_EQUAL(Poco::trim(out), fresh);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 1u);

  // --refresh: a REST call said expired_token.
  BOOST_CHECK_EQUAL(h.run({"token", p.memberId, "--refresh"}, out, err), 0);
  BOOST_CHECK(Poco::trim(out) != fresh);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 2u);
}

BOOST_AUTO_TEST_CASE(exits_1_with_a_message_when_no_valid_token_can_be_had) {
  Harness h;
  InstallSpec p = h.install(-60);
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"token", "00000000000000000000000000000000"}, out, err), 1);
  BOOST_CHECK(out.empty());
  BOOST_CHECK(err.find("no token stored") != std::string::npos);

  BOOST_CHECK_EQUAL(h.run({"token", p.memberId, "--user-id", "77"}, out, err), 1);
  BOOST_CHECK(out.empty());

  h.fake.script({200, R"({"error":"PAYMENT_REQUIRED"})", 0});
  BOOST_CHECK_EQUAL(h.run({"token", p.memberId}, out, err), 1);
  BOOST_CHECK(out.empty());
  BOOST_CHECK(err.find("PAYMENT_REQUIRED") != std::string::npos);
  BOOST_CHECK(err.find("reinstall") != std::string::npos);
  h.expectNoSecrets(err, "stderr");
}

BOOST_AUTO_TEST_CASE(exits_2_on_usage_errors) {
  Harness h;
  InstallSpec p = h.install();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"token"}, out, err), 2);
  BOOST_CHECK_EQUAL(h.run({"token", p.memberId, "--user-id", "x"}, out, err), 2);
  BOOST_CHECK_EQUAL(h.run({"token", p.memberId, "--force"}, out, err), 2);
  BOOST_CHECK(out.empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(separate_processes)

BOOST_AUTO_TEST_CASE(refreshers_in_separate_processes_never_send_one_refresh_token_twice) {
  Harness h;
  for (int i = 0; i < 5; ++i) h.install(-60);  // expired: `token` refreshes too
  for (int round = 0; round < 2; ++round) {
    std::vector<std::unique_ptr<ChildProcess>> children;
    for (int i = 0; i < 3; ++i) {
      children.push_back(h.start({"refresh-tokens", "--force"}));
    }
    for (int i = 0; i < 2; ++i) {
      children.push_back(h.start({"token", h.installed[0].memberId}));
    }
    for (auto& child : children) {
      int rc = child->wait();
      std::string out = child->readAllStdout(), err = child->readAllStderr();
      BOOST_CHECK_MESSAGE(rc == 0, "exit " << rc << ": " << err);
    }
  }
  std::vector<std::string> sent = h.fake.receivedRefreshTokens();
  std::set<std::string> unique(sent.begin(), sent.end());
  BOOST_CHECK_EQUAL(unique.size(), sent.size());
  BOOST_CHECK_GE(sent.size(), 5u);
  for (const InstallSpec& p : h.installed) {
    BOOST_CHECK(h.fake.isLive(h.column(p, "refresh_token")));
    BOOST_CHECK_EQUAL(h.column(p, "refresh_dead_at"), "NULL");
  }
}

// Issue 13: a trickling token endpoint kept one refresh waiting past its 300 s lease, and a
// second refresher sent the same refresh token again. Now the request is cut at refresh.timeout
// and the lease outlives it: a second process, started while the first waits, leaves the row
// alone.
BOOST_AUTO_TEST_CASE(a_second_process_never_resends_a_refresh_token_another_is_still_sending) {
  Harness h("refresh.timeout = 5\n");
  InstallSpec p = h.install();
  FakeOAuthServer::Scripted trickle;
  trickle.body = std::string(2000 - 60, ' ') +
                 R"({"access_token":"slow-access","refresh_token":"slow-refresh","expires_in":60})";
  trickle.trickleMillis = 50;  // 100 s for the whole answer
  h.fake.script(trickle);
  std::unique_ptr<ChildProcess> first = h.start({"refresh-tokens", "--force"});
  BOOST_REQUIRE(h.fake.waitForRequests(1, 30000));
  const std::int64_t leaseUntil = std::stoll(h.column(p, "refresh_lease_until"));
  BOOST_CHECK_GT(leaseUntil, h.clock.nowSeconds() + 5);  // outlives the deadline

  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"refresh-tokens", "--force"}, out, err), 0);
  BOOST_CHECK_MESSAGE(
      out.find("due=1 success=0 dead=0 transient=0 refused=0 skipped=1") != std::string::npos, out);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 1u);

  // The first gives up at its deadline (not after the 100 s the answer would take).
  BOOST_CHECK_EQUAL(first->wait(), 1);
  const std::string firstOut = first->readAllStdout();
  BOOST_CHECK_MESSAGE(firstOut.find("transient=1") != std::string::npos, firstOut);
  BOOST_CHECK(h.column(p, "last_refresh_error").rfind("timeout: ", 0) == 0);
  BOOST_CHECK_EQUAL(h.column(p, "refresh_token"), p.refreshToken);
  std::vector<std::string> sent = h.fake.receivedRefreshTokens();
  BOOST_CHECK(sent == std::vector<std::string>{p.refreshToken});
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(example_script)

BOOST_AUTO_TEST_CASE(the_rest_call_example_retries_once_with_a_refreshed_token_on_expired_token) {
  Harness h;
  // The stored token looks valid, but the portal answers expired_token (revoked early).
  InstallSpec p = h.install(3600);
  const std::string script = std::string(B24ES_SOURCE_DIR) + "/scripts/examples/b24-call.sh";
  const std::string outFile = h.dir.file("out"), errFile = h.dir.file("err");
  std::string dbEnv;  // the child's environment for the backend (nothing on SQLite)
  for (const auto& [name, value] : backendEnv(h.dir)) dbEnv += name + "='" + value + "' ";
  const std::string command = dbEnv + "B24ES_BIN='" + std::string(B24ES_BINARY) +
                              "' B24ES_CONFIG='" + h.config + "' B24_CLIENT_ENDPOINT='" +
                              h.fake.baseUrl() + "/rest/' bash '" + script + "' " + p.memberId +
                              " profile >'" + outFile + "' 2>'" + errFile + "'";
  int status = std::system(command.c_str());
  BOOST_REQUIRE(WIFEXITED(status));
  BOOST_CHECK_EQUAL(WEXITSTATUS(status), 0);
  const std::string out = readFile(outFile), err = readFile(errFile);
  BOOST_CHECK_MESSAGE(out.find(R"("result")") != std::string::npos, out << err);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 1u);
  h.expectNoSecrets(out + err, "script output");

  // The refreshed token is live now: the next call needs no refresh.
  status = std::system(command.c_str());
  BOOST_CHECK_EQUAL(WEXITSTATUS(status), 0);
  BOOST_CHECK_EQUAL(h.fake.requestCount(), 1u);
}

BOOST_AUTO_TEST_SUITE_END()
