#include "retention.h"

#include <Poco/Logger.h>

#include <chrono>

namespace b24es {

PurgeRequest retentionRequest(const RetentionSettings& settings, std::int64_t nowMillis) {
  PurgeRequest request;
  if (settings.days > 0) {
    request.receivedBefore = nowMillis - static_cast<std::int64_t>(settings.days) * 86400000;
  }
  request.pruneTimelineAt = nowMillis / 1000;
  return request;
}

RetentionTimer::RetentionTimer(const RetentionSettings& settings, EventSink& sink,
                               const Clock& clock)
    : settings_(settings), sink_(sink), clock_(clock) {}

RetentionTimer::~RetentionTimer() { stop(); }

void RetentionTimer::start() {
  thread_ = std::thread([this] { run(); });
}

void RetentionTimer::requestStop() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  wake_.signalAll();
}

void RetentionTimer::stop() {
  requestStop();
  if (thread_.joinable()) thread_.join();
}

void RetentionTimer::run() {
  Poco::Logger& log = Poco::Logger::get("b24es.retention");
  std::chrono::seconds wait(settings_.firstPassSeconds);
  for (;;) {
    {
      MutexLock lock(mutex_);
      // A deadline, so that spurious wake-ups do not start a pass early.
      const auto deadline = std::chrono::steady_clock::now() + wait;
      while (!stopping_ && std::chrono::steady_clock::now() < deadline) {
        waitLocked(deadline - std::chrono::steady_clock::now());
      }
      if (stopping_) return;
    }
    try {
      std::int64_t deleted = sink_.purge(retentionRequest(settings_, clock_.nowMillis()));
      if (settings_.days > 0) {
        log.information("retention pass: deleted=%Ld (events received more than %d days ago)",
                        static_cast<Poco::Int64>(deleted), settings_.days);
      }
    } catch (const StorageError& e) {
      log.error("retention pass failed: %s", std::string(e.what()));
    }
    wait = std::chrono::seconds(settings_.intervalSeconds);
  }
}

}  // namespace b24es
