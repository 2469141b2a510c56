#include "refresh_timer.h"

#include <Poco/Logger.h>

namespace b24es {

KeepAliveTimer::KeepAliveTimer(TokenStore& store, const OAuthSettings& oauth,
                               const RefreshSettings& refresh, const Clock& clock,
                               PassObserver observer)
    : refresh_(refresh),
      client_(oauth, httpOAuthOptions(refresh)),
      refresher_(store, client_, oauth, refresh, clock),
      observer_(std::move(observer)) {}

KeepAliveTimer::~KeepAliveTimer() { stop(); }

void KeepAliveTimer::start() {
  if (timer_) return;
  timer_ = std::make_unique<Poco::Util::Timer>();
  timer_->schedule(Poco::Util::Timer::func([this] { runPass(); }), 0,
                   static_cast<long>(refresh_.intervalSeconds) * 1000);
}

void KeepAliveTimer::stop() {
  if (!timer_) return;
  refresher_.requestStop();
  // A request in flight ends now rather than at refresh.timeout, so serve stops within its
  // grace period.
  client_.abort();
  timer_->cancel(true);
  timer_.reset();  // joins the timer thread after the running pass, if any
}

void KeepAliveTimer::runPass() {
  Poco::Logger& log = Poco::Logger::get("b24es.refresh");
  try {
    PassReport report = refresher_.runPass(RefreshSelection{}, false);
    if (report.due > 0 || report.needReinstall > 0) log.information("%s", report.summary(false));
    ++passes_;
    if (observer_) observer_(report);
  } catch (const std::exception& e) {
    // The next pass tries again; ingest is not affected.
    log.error("keep-alive pass failed: %s", std::string(e.what()));
  }
}

std::string keepAliveDisabledReason(const OAuthSettings& oauth, const RefreshSettings& refresh) {
  if (refresh.intervalSeconds == 0) return "refresh.interval is 0";
  if (oauth.clientId.empty() || oauth.clientSecret.empty()) {
    return "bitrix24.client_id or bitrix24.client_secret is not set";
  }
  return "";
}

}  // namespace b24es
