// The ingest listener's HTTP server (SPEC §4, issue 6). A few threads each serve any number of
// connections from an epoll loop: a request waiting for its commit holds no thread, an idle
// connection costs a buffer, and the writer hands a whole batch of answers to each loop with one
// wake-up. POCO 1.11 serves one connection per thread, whose sleeps and wake-ups cost more than
// the request itself on a busy machine (see README, "Ingest performance"); the query listener
// keeps POCO's server.
//
// Requests are parsed by POCO (HTTPRequest::read over the buffered header block) and answered
// by the same HTTPRequestHandlerFactory and handlers a POCO HTTPServer would use, through the
// HTTPServerRequest and HTTPServerResponse implementations in ingest_server.cpp. Handlers run on
// the loop thread and must not block; one whose answer comes later implements
// AsyncRequestHandler.
#pragma once

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Timespan.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace b24es {

// A handler whose answer is ready later: begin() starts the work and returns true, the work
// calls `resume` once from any thread when it is done, and the server then calls finish() on
// the loop thread to answer. begin() returns false when it answered at once.
class AsyncRequestHandler : public Poco::Net::HTTPRequestHandler {
 public:
  virtual bool begin(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                     std::function<void()> resume) = 0;
  virtual void finish(Poco::Net::HTTPServerResponse& response) = 0;
};

struct IngestServerSettings {
  int threads = 2;  // event loops, each serving any number of connections
  // A connection must deliver each complete request (headers and body) within this, counted
  // from connecting or from the previous answer; slower clients are disconnected.
  Poco::Timespan requestTimeout{30, 0};
  // Bodies are buffered up to this many bytes; a longer one reaches the handler cut at one byte
  // more, for it to refuse, and the connection then closes.
  std::size_t maxBodyBytes = 1048576;
  // Peers whose X-Forwarded-For / X-Real-IP name the client (the access log, rejections).
  std::vector<Poco::Net::IPAddress> trustedProxies;
};

class IngestServer {
 public:
  // `socket` is bound and listening. HTTPServerParams give the keep-alive timeout (how long a
  // connection may wait between requests), whether keep-alive is allowed, the most requests per
  // connection and the Server header.
  IngestServer(const Poco::Net::ServerSocket& socket,
               Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
               Poco::Net::HTTPServerParams::Ptr params, const IngestServerSettings& settings);
  ~IngestServer();  // stop(0) if still running
  IngestServer(const IngestServer&) = delete;
  IngestServer& operator=(const IngestServer&) = delete;

  void start();
  // Stops accepting and closes idle connections at once; requests already being handled are
  // answered (with Connection: close). Waits up to `grace` for those answers to be sent, and
  // always until every started handler has resumed, so none outlives the server.
  void stop(Poco::Timespan grace);
  Poco::UInt16 port() const { return socket_.address().port(); }

 private:
  class Loop;

  Poco::Net::ServerSocket socket_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
};

}  // namespace b24es
