// The ingest listener (SPEC §4): POST {ingest.path} receives Bitrix24 events; GET /healthz
// answers liveness. A request is decoded and checked completely before it reaches the store,
// and answered 200 only after its event is committed.
#pragma once

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>

#include <string>

#include "api_error.h"
#include "body_decoder.h"
#include "clock.h"
#include "ingest_settings.h"
#include "metrics.h"
#include "storage.h"

namespace b24es {

// Creates one handler per request. Holds references only; `sink`, `storage`, `clock` and
// `metrics` (when given; every ingest request is counted into it) must outlive the HTTP server
// using this factory. Thread-safe.
class IngestHandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  IngestHandlerFactory(const IngestSettings& settings, EventSink& sink, Storage& storage,
                       const Clock& clock, Metrics* metrics = nullptr);
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest& request) override;

 private:
  const IngestSettings settings_;  // const after construction
  EventSink& sink_;
  Storage& storage_;
  const Clock& clock_;
  Metrics* const metrics_;  // may be null
};

}  // namespace b24es
