// SQL both backends run that checks the counters (SPEC §9: exact after any purge) against the
// events themselves; shared by counters_test and retention_test.
#pragma once

namespace b24es::test {

// Rows that differ between the counters and what COUNT(*) over events says they should be.
// SQL both backends run (PostgreSQL 15 wants an alias on every subquery in FROM).
inline constexpr const char* kTotalsMismatchSql =
    "WITH expected AS (SELECT member_id, event, count(*) AS n FROM events GROUP BY 1, 2) "
    "SELECT (SELECT count(*) FROM (SELECT * FROM expected EXCEPT "
    "SELECT member_id, event, count FROM event_counts) AS a) + (SELECT count(*) FROM ("
    "SELECT member_id, event, count FROM event_counts EXCEPT SELECT * FROM expected) AS b)";
inline constexpr const char* kBucketsMismatchSql =
    "WITH w(width) AS (VALUES (60), (3600), (86400)), "
    "expected AS (SELECT width, member_id, (received_at / 1000) / width * width AS start, event, "
    "count(*) AS n FROM events, w GROUP BY 1, 2, 3, 4 UNION ALL "
    "SELECT width, '', (received_at / 1000) / width * width, event, count(*) FROM events, w "
    "GROUP BY 1, 3, 4) "
    "SELECT (SELECT count(*) FROM (SELECT * FROM expected EXCEPT "
    "SELECT width, member_id, start, event, count FROM event_buckets) AS a) + "
    "(SELECT count(*) FROM (SELECT width, member_id, start, event, count FROM event_buckets "
    "EXCEPT SELECT * FROM expected) AS b)";

}  // namespace b24es::test
