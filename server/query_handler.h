// The query listener (SPEC §5): read-only API over the stored events, portals and tokens.
#pragma once

#include <Poco/Net/HTTPRequestHandlerFactory.h>

#include "settings.h"
#include "storage.h"

namespace b24es {

// Creates one handler per request. `storage` must outlive the HTTP server. Thread-safe.
class QueryHandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  QueryHandlerFactory(const QuerySettings& settings, Storage& storage);
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest& request) override;

 private:
  const QuerySettings settings_;  // const after construction
  Storage& storage_;
};

}  // namespace b24es
