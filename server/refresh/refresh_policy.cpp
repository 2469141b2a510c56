#include "refresh_policy.h"

#include <cmath>

namespace b24es {

const char* dueReasonName(DueReason reason) {
  switch (reason) {
    case DueReason::kNotDue:
      return "not due";
    case DueReason::kNoRefreshToken:
      return "no refresh token";
    case DueReason::kDead:
      return "refresh token dead, reinstall needed";
    case DueReason::kUnproven:
      return "portal never proved real, refreshed on demand only";
    case DueReason::kOldRefreshToken:
      return "refresh token old";
    case DueReason::kAccessExpiring:
      return "access token expiring";
    case DueReason::kForced:
      return "forced";
  }
  return "not due";
}

bool isDue(DueReason reason) {
  return reason == DueReason::kOldRefreshToken || reason == DueReason::kAccessExpiring ||
         reason == DueReason::kForced;
}

DueReason keepAliveReason(const StoredToken& token, const RefreshSelection& selection,
                          int maxAgeDays, std::int64_t nowSeconds) {
  if (!token.refreshToken || token.refreshToken->empty()) return DueReason::kNoRefreshToken;
  if (selection.force) return DueReason::kForced;
  if (token.deadAt) return DueReason::kDead;
  // Anyone can post an ONAPPINSTALL with a made-up refresh token; renewing it would send the
  // client secret to the OAuth server once per fake portal and can get the application blocked.
  // Such a row is renewed when something uses it (`token`, a REST call) or an operator forces it.
  if (!token.proven) return DueReason::kUnproven;
  const std::int64_t maxAge = static_cast<std::int64_t>(maxAgeDays) * 86400;
  if (maxAgeDays == 0 || !token.refreshTokenAt || nowSeconds - *token.refreshTokenAt >= maxAge) {
    return DueReason::kOldRefreshToken;
  }
  if (selection.expiringWithinSeconds &&
      (!token.expiresAt || *token.expiresAt - nowSeconds <= *selection.expiringWithinSeconds)) {
    return DueReason::kAccessExpiring;
  }
  return DueReason::kNotDue;
}

bool accessTokenUsable(const StoredToken& token, std::int64_t nowSeconds) {
  if (token.accessToken.empty()) return false;
  return !token.expiresAt || *token.expiresAt - nowSeconds >= kAccessTokenMarginSeconds;
}

Pacer::Pacer(double rate, const Clock& clock, Sleeper sleep)
    : gapMillis_(static_cast<std::int64_t>(std::ceil(1000.0 / rate))),
      clock_(clock),
      sleep_(std::move(sleep)) {}

bool Pacer::wait() {
  if (last_) {
    std::int64_t due = *last_ + gapMillis_;
    std::int64_t now = clock_.nowMillis();
    if (now < due && !sleep_(due - now)) return false;
  }
  last_ = clock_.nowMillis();
  return true;
}

}  // namespace b24es
