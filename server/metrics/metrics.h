// The service's counters and histograms, served at GET /metrics in the Prometheus text
// exposition format (version 0.0.4). Written by hand: POCO 1.11 has no Prometheus module
// (Poco::Prometheus arrived in 1.13), and the format is a few lines of text.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "event_query.h"
#include "mutex.h"

namespace b24es {

// A cumulative histogram with fixed upper bounds. Thread-safe: observe() takes no lock (ingest
// threads record into it concurrently), render() reads a moment's counts.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upperBounds);
  void observe(double value);
  // Appends the _bucket, _sum and _count lines of `name` to `out`.
  void render(const std::string& name, std::string& out) const;

 private:
  std::vector<double> bounds_;  // ascending; +Inf is implicit
  // Per bound, not cumulative; the last one is +Inf.
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// One per Service, shared by the ingest and query listeners and the writer. Thread-safe: every
// method may be called from any thread. Recording an ingest request takes no exclusive lock
// (only a shared one, and an exclusive one the first time an event code is seen): every request
// records one, and the threads of a committed batch all record at once.
class Metrics {
 public:
  // What became of one POST to the ingest path.
  enum class IngestResult {
    kStored,       // 200
    kRejected,     // 401: verification failed; 429: ingest.max_new_portals
    kInvalid,      // 400, 413, 415: malformed, too large, wrong content type
    kUnavailable,  // 503: could not be committed
  };

  // Label values from requests are capped, so that a sender of random event codes cannot grow
  // the metrics without bound: past this many distinct values, new ones count as "_other".
  static constexpr std::size_t kMaxLabelValues = 200;

  Metrics();

  // One ingest request: its result, its event code ("" when the body had none) and how long
  // it took from the first byte read to the answer, in seconds.
  void countIngest(IngestResult result, const std::string& event, double seconds);
  // One commit of the writer with `events` events in it (SinkSettings::onBatch).
  void observeBatch(std::size_t events);
  // Rejections (SPEC §5) written to the store, and dropped (the writer's queue was full, or
  // their commit failed): SinkSettings::onRejections.
  void countRejections(std::size_t written, std::size_t dropped);
  // One token refresh attempt and its result ("success", "invalid_grant", "http_error", ...).
  void countRefresh(const std::string& result);
  // One REST call to a portal (one HTTP exchange, or a refusal) and its result ("ok", or
  // Bitrix24's error code, or unreachable/refused words such as "timeout").
  void countRestCall(const std::string& method, const std::string& result);
  // Records pulled from portals' offline queues and stored.
  void countOfflineFetched(std::size_t records);
  // A live event stream (SPEC §5.1) opened; one closed, `cut` when its client fell too far
  // behind and the server disconnected it.
  void streamOpened();
  void streamClosed(bool cut);

  // The exposition text. `tokens` are token rows by state and `bindings` binding rows by type
  // and state, read from storage by the caller at scrape time; nullopt when storage could not
  // answer (then b24es_storage_up is 0).
  std::string render(const std::optional<TokenStateCounts>& tokens,
                     const std::optional<std::vector<BindingStateCount>>& bindings = {}) const;

 private:
  static constexpr std::size_t kResults = 4;  // IngestResult values
  using Counters = std::map<std::string, std::unique_ptr<std::atomic<std::uint64_t>>, std::less<>>;

  std::string capped(std::set<std::string, std::less<>>& seen, std::string_view value);

  // Guards the maps (not the counts, which are atomic) and events_.
  mutable SharedMutex receivedMutex_;
  Counters received_[kResults] GUARDED_BY(receivedMutex_);  // by IngestResult, then event label
  std::set<std::string, std::less<>> events_ GUARDED_BY(receivedMutex_);  // label values seen
  Histogram ingestSeconds_;
  Histogram batchSizes_;
  std::atomic<std::uint64_t> rejectionsRecorded_{0};
  std::atomic<std::uint64_t> rejectionsDropped_{0};

  std::atomic<std::int64_t> streamsOpen_{0};
  std::atomic<std::uint64_t> streamsCut_{0};

  mutable Mutex refreshMutex_;
  std::map<std::string, std::uint64_t> refreshes_ GUARDED_BY(refreshMutex_);
  std::set<std::string, std::less<>> refreshResults_ GUARDED_BY(refreshMutex_);
  std::map<std::pair<std::string, std::string>, std::uint64_t> restCalls_
      GUARDED_BY(refreshMutex_);  // by (method, result)
  std::set<std::string, std::less<>> restMethods_ GUARDED_BY(refreshMutex_);
  std::set<std::string, std::less<>> restResults_ GUARDED_BY(refreshMutex_);
  std::atomic<std::uint64_t> offlineFetched_{0};
};

// Prometheus label value escaping: backslash, double quote and newline.
std::string prometheusLabel(const std::string& value);

}  // namespace b24es
