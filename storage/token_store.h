// The token store: what OAuth token refresh (SPEC §6) reads and writes on the `tokens` rows.
// A refresh claims its row with a lease before it spends the refresh token and writes its
// result only while the row still holds that token, so refreshers in any number of threads
// and processes never spend one refresh token twice and never overwrite a newer token.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace b24es {

// A `tokens` row with the portal fields a refresh needs. accessToken and refreshToken are
// secrets: never log, print (except `token`'s one line) or serve them.
struct StoredToken {
  std::string memberId;
  std::int64_t userId = 0;
  std::string domain;          // portals.domain, for log lines
  std::string serverEndpoint;  // portals.server_endpoint: where the token endpoint is
  std::string accessToken;     // empty when NULL
  std::optional<std::string> refreshToken;
  std::optional<std::int64_t> expiresAt;       // access token expiry, unix seconds
  std::optional<std::int64_t> refreshTokenAt;  // when the refresh token was obtained
  std::string source;                          // install, event or refresh
  std::optional<std::int64_t> lastRefreshAt;   // last refresh attempt that got a result
  std::optional<std::string> lastRefreshError;
  std::int64_t refreshFailures = 0;
  std::optional<std::int64_t> deadAt;      // Bitrix24 said the refresh token is dead
  std::optional<std::int64_t> leaseUntil;  // a refresher holds the row until then
  bool fromInstall = false;                // the authorization came from ONAPPINSTALL
  // The portal proved real: Bitrix24 sent a token for this row with an event or a refresh (source
  // is not 'install'), or the portal sent a verified event other than ONAPPINSTALL. A row that
  // is not is refreshed only on demand (see keepAliveReason).
  bool proven = true;
};

// What a successful refresh answer gives. Empty strings keep the stored value.
struct RefreshedTokens {
  std::string accessToken;   // secret
  std::string refreshToken;  // secret
  std::optional<std::int64_t> expiresAt;
  std::string scope;
  std::string clientEndpoint;  // written to the portal
  std::string serverEndpoint;  // written to the portal
  std::string status;          // written to the portal
};

// What a refresher asks for when it claims a row.
struct ClaimRequest {
  std::string memberId;
  std::int64_t userId = 0;
  // The refresh token the caller saw. When the row holds another one, someone refreshed it (or
  // an install or event replaced it) since: the claim answers kChanged and spends nothing.
  std::optional<std::string> expectedRefreshToken;
  bool includeDead = false;         // claim a row marked dead (an operator's --force)
  std::int64_t leaseSeconds = 300;  // must outlast the HTTP request, its deadline included
  // Decides on the row as re-read inside the claim transaction whether it still needs a
  // refresh (another refresher may have renewed it). Called under the write lock: must be pure
  // and fast. Empty: always.
  std::function<bool(const StoredToken&)> stillWanted;
};

// The answer to a claim. On kClaimed the caller holds the lease and must call exactly one of
// recordSuccess, recordFailure or release with it.
struct Claim {
  enum class Status {
    kClaimed,         // the lease is ours
    kGone,            // no such row (uninstalled, or never stored)
    kChanged,         // the row holds another refresh token than expected
    kBusy,            // another refresher holds an unexpired lease
    kDead,            // marked dead and not includeDead
    kNoRefreshToken,  // nothing to refresh with
    kNotWanted,       // stillWanted said no
  };
  Status status = Status::kGone;
  std::optional<StoredToken> token;  // the row as read inside the transaction
  std::string leaseOwner;            // set when kClaimed
};

// Thread-safe; every method may be called from any thread and any number of processes may use
// the same database at once. Every method throws StorageError when the database fails.
class TokenStore {
 public:
  virtual ~TokenStore() = default;
  // Every token row, of one portal when memberId is set, ordered by member_id, user_id.
  virtual std::vector<StoredToken> listTokens(const std::optional<std::string>& memberId) = 0;
  // One row. Without userId: the installing user's (the row written by ONAPPINSTALL, the lowest
  // user id among several), else the lowest user id of the portal. nullopt when none.
  virtual std::optional<StoredToken> findToken(const std::string& memberId,
                                               const std::optional<std::int64_t>& userId) = 0;
  // Re-reads the row and, when it is free and still wanted, leases it to a new random owner,
  // all in one immediate transaction. Never blocks on another refresher beyond the database's
  // busy timeout: a held lease answers kBusy at once.
  virtual Claim claim(const ClaimRequest& request, std::int64_t nowSeconds) = 0;
  // Stores a successful answer in one transaction: token row (access and refresh token, expiry,
  // scope, refresh_token_at, last_refresh_at, source 'refresh', error and failures cleared, dead
  // marker and lease cleared) and portal (endpoints, status). Writes only while the row still
  // holds the claimed refresh token; returns false (and only releases the lease) otherwise.
  virtual bool recordSuccess(const Claim& claim, const RefreshedTokens& fresh,
                             std::int64_t nowSeconds) = 0;
  // Records a failed refresh: last_refresh_error (no secrets in it), refresh_failures + 1,
  // last_refresh_at, the dead marker when `dead`; keeps the stored refresh token. Writes only
  // while the row still holds the claimed refresh token; returns false otherwise. Releases the
  // lease either way.
  virtual bool recordFailure(const Claim& claim, const std::string& error, bool dead,
                             std::int64_t nowSeconds) = 0;
  // Gives the lease back without a result (the attempt was abandoned before any request).
  virtual void release(const Claim& claim) = 0;
};

}  // namespace b24es
