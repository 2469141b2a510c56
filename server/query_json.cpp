#include "query_json.h"

#include <Poco/DateTimeFormatter.h>
#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSONString.h>
#include <Poco/Timestamp.h>

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

void appendString(std::string& out, const std::string& value) {
  out += Poco::toJSON(value, Poco::JSON_WRAP_STRINGS);
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

// events.data is written only by the ingest path, from Poco's JSON stringifier, so a stored
// object is spliced in as it is rather than parsed and stringified again for every row of
// every page. Text that does not even look like an object (edited by hand in sqlite3) is
// parsed; what still is no object is served as a JSON string, so the body stays valid JSON.
void appendData(std::string& out, const std::string& data) {
  std::size_t first = data.find_first_not_of(" \t\r\n");
  std::size_t last = data.find_last_not_of(" \t\r\n");
  if (first != std::string::npos && data[first] == '{' && data[last] == '}') {
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
  return object;
}

}  // namespace

std::string isoSeconds(std::int64_t unixSeconds) {
  return Poco::DateTimeFormatter::format(Poco::Timestamp::fromEpochTime(unixSeconds),
                                         "%Y-%m-%dT%H:%M:%SZ");
}

std::string isoMillis(std::int64_t unixMillis) {
  return Poco::DateTimeFormatter::format(Poco::Timestamp(unixMillis * 1000),
                                         "%Y-%m-%dT%H:%M:%S.%iZ");
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
  out += ",\"received_at\":";
  appendString(out, isoMillis(e.receivedAt));
  out += ",\"user_id\":";
  appendNumber(out, e.userId);
  out += ",\"entity_id\":";
  appendNumber(out, e.entityId);
  out += ",\"entity_type_id\":";
  appendNumber(out, e.entityTypeId);
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

std::string portalJson(const PortalView& portal, std::int64_t nowSeconds) {
  return stringified(*portalObject(portal, nowSeconds));
}

std::string portalListJson(const std::vector<PortalView>& portals, std::int64_t nowSeconds) {
  Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  Array::Ptr items = new Array;
  for (const PortalView& p : portals) items->add(portalObject(p, nowSeconds));
  body.set("items", items);
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

}  // namespace b24es
