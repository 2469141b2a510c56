#include "token_refresher.h"

#include "storage.h"

#include <Poco/Logger.h>

#include <chrono>
#include <cmath>

#include "log_value.h"

namespace b24es {
namespace {

Poco::Logger& refreshLog() { return Poco::Logger::get("b24es.refresh"); }

// How log lines and errors name a row: the portal and the user, never a token.
// member_id and domain came from a request once: escaped like every request value (SPEC §10).
std::string nameOf(const StoredToken& t) {
  return "portal " + logValue(t.memberId) +
         (t.domain.empty() ? "" : " (" + logValue(t.domain) + ")") + " user " +
         std::to_string(t.userId);
}

const char* claimStatusName(Claim::Status status) {
  switch (status) {
    case Claim::Status::kClaimed:
      return "claimed";
    case Claim::Status::kGone:
      return "the token row is gone";
    case Claim::Status::kChanged:
      return "another refresher or an event renewed it meanwhile";
    case Claim::Status::kBusy:
      return "another refresher is at work on it";
    case Claim::Status::kDead:
      return "its refresh token is dead";
    case Claim::Status::kNoRefreshToken:
      return "it has no refresh token";
    case Claim::Status::kNotWanted:
      return "it no longer needs a refresh";
  }
  return "skipped";
}

}  // namespace

std::int64_t refreshLeaseSeconds(const RefreshSettings& refresh) {
  const auto pacing = static_cast<std::int64_t>(std::ceil(1.0 / refresh.rate));
  return static_cast<std::int64_t>(refresh.timeoutSeconds) + pacing + kLeaseMarginSeconds;
}

const char* resultName(RefreshResult result) {
  switch (result) {
    case RefreshResult::kSuccess:
      return "success";
    case RefreshResult::kDead:
      return "dead";
    case RefreshResult::kTransient:
      return "transient";
    case RefreshResult::kRefused:
      return "refused";
    case RefreshResult::kSkipped:
      return "skipped";
  }
  return "skipped";
}

std::string PassReport::summary(bool dryRun) const {
  std::string line = dryRun ? "refresh-tokens (dry run):" : "refresh-tokens:";
  line += " checked=" + std::to_string(checked) + " due=" + std::to_string(due);
  if (!dryRun) {
    line += " success=" + std::to_string(success) + " dead=" + std::to_string(dead) +
            " transient=" + std::to_string(transient) + " refused=" + std::to_string(refused) +
            " skipped=" + std::to_string(skipped);
  }
  line += " need_reinstall=" + std::to_string(needReinstall);
  return line;
}

TokenRefresher::TokenRefresher(TokenStore& store, OAuthClient& client, const OAuthSettings& oauth,
                               const RefreshSettings& refresh, const Clock& clock, Sleeper sleep,
                               Options options)
    : store_(store),
      client_(client),
      oauth_(oauth),
      refresh_(refresh),
      clock_(clock),
      sleep_(sleep ? std::move(sleep)
                   : [this](std::int64_t millis) { return this->sleep(millis); }),
      options_([&] {
        Options o = options;
        if (o.leaseSeconds <= 0) o.leaseSeconds = refreshLeaseSeconds(refresh);
        return o;
      }()) {}

void TokenRefresher::requestStop() {
  {
    MutexLock lock(stopMutex_);
    stopping_ = true;
  }
  stopChanged_.signalAll();
}

bool TokenRefresher::sleep(std::int64_t millis) {
  MutexLock lock(stopMutex_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(millis);
  while (!stopping_.load()) {
    if (!stopChanged_.waitUntil(stopMutex_, deadline) &&
        std::chrono::steady_clock::now() >= deadline)
      break;
  }
  return !stopping_.load();
}

std::optional<StoredToken> TokenRefresher::reread(const StoredToken& token) {
  return store_.findToken(token.memberId, token.userId);
}

PassReport TokenRefresher::runPass(const RefreshSelection& selection, bool dryRun) {
  PassReport report;
  Pacer pacer(refresh_.rate, clock_, sleep_);
  const int maxAgeDays = refresh_.maxAgeDays;
  for (const StoredToken& row : store_.listTokens(selection.memberId)) {
    ++report.checked;
    const DueReason reason = keepAliveReason(row, selection, maxAgeDays, clock_.nowSeconds());
    if (reason == DueReason::kDead) {
      ++report.needReinstall;
      refreshLog().warning("%s needs a reinstall: its refresh token is dead (%s)", nameOf(row),
                           logValue(row.lastRefreshError.value_or("no error recorded")));
      continue;
    }
    if (!isDue(reason)) continue;
    ++report.due;
    report.dueTokens.push_back(DueToken{row.memberId, row.domain, row.userId, reason});
    if (dryRun) continue;
    if (stopping_) {
      ++report.skipped;
      continue;
    }

    ClaimRequest request;
    request.memberId = row.memberId;
    request.userId = row.userId;
    request.expectedRefreshToken = row.refreshToken;
    request.includeDead = selection.force;
    request.leaseSeconds = options_.leaseSeconds;
    // Re-decided on the row as it is now: a refresher that finished in the meantime renewed
    // refresh_token_at, so the row is no longer old and is left alone.
    request.stillWanted = [&](const StoredToken& fresh) {
      return isDue(keepAliveReason(fresh, selection, maxAgeDays, clock_.nowSeconds()));
    };
    Claim claim = store_.claim(request, clock_.nowSeconds());
    if (claim.status != Claim::Status::kClaimed) {
      ++report.skipped;
      refreshLog().information("skipped %s: %s", nameOf(row),
                               std::string(claimStatusName(claim.status)));
      continue;
    }
    switch (refreshClaimed(claim, pacer).result) {
      case RefreshResult::kSuccess:
        ++report.success;
        break;
      case RefreshResult::kDead:
        ++report.dead;
        break;
      case RefreshResult::kTransient:
        ++report.transient;
        break;
      case RefreshResult::kRefused:
        ++report.refused;
        break;
      case RefreshResult::kSkipped:
        ++report.skipped;
        break;
    }
  }
  return report;
}

TokenOutcome TokenRefresher::refreshClaimed(const Claim& claim, Pacer& pacer) {
  const StoredToken& row = *claim.token;
  const std::string refreshToken = row.refreshToken.value_or("");
  OAuthAnswer answer;
  const TokenEndpoint endpoint = tokenEndpointFor(row.serverEndpoint, oauth_);
  if (!endpoint.allowed) {
    answer.kind = OAuthAnswer::Kind::kRefused;
    answer.error = "host_not_allowed";
    answer.description = endpoint.error;
  } else {
    if (!pacer.wait()) {
      store_.release(claim);
      return TokenOutcome{RefreshResult::kSkipped, "stopping", row};
    }
    answer = client_.refresh(endpoint.url, oauth_.clientId, oauth_.clientSecret, refreshToken);
  }

  const std::int64_t now = clock_.nowSeconds();
  TokenOutcome outcome;
  if (answer.kind == OAuthAnswer::Kind::kSuccess) {
    RefreshedTokens fresh;
    fresh.accessToken = answer.tokens.accessToken;
    fresh.refreshToken = answer.tokens.refreshToken;
    if (answer.tokens.expires) {
      fresh.expiresAt = answer.tokens.expires;
    } else if (answer.tokens.expiresIn) {
      fresh.expiresAt = now + *answer.tokens.expiresIn;
    }
    fresh.scope = answer.tokens.scope;
    fresh.clientEndpoint = answer.tokens.clientEndpoint;
    fresh.serverEndpoint = answer.tokens.serverEndpoint;
    fresh.status = answer.tokens.status;
    // Bitrix24 has already spent the old refresh token: losing this write loses the portal's
    // authorization, so a failed write (e.g. the disk was briefly full) is tried again.
    bool written = false;
    for (int attempt = 1;; ++attempt) {
      try {
        written = store_.recordSuccess(claim, fresh, now);
        break;
      } catch (const StorageError& e) {
        if (attempt == 3) {
          refreshLog().critical(
              "refreshed the token of %s but could not store it (%s): the new pair is lost and "
              "the portal will need a reinstall",
              nameOf(row), std::string(e.what()));
          throw;
        }
        refreshLog().warning("storing the refreshed token of %s failed (%s); trying again",
                             nameOf(row), std::string(e.what()));
      }
    }
    if (written) {
      refreshLog().information("refreshed the token of %s", nameOf(row));
    } else {
      refreshLog().warning(
          "refreshed the token of %s, but an install or event replaced the row meanwhile; "
          "kept the row's newer token",
          nameOf(row));
    }
    outcome.result = RefreshResult::kSuccess;
  } else {
    // The secrets are redacted again here, over the error code too (the server chose it): a
    // fake or broken client must not leak them either. Cut, as it came from a remote server.
    const std::string error = redactSecrets(answer.error.substr(0, 64) + ": " + answer.description,
                                            {oauth_.clientSecret, refreshToken, row.accessToken});
    const bool dead = answer.kind == OAuthAnswer::Kind::kDead;
    bool written = store_.recordFailure(claim, error, dead, now);
    if (dead) {
      refreshLog().error("the refresh token of %s is dead (%s): the portal needs a reinstall%s",
                         nameOf(row), logValue(error),
                         std::string(written ? "" : "; the row changed meanwhile and was kept"));
      outcome.result = RefreshResult::kDead;
    } else {
      refreshLog().warning("refresh of %s failed (%s)%s", nameOf(row), logValue(error),
                           std::string(written ? "" : "; the row changed meanwhile and was kept"));
      outcome.result = answer.kind == OAuthAnswer::Kind::kRefused ? RefreshResult::kRefused
                                                                  : RefreshResult::kTransient;
    }
    outcome.detail = error;
  }
  outcome.token = reread(row);
  return outcome;
}

AccessTokenResult TokenRefresher::accessToken(const std::string& memberId,
                                              const std::optional<std::int64_t>& userId,
                                              bool forceRefresh) {
  AccessTokenResult result;
  std::optional<StoredToken> row = store_.findToken(memberId, userId);
  const std::string who =
      "portal " + memberId + (userId ? " user " + std::to_string(*userId) : std::string());
  if (!row) {
    result.error = "no token stored for " + who;
    return result;
  }
  if (!forceRefresh && accessTokenUsable(*row, clock_.nowSeconds())) {
    result.accessToken = row->accessToken;
    return result;
  }
  if (oauth_.clientId.empty() || oauth_.clientSecret.empty()) {
    result.error = "the access token of " + nameOf(*row) +
                   " needs a refresh, and bitrix24.client_id or bitrix24.client_secret is not set";
    result.configError = true;
    return result;
  }
  const std::string seenAccessToken = row->accessToken;
  Pacer pacer(refresh_.rate, clock_, sleep_);
  std::optional<std::string> expected = row->refreshToken;
  const std::int64_t attempts =
      std::max<std::int64_t>(1, options_.busyWaitLimitMillis / options_.busyWaitMillis);
  for (std::int64_t attempt = 0; attempt < attempts; ++attempt) {
    ClaimRequest request;
    request.memberId = row->memberId;
    request.userId = row->userId;
    request.expectedRefreshToken = expected;
    request.leaseSeconds = options_.leaseSeconds;
    if (!forceRefresh) {
      request.stillWanted = [this](const StoredToken& fresh) {
        return !accessTokenUsable(fresh, clock_.nowSeconds());
      };
    }
    Claim claim = store_.claim(request, clock_.nowSeconds());
    // Someone else's fresh token: a concurrent refresher, an install or an event.
    auto usableNewToken = [&](const std::optional<StoredToken>& t) {
      return t && t->accessToken != seenAccessToken && accessTokenUsable(*t, clock_.nowSeconds());
    };
    switch (claim.status) {
      case Claim::Status::kClaimed: {
        TokenOutcome outcome = refreshClaimed(claim, pacer);
        if (outcome.result == RefreshResult::kSuccess && outcome.token &&
            accessTokenUsable(*outcome.token, clock_.nowSeconds())) {
          result.accessToken = outcome.token->accessToken;
          result.refreshed = true;
          return result;
        }
        if (usableNewToken(outcome.token)) {
          result.accessToken = outcome.token->accessToken;
          return result;
        }
        result.error = "cannot refresh the token of " + nameOf(*row) + ": " +
                       (outcome.detail.empty() ? "the new token is not usable" : outcome.detail);
        if (outcome.result == RefreshResult::kDead) {
          result.error += "; the portal needs a reinstall";
        }
        return result;
      }
      case Claim::Status::kNotWanted:
        result.accessToken = claim.token->accessToken;
        return result;
      case Claim::Status::kChanged:
        if (usableNewToken(claim.token) || (!forceRefresh && claim.token &&
                                            accessTokenUsable(*claim.token, clock_.nowSeconds()))) {
          result.accessToken = claim.token->accessToken;
          return result;
        }
        row = claim.token;
        expected = row->refreshToken;
        continue;
      case Claim::Status::kBusy: {
        if (!sleep_(options_.busyWaitMillis)) {
          result.error = "stopped while waiting for another refresher";
          return result;
        }
        continue;
      }
      case Claim::Status::kDead:
        result.error = "the refresh token of " + nameOf(*claim.token) + " is dead (" +
                       claim.token->lastRefreshError.value_or("no error recorded") +
                       "): the portal needs a reinstall";
        return result;
      case Claim::Status::kNoRefreshToken:
        result.error = "no usable access token and no refresh token stored for " +
                       nameOf(*claim.token) + "; an install must bring one";
        return result;
      case Claim::Status::kGone:
        result.error = "no token stored for " + who;
        return result;
    }
  }
  result.error = "another refresher kept the token of " + nameOf(*row) + " busy; try again";
  return result;
}

}  // namespace b24es
