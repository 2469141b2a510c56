// Request handlers and helpers both listeners use: /healthz, fixed error answers (404, 405) and
// the request's path. POCO only; what "healthy" means is the caller's.
#pragma once

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <functional>
#include <string>

#include "api_error.h"

namespace b24es {

// The path of the request's URI, or "" when the URI cannot be parsed (answered 404).
std::string requestPath(const Poco::Net::HTTPServerRequest& request);

// Answers GET /healthz: 200 {"status":"ok"} when `healthy()` says so, 503 otherwise. Shared by
// both listeners. `healthy` must be cheap and thread-safe.
class HealthHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit HealthHandler(std::function<bool()> healthy) : healthy_(std::move(healthy)) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override;

 private:
  std::function<bool()> healthy_;
};

// Answers every request with the same ApiError (404 for unknown paths, 405, ...).
class ErrorHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit ErrorHandler(ApiError error, std::string allow = {})
      : error_(std::move(error)), allow_(std::move(allow)) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override;

 private:
  ApiError error_;
  std::string allow_;  // the Allow header for 405
};

}  // namespace b24es
