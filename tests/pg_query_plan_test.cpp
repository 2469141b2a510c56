// The PostgreSQL counterpart of query_plan_test.cpp: every statement the query API can issue
// on PostgreSQL is served by an index. EXPLAIN of each combination of event filters (both
// orders, with and without a cursor), of the portal, token, statistics and purge statements,
// on a database migrated with migrations/postgresql. Planned with enable_seqscan off, so that a
// statement no index can serve still shows its Seq Scan (at a prohibitive cost) while an empty
// table's statistics do not decide; a filtered statement must use an index of a filter column,
// not walk the primary key. The SQL comes from the backend's own builders.
#define BOOST_TEST_MODULE pg_query_plan
#include <boost/test/unit_test.hpp>

#include "clock.h"
#include "pg_connection.h"
#include "pg_event_reader.h"
#include "pg_event_sink.h"
#include "pg_storage.h"
#include "pg_test_support.h"
#include "test_support.h"

using b24es::EventFilter;

namespace {

struct Database {
  Database() {
    if (!b24es::test::pgServerUrl()) return;
    settings.url = b24es::test::pgDatabaseFor(dir.path());
    auto storage = b24es::openPgStorage(settings, clock, b24es::embeddedPgMigrations());
    BOOST_REQUIRE(storage->migrator().apply().ok);
    connection = std::make_unique<b24es::pg::Connection>(settings);
    connection->exec("SET enable_seqscan = off");
  }
  bool available() const { return connection != nullptr; }
  std::vector<std::string> plan(const std::string& sql, const b24es::pg::Params& params) {
    b24es::pg::Result r = connection->query("EXPLAIN " + sql, params);
    std::vector<std::string> lines;
    for (int i = 0; i < r.rows(); ++i) lines.push_back(r.text(i, 0));
    return lines;
  }

  b24es::test::TempDir dir;
  b24es::test::FakeClock clock;
  b24es::PgSettings settings;
  std::unique_ptr<b24es::pg::Connection> connection;
};

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += "\n  " + l;
  return out;
}

bool seqScan(const std::vector<std::string>& plan) {
  for (const std::string& l : plan) {
    if (l.find("Seq Scan on events") != std::string::npos ||
        l.find("Seq Scan on portals") != std::string::npos ||
        l.find("Seq Scan on tokens") != std::string::npos ||
        l.find("Seq Scan on event_buckets") != std::string::npos) {
      return true;
    }
  }
  return false;
}

// Whether the plan reads events through an index other than the primary key.
bool usesFilterIndex(const std::vector<std::string>& plan) {
  for (const std::string& l : plan) {
    if (l.find(" events_") != std::string::npos && l.find("events_pkey") == std::string::npos &&
        (l.find("Index") != std::string::npos)) {
      return true;
    }
  }
  return false;
}

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

}  // namespace

BOOST_AUTO_TEST_CASE(no_event_filter_combination_scans_the_events_table) {
  Database db;
  if (!db.available()) {
    BOOST_WARN_MESSAGE(false, "no B24ES_TEST_PG_URL: PostgreSQL case not run");
    return;
  }
  int checked = 0;
  for (unsigned mask = 0; mask < 256; ++mask) {
    for (auto order : {EventFilter::Order::kAsc, EventFilter::Order::kDesc}) {
      for (bool cursor : {false, true}) {
        EventFilter f = filterOf(mask);
        f.order = order;
        if (cursor) f.afterId = 1000;
        b24es::pg::Query q = b24es::pg::eventsQuery(f);
        std::vector<std::string> plan = db.plan(q.sql, q.params);
        BOOST_CHECK_MESSAGE(!seqScan(plan), "full scan for mask " << mask << joined(plan));
        if (mask != 0) {
          BOOST_CHECK_MESSAGE(usesFilterIndex(plan), "primary key walk for mask "
                                                         << mask << ": " << q.sql << joined(plan));
        }
        ++checked;
      }
    }
  }
  BOOST_TEST(checked == 1024);
}

// source=offline (0004) has a partial index of its own; with other filters it never makes the
// plan read the table whole. source=online, the bulk, has none: other filters lead.
BOOST_AUTO_TEST_CASE(the_offline_source_filter_uses_its_partial_index) {
  Database db;
  if (!db.available()) {
    BOOST_WARN_MESSAGE(false, "no B24ES_TEST_PG_URL: PostgreSQL case not run");
    return;
  }
  int checked = 0;
  for (unsigned mask = 0; mask < 256; ++mask) {
    for (const char* source : {"offline", "online"}) {
      if (mask == 0 && std::string(source) == "online") continue;
      EventFilter f = filterOf(mask);
      f.source = source;
      b24es::pg::Query q = b24es::pg::eventsQuery(f);
      std::vector<std::string> plan = db.plan(q.sql, q.params);
      BOOST_CHECK_MESSAGE(!seqScan(plan),
                          "full scan for mask " << mask << " source " << source << joined(plan));
      BOOST_CHECK_MESSAGE(usesFilterIndex(plan), "primary key walk for mask "
                                                     << mask << " source " << source << ": "
                                                     << q.sql << joined(plan));
      if (mask == 0) {
        BOOST_CHECK_MESSAGE(joined(plan).find("events_offline") != std::string::npos,
                            q.sql << joined(plan));
      }
      ++checked;
    }
  }
  BOOST_TEST(checked == 511);
}

BOOST_AUTO_TEST_CASE(portal_token_stats_and_purge_statements_use_indexes) {
  Database db;
  if (!db.available()) {
    BOOST_WARN_MESSAGE(false, "no B24ES_TEST_PG_URL: PostgreSQL case not run");
    return;
  }
  std::vector<std::pair<std::string, b24es::pg::Params>> all;
  for (auto& q : b24es::pg::fixedReaderQueries()) all.emplace_back(q.sql, q.params);
  for (auto& q : b24es::pg::purgeQueries()) all.push_back(q);
  for (const auto& [sql, params] : all) {
    std::vector<std::string> plan = db.plan(sql, params);
    // The token-state count and the stats by event read small tables whole by design (rows per
    // token, per portal and event code); everything over events must not.
    BOOST_CHECK_MESSAGE(plan.front().find("Seq Scan on events") == std::string::npos &&
                            joined(plan).find("Seq Scan on events") == std::string::npos &&
                            joined(plan).find("Seq Scan on event_buckets") == std::string::npos &&
                            joined(plan).find("Seq Scan on rejections") == std::string::npos,
                        sql << joined(plan));
  }
}
