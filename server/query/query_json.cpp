#include "query_json.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSONString.h>

#include <ctime>
#include <optional>
#include <sstream>

#include "query_params.h"

namespace b24es {
namespace {

using Poco::Dynamic::Var;
using Poco::JSON::Array;
using Poco::JSON::Object;

template <typename T>
Var varOf(const std::optional<T>& value) {
  return value ? Var(*value) : Var();
}

Var isoOf(const std::optional<std::int64_t>& unixSeconds) {
  return unixSeconds ? Var(isoSeconds(*unixSeconds)) : Var();
}

std::string stringified(const Object& object) {
  std::ostringstream out;
  object.stringify(out);
  return out.str();
}

// Strings that need no escaping (member ids, domains, event codes: nearly all) are copied
// as they are; Poco::toJSON escapes the others. Measured: toJSON alone costs ~200 ns per
// string, a third of the whole time of a 100-event page.
void appendString(std::string& out, const std::string& value) {
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') {
      out += Poco::toJSON(value, Poco::JSON_WRAP_STRINGS);
      return;
    }
  }
  out += '"';
  out += value;
  out += '"';
}

void appendDigits(std::string& out, int value, int width) {
  char digits[8];
  for (int i = width - 1; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(digits, static_cast<std::size_t>(width));
}

// "2026-01-01T10:00:00" (+ ".250" when `millis` >= 0) + "Z". By hand with gmtime_r rather
// than Poco::DateTimeFormatter, which costs ~200 ns per call, as much as the rest of an
// event's JSON; query_params_test checks both give the same text.
void appendIso(std::string& out, std::int64_t unixSeconds, int millis) {
  std::time_t t = static_cast<std::time_t>(unixSeconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  appendDigits(out, tm.tm_year + 1900, 4);
  out += '-';
  appendDigits(out, tm.tm_mon + 1, 2);
  out += '-';
  appendDigits(out, tm.tm_mday, 2);
  out += 'T';
  appendDigits(out, tm.tm_hour, 2);
  out += ':';
  appendDigits(out, tm.tm_min, 2);
  out += ':';
  appendDigits(out, tm.tm_sec, 2);
  if (millis >= 0) {
    out += '.';
    appendDigits(out, millis, 3);
  }
  out += 'Z';
}

void appendNumber(std::string& out, const std::optional<std::int64_t>& value) {
  out += value ? std::to_string(*value) : "null";
}

void appendOptionalString(std::string& out, const std::optional<std::string>& value) {
  if (value) {
    appendString(out, *value);
  } else {
    out += "null";
  }
}

// events.data is written only by the ingest path, as JSON (an object, or since issue 12 a list
// or a string: SPEC §4 v2), so it is spliced in as it is rather than parsed and stringified
// again for every row of every page. Text that does not even look like one of those (edited by
// hand in sqlite3) is parsed; what still is no object is served as a JSON string, so the body
// stays valid JSON.
void appendData(std::string& out, const std::string& data) {
  std::size_t first = data.find_first_not_of(" \t\r\n");
  std::size_t last = data.find_last_not_of(" \t\r\n");
  const auto encloses = [&](char open, char close) {
    return first != std::string::npos && last > first && data[first] == open && data[last] == close;
  };
  if (encloses('{', '}') || encloses('[', ']') || encloses('"', '"')) {
    out.append(data, first, last - first + 1);
    return;
  }
  try {
    Var parsed = Poco::JSON::Parser().parse(data);
    if (parsed.type() == typeid(Object::Ptr)) {
      out += stringified(*parsed.extract<Object::Ptr>());
      return;
    }
  } catch (const Poco::Exception&) {
    // falls through to the string form
  }
  appendString(out, data);
}

Object::Ptr portalObject(const PortalView& p, std::int64_t nowSeconds) {
  Object::Ptr object = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  object->set("member_id", p.memberId);
  object->set("domain", p.domain);
  object->set("client_endpoint", varOf(p.clientEndpoint));
  object->set("server_endpoint", varOf(p.serverEndpoint));
  object->set("status", varOf(p.status));
  object->set("scope", varOf(p.scope));
  object->set("installed_at", isoOf(p.installedAt));
  object->set("uninstalled_at", isoOf(p.uninstalledAt));
  object->set("event_count", p.eventCount);
  object->set("last_event_ts", varOf(p.lastEventTs));
  Array::Ptr tokens = new Array;
  for (const TokenInfo& t : p.tokens) {
    Object::Ptr token = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    token->set("user_id", t.userId);
    token->set("expires_at", isoOf(t.expiresAt));
    token->set("expired", t.expiresAt ? Var(*t.expiresAt <= nowSeconds) : Var());
    token->set("has_refresh_token", t.hasRefreshToken);
    token->set("last_refresh_at", isoOf(t.lastRefreshAt));
    token->set("last_refresh_error", varOf(t.lastRefreshError));
    tokens->add(token);
  }
  object->set("tokens", tokens);
  Array::Ptr bindings = new Array;
  for (const BindingRecord& b : p.bindings) {
    Object::Ptr binding = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    binding->set("event", b.event);
    binding->set("type", b.type);
    binding->set("state", b.state);
    binding->set("error", varOf(b.error));
    binding->set("updated_at", isoOf(std::optional<std::int64_t>(b.updatedAt)));
    bindings->add(binding);
  }
  object->set("bindings", bindings);
  if (p.offline) {
    Object::Ptr offline = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    offline->set("mode", p.offline->mode);
    offline->set("last_pass_at", isoOf(p.offline->lastPassAt));
    offline->set("last_error", varOf(p.offline->lastError));
    offline->set("fetched", p.offline->fetched);
    object->set("offline", offline);
  } else {
    object->set("offline", Var());
  }
  return object;
}

}  // namespace

std::string isoSeconds(std::int64_t unixSeconds) {
  std::string out;
  appendIso(out, unixSeconds, -1);
  return out;
}

std::string isoMillis(std::int64_t unixMillis) {
  // Floor division, so that times before 1970 keep a millisecond part from 0 to 999.
  std::int64_t seconds = unixMillis / 1000, millis = unixMillis % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  std::string out;
  appendIso(out, seconds, static_cast<int>(millis));
  return out;
}

// Composed by hand rather than through Poco::JSON::Object so that `data` can be spliced in
// (see appendData); every string still goes through Poco's JSON escaping.
std::string eventJson(const EventRecord& e) {
  std::string out;
  out.reserve(256 + e.dataJson.size());
  out += "{\"id\":" + std::to_string(e.id);
  out += ",\"event\":";
  appendString(out, e.event);
  out += ",\"member_id\":";
  appendString(out, e.memberId);
  out += ",\"domain\":";
  appendOptionalString(out, e.domain);
  out += ",\"event_handler_id\":";
  appendNumber(out, e.eventHandlerId);
  // event_id is a number when Bitrix24 sent one (the column is INTEGER), otherwise text.
  out += ",\"event_id\":";
  if (std::optional<std::int64_t> number = e.eventId ? parseInteger(*e.eventId) : std::nullopt) {
    out += std::to_string(*number);
  } else {
    appendOptionalString(out, e.eventId);
  }
  out += ",\"ts\":";
  appendNumber(out, e.ts);
  out += ",\"received_at\":\"";
  out += isoMillis(e.receivedAt);
  out += '"';
  out += ",\"user_id\":";
  appendNumber(out, e.userId);
  out += ",\"entity_id\":";
  appendNumber(out, e.entityId);
  out += ",\"entity_type_id\":";
  appendNumber(out, e.entityTypeId);
  out += e.offline ? ",\"source\":\"offline\"" : ",\"source\":\"online\"";
  out += ",\"data\":";
  appendData(out, e.dataJson);
  out += '}';
  return out;
}

std::string eventPageJson(const EventPage& page) {
  std::string out = "{\"items\":[";
  for (std::size_t i = 0; i < page.items.size(); ++i) {
    if (i > 0) out += ',';
    out += eventJson(page.items[i]);
  }
  out += "],\"next_after_id\":";
  appendNumber(out, page.nextAfterId);
  out += '}';
  return out;
}

EventPageWriter::EventPageWriter(std::size_t limit, std::size_t maxBytes)
    : limit_(limit), maxBytes_(maxBytes), out_("{\"items\":[") {}

bool EventPageWriter::add(const EventRecord& event) {
  if (full_) {
    more_ = true;
    return false;
  }
  if (count_ > 0) out_ += ',';
  out_ += eventJson(event);
  ++count_;
  lastId_ = event.id;
  full_ = count_ >= limit_ || out_.size() >= maxBytes_;
  return true;
}

std::string EventPageWriter::finish() {
  out_ += "],\"next_after_id\":";
  appendNumber(out_, more_ ? std::optional<std::int64_t>(lastId_) : std::nullopt);
  out_ += '}';
  return std::move(out_);
}

std::string portalJson(const PortalView& portal, std::int64_t nowSeconds) {
  return stringified(*portalObject(portal, nowSeconds));
}

std::string portalPageJson(const PortalPage& page, std::int64_t nowSeconds) {
  Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  Array::Ptr items = new Array;
  for (const PortalView& p : page.items) items->add(portalObject(p, nowSeconds));
  body.set("items", items);
  body.set("next_after", varOf(page.nextAfter));
  return stringified(body);
}

std::string statsJson(const EventStats& stats) {
  Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  body.set("total", stats.total);
  Array::Ptr byEvent = new Array;
  for (const auto& e : stats.byEvent) {
    Object::Ptr item = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    item->set("event", e.event);
    item->set("count", e.count);
    byEvent->add(item);
  }
  body.set("by_event", byEvent);
  Array::Ptr byPortal = new Array;
  for (const auto& p : stats.byPortal) {
    Object::Ptr item = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    item->set("member_id", p.memberId);
    item->set("domain", varOf(p.domain));
    item->set("count", p.count);
    byPortal->add(item);
  }
  body.set("by_portal", byPortal);
  body.set("first_ts", varOf(stats.firstTs));
  body.set("last_ts", varOf(stats.lastTs));
  return stringified(body);
}

std::string rejectionPageJson(const RejectionPage& page) {
  Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  Array::Ptr items = new Array;
  for (const RejectionRecord& r : page.items) {
    Object::Ptr item = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    item->set("id", r.id);
    item->set("received_at", isoMillis(r.receivedAt));
    item->set("client_addr", r.clientAddr);
    item->set("status", r.status);
    item->set("error", r.error);
    item->set("event", varOf(r.event));
    item->set("member_id", varOf(r.memberId));
    item->set("domain", varOf(r.domain));
    items->add(item);
  }
  body.set("items", items);
  body.set("next_after_id", varOf(page.nextAfterId));
  return stringified(body);
}

std::string timelineJson(std::int64_t width, const Timeline& timeline) {
  Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  body.set("bucket", width == 60 ? "minute" : width == 3600 ? "hour" : "day");
  Array::Ptr series = new Array;
  for (const Timeline::Series& s : timeline.series) {
    Object::Ptr item = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    item->set("event", s.event);
    Array::Ptr points = new Array;
    for (const auto& [start, count] : s.points) {
      Array::Ptr point = new Array;
      point->add(start);
      point->add(count);
      points->add(point);
    }
    item->set("points", points);
    series->add(item);
  }
  body.set("series", series);
  return stringified(body);
}

}  // namespace b24es
