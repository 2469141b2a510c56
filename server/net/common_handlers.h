// Request handlers and helpers both listeners use: /healthz, fixed error answers (404, 405) and
// the request's path. POCO only; what "healthy" means is the caller's.
#pragma once

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <functional>
#include <optional>
#include <string>

#include "api_error.h"

namespace b24es {

// The path of the request's URI, or "" when the URI cannot be parsed (answered 404).
std::string requestPath(const Poco::Net::HTTPServerRequest& request);

// Answers GET /healthz: 200 {"status":"ok"} when `problem()` names none, otherwise 503 with the
// problem in the message (not logged: monitors poll this, and the store logs a fault once when it
// begins). Shared by both listeners. `problem` must answer at once (it may not open a database
// session) and be thread-safe.
class HealthHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  using Problem = std::function<std::optional<std::string>()>;
  explicit HealthHandler(Problem problem) : problem_(std::move(problem)) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override;

 private:
  Problem problem_;
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
