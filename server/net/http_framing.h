// Request framing the HTTP/1 connection (http1_connection.cpp) does by hand over bytes it has
// buffered: where a header block ends, and chunked bodies. Pure functions of their input, unit
// tested (tests/http_framing_test.cpp) and fuzzed (tests/fuzz/framing_fuzzer.cpp). Written by
// hand: POCO's HTTPChunkedInputStream and its header reading work only on a session's socket.
#pragma once

#include <cstddef>
#include <string>

namespace b24es {

// Where the header block that starts `text` ends (just past its empty line), searching from
// `from` (a previous call's text.size() - 2, when more bytes arrived); npos while incomplete.
// Lines may end in CRLF or, as POCO also accepts, in LF.
std::size_t headerEnd(const std::string& text, std::size_t from);

// Decodes a chunked request body (RFC 9112 §7.1) as it arrives, resuming where the previous
// call stopped, so a body sent in many small pieces costs no more than one sent at once. Chunk
// extensions and trailer fields are read and ignored.
class ChunkedDecoder {
 public:
  enum class Result { kIncomplete, kDone, kTooLarge, kMalformed };

  // A chunk-size line (with its extensions) and the trailer fields are limited too.
  static constexpr std::size_t kMaxLine = 4096;
  static constexpr std::size_t kMaxTrailer = 64 * 1024;

  // `limit`: the most body bytes accepted.
  explicit ChunkedDecoder(std::size_t limit) : limit_(limit) {}

  // Decodes from text[pos] on, appending to `body` and advancing `pos` past what it used; call
  // again with more text (and the same `body`) after kIncomplete. On kTooLarge `body` holds
  // limit + 1 bytes.
  Result decode(const std::string& text, std::size_t& pos, std::string& body);

 private:
  enum class Phase { kSize, kData, kDataEnd, kTrailer };

  Result waitForLine(const std::string& text, std::size_t pos) const;

  const std::size_t limit_;
  Phase phase_ = Phase::kSize;
  std::size_t left_ = 0;     // bytes of the current chunk still to come
  std::size_t trailer_ = 0;  // bytes of trailer fields so far
};

}  // namespace b24es
