#include "pg_json_text.h"

namespace b24es::pg {

// Written by hand: neither POCO's JSON parser nor PostgreSQL reports where an escape sits (a
// parser decodes "\u0000" to a NUL byte, which is the thing jsonb cannot take), and a plain
// find() of "\u0000" would also match the text after an escaped backslash ("\\u0000"). In
// valid JSON a backslash appears only inside strings, and always starts an escape of which the
// next character is a part, so walking escape by escape keeps the backslash parity right
// without tracking where strings begin and end.
std::optional<std::string> jsonbCompatible(std::string_view json) {
  static constexpr std::string_view kNul = "\\u0000";
  static constexpr std::string_view kReplacement = "\\ufffd";  // U+FFFD REPLACEMENT CHARACTER
  std::optional<std::string> out;
  std::size_t copied = 0;  // json[0, copied) is in out already
  for (std::size_t i = 0; i < json.size(); ++i) {
    if (json[i] != '\\') continue;
    if (json.compare(i, kNul.size(), kNul) == 0) {
      if (!out) out.emplace().reserve(json.size());
      out->append(json.substr(copied, i - copied));
      out->append(kReplacement);
      copied = i + kNul.size();
      i = copied - 1;
    } else {
      ++i;  // the escaped character: after "\\" the next backslash starts a new escape
    }
  }
  if (out) out->append(json.substr(copied));
  return out;
}

}  // namespace b24es::pg
