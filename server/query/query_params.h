// Parameters of the query API (SPEC §5), checked completely before anything reaches storage:
// every bad value becomes an InvalidParameter naming the parameter (never echoing a secret; the
// query API takes none in parameters). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "event_query.h"

namespace b24es {

// Why the parameters were refused: a sentence naming the parameter, never its value when that
// could be a secret. The query handler answers it as 400 invalid_parameter; this layer knows no
// HTTP.
struct InvalidParameter {
  std::string message;
};

// Decoded query string pairs in order, as Poco::URI::getQueryParameters returns them.
using QueryParameters = std::vector<std::pair<std::string, std::string>>;

// The filter of GET /api/v1/events. Known parameters: member_id, domain, event, entity_id,
// entity_type_id, user_id, from, to, after_id, limit, order. InvalidParameter
// for an unknown or repeated parameter, an empty value, a number that is not an integer,
// limit outside 1..1000, after_id < 0, a time that is neither unix seconds nor ISO 8601,
// from after to, and order other than asc/desc. `event` is upper-cased (stored upper-cased,
// matched case-insensitively).
std::variant<EventFilter, InvalidParameter> parseEventFilter(const QueryParameters& params);

// The filter of GET /api/v1/events/stream (SPEC §5.1): those of parseEventFilter except limit
// and order (InvalidParameter for either); after_id is where the stream starts.
std::variant<EventFilter, InvalidParameter> parseStreamFilter(const QueryParameters& params);

// The page of GET /api/v1/portals: `limit` (1..1000, default 100) and `after` (the last
// member_id of the previous page). 400 (invalid_parameter) for an unknown or repeated
// parameter, an empty value and a limit out of range.
std::variant<PortalFilter, InvalidParameter> parsePortalFilter(const QueryParameters& params);

// The page of GET /api/v1/rejections: `after_id` (the last id of the previous page; the next
// page holds smaller ids, >= 0), `limit` (1..1000, default 100) and `member_id`.
// InvalidParameter for an unknown, repeated or empty parameter, a non-integer or negative
// after_id and a limit out of range.
std::variant<RejectionFilter, InvalidParameter> parseRejectionFilter(const QueryParameters& params);

// A time given as unix seconds ("1767261600", may be negative) or as ISO 8601
// ("2026-01-01", "2026-01-01T10:00", "2026-01-01T10:00:00Z", "...T10:00:00.250+03:00"; no
// offset means UTC; fractions are dropped). nullopt for anything else, including invalid
// dates such as 2026-02-30.
std::optional<std::int64_t> parseTime(const std::string& text);

// A decimal integer that fits in 64 bits (optional '-', digits only). nullopt otherwise.
std::optional<std::int64_t> parseInteger(const std::string& text);

// The query of GET /api/v1/stats/timeline as of `nowSeconds`. Known parameters: bucket
// (minute [default], hour, day), from, to (times as for parseTime, on received time),
// member_id, event. Without `to` the timeline ends with the bucket that holds now, without
// `from` it starts 59 buckets before the one that holds `to`; `from` is rounded down to its
// bucket. InvalidParameter for an unknown, repeated or empty parameter, a bad time or bucket,
// from after to, and more than kMaxTimelineBuckets buckets.
std::variant<TimelineQuery, InvalidParameter> parseTimelineQuery(const QueryParameters& params,
                                                                 std::int64_t nowSeconds);
constexpr std::int64_t kMaxTimelineBuckets = 10000;

// nullopt when `params` is empty; otherwise the refusal for routes that take no parameters.
std::optional<InvalidParameter> rejectParameters(const QueryParameters& params);

}  // namespace b24es
