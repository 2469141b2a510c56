#include "metrics.h"

#include <cstdio>

namespace b24es {
namespace {

std::string number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9g", value);
  return buffer;
}

const char* resultLabel(Metrics::IngestResult result) {
  switch (result) {
    case Metrics::IngestResult::kStored:
      return "stored";
    case Metrics::IngestResult::kRejected:
      return "rejected";
    case Metrics::IngestResult::kInvalid:
      return "invalid";
    case Metrics::IngestResult::kUnavailable:
      return "unavailable";
  }
  return "unknown";
}

}  // namespace

std::string prometheusLabel(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

Histogram::Histogram(std::vector<double> upperBounds)
    : bounds_(std::move(upperBounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

void Histogram::render(const std::string& name, std::string& out) const {
  // _count is the +Inf bucket, both summed from the same reads, so they always agree.
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i].load();
    out += name + "_bucket{le=\"" + number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_[bounds_.size()].load();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  out += name + "_sum " + number(sum_.load()) + "\n";
  out += name + "_count " + std::to_string(cumulative) + "\n";
}

Metrics::Metrics()
    : ingestSeconds_(
          {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      batchSizes_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}) {}

std::string Metrics::capped(std::set<std::string, std::less<>>& seen, std::string_view value) {
  std::string_view label = value.substr(0, 64);
  if (seen.find(label) != seen.end()) return std::string(label);
  if (seen.size() >= kMaxLabelValues) return "_other";
  seen.emplace(label);
  return std::string(label);
}

void Metrics::countIngest(IngestResult result, const std::string& event, double seconds) {
  ingestSeconds_.observe(seconds);
  Counters& counters = received_[static_cast<std::size_t>(result)];
  const std::string_view label = std::string_view(event).substr(0, 64);
  {
    ReaderLock lock(receivedMutex_);
    auto it = counters.find(label);
    if (it != counters.end()) {
      it->second->fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  WriterLock lock(receivedMutex_);
  std::string key = capped(events_, label);
  auto it = counters.find(key);
  if (it == counters.end()) {
    it = counters.emplace(std::move(key), std::make_unique<std::atomic<std::uint64_t>>(0)).first;
  }
  it->second->fetch_add(1, std::memory_order_relaxed);
}

void Metrics::observeBatch(std::size_t events) { batchSizes_.observe(static_cast<double>(events)); }

void Metrics::streamOpened() { streamsOpen_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::streamClosed(bool cut) {
  streamsOpen_.fetch_sub(1, std::memory_order_relaxed);
  if (cut) streamsCut_.fetch_add(1, std::memory_order_relaxed);
}

void Metrics::countRejections(std::size_t written, std::size_t dropped) {
  if (written) rejectionsRecorded_.fetch_add(written, std::memory_order_relaxed);
  if (dropped) rejectionsDropped_.fetch_add(dropped, std::memory_order_relaxed);
}

void Metrics::countRefresh(const std::string& result) {
  MutexLock lock(refreshMutex_);
  std::string label = capped(refreshResults_, result);
  ++refreshes_[label];
}

void Metrics::countRestCall(const std::string& method, const std::string& result) {
  MutexLock lock(refreshMutex_);
  std::string m = capped(restMethods_, method);
  std::string r = capped(restResults_, result);
  ++restCalls_[{m, r}];
}

void Metrics::countOfflineFetched(std::size_t records) {
  offlineFetched_.fetch_add(records, std::memory_order_relaxed);
}

std::string Metrics::render(const std::optional<TokenStateCounts>& tokens,
                            const std::optional<std::vector<BindingStateCount>>& bindings) const {
  std::string out;
  out +=
      "# HELP b24es_events_received_total Events POSTed to the ingest path, by result and "
      "event code.\n";
  out += "# TYPE b24es_events_received_total counter\n";
  {
    ReaderLock lock(receivedMutex_);
    // In the order of the result labels' names, as before.
    for (IngestResult result : {IngestResult::kInvalid, IngestResult::kRejected,
                                IngestResult::kStored, IngestResult::kUnavailable}) {
      for (const auto& [event, count] : received_[static_cast<std::size_t>(result)]) {
        out += std::string("b24es_events_received_total{result=\"") + resultLabel(result) +
               "\",event=\"" + prometheusLabel(event) + "\"} " + std::to_string(count->load()) +
               "\n";
      }
    }
  }
  out +=
      "# HELP b24es_ingest_duration_seconds Time from reading an ingest request to "
      "answering it.\n";
  out += "# TYPE b24es_ingest_duration_seconds histogram\n";
  ingestSeconds_.render("b24es_ingest_duration_seconds", out);
  out +=
      "# HELP b24es_writer_batch_events Events committed together in one writer "
      "transaction.\n";
  out += "# TYPE b24es_writer_batch_events histogram\n";
  batchSizes_.render("b24es_writer_batch_events", out);
  out += "# HELP b24es_streams_open Live event streams open now.\n";
  out += "# TYPE b24es_streams_open gauge\n";
  out += "b24es_streams_open " + std::to_string(streamsOpen_.load()) + "\n";
  out +=
      "# HELP b24es_streams_cut_total Live event streams disconnected because their client "
      "fell more than 1 MiB behind.\n";
  out += "# TYPE b24es_streams_cut_total counter\n";
  out += "b24es_streams_cut_total " + std::to_string(streamsCut_.load()) + "\n";
  out +=
      "# HELP b24es_rejections_recorded_total 4xx answers of the ingest listener written to "
      "the rejections table.\n";
  out += "# TYPE b24es_rejections_recorded_total counter\n";
  out += "b24es_rejections_recorded_total " + std::to_string(rejectionsRecorded_.load()) + "\n";
  out +=
      "# HELP b24es_rejections_dropped_total 4xx answers of the ingest listener not recorded: "
      "the writer's queue was full or their commit failed.\n";
  out += "# TYPE b24es_rejections_dropped_total counter\n";
  out += "b24es_rejections_dropped_total " + std::to_string(rejectionsDropped_.load()) + "\n";
  out += "# HELP b24es_token_refresh_total Token refresh attempts, by result.\n";
  out += "# TYPE b24es_token_refresh_total counter\n";
  {
    MutexLock lock(refreshMutex_);
    for (const auto& [result, count] : refreshes_) {
      out += "b24es_token_refresh_total{result=\"" + prometheusLabel(result) + "\"} " +
             std::to_string(count) + "\n";
    }
  }
  out += "# HELP b24es_rest_calls_total REST calls to portals, by method and result.\n";
  out += "# TYPE b24es_rest_calls_total counter\n";
  {
    MutexLock lock(refreshMutex_);
    for (const auto& [key, count] : restCalls_) {
      out += "b24es_rest_calls_total{method=\"" + prometheusLabel(key.first) + "\",result=\"" +
             prometheusLabel(key.second) + "\"} " + std::to_string(count) + "\n";
    }
  }
  out +=
      "# HELP b24es_offline_events_fetched_total Records pulled from offline queues and "
      "stored.\n";
  out += "# TYPE b24es_offline_events_fetched_total counter\n";
  out += "b24es_offline_events_fetched_total " + std::to_string(offlineFetched_.load()) + "\n";
  out += "# HELP b24es_storage_up Whether storage answered the queries of this scrape.\n";
  out += "# TYPE b24es_storage_up gauge\n";
  out += std::string("b24es_storage_up ") + (tokens ? "1" : "0") + "\n";
  if (tokens) {
    out +=
        "# HELP b24es_tokens Stored OAuth token rows by state, each in the first state that "
        "applies: refresh_failed, no_refresh_token, access_expired, valid.\n";
    out += "# TYPE b24es_tokens gauge\n";
    const std::pair<const char*, std::int64_t> states[] = {
        {"refresh_failed", tokens->refreshFailed},
        {"no_refresh_token", tokens->noRefreshToken},
        {"access_expired", tokens->accessExpired},
        {"valid", tokens->valid},
    };
    for (const auto& [state, count] : states) {
      out += std::string("b24es_tokens{state=\"") + state + "\"} " + std::to_string(count) + "\n";
    }
  }
  if (bindings) {
    out +=
        "# HELP b24es_bindings Event bindings by type (online, offline) and state (bound, "
        "error), as the last sync of each portal left them (SPEC 8.2).\n";
    out += "# TYPE b24es_bindings gauge\n";
    // Every pair, also those without rows: a state that went to 0 must read 0, not vanish.
    for (const char* type : {"online", "offline"}) {
      for (const char* state : {"bound", "error"}) {
        std::int64_t count = 0;
        for (const BindingStateCount& b : *bindings) {
          if (b.type == type && b.state == state) count = b.count;
        }
        out += std::string("b24es_bindings{type=\"") + type + "\",state=\"" + state + "\"} " +
               std::to_string(count) + "\n";
      }
    }
  }
  return out;
}

}  // namespace b24es
