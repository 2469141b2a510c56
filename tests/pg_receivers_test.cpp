// Several receivers on one PostgreSQL database (issue 16, SPEC §11): real `serve` processes on
// the throwaway server of scripts/lib/pg.sh, each test with a database of its own, load through
// all of them over HTTP, a SIGKILL of one under load, concurrent installs of one portal, the
// new-portal limit across processes, and what a wrong password or a refused connection prints.
// Loops are bounded in count; nothing here measures time.
#define BOOST_TEST_MODULE pg_receivers
#include <boost/test/unit_test.hpp>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/URI.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "pg_test_support.h"
#include "test_support.h"

using namespace b24es;

namespace {

const std::string kPath = "/bitrix24/events";
const std::string kMember = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";
const std::string kAppToken = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";

// The test's database URL, or nullopt (with a warning) when no PostgreSQL is configured
// outside scripts/test; under scripts/test a missing server fails the case (pgServerUrl).
std::optional<std::string> database(const test::TempDir& dir) {
  if (!test::pgServerUrl()) {
    BOOST_WARN_MESSAGE(false, "no B24ES_TEST_PG_URL: PostgreSQL case not run");
    return std::nullopt;
  }
  return test::pgDatabaseFor(dir.path());
}

// One `serve` process on `url`, with the properties in `config` (a file in `dir`).
struct Receiver {
  Receiver(const test::TempDir& dir, const std::string& url, const std::string& name,
           const std::string& config = {})
      : process(args(dir, name, config), {{"B24ES_DB_URL", url}}) {
    // Its stderr only when it did not start: reading it waits for the process to end.
    if (!process.readListeningLine(ingest, query)) BOOST_FAIL(process.readAllStderr());
  }
  static std::vector<std::string> args(const test::TempDir& dir, const std::string& name,
                                       const std::string& config) {
    const std::string file = dir.file(name + ".properties");
    std::ofstream(file) << config;
    return {"serve", "--config", file, "--listen", "127.0.0.1:0", "--query-listen", "127.0.0.1:0"};
  }
  test::ChildProcess process;
  std::string ingest, query;
};

std::string withField(std::string body, const std::string& field, const std::string& value) {
  const std::string key = field + "=";
  std::size_t at = body.find(key);
  BOOST_REQUIRE(at != std::string::npos);
  std::size_t end = body.find('&', at);
  return body.replace(at + key.size(),
                      (end == std::string::npos ? body.size() : end) - at - key.size(), value);
}

std::string installOf(const std::string& member, const std::string& appToken) {
  std::string body = test::sample("01-ONAPPINSTALL.form");
  body = withField(body, "auth%5Bmember_id%5D", member);
  return withField(body, "auth%5Bapplication_token%5D", appToken);
}

// The id of a stored event, 0 for another answer; -1 when the receiver could not be reached.
std::int64_t post(const std::string& ingest, const std::string& body, int* status = nullptr) {
  test::HttpResult r;
  try {
    r = test::postForm(ingest, kPath, body);
  } catch (const std::exception&) {
    return -1;
  }
  if (status) *status = r.status;
  if (r.status != 200) return 0;
  return Poco::JSON::Parser()
      .parse(r.body)
      .extract<Poco::JSON::Object::Ptr>()
      ->getValue<std::int64_t>("id");
}

std::int64_t count(const std::string& url, const std::string& sql) {
  return std::stoll(test::pgQuery(url, sql).at(0));
}

std::int64_t statsTotal(const std::string& query) {
  test::HttpResult r = test::httpGet(query, "/api/v1/stats");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  return Poco::JSON::Parser()
      .parse(r.body)
      .extract<Poco::JSON::Object::Ptr>()
      ->getValue<std::int64_t>("total");
}

// The ids of a Server-Sent Events stream (GET /api/v1/events/stream, SPEC §5.1), read on a
// socket of its own as they come. Each read waits at most kReadTimeoutMs: that only ends a hung
// test, no assertion depends on it.
class StreamIds {
 public:
  static constexpr int kReadTimeoutMs = 20000;

  StreamIds(const std::string& url, const std::string& target) {
    Poco::URI uri(url);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    BOOST_REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(uri.getPort());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    const std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    BOOST_REQUIRE(::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
                  static_cast<ssize_t>(request.size()));
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      BOOST_REQUIRE_MESSAGE(fill(), "the stream ended before the answer's head");
    }
    status = std::stoi(buffer_.substr(9, 3));
    buffer_.erase(0, end + 4);
  }
  ~StreamIds() { ::close(fd_); }
  StreamIds(const StreamIds&) = delete;
  StreamIds& operator=(const StreamIds&) = delete;

  // The id of the next event message (comments and other fields skipped); nullopt when the
  // connection ended or nothing came within kReadTimeoutMs.
  std::optional<std::int64_t> next() {
    for (;;) {
      std::size_t eol;
      while ((eol = buffer_.find('\n')) == std::string::npos) {
        if (!fill()) return std::nullopt;
      }
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      if (line.rfind("id:", 0) == 0) return std::stoll(line.substr(3));
    }
  }

  int status = 0;

 private:
  bool fill() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, kReadTimeoutMs) <= 0) return false;
    char chunk[16384];
    ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(got));
    return true;
  }

  int fd_ = -1;
  std::string buffer_;
};

}  // namespace

// SPEC §5.1 across receivers: a stream on one receiver sees what another commits (its hub polls
// committedThrough()), in id order and without a gap, while both receivers write at once (their
// ids commit in the commit-order lock's order, so the stream never passes an id that commits
// late).
BOOST_AUTO_TEST_CASE(a_stream_on_one_receiver_sees_every_event_posted_to_another_in_id_order) {
  test::TempDir dir;
  std::optional<std::string> url = database(dir);
  if (!url) return;
  Receiver a(dir, *url, "a"), b(dir, *url, "b");
  const std::int64_t install = post(a.ingest, installOf(kMember, kAppToken));
  BOOST_REQUIRE_GT(install, 0);
  StreamIds stream(b.query, "/api/v1/events/stream?after_id=" + std::to_string(install));
  BOOST_REQUIRE_EQUAL(stream.status, 200);
  const std::string deal = test::sample("03-ONCRMDEALADD.form");
  constexpr int kThreads = 3, kPerThread = 40;
  std::mutex mutex;
  std::vector<std::int64_t> acknowledged;  // guarded by mutex
  std::vector<std::thread> threads;
  // Two threads post to a, one to b: the stream's own receiver commits too, interleaved.
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::int64_t id = post(t < 2 ? a.ingest : b.ingest, deal);
        std::lock_guard<std::mutex> lock(mutex);
        acknowledged.push_back(id);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::sort(acknowledged.begin(), acknowledged.end());
  BOOST_REQUIRE_GT(acknowledged.front(), install);  // every post stored
  BOOST_REQUIRE_EQUAL(acknowledged.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::vector<std::int64_t> streamed;
  while (streamed.size() < acknowledged.size()) {  // bounded: one read per acknowledged event
    std::optional<std::int64_t> id = stream.next();
    if (!id) break;
    streamed.push_back(*id);
  }
  // Increasing, and exactly the acknowledged ids: nothing skipped, nothing twice.
  BOOST_TEST(std::is_sorted(streamed.begin(), streamed.end()));
  BOOST_TEST(streamed == acknowledged, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(two_receivers_store_every_event_once_and_either_answers_for_both) {
  test::TempDir dir;
  std::optional<std::string> url = database(dir);
  if (!url) return;
  Receiver a(dir, *url, "a"), b(dir, *url, "b");
  BOOST_REQUIRE_GT(post(a.ingest, installOf(kMember, kAppToken)), 0);
  const std::string deal = test::sample("03-ONCRMDEALADD.form");
  constexpr int kThreads = 4, kPerThread = 50;
  std::mutex mutex;
  std::vector<std::int64_t> ids;  // guarded by mutex
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::int64_t id = post((t + i) % 2 ? a.ingest : b.ingest, deal);
        std::lock_guard<std::mutex> lock(mutex);
        ids.push_back(id);
      }
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(std::count_if(ids.begin(), ids.end(), [](std::int64_t id) { return id > 0; }) ==
             kThreads * kPerThread);
  std::set<std::int64_t> unique(ids.begin(), ids.end());
  BOOST_TEST(unique.size() == ids.size());  // no id given twice
  BOOST_TEST(count(*url, "SELECT count(*) FROM events") == kThreads * kPerThread + 1);
  // The counters are exact across processes, and both receivers read the same database.
  BOOST_TEST(statsTotal(a.query) == kThreads * kPerThread + 1);
  BOOST_TEST(statsTotal(b.query) == kThreads * kPerThread + 1);
  BOOST_TEST(count(*url, "SELECT sum(count) FROM event_counts") == kThreads * kPerThread + 1);
  BOOST_TEST(
      count(*url, "SELECT sum(count) FROM event_buckets WHERE width = 60 AND member_id = ''") ==
      kThreads * kPerThread + 1);
}

BOOST_AUTO_TEST_CASE(a_receiver_killed_under_load_loses_no_acknowledged_event) {
  test::TempDir dir;
  std::optional<std::string> url = database(dir);
  if (!url) return;
  Receiver a(dir, *url, "a"), b(dir, *url, "b");
  BOOST_REQUIRE_GT(post(b.ingest, installOf(kMember, kAppToken)), 0);
  const std::string deal = test::sample("03-ONCRMDEALADD.form");
  constexpr int kThreads = 4, kPerThread = 100, kKillAfter = 60;
  std::mutex mutex;
  std::condition_variable acked;
  std::vector<std::int64_t> ids;  // acknowledged ids; guarded by mutex
  int finished = 0;               // threads done; guarded by mutex
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string& target = t % 2 ? a.ingest : b.ingest;
      for (int i = 0; i < kPerThread; ++i) {
        std::int64_t id = post(target, deal);
        if (id < 0) break;  // the killed receiver: nothing more to send it
        std::lock_guard<std::mutex> lock(mutex);
        if (id > 0) ids.push_back(id);
        acked.notify_all();
      }
      std::lock_guard<std::mutex> lock(mutex);
      ++finished;
      acked.notify_all();
    });
  }
  {
    // Until enough acknowledgements, or every thread gave up (then the checks below fail).
    std::unique_lock<std::mutex> lock(mutex);
    acked.wait(lock, [&] { return ids.size() >= kKillAfter || finished == kThreads; });
  }
  a.process.signal(SIGKILL);
  for (auto& t : threads) t.join();
  BOOST_TEST(ids.size() >= static_cast<std::size_t>(kKillAfter));
  a.process.wait();
  // Every acknowledgement, of either receiver, is a committed row; nothing was stored twice.
  std::string list;
  for (std::int64_t id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  BOOST_TEST(count(*url, "SELECT count(*) FROM events WHERE id IN (" + list + ")") ==
             static_cast<std::int64_t>(ids.size()));
  BOOST_TEST(std::set<std::int64_t>(ids.begin(), ids.end()).size() == ids.size());
  // A batch that committed as the process died is stored without its answers: the counters
  // still match the rows, as they are written in the same transaction.
  BOOST_TEST(statsTotal(b.query) == count(*url, "SELECT count(*) FROM events"));
  // The survivor keeps acknowledging.
  BOOST_TEST(post(b.ingest, deal) > 0);
}

BOOST_AUTO_TEST_CASE(concurrent_installs_of_one_portal_at_two_receivers_register_one_token) {
  test::TempDir dir;
  std::optional<std::string> url = database(dir);
  if (!url) return;
  Receiver a(dir, *url, "a"), b(dir, *url, "b");
  constexpr int kInstalls = 12;
  std::vector<int> status(kInstalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kInstalls; ++i) {
    threads.emplace_back([&, i] {
      // Three different application tokens, each sent four times.
      const std::string token = "a0000000000000000000000000000" + std::to_string(100 + i % 3);
      post(i % 2 ? a.ingest : b.ingest, installOf(kMember, token), &status[i]);
    });
  }
  for (auto& t : threads) t.join();
  const std::string stored =
      test::pgQuery(*url,
                    "SELECT application_token FROM portals WHERE member_id = '" + kMember + "'")
          .at(0);
  // Whichever install came first took the portal; an install with another token was refused
  // (401) at either receiver, one with the same token refreshed it (200).
  int accepted = 0;
  for (int i = 0; i < kInstalls; ++i) {
    const std::string token = "a0000000000000000000000000000" + std::to_string(100 + i % 3);
    BOOST_TEST_CONTEXT("install " << i << " with " << token) {
      BOOST_TEST(status[i] == (token == stored ? 200 : 401));
    }
    if (status[i] == 200) ++accepted;
  }
  BOOST_TEST(accepted == kInstalls / 3);
  BOOST_TEST(count(*url, "SELECT count(*) FROM events") == accepted);
  BOOST_TEST(count(*url, "SELECT count(*) FROM portals") == 1);
}

BOOST_AUTO_TEST_CASE(the_new_portal_limit_holds_across_receivers) {
  test::TempDir dir;
  std::optional<std::string> url = database(dir);
  if (!url) return;
  const std::string config = "ingest.max_new_portals = 3\n";
  Receiver a(dir, *url, "a", config), b(dir, *url, "b", config);
  constexpr int kPortals = 10;
  std::vector<int> status(kPortals);
  std::vector<std::thread> threads;
  for (int i = 0; i < kPortals; ++i) {
    threads.emplace_back([&, i] {
      const std::string member = "c0ffee0000000000000000000000" + std::to_string(1000 + i);
      post(i % 2 ? a.ingest : b.ingest, installOf(member, kAppToken), &status[i]);
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(std::count(status.begin(), status.end(), 200) == 3);
  BOOST_TEST(std::count(status.begin(), status.end(), 429) == kPortals - 3);
  BOOST_TEST(count(*url, "SELECT count(*) FROM portals") == 3);
  BOOST_TEST(count(*url, "SELECT count(*) FROM events") == 3);
}

BOOST_AUTO_TEST_CASE(a_wrong_password_or_a_refused_connection_never_prints_the_password) {
  test::TempDir dir;
  std::optional<std::string> url = database(dir);
  if (!url) return;
  const std::string secret = "Wr0ngPassw0rd-5f1c9e";
  // The test server's URL with the password replaced, and one at a port nothing listens on.
  const std::string user = url->substr(0, url->find(':', 13));  // postgresql://b24es
  const std::string rest = url->substr(url->find('@'));         // @127.0.0.1:PORT/db
  const std::string wrong = user + ":" + secret + rest;
  const std::string refused = user + ":" + secret + "@127.0.0.1:1/nowhere";
  for (const std::string& target : {wrong, refused}) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"migrate"}, std::vector<std::string>{"migrate", "--status"},
          std::vector<std::string>{"serve", "--listen", "127.0.0.1:0", "--query-listen",
                                   "127.0.0.1:0"},
          std::vector<std::string>{"refresh-tokens"}}) {
      std::string out, err;
      int rc = test::runBinary(args, out, err, {{"B24ES_DB_URL", target}});
      BOOST_TEST_CONTEXT(args.front() << " on " << (target == wrong ? "wrong" : "refused")) {
        BOOST_TEST(rc == 1, err);
        BOOST_TEST(err.find(secret) == std::string::npos, err);
        BOOST_TEST(out.find(secret) == std::string::npos, out);
        // What went wrong is said, and where (without the password).
        BOOST_TEST(err.find(target == wrong ? "password authentication failed"
                                            : "Connection refused") != std::string::npos,
                   err);
        BOOST_TEST(err.find(user.substr(13) + "@127.0.0.1") != std::string::npos, err);
      }
    }
  }
  // A malformed URL is a usage error whose message does not repeat it.
  std::string out, err;
  int rc = test::runBinary({"migrate"}, out, err,
                           {{"B24ES_DB_URL", "mysql://root:" + secret + "@127.0.0.1/x"}});
  BOOST_TEST(rc == 2, err);
  BOOST_TEST(err.find(secret) == std::string::npos, err);
  BOOST_TEST(err.find("db.url") != std::string::npos, err);
}
