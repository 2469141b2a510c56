// The HTTP/1 connection module (server/http1_connection.h) byte by byte, with no socket: bytes
// in, requests and answers out, as Envoy's test/common/http/http1/codec_impl_test.cc does. The
// framing rules of SPEC §4 (v2) each have a case, and so does every behaviour the socket tests
// of the listeners rely on (tests/ingest_test.cpp, tests/transport_test.cpp).
#define BOOST_TEST_MODULE http1_connection
#include <boost/test/unit_test.hpp>

#include <Poco/Logger.h>
#include <Poco/Net/HTTPServerParams.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "http1_connection.h"

using namespace b24es;

namespace {

struct Seen {
  std::string method, uri, version, body;
  bool cut = false;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string("<none>") : it->second;
  }
  std::map<std::string, std::string> headers;
};

// Refusals are logged; not here.
Poco::Logger& log() {
  static Poco::Logger& logger = []() -> Poco::Logger& {
    Poco::Logger& l = Poco::Logger::get("http1_connection_test");
    l.setLevel(Poco::Message::PRIO_FATAL);
    return l;
  }();
  return logger;
}

// One connection whose every complete request is answered at once with 200 and the body
// "<METHOD> <URI> <body bytes>".
struct Conn {
  explicit Conn(std::size_t maxBody = 1000) {
    params->setSoftwareVersion("test");
    params->setKeepAlive(true);
    params->setMaxKeepAliveRequests(0);
    Http1Limits limits;
    limits.maxBodyBytes = maxBody;
    http = std::make_unique<Http1Connection>(Poco::Net::SocketAddress("127.0.0.1", 1000),
                                             Poco::Net::SocketAddress("127.0.0.1", 80), *params,
                                             limits, log());
  }

  // Feeds `bytes` in pieces of `piece` bytes, answering what becomes complete after each.
  void feed(const std::string& bytes, std::size_t piece = std::string::npos) {
    for (std::size_t at = 0; at < bytes.size(); at += piece) {
      std::string part = bytes.substr(at, piece);
      http->receive(part.data(), part.size());
      answerAll();
    }
    if (bytes.empty()) answerAll();
  }
  void end() {
    http->receiveEnd();
    answerAll();
  }
  void answerAll() {
    while (http->startRequest(false)) {
      Http1Request& r = http->request();
      Seen s{r.getMethod(), r.getURI(), r.getVersion(), r.body(), r.bodyCut(), {}};
      for (const auto& field : r) s.headers[field.first] = field.second;
      seen.push_back(s);
      Http1Response& response = http->response();
      response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_OK);
      response.setContentType("text/plain");
      std::string text = s.method + " " + s.uri + " " + std::to_string(s.body.size());
      response.setContentLength(static_cast<std::streamsize>(text.size()));
      response.send() << text;
      http->finishRequest(false);
    }
  }
  // What the connection has to send; taken as sent.
  std::string out() {
    std::string text(http->unsentData(), http->unsent());
    http->sent(text.size());
    return text;
  }

  Poco::Net::HTTPServerParams::Ptr params{new Poco::Net::HTTPServerParams};
  std::unique_ptr<Http1Connection> http;
  std::vector<Seen> seen;
};

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const std::string kPost = "POST /in HTTP/1.1\r\nHost: x\r\n";

std::string withLength(const std::string& body) {
  return kPost + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Checks that `text` is refused: nothing handed up, one 400 with the JSON error body that
// closes the connection, and nothing read after it.
void checkRefused(const std::string& name, const std::string& text) {
  BOOST_TEST_CONTEXT(name) {
    Conn c;
    c.feed(text + withLength("after"));
    BOOST_TEST(c.seen.empty());
    std::string out = c.out();
    BOOST_TEST(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0u, out);
    BOOST_TEST(out.find("\r\nConnection: Close\r\n") != std::string::npos, out);
    BOOST_TEST(out.find("Content-Type: application/json") != std::string::npos, out);
    BOOST_TEST(out.find("{\"error\":\"malformed_request\",\"message\":\"") != std::string::npos,
               out);
    BOOST_TEST(count(out, "\r\nDate: ") == 1u, out);  // one answer
    BOOST_TEST(c.http->closing());
    // Whatever arrives later is dropped, never read as a request.
    c.feed(withLength("later"));
    BOOST_TEST(c.seen.empty());
    BOOST_TEST(c.out().empty());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_request_is_handed_up_and_its_answer_serialized) {
  Conn c;
  c.feed(withLength("event=1"));
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.seen[0].method == "POST");
  BOOST_TEST(c.seen[0].uri == "/in");
  BOOST_TEST(c.seen[0].version == "HTTP/1.1");
  BOOST_TEST(c.seen[0].body == "event=1");
  std::string out = c.out();
  BOOST_TEST(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0u, out);
  BOOST_TEST(out.find("\r\nConnection: Keep-Alive\r\n") != std::string::npos, out);
  BOOST_TEST(out.find("\r\nServer: test\r\n") != std::string::npos, out);
  BOOST_TEST(out.find("\r\nDate: ") != std::string::npos, out);
  BOOST_TEST(out.substr(out.size() - 10) == "POST /in 7", out);
  BOOST_TEST(!c.http->closing());
  BOOST_TEST(c.http->idle());
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_handed_up_in_order_and_answered_in_order) {
  Conn c;
  c.feed(withLength("a") + "GET /second HTTP/1.1\r\nHost: x\r\n\r\n" + withLength("ccc"));
  BOOST_REQUIRE(c.seen.size() == 3u);
  BOOST_TEST(c.seen[1].method == "GET");
  BOOST_TEST(c.seen[1].body.empty());
  BOOST_TEST(c.seen[2].body == "ccc");
  std::string out = c.out();
  std::size_t first = out.find("POST /in 1"), second = out.find("GET /second 0"),
              third = out.find("POST /in 3");
  BOOST_TEST((first < second && second < third && third != std::string::npos), out);
}

BOOST_AUTO_TEST_CASE(a_request_arriving_a_byte_at_a_time_is_read_whole) {
  const std::string text = withLength("event=ONCRMDEALADD&x=1") + withLength("b");
  for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{7}}) {
    Conn c;
    c.feed(text, piece);
    BOOST_REQUIRE(c.seen.size() == 2u);
    BOOST_TEST(c.seen[0].body == "event=ONCRMDEALADD&x=1");
    BOOST_TEST(c.seen[1].body == "b");
  }
}

BOOST_AUTO_TEST_CASE(lines_ending_in_lf_alone_are_accepted) {
  Conn c;
  c.feed("POST /in HTTP/1.1\nHost: x\nContent-Length: 3\n\nabcGET / HTTP/1.1\n\n");
  BOOST_REQUIRE(c.seen.size() == 2u);
  BOOST_TEST(c.seen[0].body == "abc");
  BOOST_TEST(c.seen[1].uri == "/");
}

BOOST_AUTO_TEST_CASE(empty_lines_before_a_request_line_are_skipped) {
  Conn c;
  c.feed("\r\n\r\n\n" + withLength("x"));
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.seen[0].body == "x");
}

BOOST_AUTO_TEST_CASE(header_names_are_matched_in_any_letter_case) {
  Conn c;
  c.feed(kPost + "cOnTeNt-LeNgTh: 2\r\n\r\nokGET / HTTP/1.1\r\n\r\n");
  BOOST_REQUIRE(c.seen.size() == 2u);
  BOOST_TEST(c.seen[0].body == "ok");
  BOOST_TEST(c.seen[0].header("cOnTeNt-LeNgTh") == "2");
}

BOOST_AUTO_TEST_CASE(header_values_lose_surrounding_whitespace_and_keep_obs_text) {
  Conn c;
  c.feed("GET / HTTP/1.1\r\nX-A: \t v a l \t \r\nX-B: caf\xc3\xa9\r\nX-C:\r\n\r\n");
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.seen[0].header("X-A") == "v a l");
  BOOST_TEST(c.seen[0].header("X-B") == "caf\xc3\xa9");
  BOOST_TEST(c.seen[0].header("X-C") == "");
}

BOOST_AUTO_TEST_CASE(chunked_body_with_extensions_and_trailers_is_decoded) {
  Conn c;
  c.feed(kPost +
             "Transfer-Encoding: chunked\r\n\r\n"
             "5;name=value\r\nhello\r\n"
             "6 ; a=\"b c\"\r\n world\r\n"
             "A\r\n0123456789\r\n"
             "0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n" +
             withLength("next"),
         3);
  BOOST_REQUIRE(c.seen.size() == 2u);
  BOOST_TEST(c.seen[0].body == "hello world0123456789");
  BOOST_TEST(c.seen[1].body == "next");  // read from the right place after the trailers
}

BOOST_AUTO_TEST_CASE(transfer_encoding_chunked_in_any_letter_case_is_chunked) {
  Conn c;
  c.feed(kPost + "transfer-encoding: ChUnKeD\r\n\r\n2\r\nab\r\n0\r\n\r\n");
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.seen[0].body == "ab");
}

BOOST_AUTO_TEST_CASE(expect_100_continue_gets_continue_before_the_body_once) {
  Conn c;
  c.feed(kPost + "Expect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  BOOST_TEST(c.seen.empty());
  BOOST_TEST(c.out() == "HTTP/1.1 100 Continue\r\n\r\n");
  c.feed("ab");
  BOOST_TEST(c.out().empty());  // once
  c.feed("cd");
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.seen[0].body == "abcd");
  BOOST_TEST(c.out().rfind("HTTP/1.1 200 OK", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(expect_100_continue_with_the_body_already_there_gets_no_continue) {
  Conn c;
  c.feed(kPost + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nab");
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.out().rfind("HTTP/1.1 200 OK", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(http_1_0_gets_no_continue_and_an_answer_in_1_0_that_closes) {
  Conn c;
  c.feed("POST /in HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  BOOST_TEST(c.out().empty());
  c.feed("ab" + withLength("never"));
  BOOST_REQUIRE(c.seen.size() == 1u);
  std::string out = c.out();
  BOOST_TEST(out.rfind("HTTP/1.0 200 OK\r\n", 0) == 0u, out);
  BOOST_TEST(out.find("Connection: Close") != std::string::npos, out);
  BOOST_TEST(c.http->closing());
}

BOOST_AUTO_TEST_CASE(http_1_0_with_keep_alive_stays_open) {
  Conn c;
  c.feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
  BOOST_REQUIRE(c.seen.size() == 2u);
  std::string out = c.out();
  BOOST_TEST(out.rfind("HTTP/1.0 200 OK\r\n", 0) == 0u, out);
  BOOST_TEST(out.find("Connection: Keep-Alive") != std::string::npos, out);
  BOOST_TEST(c.http->closing());  // the second had no keep-alive
}

BOOST_AUTO_TEST_CASE(connection_close_closes_after_the_answer) {
  Conn c;
  c.feed("GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
  BOOST_TEST(c.seen.size() == 1u);
  BOOST_TEST(c.http->closing());
}

BOOST_AUTO_TEST_CASE(requests_sent_before_a_half_close_are_all_answered_and_the_last_closes) {
  Conn c;
  c.http->receive(withLength("a").data(), withLength("a").size());
  const std::string second = withLength("bb");
  c.http->receive(second.data(), second.size());
  c.end();
  BOOST_REQUIRE(c.seen.size() == 2u);
  std::string out = c.out();
  BOOST_TEST(count(out, "Connection: Keep-Alive") == 1u, out);
  BOOST_TEST(count(out, "Connection: Close") == 1u, out);
  BOOST_TEST(c.http->closing());
}

BOOST_AUTO_TEST_CASE(a_half_close_inside_the_headers_is_refused) {
  Conn c;
  c.feed("POST /in HTTP/1.1\r\nHost:");
  c.end();
  BOOST_TEST(c.seen.empty());
  BOOST_TEST(c.out().find("malformed_request") != std::string::npos);
  BOOST_TEST(c.http->closing());
}

BOOST_AUTO_TEST_CASE(a_body_cut_short_by_a_half_close_reaches_the_handler_short) {
  Conn c;
  c.feed(kPost + "Content-Length: 10\r\n\r\nabc");
  BOOST_TEST(c.seen.empty());
  c.end();
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.seen[0].body == "abc");  // the handler refuses it (400 malformed_body)
}

BOOST_AUTO_TEST_CASE(a_chunked_body_cut_short_by_a_half_close_is_refused) {
  Conn c;
  c.feed(kPost + "Transfer-Encoding: chunked\r\n\r\n5\r\nab");
  c.end();
  BOOST_TEST(c.seen.empty());
  BOOST_TEST(c.out().find("\"error\":\"malformed_body\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_body_over_the_limit_is_not_read_and_the_connection_closes) {
  Conn c(10);
  c.feed(kPost + "Content-Length: 11\r\n\r\n" + "GET /smuggled HTTP/1.1\r\n\r\n");
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.seen[0].cut);
  BOOST_TEST(c.seen[0].header("Content-Length") == "11");  // for the handler's 413
  BOOST_TEST(c.out().find("Connection: Close") != std::string::npos);
  BOOST_TEST(c.http->closing());
}

BOOST_AUTO_TEST_CASE(a_chunked_body_over_the_limit_reaches_the_handler_one_byte_long) {
  Conn c(10);
  c.feed(kPost + "Transfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n");
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.seen[0].cut);
  BOOST_TEST(c.seen[0].body.size() == 11u);
  BOOST_TEST(c.http->closing());
}

// SPEC §4 v2 (issue 11): the query listener answered a GET's body as a second request.
BOOST_AUTO_TEST_CASE(a_get_with_a_body_holding_a_request_gets_exactly_one_answer) {
  const std::string inner = "GET /api/v1/portals HTTP/1.1\r\nHost: x\r\n\r\n";
  Conn c;
  c.feed("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(inner.size()) +
         "\r\n\r\n" + inner);
  BOOST_REQUIRE(c.seen.size() == 1u);
  BOOST_TEST(c.seen[0].uri == "/healthz");
  BOOST_TEST(c.seen[0].body == inner);
  BOOST_TEST(count(c.out(), "HTTP/1.1 200") == 1u);
  BOOST_TEST(c.http->idle());
}

BOOST_AUTO_TEST_CASE(a_head_answer_has_the_length_and_no_body) {
  Conn c;
  c.feed("HEAD / HTTP/1.1\r\n\r\n");
  std::string out = c.out();
  BOOST_TEST(out.find("Content-Length: 8\r\n") != std::string::npos, out);  // "HEAD / 0"
  BOOST_TEST(out.substr(out.size() - 4) == "\r\n\r\n", out);
}

BOOST_AUTO_TEST_CASE(an_answer_waits_while_the_request_is_being_handled) {
  Conn c;
  const std::string two = withLength("a") + withLength("b");
  c.http->receive(two.data(), two.size());
  BOOST_REQUIRE(c.http->startRequest(false));
  BOOST_TEST(c.http->handling());
  BOOST_TEST(!c.http->startRequest(false));  // one at a time
  c.http->response().setContentLength(0);
  c.http->response().send();
  c.http->finishRequest(false);
  BOOST_TEST(c.http->inputPending());
  BOOST_REQUIRE(c.http->startRequest(true));  // stopping: this answer closes
  c.http->response().setContentLength(0);
  c.http->response().send();
  c.http->finishRequest(true);
  BOOST_TEST(c.http->closing());
  std::string out = c.out();
  BOOST_TEST(count(out, "Connection: Keep-Alive") == 1u);
  BOOST_TEST(count(out, "Connection: Close") == 1u);
}

BOOST_AUTO_TEST_CASE(a_handler_failure_is_refused_with_its_status_and_closes) {
  Conn c;
  const std::string one = withLength("a") + withLength("b");
  c.http->receive(one.data(), one.size());
  BOOST_REQUIRE(c.http->startRequest(false));
  c.http->refuse({500, "internal_error", "failed"}, "test");
  BOOST_TEST(!c.http->handling());
  BOOST_TEST(c.http->closing());
  std::string out = c.out();
  BOOST_TEST(out.rfind("HTTP/1.1 500", 0) == 0u, out);
  BOOST_TEST(out.find("{\"error\":\"internal_error\",\"message\":\"failed\"}") !=
             std::string::npos);
}

// SPEC §4 (v2), RFC 9112 §5, §6.1-6.3, §7.1: each message a server could read two ways.
BOOST_AUTO_TEST_CASE(each_ambiguous_framing_gets_400_and_closes) {
  checkRefused("two different Content-Length",
               kPost + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab");
  checkRefused("two equal Content-Length",
               kPost + "Content-Length: 2\r\nContent-Length: 2\r\n\r\nab");
  checkRefused("two Content-Length in other letter cases",
               kPost + "content-length: 2\r\nCONTENT-LENGTH: 2\r\n\r\nab");
  checkRefused("Content-Length listing two values", kPost + "Content-Length: 2, 2\r\n\r\nab");
  checkRefused("whitespace before the colon", kPost + "Content-Length : 2\r\n\r\nab");
  checkRefused("a tab before the colon", kPost + "Content-Length\t: 2\r\n\r\nab");
  checkRefused("a header line without a colon", kPost + "Content-Length 2\r\n\r\nab");
  checkRefused("a header line with no name", kPost + ": x\r\n\r\n");
  for (const char* length :
       {"+2", "02", "0x2", "-1", "2x", "", " ", "2 2", "1e1", "99999999999999999999"}) {
    checkRefused(std::string("Content-Length: ") + length,
                 kPost + "Content-Length: " + length + "\r\n\r\nab");
  }
  checkRefused("Transfer-Encoding on HTTP/1.0",
               "POST /in HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n");
  checkRefused(
      "Transfer-Encoding and Content-Length",
      kPost + "Transfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\nab\r\n0\r\n\r\n");
  checkRefused(
      "Content-Length and Transfer-Encoding",
      kPost + "Content-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n");
  checkRefused("Transfer-Encoding gzip", kPost + "Transfer-Encoding: gzip\r\n\r\n");
  checkRefused("Transfer-Encoding gzip, chunked",
               kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n");
  checkRefused("Transfer-Encoding chunked, chunked",
               kPost + "Transfer-Encoding: chunked, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n");
  checkRefused("two Transfer-Encoding fields",
               kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  checkRefused("chunk size 0x10",
               kPost + "Transfer-Encoding: chunked\r\n\r\n0x10\r\n0123456789abcdef\r\n0\r\n\r\n");
  checkRefused("chunk size zz", kPost + "Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n");
  checkRefused("chunk size with a sign", kPost + "Transfer-Encoding: chunked\r\n\r\n+2\r\nab\r\n");
  checkRefused("chunk size after a space",
               kPost + "Transfer-Encoding: chunked\r\n\r\n 2\r\nab\r\n");
  checkRefused("chunk data longer than its size",
               kPost + "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n");
  checkRefused("a bare CR after a chunk size",
               kPost + "Transfer-Encoding: chunked\r\n\r\n2\rX\r\nab\r\n0\r\n\r\n");
  checkRefused("NUL in a header value", kPost + "X-A: a" + std::string(1, '\0') + "b\r\n\r\n");
  checkRefused("NUL in a header name", kPost + "X-" + std::string(1, '\0') + ": b\r\n\r\n");
  checkRefused("a bare CR in a header value", kPost + "X-A: a\rb\r\n\r\n");
  checkRefused("DEL in a header value", kPost + "X-A: a\x7f\r\n\r\n");
  checkRefused("an escape in a header value", kPost + "X-A: \x1b[31m\r\n\r\n");
  checkRefused("a folded header line", kPost + "X-A: a\r\n b\r\n\r\n");
  checkRefused("a folded line first", "POST /in HTTP/1.1\r\n Host: x\r\n\r\n");
  checkRefused("a header name with a slash", kPost + "X/A: a\r\n\r\n");
  checkRefused("two spaces in the request line", "POST  /in HTTP/1.1\r\n\r\n");
  checkRefused("a tab in the request line", "POST\t/in HTTP/1.1\r\n\r\n");
  checkRefused("a lower-case version", "POST /in http/1.1\r\n\r\n");
  checkRefused("HTTP/2.0", "POST /in HTTP/2.0\r\n\r\n");
  checkRefused("no version", "GET /\r\n\r\n");
  checkRefused("a method alone", "POST\r\n\r\n");
  checkRefused("a control character in the target", "GET /a\x01 HTTP/1.1\r\n\r\n");
  checkRefused("a method of 33 bytes", std::string(33, 'M') + " / HTTP/1.1\r\n\r\n");
  checkRefused("a header name of 257 bytes", kPost + std::string(257, 'N') + ": v\r\n\r\n");
  checkRefused("a header value of 8193 bytes", kPost + "X: " + std::string(8193, 'v') + "\r\n\r\n");
  std::string many = kPost;
  for (int i = 0; i < 100; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  checkRefused("101 header fields", many + "\r\n");
}

BOOST_AUTO_TEST_CASE(header_blocks_over_64_kib_are_refused_before_they_end) {
  Conn c;
  std::string head = kPost;
  while (head.size() <= 64 * 1024) head += "X-Filler: " + std::string(1000, 'f') + "\r\n";
  c.feed(head);  // no empty line yet: refused for its size alone
  BOOST_TEST(c.seen.empty());
  BOOST_TEST(c.out().find("malformed_request") != std::string::npos);
  BOOST_TEST(c.http->closing());
}

BOOST_AUTO_TEST_CASE(limits_at_their_boundary_are_accepted) {
  Conn c;
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  c.feed(many + "\r\n");
  c.feed(std::string(32, 'M') + " / HTTP/1.1\r\n" + std::string(256, 'N') + ": " +
         std::string(8192, 'v') + "\r\n\r\n");
  c.feed(kPost + "Content-Length: 0\r\n\r\n");
  BOOST_TEST(c.seen.size() == 3u);
  BOOST_TEST(!c.http->closing());
}

BOOST_AUTO_TEST_CASE(bytes_after_a_closing_answer_are_counted_and_dropped) {
  Conn c;
  c.feed("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  c.feed("GET /b HTTP/1.1\r\n\r\n");
  BOOST_TEST(c.seen.size() == 1u);
  BOOST_TEST(c.http->dropped() == 19u);
  BOOST_TEST(!c.http->inputPending());
}

// Issue 15: a streamed answer (the live event stream) is its head with no length, then pieces
// as they come; no further request is read, and the connection closes after the last piece.
BOOST_AUTO_TEST_CASE(a_streamed_answer_sends_its_head_then_its_pieces_and_closes_at_the_end) {
  Conn c;
  const std::string get = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
  c.http->receive(get.data(), get.size());
  BOOST_REQUIRE(c.http->startRequest(false));
  Http1Response& response = c.http->response();
  response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_OK);
  response.setContentType("text/event-stream");
  c.http->startStream();
  BOOST_TEST(c.http->streaming());
  BOOST_TEST(!c.http->idle());
  BOOST_TEST(!c.http->closing());
  std::string head = c.out();
  BOOST_TEST(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0u, head);
  BOOST_TEST(head.find("Content-Length") == std::string::npos, head);
  BOOST_TEST(head.find("Transfer-Encoding") == std::string::npos, head);
  BOOST_TEST(head.find("\r\nConnection: Close\r\n") != std::string::npos, head);
  BOOST_TEST(head.find("\r\n\r\n") == head.size() - 4, head);
  // A pipelined request after it is dropped, not answered.
  const std::string more = "GET /other HTTP/1.1\r\nHost: x\r\n\r\n";
  c.http->receive(more.data(), more.size());
  BOOST_TEST(!c.http->startRequest(false));
  BOOST_TEST(c.http->dropped() == more.size());
  BOOST_TEST(c.http->wantsInput());  // to see the client's FIN
  c.http->appendStream("id: 1\ndata: {}\n\n");
  c.http->appendStream(": keep-alive\n\n");
  BOOST_TEST(c.out() == "id: 1\ndata: {}\n\n: keep-alive\n\n");
  c.http->endStream();
  BOOST_TEST(!c.http->streaming());
  BOOST_TEST(c.http->closing());
  BOOST_TEST(c.out().empty());
}

// Issue 15: the rejection observer hears of every 4xx answer, a refusal of unframeable input
// included, with the error code and the client; 2xx answers are not rejections.
BOOST_AUTO_TEST_CASE(the_rejection_observer_hears_of_refusals_and_4xx_answers_only) {
  std::vector<std::string> heard;
  Poco::Net::HTTPServerParams::Ptr params(new Poco::Net::HTTPServerParams);
  Http1Limits limits;
  limits.onRejection = [&heard](int status, const RequestNotes& notes) {
    heard.push_back(std::to_string(status) + " " + notes.error + " " + notes.client);
  };
  auto connection = [&] {
    return std::make_unique<Http1Connection>(Poco::Net::SocketAddress("192.0.2.5", 1000),
                                             Poco::Net::SocketAddress("127.0.0.1", 80), *params,
                                             limits, log());
  };
  // A refusal of the connection itself: two Content-Length headers.
  auto refused = connection();
  const std::string twice = kPost + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx";
  refused->receive(twice.data(), twice.size());
  BOOST_TEST(!refused->startRequest(false));
  BOOST_REQUIRE_EQUAL(heard.size(), 1u);
  BOOST_TEST(heard[0] == "400 malformed_request 192.0.2.5");
  // A handler's answers: 404 through sendError, then a 200.
  auto served = connection();
  const std::string two = withLength("a") + withLength("b");
  served->receive(two.data(), two.size());
  BOOST_REQUIRE(served->startRequest(false));
  served->response().setKeepAlive(true);
  sendError(served->response(), {404, "not_found", "no such path"});
  served->finishRequest(false);
  BOOST_REQUIRE(served->startRequest(false));
  served->response().setStatusAndReason(Poco::Net::HTTPResponse::HTTP_OK);
  served->response().setContentLength(0);
  served->response().send();
  served->finishRequest(false);
  BOOST_REQUIRE_EQUAL(heard.size(), 2u);
  BOOST_TEST(heard[1] == "404 not_found 192.0.2.5");
}
