// Turns the raw body of a Bitrix24 event POST (PHP-style form or JSON) into one object tree
// (body_value.h), enforcing the SPEC §4 limits so that hostile bodies are rejected before they
// cost much.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "body_value.h"

namespace b24es {

// Limits applied while decoding an event body (SPEC §4).
struct DecodeLimits {
  std::size_t maxDepth = 32;     // deepest bracket level allowed: data[FIELDS][ID] has 2
  std::size_t maxPairs = 10000;  // most key=value pairs (form) or scalar leaves (JSON)
  // Most objects and arrays the body may create below the top level. Not in SPEC §4 (an
  // extension of its 10,000-field rule): without it 10,000 pairs of 32 levels each would build
  // 320,000 of them (~360 MB when they were Poco::JSON::Objects).
  std::size_t maxContainers = 10000;
};

// Why a body was rejected; code is a stable machine word, message a human sentence
// that never quotes the body (it may hold tokens).
struct DecodeError {
  std::string code;  // "malformed_body", "nesting_too_deep" or "too_many_fields"
  std::string message;
};

// Exactly one of root / error is set; root is always an object.
struct DecodedBody {
  std::optional<BodyValue> root;
  std::optional<DecodeError> error;
};

// application/x-www-form-urlencoded with PHP bracket keys, decoded as PHP's parse_str does.
// Keys and values are sanitized to UTF-8; values always stay strings; key order is preserved.
// On failure returns `error` instead of `root`: too_many_fields when there are more than
// limits.maxPairs non-empty '&' segments or the keys create more than limits.maxContainers
// nested PHP arrays (JSON objects or arrays; one replaced by a scalar still counts),
// nesting_too_deep when a key has more than limits.maxDepth bracket levels (a maxDepth above 1024
// is treated as 1024 to bound recursion), malformed_body only if building the tree fails
// unexpectedly (e.g. out of memory). Never throws. Thread-safe: a pure function of its arguments
// with no shared state.
DecodedBody decodeFormBody(std::string_view body, const DecodeLimits& limits);

// application/json; the top level must be an object.
// The body is sanitized to UTF-8 first; scalars keep their JSON types; key order is preserved.
// On failure returns `error` instead of `root`: malformed_body for a syntax error or a top level
// that is not an object, nesting_too_deep when a container lies more than limits.maxDepth levels
// below the top-level object (same clamp to 1024 as above), too_many_fields when the document has
// more than limits.maxPairs scalar leaves plus empty containers or more than limits.maxContainers
// objects and arrays below the top level. Never throws.
// Thread-safe: a pure function of its arguments with no shared state.
DecodedBody decodeJsonBody(std::string_view body, const DecodeLimits& limits);

// PHP urldecode(): '+' is a space, %XX with two hex digits is that byte, any other '%' stays
// literal. Cannot fail on any input (only std::bad_alloc can escape). Thread-safe: pure function.
std::string phpUrlDecode(std::string_view in);

// Returns `in` with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD
// (overlongs, surrogates, > U+10FFFF and truncated sequences are invalid).
// Cannot fail on any input (only std::bad_alloc can escape). Thread-safe: pure function.
std::string sanitizeUtf8(std::string_view in);

}  // namespace b24es
