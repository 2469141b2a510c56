#include "ingest_handler.h"

#include <Poco/Logger.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/MediaType.h>
#include <Poco/Stopwatch.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <future>
#include <istream>
#include <optional>

#include "access_log.h"
#include "api_error.h"
#include "common_handlers.h"
#include "event_parser.h"
#include "http_server.h"
#include "lifecycle.h"
#include "log_value.h"

namespace b24es {
namespace {

Poco::Logger& ingestLog() { return Poco::Logger::get("b24es.ingest"); }

enum class BodyFormat { kForm, kJson, kUnsupported };

BodyFormat formatOf(const Poco::Net::HTTPServerRequest& request) {
  if (!request.has("Content-Type")) return BodyFormat::kUnsupported;
  try {
    Poco::Net::MediaType type(request.getContentType());
    if (type.matches("application", "x-www-form-urlencoded")) return BodyFormat::kForm;
    if (type.matches("application", "json")) return BodyFormat::kJson;
  } catch (const Poco::Exception&) {
    // A malformed Content-Type is an unsupported one.
  }
  return BodyFormat::kUnsupported;
}

// Reads the body; false when it is longer than `limit`.
bool readBody(std::istream& in, std::size_t limit, std::string& body) {
  body.clear();
  char buffer[16384];
  while (in) {
    in.read(buffer, sizeof buffer);
    std::streamsize got = in.gcount();
    if (got <= 0) break;
    if (body.size() + static_cast<std::size_t>(got) > limit) return false;
    body.append(buffer, static_cast<std::size_t>(got));
  }
  return true;
}

// Counts one ingest request into Metrics when it goes out of scope, after the answer is sent,
// whichever way the handler returned.
class IngestRecord {
 public:
  explicit IngestRecord(Metrics* metrics) : metrics_(metrics) { watch_.start(); }
  ~IngestRecord() {
    if (metrics_) metrics_->countIngest(result, event, static_cast<double>(watch_.elapsed()) / 1e6);
  }
  IngestRecord(const IngestRecord&) = delete;
  IngestRecord& operator=(const IngestRecord&) = delete;

  Metrics::IngestResult result = Metrics::IngestResult::kInvalid;
  // The event code once stored. Unverified requests are all counted as "_unverified": their
  // codes are whatever a sender typed and would use up the metric's label values.
  std::string event = "_unverified";

 private:
  Metrics* const metrics_;
  Poco::Stopwatch watch_;
};

// Answers POST {ingest.path}. Under HttpServer the commit is waited for without a thread:
// begin() submits the event and finish() answers once it is committed. handleRequest() does
// both on the calling thread, for servers that give each request a thread.
class IngestHandler final : public AsyncRequestHandler {
 public:
  IngestHandler(const IngestSettings& settings, EventSink& sink, const Clock& clock,
                Metrics* metrics, LifecycleVerifier* lifecycle, const AfterStore& afterStore)
      : settings_(settings),
        sink_(sink),
        clock_(clock),
        record_(metrics),
        lifecycle_(lifecycle),
        afterStore_(afterStore) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    if (!prepare(request, response)) return;
    if (needsPortal()) {
      std::promise<IngestOutcome> answered;
      lifecycle_->submit(*event_, [&answered](const IngestOutcome& o) { answered.set_value(o); });
      outcome_ = answered.get_future().get();
    } else {
      outcome_ = sink_.write(*event_);
    }
    finish(response);
  }

  bool begin(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
             std::function<void()> resume) override {
    if (!prepare(request, response)) return false;
    auto done = [this, resume = std::move(resume)](const IngestOutcome& outcome) {
      outcome_ = outcome;
      resume();
    };
    // An event app.info must confirm waits on the lifecycle workers, never on this loop, and
    // other portals' events go on to the writer meanwhile.
    if (needsPortal()) {
      lifecycle_->submit(*event_, std::move(done));
    } else {
      sink_.submit(*event_, std::move(done));
    }
    return true;
  }

  void finish(Poco::Net::HTTPServerResponse& response) override {
    Poco::Logger& log = ingestLog();
    const IncomingEvent& event = *event_;
    // Built only when logged: Poco formats a message before it checks the log level.
    auto context = [&event] {
      return "member_id=" + logValue(event.memberId) + " event=" + logValue(event.event);
    };
    RequestNotes* notes = notesOf(response);
    if (notes) {
      notes->memberId = event.memberId;
      notes->event = event.event;
      notes->domain = event.domain;
    }
    switch (outcome_.status) {
      case IngestOutcome::Status::kStored:
        if (notes) notes->storedId = outcome_.id;
        record_.result = Metrics::IngestResult::kStored;
        record_.event = event.event;
        if (log.debug()) {
          log.debug("stored id=%Ld %s", static_cast<Poco::Int64>(outcome_.id), context());
        }
        sendJson(response, Poco::Net::HTTPResponse::HTTP_OK,
                 "{\"status\":\"stored\",\"id\":" + std::to_string(outcome_.id) + "}");
        // After the answer: what the commit starts (bindings, an offline pass) is only queued.
        if (afterStore_) afterStore_(event);
        return;
      case IngestOutcome::Status::kRejected:
        record_.result = Metrics::IngestResult::kRejected;
        return sendError(response, {401, "verification_failed", outcome_.reason}, log, context());
      case IngestOutcome::Status::kLimited:
        record_.result = Metrics::IngestResult::kRejected;
        response.set("Retry-After", std::to_string(outcome_.retryAfterSeconds));
        return sendError(response,
                         {429, "too_many_new_portals",
                          "too many new portals were installed in the last hour; try again later"},
                         log, context());
      case IngestOutcome::Status::kUnreachable:
        record_.result = Metrics::IngestResult::kUnavailable;
        return sendError(response,
                         {503, "portal_unreachable",
                          "the portal could not be asked to confirm the event; it was not stored"},
                         log, context() + " cause=" + outcome_.reason);
      case IngestOutcome::Status::kUnavailable:
        record_.result = Metrics::IngestResult::kUnavailable;
        // Not logged per request: the store logs each storage fault once, when it begins and
        // when it ends (a full disk logged two lines per refused request before, issue 13).
        if (log.debug()) log.debug("503 %s cause=%s", context(), outcome_.reason);
        return sendError(response, {503, "storage_unavailable",
                                    "the event could not be committed; it was not stored"});
    }
  }

 private:
  // Reads, decodes and parses the request into event_; false after answering it with an error.
  bool prepare(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
    Poco::Logger& log = ingestLog();
    BodyFormat format = formatOf(request);
    if (format == BodyFormat::kUnsupported) {
      sendError(response,
                {415, "unsupported_media_type",
                 "send application/x-www-form-urlencoded or application/json"},
                log);
      return false;
    }
    auto tooLarge = [this] {
      return ApiError{
          413, "body_too_large",
          "the body is larger than " + std::to_string(settings_.maxBodyBytes) + " bytes"};
    };
    std::string body;
    std::optional<Poco::Int64> declared;
    if (request.hasContentLength()) {
      // Parsed already: the server refuses a value that is not a number or is negative with
      // 400 before any handler runs.
      declared = request.getContentLength64();
      if (*declared > static_cast<Poco::Int64>(settings_.maxBodyBytes)) {
        sendError(response, tooLarge(), log);
        return false;
      }
      body.reserve(static_cast<std::size_t>(*declared));
    }
    if (!readBody(request.stream(), settings_.maxBodyBytes, body)) {
      sendError(response, tooLarge(), log);
      return false;
    }
    // A connection that broke mid-body must not store a truncated event as if it were whole.
    if (declared && static_cast<Poco::Int64>(body.size()) != *declared) {
      response.setKeepAlive(false);
      sendError(response,
                {400, "malformed_body",
                 "the body ended after " + std::to_string(body.size()) + " of " +
                     std::to_string(*declared) + " bytes"},
                log);
      return false;
    }

    DecodeLimits limits;
    DecodedBody decoded =
        format == BodyFormat::kForm ? decodeFormBody(body, limits) : decodeJsonBody(body, limits);
    if (decoded.error) {
      sendError(response, {400, decoded.error->code, decoded.error->message}, log);
      return false;
    }
    auto parsed = parseEvent(*decoded.root, clock_.nowSeconds());
    if (auto* error = std::get_if<EventError>(&parsed)) {
      // What it claimed to be, for the access log and the rejection record.
      if (RequestNotes* notes = notesOf(response)) {
        ClaimedIdentity claimed = claimedIdentity(*decoded.root);
        notes->event = std::move(claimed.event);
        notes->memberId = std::move(claimed.memberId);
        notes->domain = std::move(claimed.domain);
      }
      sendError(response, {400, error->code, error->message}, log);
      return false;
    }
    event_.emplace(std::move(std::get<IncomingEvent>(parsed)));
    return true;
  }

  bool needsPortal() const { return lifecycle_ && LifecycleVerifier::mayNeedAppInfo(*event_); }

  const IngestSettings& settings_;
  EventSink& sink_;
  const Clock& clock_;
  IngestRecord record_;  // counts the request when the handler is destroyed, after the answer
  std::optional<IncomingEvent> event_;
  IngestOutcome outcome_;  // written by the sink's thread before it resumes the handler
  LifecycleVerifier* const lifecycle_;  // may be null: every event goes to the sink
  const AfterStore& afterStore_;        // the factory's; may be empty
};

}  // namespace

IngestHandlerFactory::IngestHandlerFactory(const IngestSettings& settings, EventSink& sink,
                                           Storage& storage, const Clock& clock, Metrics* metrics,
                                           LifecycleVerifier* lifecycle, AfterStore afterStore)
    : settings_(settings),
      sink_(sink),
      storage_(storage),
      clock_(clock),
      metrics_(metrics),
      lifecycle_(lifecycle),
      afterStore_(std::move(afterStore)) {}

Poco::Net::HTTPRequestHandler* IngestHandlerFactory::createRequestHandler(
    const Poco::Net::HTTPServerRequest& request) {
  std::string path = requestPath(request);
  const std::string& method = request.getMethod();
  if (path == settings_.path) {
    if (method != Poco::Net::HTTPRequest::HTTP_POST) {
      return new ErrorHandler({405, "method_not_allowed", "events are delivered with POST"},
                              "POST");
    }
    return new IngestHandler(settings_, sink_, clock_, metrics_, lifecycle_, afterStore_);
  }
  if (path == "/healthz") {
    if (method != Poco::Net::HTTPRequest::HTTP_GET && method != Poco::Net::HTTPRequest::HTTP_HEAD) {
      return new ErrorHandler({405, "method_not_allowed", "use GET"}, "GET, HEAD");
    }
    return new HealthHandler([this] { return healthProblem(storage_); });
  }
  return new ErrorHandler({404, "not_found", "no such path"});
}

}  // namespace b24es
