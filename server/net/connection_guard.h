// Keeps the query listener responsive under abuse (SPEC §4, issue 6; the ingest listener has its
// own event loop, ingest_server.h). POCO's HTTPServer serves each
// connection on one pool thread and only bounds a single recv() by a timeout, so a client that
// trickles a byte every few seconds, or many idle connections, can hold threads for ever. POCO
// has no per-request deadline, so this file adds one, written by hand:
//  - every connection must deliver a complete request (headers and body) within
//    `requestTimeout` of the connection opening or of the previous response; a watchdog thread
//    shuts the socket down when that deadline passes;
//  - while connections wait in the server's queue for a thread, answers say
//    `Connection: close`, so busy keep-alive clients give their threads up to newcomers, and
//    connections that hold a thread while sending nothing are closed.
// Each connection is served by a loop of our own rather than POCO's HTTPServerConnection (the
// .cpp says why): it waits for requests in recv() instead of creating an epoll instance per
// request, and answers requests POCO cannot parse with the JSON error body of SPEC §4.
#pragma once

#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Timespan.h>

#include <atomic>
#include <condition_variable>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace b24es {

class ConnectionWatchdog {
 public:
  // Starts the watchdog thread. Thread-safe. `trustedProxies`: peers whose X-Forwarded-For /
  // X-Real-IP name the client in the access log and rejections.
  explicit ConnectionWatchdog(Poco::Timespan requestTimeout,
                              std::vector<Poco::Net::IPAddress> trustedProxies = {});
  ~ConnectionWatchdog();  // stops the thread; connections outlive it harmlessly
  ConnectionWatchdog(const ConnectionWatchdog&) = delete;
  ConnectionWatchdog& operator=(const ConnectionWatchdog&) = delete;

  // A TCPServer connection factory that serves HTTP with `handlers` (wrapped so that every
  // request is under the deadline and answers close connections while others queue).
  // `server` is asked for its queue length; set it with watch() once the TCPServer exists.
  // The watchdog must outlive the server using the factory.
  Poco::Net::TCPServerConnectionFactory::Ptr connectionFactory(
      Poco::Net::HTTPRequestHandlerFactory::Ptr handlers, Poco::Net::HTTPServerParams::Ptr params);
  // Tells the watchdog which server's queue to look at. Call before start().
  void watch(const Poco::Net::TCPServer* server) {
    maxThreads_ = server->maxThreads();
    server_ = server;
  }
  // Signals the wrapped handler factories that the server is stopping, so that each connection
  // ends after its current request (what HTTPServer::stopAll(false) does for HTTPServer).
  void serverStopped();

 private:
  class GuardedConnection;
  class GuardedFactory;
  class GuardedHandlerFactory;

  using Clock = std::chrono::steady_clock;
  enum class Phase { kAwaitingRequest, kReadingBody, kProcessing };
  // One connection. The connection's own thread updates it on every request without a lock
  // (64 busy connections would otherwise queue on mutex_ several times per request); the
  // watchdog thread reads it under mutex_, which only guards entries_ itself. A deadline read a
  // moment stale only moves a cut-off by one scan.
  struct Entry {
    explicit Entry(const Poco::Net::StreamSocket& s) : socket(s) {}
    Poco::Net::StreamSocket socket;       // const after construction
    std::atomic<Clock::rep> deadline{0};  // Clock ticks; kNoDeadline while processing
    std::atomic<Phase> phase{Phase::kAwaitingRequest};
    std::atomic<Clock::rep> since{0};  // when it entered `phase`
    std::atomic<bool> served{false};   // has had at least one request
    std::atomic<bool> cut{false};      // shut down by the watchdog
  };
  static constexpr Clock::rep kNoDeadline = std::numeric_limits<Clock::rep>::max();

  // Registers a connection; the entry lives until remove(). Thread-safe.
  Entry* add(const Poco::Net::StreamSocket& socket);
  void remove(Entry* entry);
  // Moves a connection to `phase`; every phase but kProcessing gets deadline now + timeout.
  // Called only on the connection's own thread; takes no lock.
  void enter(Entry& entry, Phase phase);
  // Every thread busy and connections waiting for one. Takes no lock unless every thread is
  // busy (then POCO's queue lock).
  bool saturated() const;
  void run();

  const Clock::duration timeout_;                           // const after construction
  const std::vector<Poco::Net::IPAddress> trustedProxies_;  // const after construction
  std::atomic<const Poco::Net::TCPServer*> server_{nullptr};
  std::atomic<int> maxThreads_{0};  // server_'s, read once by watch()
  std::atomic<int> active_{0};      // connections between add() and remove(): busy threads
  // The wrapped factories (kept alive here) and their concrete type, for serverStopped().
  std::vector<std::pair<Poco::Net::HTTPRequestHandlerFactory::Ptr, GuardedHandlerFactory*>>
      factories_;  // guarded by mutex_

  mutable std::mutex mutex_;
  std::condition_variable stop_;                            // signals stopping_
  bool stopping_ = false;                                   // guarded by mutex_
  std::map<const Entry*, std::unique_ptr<Entry>> entries_;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace b24es
