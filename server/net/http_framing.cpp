#include "http_framing.h"

#include <algorithm>
#include <cctype>

namespace b24es {
namespace {

// What may follow a chunk size on its line (RFC 9112 §7.1.1): nothing, or whitespace and ";"
// with extensions (read and ignored), then CRLF or LF. Anything else ("0x10": the size would be
// read as 0 and the rest as trailers) makes the body malformed; a CR only before the LF, and
// no control character in the extensions.
bool sizeLineRest(const std::string& text, std::size_t from, std::size_t eol) {
  std::size_t end = eol > from && text[eol - 1] == '\r' ? eol - 1 : eol;
  std::size_t i = from;
  while (i < end && (text[i] == ' ' || text[i] == '\t')) ++i;
  if (i == end) return i == from;  // whitespace only before ";"
  if (text[i] != ';') return false;
  for (; i < end; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c != '\t' && (c < 0x20 || c == 0x7F)) return false;
  }
  return true;
}

}  // namespace

std::size_t headerEnd(const std::string& text, std::size_t from) {
  for (std::size_t i = text.find('\n', from); i != std::string::npos; i = text.find('\n', i + 1)) {
    if (i + 1 < text.size() && text[i + 1] == '\n') return i + 2;
    if (i + 2 < text.size() && text[i + 1] == '\r' && text[i + 2] == '\n') return i + 3;
  }
  return std::string::npos;
}

ChunkedDecoder::Result ChunkedDecoder::decode(const std::string& text, std::size_t& pos,
                                              std::string& body) {
  for (;;) {
    switch (phase_) {
      case Phase::kSize: {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) return waitForLine(text, pos);
        std::size_t digits = pos;
        while (digits < eol && std::isxdigit(static_cast<unsigned char>(text[digits]))) ++digits;
        if (digits == pos || digits - pos > 15 || eol - pos > kMaxLine) return Result::kMalformed;
        if (!sizeLineRest(text, digits, eol)) return Result::kMalformed;
        left_ = std::stoull(text.substr(pos, digits - pos), nullptr, 16);
        pos = eol + 1;
        phase_ = left_ == 0 ? Phase::kTrailer : Phase::kData;
        break;
      }
      case Phase::kData: {
        std::size_t n = std::min(left_, text.size() - pos);
        if (body.size() + n > limit_) {
          // Cut one byte past the limit: the handler sees a body that is too long.
          body.append(text, pos, limit_ + 1 - body.size());
          return Result::kTooLarge;
        }
        body.append(text, pos, n);
        pos += n;
        left_ -= n;
        if (left_ > 0) return Result::kIncomplete;
        phase_ = Phase::kDataEnd;
        break;
      }
      case Phase::kDataEnd:
        if (pos < text.size() && text[pos] == '\n') {
          pos += 1;
        } else if (text.size() - pos < 2) {
          return Result::kIncomplete;
        } else if (text.compare(pos, 2, "\r\n") == 0) {
          pos += 2;
        } else {
          return Result::kMalformed;
        }
        phase_ = Phase::kSize;
        break;
      case Phase::kTrailer: {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) return waitForLine(text, pos);
        bool empty = eol == pos || (eol == pos + 1 && text[pos] == '\r');
        trailer_ += eol + 1 - pos;
        if (trailer_ > kMaxTrailer) return Result::kMalformed;
        pos = eol + 1;
        if (empty) return Result::kDone;
        break;
      }
    }
  }
}

ChunkedDecoder::Result ChunkedDecoder::waitForLine(const std::string& text, std::size_t pos) const {
  return text.size() - pos > kMaxLine ? Result::kMalformed : Result::kIncomplete;
}

}  // namespace b24es
