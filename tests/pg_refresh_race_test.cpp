// Token refreshes racing across processes on one PostgreSQL database (issue 16 item 3, SPEC §6
// and §11): three `serve` processes whose keep-alive timers find every token due at every pass,
// and, at the same time, `refresh-tokens` runs (forced, and for access tokens near expiry) and
// `token` runs (on demand, for an expired token and with --refresh), all against one fake OAuth
// server on 127.0.0.1 that rotates refresh tokens as Bitrix24 does and answers slowly, so that
// the refreshers overlap. What SPEC §6 promises: no refresh token is spent twice, so the fake
// never answers invalid_grant; every portal ends with the pair the fake issued last; no process
// prints a secret. Loops are bounded in count; nothing here measures time.
#define BOOST_TEST_MODULE pg_refresh_race
#include <boost/test/unit_test.hpp>

#include <Poco/String.h>

#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "oauth_fake.h"
#include "pg_test_support.h"
#include "test_support.h"

using namespace b24es;
using namespace b24es::test;

namespace {

const std::string kPath = "/bitrix24/events";
const std::string kClientId = "app.6752f1a3b4c8d9.41234567";
const std::string kClientSecret = "fake-client-secret";

// The test's database URL, or nullopt (with a warning) when no PostgreSQL is configured
// outside scripts/test; under scripts/test a missing server fails the case (pgServerUrl).
std::optional<std::string> database(const TempDir& dir) {
  if (!pgServerUrl()) {
    BOOST_WARN_MESSAGE(false, "no B24ES_TEST_PG_URL: PostgreSQL case not run");
    return std::nullopt;
  }
  return pgDatabaseFor(dir.path());
}

// One `serve` process on the database, with the test's configuration file.
struct Receiver {
  Receiver(const std::string& config, const std::string& url)
      : process({"serve", "--config", config, "--listen", "127.0.0.1:0", "--query-listen",
                 "127.0.0.1:0"},
                {{"B24ES_DB_URL", url}}) {
    // Its stderr only when it did not start: reading it waits for the process to end.
    if (!process.readListeningLine(ingest, query)) BOOST_FAIL(process.readAllStderr());
  }
  ChildProcess process;
  std::string ingest, query;
};

// A command run of the race, and what it printed once it ended.
struct Run {
  std::string what;
  std::unique_ptr<ChildProcess> process;
  int rc = -1;
  std::string out, err;
};

std::string column(const std::string& url, const InstallSpec& p, const std::string& name) {
  return pgQuery(url, "SELECT " + name + " FROM tokens WHERE member_id = '" + p.memberId +
                          "' AND user_id = " + std::to_string(p.userId))
      .at(0);
}

// True when every portal's row holds the pair the fake issued last.
bool storedIsLastIssued(const std::string& url, const FakeOAuthServer& fake,
                        const std::vector<InstallSpec>& portals) {
  for (const InstallSpec& p : portals) {
    std::optional<FakeOAuthServer::Pair> last = fake.lastIssued(p.memberId, p.userId);
    if (!last || column(url, p, "refresh_token") != last->refreshToken ||
        column(url, p, "access_token") != last->accessToken) {
      return false;
    }
  }
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(
    serve_timers_refresh_tokens_and_token_runs_never_spend_one_refresh_token_twice) {
  TempDir dir;
  std::optional<std::string> url = database(dir);
  if (!url) return;
  SystemClock clock;  // the processes' clock: expiries and leases agree
  FakeOAuthServer fake(clock);
  // Each rotation waits before it looks at the token: a refresher holds its lease (and the
  // others find the row busy) for at least this long, so passes of different processes overlap.
  fake.setRotationDelayMillis(150);

  const std::string config = dir.file("b24es.properties");
  std::ofstream(config) << "bitrix24.client_id = " << kClientId << "\n"
                        << "bitrix24.client_secret = " << kClientSecret << "\n"
                        << "oauth.allowed_hosts = 127.0.0.1\n"
                        << "oauth.allow_http = true\n"
                        // Every token is due at every pass of every timer, once a second.
                        << "refresh.interval = 1\n"
                        << "refresh.max_age_days = 0\n"
                        << "refresh.rate = 100\n"
                        << "refresh.timeout = 20\n"
                        // Debug lines too must not carry a secret.
                        << "log.level = debug\n";
  std::vector<std::unique_ptr<Receiver>> receivers;
  for (int i = 0; i < 3; ++i) receivers.push_back(std::make_unique<Receiver>(config, *url));

  // Six portals installed through the receivers in turn, each proven by an ordinary event (a
  // portal that sent only its install is refreshed on demand only). Three have an expired access
  // token (`token` refreshes it), three one that expires within two minutes (--expiring-within).
  constexpr int kPortals = 6;
  std::vector<InstallSpec> portals;
  for (int i = 0; i < kPortals; ++i) {
    InstallSpec p;
    char id[33];
    std::snprintf(id, sizeof id, "%032x", 0x3ace0000 + i);
    p.memberId = id;
    p.domain = "race" + std::to_string(i) + ".bitrix24.com";
    p.applicationToken = "race-app-token-" + std::to_string(i);
    p.serverEndpoint = fake.serverEndpoint();
    p.accessToken = "race-install-access-" + std::to_string(i);
    p.refreshToken = "race-install-refresh-" + std::to_string(i);
    p.expires = clock.nowSeconds() + (i % 2 == 0 ? -60 : 120);
    const std::string& ingest = receivers[i % receivers.size()]->ingest;
    fake.accept(p.refreshToken, p.memberId, p.userId);
    HttpResult r = postForm(ingest, kPath, installForm(p));
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    r = postForm(ingest, kPath, dealAddForm(p, p.accessToken, "", p.expires));
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    portals.push_back(p);
  }

  // Rounds of command runs started together while the timers run.
  const std::map<std::string, std::string> env{{"B24ES_DB_URL", *url}};
  auto start = [&](std::vector<Run>& runs, std::vector<std::string> args) {
    Run run;
    for (const std::string& a : args) run.what += a + " ";
    args.push_back("--config");
    args.push_back(config);
    run.process = std::make_unique<ChildProcess>(args, env);
    runs.push_back(std::move(run));
  };
  std::vector<Run> finished;
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<Run> runs;
    start(runs, {"refresh-tokens", "--force"});
    start(runs, {"refresh-tokens", "--expiring-within", "600"});
    start(runs, {"refresh-tokens", "--force", "--member-id", portals[1].memberId});
    start(runs, {"token", portals[0].memberId});
    start(runs, {"token", portals[2].memberId, "--refresh"});
    start(runs, {"token", portals[3].memberId, "--refresh"});
    for (Run& run : runs) {
      run.rc = run.process->wait();
      run.out = run.process->readAllStdout();
      run.err = run.process->readAllStderr();
      finished.push_back(std::move(run));
    }
  }
  // And the timers on their own a while longer: enough rotations that every process took part.
  std::size_t rotations = 0;
  for (int i = 0; i < 600; ++i) {
    rotations = 0;
    for (const auto& r : fake.requests()) rotations += r.outcome == "rotated";
    if (rotations >= kPortals * 12u) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_CHECK_GE(rotations, kPortals * 12u);

  // Stop further rotations, let the answers in flight arrive and be stored (bounded: 30 s).
  fake.setUnavailable(true);
  BOOST_REQUIRE(fake.waitIdle(30000));
  bool settled = false;
  for (int i = 0; i < 300 && !settled; ++i) {
    settled = storedIsLastIssued(*url, fake, portals);
    if (!settled) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_CHECK_MESSAGE(settled, "a portal does not hold the pair the fake issued last");

  std::vector<std::string> serveErr;
  for (auto& receiver : receivers) {
    receiver->process.signal(SIGTERM);
    BOOST_CHECK_EQUAL(receiver->process.wait(), 0);
    serveErr.push_back(receiver->process.readAllStderr());
  }

  // Each refresh token presented exactly once while the fake rotated, never refused.
  const std::vector<FakeOAuthServer::Request> requests = fake.requests();
  std::map<std::string, int> presented;
  for (const FakeOAuthServer::Request& r : requests) {
    BOOST_CHECK_MESSAGE(r.outcome == "rotated" || r.outcome == "unavailable",
                        "a token request answered " << r.outcome);
    if (r.outcome == "rotated") ++presented[r.form.at("refresh_token")];
  }
  for (const auto& [token, times] : presented) {
    BOOST_CHECK_MESSAGE(times == 1, "a refresh token was presented " << times << " times");
  }

  // Every portal ends with the last rotated pair, alive, and its install token spent once.
  for (const InstallSpec& p : portals) {
    std::optional<FakeOAuthServer::Pair> last = fake.lastIssued(p.memberId, p.userId);
    BOOST_REQUIRE(last);
    BOOST_CHECK_EQUAL(column(*url, p, "refresh_token"), last->refreshToken);
    BOOST_CHECK_EQUAL(column(*url, p, "access_token"), last->accessToken);
    BOOST_CHECK(fake.isLive(last->refreshToken));
    BOOST_CHECK_EQUAL(column(*url, p, "refresh_dead_at"), "NULL");
    BOOST_CHECK_EQUAL(column(*url, p, "refresh_lease_until"), "NULL");
    BOOST_CHECK_EQUAL(presented[p.refreshToken], 1);
  }

  // Every run succeeded; `token` printed a token the fake issued (the install tokens of the
  // portals it names had expired, or --refresh asked for a new one).
  const std::set<std::string> issuedAccess = fake.liveAccessTokens();
  for (const Run& run : finished) {
    BOOST_CHECK_MESSAGE(run.rc == 0, run.what << "exited " << run.rc << ": " << run.err);
    BOOST_CHECK_MESSAGE(run.err.find("invalid_grant") == std::string::npos, run.what << run.err);
    if (run.what.rfind("token ", 0) == 0) {
      BOOST_CHECK_MESSAGE(issuedAccess.count(Poco::trim(run.out)), run.what << run.out);
    } else {
      BOOST_CHECK_MESSAGE(run.out.find("success=") != std::string::npos, run.what << run.out);
    }
  }

  // No secret in any process's output: the client secret, every token installed or issued.
  std::vector<std::string> secrets{kClientSecret};
  for (const InstallSpec& p : portals) {
    secrets.push_back(p.accessToken);
    secrets.push_back(p.refreshToken);
    secrets.push_back(p.applicationToken);
  }
  for (const auto& [token, times] : presented) secrets.push_back(token);
  for (const std::string& t : issuedAccess) secrets.push_back(t);
  for (const InstallSpec& p : portals)
    secrets.push_back(fake.lastIssued(p.memberId, 1)->refreshToken);
  std::vector<std::pair<std::string, std::string>> outputs;
  for (std::size_t i = 0; i < serveErr.size(); ++i) {
    outputs.emplace_back("serve " + std::to_string(i) + " stderr", serveErr[i]);
    BOOST_CHECK_MESSAGE(serveErr[i].find("invalid_grant") == std::string::npos, serveErr[i]);
  }
  for (const Run& run : finished) {
    outputs.emplace_back(run.what + "stderr", run.err);
    if (run.what.rfind("refresh-tokens", 0) == 0)
      outputs.emplace_back(run.what + "stdout", run.out);
  }
  for (const auto& [name, text] : outputs) {
    for (const std::string& secret : secrets) {
      BOOST_CHECK_MESSAGE(text.find(secret) == std::string::npos, name << " holds a secret");
    }
  }
  // Each serve's timer refreshed tokens itself (the race was a race of processes).
  auto occurrences = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
      ++n;
    }
    return n;
  };
  std::ostringstream summary;
  summary << "rotations=" << presented.size() << " requests=" << requests.size();
  for (std::size_t i = 0; i < serveErr.size(); ++i) {
    const std::size_t refreshed = occurrences(serveErr[i], "refreshed the token of portal");
    BOOST_CHECK_MESSAGE(refreshed > 0, "serve " << i << " refreshed nothing");
    summary << " serve" << i << ".refreshed=" << refreshed << " serve" << i
            << ".skipped=" << occurrences(serveErr[i], "skipped portal");
  }
  std::size_t commandRefreshes = 0;
  for (const Run& run : finished) {
    commandRefreshes += occurrences(run.err, "refreshed the token of portal");
  }
  summary << " commands.refreshed=" << commandRefreshes;
  BOOST_TEST_MESSAGE(summary.str());
}
