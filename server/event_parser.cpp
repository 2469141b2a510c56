#include "event_parser.h"

#include <Poco/JSON/Array.h>
#include <Poco/String.h>

#include <charconv>

#include "json_writer.h"

namespace b24es {
namespace {

using Poco::Dynamic::Var;
using Poco::JSON::Array;
using Poco::JSON::Object;

// The text of a scalar member, or "" when absent, null or a container.
std::string textOf(const Object::Ptr& obj, const std::string& key) {
  if (!obj || !obj->has(key)) return {};
  const Var& v = obj->get(key);
  if (v.isEmpty() || v.type() == typeid(Object::Ptr) || v.type() == typeid(Array::Ptr)) return {};
  return v.convert<std::string>();
}

std::optional<std::int64_t> integerMember(const Object::Ptr& obj, const std::string& key) {
  if (!obj || !obj->has(key)) return std::nullopt;
  return integerOf(obj->get(key));
}

Object::Ptr objectMember(const Object::Ptr& obj, const std::string& key) {
  if (!obj || !obj->has(key)) return nullptr;
  const Var& v = obj->get(key);
  return v.type() == typeid(Object::Ptr) ? v.extract<Object::Ptr>() : nullptr;
}

bool isSecretKey(const std::string& key) {
  return Poco::icompare(key, "access_token") == 0 || Poco::icompare(key, "refresh_token") == 0 ||
         Poco::icompare(key, "application_token") == 0;
}

void redact(const Var& node);

void redactObject(Object::Ptr obj) {
  for (const auto& member : *obj) {
    if (isSecretKey(member.first)) {
      obj->set(member.first, std::string(kRedacted));
    } else {
      redact(member.second);
    }
  }
}

void redact(const Var& node) {
  if (node.type() == typeid(Object::Ptr)) {
    redactObject(node.extract<Object::Ptr>());
  } else if (node.type() == typeid(Array::Ptr)) {
    for (const Var& item : *node.extract<Array::Ptr>()) redact(item);
  }
}

// A token grant from an object holding access_token, refresh_token, expires, expires_in,
// scope; nullopt when it holds no access token.
std::optional<TokenGrant> grantFrom(const Object::Ptr& auth, std::int64_t userId,
                                    std::int64_t nowSeconds) {
  TokenGrant grant;
  grant.accessToken = textOf(auth, "access_token");
  if (grant.accessToken.empty()) return std::nullopt;
  grant.userId = userId;
  std::string refresh = textOf(auth, "refresh_token");
  if (!refresh.empty()) grant.refreshToken = refresh;
  grant.expiresAt = integerMember(auth, "expires");
  if (!grant.expiresAt) {
    if (auto in = integerMember(auth, "expires_in")) grant.expiresAt = nowSeconds + *in;
  }
  grant.scope = textOf(auth, "scope");
  return grant;
}

}  // namespace

std::optional<std::int64_t> integerOf(const Var& value) {
  if (value.isEmpty()) return std::nullopt;
  if (value.isInteger()) {
    try {
      return value.convert<std::int64_t>();
    } catch (const Poco::Exception&) {
      return std::nullopt;  // an unsigned value beyond int64
    }
  }
  if (!value.isString()) return std::nullopt;
  const std::string& s = value.extract<std::string>();
  std::int64_t out = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out);
  if (s.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return out;
}

std::variant<IncomingEvent, ApiError> parseEvent(const Object::Ptr& root, std::int64_t nowSeconds) {
  IncomingEvent e;
  e.event = Poco::toUpper(textOf(root, "event"));
  if (e.event.empty()) {
    return ApiError{400, "missing_field", "the body has no event field"};
  }
  Object::Ptr auth = objectMember(root, "auth");
  e.memberId = textOf(auth, "member_id");
  if (e.memberId.empty()) {
    return ApiError{400, "missing_field", "the body has no auth[member_id] field"};
  }
  if (e.event == "ONAPPINSTALL") {
    e.kind = EventKind::kInstall;
  } else if (e.event == "ONAPPUNINSTALL") {
    e.kind = EventKind::kUninstall;
  }
  e.domain = textOf(auth, "domain");
  e.clientEndpoint = textOf(auth, "client_endpoint");
  e.serverEndpoint = textOf(auth, "server_endpoint");
  e.status = textOf(auth, "status");
  e.scope = textOf(auth, "scope");
  e.applicationToken = textOf(auth, "application_token");
  e.eventHandlerId = integerMember(root, "event_handler_id");
  std::string eventId = textOf(root, "event_id");
  if (!eventId.empty()) e.eventId = eventId;
  e.ts = integerMember(root, "ts");
  e.userId = integerMember(auth, "user_id");

  if (e.userId) {
    if (auto grant = grantFrom(auth, *e.userId, nowSeconds)) e.tokens.push_back(*grant);
  }

  Var data = root->has("data") ? root->get("data") : Var();
  // SPEC §4: data is an object (or absent); a list or a bare value is not an event body.
  if (!data.isEmpty() && data.type() != typeid(Object::Ptr)) {
    return ApiError{400, "malformed_body", "the data field is not an object"};
  }
  Object::Ptr dataObj = objectMember(root, "data");
  if (dataObj) {
    // Bots carry their own tokens in data[BOT][<bot user id>][...].
    if (Object::Ptr bots = objectMember(dataObj, "BOT")) {
      for (const auto& bot : *bots) {
        auto botId = integerOf(Var(bot.first));
        if (!botId || bot.second.type() != typeid(Object::Ptr)) continue;
        if (auto grant = grantFrom(bot.second.extract<Object::Ptr>(), *botId, nowSeconds)) {
          e.tokens.push_back(*grant);
        }
      }
    }
    Object::Ptr fields = objectMember(dataObj, "FIELDS");
    Object::Ptr fieldsAfter = objectMember(dataObj, "FIELDS_AFTER");
    for (auto candidate : {integerMember(fields, "ID"), integerMember(fieldsAfter, "ID"),
                           integerMember(dataObj, "ID"), integerMember(dataObj, "id")}) {
      if (candidate) {
        e.entityId = candidate;
        break;
      }
    }
    e.entityTypeId = integerMember(fields, "ENTITY_TYPE_ID");
  }

  if (data.isEmpty()) {
    e.dataJson = "{}";
  } else {
    redact(data);
    e.dataJson = condensedJson(data);
  }
  return e;
}

}  // namespace b24es
