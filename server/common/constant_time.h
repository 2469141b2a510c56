// Comparing secrets (application tokens, the query bearer token) without telling by the time
// taken how much of a guess was right. Shared by the verifier (server/bitrix24) and the query
// listener's bearer check (server/query), which must not depend on each other.
#pragma once

#include <string_view>

namespace b24es {

// Compares two secrets in time that depends only on their lengths. Written by hand: neither
// POCO nor the standard library offers a constant-time comparison. Pure; thread-safe.
bool constantTimeEquals(std::string_view a, std::string_view b);

}  // namespace b24es
