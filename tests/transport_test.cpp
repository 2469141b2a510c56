// Both listeners over real sockets (issue 11, SPEC §4 v2): every framing a server could read two
// ways gets 400 with the JSON error body and a closed connection, on the ingest listener and on
// the query listener alike, and nothing smuggled behind it is stored or answered; a request's
// body is never read as the next request; a request that arrived while the server was paused
// past its keep-alive timeout is answered. The framing rules themselves are tested byte by byte
// in tests/http1_connection_test.cpp.
#define BOOST_TEST_MODULE transport
#include <boost/test/unit_test.hpp>

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/URI.h>

#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <thread>

#include "http_server.h"
#include "service.h"
#include "test_support.h"

using namespace b24es;

namespace {

const std::string kPath = "/bitrix24/events";

struct Server {
  Server() {
    settings = test::testSettings(dir);
    service = std::make_unique<Service>(settings, clock);
    service->start();
    ingest = service->ingestUrl();
    query = service->queryUrl();
    BOOST_REQUIRE(test::postForm(ingest, kPath, test::sample("01-ONAPPINSTALL.form")).status ==
                  200);
  }
  ~Server() { service->stop(); }
  std::string events() const {
    return test::queryScalar(settings.db.path, "SELECT count(*) FROM events");
  }

  test::TempDir dir;
  test::FakeClock clock;
  Settings settings;
  std::unique_ptr<Service> service;
  std::string ingest, query;
};

Poco::Net::StreamSocket connectTo(const std::string& url) {
  Poco::URI uri(url);
  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress(uri.getHost(), uri.getPort()));
  socket.setReceiveTimeout(Poco::Timespan(10, 0));
  return socket;
}

void sendAll(Poco::Net::StreamSocket& socket, const std::string& bytes) {
  socket.sendBytes(bytes.data(), static_cast<int>(bytes.size()));
}

// Everything the server sends until it closes the connection; nothing when it does not within
// 10 s.
std::optional<std::string> untilClosed(Poco::Net::StreamSocket& socket) {
  std::string text;
  char buffer[4096];
  try {
    for (int n; (n = socket.receiveBytes(buffer, sizeof buffer)) > 0;) text.append(buffer, n);
    return text;
  } catch (const Poco::TimeoutException&) {
    return std::nullopt;
  } catch (const Poco::Exception&) {
    return text;  // a reset after the answer
  }
}

// Reads one answer with a Content-Length; what arrived when the connection closes first.
std::string oneAnswer(Poco::Net::StreamSocket& socket) {
  std::string in;
  char buffer[4096];
  for (;;) {
    std::size_t end = in.find("\r\n\r\n");
    std::size_t at = in.find("Content-Length: ");
    if (end != std::string::npos && at < end &&
        in.size() >= end + 4 + std::stoul(in.substr(at + 16))) {
      return in;
    }
    int n = socket.receiveBytes(buffer, sizeof buffer);
    if (n <= 0) return in;
    in.append(buffer, static_cast<std::size_t>(n));
  }
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string dealRequest() {
  const std::string body = test::sample("03-ONCRMDEALADD.form");
  return "POST /bitrix24/events HTTP/1.1\r\nHost: x\r\n"
         "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Request heads that frame their body ambiguously, each followed by `smuggled` (a complete
// request a lax server would read as a second one).
std::vector<std::pair<std::string, std::string>> ambiguous(const std::string& start,
                                                           const std::string& smuggled) {
  const std::string n = std::to_string(smuggled.size());
  const std::string form = "Content-Type: application/x-www-form-urlencoded\r\n";
  const std::string chunked = "Transfer-Encoding: chunked\r\n";
  return {
      {"two Content-Length",
       start + form + "Content-Length: 0\r\nContent-Length: " + n + "\r\n\r\n" + smuggled},
      {"two Content-Length in other cases",
       start + form + "content-length: 0\r\nCONTENT-LENGTH: " + n + "\r\n\r\n" + smuggled},
      {"space before the colon", start + form + "Content-Length : " + n + "\r\n\r\n" + smuggled},
      {"header line without a colon", start + form + "X-Junk\r\n\r\n" + smuggled},
      {"Content-Length +N", start + form + "Content-Length: +" + n + "\r\n\r\n" + smuggled},
      {"Content-Length 0N", start + form + "Content-Length: 0" + n + "\r\n\r\n" + smuggled},
      {"Transfer-Encoding on HTTP/1.0", start.substr(0, start.find("HTTP/1.1")) +
                                            "HTTP/1.0\r\nHost: x\r\n" + form + chunked +
                                            "\r\n0\r\n\r\n" + smuggled},
      {"Transfer-Encoding gzip", start + form + "Transfer-Encoding: gzip\r\n\r\n" + smuggled},
      {"Transfer-Encoding and Content-Length",
       start + form + chunked + "Content-Length: " + n + "\r\n\r\n" + smuggled},
      {"chunk size 0x10",
       start + form + chunked + "\r\n0x" + n + "\r\n" + smuggled + "\r\n0\r\n\r\n"},
      {"NUL in a header value",
       start + form + "X-A: a" + std::string(1, '\0') + "\r\n\r\n" + smuggled},
      {"folded header line", start + form + "X-A: a\r\n b\r\n\r\n" + smuggled},
  };
}

// Sends each case on its own connection: one 400 with the JSON error body, then the close.
void checkAllRefused(const std::string& url,
                     const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [name, bytes] : cases) {
    BOOST_TEST_CONTEXT(name << " on " << url) {
      Poco::Net::StreamSocket socket = connectTo(url);
      sendAll(socket, bytes);
      std::optional<std::string> answer = untilClosed(socket);
      BOOST_REQUIRE(answer.has_value());  // closed
      BOOST_TEST(answer->rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0u, *answer);
      BOOST_TEST(
          answer->find("{\"error\":\"malformed_request\",\"message\":\"") != std::string::npos,
          *answer);
      BOOST_TEST(answer->find("Connection: Close\r\n") != std::string::npos, *answer);
      BOOST_TEST(count(*answer, "\r\nDate: ") == 1u, *answer);  // one answer
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(ambiguous_framing_gets_400_and_a_closed_connection_on_the_ingest_listener) {
  Server s;
  checkAllRefused(s.ingest,
                  ambiguous("POST /bitrix24/events HTTP/1.1\r\nHost: x\r\n", dealRequest()));
  BOOST_TEST(s.events() == "1");  // nothing smuggled was stored
}

BOOST_AUTO_TEST_CASE(ambiguous_framing_gets_400_and_a_closed_connection_on_the_query_listener) {
  Server s;
  checkAllRefused(s.query, ambiguous("GET /healthz HTTP/1.1\r\nHost: x\r\n",
                                     "GET /api/v1/portals HTTP/1.1\r\nHost: x\r\n\r\n"));
  checkAllRefused(s.query, ambiguous("POST /api/v1/portals HTTP/1.1\r\nHost: x\r\n",
                                     "GET /api/v1/portals HTTP/1.1\r\nHost: x\r\n\r\n"));
}

// Issue 11: the query listener answered a GET's body, and a 405's, as a second request.
BOOST_AUTO_TEST_CASE(a_get_with_a_body_gets_exactly_one_answer_on_the_query_listener) {
  Server s;
  const std::string inner = "GET /api/v1/portals HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string method : {"GET", "POST", "DELETE"}) {
    BOOST_TEST_CONTEXT(method) {
      Poco::Net::StreamSocket socket = connectTo(s.query);
      sendAll(socket, method + " /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                          std::to_string(inner.size()) + "\r\n\r\n" + inner +
                          "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      std::optional<std::string> answers = untilClosed(socket);
      BOOST_REQUIRE(answers.has_value());
      BOOST_TEST(count(*answers, "\r\nDate: ") == 2u, *answers);  // the body's request: none
      BOOST_TEST(answers->find("member_id") == std::string::npos, *answers);
      BOOST_TEST(answers->rfind("HTTP/1.1 200 OK\r\n") != std::string::npos, *answers);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_get_with_a_body_gets_exactly_one_answer_on_the_ingest_listener) {
  Server s;
  const std::string inner = dealRequest();
  Poco::Net::StreamSocket socket = connectTo(s.ingest);
  sendAll(socket,
          "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(inner.size()) +
              "\r\n\r\n" + inner + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::optional<std::string> answers = untilClosed(socket);
  BOOST_REQUIRE(answers.has_value());
  BOOST_TEST(count(*answers, "HTTP/1.1 200 OK") == 2u, *answers);
  BOOST_TEST(answers->find("stored") == std::string::npos, *answers);
  BOOST_TEST(s.events() == "1");
}

BOOST_AUTO_TEST_CASE(query_requests_pipelined_on_one_connection_are_answered_in_order) {
  Server s;
  Poco::Net::StreamSocket socket = connectTo(s.query);
  sendAll(socket,
          "GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n\r\n"
          "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
          "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::optional<std::string> answers = untilClosed(socket);
  BOOST_REQUIRE(answers.has_value());
  std::size_t first = answers->find("HTTP/1.1 200"), second = answers->find("HTTP/1.1 404"),
              third = answers->rfind("HTTP/1.1 200");
  BOOST_TEST((first < second && second < third && third != std::string::npos), *answers);
}

// Issue 11: a kept-alive connection with a complete request pending was reset unanswered once
// the server had been paused (SIGSTOP) past its keep-alive timeout (5 s).
BOOST_AUTO_TEST_CASE(a_request_that_arrived_while_the_server_was_paused_is_answered) {
  test::TempDir dir;
  test::ChildProcess child(test::serveArgs(dir));
  std::string ingest, query;
  BOOST_REQUIRE(child.readListeningLine(ingest, query));
  BOOST_REQUIRE(test::postForm(ingest, kPath, test::sample("01-ONAPPINSTALL.form")).status == 200);
  Poco::Net::StreamSocket toIngest = connectTo(ingest);
  Poco::Net::StreamSocket toQuery = connectTo(query);
  const std::string health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  sendAll(toIngest, dealRequest());
  sendAll(toQuery, health);
  BOOST_TEST(oneAnswer(toIngest).rfind("HTTP/1.1 200", 0) == 0u);
  BOOST_TEST(oneAnswer(toQuery).rfind("HTTP/1.1 200", 0) == 0u);

  child.signal(SIGSTOP);
  sendAll(toIngest, dealRequest());  // held by the kernel until the server runs again
  sendAll(toQuery, health);
  std::this_thread::sleep_for(std::chrono::seconds(6));
  child.signal(SIGCONT);

  std::string a = oneAnswer(toIngest);
  std::string b = oneAnswer(toQuery);
  BOOST_TEST(a.rfind("HTTP/1.1 200", 0) == 0u, a);
  BOOST_TEST(a.find("\"status\":\"stored\"") != std::string::npos, a);
  BOOST_TEST(b.rfind("HTTP/1.1 200", 0) == 0u, b);
  child.signal(SIGTERM);
  BOOST_TEST(child.wait() == 0);
  BOOST_TEST(test::queryScalar(dir.file("events.db"), "SELECT count(*) FROM events") == "3");
}

namespace {

// A server of its own, one loop and one worker, whose handlers the test controls: "/block"
// waits until released, "/throw" throws, "/factory-throws" makes the factory throw, anything
// else answers 200 "ok".
struct Gate {
  std::mutex mutex;
  std::condition_variable changed;
  bool entered = false, released = false;
};

class TestHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit TestHandler(Gate& gate) : gate_(gate) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    if (request.getURI() == "/throw") throw Poco::RuntimeException("handler failed");
    if (request.getURI() == "/block") {
      std::unique_lock<std::mutex> lock(gate_.mutex);
      gate_.entered = true;
      gate_.changed.notify_all();
      gate_.changed.wait(lock, [this] { return gate_.released; });
    }
    response.setContentLength(2);
    response.send() << "ok";
  }

 private:
  Gate& gate_;
};

class TestFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit TestFactory(Gate& gate) : gate_(gate) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest& request) override {
    if (request.getURI() == "/factory-throws") throw Poco::RuntimeException("factory failed");
    return new TestHandler(gate_);
  }

 private:
  Gate& gate_;
};

struct OwnServer {
  explicit OwnServer(int workers) {
    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress("127.0.0.1", 0), true, false);
    socket.listen(16);
    HttpServerSettings settings;
    settings.name = "test";
    settings.threads = 1;
    settings.workers = workers;
    server = std::make_unique<HttpServer>(socket, new TestFactory(gate),
                                          new Poco::Net::HTTPServerParams, settings);
    server->start();
    url = "http://127.0.0.1:" + std::to_string(server->port());
  }
  ~OwnServer() {
    {
      std::lock_guard<std::mutex> lock(gate.mutex);
      gate.released = true;
    }
    gate.changed.notify_all();
    server->stop(Poco::Timespan(5, 0));
  }
  Gate gate;
  std::unique_ptr<HttpServer> server;
  std::string url;
};

}  // namespace

// Issue 11: a handler that blocks (the query API reading the database) runs on a worker, so the
// loop goes on serving other connections meanwhile, and its own answer comes once it returns.
BOOST_AUTO_TEST_CASE(a_blocking_handler_on_a_worker_does_not_hold_the_loop) {
  OwnServer s(1);
  Poco::Net::StreamSocket blocked = connectTo(s.url);
  sendAll(blocked, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n");
  {
    std::unique_lock<std::mutex> lock(s.gate.mutex);
    BOOST_REQUIRE(
        s.gate.changed.wait_for(lock, std::chrono::seconds(10), [&] { return s.gate.entered; }));
  }
  // The one worker is busy; the loop still accepts, reads and refuses on its own thread.
  Poco::Net::StreamSocket other = connectTo(s.url);
  sendAll(other, "GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx");
  std::optional<std::string> refused = untilClosed(other);
  BOOST_REQUIRE(refused.has_value());
  BOOST_TEST(refused->rfind("HTTP/1.1 400", 0) == 0u, *refused);
  {
    std::lock_guard<std::mutex> lock(s.gate.mutex);
    s.gate.released = true;
  }
  s.gate.changed.notify_all();
  std::string answer = oneAnswer(blocked);
  BOOST_TEST(answer.rfind("HTTP/1.1 200 OK", 0) == 0u, answer);
  BOOST_TEST(answer.substr(answer.size() - 2) == "ok", answer);
}

BOOST_AUTO_TEST_CASE(a_handler_that_throws_on_a_worker_gets_500_and_a_closed_connection) {
  for (int workers : {0, 1}) {
    BOOST_TEST_CONTEXT(workers << " workers") {
      OwnServer s(workers);
      for (const std::string target : {"/throw", "/factory-throws"}) {
        Poco::Net::StreamSocket socket = connectTo(s.url);
        sendAll(socket, "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        std::optional<std::string> answer = untilClosed(socket);
        BOOST_REQUIRE(answer.has_value());
        BOOST_TEST(answer->rfind("HTTP/1.1 500", 0) == 0u, *answer);
        BOOST_TEST(answer->find("{\"error\":\"internal_error\",") != std::string::npos, *answer);
        BOOST_TEST(answer->find("handler failed") == std::string::npos, *answer);  // not quoted
        BOOST_TEST(count(*answer, "\r\nDate: ") == 1u, *answer);  // the request after: none
      }
    }
  }
}
