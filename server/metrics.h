// The service's counters and histograms, served at GET /metrics in the Prometheus text
// exposition format (version 0.0.4). Written by hand: POCO 1.11 has no Prometheus module
// (Poco::Prometheus arrived in 1.13), and the format is a few lines of text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "event_query.h"

namespace b24es {

// A cumulative histogram with fixed upper bounds. Not thread-safe; Metrics guards it.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upperBounds);
  void observe(double value);
  // Appends the _bucket, _sum and _count lines of `name` to `out`.
  void render(const std::string& name, std::string& out) const;
  std::uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;         // ascending; +Inf is implicit
  std::vector<std::uint64_t> counts_;  // per bound, not cumulative; last one is +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// One per Service, shared by the ingest and query listeners and the writer. Thread-safe: every
// method may be called from any thread; recording takes one short lock.
class Metrics {
 public:
  // What became of one POST to the ingest path.
  enum class IngestResult {
    kStored,       // 200
    kRejected,     // 401: verification failed
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
  // One token refresh attempt and its result ("success", "invalid_grant", "http_error", ...).
  void countRefresh(const std::string& result);

  // The exposition text. `tokens` are token rows by state, read from storage by the caller at
  // scrape time; nullopt when storage could not answer (then b24es_storage_up is 0).
  std::string render(const std::optional<TokenStateCounts>& tokens) const;

 private:
  std::string capped(std::set<std::string>& seen, const std::string& value);

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> received_;  // guarded by mutex_;
                                                                           // (result, event)
  std::set<std::string> events_;                    // guarded by mutex_; label values seen
  std::map<std::string, std::uint64_t> refreshes_;  // guarded by mutex_; by result
  std::set<std::string> refreshResults_;            // guarded by mutex_; label values seen
  Histogram ingestSeconds_;                         // guarded by mutex_
  Histogram batchSizes_;                            // guarded by mutex_
};

// Prometheus label value escaping: backslash, double quote and newline.
std::string prometheusLabel(const std::string& value);

}  // namespace b24es
