#include "pg_event_reader.h"

#include <limits>
#include <unordered_map>

namespace b24es::pg {
namespace {

// data::text: the stored jsonb printed by PostgreSQL (keys in jsonb's order, one line).
constexpr const char* kEventColumns =
    "SELECT id, event, member_id, domain, event_handler_id, event_id, ts, received_at, user_id, "
    "entity_id, entity_type_id, data::text FROM events";

constexpr const char* kPortalColumns =
    "SELECT p.member_id, p.domain, p.client_endpoint, p.server_endpoint, p.status, p.scope, "
    "p.installed_at, p.uninstalled_at, "
    "(SELECT coalesce(sum(c.count), 0) FROM event_counts c WHERE c.member_id = p.member_id), "
    "(SELECT e.ts FROM events e WHERE e.member_id = p.member_id ORDER BY e.id DESC LIMIT 1) "
    "FROM portals p";

constexpr const char* kTokenColumns =
    "SELECT member_id, user_id, expires_at, refresh_token IS NOT NULL, last_refresh_at, "
    "last_refresh_error FROM tokens";

const std::string kEventByIdSql = std::string(kEventColumns) + " WHERE id = $1";
const std::string kPortalPageSql =
    std::string(kPortalColumns) + " WHERE p.member_id > $1 ORDER BY p.member_id LIMIT $2";
const std::string kOnePortalSql = std::string(kPortalColumns) + " WHERE p.member_id = $1";
const std::string kPageTokensSql =
    std::string(kTokenColumns) +
    " WHERE member_id IN (SELECT member_id FROM portals WHERE member_id > $1 "
    "ORDER BY member_id LIMIT $2) ORDER BY member_id, user_id";
const std::string kPortalTokensSql =
    std::string(kTokenColumns) + " WHERE member_id = $1 ORDER BY user_id";
constexpr const char* kStatsByEventSql =
    "SELECT event, sum(count) FROM event_counts GROUP BY event ORDER BY 2 DESC, 1";
constexpr const char* kStatsByPortalSql =
    "SELECT c.member_id, p.domain, c.n FROM "
    "(SELECT member_id, sum(count) AS n FROM event_counts GROUP BY member_id) c "
    "LEFT JOIN portals p ON p.member_id = c.member_id ORDER BY c.n DESC, c.member_id";
// min and max over events_ts: one descent each (NULLs excluded explicitly so both ends can
// use the index).
constexpr const char* kFirstTsSql =
    "SELECT ts FROM events WHERE ts IS NOT NULL ORDER BY ts LIMIT 1";
constexpr const char* kLastTsSql =
    "SELECT ts FROM events WHERE ts IS NOT NULL ORDER BY ts DESC LIMIT 1";
constexpr const char* kTimelineSql =
    "SELECT event, start, count FROM event_buckets WHERE width = $1 AND member_id = $2 "
    "AND start >= $3 AND start <= $4 ORDER BY event, start";
constexpr const char* kTimelineEventSql =
    "SELECT event, start, count FROM event_buckets WHERE width = $1 AND member_id = $2 "
    "AND start >= $3 AND start <= $4 AND event = $5 ORDER BY start";
constexpr const char* kTokenStatesSql =
    "SELECT CASE WHEN last_refresh_error IS NOT NULL THEN 0 "
    "WHEN refresh_token IS NULL THEN 1 "
    "WHEN expires_at IS NULL OR expires_at <= $1 THEN 2 ELSE 3 END AS state, count(*) "
    "FROM tokens GROUP BY state";

EventRecord eventOf(const Result& r, int i) {
  EventRecord e;
  e.id = r.integer(i, 0);
  e.event = r.text(i, 1);
  e.memberId = r.text(i, 2);
  e.domain = r.optionalText(i, 3);
  e.eventHandlerId = r.optionalInteger(i, 4);
  e.eventId = r.optionalText(i, 5);
  e.ts = r.optionalInteger(i, 6);
  e.receivedAt = r.integer(i, 7);
  e.userId = r.optionalInteger(i, 8);
  e.entityId = r.optionalInteger(i, 9);
  e.entityTypeId = r.optionalInteger(i, 10);
  e.dataJson = r.text(i, 11);
  return e;
}

// One read-only snapshot for statements that must agree with each other.
class Snapshot {
 public:
  explicit Snapshot(Connection& c) : c_(c) {
    c_.exec("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }
  ~Snapshot() { c_.rollbackQuietly(); }

 private:
  Connection& c_;
};

}  // namespace

Query eventsQuery(const EventFilter& f) {
  Query q;
  std::string where;
  auto term = [&](const char* column, const char* comparison, const auto& value) {
    q.params.add(value);
    if (!where.empty()) where += " AND ";
    where += column;
    where += comparison;
    where += "$" + std::to_string(q.params.size());
  };
  if (f.memberId) term("member_id", " = ", *f.memberId);
  if (f.domain) term("domain", " = ", *f.domain);
  if (f.event) term("event", " = ", *f.event);
  if (f.entityId) term("entity_id", " = ", *f.entityId);
  if (f.entityTypeId) term("entity_type_id", " = ", *f.entityTypeId);
  if (f.userId) term("user_id", " = ", *f.userId);
  if (f.from) term("ts", " >= ", *f.from);
  if (f.to) term("ts", " <= ", *f.to);
  const bool asc = f.order == EventFilter::Order::kAsc;
  term("id", asc ? " > " : " < ",
       f.afterId.value_or(asc ? 0 : std::numeric_limits<std::int64_t>::max()));
  q.params.add(static_cast<std::int64_t>(f.limit) + 1);
  q.sql = std::string(kEventColumns) + " WHERE " + where +
          (asc ? " ORDER BY id" : " ORDER BY id DESC") + " LIMIT $" +
          std::to_string(q.params.size());
  return q;
}

std::vector<Query> fixedReaderQueries() {
  return {
      {kEventByIdSql, Params().add(std::int64_t{1})},
      {kPortalPageSql, Params().add("member").add(std::int64_t{101})},
      {kOnePortalSql, Params().add("member")},
      {kPageTokensSql, Params().add("member").add(std::int64_t{101})},
      {kPortalTokensSql, Params().add("member")},
      {kStatsByEventSql, Params()},
      {kStatsByPortalSql, Params()},
      {kFirstTsSql, Params()},
      {kLastTsSql, Params()},
      {kTokenStatesSql, Params().add(std::int64_t{0})},
      {kTimelineSql,
       Params().add(std::int64_t{60}).add("").add(std::int64_t{0}).add(std::int64_t{600})},
      {kTimelineEventSql, Params()
                              .add(std::int64_t{60})
                              .add("member")
                              .add(std::int64_t{0})
                              .add(std::int64_t{600})
                              .add("ONCRMDEALADD")},
  };
}

void PgEventReader::scanEvents(const EventFilter& filter,
                               const std::function<bool(EventRecord&)>& each) {
  Pool::Lease c = pool_.get();
  Query q = eventsQuery(filter);
  // At most limit + 1 rows (1,001), each at most ingest.max_body_bytes of data: the page's
  // caller stops at 8 MiB of JSON, so the rows of one page are held at once here. A cursor
  // (DECLARE ... FETCH) would bound that too; see README (PostgreSQL limits).
  Result r = c->query(q.sql, q.params);
  for (int i = 0; i < r.rows(); ++i) {
    EventRecord e = eventOf(r, i);
    if (!each(e)) return;
  }
}

std::optional<EventRecord> PgEventReader::findEvent(std::int64_t id) {
  Pool::Lease c = pool_.get();
  Result r = c->query(kEventByIdSql, Params().add(id));
  if (r.rows() == 0) return std::nullopt;
  return eventOf(r, 0);
}

std::vector<PortalView> PgEventReader::portals(const Query& portalQuery, const Query& tokenQuery) {
  Pool::Lease c = pool_.get();
  Snapshot snapshot(*c);
  Result p = c->query(portalQuery.sql, portalQuery.params);
  Result t = c->query(tokenQuery.sql, tokenQuery.params);
  // Tokens by portal: matched by value, not by walking both lists, so that the order of the
  // database's collation does not matter.
  std::unordered_map<std::string, std::vector<TokenInfo>> tokens;
  for (int k = 0; k < t.rows(); ++k) {
    TokenInfo info;
    info.userId = t.integer(k, 1);
    info.expiresAt = t.optionalInteger(k, 2);
    info.hasRefreshToken = t.boolean(k, 3);
    info.lastRefreshAt = t.optionalInteger(k, 4);
    info.lastRefreshError = t.optionalText(k, 5);
    tokens[t.text(k, 0)].push_back(std::move(info));
  }
  std::vector<PortalView> views(static_cast<std::size_t>(p.rows()));
  for (int i = 0; i < p.rows(); ++i) {
    PortalView& v = views[static_cast<std::size_t>(i)];
    v.memberId = p.text(i, 0);
    v.domain = p.text(i, 1);
    v.clientEndpoint = p.optionalText(i, 2);
    v.serverEndpoint = p.optionalText(i, 3);
    v.status = p.optionalText(i, 4);
    v.scope = p.optionalText(i, 5);
    v.installedAt = p.optionalInteger(i, 6);
    v.uninstalledAt = p.optionalInteger(i, 7);
    v.eventCount = p.integer(i, 8);
    v.lastEventTs = p.optionalInteger(i, 9);
    auto found = tokens.find(v.memberId);
    if (found != tokens.end()) v.tokens = std::move(found->second);
  }
  return views;
}

PortalPage PgEventReader::listPortals(const PortalFilter& filter) {
  Params params;
  params.add(filter.after.value_or("")).add(static_cast<std::int64_t>(filter.limit) + 1);
  PortalPage page;
  page.items = portals(Query{kPortalPageSql, params}, Query{kPageTokensSql, params});
  if (page.items.size() > filter.limit) {
    page.items.resize(filter.limit);
    page.nextAfter = page.items.back().memberId;
  }
  return page;
}

std::optional<PortalView> PgEventReader::findPortalView(const std::string& memberId) {
  Params params;
  params.add(memberId);
  std::vector<PortalView> views =
      portals(Query{kOnePortalSql, params}, Query{kPortalTokensSql, params});
  if (views.empty()) return std::nullopt;
  return std::move(views[0]);
}

EventStats PgEventReader::stats() {
  EventStats stats;
  Pool::Lease c = pool_.get();
  Snapshot snapshot(*c);
  Result byEvent = c->query(kStatsByEventSql);
  Result byPortal = c->query(kStatsByPortalSql);
  Result first = c->query(kFirstTsSql);
  Result last = c->query(kLastTsSql);
  for (int i = 0; i < byEvent.rows(); ++i) {
    stats.total += byEvent.integer(i, 1);
    stats.byEvent.push_back({byEvent.text(i, 0), byEvent.integer(i, 1)});
  }
  for (int i = 0; i < byPortal.rows(); ++i) {
    stats.byPortal.push_back(
        {byPortal.text(i, 0), byPortal.optionalText(i, 1), byPortal.integer(i, 2)});
  }
  if (first.rows() > 0) stats.firstTs = first.optionalInteger(0, 0);
  if (last.rows() > 0) stats.lastTs = last.optionalInteger(0, 0);
  return stats;
}

Timeline PgEventReader::timeline(const TimelineQuery& query) {
  Params params;
  params.add(query.width).add(query.memberId.value_or(std::string())).add(query.from).add(query.to);
  if (query.event) params.add(*query.event);
  Pool::Lease c = pool_.get();
  Result r = c->query(query.event ? kTimelineEventSql : kTimelineSql, params);
  Timeline timeline;
  for (int i = 0; i < r.rows(); ++i) {
    std::string event = r.text(i, 0);
    if (timeline.series.empty() || timeline.series.back().event != event) {
      timeline.series.push_back({std::move(event), {}});
    }
    timeline.series.back().points.emplace_back(r.integer(i, 1), r.integer(i, 2));
  }
  return timeline;
}

TokenStateCounts PgEventReader::tokenStates(std::int64_t nowSeconds) {
  Pool::Lease c = pool_.get();
  Result r = c->query(kTokenStatesSql, Params().add(nowSeconds));
  TokenStateCounts counts;
  for (int i = 0; i < r.rows(); ++i) {
    const std::int64_t n = r.integer(i, 1);
    switch (r.integer(i, 0)) {
      case 0:
        counts.refreshFailed = n;
        break;
      case 1:
        counts.noRefreshToken = n;
        break;
      case 2:
        counts.accessExpired = n;
        break;
      default:
        counts.valid = n;
        break;
    }
  }
  return counts;
}

}  // namespace b24es::pg
