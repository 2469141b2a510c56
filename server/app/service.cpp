#include "service.h"

#include <Poco/Logger.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <thread>

#include "bindings.h"
#include "ingest_handler.h"
#include "lifecycle.h"
#include "oauth_client.h"
#include "offline_queue.h"
#include "query_handler.h"
#include "refresh_timer.h"
#include "rest_client.h"
#include "retention.h"
#include "stream_hub.h"
#include "token_refresher.h"
#include "verifier.h"

namespace b24es {
namespace {

Poco::Net::ServerSocket bind(const std::string& listen) {
  auto [host, port] = splitHostPort(listen);
  try {
    Poco::Net::ServerSocket socket;
    // SO_REUSEADDR for quick restarts, but never SO_REUSEPORT: a second server on the same
    // port must fail, not silently share it.
    socket.bind(Poco::Net::SocketAddress(host, port), /*reuseAddress=*/true, /*reusePort=*/false);
    socket.listen(256);
    return socket;
  } catch (const Poco::Exception& e) {
    throw ServiceError("cannot listen on " + listen + ": " + e.displayText());
  }
}

// Query handlers read the database, so they run on worker threads, not on the loop; a few are
// enough for SQLite's readers on a small machine.
constexpr int kQueryWorkers = 4;

// Both listeners' HTTP parameters.
Poco::Net::HTTPServerParams::Ptr serverParams() {
  Poco::Net::HTTPServerParams::Ptr params(new Poco::Net::HTTPServerParams);
  // A new connection's first byte, and the wait for a next request on a kept-alive one (the
  // whole request is bounded by ingest.request_timeout).
  params->setTimeout(Poco::Timespan(5, 0));
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(5, 0));
  params->setMaxKeepAliveRequests(0);  // unlimited: a waiting connection holds no thread
  params->setServerName("b24-event-store");
  return params;
}

std::string urlOf(Poco::UInt16 port, const std::string& listen) {
  std::string host = splitHostPort(listen).first;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(port);
}

}  // namespace

bool isLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  Poco::Net::IPAddress address;
  return Poco::Net::IPAddress::tryParse(host, address) && address.isLoopback();
}

Service::Service(const Settings& settings, const Clock& clock) : settings_(settings) {
  try {
    if (!isLoopbackHost(splitHostPort(settings_.query.listen).first) &&
        settings_.query.token.empty()) {
      throw ServiceError("query.listen " + settings_.query.listen +
                         " is not a loopback address and query.token is not set; "
                         "set B24ES_QUERY_TOKEN or listen on 127.0.0.1");
    }
    storage_ = openStorage(settings_, clock);
  } catch (const StorageError& e) {
    throw ServiceError(e.what());
  } catch (const Poco::Exception& e) {
    throw ServiceError(e.displayText());
  }
  MigrationResult migrated = storage_->migrator().apply();
  if (!migrated.ok) throw ServiceError(migrated.error);
  for (const std::string& name : migrated.applied) {
    Poco::Logger::get("b24es.storage").information("applied migration %s", name);
  }
  const std::vector<std::string> staticTokens = settings_.ingest.staticTokens;
  StreamSettings streamSettings;
  streamSettings.maxStreams = settings_.query.maxStreams;
  streamSettings.keepAlive = settings_.query.streamKeepAlive;
  streams_ = std::make_unique<StreamHub>(storage_->reader(), metrics_, streamSettings);
  SinkSettings sinkSettings;
  sinkSettings.onBatch = [this](std::size_t events) { metrics_.observeBatch(events); };
  // Live streams wake once per committed batch (SPEC §5.1), not by polling the database.
  StreamHub* streams = streams_.get();
  sinkSettings.onCommitted = [streams](std::int64_t through) { streams->committed(through); };
  sinkSettings.maxNewPortalsPerHour = settings_.ingest.maxNewPortals;
  sinkSettings.purgeOnClean = settings_.retention.purgeOnClean;
  sinkSettings.keepRejections = settings_.ingest.keepRejections;
  sinkSettings.onRejections = [this](std::size_t written, std::size_t dropped) {
    metrics_.countRejections(written, dropped);
  };
  sink_ = storage_->openEventSink(
      [staticTokens](const IncomingEvent& e, const std::optional<PortalRecord>& p) {
        return verifyEvent(e, p, staticTokens);
      },
      sinkSettings);
  try {
    restStop_ = std::make_unique<Interrupter>();
    restOAuth_ =
        std::make_unique<HttpOAuthClient>(settings_.oauth, httpOAuthOptions(settings_.refresh));
    restRefresher_ =
        std::make_unique<TokenRefresher>(storage_->tokenStore(), *restOAuth_, settings_.oauth,
                                         settings_.refresh, clock, restStop_->sleeper());
    rest_ = std::make_unique<RestClient>(
        settings_.rest,
        [this](const std::string& memberId, const std::optional<std::int64_t>& userId, bool force) {
          return restRefresher_->accessToken(memberId, userId, force);
        },
        clock, restStop_->sleeper(), RestClientOptions{}, systemResolver(),
        [this](const std::string& method, const std::string& result) {
          metrics_.countRestCall(method, result);
        });
  } catch (const Poco::Exception& e) {
    throw ServiceError("cannot set up REST calls: " + e.displayText());
  }
  lifecycle_ = std::make_unique<LifecycleVerifier>(*storage_, *sink_, *rest_);
  if (bindingsConfigured(settings_.bitrix24)) {
    bindings_ =
        std::make_unique<BindingSync>(settings_.bitrix24, *rest_, storage_->portalState(), clock);
  }
  if (!settings_.bitrix24.offlineEvents.empty()) {
    offline_ = std::make_unique<OfflineQueue>(*rest_, storage_->portalState(), clock, &metrics_);
  }
  portalJobs_ = std::make_unique<PortalJobs>(
      [this](PortalJobs::Kind kind, const std::string& memberId) { runPortalJob(kind, memberId); });
  // Both sockets before any server: bind() throws when a port is taken, and inside the server's
  // arguments it leaked the raw factory and params pointers already made (LeakSanitizer).
  const Poco::Net::ServerSocket ingestSocket = bind(settings_.ingest.listen);
  const Poco::Net::ServerSocket querySocket = bind(settings_.query.listen);
  HttpServerSettings ingestSettings;
  ingestSettings.name = "ingest";
  ingestSettings.threads = settings_.ingest.threads;
  ingestSettings.requestTimeout = Poco::Timespan(settings_.ingest.requestTimeoutSeconds, 0);
  ingestSettings.maxBodyBytes = settings_.ingest.maxBodyBytes;
  ingestSettings.trustedProxies = settings_.ingest.trustedProxies;
  // Every 4xx answer of the ingest listener, whichever layer gave it, goes to `rejections`
  // (SPEC §5); the sink queues it without waiting. Only the status, the error code and what
  // the request claimed: never its body or a token.
  ingestSettings.onRejection = [sink = sink_.get()](int status, const RequestNotes& notes) {
    RejectionRecord r;
    r.clientAddr = notes.client;
    r.status = status;
    r.error = notes.error;
    r.event = notes.event;
    r.memberId = notes.memberId;
    r.domain = notes.domain;
    sink->recordRejection(r);
  };
  ingest_ = std::make_unique<HttpServer>(
      ingestSocket,
      new IngestHandlerFactory(settings_.ingest, *sink_, *storage_, clock, &metrics_,
                               lifecycle_.get(), [this](const IncomingEvent& e) { afterStore(e); }),
      serverParams(), ingestSettings);
  // One loop: the query API's work is on its workers. Its requests have no body to speak of;
  // the ingest limit bounds what is buffered of one.
  HttpServerSettings querySettings = ingestSettings;
  querySettings.name = "query";
  querySettings.threads = 1;
  querySettings.workers = kQueryWorkers;
  querySettings.onRejection = nullptr;  // the query API's refusals are not ingest rejections
  query_ = std::make_unique<HttpServer>(
      querySocket, new QueryHandlerFactory(settings_.query, *storage_, metrics_, clock, *streams_),
      serverParams(), querySettings);
  retentionTimer_ = std::make_unique<RetentionTimer>(settings_.retention, *sink_, clock);
  if (std::string off = keepAliveDisabledReason(settings_.oauth, settings_.refresh); off.empty()) {
    try {
      // Counts this process's refresh attempts; refresh-tokens runs from cron count in their
      // own output and logs.
      auto count = [this](const PassReport& r) {
        const std::pair<RefreshResult, std::size_t> results[] = {
            {RefreshResult::kSuccess, r.success},
            {RefreshResult::kDead, r.dead},
            {RefreshResult::kTransient, r.transient},
            {RefreshResult::kRefused, r.refused},
            {RefreshResult::kSkipped, r.skipped}};
        for (const auto& [result, n] : results) {
          for (std::size_t i = 0; i < n; ++i) metrics_.countRefresh(resultName(result));
        }
      };
      refreshTimer_ = std::make_unique<KeepAliveTimer>(storage_->tokenStore(), settings_.oauth,
                                                       settings_.refresh, clock, count);
    } catch (const Poco::Exception& e) {
      throw ServiceError("cannot set up token refresh: " + e.displayText());
    }
  } else {
    Poco::Logger::get("b24es.refresh").information("token keep-alive is off: %s", off);
  }
}

void Service::afterStore(const IncomingEvent& event) {
  if (bindings_ && (event.kind == EventKind::kInstall || event.event == "ONAPPUPDATE")) {
    portalJobs_->trigger(PortalJobs::Kind::kBind, event.memberId);
  }
  // Bitrix24 says the portal queued offline events: a pass now.
  if (offline_ && event.event == "ONOFFLINEEVENT") {
    portalJobs_->trigger(PortalJobs::Kind::kOffline, event.memberId);
  }
}

void Service::runPortalJob(PortalJobs::Kind kind, const std::string& memberId) {
  Poco::Logger& log = Poco::Logger::get("b24es.portal");
  try {
    std::vector<PortalRecord> portals = storage_->portalState().installedPortals(memberId);
    if (portals.empty()) return;  // uninstalled meanwhile
    if (kind == PortalJobs::Kind::kBind && bindings_) bindings_->sync(portals.front(), false);
    if (kind == PortalJobs::Kind::kOffline && offline_) offline_->pass(portals.front());
  } catch (const std::exception& e) {
    log.error("portal %s: %s", memberId, std::string(e.what()));
  }
}

void Service::stopRest() {
  if (restStop_) restStop_->stop();
  if (offlineTimer_.joinable()) offlineTimer_.join();
  if (portalJobs_) portalJobs_->stop();
  if (lifecycle_) lifecycle_->close();
}

Service::~Service() {
  if (running_) stop(Poco::Timespan(2, 0));
  stopRest();
  if (retentionTimer_) retentionTimer_->requestStop();
  if (sink_) sink_->close();
  retentionTimer_.reset();
}

void Service::start() {
  try {
    streams_->start();
  } catch (const StorageError& e) {
    throw ServiceError(std::string("cannot start the event streams: ") + e.what());
  }
  ingest_->start();
  query_->start();
  if (refreshTimer_) refreshTimer_->start();
  retentionTimer_->start();
  if (offline_ && settings_.bitrix24.offlineIntervalSeconds > 0) {
    // A pass for every installed portal at start (what was queued while the store was down),
    // then every offline.interval seconds.
    offlineTimer_ = std::thread([this] {
      do {
        try {
          for (const PortalRecord& p : storage_->portalState().installedPortals(std::nullopt)) {
            portalJobs_->trigger(PortalJobs::Kind::kOffline, p.memberId);
          }
        } catch (const StorageError& e) {
          Poco::Logger::get("b24es.offline").error("offline timer: %s", std::string(e.what()));
        }
      } while (restStop_->sleep(std::int64_t{settings_.bitrix24.offlineIntervalSeconds} * 1000));
    });
  }
  running_ = true;
}

void Service::stop(Poco::Timespan grace) {
  if (!running_) return;
  running_ = false;
  if (refreshTimer_) refreshTimer_->stop();
  // Stop accepting, then let each connection finish the request it is in and close.
  // Both at once: each waits up to `grace` for the answers it owes.
  std::thread queryStop([this, grace] { query_->stop(grace); });
  ingest_->stop(grace);
  queryStop.join();
  // After the listeners: a lifecycle verification still running belongs to a request that
  // was in flight; its connection is gone by now, and it ends at its next REST wait.
  stopRest();
  streams_->stop();  // the query listener ended its streams; their places are given back
  retentionTimer_->requestStop();
  sink_->close();  // ends a purge in progress after its current batch
  retentionTimer_->stop();
}

std::string Service::ingestUrl() const { return urlOf(ingest_->port(), settings_.ingest.listen); }
std::string Service::queryUrl() const { return urlOf(query_->port(), settings_.query.listen); }

}  // namespace b24es
