// Event verification, SPEC §4: who may store what, decided from the stored portal record and
// the configured static application tokens. Pure functions; thread-safe. The store calls the
// verifier inside its write transaction, so the decision and the writes it allows are atomic.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "records.h"

namespace b24es {

// Decides what may be stored for `event` given the portal's stored record (nullopt when none)
// and `staticTokens` (bitrix24.application_tokens). Reasons never contain a token.
Verdict verifyEvent(const IncomingEvent& event, const std::optional<PortalRecord>& portal,
                    const std::vector<std::string>& staticTokens);

}  // namespace b24es
