// Token refresh (SPEC §6): a keep-alive pass over the stored tokens, and the on-demand refresh
// behind `b24-event-store token`. Each refresh claims its row in the TokenStore before it spends
// the refresh token, so passes in the serve timer, cron jobs and `token` calls in other processes
// never send one refresh token twice. Used by `serve` (KeepAliveTimer), `refresh-tokens` and
// `token`; the decisions are in refresh_policy.h, the HTTP in oauth_client.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clock.h"
#include "mutex.h"
#include "oauth_client.h"
#include "refresh_policy.h"
#include "refresh_settings.h"
#include "token_store.h"

namespace b24es {

// How one token's refresh ended. Names (resultName) are the metric labels.
enum class RefreshResult {
  kSuccess,    // new pair stored
  kDead,       // Bitrix24 said the refresh token is dead: row marked, reinstall needed
  kTransient,  // failed for now: error recorded, refresh token kept
  kRefused,    // server_endpoint not allowed: nothing sent, failure recorded
  kSkipped,    // not attempted: another refresher holds or just renewed it, or stop requested
};
const char* resultName(RefreshResult result);

struct TokenOutcome {
  RefreshResult result = RefreshResult::kSkipped;
  std::string detail;                // the error or why skipped; no secrets
  std::optional<StoredToken> token;  // the row re-read after the attempt (nullopt: gone)
};

// One token a dry run would refresh.
struct DueToken {
  std::string memberId;
  std::string domain;
  std::int64_t userId = 0;
  DueReason reason = DueReason::kNotDue;
};

// What one keep-alive pass did. success + dead + transient + refused + skipped == due.
struct PassReport {
  std::size_t checked = 0;  // token rows looked at
  std::size_t due = 0;      // selected by the policy
  std::size_t success = 0, dead = 0, transient = 0, refused = 0, skipped = 0;
  std::size_t needReinstall = 0;  // rows marked dead, left alone (not counted in due)
  std::vector<DueToken> dueTokens;
  std::size_t failed() const { return dead + transient + refused; }
  // One line, e.g. "refresh-tokens: checked=3 due=1 success=1 dead=0 transient=0 refused=0
  // skipped=0 need_reinstall=0".
  std::string summary(bool dryRun) const;
};

// The outcome of `token`: an access token to print, or why there is none.
struct AccessTokenResult {
  std::optional<std::string> accessToken;  // secret
  std::string error;                       // when none; no secrets
  bool refreshed = false;                  // this call refreshed it
  bool configError = false;  // a refresh was needed and the client id or secret is not set
};

// How long a refresher holds a row it claimed (SPEC §6: the lease always outlives the request):
// the pacing wait before the request (1 / refresh.rate), the request itself (refresh.timeout,
// from connect to last byte, enforced by HttpOAuthClient) and a margin for the name lookup
// before the connect and for storing the answer (busy timeouts, retries). Pure.
std::int64_t refreshLeaseSeconds(const RefreshSettings& refresh);
inline constexpr std::int64_t kLeaseMarginSeconds = 60;

// Tunables of TokenRefresher.
struct RefresherOptions {
  // The lease a claim takes; 0: refreshLeaseSeconds(refresh). Tests set it to a small value.
  std::int64_t leaseSeconds = 0;
  std::int64_t busyWaitMillis = 100;         // `token`: poll interval while another refreshes
  std::int64_t busyWaitLimitMillis = 60000;  // `token`: give up waiting after this
};

class TokenRefresher {
 public:
  using Options = RefresherOptions;

  // References must outlive the refresher. `sleep` paces requests (default: a real sleep that
  // requestStop() interrupts); tests pass one that moves a fake clock.
  TokenRefresher(TokenStore& store, OAuthClient& client, const OAuthSettings& oauth,
                 const RefreshSettings& refresh, const Clock& clock, Sleeper sleep = {},
                 Options options = {});

  // One keep-alive pass: every selected row whose DueReason is due is claimed, refreshed and
  // recorded, paced by refresh.rate. With dryRun, only lists the due rows (dueTokens). Throws
  // StorageError when the database fails; a failed refresh is a count, not an exception.
  // Not reentrant: one pass at a time per refresher.
  PassReport runPass(const RefreshSelection& selection, bool dryRun);

  // The access token for `token MEMBER_ID [--user-id N] [--refresh]`: the stored one while
  // usable, else (or with forceRefresh) refreshed first. When another refresher is at work on the
  // row, waits for it and uses its result. Throws StorageError when the database fails.
  AccessTokenResult accessToken(const std::string& memberId,
                                const std::optional<std::int64_t>& userId, bool forceRefresh);

  // Makes a running pass stop before its next request. Thread-safe.
  void requestStop();

 private:
  // Refreshes a claimed row: checks the endpoint, paces, asks the client, records the answer.
  TokenOutcome refreshClaimed(const Claim& claim, Pacer& pacer);
  bool sleep(std::int64_t millis);  // the default sleeper; false when stopping
  std::optional<StoredToken> reread(const StoredToken& token);

  TokenStore& store_;
  OAuthClient& client_;
  const OAuthSettings oauth_;      // const after construction
  const RefreshSettings refresh_;  // const after construction
  const Clock& clock_;
  Sleeper sleep_;          // const after construction
  const Options options_;  // const after construction

  Mutex stopMutex_;
  CondVar stopChanged_;  // signals stopping_
  // Written under stopMutex_, so that sleep() cannot miss it; read without it between requests.
  std::atomic<bool> stopping_{false};
};

}  // namespace b24es
