// How values that came from a request (a member_id, an event code, a path, an OAuth server's
// words) are written into a log line (SPEC §10): control characters escaped and the value cut,
// so that no request can forge a line, move the cursor of a terminal that shows the log, or
// fill the log with one value. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace b24es {

// How many characters (UTF-8 code points) of one request value reach a log line.
inline constexpr std::size_t kLogValueChars = 256;

// `value` cut after `maxChars` code points (marked with "..." when cut), with every C0 control
// character, DEL, C1 control (U+0080..U+009F) and byte that is not part of well-formed UTF-8
// written as \xHH (\n, \r and \t as themselves escaped). The result holds no control
// character, so escaping it again changes nothing.
std::string logValue(std::string_view value, std::size_t maxChars = kLogValueChars);

}  // namespace b24es
