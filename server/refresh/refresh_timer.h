// The keep-alive pass inside `serve` (SPEC §6): every refresh.interval seconds, on a
// Poco::Util::Timer thread of its own, so a slow token endpoint never holds up ingest.
#pragma once

#include <Poco/Util/Timer.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "clock.h"
#include "oauth_client.h"
#include "refresh_settings.h"
#include "token_refresher.h"
#include "token_store.h"

namespace b24es {

// Not thread-safe itself: start and stop from one thread. Passes run on the timer's thread.
class KeepAliveTimer {
 public:
  // Called after every pass with its counts (for metrics); runs on the timer thread.
  using PassObserver = std::function<void(const PassReport&)>;

  // Uses the real HTTP client. References must outlive the timer. Throws
  // Poco::Net::SSLException when the TLS context cannot be created.
  KeepAliveTimer(TokenStore& store, const OAuthSettings& oauth, const RefreshSettings& refresh,
                 const Clock& clock, PassObserver observer = {});
  ~KeepAliveTimer();  // stops

  // The first pass runs at once, then every refresh.interval seconds after the previous one
  // ended (a pass never overlaps the next). Once per timer: a stopped timer does not restart.
  void start();
  // Interrupts the pacing of a running pass, waits for it to end (at most one request with its
  // timeouts), cancels the schedule. Idempotent.
  void stop();

  std::size_t passesCompleted() const { return passes_.load(); }

 private:
  void runPass();

  const RefreshSettings refresh_;  // const after construction
  HttpOAuthClient client_;
  TokenRefresher refresher_;
  PassObserver observer_;  // const after construction
  std::atomic<std::size_t> passes_{0};
  std::unique_ptr<Poco::Util::Timer> timer_;  // started by start(), reset by stop()
};

// Why the keep-alive timer of `serve` is off ("" when it runs): refresh.interval is 0, or the
// application's credentials are not configured.
std::string keepAliveDisabledReason(const OAuthSettings& oauth, const RefreshSettings& refresh);

}  // namespace b24es
