#include "pg_counters.h"

#include <Poco/DigestEngine.h>
#include <Poco/MD5Engine.h>

namespace b24es::pg {
namespace {

// The timeline's bucket widths (as SQLite's).
constexpr std::int64_t kBucketWidths[] = {60, 3600, 86400};

}  // namespace

std::int64_t portalLockKey(const std::string& memberId) {
  Poco::MD5Engine md5;
  md5.update(memberId);
  const Poco::DigestEngine::Digest& d = md5.digest();
  std::uint64_t k = 0;
  for (std::size_t i = 0; i < 8; ++i) k = (k << 8) | d[i];
  return static_cast<std::int64_t>(k);
}

std::string placeholders(std::size_t rows, int columns, int castColumn, const char* cast, int first,
                         const char* const* casts) {
  std::string s;
  int n = first;
  for (std::size_t r = 0; r < rows; ++r) {
    s += r ? ", (" : "(";
    for (int c = 0; c < columns; ++c) {
      if (c) s += ", ";
      s += "$" + std::to_string(++n);
      if (c == castColumn) s += cast;
      if (casts) s += casts[c];
    }
    s += ")";
  }
  return s;
}

void CounterChanges::add(const std::string& memberId, const std::string& event,
                         std::int64_t receivedMillis, std::int64_t delta) {
  totals_[{memberId, event}] += delta;
  const std::int64_t seconds = receivedMillis / 1000;
  for (std::int64_t width : kBucketWidths) {
    const std::int64_t start = seconds / width * width;
    buckets_[{width, memberId, start, event}] += delta;
    buckets_[{width, std::string(), start, event}] += delta;
  }
}

void CounterChanges::clear() {
  totals_.clear();
  buckets_.clear();
}

void CounterChanges::flush(Statements& out) {
  Params addTotals, addBuckets;
  std::size_t totalRows = 0, bucketRows = 0;
  for (const auto& [key, delta] : totals_) {
    if (delta > 0) {
      addTotals.add(key.first).add(key.second).add(delta);
      ++totalRows;
    } else if (delta < 0) {
      Params p;
      p.add(key.first).add(key.second).add(delta);
      out.add("UPDATE event_counts SET count = count + $3 WHERE member_id = $1 AND event = $2", p);
      out.add("DELETE FROM event_counts WHERE member_id = $1 AND event = $2 AND count <= 0",
              Params().add(key.first).add(key.second));
    }
  }
  for (const auto& [key, delta] : buckets_) {
    const auto& [width, member, start, event] = key;
    if (delta > 0) {
      addBuckets.add(width).add(member).add(start).add(event).add(delta);
      ++bucketRows;
    } else if (delta < 0) {
      Params p;
      p.add(width).add(member).add(start).add(event).add(delta);
      out.add(
          "UPDATE event_buckets SET count = count + $5 WHERE width = $1 AND member_id = $2 "
          "AND start = $3 AND event = $4",
          p);
      out.add(
          "DELETE FROM event_buckets WHERE width = $1 AND member_id = $2 AND start = $3 "
          "AND event = $4 AND count <= 0",
          Params().add(width).add(member).add(start).add(event));
    }
  }
  // Additions come in pairs (a total and its buckets): one statement for both tables, a
  // data-modifying CTE for the totals, with the buckets' placeholders numbered after them.
  if (totalRows && bucketRows) {
    Params both = addTotals;
    for (const auto& v : addBuckets.values()) {
      if (v) {
        both.add(*v);
      } else {
        both.nullValue();
      }
    }
    out.add("WITH totals AS (INSERT INTO event_counts(member_id, event, count) VALUES " +
                placeholders(totalRows, 3, 2, "::bigint") +
                " ON CONFLICT(member_id, event) DO UPDATE "
                "SET count = event_counts.count + excluded.count) "
                "INSERT INTO event_buckets(width, member_id, start, event, count) VALUES " +
                placeholders(bucketRows, 5, 4, "::bigint", static_cast<int>(totalRows) * 3) +
                " ON CONFLICT(width, member_id, start, event) DO UPDATE "
                "SET count = event_buckets.count + excluded.count",
            both);
  }
  clear();
}

}  // namespace b24es::pg
