// The running service: storage opened and migrated, the event sink, and the two HTTP
// listeners. `b24-event-store serve` runs one; integration tests run one in-process on port 0.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "clock.h"
#include "http_server.h"
#include "metrics.h"
#include "portal_jobs.h"
#include "settings.h"
#include "storage.h"

namespace b24es {

class KeepAliveTimer;
class StreamHub;
class RetentionTimer;
class HttpOAuthClient;
class TokenRefresher;
class RestClient;
class Interrupter;
class LifecycleVerifier;
class BindingSync;
class OfflineQueue;

// A start-up failure: bad configuration, database or migration error, port in use.
class ServiceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Not thread-safe itself (start and stop from one thread); serves requests on its own pools.
class Service {
 public:
  // Opens the database, applies pending migrations and binds both listeners (port 0 picks a
  // free one). Throws ServiceError. `clock` must outlive the service.
  Service(const Settings& settings, const Clock& clock);
  ~Service();  // stops if still running

  void start();
  // Graceful stop: no new connections, in-flight requests finish (up to `grace`), every
  // acknowledged event is committed, the writer closes.
  void stop(Poco::Timespan grace = Poco::Timespan(10, 0));

  std::string ingestUrl() const;  // http://host:port of the bound ingest listener
  std::string queryUrl() const;
  Storage& storage() { return *storage_; }
  // The counters /metrics serves; thread-safe. Lives as long as the service.
  Metrics& metrics() { return metrics_; }
  // The REST client of SPEC §8 (tokens refreshed through the lease); thread-safe.
  RestClient& rest() { return *rest_; }

 private:
  void afterStore(const IncomingEvent& event);  // after an answer 200: start background work
  void runPortalJob(PortalJobs::Kind kind, const std::string& memberId);
  void stopRest();  // ends REST waits, the offline timer, the jobs and the lifecycle workers

  const Settings settings_;  // const after construction
  Metrics metrics_;          // thread-safe; declared first so it outlives the writer and servers
  std::unique_ptr<Storage> storage_;
  // The live streams' hub: after storage_ (it reads through it), before the writer (which
  // reports commits to it) and the query listener (whose streams it feeds), which go first.
  std::unique_ptr<StreamHub> streams_;
  std::unique_ptr<EventSink> sink_;
  // Talking to portals (SPEC §8); after the sink, so that they go first.
  std::unique_ptr<Interrupter> restStop_;  // cuts REST waits short on stop
  std::unique_ptr<HttpOAuthClient> restOAuth_;
  std::unique_ptr<TokenRefresher> restRefresher_;
  std::unique_ptr<RestClient> rest_;
  std::unique_ptr<LifecycleVerifier> lifecycle_;
  std::unique_ptr<BindingSync> bindings_;   // null when no bindings are configured
  std::unique_ptr<OfflineQueue> offline_;   // null when bitrix24.offline_events is empty
  std::unique_ptr<PortalJobs> portalJobs_;  // bindings and offline passes in the background
  std::thread offlineTimer_;                // offline.interval passes; not joinable when off
  std::unique_ptr<HttpServer> ingest_;
  std::unique_ptr<HttpServer> query_;
  bool running_ = false;
  std::unique_ptr<KeepAliveTimer> refreshTimer_;    // token keep-alive; null when off
  std::unique_ptr<RetentionTimer> retentionTimer_;  // retention and timeline pruning
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool isLoopbackHost(const std::string& host);

}  // namespace b24es
