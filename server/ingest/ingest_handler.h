// The ingest listener (SPEC §4): POST {ingest.path} receives Bitrix24 events; GET /healthz
// answers liveness. A request is decoded and checked completely before it reaches the store,
// and answered 200 only after its event is committed.
#pragma once

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>

#include <functional>
#include <string>

#include "api_error.h"
#include "body_decoder.h"
#include "clock.h"
#include "ingest_settings.h"
#include "metrics.h"
#include "storage.h"

namespace b24es {

class LifecycleVerifier;

// Told of each stored event after its answer was queued; must be quick and thread-safe (it runs
// on an event loop thread: it may queue work, never do it).
using AfterStore = std::function<void(const IncomingEvent&)>;

// Creates one handler per request. Holds references only; `sink`, `storage`, `clock` and
// `metrics` (when given; every ingest request is counted into it) must outlive the HTTP server
// using this factory. `lifecycle` (may be null) verifies the events app.info must confirm
// (SPEC §4 items 4-5) on its own threads; without it they go to the sink like any other.
// Thread-safe.
class IngestHandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  IngestHandlerFactory(const IngestSettings& settings, EventSink& sink, Storage& storage,
                       const Clock& clock, Metrics* metrics = nullptr,
                       LifecycleVerifier* lifecycle = nullptr, AfterStore afterStore = {});
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest& request) override;

 private:
  const IngestSettings settings_;  // const after construction
  EventSink& sink_;
  Storage& storage_;
  const Clock& clock_;
  Metrics* const metrics_;              // may be null
  LifecycleVerifier* const lifecycle_;  // may be null
  const AfterStore afterStore_;         // may be empty
};

}  // namespace b24es
