// The comparison point of scripts/bench-ingest: a bare POCO HTTPServer that reads the request
// body and answers 200 with a small JSON body, storing nothing. Not part of the product.
// Usage: bare_handler PORT  (prints "listening PORT" and serves until SIGTERM/SIGINT)
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>
#include <signal.h>

#include <cstdlib>
#include <iostream>

namespace {

class BareHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    std::string body;
    Poco::StreamCopier::copyToString(request.stream(), body);
    static const std::string answer = "{\"status\":\"stored\",\"id\":1}";
    response.setContentType("application/json");
    response.setContentLength(static_cast<std::streamsize>(answer.size()));
    response.send() << answer;
  }
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new BareHandler;
  }
};

}  // namespace

int main(int argc, char** argv) {
  sigset_t termination;
  sigemptyset(&termination);
  sigaddset(&termination, SIGINT);
  sigaddset(&termination, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &termination, nullptr);
  unsigned short port = argc > 1 ? static_cast<unsigned short>(std::atoi(argv[1])) : 0;
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", port), 256);
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(64);
  params->setMaxQueued(256);
  Poco::ThreadPool pool(2, 64);
  Poco::Net::HTTPServer server(new Factory, pool, socket, params);
  server.start();
  std::cout << "listening " << socket.address().port() << std::endl;
  int sig = 0;
  sigwait(&termination, &sig);
  server.stop();
  return 0;
}
