#include "query_params.h"

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/RegularExpression.h>
#include <Poco/String.h>

#include <charconv>
#include <set>

namespace b24es {
namespace {

InvalidParameter invalid(const std::string& message) { return {message}; }

// A parameter name as it may appear in a message and the log: at most 40 characters, control
// characters replaced, so that a crafted name cannot forge log lines.
std::string shown(const std::string& name) {
  std::string out = name.substr(0, 40);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

// Poco::DateTimeParser skips junk before numbers ("x2026-01-01" parses), so the shape is
// checked first, with the ranges of RFC 3339 (hours 00-23, minutes 00-59, in the time and in
// the offset): the parser itself takes "+99:99" as an offset of 100 hours. The offset sign may
// arrive as a space: an unencoded '+' in a query string decodes to one.
const Poco::RegularExpression& isoShape() {
  static const Poco::RegularExpression shape(
      "^[0-9]{4}-[0-9]{2}-[0-9]{2}"
      "(T([01][0-9]|2[0-3]):[0-5][0-9](:([0-5][0-9]|60)(\\.[0-9]{1,9})?)?"
      "(Z|[+ -]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$");
  return shape;
}

}  // namespace

std::optional<std::int64_t> parseInteger(const std::string& text) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::optional<std::int64_t> parseTime(const std::string& text) {
  if (auto seconds = parseInteger(text)) return seconds;
  if (!isoShape().match(text)) return std::nullopt;
  std::string iso = text;
  if (std::size_t space = iso.find(' '); space != std::string::npos) iso[space] = '+';
  const std::string format =
      iso.size() == 10 ? std::string("%Y-%m-%d") : Poco::DateTimeFormat::ISO8601_FRAC_FORMAT;
  Poco::DateTime parsed;
  int tzd = 0;
  if (!Poco::DateTimeParser::tryParse(format, iso, parsed, tzd)) return std::nullopt;
  parsed.makeUTC(tzd);
  return static_cast<std::int64_t>(parsed.timestamp().epochTime());
}

std::optional<InvalidParameter> rejectParameters(const QueryParameters& params) {
  if (params.empty()) return std::nullopt;
  return invalid("unknown parameter '" + shown(params.front().first) + "'; this path takes none");
}

std::variant<EventFilter, InvalidParameter> parseStreamFilter(const QueryParameters& params) {
  for (const auto& param : params) {
    if (param.first == "limit" || param.first == "order") {
      return invalid("the stream takes no '" + param.first +
                     "': it sends every matching event, in id order");
    }
  }
  return parseEventFilter(params);
}

std::variant<PortalFilter, InvalidParameter> parsePortalFilter(const QueryParameters& params) {
  PortalFilter filter;
  std::set<std::string> seen;
  for (const auto& [name, value] : params) {
    if (!seen.insert(name).second) {
      return invalid("parameter '" + shown(name) + "' is given twice");
    }
    if (value.empty()) return invalid("parameter '" + shown(name) + "' is empty");
    if (name == "after") {
      filter.after = value;
    } else if (name == "limit") {
      std::optional<std::int64_t> limit = parseInteger(value);
      if (!limit || *limit < 1 || *limit > static_cast<std::int64_t>(PortalFilter::kMaxLimit)) {
        return invalid("limit must be an integer from 1 to " +
                       std::to_string(PortalFilter::kMaxLimit));
      }
      filter.limit = static_cast<std::size_t>(*limit);
    } else {
      return invalid("unknown parameter '" + shown(name) + "'");
    }
  }
  return filter;
}

std::variant<RejectionFilter, InvalidParameter> parseRejectionFilter(
    const QueryParameters& params) {
  RejectionFilter filter;
  std::set<std::string> seen;
  for (const auto& [name, value] : params) {
    if (!seen.insert(name).second) {
      return invalid("parameter '" + shown(name) + "' is given twice");
    }
    if (value.empty()) return invalid("parameter '" + shown(name) + "' is empty");
    if (name == "member_id") {
      filter.memberId = value;
    } else if (name == "after_id") {
      filter.afterId = parseInteger(value);
      if (!filter.afterId) return invalid("after_id must be an integer");
      if (*filter.afterId < 0) return invalid("after_id must not be negative");
    } else if (name == "limit") {
      std::optional<std::int64_t> limit = parseInteger(value);
      if (!limit || *limit < 1 || *limit > static_cast<std::int64_t>(RejectionFilter::kMaxLimit)) {
        return invalid("limit must be an integer from 1 to " +
                       std::to_string(RejectionFilter::kMaxLimit));
      }
      filter.limit = static_cast<std::size_t>(*limit);
    } else {
      return invalid("unknown parameter '" + shown(name) + "'");
    }
  }
  return filter;
}

std::variant<EventFilter, InvalidParameter> parseEventFilter(const QueryParameters& params) {
  EventFilter filter;
  std::set<std::string> seen;
  for (const auto& param : params) {
    // Plain references, not a structured binding: the lambda below captures them, which C++17
    // allows only for variables (clang refuses to capture a binding; the fuzz build uses clang).
    const std::string& name = param.first;
    const std::string& value = param.second;
    if (!seen.insert(name).second) {
      return invalid("parameter '" + shown(name) + "' is given twice");
    }
    if (value.empty()) return invalid("parameter '" + shown(name) + "' is empty");
    auto integer = [&](std::optional<std::int64_t>& out) -> std::optional<InvalidParameter> {
      out = parseInteger(value);
      if (!out) return invalid(name + " must be an integer");
      return std::nullopt;
    };
    std::optional<InvalidParameter> error;
    if (name == "member_id") {
      filter.memberId = value;
    } else if (name == "domain") {
      filter.domain = value;
    } else if (name == "event") {
      filter.event = Poco::toUpper(value);
    } else if (name == "entity_id") {
      error = integer(filter.entityId);
    } else if (name == "entity_type_id") {
      error = integer(filter.entityTypeId);
    } else if (name == "user_id") {
      error = integer(filter.userId);
    } else if (name == "source") {
      if (value == "online" || value == "offline") {
        filter.source = value;
      } else {
        error = invalid("source must be online or offline");
      }
    } else if (name == "from" || name == "to") {
      std::optional<std::int64_t> time = parseTime(value);
      if (!time) {
        error = invalid(name + " must be unix seconds or an ISO 8601 time such as " +
                        "2026-01-01T10:00:00Z");
      }
      (name == "from" ? filter.from : filter.to) = time;
    } else if (name == "after_id") {
      error = integer(filter.afterId);
      if (!error && *filter.afterId < 0) error = invalid("after_id must not be negative");
    } else if (name == "limit") {
      std::optional<std::int64_t> limit = parseInteger(value);
      if (!limit || *limit < 1 || *limit > static_cast<std::int64_t>(EventFilter::kMaxLimit)) {
        error =
            invalid("limit must be an integer from 1 to " + std::to_string(EventFilter::kMaxLimit));
      } else {
        filter.limit = static_cast<std::size_t>(*limit);
      }
    } else if (name == "order") {
      if (value == "asc") {
        filter.order = EventFilter::Order::kAsc;
      } else if (value == "desc") {
        filter.order = EventFilter::Order::kDesc;
      } else {
        error = invalid("order must be asc or desc");
      }
    } else {
      error = invalid("unknown parameter '" + shown(name) + "'");
    }
    if (error) return *error;
  }
  if (filter.from && filter.to && *filter.from > *filter.to) {
    return invalid("from is later than to");
  }
  return filter;
}

std::variant<TimelineQuery, InvalidParameter> parseTimelineQuery(const QueryParameters& params,
                                                                 std::int64_t nowSeconds) {
  TimelineQuery query;
  std::optional<std::int64_t> from, to;
  std::set<std::string> seen;
  for (const auto& [name, value] : params) {
    if (!seen.insert(name).second) {
      return invalid("parameter '" + shown(name) + "' is given twice");
    }
    if (value.empty()) return invalid("parameter '" + shown(name) + "' is empty");
    if (name == "bucket") {
      if (value == "minute") {
        query.width = 60;
      } else if (value == "hour") {
        query.width = 3600;
      } else if (value == "day") {
        query.width = 86400;
      } else {
        return invalid("bucket must be minute, hour or day");
      }
    } else if (name == "from" || name == "to") {
      std::optional<std::int64_t> time = parseTime(value);
      if (!time) {
        return invalid(name + " must be unix seconds or an ISO 8601 time such as " +
                       "2026-01-01T10:00:00Z");
      }
      (name == "from" ? from : to) = time;
    } else if (name == "member_id") {
      query.memberId = value;
    } else if (name == "event") {
      query.event = Poco::toUpper(value);
    } else {
      return invalid("unknown parameter '" + shown(name) + "'");
    }
  }
  // Floor division: times before 1970 are negative.
  auto bucketOf = [&](std::int64_t t) {
    std::int64_t q = t / query.width;
    if (t % query.width < 0) --q;
    return q * query.width;
  };
  query.to = to.value_or(nowSeconds);
  query.from = from ? bucketOf(*from) : bucketOf(query.to) - 59 * query.width;
  if (query.from > query.to) return invalid("from is later than to");
  if ((query.to - query.from) / query.width >= kMaxTimelineBuckets) {
    return invalid("the timeline spans more than " + std::to_string(kMaxTimelineBuckets) +
                   " buckets; narrow from and to or use a wider bucket");
  }
  return query;
}

}  // namespace b24es
