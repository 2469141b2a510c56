// Internal to the PostgreSQL backend: what the writer and the offline store both do in their
// transactions. The event counters (event_counts, event_buckets) changed with the events they
// count, the locks every writer of events takes in one order, and placeholder lists.
//
// Lock order, the same in every transaction that stores events, so that two receivers never
// wait for each other in a circle: the portals' advisory locks (lockKey(), in key order), the
// portal rows, token rows, the counter rows (CounterChanges::flush(), in key order), and last
// the commit-order lock (kCommitOrderLockKey), held until COMMIT, under which event ids are
// taken.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "pg_connection.h"

namespace b24es::pg {

// The commit-order advisory lock's key, ASCII "b24es-id": see pg_event_sink.h.
inline constexpr std::int64_t kCommitOrderLockKey = 7102601135318346084;

// A portal's advisory lock key: the first 8 bytes of the MD5 of its member_id (any stable hash
// does; a collision only makes two portals share a lock).
std::int64_t portalLockKey(const std::string& memberId);

// "($1, $2, ...), ($12, ...)": placeholders for `rows` rows of `columns` values, numbered from
// first + 1, with `cast` after the column of that index, or casts[c] after each column c.
// Built from counts only.
std::string placeholders(std::size_t rows, int columns, int castColumn = -1, const char* cast = "",
                         int first = 0, const char* const* casts = nullptr);

// Counter changes summed per key during one transaction, then written in key order. Not
// thread-safe.
class CounterChanges {
 public:
  // One event stored (+1) or deleted (-1) at `receivedMillis`.
  void add(const std::string& memberId, const std::string& event, std::int64_t receivedMillis,
           std::int64_t delta);
  // Queues the statements that write the summed changes (one for all additions, two per
  // decremented key: purges) and forgets them.
  void flush(Statements& out);
  // The same, run on `c` inside its open transaction in one round trip. Throws PgError.
  void flush(Connection& c) {
    Statements s;
    flush(s);
    c.pipeline(s);
  }
  void clear();

 private:
  std::map<std::pair<std::string, std::string>, std::int64_t> totals_;
  std::map<std::tuple<std::int64_t, std::string, std::int64_t, std::string>, std::int64_t> buckets_;
};

}  // namespace b24es::pg
