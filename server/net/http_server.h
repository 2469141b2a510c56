// The HTTP server both listeners run on (SPEC §4, §5; issues 6 and 11). A few loop threads each
// serve any number of connections: a Reactor (reactor.h) per thread moves bytes between the
// sockets and one Http1Connection (http1_connection.h) each, which frames requests strictly and
// serializes answers. A request waiting for its answer holds no loop: an AsyncRequestHandler
// (the ingest handler, waiting for its commit) resumes the connection through the loop's
// wake-up, and a plain handler (the query API, which reads the database) runs on one of
// `workers` threads and resumes it the same way. An idle connection costs a buffer. POCO 1.11
// serves one connection per thread, whose sleeps and wake-ups cost more than the request itself
// on a busy machine (see README, "Ingest performance"), and it cannot serve hundreds of
// long-lived answers.
//
// Requests are answered by the same HTTPRequestHandlerFactory and handlers a POCO HTTPServer
// would use, through Http1Request and Http1Response.
#pragma once

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Timespan.h>

#include "access_log.h"

#include <functional>
#include <memory>
#include <string>
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

struct HttpServerSettings {
  std::string name = "http";  // thread names: b24es-NAME, b24es-NAME-w
  int threads = 2;            // event loops, each serving any number of connections
  // Threads that run handlers other than AsyncRequestHandler, so one that blocks (reads the
  // database) holds no loop; 0: such handlers run on the loop thread and must not block.
  int workers = 0;
  // A connection must deliver each complete request (headers and body) within this, counted
  // from connecting or from the previous answer; slower clients are disconnected.
  Poco::Timespan requestTimeout{30, 0};
  // Bodies are buffered up to this many bytes; a longer one reaches the handler cut (see
  // Http1Limits), for it to refuse, and the connection then closes.
  std::size_t maxBodyBytes = 1048576;
  // Peers whose X-Forwarded-For / X-Real-IP name the client in the access log and in rejections'
  // log lines (SPEC §10 ingest.trusted_proxies); empty trusts none.
  std::vector<Poco::Net::IPAddress> trustedProxies;
  // Told of every 4xx answer the server queues, whichever layer answered (a handler, or the
  // connection refusing what it cannot frame); see RejectionObserver. None when empty.
  RejectionObserver onRejection;
};

class HttpServer {
 public:
  // `socket` is bound and listening. HTTPServerParams give the timeout of a new connection's
  // first request, the keep-alive timeout (how long a connection may wait between requests),
  // whether keep-alive is allowed, the most requests per connection and the Server header.
  // Throws Poco::SystemException when an event loop cannot be created.
  HttpServer(const Poco::Net::ServerSocket& socket,
             Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
             Poco::Net::HTTPServerParams::Ptr params, const HttpServerSettings& settings);
  ~HttpServer();  // stop(0) if still running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void start();
  // Stops accepting and closes idle connections at once; requests already being handled are
  // answered (with Connection: close). Waits up to `grace` for those answers to be sent, and
  // always until every started handler has resumed, so none outlives the server.
  void stop(Poco::Timespan grace);
  Poco::UInt16 port() const { return socket_.address().port(); }

 private:
  class Loop;
  class Workers;

  Poco::Net::ServerSocket socket_;
  std::unique_ptr<Workers> workers_;  // null without workers; outlives the loops' handlers
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
  const std::string name_;
};

}  // namespace b24es
