#include "pg_event_reader.h"

#include <Poco/HexBinaryEncoder.h>

#include <limits>
#include <sstream>
#include <unordered_map>

namespace b24es::pg {
namespace {

// data::text: the stored jsonb printed by PostgreSQL (keys in jsonb's order, one line); data_json,
// the exact text, where jsonb could not hold it (pg_json_text.h, migration 0005).
constexpr const char* kEventColumns =
    "SELECT id, event, member_id, domain, event_handler_id, event_id, ts, received_at, user_id, "
    "entity_id, entity_type_id, coalesce(data_json::text, data::text), source FROM events";

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
// Bindings and offline state (0004) of the same page of portals, or of one.
constexpr const char* kBindingColumns =
    "SELECT member_id, event, type, state, error, updated_at FROM bindings";
constexpr const char* kOfflineColumns =
    "SELECT member_id, mode, last_pass_at, last_error, fetched FROM offline_state";
const std::string kPageBindingsSql =
    std::string(kBindingColumns) +
    " WHERE member_id IN (SELECT member_id FROM portals WHERE member_id > $1 "
    "ORDER BY member_id LIMIT $2) ORDER BY member_id, event, type";
const std::string kPortalBindingsSql =
    std::string(kBindingColumns) + " WHERE member_id = $1 ORDER BY member_id, event, type";
const std::string kPageOfflineSql =
    std::string(kOfflineColumns) +
    " WHERE member_id IN (SELECT member_id FROM portals WHERE member_id > $1 "
    "ORDER BY member_id LIMIT $2) ORDER BY member_id";
const std::string kPortalOfflineSql = std::string(kOfflineColumns) + " WHERE member_id = $1";
constexpr const char* kBindingStatesSql =
    "SELECT type, state, count(*) FROM bindings GROUP BY type, state ORDER BY type, state";
// One descent of the primary key from its end.
constexpr const char* kCommittedThroughSql = "SELECT max(id) FROM events";
// A page of rejections (0003), newest first: a range of the primary key from the cursor down,
// or of rejections_member_id (member_id, id) for one portal.
constexpr const char* kRejectionColumns =
    "SELECT id, received_at, client_addr, status, error, event, member_id, domain "
    "FROM rejections";
const std::string kRejectionPageSql =
    std::string(kRejectionColumns) + " WHERE id < $1 ORDER BY id DESC LIMIT $2";
const std::string kPortalRejectionPageSql =
    std::string(kRejectionColumns) + " WHERE member_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";
// The largest member_id at or before a cursor given as bytes (hex bytea), for a cursor that
// PostgreSQL text cannot hold (see holdable()). Byte order, as SQLite's BINARY compares.
constexpr const char* kPortalAtOrBeforeSql =
    "SELECT member_id FROM portals WHERE convert_to(member_id, 'UTF8') <= $1::bytea "
    "ORDER BY member_id DESC LIMIT 1";
constexpr const char* kTokenStatesSql =
    "SELECT CASE WHEN last_refresh_error IS NOT NULL THEN 0 "
    "WHEN refresh_token IS NULL THEN 1 "
    "WHEN expires_at IS NULL OR expires_at <= $1 THEN 2 ELSE 3 END AS state, count(*) "
    "FROM tokens GROUP BY state";

// Whether a text column of this database can hold `value`: valid UTF-8 (the database's
// encoding) without a NUL byte. Every stored member_id, domain and event code is such text, so a
// filter value that is not equals none of them. Bound as it is, it would fail the statement
// (SQLSTATE 22021: a client's bad bytes answered as a storage fault, 503) or, for NUL, be cut
// there by libpq (member_id=A%00x would match portal A); SQLite simply finds no row.
bool holdable(const std::string& value) {
  // cutToChars (rejections.h) keeps valid UTF-8 as it is and replaces any other byte.
  return value.find('\0') == std::string::npos && cutToChars(value, value.size()) == value;
}
bool holdable(const std::optional<std::string>& value) { return !value || holdable(*value); }

// `bytes` as a bytea literal in hex format (\x6d31...).
std::string hexBytea(const std::string& bytes) {
  std::ostringstream out;
  out << "\\x";
  Poco::HexBinaryEncoder hex(out);
  hex.rdbuf()->setLineLength(0);
  hex << bytes;
  hex.close();
  return out.str();
}

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
  e.offline = r.text(i, 12) == "offline";
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
  // source = 'offline' has a partial index (events_offline, 0004); online, the bulk, has none.
  if (f.source) term("source", " = ", *f.source);
  const bool asc = f.order == EventFilter::Order::kAsc;
  term("id", asc ? " > " : " < ",
       f.afterId.value_or(asc ? 0 : std::numeric_limits<std::int64_t>::max()));
  q.params.add(static_cast<std::int64_t>(f.limit) + 1);
  q.sql = std::string(kEventColumns) + " WHERE " + where +
          (asc ? " ORDER BY id" : " ORDER BY id DESC") + " LIMIT $" +
          std::to_string(q.params.size());
  return q;
}

Query rejectionsQuery(const RejectionFilter& filter) {
  const std::int64_t before = filter.afterId.value_or(std::numeric_limits<std::int64_t>::max());
  const auto limit = static_cast<std::int64_t>(filter.limit) + 1;  // +1: is there a next page?
  if (filter.memberId) {
    return {kPortalRejectionPageSql, Params().add(*filter.memberId).add(before).add(limit)};
  }
  return {kRejectionPageSql, Params().add(before).add(limit)};
}

std::vector<Query> fixedReaderQueries() {
  return {
      {kPageBindingsSql, Params().add("member").add(std::int64_t{101})},
      {kPortalBindingsSql, Params().add("member")},
      {kPageOfflineSql, Params().add("member").add(std::int64_t{101})},
      {kPortalOfflineSql, Params().add("member")},
      {kCommittedThroughSql, Params()},
      rejectionsQuery(RejectionFilter{}),
      rejectionsQuery(RejectionFilter{std::int64_t{500}, std::string("member"), 100}),
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
  if (!holdable(filter.memberId) || !holdable(filter.domain) || !holdable(filter.event) ||
      !holdable(filter.source)) {
    return;  // no stored event has such a value
  }
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

std::vector<PortalView> PgEventReader::portals(const Query& portalQuery, const Query& tokenQuery,
                                               const Query& bindingQuery,
                                               const Query& offlineQuery) {
  Pool::Lease c = pool_.get();
  Snapshot snapshot(*c);
  Result p = c->query(portalQuery.sql, portalQuery.params);
  Result t = c->query(tokenQuery.sql, tokenQuery.params);
  Result b = c->query(bindingQuery.sql, bindingQuery.params);
  Result o = c->query(offlineQuery.sql, offlineQuery.params);
  std::unordered_map<std::string, std::vector<BindingRecord>> bindings;
  for (int k = 0; k < b.rows(); ++k) {
    bindings[b.text(k, 0)].push_back(BindingRecord{b.text(k, 1), b.text(k, 2), b.text(k, 3),
                                                   b.optionalText(k, 4), b.integer(k, 5)});
  }
  std::unordered_map<std::string, OfflineState> offline;
  for (int k = 0; k < o.rows(); ++k) {
    offline[o.text(k, 0)] =
        OfflineState{o.text(k, 1), o.optionalInteger(k, 2), o.optionalText(k, 3), o.integer(k, 4)};
  }
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
    auto bound = bindings.find(v.memberId);
    if (bound != bindings.end()) v.bindings = std::move(bound->second);
    auto pulled = offline.find(v.memberId);
    if (pulled != offline.end()) v.offline = std::move(pulled->second);
  }
  return views;
}

PortalPage PgEventReader::listPortals(const PortalFilter& filter) {
  std::string after = filter.after.value_or("");
  if (!holdable(after)) {
    // The portals after such a cursor in byte order are those after the last one at or
    // before it (none: all of them).
    Pool::Lease c = pool_.get();
    Result r = c->query(kPortalAtOrBeforeSql, Params().add(hexBytea(after)));
    after = r.rows() > 0 ? r.text(0, 0) : std::string();
  }
  Params params;
  params.add(after).add(static_cast<std::int64_t>(filter.limit) + 1);
  PortalPage page;
  page.items = portals(Query{kPortalPageSql, params}, Query{kPageTokensSql, params},
                       Query{kPageBindingsSql, params}, Query{kPageOfflineSql, params});
  if (page.items.size() > filter.limit) {
    page.items.resize(filter.limit);
    page.nextAfter = page.items.back().memberId;
  }
  return page;
}

std::optional<PortalView> PgEventReader::findPortalView(const std::string& memberId) {
  if (!holdable(memberId)) return std::nullopt;
  Params params;
  params.add(memberId);
  std::vector<PortalView> views =
      portals(Query{kOnePortalSql, params}, Query{kPortalTokensSql, params},
              Query{kPortalBindingsSql, params}, Query{kPortalOfflineSql, params});
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
  if (!holdable(query.memberId) || !holdable(query.event)) return {};
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

RejectionPage PgEventReader::listRejections(const RejectionFilter& filter) {
  if (!holdable(filter.memberId)) return {};
  Query q = rejectionsQuery(filter);
  Pool::Lease c = pool_.get();
  Result r = c->query(q.sql, q.params);
  RejectionPage page;
  for (int i = 0; i < r.rows() && page.items.size() < filter.limit; ++i) {
    RejectionRecord rec;
    rec.id = r.integer(i, 0);
    rec.receivedAt = r.integer(i, 1);
    rec.clientAddr = r.text(i, 2);
    rec.status = static_cast<int>(r.integer(i, 3));
    rec.error = r.text(i, 4);
    rec.event = r.optionalText(i, 5);
    rec.memberId = r.optionalText(i, 6);
    rec.domain = r.optionalText(i, 7);
    page.items.push_back(std::move(rec));
  }
  if (static_cast<std::size_t>(r.rows()) > filter.limit) page.nextAfterId = page.items.back().id;
  return page;
}

std::vector<BindingStateCount> PgEventReader::bindingStates() {
  Pool::Lease c = pool_.get();
  Result r = c->query(kBindingStatesSql);
  std::vector<BindingStateCount> counts;
  for (int i = 0; i < r.rows(); ++i)
    counts.push_back({r.text(i, 0), r.text(i, 1), r.integer(i, 2)});
  return counts;
}

std::int64_t PgEventReader::committedThrough() {
  Pool::Lease c = pool_.get();
  // max(id) is a safe watermark on PostgreSQL too, though sequence values can commit out of
  // order in general: every writer of events (the sink, the offline store) takes its ids under
  // the commit-order advisory lock and holds it until COMMIT (pg_event_sink.h, pg_counters.h),
  // and a transaction's locks are released only once its commit is visible. So any id below
  // the largest visible one was handed out by a transaction that had already ended: it is
  // visible now, or it never will be.
  Result r = c->query(kCommittedThroughSql);
  return r.optionalInteger(0, 0).value_or(0);
}

}  // namespace b24es::pg
