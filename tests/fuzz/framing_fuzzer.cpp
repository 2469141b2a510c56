// libFuzzer target for server/http_framing.cpp, the request framing the ingest loop does by hand
// on untrusted bytes: a chunked body decoded whole must decode the same when it arrives in
// pieces (cut where the input's first two bytes say), and a header-block search resumed two
// bytes before a cut must find the same end. ASan and UBSan check every access. Run with
// `FUZZ_TARGET=framing_fuzzer scripts/fuzz`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "framing_pieces.h"
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
  return 0;
}
