#include "rejections.h"

#include <Poco/UTF8Encoding.h>

#include <utility>

namespace b24es {

std::string cutToChars(const std::string& text, std::size_t chars) {
  // Written by hand: POCO converts or validates whole strings (UTF8Encoding::isLegal checks one
  // sequence, used below); this needs the first `chars` characters, made valid on the way.
  static const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  std::size_t seen = 0;
  for (std::size_t i = 0; i < text.size() && seen < chars; ++seen) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = lead < 0x80             ? 1
                         : (lead & 0xE0) == 0xC0 ? 2
                         : (lead & 0xF0) == 0xE0 ? 3
                         : (lead & 0xF8) == 0xF0 ? 4
                                                 : 0;
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data() + i);
    if (length == 0 || i + length > text.size() ||
        !Poco::UTF8Encoding::isLegal(bytes, static_cast<int>(length))) {
      out += kReplacement;
      ++i;
      continue;
    }
    out.append(text, i, length);
    i += length;
  }
  return out;
}

RejectionRecord cutRejection(RejectionRecord record) {
  auto cut = [](std::optional<std::string>& value) {
    if (!value) return;
    if (value->empty()) {
      value.reset();
    } else {
      *value = cutToChars(*value);
    }
  };
  record.clientAddr = cutToChars(record.clientAddr);
  record.error = cutToChars(record.error);
  cut(record.event);
  cut(record.memberId);
  cut(record.domain);
  return record;
}

}  // namespace b24es
