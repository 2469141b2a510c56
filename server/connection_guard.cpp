#include "connection_guard.h"

#include <Poco/Logger.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerConnection.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <memory>

namespace b24es {
namespace {

// The watchdog entry of the connection served by this thread, for handlers.
struct CurrentConnection {
  ConnectionWatchdog* watchdog = nullptr;
  std::uint64_t id = 0;
};
thread_local CurrentConnection current;

// How long a connection may wait for its next request before it counts as idle under pressure.
constexpr std::chrono::milliseconds kIdleGrace(1000);

}  // namespace

// An HTTPServerConnection registered with the watchdog for its whole life.
class ConnectionWatchdog::GuardedConnection final : public Poco::Net::HTTPServerConnection {
 public:
  GuardedConnection(const Poco::Net::StreamSocket& socket, Poco::Net::HTTPServerParams::Ptr params,
                    Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
                    ConnectionWatchdog& watchdog)
      : HTTPServerConnection(socket, params, handlers), watchdog_(watchdog) {}

  void run() override {
    std::uint64_t id = watchdog_.add(socket());
    current = CurrentConnection{&watchdog_, id};
    try {
      HTTPServerConnection::run();
    } catch (...) {
      current = {};
      watchdog_.remove(id);
      throw;
    }
    current = {};
    watchdog_.remove(id);
  }

 private:
  ConnectionWatchdog& watchdog_;
};

class ConnectionWatchdog::GuardedFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  GuardedFactory(Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
                 Poco::Net::HTTPServerParams::Ptr params, ConnectionWatchdog& watchdog)
      : handlers_(handlers), params_(params), watchdog_(watchdog) {}

  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new GuardedConnection(socket, params_, handlers_, watchdog_);
  }

 private:
  Poco::Net::HTTPRequestHandlerFactory::Ptr handlers_;
  Poco::Net::HTTPServerParams::Ptr params_;
  ConnectionWatchdog& watchdog_;
};

// Wraps every handler: keeps the deadline armed for the body, re-arms it after the response
// for the next request, and turns keep-alive off while other connections wait for a thread.
class ConnectionWatchdog::GuardedHandlerFactory final
    : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  GuardedHandlerFactory(Poco::Net::HTTPRequestHandlerFactory::Ptr inner,
                        ConnectionWatchdog& watchdog)
      : inner_(inner), watchdog_(watchdog) {}

  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest& request) override {
    return new Handler(inner_->createRequestHandler(request), watchdog_);
  }

  // What HTTPServer::stopAll(false) does: each connection ends after its current request.
  void notifyStopped() { serverStopped(this, false); }

 private:
  class Handler final : public Poco::Net::HTTPRequestHandler {
   public:
    Handler(Poco::Net::HTTPRequestHandler* inner, ConnectionWatchdog& watchdog)
        : inner_(inner), watchdog_(watchdog) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request,
                       Poco::Net::HTTPServerResponse& response) override {
      if (watchdog_.saturated()) response.setKeepAlive(false);
      if (current.watchdog) current.watchdog->enter(current.id, Phase::kReadingBody);
      inner_->handleRequest(request, response);
      if (current.watchdog) current.watchdog->enter(current.id, Phase::kAwaitingRequest);
    }

   private:
    std::unique_ptr<Poco::Net::HTTPRequestHandler> inner_;
    ConnectionWatchdog& watchdog_;
  };

  Poco::Net::HTTPRequestHandlerFactory::Ptr inner_;
  ConnectionWatchdog& watchdog_;
};

ConnectionWatchdog::ConnectionWatchdog(Poco::Timespan requestTimeout)
    : timeout_(std::chrono::microseconds(requestTimeout.totalMicroseconds())) {
  thread_ = std::thread([this] { run(); });
}

ConnectionWatchdog::~ConnectionWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  thread_.join();
}

Poco::Net::TCPServerConnectionFactory::Ptr ConnectionWatchdog::connectionFactory(
    Poco::Net::HTTPRequestHandlerFactory::Ptr handlers, Poco::Net::HTTPServerParams::Ptr params) {
  auto* guarded = new GuardedHandlerFactory(handlers, *this);
  Poco::Net::HTTPRequestHandlerFactory::Ptr owner(guarded);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    factories_.push_back({owner, guarded});
  }
  return new GuardedFactory(owner, params, *this);
}

void ConnectionWatchdog::serverStopped() {
  std::vector<std::pair<Poco::Net::HTTPRequestHandlerFactory::Ptr, GuardedHandlerFactory*>>
      factories;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    factories = factories_;
  }
  for (auto& factory : factories) factory.second->notifyStopped();
}

void ConnectionWatchdog::bodyReceived() {
  if (current.watchdog) current.watchdog->enter(current.id, Phase::kProcessing);
}

std::uint64_t ConnectionWatchdog::add(const Poco::Net::StreamSocket& socket) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::uint64_t id = nextId_++;
  Clock::time_point now = Clock::now();
  entries_.emplace(id, Entry{socket, now + timeout_, Phase::kAwaitingRequest, now, false});
  return id;
}

void ConnectionWatchdog::remove(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.erase(id);
}

void ConnectionWatchdog::enter(std::uint64_t id, Phase phase) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Clock::time_point now = Clock::now();
  it->second.phase = phase;
  it->second.since = now;
  if (phase == Phase::kReadingBody) it->second.served = true;
  it->second.deadline = phase == Phase::kProcessing ? Clock::time_point::max() : now + timeout_;
}

bool ConnectionWatchdog::saturated() const {
  const Poco::Net::TCPServer* server = server_.load();
  return server && server->queuedConnections() > 0 &&
         server->currentThreads() >= server->maxThreads();
}

void ConnectionWatchdog::run() {
  // A short period: under pressure a newcomer waits for this scan to free a thread.
  auto period = std::min<Clock::duration>(timeout_ / 4, std::chrono::milliseconds(50));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_.wait_for(lock, period, [this] { return stopping_; })) {
    Clock::time_point now = Clock::now();
    const bool pressure = saturated();
    int late = 0, idle = 0;
    for (auto& [id, entry] : entries_) {
      bool expired = entry.deadline <= now;
      // Under pressure, a connection waiting for a request with no byte of it buffered is
      // holding a thread for nothing: clients must expect an idle keep-alive connection to
      // close, and a silent new connection has sent nothing to lose.
      bool idleUnderPressure = false;
      // A new connection gets no grace: under pressure it waited in the queue, so a real
      // client's request is already buffered. A keep-alive connection gets kIdleGrace, so a
      // client about to send its next request does not race the close.
      if (!expired && pressure && entry.phase == Phase::kAwaitingRequest &&
          (!entry.served || now - entry.since > kIdleGrace)) {
        try {
          idleUnderPressure = entry.socket.available() == 0;
        } catch (const Poco::Exception&) {
          idleUnderPressure = true;
        }
      }
      if (!expired && !idleUnderPressure) continue;
      try {
        // Wakes the connection's thread out of recv(); POCO then ends the connection.
        entry.socket.shutdown();
      } catch (const Poco::Exception&) {
        // Already closed by the peer.
      }
      entry.deadline = Clock::time_point::max();
      entry.phase = Phase::kProcessing;  // nothing more to do for it
      (expired ? late : idle)++;
    }
    if (late > 0 || idle > 0) {
      lock.unlock();
      Poco::Logger::get("b24es.http")
          .warning(
              "closed %d connection(s) that did not send a complete request in time and "
              "%d idle connection(s) while others waited",
              late, idle);
      lock.lock();
    }
  }
}
}  // namespace b24es
