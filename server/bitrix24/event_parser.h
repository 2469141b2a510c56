// Turns a decoded event body (form or JSON, see body_decoder.h) into the IncomingEvent the
// store writes: required fields checked, columns derived (SPEC §5), token grants collected from
// auth and data.BOT, and every token value inside data redacted. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "body_value.h"
#include "records.h"

namespace b24es {

// What replaces the value of every token-bearing key inside data (access_token, refresh_token,
// application_token, token, auth_id, refresh_id, client_secret, in any letter case).
inline constexpr const char* kRedacted = "[redacted]";

// Why a body is not an event: a stable machine word and a sentence for people (no secrets). The
// ingest handler turns it into a 400 answer; this layer knows no HTTP.
struct EventError {
  std::string code;     // missing_field, malformed_body
  std::string message;  // e.g. "the body has no event field"
};

// Parses `root` (an object) into an event, or an EventError: missing_field when `event` or
// `auth.member_id` is absent or empty. `data` may be any value: an object, a list or a string
// is stored as it is (derived columns null unless it is an object), null or absent as {}.
// `nowSeconds` turns auth.expires_in into an expiry when auth.expires is absent.
// `root` is modified: token values inside data are redacted in place.
std::variant<IncomingEvent, EventError> parseEvent(BodyValue& root, std::int64_t nowSeconds);

// What a body claims to be, read without checking anything: the event code (upper-cased, as
// parseEvent stores it), auth.member_id and auth.domain, each "" when absent. For the record of
// a rejected request (SPEC §5 `rejections`), which names what it claimed. Pure; no secrets.
struct ClaimedIdentity {
  std::string event;
  std::string memberId;
  std::string domain;
};
ClaimedIdentity claimedIdentity(const BodyValue& root);

// The integer value of a scalar: an integer number, or a string of an optional '-' and digits
// that fits in 64 bits. nullopt for anything else (reals, booleans, null, containers).
std::optional<std::int64_t> integerOf(const BodyValue& value);

// The same rule for a text, e.g. an object key.
std::optional<std::int64_t> integerOf(std::string_view text);

}  // namespace b24es
