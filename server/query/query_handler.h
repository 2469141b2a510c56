// The query listener (SPEC §5): read-only API over the stored events, portals and tokens, plus
// /healthz, /metrics and the OpenAPI document. Only GET and HEAD; HEAD answers the headers GET
// would. When query.token is set, every path but /healthz needs Authorization: Bearer TOKEN.
#pragma once

#include <Poco/Net/HTTPRequestHandlerFactory.h>

#include <string>
#include <vector>

#include "clock.h"
#include "metrics.h"
#include "query_settings.h"
#include "storage.h"

namespace b24es {

class StreamHub;

// Every path the query listener answers, as templates ("/api/v1/events/{id}"), in the order
// they are matched. The OpenAPI document must describe each (tests check it).
const std::vector<std::string>& queryRoutes();

// Creates one handler per request. `storage`, `metrics`, `clock` and `streams` (the live
// stream's hub, started) must outlive the HTTP server. Thread-safe.
class QueryHandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  QueryHandlerFactory(const QuerySettings& settings, Storage& storage, Metrics& metrics,
                      const Clock& clock, StreamHub& streams);
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest& request) override;

 private:
  const QuerySettings settings_;  // const after construction
  Storage& storage_;
  Metrics& metrics_;
  const Clock& clock_;
  StreamHub& streams_;
};

}  // namespace b24es
