#include "sqlite_event_reader.h"

#include <Poco/Data/Statement.h>
#include <Poco/Data/Transaction.h>
#include <Poco/Exception.h>
#include <Poco/Nullable.h>

#include <limits>

#include "storage.h"

using Poco::Nullable;
using Poco::Data::Statement;
using Poco::Data::Keywords::bind;
using Poco::Data::Keywords::into;

namespace b24es::sqlite {
namespace {

constexpr const char* kEventColumns =
    "SELECT id, event, member_id, domain, event_handler_id, event_id, ts, received_at, user_id, "
    "entity_id, entity_type_id, data, source FROM events";

// Portal views: the record (never application_token), the event count and the ts of the newest
// event. Both subqueries walk events_member_id(member_id, id): the count reads only that index,
// the newest event is one seek from its end.
constexpr const char* kPortalColumns =
    "SELECT p.member_id, p.domain, p.client_endpoint, p.server_endpoint, p.status, p.scope, "
    "p.installed_at, p.uninstalled_at, "
    "(SELECT count(*) FROM events e WHERE e.member_id = p.member_id), "
    "(SELECT e.ts FROM events e WHERE e.member_id = p.member_id ORDER BY e.id DESC LIMIT 1) "
    "FROM portals p";

// Token metadata only: the token columns are tested for presence, never selected.
constexpr const char* kTokenColumns =
    "SELECT member_id, user_id, expires_at, refresh_token IS NOT NULL, last_refresh_at, "
    "last_refresh_error FROM tokens";

constexpr const char* kEventByIdSql =
    "SELECT id, event, member_id, domain, event_handler_id, event_id, ts, received_at, user_id, "
    "entity_id, entity_type_id, data, source FROM events WHERE id = ?";
const std::string kAllPortalsSql = std::string(kPortalColumns) + " ORDER BY p.member_id";
const std::string kOnePortalSql = std::string(kPortalColumns) + " WHERE p.member_id = ?";
const std::string kAllTokensSql = std::string(kTokenColumns) + " ORDER BY member_id, user_id";
const std::string kPortalTokensSql =
    std::string(kTokenColumns) + " WHERE member_id = ? ORDER BY user_id";
// Each grouping reads one covering index (events_event, events_member_id), not the table.
constexpr const char* kStatsByEventSql =
    "SELECT event, count(*) FROM events GROUP BY event ORDER BY 2 DESC, 1";
constexpr const char* kStatsByPortalSql =
    "SELECT c.member_id, p.domain, c.n FROM "
    "(SELECT member_id, count(*) AS n FROM events GROUP BY member_id) c "
    "LEFT JOIN portals p ON p.member_id = c.member_id ORDER BY c.n DESC, c.member_id";
// min() and max() in separate statements: alone, each is one seek in events_ts; together in
// one SELECT SQLite would scan the index.
constexpr const char* kFirstTsSql = "SELECT min(ts) FROM events";
constexpr const char* kLastTsSql = "SELECT max(ts) FROM events";
constexpr const char* kTokenStatesSql =
    "SELECT CASE WHEN last_refresh_error IS NOT NULL THEN 0 "
    "WHEN refresh_token IS NULL THEN 1 "
    "WHEN expires_at IS NULL OR expires_at <= ? THEN 2 ELSE 3 END AS state, count(*) "
    "FROM tokens GROUP BY state";

// The filter whose index drives a page query. Without statistics (no ANALYZE) SQLite breaks
// ties between single-column indexes by schema order, which for member_id + entity_id would
// walk the whole portal; so the builder names the most selective filter that has an index and
// turns the other terms into row checks with unary `+` (SQLite's documented way to keep a term
// from using an index; it does not change the comparison for values bound with their type).
enum class Driver {
  kMemberEntity,  // events_entity_member (entity_id, member_id, id): one entity of one portal
  kEntity,        // the same index, entity_id alone: sorted (see eventsQuery)
  kMemberEvent,   // events_member_event (member_id, event, id)
  kMember,        // events_member_id (member_id, id)
  kDomain,        // events_domain (domain, id)
  kEntityType,    // events_entity_type (entity_type_id, id), partial
  kEvent,         // events_event (event, id)
  kUser,          // events_user (user_id, id)
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

void bindParams(Statement& statement, const SqlQuery& query) {
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

std::vector<EventRecord> selectEvents(Poco::Data::Session& session, const SqlQuery& query) {
  std::vector<Poco::Int64> id, receivedAt;
  std::vector<std::string> event, memberId, data, source;
  std::vector<Nullable<std::string>> domain, eventId;
  std::vector<Nullable<Poco::Int64>> handlerId, ts, userId, entityId, entityTypeId;
  Statement statement(session);
  statement << query.sql;
  bindParams(statement, query);
  statement, into(id), into(event), into(memberId), into(domain), into(handlerId), into(eventId),
      into(ts), into(receivedAt), into(userId), into(entityId), into(entityTypeId), into(data),
      into(source);
  statement.execute();
  std::vector<EventRecord> rows(id.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    EventRecord& r = rows[i];
    r.id = id[i];
    r.event = std::move(event[i]);
    r.memberId = std::move(memberId[i]);
    r.domain = optionalOf(domain[i]);
    r.eventHandlerId = optionalOf(handlerId[i]);
    r.eventId = optionalOf(eventId[i]);
    r.ts = optionalOf(ts[i]);
    r.receivedAt = receivedAt[i];
    r.userId = optionalOf(userId[i]);
    r.entityId = optionalOf(entityId[i]);
    r.entityTypeId = optionalOf(entityTypeId[i]);
    r.dataJson = std::move(data[i]);
    r.offline = source[i] == "offline";
  }
  return rows;
}

std::vector<std::pair<std::string, TokenInfo>> selectTokens(Poco::Data::Session& session,
                                                            const SqlQuery& query) {
  std::vector<std::string> memberId;
  std::vector<Poco::Int64> userId;
  std::vector<int> hasRefresh;
  std::vector<Nullable<Poco::Int64>> expiresAt, lastRefreshAt;
  std::vector<Nullable<std::string>> lastError;
  Statement statement(session);
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

// Bindings and offline state of one portal (memberId set) or of all, ordered by member_id.
void selectPortalState(Poco::Data::Session& session, const std::optional<std::string>& memberId,
                       std::vector<std::pair<std::string, BindingRecord>>& bindings,
                       std::vector<std::pair<std::string, OfflineState>>& offline) {
  const std::string key = memberId.value_or("");
  const int all = memberId ? 0 : 1;
  {
    std::vector<std::string> member, event, type, state;
    std::vector<Nullable<std::string>> error;
    std::vector<Poco::Int64> updatedAt;
    Statement statement(session);
    statement << "SELECT member_id, event, type, state, error, updated_at FROM bindings "
                 "WHERE ? = 1 OR member_id = ? ORDER BY member_id, event, type",
        Poco::Data::Keywords::useRef(all), Poco::Data::Keywords::useRef(key), into(member),
        into(event), into(type), into(state), into(error), into(updatedAt);
    statement.execute();
    for (std::size_t i = 0; i < member.size(); ++i) {
      bindings.emplace_back(member[i], BindingRecord{event[i], type[i], state[i],
                                                     optionalOf(error[i]), updatedAt[i]});
    }
  }
  std::vector<std::string> member, mode;
  std::vector<Nullable<Poco::Int64>> lastPass;
  std::vector<Nullable<std::string>> lastError;
  std::vector<Poco::Int64> fetched;
  Statement statement(session);
  statement << "SELECT member_id, mode, last_pass_at, last_error, fetched FROM offline_state "
               "WHERE ? = 1 OR member_id = ? ORDER BY member_id",
      Poco::Data::Keywords::useRef(all), Poco::Data::Keywords::useRef(key), into(member),
      into(mode), into(lastPass), into(lastError), into(fetched);
  statement.execute();
  for (std::size_t i = 0; i < member.size(); ++i) {
    offline.emplace_back(member[i], OfflineState{mode[i], optionalOf(lastPass[i]),
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
  auto term = [&](bool drives, const char* column, const char* comparison,
                  std::variant<std::int64_t, std::string> value) {
    if (!where.empty()) where += " AND ";
    if (!drives) where += '+';
    where += column;
    where += comparison;
    where += '?';
    query.params.push_back(std::move(value));
  };
  if (f.memberId) {
    term(driver == Driver::kMember || driver == Driver::kMemberEvent ||
             driver == Driver::kMemberEntity,
         "member_id", " = ", *f.memberId);
  }
  if (f.domain) term(driver == Driver::kDomain, "domain", " = ", *f.domain);
  if (f.event) {
    term(driver == Driver::kEvent || driver == Driver::kMemberEvent, "event", " = ", *f.event);
  }
  if (f.entityId) {
    term(driver == Driver::kEntity || driver == Driver::kMemberEntity, "entity_id", " = ",
         *f.entityId);
  }
  if (f.entityTypeId) term(driver == Driver::kEntityType, "entity_type_id", " = ", *f.entityTypeId);
  if (f.userId) term(driver == Driver::kUser, "user_id", " = ", *f.userId);
  if (f.from) term(driver == Driver::kTs, "ts", " >= ", *f.from);
  if (f.to) term(driver == Driver::kTs, "ts", " <= ", *f.to);
  // Never drives: the partial index events_offline serves source = 'offline' through id.
  if (f.source) term(false, "source", " = ", *f.source);
  // The keyset bound is always present: every index above ends with id, so a page starts with
  // one seek wherever the cursor is, and with no filter at all the rowid itself drives.
  const bool asc = f.order == EventFilter::Order::kAsc;
  term(true, "id", asc ? " > " : " < ",
       f.afterId.value_or(asc ? 0 : std::numeric_limits<std::int64_t>::max()));
  const std::string order = asc ? " ORDER BY id" : " ORDER BY id DESC";
  if (driver == Driver::kTs || driver == Driver::kEntity) {
    // A time window comes out of events_ts in ts order, and one entity_id of every portal out
    // of events_entity_member in member order, so these rows must be sorted by id. Sorting only
    // the ids (read from the index; covering when no other filter is set), then fetching the
    // page's rows by id, costs a fraction of sorting whole rows. INDEXED BY because with a
    // bound LIMIT SQLite otherwise prefers walking the rowid from the cursor, which for a
    // recent window reads the whole table first.
    const char* index = driver == Driver::kTs ? "events_ts" : "events_entity_member";
    query.sql = std::string(kEventColumns) + " WHERE id IN (SELECT id FROM events INDEXED BY " +
                index + " WHERE " + where + order + " LIMIT ?)" + order;
  } else {
    query.sql = std::string(kEventColumns) + " WHERE " + where + order + " LIMIT ?";
  }
  query.params.emplace_back(static_cast<std::int64_t>(f.limit) + 1);
  return query;
}

std::vector<SqlQuery> fixedReaderQueries() {
  return {
      {kEventByIdSql, {std::int64_t{1}}},
      {kAllPortalsSql, {}},
      {kOnePortalSql, {std::string("member")}},
      {kAllTokensSql, {}},
      {kPortalTokensSql, {std::string("member")}},
      {kStatsByEventSql, {}},
      {kStatsByPortalSql, {}},
      {kFirstTsSql, {}},
      {kLastTsSql, {}},
      {kTokenStatesSql, {std::int64_t{0}}},
  };
}

std::vector<std::string> explainQueryPlan(Poco::Data::Session& session, const SqlQuery& query) {
  std::vector<int> id, parent, unused;
  std::vector<std::string> detail;
  Statement statement(session);
  statement << "EXPLAIN QUERY PLAN " + query.sql;
  bindParams(statement, query);
  statement, into(id), into(parent), into(unused), into(detail);
  statement.execute();
  return detail;
}

EventPage SqliteEventReader::queryEvents(const EventFilter& filter) {
  EventPage page;
  try {
    Poco::Data::Session session = pool_.get();
    page.items = selectEvents(session, eventsQuery(filter));
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
  if (page.items.size() > filter.limit) {
    page.items.resize(filter.limit);
    page.nextAfterId = page.items.back().id;
  }
  return page;
}

std::optional<EventRecord> SqliteEventReader::findEvent(std::int64_t id) {
  try {
    Poco::Data::Session session = pool_.get();
    std::vector<EventRecord> rows = selectEvents(session, SqlQuery{kEventByIdSql, {id}});
    if (rows.empty()) return std::nullopt;
    return std::move(rows[0]);
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
}

std::vector<PortalView> SqliteEventReader::portals(const std::optional<std::string>& memberId) {
  SqlQuery portalQuery{memberId ? kOnePortalSql : kAllPortalsSql, {}};
  SqlQuery tokenQuery{memberId ? kPortalTokensSql : kAllTokensSql, {}};
  if (memberId) {
    portalQuery.params.emplace_back(*memberId);
    tokenQuery.params.emplace_back(*memberId);
  }
  std::vector<std::string> member, domain;
  std::vector<Nullable<std::string>> client, server, status, scope;
  std::vector<Nullable<Poco::Int64>> installedAt, uninstalledAt, lastTs;
  std::vector<Poco::Int64> count;
  std::vector<std::pair<std::string, TokenInfo>> tokens;
  std::vector<std::pair<std::string, BindingRecord>> bindings;
  std::vector<std::pair<std::string, OfflineState>> offline;
  try {
    Poco::Data::Session session = pool_.get();
    // One read transaction, so that the counts and the tokens describe the same moment; rolled
    // back on the way out if anything throws, before the session returns to the pool.
    Poco::Data::Transaction transaction(session, true);
    Statement statement(session);
    statement << portalQuery.sql;
    bindParams(statement, portalQuery);
    statement, into(member), into(domain), into(client), into(server), into(status), into(scope),
        into(installedAt), into(uninstalledAt), into(count), into(lastTs);
    statement.execute();
    tokens = selectTokens(session, tokenQuery);
    selectPortalState(session, memberId, bindings, offline);
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
    while (b < bindings.size() && bindings[b].first < v.memberId) ++b;
    while (b < bindings.size() && bindings[b].first == v.memberId) {
      v.bindings.push_back(std::move(bindings[b].second));
      ++b;
    }
    while (o < offline.size() && offline[o].first < v.memberId) ++o;
    if (o < offline.size() && offline[o].first == v.memberId) v.offline = offline[o].second;
  }
  return views;
}

std::vector<PortalView> SqliteEventReader::listPortals() { return portals(std::nullopt); }

std::optional<PortalView> SqliteEventReader::findPortalView(const std::string& memberId) {
  std::vector<PortalView> views = portals(memberId);
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

}  // namespace b24es::sqlite
