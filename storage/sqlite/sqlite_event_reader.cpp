#include "sqlite_event_reader.h"

#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Statement.h>
#include <Poco/Data/Transaction.h>
#include <Poco/Exception.h>
#include <Poco/Nullable.h>

#include <limits>

#include "sqlite_statement.h"
#include "storage.h"

using Poco::Nullable;
using Poco::Data::Keywords::bind;
using Poco::Data::Keywords::into;

namespace b24es::sqlite {
namespace {

// EVENT's columns, read from the table behind the events view (migration 0011) with the texts
// of its keys. CROSS JOIN keeps event_rows the outer loop (SQLite never reorders it), so the
// index that a filter names drives the page and the keys are one rowid seek per row.
constexpr const char* kEventColumns =
    "SELECT r.id, c.event, p.member_id, d.domain, r.event_handler_id, r.event_id, r.ts, "
    "r.received_at, r.user_id, r.entity_id, r.entity_type_id, r.data, "
    "CASE r.offline WHEN 0 THEN 'online' ELSE 'offline' END FROM event_rows r "
    "CROSS JOIN event_codes c ON c.key = r.code CROSS JOIN event_portals p ON p.key = r.portal "
    "LEFT JOIN event_domains d ON d.key = r.domain";

// Portal views: the record (never application_token), the event count and the ts of the newest
// event. The count sums the portal's rows of event_counts (one per event code); the newest
// event is one seek from the end of the portal's range of events_member_id(portal, id).
constexpr const char* kPortalColumns =
    "SELECT p.member_id, p.domain, p.client_endpoint, p.server_endpoint, p.status, p.scope, "
    "p.installed_at, p.uninstalled_at, "
    "(SELECT coalesce(sum(c.count), 0) FROM event_counts c WHERE c.member_id = p.member_id), "
    "(SELECT e.ts FROM event_rows e WHERE e.portal = "
    "(SELECT k.key FROM event_portals k WHERE k.member_id = p.member_id) "
    "ORDER BY e.id DESC LIMIT 1) "
    "FROM portals p";

// Token metadata only: the token columns are tested for presence, never selected.
constexpr const char* kTokenColumns =
    "SELECT member_id, user_id, expires_at, refresh_token IS NOT NULL, last_refresh_at, "
    "last_refresh_error FROM tokens";

const std::string kEventByIdSql = std::string(kEventColumns) + " WHERE r.id = ?";
// A page of portals after a cursor ('' before the first: member_ids are never empty), and the
// tokens of exactly those portals.
const std::string kPortalPageSql =
    std::string(kPortalColumns) + " WHERE p.member_id > ? ORDER BY p.member_id LIMIT ?";
const std::string kOnePortalSql = std::string(kPortalColumns) + " WHERE p.member_id = ?";
const std::string kPageTokensSql =
    std::string(kTokenColumns) +
    " WHERE member_id IN (SELECT member_id FROM portals WHERE member_id > ? "
    "ORDER BY member_id LIMIT ?) ORDER BY member_id, user_id";
const std::string kPortalTokensSql =
    std::string(kTokenColumns) + " WHERE member_id = ? ORDER BY user_id";
// Bindings and offline state (migration 0007) of the same page of portals, or of one.
constexpr const char* kBindingColumns =
    "SELECT member_id, event, type, state, error, updated_at FROM bindings";
constexpr const char* kOfflineColumns =
    "SELECT member_id, mode, last_pass_at, last_error, fetched FROM offline_state";
const std::string kPageBindingsSql =
    std::string(kBindingColumns) +
    " WHERE member_id IN (SELECT member_id FROM portals WHERE member_id > ? "
    "ORDER BY member_id LIMIT ?) ORDER BY member_id, event, type";
const std::string kPortalBindingsSql =
    std::string(kBindingColumns) + " WHERE member_id = ? ORDER BY member_id, event, type";
const std::string kPageOfflineSql =
    std::string(kOfflineColumns) +
    " WHERE member_id IN (SELECT member_id FROM portals WHERE member_id > ? "
    "ORDER BY member_id LIMIT ?) ORDER BY member_id";
const std::string kPortalOfflineSql = std::string(kOfflineColumns) + " WHERE member_id = ?";
constexpr const char* kBindingStatesSql =
    "SELECT type, state, count(*) FROM bindings GROUP BY type, state ORDER BY type, state";
// Sums over event_counts (portals x event codes rows), never over events.
constexpr const char* kStatsByEventSql =
    "SELECT event, sum(count) FROM event_counts GROUP BY event ORDER BY 2 DESC, 1";
constexpr const char* kStatsByPortalSql =
    "SELECT c.member_id, p.domain, c.n FROM "
    "(SELECT member_id, sum(count) AS n FROM event_counts GROUP BY member_id) c "
    "LEFT JOIN portals p ON p.member_id = c.member_id ORDER BY c.n DESC, c.member_id";
// min() and max() in separate statements: alone, each is one seek in events_ts; together in
// one SELECT SQLite would scan the index.
constexpr const char* kFirstTsSql = "SELECT min(ts) FROM event_rows";
constexpr const char* kLastTsSql = "SELECT max(ts) FROM event_rows";
constexpr const char* kCommittedThroughSql = "SELECT max(id) FROM event_rows";
// One range of event_buckets' key (width, member_id, start, event); member_id '' is the sum
// over every portal.
constexpr const char* kTimelineSql =
    "SELECT event, start, count FROM event_buckets WHERE width = ? AND member_id = ? "
    "AND start >= ? AND start <= ? ORDER BY event, start";
constexpr const char* kTimelineEventSql =
    "SELECT event, start, count FROM event_buckets WHERE width = ? AND member_id = ? "
    "AND start >= ? AND start <= ? AND event = ? ORDER BY start";
constexpr const char* kTokenStatesSql =
    "SELECT CASE WHEN last_refresh_error IS NOT NULL THEN 0 "
    "WHEN refresh_token IS NULL THEN 1 "
    "WHEN expires_at IS NULL OR expires_at <= ? THEN 2 ELSE 3 END AS state, count(*) "
    "FROM tokens GROUP BY state";
// A page of rejections (0008), newest first: a range of the rowid from the cursor down, or of
// rejections_member_id (member_id, id) for one portal.
constexpr const char* kRejectionColumns =
    "SELECT id, received_at, client_addr, status, error, event, member_id, domain "
    "FROM rejections";
const std::string kRejectionPageSql =
    std::string(kRejectionColumns) + " WHERE id < ? ORDER BY id DESC LIMIT ?";
const std::string kPortalRejectionPageSql =
    std::string(kRejectionColumns) + " WHERE member_id = ? AND id < ? ORDER BY id DESC LIMIT ?";

// The filter whose index drives a page query. Without statistics (no ANALYZE) SQLite breaks
// ties between single-column indexes by schema order, which for member_id + entity_id would
// walk the whole portal; so the builder names the most selective filter that has an index and
// turns the other terms into row checks with unary `+` (SQLite's documented way to keep a term
// from using an index; it does not change the comparison for values bound with their type).
enum class Driver {
  kMemberEntity,  // events_entity_member (entity_id, portal, id): one entity of one portal
  kEntity,        // the same index, entity_id alone: sorted (see eventsQuery)
  kMemberEvent,   // events_member_event (portal, code, id)
  kMember,        // events_member_id (portal, id)
  kDomain,        // events_domain (domain, id)
  kEntityType,    // events_entity_type (entity_type_id, id), partial
  kEvent,         // events_event (code, id)
  kUser,          // events_user (user_id, id), partial
  kTs,            // events_ts (ts, id): sorted (see eventsQuery)
  kId,            // no filter: the rowid itself
};

Driver driverOf(const EventFilter& f) {
  if (f.entityId && f.memberId) return Driver::kMemberEntity;  // an entity's history: a few rows
  if (f.entityId) return Driver::kEntity;
  if (f.memberId && f.event) return Driver::kMemberEvent;
  if (f.memberId) return Driver::kMember;
  if (f.domain) return Driver::kDomain;
  if (f.entityTypeId) return Driver::kEntityType;
  if (f.event) return Driver::kEvent;
  if (f.userId) return Driver::kUser;
  if (f.from || f.to) return Driver::kTs;
  return Driver::kId;
}

void bindParams(Poco::Data::Statement& statement, const SqlQuery& query) {
  for (const auto& param : query.params) {
    if (const auto* number = std::get_if<std::int64_t>(&param)) {
      statement, bind(static_cast<Poco::Int64>(*number));
    } else {
      statement, bind(std::get<std::string>(param));
    }
  }
}

template <typename T>
std::optional<T> optionalOf(const Nullable<T>& value) {
  return value.isNull() ? std::nullopt : std::optional<T>(value.value());
}

// Steps through `query` one row at a time with SQLite's own API (Statement), handing each row to
// `each` until it returns false: POCO Data's into() fills whole vectors first, and a page of
// 1,000 events of 1 MB each held 1 GB (issue 13).
void scanRows(Poco::Data::Session& session, const SqlQuery& query,
              const std::function<bool(EventRecord&)>& each) {
  Statement statement(Poco::Data::SQLite::Utility::dbHandle(session), query.sql.c_str());
  for (std::size_t i = 0; i < query.params.size(); ++i) {
    const int index = static_cast<int>(i) + 1;
    if (const auto* number = std::get_if<std::int64_t>(&query.params[i])) {
      statement.bind(index, *number);
    } else {
      statement.bind(index, std::get<std::string>(query.params[i]));
    }
  }
  while (statement.row()) {
    EventRecord r;
    r.id = statement.integer(0);
    r.event = statement.text(1);
    r.memberId = statement.text(2);
    r.domain = statement.optionalText(3);
    r.eventHandlerId = statement.optionalInteger(4);
    r.eventId = statement.optionalText(5);
    r.ts = statement.optionalInteger(6);
    r.receivedAt = statement.integer(7);
    r.userId = statement.optionalInteger(8);
    r.entityId = statement.optionalInteger(9);
    r.entityTypeId = statement.optionalInteger(10);
    r.dataJson = statement.text(11);
    r.offline = statement.text(12) == "offline";
    if (!each(r)) {
      statement.reset();
      return;
    }
  }
}

std::vector<std::pair<std::string, TokenInfo>> selectTokens(Poco::Data::Session& session,
                                                            const SqlQuery& query) {
  std::vector<std::string> memberId;
  std::vector<Poco::Int64> userId;
  std::vector<int> hasRefresh;
  std::vector<Nullable<Poco::Int64>> expiresAt, lastRefreshAt;
  std::vector<Nullable<std::string>> lastError;
  Poco::Data::Statement statement(session);
  statement << query.sql;
  bindParams(statement, query);
  statement, into(memberId), into(userId), into(expiresAt), into(hasRefresh), into(lastRefreshAt),
      into(lastError);
  statement.execute();
  std::vector<std::pair<std::string, TokenInfo>> rows;
  rows.reserve(memberId.size());
  for (std::size_t i = 0; i < memberId.size(); ++i) {
    TokenInfo t;
    t.userId = userId[i];
    t.expiresAt = optionalOf(expiresAt[i]);
    t.hasRefreshToken = hasRefresh[i] != 0;
    t.lastRefreshAt = optionalOf(lastRefreshAt[i]);
    t.lastRefreshError = optionalOf(lastError[i]);
    rows.emplace_back(std::move(memberId[i]), std::move(t));
  }
  return rows;
}

// The rows of `bindings` and `offline_state` the queries select, ordered by member_id.
struct PortalStateRows {
  std::vector<std::pair<std::string, BindingRecord>> bindings;
  std::vector<std::pair<std::string, OfflineState>> offline;
};

void selectPortalState(Poco::Data::Session& session, const SqlQuery& bindingQuery,
                       const SqlQuery& offlineQuery, PortalStateRows& rows) {
  {
    std::vector<std::string> member, event, type, state;
    std::vector<Nullable<std::string>> error;
    std::vector<Poco::Int64> updatedAt;
    Poco::Data::Statement statement(session);
    statement << bindingQuery.sql;
    bindParams(statement, bindingQuery);
    statement, into(member), into(event), into(type), into(state), into(error), into(updatedAt);
    statement.execute();
    for (std::size_t i = 0; i < member.size(); ++i) {
      rows.bindings.emplace_back(member[i], BindingRecord{event[i], type[i], state[i],
                                                          optionalOf(error[i]), updatedAt[i]});
    }
  }
  std::vector<std::string> member, mode;
  std::vector<Nullable<Poco::Int64>> lastPass;
  std::vector<Nullable<std::string>> lastError;
  std::vector<Poco::Int64> fetched;
  Poco::Data::Statement statement(session);
  statement << offlineQuery.sql;
  bindParams(statement, offlineQuery);
  statement, into(member), into(mode), into(lastPass), into(lastError), into(fetched);
  statement.execute();
  for (std::size_t i = 0; i < member.size(); ++i) {
    rows.offline.emplace_back(member[i], OfflineState{mode[i], optionalOf(lastPass[i]),
                                                      optionalOf(lastError[i]), fetched[i]});
  }
}

std::optional<std::int64_t> selectOptionalInt(Poco::Data::Session& session, const char* sql) {
  std::vector<Nullable<Poco::Int64>> value;
  session << sql, into(value), Poco::Data::Keywords::now;
  if (value.empty()) return std::nullopt;
  return optionalOf(value[0]);
}

}  // namespace

SqlQuery eventsQuery(const EventFilter& f) {
  const Driver driver = driverOf(f);
  SqlQuery query;
  std::string where;
  // `value` is compared with the column, or with `key`'s subquery, which turns a member_id,
  // domain or event code into its key (0011): one seek in that key table, NULL when the text
  // was never stored, which matches no row.
  auto term = [&](bool drives, const char* column, const char* comparison,
                  std::variant<std::int64_t, std::string> value, const char* key = nullptr) {
    if (!where.empty()) where += " AND ";
    if (!drives) where += '+';
    where += "r.";
    where += column;
    where += comparison;
    where += key ? key : "?";
    query.params.push_back(std::move(value));
  };
  if (f.memberId) {
    term(driver == Driver::kMember || driver == Driver::kMemberEvent ||
             driver == Driver::kMemberEntity,
         "portal", " = ", *f.memberId, "(SELECT key FROM event_portals WHERE member_id = ?)");
  }
  if (f.domain) {
    term(driver == Driver::kDomain, "domain", " = ", *f.domain,
         "(SELECT key FROM event_domains WHERE domain = ?)");
  }
  if (f.event) {
    term(driver == Driver::kEvent || driver == Driver::kMemberEvent, "code", " = ", *f.event,
         "(SELECT key FROM event_codes WHERE event = ?)");
  }
  if (f.entityId) {
    term(driver == Driver::kEntity || driver == Driver::kMemberEntity, "entity_id", " = ",
         *f.entityId);
  }
  if (f.entityTypeId) term(driver == Driver::kEntityType, "entity_type_id", " = ", *f.entityTypeId);
  if (f.userId) term(driver == Driver::kUser, "user_id", " = ", *f.userId);
  if (f.from) term(driver == Driver::kTs, "ts", " >= ", *f.from);
  if (f.to) term(driver == Driver::kTs, "ts", " <= ", *f.to);
  // Never drives (most events are online; offline ones are few and recent). The column behind
  // `source` is event_rows.offline, 1 for offline (0011).
  if (f.source) term(false, "offline", " = ", std::int64_t{*f.source == "offline" ? 1 : 0});
  // The keyset bound is always present: every index above ends with id, so a page starts with
  // one seek wherever the cursor is, and with no filter at all the rowid itself drives.
  const bool asc = f.order == EventFilter::Order::kAsc;
  term(true, "id", asc ? " > " : " < ",
       f.afterId.value_or(asc ? 0 : std::numeric_limits<std::int64_t>::max()));
  const std::string order = asc ? " ORDER BY r.id" : " ORDER BY r.id DESC";
  if (driver == Driver::kTs || driver == Driver::kEntity) {
    // A time window comes out of events_ts in ts order, and one entity_id of every portal out
    // of events_entity_member in portal order, so these rows must be sorted by id. Sorting only
    // the ids (read from the index; covering when no other filter is set), then fetching the
    // page's rows by id, costs a fraction of sorting whole rows. INDEXED BY because with a
    // bound LIMIT SQLite otherwise prefers walking the rowid from the cursor, which for a
    // recent window reads the whole table first.
    const char* index = driver == Driver::kTs ? "events_ts" : "events_entity_member";
    query.sql = std::string(kEventColumns) +
                " WHERE r.id IN (SELECT r.id FROM event_rows r INDEXED BY " + index + " WHERE " +
                where + order + " LIMIT ?)" + order;
  } else {
    query.sql = std::string(kEventColumns) + " WHERE " + where + order + " LIMIT ?";
  }
  query.params.emplace_back(static_cast<std::int64_t>(f.limit) + 1);
  return query;
}

std::vector<SqlQuery> fixedReaderQueries() {
  return {
      {kEventByIdSql, {std::int64_t{1}}},
      {kPortalPageSql, {std::string("member"), std::int64_t{101}}},
      {kOnePortalSql, {std::string("member")}},
      {kPageTokensSql, {std::string("member"), std::int64_t{101}}},
      {kPortalTokensSql, {std::string("member")}},
      {kPageBindingsSql, {std::string("member"), std::int64_t{101}}},
      {kPortalBindingsSql, {std::string("member")}},
      {kPageOfflineSql, {std::string("member"), std::int64_t{101}}},
      {kPortalOfflineSql, {std::string("member")}},
      {kBindingStatesSql, {}},
      {kStatsByEventSql, {}},
      {kStatsByPortalSql, {}},
      {kFirstTsSql, {}},
      {kLastTsSql, {}},
      {kCommittedThroughSql, {}},
      {kTokenStatesSql, {std::int64_t{0}}},
      {kTimelineSql, {std::int64_t{60}, std::string(), std::int64_t{0}, std::int64_t{600}}},
      {kTimelineEventSql,
       {std::int64_t{60}, std::string("member"), std::int64_t{0}, std::int64_t{600},
        std::string("ONCRMDEALADD")}},
      rejectionsQuery(RejectionFilter{}),
      rejectionsQuery(RejectionFilter{std::int64_t{500}, std::string("member"), 100}),
  };
}

SqlQuery rejectionsQuery(const RejectionFilter& filter) {
  const std::int64_t before = filter.afterId.value_or(std::numeric_limits<std::int64_t>::max());
  const auto limit = static_cast<std::int64_t>(filter.limit) + 1;  // +1: is there a next page?
  if (filter.memberId) return {kPortalRejectionPageSql, {*filter.memberId, before, limit}};
  return {kRejectionPageSql, {before, limit}};
}

std::vector<std::string> explainQueryPlan(Poco::Data::Session& session, const SqlQuery& query) {
  std::vector<int> id, parent, unused;
  std::vector<std::string> detail;
  Poco::Data::Statement statement(session);
  statement << "EXPLAIN QUERY PLAN " + query.sql;
  bindParams(statement, query);
  statement, into(id), into(parent), into(unused), into(detail);
  statement.execute();
  return detail;
}

void SqliteEventReader::scanEvents(const EventFilter& filter,
                                   const std::function<bool(EventRecord&)>& each) {
  try {
    Poco::Data::Session session = pool_.get();
    // One read transaction, so the page is one snapshot even though it is read row by row.
    Poco::Data::Transaction transaction(session, true);
    scanRows(session, eventsQuery(filter), each);
    transaction.commit();
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
}

std::optional<EventRecord> SqliteEventReader::findEvent(std::int64_t id) {
  try {
    Poco::Data::Session session = pool_.get();
    std::optional<EventRecord> found;
    scanRows(session, SqlQuery{kEventByIdSql, {id}}, [&found](EventRecord& r) {
      found = std::move(r);
      return false;
    });
    return found;
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
}

std::vector<PortalView> SqliteEventReader::portals(const SqlQuery& portalQuery,
                                                   const SqlQuery& tokenQuery,
                                                   const SqlQuery& bindingQuery,
                                                   const SqlQuery& offlineQuery) {
  std::vector<std::string> member, domain;
  std::vector<Nullable<std::string>> client, server, status, scope;
  std::vector<Nullable<Poco::Int64>> installedAt, uninstalledAt, lastTs;
  std::vector<Poco::Int64> count;
  std::vector<std::pair<std::string, TokenInfo>> tokens;
  PortalStateRows state;
  try {
    Poco::Data::Session session = pool_.get();
    // One read transaction, so that the counts and the tokens describe the same moment; rolled
    // back on the way out if anything throws, before the session returns to the pool.
    Poco::Data::Transaction transaction(session, true);
    Poco::Data::Statement statement(session);
    statement << portalQuery.sql;
    bindParams(statement, portalQuery);
    statement, into(member), into(domain), into(client), into(server), into(status), into(scope),
        into(installedAt), into(uninstalledAt), into(count), into(lastTs);
    statement.execute();
    tokens = selectTokens(session, tokenQuery);
    selectPortalState(session, bindingQuery, offlineQuery, state);
    transaction.commit();
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
  std::vector<PortalView> views(member.size());
  std::size_t t = 0, b = 0, o = 0;  // every list is ordered by member_id
  for (std::size_t i = 0; i < views.size(); ++i) {
    PortalView& v = views[i];
    v.memberId = std::move(member[i]);
    v.domain = std::move(domain[i]);
    v.clientEndpoint = optionalOf(client[i]);
    v.serverEndpoint = optionalOf(server[i]);
    v.status = optionalOf(status[i]);
    v.scope = optionalOf(scope[i]);
    v.installedAt = optionalOf(installedAt[i]);
    v.uninstalledAt = optionalOf(uninstalledAt[i]);
    v.eventCount = count[i];
    v.lastEventTs = optionalOf(lastTs[i]);
    while (t < tokens.size() && tokens[t].first < v.memberId) ++t;
    while (t < tokens.size() && tokens[t].first == v.memberId) {
      v.tokens.push_back(std::move(tokens[t].second));
      ++t;
    }
    while (b < state.bindings.size() && state.bindings[b].first < v.memberId) ++b;
    while (b < state.bindings.size() && state.bindings[b].first == v.memberId) {
      v.bindings.push_back(std::move(state.bindings[b].second));
      ++b;
    }
    while (o < state.offline.size() && state.offline[o].first < v.memberId) ++o;
    if (o < state.offline.size() && state.offline[o].first == v.memberId) {
      v.offline = std::move(state.offline[o].second);
    }
  }
  return views;
}

PortalPage SqliteEventReader::listPortals(const PortalFilter& filter) {
  // One more than the page, to tell whether a next page exists.
  const std::vector<std::variant<std::int64_t, std::string>> params = {
      filter.after.value_or(""), static_cast<std::int64_t>(filter.limit) + 1};
  PortalPage page;
  page.items = portals(SqlQuery{kPortalPageSql, params}, SqlQuery{kPageTokensSql, params},
                       SqlQuery{kPageBindingsSql, params}, SqlQuery{kPageOfflineSql, params});
  if (page.items.size() > filter.limit) {
    page.items.resize(filter.limit);
    page.nextAfter = page.items.back().memberId;
  }
  return page;
}

std::optional<PortalView> SqliteEventReader::findPortalView(const std::string& memberId) {
  std::vector<PortalView> views =
      portals(SqlQuery{kOnePortalSql, {memberId}}, SqlQuery{kPortalTokensSql, {memberId}},
              SqlQuery{kPortalBindingsSql, {memberId}}, SqlQuery{kPortalOfflineSql, {memberId}});
  if (views.empty()) return std::nullopt;
  return std::move(views[0]);
}

EventStats SqliteEventReader::stats() {
  EventStats stats;
  try {
    Poco::Data::Session session = pool_.get();
    Poco::Data::Transaction transaction(session, true);
    std::vector<std::string> event, member;
    std::vector<Poco::Int64> eventCount, portalCount;
    std::vector<Nullable<std::string>> domain;
    session << kStatsByEventSql, into(event), into(eventCount), Poco::Data::Keywords::now;
    session << kStatsByPortalSql, into(member), into(domain), into(portalCount),
        Poco::Data::Keywords::now;
    stats.firstTs = selectOptionalInt(session, kFirstTsSql);
    stats.lastTs = selectOptionalInt(session, kLastTsSql);
    transaction.commit();
    for (std::size_t i = 0; i < event.size(); ++i) {
      stats.total += eventCount[i];
      stats.byEvent.push_back({std::move(event[i]), eventCount[i]});
    }
    for (std::size_t i = 0; i < member.size(); ++i) {
      stats.byPortal.push_back({std::move(member[i]), optionalOf(domain[i]), portalCount[i]});
    }
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
  return stats;
}

Timeline SqliteEventReader::timeline(const TimelineQuery& query) {
  SqlQuery sql{query.event ? kTimelineEventSql : kTimelineSql,
               {query.width, query.memberId.value_or(std::string()), query.from, query.to}};
  if (query.event) sql.params.emplace_back(*query.event);
  Timeline timeline;
  try {
    Poco::Data::Session session = pool_.get();
    std::vector<std::string> event;
    std::vector<Poco::Int64> start, count;
    Poco::Data::Statement statement(session);
    statement << sql.sql;
    bindParams(statement, sql);
    statement, into(event), into(start), into(count);
    statement.execute();
    for (std::size_t i = 0; i < event.size(); ++i) {
      if (timeline.series.empty() || timeline.series.back().event != event[i]) {
        timeline.series.push_back({std::move(event[i]), {}});
      }
      timeline.series.back().points.emplace_back(start[i], count[i]);
    }
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
  return timeline;
}

RejectionPage SqliteEventReader::listRejections(const RejectionFilter& filter) {
  const SqlQuery query = rejectionsQuery(filter);
  RejectionPage page;
  try {
    Poco::Data::Session session = pool_.get();
    std::vector<Poco::Int64> id, receivedAt;
    std::vector<std::string> client, error;
    std::vector<int> status;
    std::vector<Nullable<std::string>> event, memberId, domain;
    Poco::Data::Statement statement(session);
    statement << query.sql;
    bindParams(statement, query);
    statement, into(id), into(receivedAt), into(client), into(status), into(error), into(event),
        into(memberId), into(domain);
    statement.execute();
    for (std::size_t i = 0; i < id.size() && i < filter.limit; ++i) {
      RejectionRecord r;
      r.id = id[i];
      r.receivedAt = receivedAt[i];
      r.clientAddr = std::move(client[i]);
      r.status = status[i];
      r.error = std::move(error[i]);
      r.event = optionalOf(event[i]);
      r.memberId = optionalOf(memberId[i]);
      r.domain = optionalOf(domain[i]);
      page.items.push_back(std::move(r));
    }
    if (id.size() > filter.limit) page.nextAfterId = page.items.back().id;
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
  return page;
}

std::int64_t SqliteEventReader::committedThrough() {
  try {
    Poco::Data::Session session = pool_.get();
    // One seek at the end of the rowid. Another process's commit is either wholly in this
    // read's snapshot or not at all, and SQLite lets one writer commit at a time, each taking
    // ids above every committed one: so no id below the largest can still be in flight.
    return selectOptionalInt(session, kCommittedThroughSql).value_or(0);
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
}

TokenStateCounts SqliteEventReader::tokenStates(std::int64_t nowSeconds) {
  TokenStateCounts counts;
  try {
    Poco::Data::Session session = pool_.get();
    std::vector<int> state;
    std::vector<Poco::Int64> count;
    Poco::Int64 now = nowSeconds;
    session << kTokenStatesSql, Poco::Data::Keywords::use(now), into(state), into(count),
        Poco::Data::Keywords::now;
    for (std::size_t i = 0; i < state.size(); ++i) {
      switch (state[i]) {
        case 0:
          counts.refreshFailed = count[i];
          break;
        case 1:
          counts.noRefreshToken = count[i];
          break;
        case 2:
          counts.accessExpired = count[i];
          break;
        default:
          counts.valid = count[i];
          break;
      }
    }
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
  return counts;
}

std::vector<BindingStateCount> SqliteEventReader::bindingStates() {
  std::vector<BindingStateCount> counts;
  try {
    Poco::Data::Session session = pool_.get();
    std::vector<std::string> type, state;
    std::vector<Poco::Int64> count;
    session << kBindingStatesSql, into(type), into(state), into(count), Poco::Data::Keywords::now;
    for (std::size_t i = 0; i < type.size(); ++i) counts.push_back({type[i], state[i], count[i]});
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
  return counts;
}

}  // namespace b24es::sqlite
