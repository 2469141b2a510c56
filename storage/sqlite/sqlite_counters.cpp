#include "sqlite_counters.h"

namespace b24es::sqlite {

CounterChanges::CounterChanges(sqlite3* db)
    : db_(db),
      addTotal_(db,
                "INSERT INTO event_counts(member_id, event, count) VALUES(?1, ?2, ?3) "
                "ON CONFLICT(member_id, event) DO UPDATE SET count = count + excluded.count"),
      // Deletions only decrement: a row that is not there (a pruned bucket) stays absent
      // rather than turning negative, and rows that reach zero go, so that no listing shows
      // an event code or a bucket with nothing in it.
      decTotal_(db,
                "UPDATE event_counts SET count = count + ?3 WHERE member_id = ?1 AND event = ?2"),
      dropTotal_(db, "DELETE FROM event_counts WHERE member_id = ?1 AND event = ?2 AND count <= 0"),
      addBucket_(db,
                 "INSERT INTO event_buckets(width, member_id, start, event, count) "
                 "VALUES(?4, ?1, ?5, ?2, ?3) ON CONFLICT(width, member_id, start, event) "
                 "DO UPDATE SET count = count + excluded.count"),
      decBucket_(db,
                 "UPDATE event_buckets SET count = count + ?3 WHERE width = ?4 AND "
                 "member_id = ?1 AND start = ?5 AND event = ?2"),
      dropBucket_(db,
                  "DELETE FROM event_buckets WHERE width = ?4 AND member_id = ?1 AND start = ?5 "
                  "AND event = ?2 AND count <= 0"),
      pruneBuckets_(db,
                    "DELETE FROM event_buckets WHERE (width, member_id, start, event) IN "
                    "(SELECT width, member_id, start, event FROM event_buckets "
                    "WHERE (width = 60 AND start < ?1) OR (width = 3600 AND start < ?2) "
                    "LIMIT ?3)") {}

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

template <typename BindKey>
void CounterChanges::apply(Statement& upsert, Statement& decrement, Statement& dropEmpty,
                           std::int64_t delta, BindKey bindKey) {
  if (delta > 0) {
    bindKey(upsert).bind(3, delta).run();
  } else if (delta < 0) {
    bindKey(decrement).bind(3, delta).run();
    bindKey(dropEmpty).run();
  }
}

void CounterChanges::flush() {
  for (const auto& entry : totals_) {
    const auto& key = entry.first;
    apply(addTotal_, decTotal_, dropTotal_, entry.second,
          [&](Statement& s) -> Statement& { return s.bind(1, key.first).bind(2, key.second); });
  }
  // Plain references, not structured bindings: C++17 lambdas cannot capture those (clang).
  for (const auto& entry : buckets_) {
    const auto& key = entry.first;
    apply(addBucket_, decBucket_, dropBucket_, entry.second, [&](Statement& s) -> Statement& {
      return s.bind(1, std::get<1>(key))
          .bind(2, std::get<3>(key))
          .bind(4, std::get<0>(key))
          .bind(5, std::get<2>(key));
    });
  }
  clear();
}

std::int64_t CounterChanges::pruneBuckets(std::int64_t nowSeconds, int limit) {
  pruneBuckets_.bind(1, nowSeconds - kMinuteBucketKeepSeconds)
      .bind(2, nowSeconds - kHourBucketKeepSeconds)
      .bind(3, static_cast<std::int64_t>(limit))
      .run();
  return ::sqlite3_changes(db_);
}

}  // namespace b24es::sqlite
