// Unit tests of server/http_framing.cpp: where a header block ends and chunked-body decoding,
// whole and in pieces (the HTTP/1 connection feeds them whatever each read brought).
#define BOOST_TEST_MODULE http_framing
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "framing_pieces.h"
#include "http_framing.h"

using b24es::ChunkedDecoder;
using b24es::headerEnd;
using Result = ChunkedDecoder::Result;

namespace {

using Decoded = b24es::test::DecodedPieces;

Decoded decodeInPieces(const std::string& text, const std::vector<std::size_t>& cuts,
                       std::size_t limit = 1000) {
  return b24es::test::decodeInPieces(text, cuts, limit);
}

Decoded decodeWhole(const std::string& text, std::size_t limit = 1000) {
  return decodeInPieces(text, {}, limit);
}

}  // namespace

BOOST_AUTO_TEST_CASE(header_end_is_found_after_crlf_or_lf_lines) {
  BOOST_TEST(headerEnd("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody", 0) == 27u);
  BOOST_TEST(headerEnd("GET / HTTP/1.1\nHost: x\n\nbody", 0) == 24u);
  BOOST_TEST(headerEnd("GET / HTTP/1.1\r\nHost: x\n\r\n", 0) == 26u);
  BOOST_TEST(headerEnd("GET / HTTP/1.1\r\nHost: x\r\n", 0) == std::string::npos);
  BOOST_TEST(headerEnd("GET / HTTP/1.1\r\nHost: x\r\n\r", 0) == std::string::npos);
  BOOST_TEST(headerEnd("", 0) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(header_end_search_resumes_two_bytes_back) {
  const std::string head = "POST /e HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
  for (std::size_t cut = 1; cut < head.size(); ++cut) {
    BOOST_TEST_CONTEXT("cut at " << cut) {
      std::string first = head.substr(0, cut);
      BOOST_TEST(headerEnd(first, 0) == std::string::npos);
      std::size_t from = first.size() < 2 ? 0 : first.size() - 2;
      BOOST_TEST(headerEnd(head, from) == head.size());
    }
  }
}

BOOST_AUTO_TEST_CASE(chunks_with_extensions_and_trailers_decode_to_the_body) {
  const std::string text =
      "5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
  Decoded d = decodeWhole(text);
  BOOST_TEST((d.result == Result::kDone));
  BOOST_TEST(d.body == "hello 0123456789");
  BOOST_TEST(text.substr(d.used) == "NEXT");  // the next request starts there
}

BOOST_AUTO_TEST_CASE(lf_line_endings_and_upper_case_hex_are_accepted) {
  Decoded d = decodeWhole("A\nABCDEFGHIJ\n0\n\n");
  BOOST_TEST((d.result == Result::kDone));
  BOOST_TEST(d.body == "ABCDEFGHIJ");
}

BOOST_AUTO_TEST_CASE(every_split_of_the_input_decodes_the_same) {
  const std::string text = "3;x\r\nabc\r\n10\r\n0123456789abcdef\r\n2\r\nyz\r\n0\r\nT: v\r\n\r\n";
  Decoded whole = decodeWhole(text);
  BOOST_REQUIRE((whole.result == Result::kDone));
  for (std::size_t a = 0; a <= text.size(); ++a) {
    for (std::size_t b = a; b <= text.size(); b += 3) {
      BOOST_TEST_CONTEXT("cuts at " << a << " and " << b) {
        Decoded d = decodeInPieces(text, {a, b});
        BOOST_TEST((d.result == Result::kDone));
        BOOST_TEST(d.body == whole.body);
        BOOST_TEST(d.used == whole.used);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(incomplete_input_asks_for_more) {
  for (const std::string& text :
       {std::string("5\r\nhel"), std::string("5\r\nhello"), std::string("5\r\nhello\r"),
        std::string("5\r\nhello\r\n0\r\n"), std::string("5"), std::string("")}) {
    BOOST_TEST_CONTEXT(text) { BOOST_TEST((decodeWhole(text).result == Result::kIncomplete)); }
  }
}

BOOST_AUTO_TEST_CASE(malformed_chunks_are_refused) {
  for (const std::string& text :
       {std::string("zz\r\nabc\r\n0\r\n\r\n"), std::string("\r\nabc\r\n"),
        std::string("3\r\nabcXY0\r\n\r\n"), std::string("1234567890abcdef0\r\n"),
        std::string("3;") + std::string(ChunkedDecoder::kMaxLine, 'e') + "\r\nabc\r\n",
        std::string(ChunkedDecoder::kMaxLine + 1, '1')}) {
    BOOST_TEST_CONTEXT(text.substr(0, 40)) {
      BOOST_TEST((decodeWhole(text).result == Result::kMalformed));
    }
  }
  std::string trailers = "0\r\n";
  while (trailers.size() <= ChunkedDecoder::kMaxTrailer) trailers += "X-T: vvvvvvvvvvvvvvvv\r\n";
  BOOST_TEST((decodeWhole(trailers + "\r\n").result == Result::kMalformed));
}

BOOST_AUTO_TEST_CASE(a_body_over_the_limit_stops_one_byte_past_it) {
  Decoded d = decodeWhole("8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n", 10);
  BOOST_TEST((d.result == Result::kTooLarge));
  BOOST_TEST(d.body == "0123456789a");
  // Also when the chunk that crosses the limit has not fully arrived.
  Decoded partial = decodeInPieces("8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n", {20}, 10);
  BOOST_TEST((partial.result == Result::kTooLarge));
  BOOST_TEST(partial.body.size() == 11u);
}

// Issue 11: "0x10" was read as a chunk of size 0 and the rest as trailers.
BOOST_AUTO_TEST_CASE(a_chunk_size_that_is_not_plain_hex_is_malformed) {
  for (const std::string size : {"0x10", "+5", " 5", "5 ", "5\rx", "5;a\x01", "-5", "5x"}) {
    BOOST_TEST_CONTEXT(size) {
      Decoded d = decodeWhole(size + "\r\nhello\r\n0\r\n\r\n");
      BOOST_TEST((d.result == Result::kMalformed));
    }
  }
  for (const std::string size : {"5", "05", "5;a=b", "5 ;a", "5\t; a = \"b c\""}) {
    BOOST_TEST_CONTEXT(size) {
      Decoded d = decodeWhole(size + "\r\nhello\r\n0\r\n\r\n");
      BOOST_TEST((d.result == Result::kDone));
      BOOST_TEST(d.body == "hello");
    }
  }
}
