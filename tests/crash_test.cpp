// Crash safety (issue 6): the real binary killed with SIGKILL under concurrent load keeps every
// event it acknowledged, and the database passes integrity_check after restart. Bounded: a few
// seconds of load from 8 loopback clients.
#define BOOST_TEST_MODULE crash
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "test_support.h"

using namespace b24es;

namespace {

const std::string kPath = "/bitrix24/events";

}  // namespace

BOOST_AUTO_TEST_CASE(sigkill_under_load_loses_no_acknowledged_event) {
  test::TempDir dir;
  std::set<long long> acknowledged;
  {
    test::ChildProcess child(test::serveArgs(dir));
    std::string ingest, query;
    BOOST_REQUIRE(child.readListeningLine(ingest, query));
    BOOST_REQUIRE(test::postForm(ingest, kPath, test::sample("01-ONAPPINSTALL.form")).status ==
                  200);
    const std::string deal = test::sample("03-ONCRMDEALADD.form");
    std::mutex mutex;
    std::atomic<int> count{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 8; ++t) {
      clients.emplace_back([&] {
        // At most 2,000 requests per client; the kill ends them much earlier.
        for (int i = 0; i < 2000; ++i) {
          try {
            test::HttpResult r = test::postForm(ingest, kPath, deal);
            if (r.status != 200) continue;
            long long id = r.json()->getValue<long long>("id");
            std::lock_guard<std::mutex> lock(mutex);
            acknowledged.insert(id);
            count++;
          } catch (const std::exception&) {
            return;  // the server is gone
          }
        }
      });
    }
    for (int i = 0; i < 3000 && count < 1000; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    child.signal(SIGKILL);
    child.wait();
    for (auto& c : clients) c.join();
  }
  BOOST_TEST_MESSAGE(acknowledged.size() << " events acknowledged before SIGKILL");
  BOOST_REQUIRE(acknowledged.size() >= 100u);

  // Restart on the same file: recovery from the WAL, then every acknowledged id is there.
  test::ChildProcess again(test::serveArgs(dir));
  std::string ingest, query;
  BOOST_REQUIRE(again.readListeningLine(ingest, query));
  std::string db = dir.file("events.db");
  BOOST_TEST(test::queryScalar(db, "PRAGMA integrity_check") == "ok");
  long long stored = std::stoll(test::queryScalar(
      db, "SELECT count(*) FROM events WHERE event = 'ONCRMDEALADD' AND id BETWEEN " +
              std::to_string(*acknowledged.begin()) + " AND " +
              std::to_string(*acknowledged.rbegin())));
  BOOST_TEST(stored >= static_cast<long long>(acknowledged.size()));
  std::size_t missing = 0;
  for (long long id : acknowledged) {
    if (test::queryScalar(db, "SELECT count(*) FROM events WHERE id = " + std::to_string(id)) !=
        "1") {
      ++missing;
    }
  }
  BOOST_TEST(missing == 0u);
  // And the restarted server keeps accepting.
  BOOST_TEST(test::postForm(ingest, kPath, test::sample("03-ONCRMDEALADD.form")).status == 200);
  again.signal(SIGTERM);
  BOOST_TEST(again.wait() == 0);
}
