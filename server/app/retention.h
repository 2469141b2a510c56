// SPEC §9 in `serve`: the retention pass (retention.days) and the pruning of old timeline
// buckets, run through the event sink's purge batches so that they take turns with ingest.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

#include "clock.h"
#include "mutex.h"
#include "storage.h"

namespace b24es {

// retention.days and bitrix24.purge_on_clean, filled by loadSettings() (settings.cpp).
struct RetentionSettings {
  int days = 0;                // delete events received more than this many days ago; 0 keeps all
  bool purgeOnClean = false;   // bitrix24.purge_on_clean
  int intervalSeconds = 3600;  // between passes (SPEC §9: at least hourly)
  int firstPassSeconds = 10;   // after start-up (SPEC §9: within a minute)
};

// What one pass asks of the sink as of `nowMillis`: the events older than `days` (when > 0)
// and the expired timeline buckets.
PurgeRequest retentionRequest(const RetentionSettings& settings, std::int64_t nowMillis);

// Runs passes on its own thread. Not thread-safe itself: start and stop from one thread.
class RetentionTimer {
 public:
  // `sink` and `clock` must outlive the timer.
  RetentionTimer(const RetentionSettings& settings, EventSink& sink, const Clock& clock);
  ~RetentionTimer();  // stops
  void start();
  // No pass starts after this; one in progress ends when the sink closes.
  void requestStop();
  // requestStop(), then waits for the thread (close the sink first if a pass may be running).
  void stop();

 private:
  void run();
  void waitLocked(std::chrono::steady_clock::duration timeout) REQUIRES(mutex_) {
    wake_.waitFor(mutex_, timeout);
  }

  const RetentionSettings settings_;
  EventSink& sink_;
  const Clock& clock_;
  Mutex mutex_;
  CondVar wake_;
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace b24es
