// Keeps the listeners responsive under abuse (SPEC §4, issue 6). POCO's HTTPServer serves each
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
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Timespan.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace b24es {

class ConnectionWatchdog {
 public:
  // Starts the watchdog thread. Thread-safe.
  explicit ConnectionWatchdog(Poco::Timespan requestTimeout);
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
  void watch(const Poco::Net::TCPServer* server) { server_ = server; }
  // Signals the wrapped handler factories that the server is stopping, so that each connection
  // ends after its current request (what HTTPServer::stopAll(false) does for HTTPServer).
  void serverStopped();

  // Called on a connection's own thread by a handler that finished reading the request body:
  // the deadline is lifted while the request is processed. No-op outside a guarded connection.
  static void bodyReceived();

 private:
  class GuardedConnection;
  class GuardedFactory;
  class GuardedHandlerFactory;

  using Clock = std::chrono::steady_clock;
  enum class Phase { kAwaitingRequest, kReadingBody, kProcessing };
  struct Entry {
    Poco::Net::StreamSocket socket;
    Clock::time_point deadline;  // Clock::time_point::max() while processing
    Phase phase = Phase::kAwaitingRequest;
    Clock::time_point since;  // when it entered `phase`
    bool served = false;      // has had at least one request
    bool cut = false;         // shut down by the watchdog
  };

  std::uint64_t add(const Poco::Net::StreamSocket& socket);
  void remove(std::uint64_t id);
  // Moves a connection to `phase`; every phase but kProcessing gets deadline now + timeout.
  void enter(std::uint64_t id, Phase phase);
  bool saturated() const;               // every thread busy and connections waiting for one
  bool cutOff(std::uint64_t id) const;  // whether the watchdog shut connection `id` down
  void run();

  const Clock::duration timeout_;  // const after construction
  std::atomic<const Poco::Net::TCPServer*> server_{nullptr};
  // The wrapped factories (kept alive here) and their concrete type, for serverStopped().
  std::vector<std::pair<Poco::Net::HTTPRequestHandlerFactory::Ptr, GuardedHandlerFactory*>>
      factories_;  // guarded by mutex_

  mutable std::mutex mutex_;
  std::condition_variable stop_;            // signals stopping_
  bool stopping_ = false;                   // guarded by mutex_
  std::uint64_t nextId_ = 1;                // guarded by mutex_
  std::map<std::uint64_t, Entry> entries_;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace b24es
