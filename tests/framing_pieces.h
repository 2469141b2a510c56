// Feeds ChunkedDecoder (server/http_framing.h) the way the ingest loop does: each call sees what
// has arrived so far, and what the previous calls used is dropped. Shared by
// tests/http_framing_test.cpp and tests/fuzz/framing_fuzzer.cpp.
#pragma once

#include <string>
#include <vector>

#include "http_framing.h"

namespace b24es::test {

struct DecodedPieces {
  ChunkedDecoder::Result result;
  std::string body;
  std::size_t used;  // bytes of the input consumed
};

// Decodes `text` arriving in pieces that end at `cuts` (ascending, at most text.size()).
inline DecodedPieces decodeInPieces(const std::string& text, const std::vector<std::size_t>& cuts,
                                    std::size_t limit) {
  ChunkedDecoder decoder(limit);
  std::string arrived, body;
  std::size_t from = 0, used = 0;
  ChunkedDecoder::Result result = ChunkedDecoder::Result::kIncomplete;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(text.size());
  for (std::size_t end : ends) {
    arrived.append(text, from, end - from);
    from = end;
    std::size_t pos = 0;
    result = decoder.decode(arrived, pos, body);
    arrived.erase(0, pos);
    used += pos;
    if (result != ChunkedDecoder::Result::kIncomplete) break;
  }
  return {result, body, used};
}

}  // namespace b24es::test
