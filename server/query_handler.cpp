#include "query_handler.h"

#include <Poco/Net/HTTPServerRequest.h>

#include "ingest_handler.h"

namespace b24es {

QueryHandlerFactory::QueryHandlerFactory(const QuerySettings& settings, Storage& storage)
    : settings_(settings), storage_(storage) {}

Poco::Net::HTTPRequestHandler* QueryHandlerFactory::createRequestHandler(
    const Poco::Net::HTTPServerRequest& request) {
  const std::string& method = request.getMethod();
  if (method != Poco::Net::HTTPRequest::HTTP_GET && method != Poco::Net::HTTPRequest::HTTP_HEAD) {
    return new ErrorHandler({405, "method_not_allowed", "the query API is read-only"}, "GET, HEAD");
  }
  if (requestPath(request) == "/healthz") return new HealthHandler(storage_);
  return new ErrorHandler({404, "not_found", "no such path"});
}

}  // namespace b24es
