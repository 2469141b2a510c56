// Internal to the SQLite backend: the EventReader (event_query.h) and the SQL it issues. The
// SQL is built here and only here, so that the reader and the query-plan test
// (tests/query_plan_test.cpp) see the very same statements.
#pragma once

#include <Poco/Data/Session.h>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "event_query.h"
#include "sqlite_read_pool.h"

namespace b24es::sqlite {

// A statement and the values bound to its `?` placeholders, in order. Values are always
// bound, never spliced into `sql`.
struct SqlQuery {
  std::string sql;
  std::vector<std::variant<std::int64_t, std::string>> params;
};

// The page query for `filter`: the columns of EventRecord, WHERE with one term per set field,
// a keyset bound on id, ORDER BY id and LIMIT filter.limit + 1 (the extra row tells whether a
// next page exists). Pure; thread-safe.
SqlQuery eventsQuery(const EventFilter& filter);

// The page query of GET /api/v1/rejections for `filter`: newest first, LIMIT filter.limit + 1.
// Pure; thread-safe.
SqlQuery rejectionsQuery(const RejectionFilter& filter);

// Every other statement the reader issues, with sample values bound: one event by id, the
// portal views, the token metadata, the statistics and the token states. For the query-plan
// test. Pure; thread-safe.
std::vector<SqlQuery> fixedReaderQueries();

// The detail lines of EXPLAIN QUERY PLAN for `query` on `session`. Throws Poco::Data
// exceptions when the statement does not prepare.
std::vector<std::string> explainQueryPlan(Poco::Data::Session& session, const SqlQuery& query);

// The EventReader over read connections taken from `pool`, which must outlive it. Thread-safe
// (the pool is). Converts every Poco exception into StorageError.
class SqliteEventReader final : public EventReader {
 public:
  explicit SqliteEventReader(ReadPool& pool) : pool_(pool) {}
  void scanEvents(const EventFilter& filter,
                  const std::function<bool(EventRecord&)>& each) override;
  std::optional<EventRecord> findEvent(std::int64_t id) override;
  PortalPage listPortals(const PortalFilter& filter) override;
  std::optional<PortalView> findPortalView(const std::string& memberId) override;
  EventStats stats() override;
  Timeline timeline(const TimelineQuery& query) override;
  TokenStateCounts tokenStates(std::int64_t nowSeconds) override;
  RejectionPage listRejections(const RejectionFilter& filter) override;
  std::vector<BindingStateCount> bindingStates() override;
  std::int64_t committedThrough() override;

 private:
  std::vector<PortalView> portals(const SqlQuery& portalQuery, const SqlQuery& tokenQuery,
                                  const SqlQuery& bindingQuery, const SqlQuery& offlineQuery);

  ReadPool& pool_;
};

}  // namespace b24es::sqlite
