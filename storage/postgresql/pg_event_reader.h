// Internal to the PostgreSQL backend: the EventReader of event_query.h. Each call takes a pooled
// connection; reads run at READ COMMITTED (one statement) or in a REPEATABLE READ READ ONLY
// transaction (several statements that must agree), and never wait for the writers.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "event_query.h"
#include "pg_pool.h"

namespace b24es::pg {

// A statement and its parameters, as the reader would run it (for pg_query_plan_test).
struct Query {
  std::string sql;
  Params params;
};

// The statement scanEvents() runs for `filter`.
Query eventsQuery(const EventFilter& filter);
// The statement listRejections() runs for `filter`.
Query rejectionsQuery(const RejectionFilter& filter);
// Every other fixed statement of the reader, with sample parameters.
std::vector<Query> fixedReaderQueries();

class PgEventReader final : public EventReader {
 public:
  explicit PgEventReader(Pool& pool) : pool_(pool) {}
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
  std::vector<PortalView> portals(const Query& portalQuery, const Query& tokenQuery,
                                  const Query& bindingQuery, const Query& offlineQuery);
  Pool& pool_;  // thread-safe itself
};

}  // namespace b24es::pg
