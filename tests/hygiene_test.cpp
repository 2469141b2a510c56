// Connection hygiene (issue 6): the ingest listener stays responsive while keep-alive clients
// hammer it, while hundreds of connections sit idle, and against clients that trickle a request.
// Loopback only; every loop is bounded in count and time. The time bounds asserted here are
// generous (seconds) so a noisy machine cannot fail them: they catch starvation, which costs
// many seconds; the real latencies are printed and measured by scripts/bench-ingest.
#define BOOST_TEST_MODULE hygiene
#include <boost/test/unit_test.hpp>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "service.h"
#include "test_support.h"

using namespace b24es;
using Millis = std::chrono::milliseconds;

namespace {

const std::string kPath = "/bitrix24/events";

struct Server {
  explicit Server(int requestTimeoutSeconds = 30) {
    settings = test::testSettings(dir);
    settings.ingest.requestTimeoutSeconds = requestTimeoutSeconds;
    service = std::make_unique<Service>(settings, clock);
    service->start();
    url = service->ingestUrl();
    uri = Poco::URI(url);
    BOOST_REQUIRE(test::postForm(url, kPath, test::sample("01-ONAPPINSTALL.form")).status == 200);
  }
  ~Server() { service->stop(); }

  Poco::Net::StreamSocket connect() {
    return Poco::Net::StreamSocket(Poco::Net::SocketAddress(uri.getHost(), uri.getPort()));
  }

  test::TempDir dir;
  test::FakeClock clock;
  Settings settings;
  std::unique_ptr<Service> service;
  std::string url;
  Poco::URI uri;
};

// Milliseconds for one POST on a new connection.
long timedPost(const std::string& url) {
  auto start = std::chrono::steady_clock::now();
  test::HttpResult r = test::postForm(url, kPath, test::sample("03-ONCRMDEALADD.form"));
  BOOST_TEST(r.status == 200);
  return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start).count();
}

// Waits until the server closes `socket`; returns how long that took, or -1 if `limit` passed.
long millisUntilClosed(Poco::Net::StreamSocket& socket, Millis limit,
                       const std::function<void(int)>& trickle) {
  auto start = std::chrono::steady_clock::now();
  socket.setReceiveTimeout(Poco::Timespan(0, 100000));
  for (int step = 0; std::chrono::steady_clock::now() - start < limit; ++step) {
    try {
      trickle(step);
    } catch (const Poco::Exception&) {
      // Sending fails once the server has shut the connection down.
    }
    char buffer[256];
    try {
      if (socket.receiveBytes(buffer, sizeof buffer) <= 0) {
        return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start).count();
      }
    } catch (const Poco::TimeoutException&) {
    } catch (const Poco::Exception&) {
      return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start).count();
    }
    std::this_thread::sleep_for(Millis(200));
  }
  return -1;
}

// Reads one response with a Content-Length from `socket`; returns its head and body, or what
// arrived before the connection closed or 10 s passed.
std::string readResponse(Poco::Net::StreamSocket& socket) {
  socket.setReceiveTimeout(Poco::Timespan(10, 0));
  std::string received;
  char buffer[4096];
  for (;;) {
    std::size_t end = received.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::size_t at = received.find("Content-Length: ");
      if (at != std::string::npos && at < end &&
          received.size() >= end + 4 + std::stoul(received.substr(at + 16))) {
        return received;
      }
    }
    int n = 0;
    try {
      n = socket.receiveBytes(buffer, sizeof buffer);
    } catch (const Poco::Exception&) {
      return received;
    }
    if (n <= 0) return received;
    received.append(buffer, static_cast<std::size_t>(n));
  }
}

std::string dealRequest() {
  const std::string body = test::sample("03-ONCRMDEALADD.form");
  return "POST /bitrix24/events HTTP/1.1\r\nHost: x\r\n"
         "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

// The connection loop is ours (http_server.cpp): requests one after another and pipelined
// on one connection are all answered on it, and an idle kept-alive connection is closed after
// the keep-alive timeout (5 s), not before and not never.
BOOST_AUTO_TEST_CASE(keepalive_connection_serves_several_requests_and_closes_when_idle) {
  Server s;
  Poco::Net::StreamSocket socket = s.connect();
  const std::string request = dealRequest();
  for (int i = 0; i < 3; ++i) {
    socket.sendBytes(request.data(), static_cast<int>(request.size()));
    std::string answer = readResponse(socket);
    BOOST_TEST(answer.rfind("HTTP/1.1 200", 0) == 0u, answer);
    BOOST_TEST(answer.find("Connection: Keep-Alive\r\n") != std::string::npos, answer);
  }
  const std::string two = request + request;  // pipelined: the second waits in the buffer
  socket.sendBytes(two.data(), static_cast<int>(two.size()));
  for (int i = 0; i < 2; ++i) {
    std::string answer = readResponse(socket);
    BOOST_TEST(answer.rfind("HTTP/1.1 200", 0) == 0u, answer);
  }
  BOOST_TEST(test::queryScalar(s.settings.db.path, "SELECT count(*) FROM events") == "6");

  long ms = millisUntilClosed(socket, Millis(15000), [](int) {});
  BOOST_TEST_MESSAGE("idle keep-alive connection closed after " << ms << " ms");
  BOOST_TEST(ms >= 0);     // closed at all, within 15 s
  BOOST_TEST(ms >= 2000);  // not at once: the keep-alive timeout is 5 s, the request timeout 30 s
}

BOOST_AUTO_TEST_CASE(new_connection_is_answered_while_64_keepalive_clients_hammer) {
  Server s;
  const std::string deal = test::sample("03-ONCRMDEALADD.form");
  std::atomic<bool> stop{false};
  std::atomic<int> acknowledged{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 64; ++c) {
    clients.emplace_back([&] {
      Poco::Net::HTTPClientSession session(s.uri.getHost(), s.uri.getPort());
      session.setKeepAlive(true);
      session.setTimeout(Poco::Timespan(30, 0));
      // Bounded: 2,000 requests per client at most; the test stops them much earlier.
      for (int i = 0; i < 2000 && !stop; ++i) try {
          Poco::Net::HTTPRequest request("POST", kPath, Poco::Net::HTTPMessage::HTTP_1_1);
          request.setContentType("application/x-www-form-urlencoded");
          request.setContentLength(static_cast<std::streamsize>(deal.size()));
          request.setKeepAlive(true);
          session.sendRequest(request) << deal;
          Poco::Net::HTTPResponse response;
          std::string body;
          Poco::StreamCopier::copyToString(session.receiveResponse(response), body);
          (response.getStatus() == 200 ? acknowledged : failed)++;
        } catch (const Poco::Exception&) {
          failed++;
          return;
        }
    });
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (acknowledged < 500 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(Millis(10));
  }
  BOOST_REQUIRE(acknowledged >= 500);
  long worst = 0;
  for (int probe = 0; probe < 5; ++probe) worst = std::max(worst, timedPost(s.url));
  stop = true;
  for (auto& c : clients) c.join();
  BOOST_TEST_MESSAGE("slowest first answer on a new connection: " << worst << " ms");
  BOOST_TEST(worst < 2000);
  BOOST_TEST(failed.load() == 0);  // no keep-alive client was cut off or refused
}

BOOST_AUTO_TEST_CASE(three_hundred_idle_connections_do_not_block_service) {
  // The ingest loops hold no thread per connection: idle ones cost a buffer each.
  Server s;
  std::vector<Poco::Net::StreamSocket> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(s.connect());
  std::this_thread::sleep_for(Millis(200));
  long ms = timedPost(s.url);
  BOOST_TEST_MESSAGE("answer behind 300 idle connections: " << ms << " ms");
  BOOST_TEST(ms < 2000);
  BOOST_TEST(test::httpGet(s.service->queryUrl(), "/healthz").status == 200);
  for (auto& socket : idle) socket.close();
}

BOOST_AUTO_TEST_CASE(client_trickling_headers_is_cut_off_after_the_request_timeout) {
  Server s(2);
  Poco::Net::StreamSocket slow = s.connect();
  const std::string head = "POST /bitrix24/events HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  slow.sendBytes(head.data(), static_cast<int>(head.size()));
  long ms = millisUntilClosed(slow, Millis(15000), [&](int) { slow.sendBytes("a", 1); });
  BOOST_TEST_MESSAGE("trickling client cut off after " << ms << " ms");
  BOOST_TEST(ms >= 0);                  // cut off at all, within 15 s
  BOOST_TEST(ms < 10000);               // request_timeout is 2 s
  BOOST_TEST(timedPost(s.url) < 2000);  // others are still served
}

BOOST_AUTO_TEST_CASE(client_trickling_a_body_is_cut_off_and_nothing_is_stored) {
  Server s(2);
  Poco::Net::StreamSocket slow = s.connect();
  std::string head =
      "POST /bitrix24/events HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n";
  slow.sendBytes(head.data(), static_cast<int>(head.size()));
  long ms = millisUntilClosed(slow, Millis(15000), [&](int) { slow.sendBytes("event=X&", 8); });
  BOOST_TEST(ms >= 0);
  BOOST_TEST(ms < 10000);
  BOOST_TEST(test::queryScalar(s.settings.db.path, "SELECT count(*) FROM events") == "1");
}

BOOST_AUTO_TEST_CASE(connection_that_never_sends_a_request_is_closed) {
  Server s(1);
  Poco::Net::StreamSocket silent = s.connect();
  long ms = millisUntilClosed(silent, Millis(15000), [](int) {});
  BOOST_TEST(ms >= 0);
  BOOST_TEST(ms < 10000);
}

BOOST_AUTO_TEST_CASE(regression_issue6_idle_connections_do_not_block_the_query_listener) {
  Server s;
  Poco::URI query(s.service->queryUrl());
  std::vector<Poco::Net::StreamSocket> idle;
  // More than the query listener's 64 threads.
  for (int i = 0; i < 200; ++i) {
    idle.push_back(
        Poco::Net::StreamSocket(Poco::Net::SocketAddress(query.getHost(), query.getPort())));
  }
  std::this_thread::sleep_for(Millis(200));
  auto start = std::chrono::steady_clock::now();
  BOOST_TEST(test::httpGet(s.service->queryUrl(), "/healthz").status == 200);
  long ms = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start).count();
  BOOST_TEST_MESSAGE("query answer behind 200 idle connections: " << ms << " ms");
  BOOST_TEST(ms < 5000);
  for (auto& socket : idle) socket.close();
}
