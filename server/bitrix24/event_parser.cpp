#include "event_parser.h"

#include <Poco/String.h>

#include <charconv>

namespace b24es {
namespace {

using Type = BodyValue::Type;

// The text of a scalar member, or "" when absent, null or a container (numbers and booleans as
// JSON writes them).
std::string textOf(const BodyValue* obj, std::string_view key) {
  const BodyValue* v = obj ? obj->find(key) : nullptr;
  if (!v) return {};
  switch (v->type) {
    case Type::kString:
    case Type::kInteger:
    case Type::kReal:
      return v->text;
    case Type::kTrue:
      return "true";
    case Type::kFalse:
      return "false";
    case Type::kNull:
    case Type::kObject:
    case Type::kArray:
      break;
  }
  return {};
}

std::optional<std::int64_t> integerMember(const BodyValue* obj, std::string_view key) {
  const BodyValue* v = obj ? obj->find(key) : nullptr;
  if (!v) return std::nullopt;
  return integerOf(*v);
}

const BodyValue* objectMember(const BodyValue* obj, std::string_view key) {
  const BodyValue* v = obj ? obj->find(key) : nullptr;
  return v && v->isObject() ? v : nullptr;
}

// SPEC §4 (v2): token-bearing keys, matched in any ASCII letter case. "token" is
// ONAPPMETHODCONFIRM's data.TOKEN (an access token); auth_id and refresh_id are the names
// Bitrix24 gives the tokens in placement and widget requests; client_secret is the app's secret.
// Every key of data passes here, so the length picks the one or two candidates first.
bool isSecretKey(const std::string& key) {
  const auto is = [&key](const char* secret) { return Poco::icompare(key, secret) == 0; };
  switch (key.size()) {
    case 5:
      return is("token");
    case 7:
      return is("auth_id");
    case 10:
      return is("refresh_id");
    case 12:
      return is("access_token");
    case 13:
      return is("refresh_token") || is("client_secret");
    case 17:
      return is("application_token");
    default:
      return false;
  }
}

void redact(BodyValue& node) {
  const bool isObject = node.isObject();
  for (BodyMember& member : node.members) {
    if (isObject && isSecretKey(member.key)) {
      member.value = BodyValue::string(kRedacted);
    } else {
      redact(member.value);
    }
  }
}

// A token grant from an object holding access_token, refresh_token, expires, expires_in,
// scope; nullopt when it holds no access token.
std::optional<TokenGrant> grantFrom(const BodyValue* auth, std::int64_t userId,
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

std::optional<std::int64_t> integerOf(std::string_view text) {
  std::int64_t out = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return out;
}

std::optional<std::int64_t> integerOf(const BodyValue& value) {
  // An integer beyond int64 (a JSON UInt64) fails from_chars like an overlong string.
  if (value.type != Type::kInteger && value.type != Type::kString) return std::nullopt;
  return integerOf(value.text);
}

ClaimedIdentity claimedIdentity(const BodyValue& root) {
  const BodyValue* auth = objectMember(&root, "auth");
  return {Poco::toUpper(textOf(&root, "event")), textOf(auth, "member_id"), textOf(auth, "domain")};
}

std::variant<IncomingEvent, EventError> parseEvent(BodyValue& root, std::int64_t nowSeconds) {
  IncomingEvent e;
  e.event = Poco::toUpper(textOf(&root, "event"));
  if (e.event.empty()) {
    return EventError{"missing_field", "the body has no event field"};
  }
  const BodyValue* auth = objectMember(&root, "auth");
  e.memberId = textOf(auth, "member_id");
  if (e.memberId.empty()) {
    return EventError{"missing_field", "the body has no auth[member_id] field"};
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
  e.authAccessToken = textOf(auth, "access_token");
  e.eventHandlerId = integerMember(&root, "event_handler_id");
  std::string eventId = textOf(&root, "event_id");
  if (!eventId.empty()) e.eventId = eventId;
  e.ts = integerMember(&root, "ts");
  e.userId = integerMember(auth, "user_id");

  if (e.userId) {
    if (auto grant = grantFrom(auth, *e.userId, nowSeconds)) e.tokens.push_back(*grant);
  }

  BodyValue* data = root.find("data");
  if (data && data->isNull()) data = nullptr;
  // SPEC §4 (v2, amended): data that PHP decodes as a list or a string (or a JSON body's
  // number) is stored as it is; the lookups below find nothing in it, so the derived columns
  // stay null.
  if (!data) {
    e.dataJson = "{}";
    return e;
  }
  // Bots carry their own tokens in data[BOT][<bot user id>][...].
  if (const BodyValue* bots = objectMember(data, "BOT")) {
    for (const BodyMember& bot : bots->members) {
      auto botId = integerOf(bot.key);
      if (!botId || !bot.value.isObject()) continue;
      if (auto grant = grantFrom(&bot.value, *botId, nowSeconds)) e.tokens.push_back(*grant);
    }
  }
  const BodyValue* fields = objectMember(data, "FIELDS");
  const BodyValue* fieldsAfter = objectMember(data, "FIELDS_AFTER");
  for (auto candidate : {integerMember(fields, "ID"), integerMember(fieldsAfter, "ID"),
                         integerMember(data, "ID"), integerMember(data, "id")}) {
    if (candidate) {
      e.entityId = candidate;
      break;
    }
  }
  e.entityTypeId = integerMember(fields, "ENTITY_TYPE_ID");
  e.clean = e.kind == EventKind::kUninstall && integerMember(data, "CLEAN") == 1;

  redact(*data);
  e.dataJson = toJson(*data);
  return e;
}

}  // namespace b24es
