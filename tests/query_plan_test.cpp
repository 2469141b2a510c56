// Every statement the query API can issue is served by an index: EXPLAIN QUERY PLAN for each
// combination of event filters (both orders, with and without a cursor) and for the portal,
// token and statistics statements, on a database migrated with the real migrations. The SQL
// comes from the storage layer's own builder (sqlite_event_reader.h), not a copy.
#define BOOST_TEST_MODULE query_plan
#include <boost/test/unit_test.hpp>

#include <Poco/String.h>

#include "embedded_migrations.h"
#include "sqlite_connection.h"
#include "sqlite_event_reader.h"
#include "sqlite_event_sink.h"
#include "sqlite_storage.h"
#include "test_support.h"

using b24es::EventFilter;
using b24es::RejectionFilter;
using b24es::sqlite::SqlQuery;

namespace {

struct Database {
  Database() : settings(b24es::test::testSettings(dir)) {
    auto storage = b24es::openSqliteStorage(settings.db, clock, b24es::embeddedMigrations());
    BOOST_REQUIRE(storage->migrator().apply().ok);
  }
  std::vector<std::string> plan(const SqlQuery& query) {
    Poco::Data::Session session = b24es::sqlite::openSession(settings.db);
    return b24es::sqlite::explainQueryPlan(session, query);
  }

  b24es::test::TempDir dir;
  b24es::test::FakeClock clock;
  b24es::Settings settings;
};

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += "\n  " + l;
  return out;
}

// A plan line that reads the events from end to end: the table behind the events view
// (migration 0011) under its name or the aliases r and e, or the view itself.
bool scansEvents(const std::string& line) {
  for (const char* name : {"events", "event_rows", "r", "e"}) {
    const std::string scan = std::string("SCAN ") + name;
    if (line == scan || line.rfind(scan + " ", 0) == 0) return true;
  }
  return false;
}

// A plan line that reads a whole key table of 0011 (portals, domains or event codes): a filter
// on a text must be one seek in its key table.
bool scansKeys(const std::string& line) {
  for (const char* name : {"event_portals", "event_domains", "event_codes", "p", "c", "d"}) {
    const std::string scan = std::string("SCAN ") + name;
    if (line == scan || line.rfind(scan + " ", 0) == 0) return true;
  }
  return false;
}

// The filter with the fields selected by the bits of `mask` set.
EventFilter filterOf(unsigned mask) {
  EventFilter f;
  if (mask & 1u) f.memberId = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";
  if (mask & 2u) f.domain = "acme-test.bitrix24.com";
  if (mask & 4u) f.event = "ONCRMDEALADD";
  if (mask & 8u) f.entityId = 7405;
  if (mask & 16u) f.entityTypeId = 1220;
  if (mask & 32u) f.userId = 9;
  if (mask & 64u) f.from = 1767261600;
  if (mask & 128u) f.to = 1767265200;
  return f;
}

constexpr unsigned kAllFilters = 256;

}  // namespace

BOOST_AUTO_TEST_CASE(no_event_filter_combination_scans_the_events_table) {
  Database db;
  int checked = 0;
  for (unsigned mask = 0; mask < kAllFilters; ++mask) {
    for (auto order : {EventFilter::Order::kAsc, EventFilter::Order::kDesc}) {
      for (bool cursor : {false, true}) {
        EventFilter f = filterOf(mask);
        f.order = order;
        if (cursor) f.afterId = 1000;
        SqlQuery query = b24es::sqlite::eventsQuery(f);
        std::vector<std::string> plan = db.plan(query);
        BOOST_REQUIRE(!plan.empty());
        for (const std::string& line : plan) {
          BOOST_CHECK_MESSAGE(!scansEvents(line), "full scan for filter mask "
                                                      << mask << ": " << query.sql << joined(plan));
          BOOST_CHECK_MESSAGE(!scansKeys(line), "key table scan for filter mask "
                                                    << mask << ": " << query.sql << joined(plan));
          // A rowid range is a search in name only when a filter is set: it walks the table
          // from the cursor, checking every row against the filter.
          const bool rowidWalk = line.find("PRIMARY KEY (rowid>") != std::string::npos ||
                                 line.find("PRIMARY KEY (rowid<") != std::string::npos;
          BOOST_CHECK_MESSAGE(mask == 0 || !rowidWalk,
                              "rowid walk for filter mask " << mask << ":" << joined(plan));
        }
        ++checked;
      }
    }
  }
  BOOST_CHECK_EQUAL(checked, 1024);
}

BOOST_AUTO_TEST_CASE(only_a_time_window_or_an_entity_of_all_portals_needs_a_sort) {
  // Every index ends with id, so a page comes out of its index already in id order; only when
  // the ts range drives (no equality filter), or entity_id without member_id (its index has
  // member_id between), are the matching ids sorted.
  Database db;
  for (unsigned mask = 0; mask < kAllFilters; ++mask) {
    SqlQuery query = b24es::sqlite::eventsQuery(filterOf(mask));
    std::string plan = joined(db.plan(query));
    bool sorts = plan.find("TEMP B-TREE") != std::string::npos;
    bool timeOnly = (mask & 63u) == 0 && (mask & 192u) != 0;
    bool entityOfAllPortals = (mask & 8u) != 0 && (mask & 1u) == 0;
    BOOST_CHECK_MESSAGE(sorts == (timeOnly || entityOfAllPortals), "mask " << mask << ":" << plan);
  }
}

BOOST_AUTO_TEST_CASE(each_filter_alone_uses_its_own_index) {
  Database db;
  const std::pair<unsigned, const char*> expected[] = {
      {0, "INTEGER PRIMARY KEY"},
      {1, "events_member_id"},
      {2, "events_domain"},
      {4, "events_event"},
      {8, "events_entity_member"},
      {16, "events_entity_type"},
      {32, "events_user"},
      {64, "events_ts"},
      {128, "events_ts"},
      {1 | 4, "events_member_event"},
      {1 | 8, "events_entity_member"},
      {1 | 32, "events_member_id"},
  };
  for (const auto& [mask, index] : expected) {
    std::string plan = joined(db.plan(b24es::sqlite::eventsQuery(filterOf(mask))));
    const std::string used = std::string(index) == "INTEGER PRIMARY KEY"
                                 ? " USING INTEGER PRIMARY KEY ("
                                 : std::string(" ") + index + " (";
    BOOST_CHECK_MESSAGE(plan.find(used) != std::string::npos,
                        "mask " << mask << " expected " << index << ":" << plan);
  }
}

BOOST_AUTO_TEST_CASE(portal_token_and_statistics_statements_never_read_the_events_table) {
  // Statistics count every event, but through a covering index, never the table rows; the
  // portal views reach events only by index searches.
  Database db;
  for (const SqlQuery& query : b24es::sqlite::fixedReaderQueries()) {
    std::vector<std::string> plan = db.plan(query);
    for (const std::string& line : plan) {
      bool tableScan =
          scansEvents(line) && line.find(" USING COVERING INDEX ") == std::string::npos;
      BOOST_CHECK_MESSAGE(!tableScan, query.sql << joined(plan));
    }
  }
}

BOOST_AUTO_TEST_CASE(counter_statements_never_scan_events_even_through_an_index) {
  // /api/v1/stats, the timeline and the portal views must not grow with the events table: the
  // events table may be reached only by a search (a seek), never a scan, covering or not.
  Database db;
  int counterReads = 0;
  for (const SqlQuery& query : b24es::sqlite::fixedReaderQueries()) {
    std::vector<std::string> plan = db.plan(query);
    for (const std::string& line : plan) {
      BOOST_CHECK_MESSAGE(!scansEvents(line), query.sql << joined(plan));
    }
    if (query.sql.find("FROM event_counts c WHERE c.member_id") != std::string::npos) {
      // A portal's count: its own rows of event_counts, one seek.
      BOOST_CHECK_MESSAGE(
          joined(plan).find("SEARCH c USING PRIMARY KEY (member_id=?)") != std::string::npos,
          query.sql << joined(plan));
    }
    if (query.sql.find("event_counts") != std::string::npos ||
        query.sql.find("event_buckets") != std::string::npos) {
      ++counterReads;
    }
  }
  // by_event, by_portal, two portal views and two timelines read the counters.
  BOOST_CHECK_EQUAL(counterReads, 6);
}

BOOST_AUTO_TEST_CASE(timeline_reads_one_range_of_the_bucket_key) {
  Database db;
  for (const SqlQuery& query : b24es::sqlite::fixedReaderQueries()) {
    if (query.sql.find("event_buckets") == std::string::npos) continue;
    std::string plan = joined(db.plan(query));
    BOOST_CHECK_MESSAGE(plan.find("SEARCH event_buckets USING PRIMARY KEY (width=? AND "
                                  "member_id=? AND start>? AND start<?)") != std::string::npos,
                        query.sql << plan);
  }
}

BOOST_AUTO_TEST_CASE(purge_batches_seek_never_scan) {
  Database db;
  std::vector<SqlQuery> queries = b24es::sqlite::purgeQueries();
  BOOST_REQUIRE_EQUAL(queries.size(), 2u);
  std::string byPortal = joined(db.plan(queries[0]));
  BOOST_CHECK_MESSAGE(byPortal.find("SEARCH r USING INDEX events_member_id (portal=? "
                                    "AND id>? AND id<?)") != std::string::npos,
                      byPortal);
  std::string oldest = joined(db.plan(queries[1]));
  BOOST_CHECK_MESSAGE(
      oldest.find("SEARCH r USING INTEGER PRIMARY KEY (rowid>?)") != std::string::npos, oldest);
  for (const SqlQuery& query : queries) {
    for (const std::string& line : db.plan(query)) {
      BOOST_CHECK_MESSAGE(!scansEvents(line) && !scansKeys(line), query.sql << ": " << line);
    }
  }
}

BOOST_AUTO_TEST_CASE(filter_values_are_bound_never_spliced_into_the_sql) {
  EventFilter f = filterOf(kAllFilters - 1);
  f.memberId = "x' OR '1'='1";
  f.afterId = 31337;
  SqlQuery query = b24es::sqlite::eventsQuery(f);
  BOOST_CHECK(query.sql.find("OR '1'") == std::string::npos);
  BOOST_CHECK(query.sql.find("31337") == std::string::npos);
  BOOST_CHECK(query.sql.find("7405") == std::string::npos);
  BOOST_CHECK_EQUAL(query.params.size(), 10u);  // 8 filters, the cursor and the limit
  BOOST_CHECK_EQUAL(std::count(query.sql.begin(), query.sql.end(), '?'), 10);
}

BOOST_AUTO_TEST_CASE(rejection_pages_and_the_trim_are_ranges_of_an_index_never_scans) {
  // GET /api/v1/rejections (newest first, by keyset) and the writer's trim to
  // ingest.keep_rejections: each a range of the rowid or of rejections_member_id.
  Database db;
  std::string all = joined(db.plan(b24es::sqlite::rejectionsQuery(RejectionFilter{})));
  BOOST_CHECK_MESSAGE(
      all.find("SEARCH rejections USING INTEGER PRIMARY KEY (rowid<?)") != std::string::npos, all);
  RejectionFilter byMember;
  byMember.memberId = "member";
  byMember.afterId = 500;
  std::string member = joined(db.plan(b24es::sqlite::rejectionsQuery(byMember)));
  BOOST_CHECK_MESSAGE(member.find("SEARCH rejections USING INDEX rejections_member_id "
                                  "(member_id=? AND id<?)") != std::string::npos,
                      member);
  for (const std::string& plan : {all, member}) {
    BOOST_CHECK_MESSAGE(plan.find("TEMP B-TREE") == std::string::npos, plan);  // no sort
  }
  std::vector<SqlQuery> writes = b24es::sqlite::rejectionWriteQueries();
  BOOST_REQUIRE_EQUAL(writes.size(), 2u);
  std::string trim = joined(db.plan(writes[1]));
  BOOST_CHECK_MESSAGE(
      trim.find("SEARCH rejections USING INTEGER PRIMARY KEY (rowid<?)") != std::string::npos,
      trim);
}

BOOST_AUTO_TEST_CASE(report_views_reach_the_events_only_through_indexes) {
  // Migration 0011: events is a view that joins the keys back. portal_activity counts on
  // event_rows' covering index; through the view SQLite would copy every event first (a view
  // that is a join, on the right of a LEFT JOIN, is materialized). A filter on a text through
  // the view is a seek in its key table, then that key's index.
  Database db;
  std::string activity = joined(db.plan(SqlQuery{"SELECT * FROM portal_activity", {}}));
  BOOST_CHECK_MESSAGE(activity.find("MATERIALIZE events") == std::string::npos, activity);
  BOOST_CHECK_MESSAGE(
      activity.find("SCAN event_rows USING COVERING INDEX events_member_id") != std::string::npos,
      activity);
  for (const auto& [column, index] :
       {std::pair<const char*, const char*>{"member_id", "events_member"},
        {"domain", "events_domain"},
        {"event", "events_event"}}) {
    const std::string sql = std::string("SELECT id, data FROM events_readable WHERE ") + column +
                            " = ? ORDER BY id DESC LIMIT 10";
    std::vector<std::string> plan = db.plan(SqlQuery{sql, {std::string("x")}});
    for (const std::string& line : plan) {
      BOOST_CHECK_MESSAGE(!scansEvents(line) && !scansKeys(line), sql << joined(plan));
    }
    BOOST_CHECK_MESSAGE(joined(plan).find(index) != std::string::npos, sql << joined(plan));
  }
}
