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
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Timespan.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "access_log.h"

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

// The writing end of a streamed answer (the live event stream, SPEC §5.1): a body of no known
// length that goes on until either side ends it. The server makes one per streamed answer and
// keeps the socket side on its loop thread; whoever produces the body holds it from any thread.
// Thread-safe; every method is quick and never blocks on the client.
class ResponseStream {
 public:
  // Why a stream closed, as its onClose callback is told.
  enum class Closed {
    kEnded,    // end() was called, or the server stopped
    kClient,   // the client closed the connection or a send failed
    kTooSlow,  // more than HttpServerSettings::maxStreamUnsent bytes were waiting for it
  };

  virtual ~ResponseStream() = default;
  // Queues bytes for the client and wakes its loop. False once the stream is closed (the bytes
  // are dropped): the producer should then forget it.
  virtual bool write(std::string bytes) = 0;
  // Ends the body: the connection closes once what was queued is sent.
  virtual void end() = 0;
  virtual bool isOpen() const = 0;
  // Bytes accepted by write() and not yet handed to the socket: how far the client is behind.
  virtual std::size_t queued() const = 0;
  // `done` is called once, on the loop thread, when the stream closes (at once, on the calling
  // thread, when it already has). It must be quick and must not call back into the stream.
  virtual void onClose(std::function<void(Closed)> done) = 0;
};

// A handler that may answer with a stream. The server calls open() on its loop thread (never on a
// worker): it must not block. open() either answers `response` as a plain handler does (sends it:
// an error, a HEAD), or sets the status and headers of a streamed answer and leaves it unsent:
// the server then queues that head (no Content-Length, Connection: close; the body ends with
// the connection, RFC 9112 §6.3) and hands the body's writing end to start(), right away, on the
// same thread. Input the client sends after the request is read and dropped; its end of the
// connection (FIN) closes the stream.
class StreamingRequestHandler : public Poco::Net::HTTPRequestHandler {
 public:
  virtual void open(Poco::Net::HTTPServerRequest& request,
                    Poco::Net::HTTPServerResponse& response) = 0;
  virtual void start(std::shared_ptr<ResponseStream> stream) = 0;

  // For a server that knows no streams (POCO's own HTTPServer): what open() answers, or, for a
  // streamed answer, its head and an empty body.
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    open(request, response);
    if (!response.sent()) response.send();
  }
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
  // A streamed answer (ResponseStream) whose client leaves more than this many bytes queued,
  // beyond what the kernel's socket buffer took, is cut (SPEC §5.1: 1 MiB).
  std::size_t maxStreamUnsent = 1048576;
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
