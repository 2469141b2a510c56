#include "connection_guard.h"

#include <Poco/BasicEvent.h>
#include <Poco/Delegate.h>
#include <Poco/Exception.h>
#include <Poco/Logger.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/SharedPtr.h>
#include <Poco/Timestamp.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>

#include "access_log.h"
#include "api_error.h"

namespace b24es {
namespace {

// The watchdog entry of the connection served by this thread, for handlers.
struct CurrentConnection {
  ConnectionWatchdog* watchdog = nullptr;
  void* entry = nullptr;  // ConnectionWatchdog::Entry (private to the class)
};
thread_local CurrentConnection current;

// How long a connection may wait for its next request before it counts as idle under pressure.
constexpr std::chrono::milliseconds kIdleGrace(1000);

// After an error that closes the connection, how long and how much of what the client still
// sends is read and dropped before the close (see drainAndClose).
constexpr Poco::Timespan::TimeDiff kDrainMicros = 1000000;
constexpr std::size_t kDrainBytes = 256 * 1024;

Poco::Logger& httpLog() { return Poco::Logger::get("b24es.http"); }

// POCO's HTTPServerSession, waiting for a request in recv() instead of poll().
class WaitingSession final : public Poco::Net::HTTPServerSession {
 public:
  // The base class sets SO_RCVTIMEO to the params' timeout.
  WaitingSession(const Poco::Net::StreamSocket& socket, Poco::Net::HTTPServerParams::Ptr params)
      : HTTPServerSession(socket, params), receiveTimeout_(params->getTimeout()) {}

  // Blocks until the first bytes of a request are buffered (true), or the peer closed the
  // connection, `timeout` passed or the connection failed (false). Throws nothing.
  bool awaitRequest(const Poco::Timespan& timeout) {
    if (buffered() > 0) return true;  // pipelined behind the previous request
    try {
      if (!socket().impl()->initialized()) return false;  // a handler detached the socket
      setReceiveTimeout(timeout);
      // One recv() into the session's buffer. Its result is not used: peek() returns a 0xFF
      // byte as EOF.
      peek();
    } catch (const Poco::Exception&) {
      return false;  // a timeout (EAGAIN) or a reset
    }
    return buffered() > 0;
  }

  // Sets SO_RCVTIMEO, without a system call when it already has that value.
  void setReceiveTimeout(const Poco::Timespan& timeout) {
    if (timeout == receiveTimeout_) return;
    socket().setReceiveTimeout(timeout);
    receiveTimeout_ = timeout;
  }

 private:
  Poco::Timespan receiveTimeout_;  // what SO_RCVTIMEO is set to
};

}  // namespace

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
    Poco::Net::HTTPRequestHandler* inner = inner_->createRequestHandler(request);
    return inner ? new Handler(inner, watchdog_) : nullptr;  // none: the loop answers 501
  }

  // What HTTPServer::stopAll(false) does: each connection ends after its current request.
  void notifyStopped() { serverStopped(this, false); }
  // The event notifyStopped() fires, for the connections (protected in the base class).
  Poco::BasicEvent<const bool>& stopped() { return serverStopped; }

 private:
  class Handler final : public Poco::Net::HTTPRequestHandler {
   public:
    Handler(Poco::Net::HTTPRequestHandler* inner, ConnectionWatchdog& watchdog)
        : inner_(inner), watchdog_(watchdog) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request,
                       Poco::Net::HTTPServerResponse& response) override {
      if (watchdog_.saturated()) response.setKeepAlive(false);
      Entry* entry = static_cast<Entry*>(current.entry);
      if (entry) current.watchdog->enter(*entry, Phase::kReadingBody);
      inner_->handleRequest(request, response);
      if (entry) current.watchdog->enter(*entry, Phase::kAwaitingRequest);
    }

   private:
    std::unique_ptr<Poco::Net::HTTPRequestHandler> inner_;
    ConnectionWatchdog& watchdog_;
  };

  Poco::Net::HTTPRequestHandlerFactory::Ptr inner_;
  ConnectionWatchdog& watchdog_;
};

// Serves HTTP on one connection, registered with the watchdog for its whole life.
//
// The loop is written by hand instead of using Poco::Net::HTTPServerConnection::run() (POCO
// 1.11), for two reasons:
//  1. Before every request POCO calls HTTPServerSession::hasMoreRequests(), which calls
//     Socket::poll(), and on Linux that creates an epoll instance, registers the socket, waits
//     and closes it again: four system calls and a file allocated per request on the hot
//     path. Here the thread waits for the next request in recv() itself, bounded by SO_RCVTIMEO:
//     the keep-alive timeout between requests, the params' timeout for the first request and
//     while a request is read.
//  2. Requests POCO cannot parse, which it refuses before any handler runs, got a 400 with an
//     empty body (a malformed request line, a header line too long, too many header fields) or
//     no answer at all (a Content-Length that is not a number: POCO's loop let the exception
//     end the connection), and HTTPServerConnection::sendErrorResponse() is not virtual. Here
//     they get 400 with the JSON error body of SPEC §4.
// Requests are still read and answers written by POCO's HTTPServerSession,
// HTTPServerRequestImpl and HTTPServerResponseImpl; only the loop around them is ours, and it
// keeps what POCO's did: the Date header, the response's version, keep-alive decided by the
// params (including maxKeepAliveRequests), the request and the response, Expect: 100-continue,
// 501 when the factory has no handler, 500 when a handler throws before answering, and the end
// of each connection after its current request when the factory signals serverStopped.
// POCO's response with the notes the handlers and sendError() use (access_log.h).
class NotedResponse final : public Poco::Net::HTTPServerResponseImpl, public RequestNotes {
 public:
  using HTTPServerResponseImpl::HTTPServerResponseImpl;
};

class ConnectionWatchdog::GuardedConnection final : public Poco::Net::TCPServerConnection {
 public:
  GuardedConnection(const Poco::Net::StreamSocket& socket, Poco::Net::HTTPServerParams::Ptr params,
                    Poco::SharedPtr<GuardedHandlerFactory> handlers, ConnectionWatchdog& watchdog)
      : TCPServerConnection(socket), params_(params), handlers_(handlers), watchdog_(watchdog) {
    handlers_->stopped() += Poco::delegate(this, &GuardedConnection::onServerStopped);
  }

  ~GuardedConnection() override {
    try {
      handlers_->stopped() -= Poco::delegate(this, &GuardedConnection::onServerStopped);
    } catch (...) {
      // Nothing to do in a destructor.
    }
  }

  void run() override {
    entry_ = watchdog_.add(socket());
    current = CurrentConnection{&watchdog_, entry_};
    try {
      serve();
    } catch (...) {
      current = {};
      watchdog_.remove(entry_);
      throw;
    }
    current = {};
    watchdog_.remove(entry_);
  }

 private:
  enum class Next { kServe, kClose, kDrainAndClose };

  void serve() {
    WaitingSession session(socket(), params_);
    for (std::uint64_t number = 1; !stopped_; ++number) {
      if (!session.awaitRequest(number == 1 ? params_->getTimeout()
                                            : params_->getKeepAliveTimeout())) {
        return;
      }
      Next next;
      {
        // Held while one request is served, so that onServerStopped() waits for its answer.
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopped_) return;
        next = serveOne(session, number);
      }
      if (next == Next::kDrainAndClose) drainAndClose();
      if (next != Next::kServe || !session.getKeepAlive()) return;
    }
  }

  // Reads request number `number` of this connection and answers it.
  Next serveOne(WaitingSession& session, std::uint64_t number) {
    NotedResponse response(session);
    std::unique_ptr<Poco::Net::HTTPServerRequestImpl> request;
    try {
      session.setReceiveTimeout(params_->getTimeout());
      request =
          std::make_unique<Poco::Net::HTTPServerRequestImpl>(response, session, params_.get());
    } catch (const Poco::Net::NoMessageException&) {
      return Next::kClose;  // the client closed the connection before a request
    } catch (const Poco::Net::MessageException& e) {
      // HTTPRequest::read and MessageHeader::read: a method, URI or version missing or too long
      // (32, 16384, 8 bytes), a header name or value too long (256, 8192 bytes) or without a
      // colon, more than 100 header fields, or the input ended inside the request. 431 or 414
      // would name some of these better, but POCO throws the same exception for all of them
      // and tells them apart only in its message text, so all get 400. A connection that
      // failed or that the watchdog cut off gets no answer: it has no one to read it.
      if (session.networkException() || entry_->cut.load()) return Next::kClose;
      return refuse(session,
                    {400, "malformed_request",
                     "the request line or a header is malformed or too long (headers: at most "
                     "100 fields, 8192 bytes per value)"},
                    e.message());
    } catch (const Poco::SyntaxException&) {
      // HTTPMessage::getContentLength64(), called by HTTPServerRequestImpl's constructor.
      return refuse(session, badLength(), "Content-Length is not a number");
    } catch (const Poco::Exception&) {
      return Next::kClose;  // the connection failed while the request was read
    }
    const std::string& version = request->getVersion();
    if (version != Poco::Net::HTTPMessage::HTTP_1_1 &&
        version != Poco::Net::HTTPMessage::HTTP_1_0) {
      // POCO reads any word there, and would echo it as the response's version.
      return refuse(
          session,
          {400, "malformed_request", "the request line does not end in HTTP/1.1 or HTTP/1.0"},
          "not an HTTP/1.x request line");
    }
    if (request->hasContentLength() && request->getContentLength64() < 0) {
      // POCO takes it as "read until the connection closes" (-1) or as an empty body.
      return refuse(session, badLength(), "Content-Length is negative");
    }

    const int maxRequests = params_->getMaxKeepAliveRequests();  // 0: unlimited
    const bool mayKeepAlive =
        params_->getKeepAlive() &&
        (maxRequests <= 0 || number < static_cast<std::uint64_t>(maxRequests));
    stampResponse(response, *params_, version, mayKeepAlive && request->getKeepAlive());
    response.client = resolveClient(peer(), request.get(), watchdog_.trustedProxies_);
    const auto started = std::chrono::steady_clock::now();
    try {
      std::unique_ptr<Poco::Net::HTTPRequestHandler> handler(
          handlers_->createRequestHandler(*request));
      if (!handler) {
        return refuse(session, {501, "not_implemented", "no handler serves this request"},
                      request->getMethod());
      }
      if (request->getExpectContinue() &&
          response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK) {
        response.sendContinue();
      }
      handler->handleRequest(*request, response);
      if (accessLogOn()) logAnswer(*request, response, started);
      session.setKeepAlive(mayKeepAlive && response.getKeepAlive());
      return Next::kServe;
    } catch (const Poco::Exception& e) {
      return handlerFailed(session, response, e.name());
    } catch (const std::exception&) {
      return handlerFailed(session, response, "a C++ exception");
    }
  }

  // The client's address; a connection whose peer is gone has the unspecified address.
  Poco::Net::SocketAddress peer() {
    try {
      return socket().peerAddress();
    } catch (const Poco::Exception&) {
      return {};
    }
  }

  // The access-log line of an answered request (SPEC §10).
  static void logAnswer(const Poco::Net::HTTPServerRequest& request, const NotedResponse& response,
                        std::chrono::steady_clock::time_point started) {
    AccessRecord record;
    record.listener = "query";
    record.client = response.client;
    record.method = request.getMethod();
    record.path = request.getURI().substr(0, request.getURI().find('?'));
    record.status = static_cast<int>(response.getStatus());
    const bool head = request.getMethod() == Poco::Net::HTTPRequest::HTTP_HEAD;
    record.bytes = head ? 0 : std::max<std::int64_t>(0, response.getContentLength64());
    record.durationMs =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    logAccess(record);
  }

  static ApiError badLength() {
    return {400, "malformed_request", "the Content-Length header is not a number of bytes"};
  }

  // A handler threw: 500 if it had not answered yet (the exception's text is not logged: it may
  // quote the request), and the connection is closed in either case.
  Next handlerFailed(WaitingSession& session, const Poco::Net::HTTPServerResponseImpl& response,
                     const std::string& what) {
    if (!response.sent()) {
      return refuse(session,
                    {500, "internal_error", "the server failed while answering this request"},
                    "handler threw " + what);
    }
    httpLog().error("a handler threw %s after answering; connection closed", what);
    return Next::kClose;
  }

  // Answers `error` on a new response (the request may be half read or unreadable; the answer
  // is HTTP/1.1 and closes the connection) and logs it with `context`.
  Next refuse(WaitingSession& session, const ApiError& error, const std::string& context) {
    session.setKeepAlive(false);
    try {
      NotedResponse response(session);
      response.client = peer().host().toString();  // the headers may be unreadable
      sendRefusal(response, *params_, error, httpLog(), context);
      AccessRecord record;
      record.listener = "query";
      record.client = response.client;
      record.status = static_cast<int>(response.getStatus());
      record.bytes = response.getContentLength64();
      logAccess(record);
    } catch (const Poco::Exception&) {
      return Next::kClose;  // the client is gone
    }
    return Next::kDrainAndClose;
  }

  // Closing a socket with unread input makes the kernel reset the connection, and a reset can
  // destroy the answer before the client has read it. So after an answer that ends the
  // connection early, the sending side is closed and what the client still sends is read and
  // dropped until it closes too, for at most kDrainMicros and kDrainBytes.
  void drainAndClose() {
    try {
      socket().shutdownSend();
      Poco::Timestamp started;
      std::size_t drained = 0;
      char buffer[4096];
      while (drained < kDrainBytes) {
        Poco::Timespan::TimeDiff left = kDrainMicros - started.elapsed();
        if (left <= 0) break;
        socket().setReceiveTimeout(Poco::Timespan(left));
        int n = socket().receiveBytes(buffer, sizeof buffer);
        if (n <= 0) break;
        drained += static_cast<std::size_t>(n);
      }
    } catch (const Poco::Exception&) {
      // A timeout or a reset: the connection is closed now either way.
    }
  }

  // What HTTPServerConnection did: no request starts after this, and the socket is shut down
  // (after the current request is answered, unless `abortCurrent`) to wake the thread from
  // recv().
  void onServerStopped(const bool& abortCurrent) {
    stopped_ = true;
    std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
    if (!abortCurrent) lock.lock();
    try {
      socket().shutdown();
    } catch (const Poco::Exception&) {
      // Already closed.
    }
  }

  Poco::Net::HTTPServerParams::Ptr params_;          // const after construction
  Poco::SharedPtr<GuardedHandlerFactory> handlers_;  // const after construction
  ConnectionWatchdog& watchdog_;
  Entry* entry_ = nullptr;            // the watchdog entry; set by run() on this thread
  std::atomic<bool> stopped_{false};  // set by onServerStopped() on another thread
  std::mutex mutex_;                  // held while a request is served
};

class ConnectionWatchdog::GuardedFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  GuardedFactory(Poco::SharedPtr<GuardedHandlerFactory> handlers,
                 Poco::Net::HTTPServerParams::Ptr params, ConnectionWatchdog& watchdog)
      : handlers_(handlers), params_(params), watchdog_(watchdog) {}

  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new GuardedConnection(socket, params_, handlers_, watchdog_);
  }

 private:
  Poco::SharedPtr<GuardedHandlerFactory> handlers_;
  Poco::Net::HTTPServerParams::Ptr params_;
  ConnectionWatchdog& watchdog_;
};

ConnectionWatchdog::ConnectionWatchdog(Poco::Timespan requestTimeout,
                                       std::vector<Poco::Net::IPAddress> trustedProxies)
    : timeout_(std::chrono::microseconds(requestTimeout.totalMicroseconds())),
      trustedProxies_(std::move(trustedProxies)) {
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
  Poco::SharedPtr<GuardedHandlerFactory> guarded(new GuardedHandlerFactory(handlers, *this));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    factories_.push_back({guarded, guarded.get()});
  }
  return new GuardedFactory(guarded, params, *this);
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

ConnectionWatchdog::Entry* ConnectionWatchdog::add(const Poco::Net::StreamSocket& socket) {
  auto entry = std::make_unique<Entry>(socket);
  const Clock::rep now = Clock::now().time_since_epoch().count();
  entry->since.store(now);
  entry->deadline.store(now + timeout_.count());
  Entry* raw = entry.get();
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.emplace(raw, std::move(entry));
  active_.fetch_add(1);
  return raw;
}

void ConnectionWatchdog::remove(Entry* entry) {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.erase(entry);
  active_.fetch_sub(1);
}

void ConnectionWatchdog::enter(Entry& entry, Phase phase) {
  const Clock::rep now = Clock::now().time_since_epoch().count();
  // The deadline first: the watchdog must not see kProcessing with the old, passed deadline.
  entry.deadline.store(phase == Phase::kProcessing ? kNoDeadline : now + timeout_.count());
  entry.since.store(now);
  if (phase == Phase::kReadingBody) entry.served.store(true);
  entry.phase.store(phase);
}

bool ConnectionWatchdog::saturated() const {
  // Cheap when threads are free, which is the common case: POCO's queue length takes a lock.
  if (active_.load(std::memory_order_relaxed) < maxThreads_.load(std::memory_order_relaxed)) {
    return false;
  }
  const Poco::Net::TCPServer* server = server_.load();
  return server && server->queuedConnections() > 0;
}

void ConnectionWatchdog::run() {
  // A short period: under pressure a newcomer waits for this scan to free a thread.
  auto period = std::min<Clock::duration>(timeout_ / 4, std::chrono::milliseconds(50));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_.wait_for(lock, period, [this] { return stopping_; })) {
    const Clock::rep now = Clock::now().time_since_epoch().count();
    const Clock::rep grace = std::chrono::duration_cast<Clock::duration>(kIdleGrace).count();
    const bool pressure = saturated();
    int late = 0, idle = 0;
    for (auto& [key, owned] : entries_) {
      Entry& entry = *owned;
      bool expired = entry.deadline.load() <= now;
      // Under pressure, a connection waiting for a request with no byte of it buffered is
      // holding a thread for nothing: clients must expect an idle keep-alive connection to
      // close, and a silent new connection has sent nothing to lose.
      bool idleUnderPressure = false;
      // A new connection gets no grace: under pressure it waited in the queue, so a real
      // client's request is already buffered. A keep-alive connection gets kIdleGrace, so a
      // client about to send its next request does not race the close.
      if (!expired && pressure && entry.phase.load() == Phase::kAwaitingRequest &&
          (!entry.served.load() || now - entry.since.load() > grace)) {
        try {
          idleUnderPressure = entry.socket.available() == 0;
        } catch (const Poco::Exception&) {
          idleUnderPressure = true;
        }
      }
      if (!expired && !idleUnderPressure) continue;
      try {
        // Wakes the connection's thread out of recv(); the connection loop then ends.
        entry.socket.shutdown();
      } catch (const Poco::Exception&) {
        // Already closed by the peer.
      }
      entry.cut.store(true);
      // Nothing more to do for it (a request in flight may still re-arm it; shutting a shut
      // socket down again is harmless).
      entry.deadline.store(kNoDeadline);
      entry.phase.store(Phase::kProcessing);
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
