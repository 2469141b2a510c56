#include "service.h"

#include <Poco/Logger.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Thread.h>

#include "embedded_migrations.h"
#include "ingest_handler.h"
#include "query_handler.h"
#include "sqlite_storage.h"
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

Poco::Net::HTTPServerParams* serverParams(int maxThreads) {
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(maxThreads);
  params->setMaxQueued(256);
  params->setTimeout(Poco::Timespan(10, 0));
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(5, 0));
  params->setMaxKeepAliveRequests(1000);
  return params;
}

std::string urlOf(const Poco::Net::HTTPServer& server, const std::string& listen) {
  std::string host = splitHostPort(listen).first;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(server.port());
}

}  // namespace

bool isLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  Poco::Net::IPAddress address;
  return Poco::Net::IPAddress::tryParse(host, address) && address.isLoopback();
}

Service::Service(const Settings& settings, const Clock& clock)
    : settings_(settings), ingestPool_(2, 64), queryPool_(2, 16) {
  try {
    if (!isLoopbackHost(splitHostPort(settings_.query.listen).first) &&
        settings_.query.token.empty()) {
      throw ServiceError("query.listen " + settings_.query.listen +
                         " is not a loopback address and query.token is not set; "
                         "set B24ES_QUERY_TOKEN or listen on 127.0.0.1");
    }
    storage_ = openSqliteStorage(settings_.db, clock, embeddedMigrations());
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
  sink_ = storage_->openEventSink(
      [staticTokens](const IncomingEvent& e, const std::optional<PortalRecord>& p) {
        return verifyEvent(e, p, staticTokens);
      },
      SinkSettings{});
  // Both sockets before any server: bind() throws when a port is taken, and inside the
  // HTTPServer arguments it leaked the raw params/factory pointers already made (LeakSanitizer).
  const Poco::Net::ServerSocket ingestSocket = bind(settings_.ingest.listen);
  const Poco::Net::ServerSocket querySocket = bind(settings_.query.listen);
  ingest_ = std::make_unique<Poco::Net::HTTPServer>(
      new IngestHandlerFactory(settings_.ingest, *sink_, *storage_, clock), ingestPool_,
      ingestSocket, serverParams(64));
  query_ =
      std::make_unique<Poco::Net::HTTPServer>(new QueryHandlerFactory(settings_.query, *storage_),
                                              queryPool_, querySocket, serverParams(16));
}

Service::~Service() {
  if (running_) stop(Poco::Timespan(2, 0));
  if (sink_) sink_->close();
}

void Service::start() {
  ingest_->start();
  query_->start();
  running_ = true;
}

void Service::stop(Poco::Timespan grace) {
  if (!running_) return;
  running_ = false;
  // stopAll(false): stop accepting, and let each connection finish the request it is in.
  ingest_->stopAll(false);
  query_->stopAll(false);
  Poco::Timestamp started;
  while ((ingest_->currentConnections() > 0 || query_->currentConnections() > 0) &&
         !started.isElapsed(grace.totalMicroseconds())) {
    Poco::Thread::sleep(10);
  }
  ingestPool_.joinAll();
  queryPool_.joinAll();
  sink_->close();
}

std::string Service::ingestUrl() const { return urlOf(*ingest_, settings_.ingest.listen); }
std::string Service::queryUrl() const { return urlOf(*query_, settings_.query.listen); }

}  // namespace b24es
