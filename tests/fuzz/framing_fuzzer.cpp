// libFuzzer target for the request framing done by hand on untrusted bytes: the HTTP/1
// connection module (server/http1_connection.cpp, which both listeners run) and its chunked
// decoder and header-block search (server/http_framing.cpp). The same bytes fed whole and in
// three pieces (cut where the input's first two bytes say) must hand up the same requests and
// end in the same state; a chunked body decoded whole must decode the same in pieces; a
// header-block search resumed two bytes before a cut must find the same end. ASan and UBSan
// check every access. Run with `FUZZ_TARGET=framing_fuzzer scripts/fuzz`.
#include <Poco/Logger.h>
#include <Poco/Net/HTTPServerParams.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "framing_pieces.h"
#include "http1_connection.h"
#include "http_framing.h"

namespace {

using b24es::ChunkedDecoder;
using Result = ChunkedDecoder::Result;
using Decoded = b24es::test::DecodedPieces;

Decoded decode(const std::string& text, const std::vector<std::size_t>& cuts, std::size_t limit) {
  Decoded d = b24es::test::decodeInPieces(text, cuts, limit);
  if (d.used > text.size() || d.body.size() > limit + 1) std::abort();
  return d;
}

struct Fed {
  std::vector<std::string> requests;  // method, target, version, body and whether it was cut
  bool closing = false;
};

// Feeds `text` to a connection in pieces ending at `cuts`, then a half-close, answering every
// request it hands up at once.
Fed feed(const std::string& text, const std::vector<std::size_t>& cuts, std::size_t limit) {
  static Poco::Net::HTTPServerParams::Ptr params(new Poco::Net::HTTPServerParams);
  static Poco::Logger& log = []() -> Poco::Logger& {
    Poco::Logger& l = Poco::Logger::get("framing_fuzzer");
    l.setLevel(Poco::Message::PRIO_FATAL);
    return l;
  }();
  b24es::Http1Limits limits;
  limits.maxBodyBytes = limit;
  b24es::Http1Connection connection(Poco::Net::SocketAddress("127.0.0.1", 1),
                                    Poco::Net::SocketAddress("127.0.0.1", 2), *params, limits, log);
  Fed fed;
  auto answer = [&] {
    while (connection.startRequest(false)) {
      b24es::Http1Request& r = connection.request();
      if (r.body().size() > limit + 1) std::abort();
      fed.requests.push_back(r.getMethod() + ' ' + r.getURI() + ' ' + r.getVersion() + ' ' +
                             (r.bodyCut() ? "cut " : "") + r.body());
      connection.response().setContentLength(0);
      connection.response().send();
      connection.finishRequest(false);
      if (connection.unsent() == 0) std::abort();
    }
    connection.sent(connection.unsent());
  };
  std::vector<std::size_t> ends = cuts;
  ends.push_back(text.size());
  std::size_t from = 0;
  for (std::size_t end : ends) {
    connection.receive(text.data() + from, end - from);
    from = end;
    answer();
  }
  connection.receiveEnd();
  answer();
  fed.closing = connection.closing();
  // After the half-close every request was answered or refused: none is left half read.
  if (!fed.closing && connection.inputPending()) std::abort();
  return fed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::size_t a = data[0] % (text.size() + 1);
  const std::size_t b = a + data[1] % (text.size() - a + 1);
  const std::size_t limit = 64 + data[1];

  Decoded whole = decode(text, {}, limit);
  Decoded pieces = decode(text, {a, b}, limit);
  if (whole.result != pieces.result || whole.body != pieces.body) std::abort();
  if (whole.result == Result::kDone && whole.used != pieces.used) std::abort();

  const std::size_t end = b24es::headerEnd(text, 0);
  if (end != std::string::npos && (end > text.size() || end < 2)) std::abort();
  if (b24es::headerEnd(text.substr(0, a), 0) == std::string::npos &&
      b24es::headerEnd(text, a < 2 ? 0 : a - 2) != end) {
    std::abort();
  }

  Fed fedWhole = feed(text, {}, limit);
  Fed fedPieces = feed(text, {a, b}, limit);
  if (fedWhole.requests != fedPieces.requests || fedWhole.closing != fedPieces.closing) {
    std::abort();
  }
  return 0;
}
