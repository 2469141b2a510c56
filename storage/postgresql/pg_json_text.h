// Event data that jsonb cannot hold (SPEC §4: a verified event is never rejected for its
// content). PostgreSQL's jsonb refuses the escape \u0000 ("unsupported Unicode escape
// sequence"), while its json type keeps the text exactly, NULs included. So the writer stores
// such an event's data twice (migration 0005): the exact text in events.data_json, and in
// events.data the same value with each \u0000 replaced by \ufffd, so that filters, indexes and
// psql reports still work on it. The reader prints coalesce(data_json::text, data::text).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace b24es::pg {

// `json` (a JSON text) with each \u0000 escape replaced by \ufffd, or nullopt when it holds no
// such escape (the common case: jsonb takes the text as it is). An escape is recognised only
// where a backslash starts one: in "\\u0000" the backslash is escaped and "u0000" is plain
// text. Malformed text (a lone backslash at the end, a cut escape) is scanned without reading
// past its end and left as it is. Pure; thread-safe.
std::optional<std::string> jsonbCompatible(std::string_view json);

}  // namespace b24es::pg
