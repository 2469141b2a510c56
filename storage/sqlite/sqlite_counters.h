// Internal to the SQLite backend: the counters of migration 0006 (event_counts, event_buckets),
// changed by whoever writes or deletes events, inside that same transaction. Changes are summed
// in memory while a transaction runs and written by flush() just before its commit: one
// statement per distinct (portal, event[, bucket]) of the transaction, not one per event.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include "sqlite_statement.h"

namespace b24es::sqlite {

// The bucket widths of the timeline (seconds), and how long each is kept (README: timeline).
constexpr std::int64_t kBucketWidths[] = {60, 3600, 86400};
constexpr std::int64_t kMinuteBucketKeepSeconds = 7 * 86400;
constexpr std::int64_t kHourBucketKeepSeconds = 90 * 86400;

// Not thread-safe: belongs to one connection's thread, like its statements.
class CounterChanges {
 public:
  explicit CounterChanges(sqlite3* db);

  // One event stored (+1) or deleted (-1), received at `receivedMillis`.
  void add(const std::string& memberId, const std::string& event, std::int64_t receivedMillis,
           std::int64_t delta);
  // Writes the summed changes and forgets them. Call inside the transaction, before commit.
  // Throws StorageError.
  void flush();
  // Forgets the changes (the transaction was rolled back).
  void clear() {
    totals_.clear();
    buckets_.clear();
  }
  // Deletes at most `limit` minute and hour buckets older than their keep time as of `nowSeconds`;
  // returns how many it deleted (call again while it returns `limit`).
  std::int64_t pruneBuckets(std::int64_t nowSeconds, int limit);

 private:
  template <typename BindKey>
  void apply(Statement& upsert, Statement& decrement, Statement& dropEmpty, std::int64_t delta,
             BindKey bindKey);

  sqlite3* const db_;

  // (member_id, event) and (width, member_id, start, event), member_id '' for all portals.
  std::map<std::pair<std::string, std::string>, std::int64_t> totals_;
  std::map<std::tuple<std::int64_t, std::string, std::int64_t, std::string>, std::int64_t> buckets_;
  Statement addTotal_;
  Statement decTotal_;
  Statement dropTotal_;
  Statement addBucket_;
  Statement decBucket_;
  Statement dropBucket_;
  Statement pruneBuckets_;
};

}  // namespace b24es::sqlite
