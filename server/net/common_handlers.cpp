#include "common_handlers.h"

#include "log_value.h"

#include <Poco/Exception.h>
#include <Poco/Logger.h>
#include <Poco/URI.h>

namespace b24es {

std::string requestPath(const Poco::Net::HTTPServerRequest& request) {
  try {
    return Poco::URI(request.getURI()).getPath();
  } catch (const Poco::Exception&) {
    return {};
  }
}

void HealthHandler::handleRequest(Poco::Net::HTTPServerRequest& request,
                                  Poco::Net::HTTPServerResponse& response) {
  std::optional<std::string> problem = problem_();
  if (!problem) {
    response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_OK);
    response.setContentType("application/json");
    static const std::string ok = "{\"status\":\"ok\"}";
    response.setContentLength(static_cast<std::streamsize>(ok.size()));
    if (request.getMethod() == Poco::Net::HTTPRequest::HTTP_HEAD) {
      response.send();
    } else {
      response.send() << ok;
    }
    return;
  }
  sendError(response, {503, "unhealthy", "the database is not usable: " + *problem});
}

void ErrorHandler::handleRequest(Poco::Net::HTTPServerRequest& request,
                                 Poco::Net::HTTPServerResponse& response) {
  if (!allow_.empty()) response.set("Allow", allow_);
  sendError(response, error_, Poco::Logger::get("b24es.http"),
            logValue(request.getMethod()) + " " + logValue(requestPath(request)));
}

}  // namespace b24es
