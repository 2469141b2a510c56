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
  // There is deliberately no bound on the number of objects and arrays: SPEC §4 (v2) forbids
  // rejecting a body whose tree is within the two limits above, and 10,000 pairs of 32 levels
  // may build 320,000 of them. The work is bounded by maxPairs × maxDepth steps instead, and
  // the memory by the body size (each container costs at least "[]" or "[" "]" of it).
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

// application/x-www-form-urlencoded with PHP bracket keys, decoded as PHP 8.2 fills $_POST from
// a POST body (main/php_variables.c: php_std_post_handler, php_register_variable_ex), checked
// against the real PHP by tests/php_differential_test.cpp. Each decoded key is sanitized to
// UTF-8 before its brackets are read (so two keys that differ only in invalid bytes are one key);
// values always stay strings; key order is PHP's. A nested PHP array whose keys are 0..n-1 in
// order (the empty one included) becomes an array, every other one an object; the top level is
// always an object.
// On failure returns `error` instead of `root`: too_many_fields when there are more than
// limits.maxPairs non-empty '&' segments, nesting_too_deep when a key has more than
// limits.maxDepth bracket levels (a maxDepth above 1024 is treated as 1024 to bound recursion),
// malformed_body only if building the tree fails unexpectedly (e.g. out of memory). Never
// throws. Thread-safe: a pure function of its arguments with no shared state.
DecodedBody decodeFormBody(std::string_view body, const DecodeLimits& limits);

// application/json; the top level must be an object.
// The body is sanitized to UTF-8 first; scalars keep their JSON types; key order is preserved.
// On failure returns `error` instead of `root`: malformed_body for a syntax error or a top level
// that is not an object, nesting_too_deep when a container lies more than limits.maxDepth levels
// below the top-level object (same clamp to 1024 as above), too_many_fields when the document has
// more than limits.maxPairs scalar leaves plus empty containers. Never throws.
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
