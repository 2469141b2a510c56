#include "query_handler.h"

#include <Poco/Logger.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include "api_error.h"
#include "common_handlers.h"
#include "constant_time.h"
#include "dashboard.h"
#include "http_server.h"
#include "log_value.h"
#include "openapi.h"
#include "query_json.h"
#include "query_params.h"
#include "stream_hub.h"

namespace b24es {
namespace {

// Looked up once: Logger::get takes a global lock.
Poco::Logger& queryLog() {
  static Poco::Logger& log = Poco::Logger::get("b24es.query");
  return log;
}

enum class Route {
  kHealth,
  kMetrics,
  kOpenApi,
  kEvents,
  kStream,
  kEvent,
  kPortals,
  kPortal,
  kStats,
  kTimeline,
  kRejections
};

struct RouteSpec {
  const char* pattern;  // "{name}" matches one non-empty path segment
  Route route;
};

const RouteSpec kRoutes[] = {
    {"/healthz", Route::kHealth},
    {"/metrics", Route::kMetrics},
    {"/api/v1/openapi.json", Route::kOpenApi},
    {"/api/v1/events", Route::kEvents},
    {"/api/v1/events/stream", Route::kStream},  // before {id}, which would take it
    {"/api/v1/events/{id}", Route::kEvent},
    {"/api/v1/portals", Route::kPortals},
    {"/api/v1/portals/{member_id}", Route::kPortal},
    {"/api/v1/stats", Route::kStats},
    {"/api/v1/stats/timeline", Route::kTimeline},
    {"/api/v1/rejections", Route::kRejections},
};

// Matches a decoded path against a pattern segment by segment; the one "{...}" segment, if
// any, is captured. A trailing slash is a different path (404), as in the OpenAPI document.
bool matches(const std::string& pattern, const std::string& path, std::string& captured) {
  std::size_t p = 0, q = 0;
  while (p < pattern.size() && q < path.size()) {
    if (pattern[p] == '{') {
      std::size_t patternEnd = pattern.find('/', p);
      std::size_t pathEnd = path.find('/', q);
      if (pathEnd == q) return false;  // empty segment
      captured = path.substr(q, pathEnd == std::string::npos ? std::string::npos : pathEnd - q);
      p = patternEnd == std::string::npos ? pattern.size() : patternEnd;
      q = pathEnd == std::string::npos ? path.size() : pathEnd;
      continue;
    }
    if (pattern[p] != path[q]) return false;
    ++p;
    ++q;
  }
  return p == pattern.size() && q == path.size();
}

// Whether the request may use the API: always when no token is configured; otherwise only with
// "Authorization: Bearer TOKEN", compared in constant time.
bool authorized(const Poco::Net::HTTPServerRequest& request, const std::string& token) {
  if (token.empty()) return true;
  if (!request.hasCredentials()) return false;
  std::string scheme, presented;
  try {
    request.getCredentials(scheme, presented);
  } catch (const Poco::Exception&) {
    return false;  // a malformed Authorization header
  }
  return Poco::icompare(scheme, "Bearer") == 0 && constantTimeEquals(presented, token);
}

// 200 with `body`; for HEAD the same headers (Content-Length included) and no body.
void sendOk(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
            const std::string& contentType, const std::string& body) {
  response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_OK);
  response.setContentType(contentType);
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  if (request.getMethod() == Poco::Net::HTTPRequest::HTTP_HEAD) {
    response.send();
  } else {
    response.send() << body;
  }
}

class UnauthorizedHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    response.set("WWW-Authenticate", "Bearer realm=\"b24-event-store\"");
    sendError(
        response,
        {401, "unauthorized", "this API needs the header Authorization: Bearer <query.token>"},
        queryLog(), logValue(request.getMethod()) + " " + logValue(requestPath(request)));
  }
};

// Serves one embedded dashboard file (dashboard.h). Without the bearer token: the page holds no
// secret and asks for the token itself. no-cache: a new binary's page is picked up at once.
class AssetHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit AssetHandler(const EmbeddedAsset& asset) : asset_(asset) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    response.set("Cache-Control", "no-cache");
    response.set("X-Content-Type-Options", "nosniff");
    sendOk(request, response, asset_.contentType, asset_.body);
  }

 private:
  const EmbeddedAsset& asset_;
};

// GET /api/v1/events/stream (SPEC §5.1): checks the request completely, takes a place among the
// open streams and answers the head; the hub (stream_hub.h) writes the body. Runs on the
// listener's loop thread and never touches the database.
class StreamHandler final : public StreamingRequestHandler {
 public:
  StreamHandler(Poco::URI uri, StreamHub& hub) : uri_(std::move(uri)), hub_(hub) {}
  ~StreamHandler() override {
    if (reserved_) hub_.release();  // the head was never sent
  }

  void open(Poco::Net::HTTPServerRequest& request,
            Poco::Net::HTTPServerResponse& response) override {
    const std::string context = logValue(request.getMethod()) + " " + logValue(uri_.getPath());
    Poco::Logger& log = queryLog();
    QueryParameters params;
    try {
      params = uri_.getQueryParameters();
    } catch (const Poco::Exception&) {
      return sendError(response, {400, "invalid_parameter", "the query string cannot be decoded"},
                       log, context);
    }
    auto parsed = parseStreamFilter(params);
    if (auto* error = std::get_if<InvalidParameter>(&parsed)) {
      return sendError(response, {400, "invalid_parameter", error->message}, log, context);
    }
    filter_ = std::get<EventFilter>(parsed);
    // The header wins over after_id (SPEC §5.1): it is what a reconnecting EventSource sends.
    after_ = filter_.afterId;
    filter_.afterId.reset();
    if (request.has("Last-Event-ID")) {
      std::optional<std::int64_t> id = parseInteger(request.get("Last-Event-ID"));
      if (!id || *id < 0) {
        return sendError(
            response,
            {400, "invalid_parameter", "Last-Event-ID must be the id of an event (an integer)"},
            log, context);
      }
      after_ = id;
    }
    const bool head = request.getMethod() == Poco::Net::HTTPRequest::HTTP_HEAD;
    if (!head) {
      if (!hub_.reserve()) {
        return sendError(
            response,
            {503, "too_many_streams", "query.max_streams event streams are open; try again later"},
            log, context);
      }
      reserved_ = true;
    }
    response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_OK);
    response.setContentType("text/event-stream");
    response.set("Cache-Control", "no-store");
    // A proxy that buffers answers (nginx does by default) would hold events back.
    response.set("X-Accel-Buffering", "no");
    if (head) response.send();  // the head GET would answer; no stream
  }

  void start(std::shared_ptr<ResponseStream> stream) override {
    reserved_ = false;  // the hub gives the place back when the stream closes
    hub_.add(filter_, after_, std::move(stream));
  }

 private:
  const Poco::URI uri_;
  StreamHub& hub_;
  EventFilter filter_;
  std::optional<std::int64_t> after_;
  bool reserved_ = false;
};

class QueryHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  QueryHandler(Route route, std::string captured, Poco::URI uri, Storage& storage, Metrics& metrics,
               const Clock& clock)
      : route_(route),
        captured_(std::move(captured)),
        uri_(std::move(uri)),
        storage_(storage),
        metrics_(metrics),
        clock_(clock) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    const std::string context = logValue(request.getMethod()) + " " + logValue(uri_.getPath());
    QueryParameters params;
    try {
      params = uri_.getQueryParameters();
    } catch (const Poco::Exception&) {
      return sendError(response, {400, "invalid_parameter", "the query string cannot be decoded"},
                       queryLog(), context);
    }
    try {
      answer(request, response, params, context);
    } catch (const StorageError& e) {
      sendError(response, {503, "storage_unavailable", "the database cannot answer right now"},
                queryLog(), context + " cause=" + e.what());
    }
  }

 private:
  void answer(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
              const QueryParameters& params, const std::string& context) {
    Poco::Logger& log = queryLog();
    const std::string json = "application/json";
    if (route_ == Route::kEvents) {
      auto parsed = parseEventFilter(params);
      if (auto* error = std::get_if<InvalidParameter>(&parsed)) {
        return sendError(response, {400, "invalid_parameter", error->message}, log, context);
      }
      const EventFilter& filter = std::get<EventFilter>(parsed);
      EventPageWriter page(filter.limit);
      storage_.reader().scanEvents(filter, [&page](EventRecord& e) { return page.add(e); });
      return sendOk(request, response, json, page.finish());
    }
    if (route_ == Route::kPortals) {
      auto parsed = parsePortalFilter(params);
      if (auto* error = std::get_if<InvalidParameter>(&parsed)) {
        return sendError(response, {400, "invalid_parameter", error->message}, log, context);
      }
      return sendOk(request, response, json,
                    portalPageJson(storage_.reader().listPortals(std::get<PortalFilter>(parsed)),
                                   clock_.nowSeconds()));
    }
    if (route_ == Route::kTimeline) {
      auto parsed = parseTimelineQuery(params, clock_.nowSeconds());
      if (auto* error = std::get_if<InvalidParameter>(&parsed)) {
        return sendError(response, {400, "invalid_parameter", error->message}, log, context);
      }
      const TimelineQuery& query = std::get<TimelineQuery>(parsed);
      return sendOk(request, response, json,
                    timelineJson(query.width, storage_.reader().timeline(query)));
    }
    if (route_ == Route::kRejections) {
      auto parsed = parseRejectionFilter(params);
      if (auto* error = std::get_if<InvalidParameter>(&parsed)) {
        return sendError(response, {400, "invalid_parameter", error->message}, log, context);
      }
      return sendOk(
          request, response, json,
          rejectionPageJson(storage_.reader().listRejections(std::get<RejectionFilter>(parsed))));
    }
    // The other routes take no parameters; an unexpected one is more likely a mistake
    // (a filter meant for /api/v1/events) than something to ignore.
    if (route_ != Route::kMetrics) {
      if (auto error = rejectParameters(params)) {
        return sendError(response, {400, "invalid_parameter", error->message}, log, context);
      }
    }
    switch (route_) {
      case Route::kEvent: {
        std::optional<std::int64_t> id = parseInteger(captured_);
        if (!id || *id < 1) {
          return sendError(response,
                           {400, "invalid_parameter", "an event id is a positive integer"}, log,
                           context);
        }
        std::optional<EventRecord> event = storage_.reader().findEvent(*id);
        if (!event) {
          return sendError(response, {404, "not_found", "no event has this id"}, log, context);
        }
        return sendOk(request, response, json, eventJson(*event));
      }
      case Route::kPortal: {
        std::optional<PortalView> portal = storage_.reader().findPortalView(captured_);
        if (!portal) {
          return sendError(response, {404, "not_found", "no portal has this member_id"}, log,
                           context);
        }
        return sendOk(request, response, json, portalJson(*portal, clock_.nowSeconds()));
      }
      case Route::kStats:
        return sendOk(request, response, json, statsJson(storage_.reader().stats()));
      case Route::kOpenApi:
        return sendOk(request, response, json, openApiDocument());
      case Route::kMetrics: {
        // Token states are read at scrape time; a failing database still yields the counters.
        std::optional<TokenStateCounts> tokens;
        std::optional<std::vector<BindingStateCount>> bindings;
        try {
          tokens = storage_.reader().tokenStates(clock_.nowSeconds());
          bindings = storage_.reader().bindingStates();
        } catch (const StorageError& e) {
          tokens.reset();
          log.warning("metrics: token and binding states unavailable: %s", std::string(e.what()));
        }
        return sendOk(request, response, "text/plain; version=0.0.4; charset=utf-8",
                      metrics_.render(tokens, bindings));
      }
      case Route::kHealth:
      case Route::kStream:
      case Route::kEvents:
      case Route::kPortals:
      case Route::kTimeline:
      case Route::kRejections:
        break;  // answered elsewhere
    }
  }

  const Route route_;
  const std::string captured_;
  const Poco::URI uri_;  // the request's, parsed once by the factory
  Storage& storage_;
  Metrics& metrics_;
  const Clock& clock_;
};

}  // namespace

const std::vector<std::string>& queryRoutes() {
  static const std::vector<std::string> routes = [] {
    std::vector<std::string> out;
    for (const RouteSpec& r : kRoutes) out.emplace_back(r.pattern);
    // The dashboard (dashboard.h), answered before the routes above and without the token.
    out.emplace_back("/");
    out.emplace_back("/assets/{name}");
    return out;
  }();
  return routes;
}

QueryHandlerFactory::QueryHandlerFactory(const QuerySettings& settings, Storage& storage,
                                         Metrics& metrics, const Clock& clock, StreamHub& streams)
    : settings_(settings), storage_(storage), metrics_(metrics), clock_(clock), streams_(streams) {}

Poco::Net::HTTPRequestHandler* QueryHandlerFactory::createRequestHandler(
    const Poco::Net::HTTPServerRequest& request) {
  const std::string& method = request.getMethod();
  if (method != Poco::Net::HTTPRequest::HTTP_GET && method != Poco::Net::HTTPRequest::HTTP_HEAD) {
    return new ErrorHandler({405, "method_not_allowed", "the query API is read-only"}, "GET, HEAD");
  }
  Poco::URI uri;
  try {
    uri = Poco::URI(request.getURI());
  } catch (const Poco::Exception&) {
    // Left empty: matches no route, so the answer is 401 or 404.
  }
  const std::string& path = uri.getPath();
  const RouteSpec* found = nullptr;
  std::string captured;
  for (const RouteSpec& r : kRoutes) {
    captured.clear();
    if (matches(r.pattern, path, captured)) {
      found = &r;
      break;
    }
  }
  if (found && found->route == Route::kHealth)
    return new HealthHandler([this] { return healthProblem(storage_); });
  if (const EmbeddedAsset* asset = findAsset(path)) return new AssetHandler(*asset);
  // Checked before the 404, so that without the token nothing tells which paths exist.
  if (!authorized(request, settings_.token)) return new UnauthorizedHandler;
  if (!found) return new ErrorHandler({404, "not_found", "no such path"});
  if (found->route == Route::kStream) return new StreamHandler(std::move(uri), streams_);
  return new QueryHandler(found->route, captured, std::move(uri), storage_, metrics_, clock_);
}

}  // namespace b24es
