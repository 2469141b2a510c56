// When a token is refreshed (SPEC §6), as pure decisions over a stored row and a time, and the
// pacing of token requests by refresh.rate. Bitrix24 asks applications not to refresh "just in
// case": a keep-alive pass renews only refresh tokens that are getting old (or, when asked, access
// tokens about to expire), and `token` refreshes only an access token that is no longer usable.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "clock.h"
#include "token_store.h"

namespace b24es {

// What a keep-alive pass selects (the options of `refresh-tokens`).
struct RefreshSelection {
  std::optional<std::int64_t> expiringWithinSeconds;  // also access tokens expiring this soon
  std::optional<std::string> memberId;                // one portal only
  bool force = false;  // every selected token regardless of age, dead ones included
};

// Why a keep-alive pass would (or would not) refresh a row.
enum class DueReason {
  kNotDue,           // fresh enough
  kNoRefreshToken,   // nothing to refresh with (tokens learned from ordinary events)
  kDead,             // Bitrix24 said the refresh token is dead; waits for a reinstall
  kUnproven,         // the portal never proved real (StoredToken::proven): on demand only
  kOldRefreshToken,  // refresh token older than refresh.max_age_days (0: every token)
  kAccessExpiring,   // access token expires within --expiring-within (or its expiry is unknown)
  kForced,           // --force
};

const char* dueReasonName(DueReason reason);
bool isDue(DueReason reason);

// The reason for `token` under `selection` at `nowSeconds`. A refresh token of unknown age
// counts as old. Pure; thread-safe.
DueReason keepAliveReason(const StoredToken& token, const RefreshSelection& selection,
                          int maxAgeDays, std::int64_t nowSeconds);

// How long before its expiry an access token stops being handed out by `token`: a script that
// gets it must still have time to make its call.
inline constexpr std::int64_t kAccessTokenMarginSeconds = 30;

// True when the stored access token can be used now: present, and either of unknown expiry (a
// call answering expired_token then asks for --refresh) or valid for at least the margin.
bool accessTokenUsable(const StoredToken& token, std::int64_t nowSeconds);

// Sleeps for the given milliseconds; returns false when woken early because work should stop.
using Sleeper = std::function<bool(std::int64_t millis)>;

// Spaces requests at least 1/rate seconds apart, measured on `clock`; the first goes at once.
// Not thread-safe: one per pass.
class Pacer {
 public:
  // rate > 0 requests per second. `clock` must outlive the pacer.
  Pacer(double rate, const Clock& clock, Sleeper sleep);
  // Waits until the next request may go; false when the sleeper was interrupted.
  bool wait();

 private:
  const std::int64_t gapMillis_;  // const after construction
  const Clock& clock_;
  Sleeper sleep_;
  std::optional<std::int64_t> last_;  // when the previous request went, clock millis
};

}  // namespace b24es
