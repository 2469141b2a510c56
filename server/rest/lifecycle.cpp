#include "lifecycle.h"

#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Logger.h>

#include <pthread.h>

#include <sstream>

#include "constant_time.h"

namespace b24es {
namespace {

Poco::Logger& lifecycleLog() { return Poco::Logger::get("b24es.lifecycle"); }

IngestOutcome outcome(IngestOutcome::Status status, std::string reason) {
  return IngestOutcome{status, 0, std::move(reason)};
}

// What an app.info failure means for the event: the portal refused (401) or could not be asked
// (503).
IngestOutcome failed(const RestResult& r, const std::string& what) {
  if (r.kind == RestResult::Kind::kUnreachable) {
    return outcome(IngestOutcome::Status::kUnreachable,
                   "the portal could not be reached to verify " + what + ": " + r.description);
  }
  return outcome(IngestOutcome::Status::kRejected,
                 "the portal did not confirm " + what + " (" + r.error +
                     (r.description.empty() ? "" : ": " + r.description) + ")");
}

}  // namespace

std::string withAppInfo(const std::string& dataJson, const Poco::Dynamic::Var& appInfo) {
  Poco::JSON::Object::Ptr data;
  try {
    Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(/*preserveObjectOrder=*/true));
    Poco::Dynamic::Var parsed = parser.parse(dataJson);
    if (parsed.type() == typeid(Poco::JSON::Object::Ptr)) {
      data = parsed.extract<Poco::JSON::Object::Ptr>();
    }
  } catch (const Poco::Exception&) {
  }
  if (!data) data = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  data->set("APP_INFO", appInfo);
  std::ostringstream out;
  data->stringify(out);
  return out.str();
}

LifecycleVerifier::LifecycleVerifier(Storage& storage, EventSink& sink, RestClient& rest,
                                     int threads, std::size_t maxQueued)
    : storage_(storage), sink_(sink), rest_(rest), maxQueued_(maxQueued) {
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "b24es-lifecycle");
      run();
    });
  }
}

LifecycleVerifier::~LifecycleVerifier() { close(); }

bool LifecycleVerifier::mayNeedAppInfo(const IncomingEvent& event) {
  if (event.kind != EventKind::kOther) return false;
  return event.event == "ONAPPUPDATE" || event.applicationToken.empty();
}

void LifecycleVerifier::submit(IncomingEvent& event, EventSink::Completion done) {
  {
    MutexLock lock(mutex_);
    if (!closing_ && queue_.size() < maxQueued_) {
      queue_.push_back(Job{&event, std::move(done)});
      changed_.signal();
      return;
    }
  }
  done(outcome(IngestOutcome::Status::kUnavailable, "too many events wait for verification"));
}

void LifecycleVerifier::close() {
  {
    MutexLock lock(mutex_);
    closing_ = true;
  }
  changed_.signalAll();
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
}

void LifecycleVerifier::run() {
  for (;;) {
    Job job;
    {
      MutexLock lock(mutex_);
      while (!closing_ && queue_.empty()) changed_.wait(mutex_);
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    verify(*job.event, std::move(job.done));
  }
}

void LifecycleVerifier::verify(IncomingEvent& event, EventSink::Completion done) {
  std::optional<PortalRecord> portal;
  try {
    portal = storage_.findPortal(event.memberId);
  } catch (const StorageError& e) {
    return done(outcome(IngestOutcome::Status::kUnavailable, e.what()));
  }
  const bool installed = portal && portal->installed() && portal->applicationToken;
  if (installed && event.applicationToken.empty()) {
    return verifyPayment(event, *portal, std::move(done));
  }
  if (installed && event.event == "ONAPPUPDATE" &&
      !constantTimeEquals(event.applicationToken, *portal->applicationToken)) {
    return verifyRotation(event, *portal, std::move(done));
  }
  // Nothing the portal must confirm: the writer verifies it as any other event.
  sink_.submit(event, std::move(done));
}

void LifecycleVerifier::verifyRotation(IncomingEvent& event, const PortalRecord& portal,
                                       EventSink::Completion done) {
  if (event.authAccessToken.empty()) {
    return done(outcome(IngestOutcome::Status::kRejected,
                        "a new application token without an access token to verify it"));
  }
  // At the STORED client_endpoint: the one in the event is the sender's word.
  RestResult r = rest_.callWithToken(portal, event.authAccessToken, "app.info", {});
  if (!r.ok()) return done(failed(r, "the new application token"));
  lifecycleLog().notice("portal %s confirmed a new application token (ONAPPUPDATE)",
                        event.memberId);
  event.confirmed = IncomingEvent::Confirmed::kRotation;
  event.replacedToken = *portal.applicationToken;
  sink_.submit(event, std::move(done));
}

void LifecycleVerifier::verifyPayment(IncomingEvent& event, const PortalRecord& portal,
                                      EventSink::Completion done) {
  // The stored install token (refreshed when the portal says it expired), never the event's.
  RestResult r = rest_.call(portal, std::nullopt, "app.info", {});
  if (r.kind == RestResult::Kind::kRefused && r.error == "no_token") {
    return done(outcome(IngestOutcome::Status::kRejected,
                        "the event carries no application token and no token is stored to "
                        "verify it"));
  }
  if (!r.ok()) return done(failed(r, "the event without application token"));
  event.confirmed = IncomingEvent::Confirmed::kPayment;
  event.dataJson = withAppInfo(event.dataJson, r.result());
  sink_.submit(event, std::move(done));
}

}  // namespace b24es
