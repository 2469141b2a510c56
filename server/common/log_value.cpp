#include "log_value.h"

#include <algorithm>

namespace b24es {
namespace {

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0. Written by hand: POCO's UTF8Encoding
// accepts overlong forms, and the standard library has no UTF-8 validation.
std::size_t sequenceLength(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (s.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  }
  return n;
}

void appendEscaped(std::string& out, unsigned char c) {
  static const char kHex[] = "0123456789abcdef";
  switch (c) {
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default:
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
  }
}

}  // namespace

std::string logValue(std::string_view value, std::size_t maxChars) {
  std::string out;
  out.reserve(std::min(value.size(), maxChars) + 8);
  std::size_t chars = 0;
  std::size_t i = 0;
  while (i < value.size()) {
    if (chars == maxChars) {
      out += "...";
      break;
    }
    const std::size_t n = sequenceLength(value.substr(i));
    const auto b0 = static_cast<unsigned char>(value[i]);
    const bool c1 = n == 2 && b0 == 0xc2 && static_cast<unsigned char>(value[i + 1]) < 0xa0;
    if (n == 0) {
      appendEscaped(out, b0);
      i += 1;
    } else if (n == 1 && (b0 < 0x20 || b0 == 0x7f)) {
      appendEscaped(out, b0);
      i += 1;
    } else if (c1) {
      appendEscaped(out, static_cast<unsigned char>(value[i + 1]));  // the code point
      i += 2;
    } else {
      out.append(value.substr(i, n));
      i += n;
    }
    ++chars;
  }
  return out;
}

}  // namespace b24es
