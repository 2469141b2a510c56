#include "rejections.h"

#include <utility>

namespace b24es {

std::string cutToChars(const std::string& text, std::size_t chars) {
  // Written by hand: POCO's UTF-8 helpers convert or validate whole strings; this only needs
  // where the (chars + 1)-th character starts.
  // Also at most 4 bytes a character, so that stray continuation bytes cannot make it long.
  std::size_t seen = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == 4 * chars) return text.substr(0, i);
    const auto byte = static_cast<unsigned char>(text[i]);
    if ((byte & 0xC0) == 0x80) continue;  // continues the character before
    if (seen == chars) return text.substr(0, i);
    ++seen;
  }
  return text;
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
