// The application's lifecycle events that only the portal itself can vouch for (SPEC §4 items 4
// and 5): an ONAPPUPDATE carrying a new application token, confirmed by app.info at the portal's
// STORED client_endpoint with the event's access token, and an event without application token
// (ONAPPPAYMENT), confirmed by app.info with the stored install token and stored with app.info's
// result as data.APP_INFO. The REST calls run on a few worker threads of their own: an ingest
// event loop hands such an event over and goes on, other portals' events go straight to the
// writer, and the connection resumes when the writer (or the worker, for a refusal) completes.
#pragma once

#include <deque>
#include <thread>
#include <vector>

#include "mutex.h"
#include "records.h"
#include "rest_client.h"
#include "storage.h"

namespace b24es {

class LifecycleVerifier {
 public:
  // References must outlive the verifier. Starts `threads` workers; at most `maxQueued` events
  // wait for one (more are answered kUnavailable at once).
  LifecycleVerifier(Storage& storage, EventSink& sink, RestClient& rest, int threads = 2,
                    std::size_t maxQueued = 1000);
  ~LifecycleVerifier();  // close()

  // True for the events whose verification may need app.info: ONAPPUPDATE, and any event other
  // than an install or uninstall without auth[application_token]. Pure; thread-safe.
  static bool mayNeedAppInfo(const IncomingEvent& event);

  // Verifies `event` on a worker (calling app.info when SPEC §4 says so), then submits it to the
  // sink; `done` receives the outcome once, on a worker or the sink's thread. The verifier may
  // change `event` (the confirmation, data.APP_INFO); it must stay alive until `done`.
  // Thread-safe.
  void submit(IncomingEvent& event, EventSink::Completion done);

  // Finishes the queued events, then answers new ones kUnavailable and joins the workers.
  void close();

 private:
  struct Job {
    IncomingEvent* event;
    EventSink::Completion done;
  };
  void run();
  void verify(IncomingEvent& event, EventSink::Completion done);
  void verifyRotation(IncomingEvent& event, const PortalRecord& portal, EventSink::Completion done);
  void verifyPayment(IncomingEvent& event, const PortalRecord& portal, EventSink::Completion done);

  Storage& storage_;
  EventSink& sink_;
  RestClient& rest_;
  const std::size_t maxQueued_;  // const after construction

  Mutex mutex_;
  CondVar changed_;  // signals queue_ and closing_
  std::deque<Job> queue_ GUARDED_BY(mutex_);
  bool closing_ GUARDED_BY(mutex_) = false;
  std::vector<std::thread> workers_;  // started by the constructor, joined by close()
};

// `dataJson` with key APP_INFO set to `appInfo` (replacing one the sender put there); data that
// is not an object becomes {"APP_INFO": ...}. Pure.
std::string withAppInfo(const std::string& dataJson, const Poco::Dynamic::Var& appInfo);

}  // namespace b24es
