// The live event stream (SPEC §5.1, issue 15 items 1 and 5) end to end: a Service in-process on
// port 0, fed through the real ingest path, and read by a client that speaks HTTP/1.1 over a
// plain socket and parses Server-Sent Events itself. Every wait is bounded (by a count or by a
// generous socket timeout that only ends a hung test); nothing asserts how long anything took.
// Runs on both backends (stream_test, stream_test_pg; tests/test_backend.h).
#define BOOST_TEST_MODULE stream
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "http_server.h"
#include "metrics.h"
#include "service.h"
#include "storage.h"
#include "stream_hub.h"
#include "test_support.h"

namespace {

using b24es::test::HttpResult;
using Fields = std::vector<std::pair<std::string, std::string>>;

const std::string kMemberA = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";
const std::string kDomainA = "acme-test.bitrix24.com";
const std::string kAppTokenA = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";
const std::string kMemberB = "b2d6f0c4e8a1937560bd4f2a8c1e7d93";
const std::string kDomainB = "globex.bitrix24.eu";
const std::string kAppTokenB = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
constexpr int kReadTimeoutMs = 20000;  // only ends a hung test; no assertion depends on it

std::string encoded(const std::string& text) {
  std::string out;
  Poco::URI::encode(text, "!#$&'()*+,/:;=?@[]", out);
  return out;
}

std::string formOf(const Fields& fields) {
  std::string body;
  for (const auto& [key, value] : fields) {
    if (!body.empty()) body += '&';
    body += encoded(key) + "=" + encoded(value);
  }
  return body;
}

Fields installOf(const std::string& member, const std::string& domain, const std::string& token) {
  return {{"event", "ONAPPINSTALL"},
          {"event_handler_id", "11"},
          {"data[VERSION]", "1"},
          {"ts", "1767261600"},
          {"auth[access_token]", "install-access-71c3e9d05a2f"},
          {"auth[expires]", "1767265200"},
          {"auth[scope]", "crm"},
          {"auth[domain]", domain},
          {"auth[server_endpoint]", "https://oauth.bitrix.info/rest/"},
          {"auth[status]", "P"},
          {"auth[client_endpoint]", "https://" + domain + "/rest/"},
          {"auth[member_id]", member},
          {"auth[user_id]", "1"},
          {"auth[refresh_token]", "install-refresh-0e8d4b6a2c19"},
          {"auth[application_token]", token}};
}

// One SSE message, or a comment (a line starting with ':').
struct Message {
  std::optional<std::int64_t> id;
  std::string event;
  std::string data;
  std::string comment;
};

// A client of the query listener on a socket of its own: sends one GET, reads the head, then
// reads Server-Sent Events as they come. `receiveBuffer` > 0 shrinks the socket's receive
// buffer before connecting (the slow reader).
class StreamClient {
 public:
  StreamClient(const std::string& url, const std::string& target,
               const std::map<std::string, std::string>& headers = {}, int receiveBuffer = 0,
               const std::string& method = "GET") {
    Poco::URI uri(url);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    BOOST_REQUIRE(fd_ >= 0);
    if (receiveBuffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, sizeof receiveBuffer);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(uri.getPort());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
    request += "\r\n";
    BOOST_REQUIRE(::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
                  static_cast<ssize_t>(request.size()));
  }
  ~StreamClient() { close(); }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Reads the status line and headers. Returns the status.
  int readHead() {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      BOOST_REQUIRE_MESSAGE(fill(), "the connection ended before the answer's head");
    }
    std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    std::size_t lineEnd = head.find("\r\n");
    std::string statusLine = head.substr(0, lineEnd);
    status = std::stoi(statusLine.substr(9, 3));
    std::size_t pos = lineEnd == std::string::npos ? head.size() : lineEnd + 2;
    while (pos < head.size()) {
      std::size_t next = head.find("\r\n", pos);
      if (next == std::string::npos) next = head.size();
      std::string line = head.substr(pos, next - pos);
      std::size_t colon = line.find(':');
      headers[Poco::toLower(line.substr(0, colon))] = Poco::trim(line.substr(colon + 1));
      pos = next + 2;
    }
    return status;
  }

  // The body of a plain (non-stream) answer, by its Content-Length.
  std::string readBody() {
    std::size_t length = std::stoul(headers.at("content-length"));
    while (buffer_.size() < length) BOOST_REQUIRE(fill());
    std::string body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return body;
  }

  // The next message or comment; nullopt when the connection ended.
  std::optional<Message> next() {
    Message m;
    bool any = false;
    for (;;) {
      std::size_t eol;
      while ((eol = buffer_.find('\n')) == std::string::npos) {
        if (!fill()) return std::nullopt;
      }
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      if (line.empty()) {
        if (any) return m;
        continue;
      }
      any = true;
      if (line[0] == ':') {
        m.comment = line.substr(1);
        if (!m.comment.empty() && m.comment[0] == ' ') m.comment.erase(0, 1);
        continue;
      }
      std::size_t colon = line.find(':');
      std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field == "id") m.id = std::stoll(value);
      if (field == "event") m.event = value;
      if (field == "data") m.data += (m.data.empty() ? "" : "\n") + value;
    }
  }

  // The next event message, skipping comments; nullopt when the connection ended, or when
  // four keep-alive comments (a minute at the default interval) came and no event: that ends a
  // hung case instead of waiting for ctest's timeout.
  std::optional<Message> nextEvent() {
    for (int comments = 0; comments < 4; ++comments) {
      std::optional<Message> m = next();
      if (!m || m->id) return m;
    }
    return std::nullopt;
  }

  // Reads until the server closes the connection; false if it did not within the (generous)
  // timeout. Returns the bytes read in `total`.
  bool readToEnd(std::size_t& total) {
    total = buffer_.size();
    buffer_.clear();
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, kReadTimeoutMs) <= 0) return false;
      char chunk[65536];
      ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got <= 0) return true;  // EOF, or reset by the server
      total += static_cast<std::size_t>(got);
    }
  }

  int status = 0;
  std::map<std::string, std::string> headers;

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

// A running service with portals A and B installed.
class Fixture {
 public:
  explicit Fixture(const std::function<void(b24es::Settings&)>& adjust = {})
      : settings_(b24es::test::testSettings(dir_)) {
    settings_.db.synchronous = "normal";
    if (adjust) adjust(settings_);
    service_ = std::make_unique<b24es::Service>(settings_, clock_);
    service_->start();
    BOOST_REQUIRE_EQUAL(post(formOf(installOf(kMemberA, kDomainA, kAppTokenA))), 1);
    BOOST_REQUIRE_EQUAL(post(formOf(installOf(kMemberB, kDomainB, kAppTokenB))), 2);
  }
  ~Fixture() {
    if (service_) service_->stop();
  }

  // POSTs a form; returns the stored id (0 when not stored).
  std::int64_t post(const std::string& form) {
    HttpResult r = b24es::test::postForm(service_->ingestUrl(), settings_.ingest.path, form);
    if (r.status != 200) return 0;
    return r.json()->getValue<std::int64_t>("id");
  }
  // A deal event of portal A (or B); `padding` bytes of data make it big.
  std::int64_t postDeal(bool portalB = false, const std::string& event = "ONCRMDEALADD",
                        std::size_t padding = 0, int entity = 7405) {
    Fields f{{"event", event},
             {"event_handler_id", "3"},
             {"data[FIELDS][ID]", std::to_string(entity)},
             {"ts", "1767262200"},
             {"auth[domain]", portalB ? kDomainB : kDomainA},
             {"auth[member_id]", portalB ? kMemberB : kMemberA},
             {"auth[application_token]", portalB ? kAppTokenB : kAppTokenA}};
    if (padding) f.emplace_back("data[FIELDS][COMMENTS]", std::string(padding, 'x'));
    return post(formOf(f));
  }

  HttpResult get(const std::string& target,
                 const std::map<std::string, std::string>& headers = {}) {
    return b24es::test::httpRequest(service_->queryUrl(), "GET", target, {}, {}, headers);
  }
  // A metric's value from /metrics ("" when absent).
  std::string metric(const std::string& name, const std::map<std::string, std::string>& h = {}) {
    HttpResult r = get("/metrics", h);
    std::size_t at = r.body.find("\n" + name + " ");
    if (at == std::string::npos) return "";
    std::size_t start = at + name.size() + 2;
    return r.body.substr(start, r.body.find('\n', start) - start);
  }

  std::unique_ptr<StreamClient> open(const std::string& target,
                                     const std::map<std::string, std::string>& headers = {},
                                     int receiveBuffer = 0) {
    auto c = std::make_unique<StreamClient>(service_->queryUrl(), target, headers, receiveBuffer);
    c->readHead();
    return c;
  }

  b24es::Service& service() { return *service_; }
  const b24es::Settings& settings() const { return settings_; }
  void stop() { service_->stop(); }

 private:
  b24es::test::TempDir dir_;
  b24es::test::FakeClock clock_;
  b24es::Settings settings_;
  std::unique_ptr<b24es::Service> service_;
};

Poco::JSON::Object::Ptr parse(const std::string& json) {
  Poco::JSON::Parser parser;
  return parser.parse(json).extract<Poco::JSON::Object::Ptr>();
}

// The stream's data for an event is the EVENT object /api/v1/events/{id} answers, byte for byte.
void checkSameAsApi(Fixture& f, const Message& m) {
  HttpResult one = f.get("/api/v1/events/" + std::to_string(*m.id));
  BOOST_REQUIRE_EQUAL(one.status, 200);
  BOOST_CHECK_EQUAL(m.data, one.body);
  BOOST_CHECK_EQUAL(m.event, parse(one.body)->getValue<std::string>("event"));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_stream_sends_the_backlog_after_after_id_then_new_events_as_committed) {
  Fixture f;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(f.postDeal(i % 2 == 1));
  auto s = f.open("/api/v1/events/stream?after_id=" + std::to_string(ids[0]));
  BOOST_CHECK_EQUAL(s->status, 200);
  BOOST_CHECK_EQUAL(s->headers["content-type"], "text/event-stream");
  BOOST_CHECK_EQUAL(s->headers["cache-control"], "no-store");
  BOOST_CHECK(!s->headers.count("content-length"));
  for (std::size_t i = 1; i < ids.size(); ++i) {
    std::optional<Message> m = s->nextEvent();
    BOOST_REQUIRE(m);
    BOOST_CHECK_EQUAL(*m->id, ids[i]);
    BOOST_CHECK_EQUAL(m->event, "ONCRMDEALADD");
    checkSameAsApi(f, *m);
  }
  // Live: posted after the backlog was read.
  std::int64_t live = f.postDeal(false, "ONCRMDEALUPDATE");
  std::optional<Message> m = s->nextEvent();
  BOOST_REQUIRE(m);
  BOOST_CHECK_EQUAL(*m->id, live);
  BOOST_CHECK_EQUAL(m->event, "ONCRMDEALUPDATE");
  checkSameAsApi(f, *m);
}

BOOST_AUTO_TEST_CASE(a_stream_without_a_start_sends_only_events_committed_after_it_opened) {
  Fixture f;
  for (int i = 0; i < 3; ++i) f.postDeal();
  auto s = f.open("/api/v1/events/stream");
  BOOST_REQUIRE_EQUAL(s->status, 200);
  std::int64_t id = f.postDeal(true);
  std::optional<Message> m = s->nextEvent();
  BOOST_REQUIRE(m);
  BOOST_CHECK_EQUAL(*m->id, id);
}

BOOST_AUTO_TEST_CASE(last_event_id_wins_over_after_id) {
  Fixture f;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(f.postDeal());
  auto s = f.open("/api/v1/events/stream?after_id=1", {{"Last-Event-ID", std::to_string(ids[2])}});
  std::optional<Message> m = s->nextEvent();
  BOOST_REQUIRE(m);
  BOOST_CHECK_EQUAL(*m->id, ids[3]);
}

// A client that reconnects with the last id it got, while events keep being committed (some of
// them while it is away), sees each event exactly once and in order: with Last-Event-ID, and
// with after_id.
BOOST_AUTO_TEST_CASE(reconnecting_with_the_last_id_misses_nothing_and_repeats_nothing) {
  Fixture f;
  constexpr int kEvents = 150;
  std::vector<std::int64_t> posted;
  std::atomic<bool> posting{true};
  std::int64_t startAfter = 2;  // the two installs
  std::thread poster([&] {
    for (int i = 0; i < kEvents; ++i) posted.push_back(f.postDeal(i % 3 == 0));
    posting = false;
  });
  std::vector<std::int64_t> seen;
  std::int64_t last = startAfter;
  for (int round = 0; round < 1000 && static_cast<int>(seen.size()) < kEvents; ++round) {
    // Alternately the header and the parameter; a few events per connection.
    std::unique_ptr<StreamClient> s =
        round % 2 == 0 ? f.open("/api/v1/events/stream", {{"Last-Event-ID", std::to_string(last)}})
                       : f.open("/api/v1/events/stream?after_id=" + std::to_string(last));
    BOOST_REQUIRE_EQUAL(s->status, 200);
    for (int k = 0; k < 7 && static_cast<int>(seen.size()) < kEvents; ++k) {
      std::optional<Message> m = s->nextEvent();
      BOOST_REQUIRE(m);
      seen.push_back(*m->id);
      last = *m->id;
    }
  }
  poster.join();
  BOOST_REQUIRE_EQUAL(posted.size(), static_cast<std::size_t>(kEvents));
  BOOST_CHECK_EQUAL_COLLECTIONS(seen.begin(), seen.end(), posted.begin(), posted.end());
}

BOOST_AUTO_TEST_CASE(filters_select_the_same_events_in_the_backlog_and_live) {
  Fixture f;
  std::vector<std::int64_t> aDeals, bUpdates;
  auto postMix = [&] {
    aDeals.push_back(f.postDeal(false, "ONCRMDEALADD"));
    f.postDeal(true, "ONCRMDEALADD");
    f.postDeal(false, "ONCRMDEALUPDATE");
    bUpdates.push_back(f.postDeal(true, "ONCRMDEALUPDATE"));
  };
  postMix();
  postMix();
  auto byPortal =
      f.open("/api/v1/events/stream?after_id=0&event=OnCrmDealAdd&member_id=" + kMemberA);
  auto byEvent =
      f.open("/api/v1/events/stream?after_id=0&event=ONCRMDEALUPDATE&domain=" + kDomainB);
  postMix();
  for (std::int64_t id : aDeals) {
    std::optional<Message> m = byPortal->nextEvent();
    BOOST_REQUIRE(m);
    BOOST_CHECK_EQUAL(*m->id, id);
  }
  for (std::int64_t id : bUpdates) {
    std::optional<Message> m = byEvent->nextEvent();
    BOOST_REQUIRE(m);
    BOOST_CHECK_EQUAL(*m->id, id);
  }
  // Nothing else was sent to them: the next event each gets is the next that matches.
  std::int64_t a = f.postDeal(false, "ONCRMDEALADD");
  std::int64_t b = f.postDeal(true, "ONCRMDEALUPDATE");
  BOOST_CHECK_EQUAL(*byPortal->nextEvent()->id, a);
  BOOST_CHECK_EQUAL(*byEvent->nextEvent()->id, b);
}

// The hub filters live events in memory and backlogs through the reader's SQL: both must select
// the same events, for every filter field.
BOOST_AUTO_TEST_CASE(the_live_filter_agrees_with_the_readers_query) {
  b24es::test::TempDir dir;
  b24es::test::FakeClock clock;
  b24es::Settings settings = b24es::test::testSettings(dir);
  b24es::Service service(settings, clock);
  service.start();
  auto postOne = [&](const Fields& f) {
    return b24es::test::postForm(service.ingestUrl(), settings.ingest.path, formOf(f)).status;
  };
  BOOST_REQUIRE_EQUAL(postOne(installOf(kMemberA, kDomainA, kAppTokenA)), 200);
  BOOST_REQUIRE_EQUAL(postOne(installOf(kMemberB, kDomainB, kAppTokenB)), 200);
  for (int i = 0; i < 24; ++i) {
    const bool b = i % 2 == 1;
    Fields f{{"event", i % 3 == 0 ? "ONCRMDEALADD" : "ONCRMDYNAMICITEMADD"},
             {"data[FIELDS][ID]", std::to_string(100 + i % 4)},
             {"auth[domain]", b ? kDomainB : kDomainA},
             {"auth[member_id]", b ? kMemberB : kMemberA},
             {"auth[application_token]", b ? kAppTokenB : kAppTokenA}};
    if (i % 4 != 3) f.emplace_back("ts", std::to_string(1767262200 + i * 60));
    if (i % 5 == 0) f.emplace_back("data[FIELDS][ENTITY_TYPE_ID]", std::to_string(1220 + i % 2));
    if (i % 3 != 2) f.emplace_back("auth[user_id]", std::to_string(1 + i % 2));
    BOOST_REQUIRE_EQUAL(postOne(f), 200);
  }
  std::unique_ptr<b24es::Storage> storage = b24es::test::openTestStorage(settings, clock);
  b24es::EventReader& reader = storage->reader();
  std::vector<b24es::EventRecord> all = reader.queryEvents(b24es::EventFilter{}).items;
  BOOST_REQUIRE_EQUAL(all.size(), 26u);
  std::vector<b24es::EventFilter> filters(15);
  filters[1].memberId = kMemberB;
  filters[2].domain = kDomainA;
  filters[3].event = "ONCRMDEALADD";
  filters[4].entityId = 101;
  filters[5].entityTypeId = 1220;
  filters[6].userId = 2;
  filters[7].from = 1767262200 + 5 * 60;
  filters[8].to = 1767262200 + 10 * 60;
  filters[9].from = 1767262200 + 3 * 60;
  filters[9].to = 1767262200 + 15 * 60;
  filters[9].memberId = kMemberA;
  filters[10].event = "ONCRMDYNAMICITEMADD";
  filters[10].userId = 1;
  filters[11].memberId = "no-such-member";
  // SPEC §5.1: the stream takes every filter of /api/v1/events but limit and order, so source
  // too (all of these events are online; offline ones are checked live in offline_test).
  filters[12].source = "online";
  filters[13].source = "offline";
  filters[14].source = "online";
  filters[14].memberId = kMemberB;
  for (std::size_t i = 0; i < filters.size(); ++i) {
    std::vector<std::int64_t> bySql, inMemory;
    for (const b24es::EventRecord& e : reader.queryEvents(filters[i]).items) bySql.push_back(e.id);
    for (const b24es::EventRecord& e : all) {
      if (b24es::eventMatches(filters[i], e)) inMemory.push_back(e.id);
    }
    BOOST_TEST_CONTEXT("filter " << i) {
      BOOST_CHECK_EQUAL_COLLECTIONS(bySql.begin(), bySql.end(), inMemory.begin(), inMemory.end());
    }
  }
  service.stop();
}

BOOST_AUTO_TEST_CASE(sse_messages_carry_one_data_line_per_line_of_json) {
  b24es::EventRecord e;
  e.id = 42;
  e.event = "ONCRMDEALADD";
  e.memberId = "m";
  e.dataJson = "{\"a\":\n1,\r\n\"b\":\r2}";
  std::string m = b24es::sseMessage(e);
  BOOST_CHECK(m.rfind("id: 42\nevent: ONCRMDEALADD\ndata: {\"id\":42,", 0) == 0);
  BOOST_CHECK(m.find("\ndata: 1,\ndata: \"b\":\ndata: 2}}\n\n") != std::string::npos);
  BOOST_CHECK_EQUAL(m.find('\r'), std::string::npos);
  e.event = "BAD\nCODE";
  BOOST_CHECK_EQUAL(b24es::sseMessage(e).find("event:"), std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_stream_parameters_get_400_and_open_no_stream) {
  Fixture f;
  const std::pair<std::string, std::map<std::string, std::string>> bad[] = {
      {"/api/v1/events/stream?limit=10", {}},
      {"/api/v1/events/stream?order=desc", {}},
      {"/api/v1/events/stream?after_id=-1", {}},
      {"/api/v1/events/stream?after_id=abc", {}},
      {"/api/v1/events/stream?from=yesterday", {}},
      {"/api/v1/events/stream?colour=red", {}},
      {"/api/v1/events/stream", {{"Last-Event-ID", "abc"}}},
      {"/api/v1/events/stream", {{"Last-Event-ID", "-5"}}},
  };
  for (const auto& [target, headers] : bad) {
    BOOST_TEST_CONTEXT(target) {
      HttpResult r = f.get(target, headers);
      BOOST_CHECK_EQUAL(r.status, 400);
      BOOST_CHECK_EQUAL(r.json()->getValue<std::string>("error"), "invalid_parameter");
      BOOST_CHECK(!r.json()->getValue<std::string>("message").empty());
    }
  }
  BOOST_CHECK_EQUAL(f.metric("b24es_streams_open"), "0");
}

BOOST_AUTO_TEST_CASE(streams_beyond_max_streams_get_503_with_the_error_body) {
  Fixture f([](b24es::Settings& s) { s.query.maxStreams = 2; });
  auto one = f.open("/api/v1/events/stream");
  auto two = f.open("/api/v1/events/stream");
  BOOST_REQUIRE_EQUAL(one->status, 200);
  BOOST_REQUIRE_EQUAL(two->status, 200);
  StreamClient three(f.service().queryUrl(), "/api/v1/events/stream");
  BOOST_CHECK_EQUAL(three.readHead(), 503);
  Poco::JSON::Object::Ptr body = parse(three.readBody());
  BOOST_CHECK_EQUAL(body->getValue<std::string>("error"), "too_many_streams");
  BOOST_CHECK_EQUAL(three.headers["retry-after"], "1");
  BOOST_CHECK_EQUAL(f.metric("b24es_streams_open"), "2");
  // A place is given back when a client goes; the server learns of it as the FIN arrives.
  one->close();
  int status = 0;
  for (int attempt = 0; attempt < 2000 && status != 200; ++attempt) {
    StreamClient again(f.service().queryUrl(), "/api/v1/events/stream");
    status = again.readHead();
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  BOOST_CHECK_EQUAL(status, 200);
}

// A client that never reads: once more than 1 MiB waits for it beyond what the sockets buffer,
// the server disconnects it (b24es_streams_cut_total), and other streams and ingest go on.
BOOST_AUTO_TEST_CASE(a_reader_that_stops_reading_is_cut_once_1_mib_is_unsent) {
  Fixture f;
  auto slow = f.open("/api/v1/events/stream", {}, 4096);
  auto fast = f.open("/api/v1/events/stream");
  std::size_t posted = 0;
  std::int64_t lastId = 0;
  // 256 KiB events: the kernel's buffers on both ends hold a few MiB, then 1 MiB more is cut.
  for (int i = 0; i < 200 && f.metric("b24es_streams_cut_total") != "1"; ++i) {
    lastId = f.postDeal(false, "ONCRMDEALADD", 256 * 1024);
    BOOST_REQUIRE(lastId > 0);
    ++posted;
    // The fast reader keeps up, so the server has no reason to cut it.
    std::optional<Message> m = fast->nextEvent();
    BOOST_REQUIRE(m);
    BOOST_CHECK_EQUAL(*m->id, lastId);
  }
  BOOST_CHECK_EQUAL(f.metric("b24es_streams_cut_total"), "1");
  BOOST_CHECK_EQUAL(f.metric("b24es_streams_open"), "1");
  // The slow client finds its connection ended, short of everything that was posted.
  std::size_t received = 0;
  BOOST_CHECK(slow->readToEnd(received));
  BOOST_CHECK_LT(received, posted * 256 * 1024);
  // The fast one is still served.
  std::int64_t after = f.postDeal();
  BOOST_CHECK_EQUAL(*fast->nextEvent()->id, after);
}

BOOST_AUTO_TEST_CASE(an_idle_stream_gets_keep_alive_comments) {
  Fixture f([](b24es::Settings& s) { s.query.streamKeepAlive = std::chrono::milliseconds(50); });
  auto s = f.open("/api/v1/events/stream");
  for (int i = 0; i < 3; ++i) {
    std::optional<Message> m = s->next();
    BOOST_REQUIRE(m);
    BOOST_CHECK(!m->id);
    BOOST_CHECK_EQUAL(m->comment, "keep-alive");
  }
}

BOOST_AUTO_TEST_CASE(the_default_keep_alive_interval_is_15_seconds) {
  b24es::StreamSettings streams;
  b24es::QuerySettings query;
  BOOST_CHECK(streams.keepAlive <= std::chrono::seconds(15));
  BOOST_CHECK(query.streamKeepAlive == std::chrono::seconds(15));
  BOOST_CHECK_EQUAL(query.maxStreams, 256u);
}

BOOST_AUTO_TEST_CASE(the_stream_needs_the_bearer_token_when_one_is_set) {
  Fixture f([](b24es::Settings& s) { s.query.token = "stream-token-5d1c9e"; });
  StreamClient none(f.service().queryUrl(), "/api/v1/events/stream");
  BOOST_CHECK_EQUAL(none.readHead(), 401);
  BOOST_CHECK(none.headers.count("www-authenticate"));
  BOOST_CHECK_EQUAL(parse(none.readBody())->getValue<std::string>("error"), "unauthorized");
  StreamClient wrong(f.service().queryUrl(), "/api/v1/events/stream",
                     {{"Authorization", "Bearer not-the-token"}});
  BOOST_CHECK_EQUAL(wrong.readHead(), 401);
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer stream-token-5d1c9e"}};
  BOOST_CHECK_EQUAL(f.metric("b24es_streams_open", auth), "0");
  auto s = f.open("/api/v1/events/stream", auth);
  BOOST_REQUIRE_EQUAL(s->status, 200);
  std::int64_t id = f.postDeal();
  std::optional<Message> m = s->nextEvent();
  BOOST_REQUIRE(m);
  BOOST_CHECK_EQUAL(*m->id, id);
  BOOST_CHECK(m->data.find("stream-token") == std::string::npos);
  BOOST_CHECK(m->data.find(kAppTokenA) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(head_answers_the_streams_headers_without_opening_one) {
  Fixture f;
  StreamClient head(f.service().queryUrl(), "/api/v1/events/stream", {}, 0, "HEAD");
  BOOST_CHECK_EQUAL(head.readHead(), 200);
  BOOST_CHECK_EQUAL(head.headers["content-type"], "text/event-stream");
  BOOST_CHECK_EQUAL(head.headers["cache-control"], "no-store");
  BOOST_CHECK_EQUAL(f.metric("b24es_streams_open"), "0");
}

BOOST_AUTO_TEST_CASE(ingest_and_the_other_routes_answer_while_streams_are_open) {
  Fixture f;
  std::vector<std::unique_ptr<StreamClient>> streams;
  for (int i = 0; i < 64; ++i) streams.push_back(f.open("/api/v1/events/stream"));
  BOOST_CHECK_EQUAL(f.metric("b24es_streams_open"), "64");
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 20; ++i) {
    std::int64_t id = f.postDeal(i % 2 == 0);
    BOOST_REQUIRE(id > 0);
    ids.push_back(id);
    BOOST_CHECK_EQUAL(f.get("/api/v1/events?limit=1&order=desc")
                          .json()
                          ->getArray("items")
                          ->getObject(0)
                          ->getValue<std::int64_t>("id"),
                      id);
    BOOST_CHECK_EQUAL(f.get("/healthz").status, 200);
  }
  for (auto& s : streams) {
    for (std::int64_t id : ids) {
      std::optional<Message> m = s->nextEvent();
      BOOST_REQUIRE(m);
      BOOST_CHECK_EQUAL(*m->id, id);
    }
  }
}

BOOST_AUTO_TEST_CASE(stopping_the_service_ends_open_streams) {
  Fixture f;
  auto s = f.open("/api/v1/events/stream");
  std::int64_t id = f.postDeal();
  BOOST_CHECK_EQUAL(*s->nextEvent()->id, id);
  f.stop();
  BOOST_CHECK(!s->next());  // the connection ended
}

// Another process writing to the same database (here: a second storage and writer on it, the
// file or the PostgreSQL database): its commits reach this process's streams through the hub's
// reading of the watermark (committedThrough), since no onCommitted call tells of them.
BOOST_AUTO_TEST_CASE(events_committed_by_another_writer_on_the_database_reach_the_stream) {
  Fixture f;
  auto s = f.open("/api/v1/events/stream");
  b24es::test::FakeClock clock;
  std::unique_ptr<b24es::Storage> other = b24es::test::openTestStorage(f.settings(), clock);
  std::unique_ptr<b24es::EventSink> sink = other->openEventSink(
      [](const b24es::IncomingEvent&, const std::optional<b24es::PortalRecord>&) {
        b24es::Verdict v;
        v.action = b24es::Verdict::Action::kStore;
        return v;
      },
      b24es::SinkSettings{});
  b24es::IncomingEvent e;
  e.event = "ONCRMDEALADD";
  e.memberId = kMemberA;
  e.domain = kDomainA;
  e.dataJson = "{}";
  b24es::IngestOutcome outcome = sink->write(e);
  BOOST_REQUIRE(outcome.status == b24es::IngestOutcome::Status::kStored);
  std::optional<Message> m = s->nextEvent();
  BOOST_REQUIRE(m);
  BOOST_CHECK_EQUAL(*m->id, outcome.id);
  sink->close();
}

// The watermark under concurrent writers (SPEC §5.1: each event once, in increasing id order,
// no gaps among the matching events): four clients post through the ingest listener while a
// second storage and writer on the same database (as a second receiver would) commits too. On
// PostgreSQL the two writers' ids come from one sequence under the commit-order lock
// (storage/postgresql/pg_event_sink.cpp) and this process learns of the other's commits only
// from committedThrough(); on SQLite the file's write lock orders them. A stream that stays
// open, a filtered one and one that reconnects with Last-Event-ID every few events each see
// exactly the acknowledged events, sorted. Bounded by counts; ids may have gaps on PostgreSQL
// (a sequence never reuses a value), so they are compared with what was acknowledged.
BOOST_AUTO_TEST_CASE(events_committed_at_once_by_several_writers_reach_streams_in_id_order_once) {
  Fixture f;
  if (b24es::test::testBackend() == b24es::test::Backend::postgresql) {
    // Fault injection: each INSERT into events sleeps a few ms after its rows took their ids
    // and before its transaction commits, so that two writers' batches would commit out of id
    // order if anything let them (without the commit-order lock this case fails: a stream
    // sends an id while a lower one is still uncommitted, then never sends that one).
    b24es::test::pgQuery(f.settings().pg.url,
                         "CREATE FUNCTION test_commit_delay() RETURNS trigger LANGUAGE plpgsql AS "
                         "$$ BEGIN PERFORM pg_sleep(0.002 + random() * 0.006); RETURN NULL; "
                         "END $$; CREATE TRIGGER test_commit_delay AFTER INSERT ON events FOR "
                         "EACH STATEMENT EXECUTE FUNCTION test_commit_delay()");
  }
  constexpr int kPosters = 4;
  constexpr int kPerPoster = 40;
  constexpr int kOther = 40;
  const std::string start = "/api/v1/events/stream?after_id=2";  // after the two installs
  auto whole = f.open(start);
  auto portalB = f.open(start + "&member_id=" + kMemberB);
  BOOST_REQUIRE_EQUAL(whole->status, 200);
  BOOST_REQUIRE_EQUAL(portalB->status, 200);

  b24es::test::FakeClock clock;
  std::unique_ptr<b24es::Storage> other = b24es::test::openTestStorage(f.settings(), clock);
  std::unique_ptr<b24es::EventSink> sink = other->openEventSink(
      [](const b24es::IncomingEvent&, const std::optional<b24es::PortalRecord>&) {
        return b24es::Verdict{b24es::Verdict::Action::kStore, {}};
      },
      b24es::SinkSettings{});
  std::vector<std::vector<std::int64_t>> acked(kPosters + 1);
  std::vector<std::thread> writers;
  // Joins the writers also when a check below ends the case early.
  struct JoinAll {
    std::vector<std::thread>& threads;
    ~JoinAll() {
      for (std::thread& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joinAll{writers};
  for (int p = 0; p < kPosters; ++p) {
    writers.emplace_back([&, p] {
      for (int i = 0; i < kPerPoster; ++i) acked[p].push_back(f.postDeal(p % 2 == 1));
    });
  }
  writers.emplace_back([&] {
    for (int i = 0; i < kOther; ++i) {
      b24es::IncomingEvent e;
      e.event = "ONCRMDEALUPDATE";
      e.memberId = kMemberB;
      e.domain = kDomainB;
      e.dataJson = "{}";
      b24es::IngestOutcome o = sink->write(e);
      acked[kPosters].push_back(o.status == b24es::IngestOutcome::Status::kStored ? o.id : 0);
    }
  });
  // Reconnects with the last id it got, every 5 events, while the writers go on.
  std::vector<std::int64_t> reconnecting;
  constexpr std::size_t kTotal = kPosters * kPerPoster + kOther;
  for (int round = 0; round < 1000 && reconnecting.size() < kTotal; ++round) {
    std::int64_t last = reconnecting.empty() ? 2 : reconnecting.back();
    auto s = f.open("/api/v1/events/stream", {{"Last-Event-ID", std::to_string(last)}});
    BOOST_REQUIRE_EQUAL(s->status, 200);
    for (int k = 0; k < 5 && reconnecting.size() < kTotal; ++k) {
      std::optional<Message> m = s->nextEvent();
      BOOST_REQUIRE(m);
      reconnecting.push_back(*m->id);
    }
  }
  for (std::thread& t : writers) t.join();
  sink->close();

  std::vector<std::int64_t> all, ofB;
  for (int p = 0; p <= kPosters; ++p) {
    for (std::int64_t id : acked[p]) {
      BOOST_REQUIRE_MESSAGE(id > 0, "writer " << p << " had an event refused");
      all.push_back(id);
      if (p % 2 == 1 || p == kPosters) ofB.push_back(id);
    }
  }
  std::sort(all.begin(), all.end());
  std::sort(ofB.begin(), ofB.end());
  BOOST_REQUIRE_EQUAL(all.size(), kTotal);
  BOOST_CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // unique ids
  std::vector<std::int64_t> seen, seenB;
  while (seen.size() < all.size()) {
    std::optional<Message> m = whole->nextEvent();
    BOOST_REQUIRE(m);
    seen.push_back(*m->id);
  }
  while (seenB.size() < ofB.size()) {
    std::optional<Message> m = portalB->nextEvent();
    BOOST_REQUIRE(m);
    seenB.push_back(*m->id);
  }
  BOOST_CHECK_EQUAL_COLLECTIONS(seen.begin(), seen.end(), all.begin(), all.end());
  BOOST_CHECK_EQUAL_COLLECTIONS(seenB.begin(), seenB.end(), ofB.begin(), ofB.end());
  BOOST_CHECK_EQUAL_COLLECTIONS(reconnecting.begin(), reconnecting.end(), all.begin(), all.end());
  // Nothing beyond them: the next event each stream gets is the next one committed.
  std::int64_t next = f.postDeal(true);
  BOOST_CHECK_EQUAL(*whole->nextEvent()->id, next);
  BOOST_CHECK_EQUAL(*portalB->nextEvent()->id, next);
}

namespace {

// The hub's output, captured: what a ResponseStream was given, in order. Thread-safe.
class CapturedStream final : public b24es::ResponseStream {
 public:
  bool write(std::string bytes) override {
    b24es::MutexLock lock(mutex_);
    text_ += bytes;
    return true;
  }
  void end() override {}
  bool isOpen() const override { return true; }
  std::size_t queued() const override { return 0; }
  void onClose(std::function<void(Closed)>) override {}
  // The ids of the event messages so far.
  std::vector<std::int64_t> ids() {
    b24es::MutexLock lock(mutex_);
    std::vector<std::int64_t> out;
    for (std::size_t at = text_.find("id: "); at != std::string::npos;
         at = text_.find("\nid: ", at + 1)) {
      out.push_back(std::stoll(text_.substr(text_[at] == '\n' ? at + 5 : at + 4)));
    }
    return out;
  }

 private:
  b24es::Mutex mutex_;
  std::string text_ GUARDED_BY(mutex_);
};

// The real reader of the suite's backend, made to fail on purpose: the next `failures` scans throw
// a StorageError after handing over two rows, as a read that breaks part way would.
class FailingReader final : public b24es::EventReader {
 public:
  explicit FailingReader(b24es::EventReader& inner) : inner_(inner) {}
  void scanEvents(const b24es::EventFilter& filter,
                  const std::function<bool(b24es::EventRecord&)>& each) override {
    if (failures > 0) {
      --failures;
      int rows = 0;
      inner_.scanEvents(filter, [&](b24es::EventRecord& e) {
        if (++rows > 2) throw b24es::StorageError("injected: the read broke");
        return each(e);
      });
      if (rows <= 2) throw b24es::StorageError("injected: the read broke");
      return;
    }
    inner_.scanEvents(filter, each);
  }
  std::optional<b24es::EventRecord> findEvent(std::int64_t id) override {
    return inner_.findEvent(id);
  }
  b24es::PortalPage listPortals(const b24es::PortalFilter& f) override {
    return inner_.listPortals(f);
  }
  std::optional<b24es::PortalView> findPortalView(const std::string& m) override {
    return inner_.findPortalView(m);
  }
  b24es::EventStats stats() override { return inner_.stats(); }
  b24es::Timeline timeline(const b24es::TimelineQuery& q) override { return inner_.timeline(q); }
  b24es::TokenStateCounts tokenStates(std::int64_t now) override { return inner_.tokenStates(now); }
  std::int64_t committedThrough() override { return inner_.committedThrough(); }
  b24es::RejectionPage listRejections(const b24es::RejectionFilter& f) override {
    return inner_.listRejections(f);
  }
  std::vector<b24es::BindingStateCount> bindingStates() override { return inner_.bindingStates(); }

  std::atomic<int> failures{0};

 private:
  b24es::EventReader& inner_;
};

// Waits (bounded by a count, not asserted in time) until `stream` holds `count` messages.
std::vector<std::int64_t> waitForIds(CapturedStream& stream, std::size_t count) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 3000 && (ids = stream.ids()).size() < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ids;
}

}  // namespace

// Fault injection: reads of the backlog and of new events that break part way are read again
// whole, so the stream still gets every event once, in order.
BOOST_AUTO_TEST_CASE(a_read_that_fails_part_way_leaves_no_gap_and_no_duplicate) {
  b24es::test::TempDir dir;
  b24es::test::FakeClock clock;
  b24es::Settings settings = b24es::test::testSettings(dir);
  settings.db.synchronous = "normal";
  std::unique_ptr<b24es::Storage> storage = b24es::test::openTestStorage(settings, clock);
  b24es::Metrics metrics;
  FailingReader reader(storage->reader());
  b24es::StreamHub hub(reader, metrics, b24es::StreamSettings{});
  b24es::SinkSettings sinkSettings;
  sinkSettings.onCommitted = [&hub](std::int64_t through) { hub.committed(through); };
  std::unique_ptr<b24es::EventSink> sink = storage->openEventSink(
      [](const b24es::IncomingEvent&, const std::optional<b24es::PortalRecord>&) {
        return b24es::Verdict{b24es::Verdict::Action::kStoreAndCreatePortal, {}};
      },
      sinkSettings);
  auto write = [&sink](int n) {
    std::vector<std::int64_t> ids;
    for (int i = 0; i < n; ++i) {
      b24es::IncomingEvent e;
      e.event = "ONCRMDEALADD";
      e.memberId = kMemberA;
      e.domain = kDomainA;
      b24es::IngestOutcome o = sink->write(e);
      BOOST_REQUIRE(o.status == b24es::IngestOutcome::Status::kStored);
      ids.push_back(o.id);
    }
    return ids;
  };
  std::vector<std::int64_t> expected = write(6);
  hub.start();
  auto stream = std::make_shared<CapturedStream>();
  reader.failures = 1;  // the backlog's first page breaks after two rows
  BOOST_REQUIRE(hub.reserve());
  hub.add(b24es::EventFilter{}, 0, stream);
  std::vector<std::int64_t> got = waitForIds(*stream, expected.size());
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
  BOOST_CHECK_EQUAL(reader.failures.load(), 0);
  // Live now: the next read of new events breaks too.
  reader.failures = 1;
  std::vector<std::int64_t> more = write(5);
  expected.insert(expected.end(), more.begin(), more.end());
  got = waitForIds(*stream, expected.size());
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
  BOOST_CHECK_EQUAL(reader.failures.load(), 0);
  hub.stop();
  sink->close();
}
