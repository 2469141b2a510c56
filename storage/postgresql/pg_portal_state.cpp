#include "pg_portal_state.h"

#include <set>

#include "pg_counters.h"
#include "pg_json_text.h"

namespace b24es::pg {
namespace {

// "{1,2,3}": a bigint[] literal, built from numbers only.
std::string arrayLiteral(const std::vector<std::int64_t>& ids) {
  std::string s = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s + "}";
}

// A bigint[] as PostgreSQL prints it ("{1,2,3}"). A damaged note yields no ids: cleared with
// none it clears the whole reservation, which is what its process_id names anyway.
std::vector<std::int64_t> idsOf(const std::string& text) {
  std::vector<std::int64_t> ids;
  std::string digits;
  for (char ch : text) {
    if ((ch >= '0' && ch <= '9') || ch == '-') {
      digits += ch;
    } else if (!digits.empty()) {
      try {
        ids.push_back(std::stoll(digits));
      } catch (const std::exception&) {
        return {};
      }
      digits.clear();
    }
  }
  return ids;
}

constexpr const char* kInsertOfflineSql =
    "INSERT INTO events(member_id, domain, event, ts, received_at, user_id, entity_id, "
    "entity_type_id, data, source, offline_id, message_id, data_json) "
    "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, 'offline', $10, $11, $12::json) "
    "ON CONFLICT (member_id, offline_id) WHERE offline_id IS NOT NULL DO NOTHING RETURNING id";

}  // namespace

std::vector<PortalRecord> PgPortalStateStore::installedPortals(
    const std::optional<std::string>& memberId) {
  Pool::Lease c = pool_.get();
  Result r = c->query(
      "SELECT member_id, domain, client_endpoint, server_endpoint, status, scope, installed_at "
      "FROM portals WHERE installed_at IS NOT NULL AND uninstalled_at IS NULL "
      "AND ($1::text IS NULL OR member_id = $1) ORDER BY member_id",
      Params().add(memberId));
  std::vector<PortalRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    PortalRecord p;
    p.memberId = r.text(i, 0);
    p.domain = r.text(i, 1);
    p.clientEndpoint = r.optionalText(i, 2).value_or("");
    p.serverEndpoint = r.optionalText(i, 3).value_or("");
    p.status = r.optionalText(i, 4).value_or("");
    p.scope = r.optionalText(i, 5).value_or("");
    p.installedAt = r.optionalInteger(i, 6);
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<BindingRecord> PgPortalStateStore::bindings(const std::string& memberId) {
  Pool::Lease c = pool_.get();
  Result r = c->query(
      "SELECT event, type, state, error, updated_at FROM bindings WHERE member_id = $1 "
      "ORDER BY event, type",
      Params().add(memberId));
  std::vector<BindingRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(BindingRecord{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.optionalText(i, 3),
                                r.integer(i, 4)});
  }
  return out;
}

void PgPortalStateStore::recordBinding(const std::string& memberId, const BindingRecord& b) {
  Pool::Lease c = pool_.get();
  c->query(
      "INSERT INTO bindings(member_id, event, type, state, error, updated_at) "
      "VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT(member_id, event, type) DO UPDATE "
      "SET state = excluded.state, error = excluded.error, updated_at = excluded.updated_at",
      Params().add(memberId).add(b.event).add(b.type).add(b.state).add(b.error).add(b.updatedAt));
}

void PgPortalStateStore::removeBinding(const std::string& memberId, const std::string& event,
                                       const std::string& type) {
  Pool::Lease c = pool_.get();
  c->query("DELETE FROM bindings WHERE member_id = $1 AND event = $2 AND type = $3",
           Params().add(memberId).add(event).add(type));
}

OfflineState PgPortalStateStore::offlineState(const std::string& memberId) {
  Pool::Lease c = pool_.get();
  Result r = c->query(
      "SELECT mode, last_pass_at, last_error, fetched FROM offline_state WHERE member_id = $1",
      Params().add(memberId));
  OfflineState state;
  if (r.rows()) {
    state.mode = r.text(0, 0);
    state.lastPassAt = r.optionalInteger(0, 1);
    state.lastError = r.optionalText(0, 2);
    state.fetched = r.integer(0, 3);
  }
  return state;
}

void PgPortalStateStore::setOfflineMode(const std::string& memberId, const std::string& mode) {
  Pool::Lease c = pool_.get();
  c->query(
      "INSERT INTO offline_state(member_id, mode) VALUES($1, $2) "
      "ON CONFLICT(member_id) DO UPDATE SET mode = excluded.mode",
      Params().add(memberId).add(mode));
}

void PgPortalStateStore::recordOfflinePass(const std::string& memberId,
                                           const std::optional<std::string>& error,
                                           std::int64_t nowSeconds) {
  Pool::Lease c = pool_.get();
  c->query(
      "INSERT INTO offline_state(member_id, last_pass_at, last_error) VALUES($1, $2, $3) "
      "ON CONFLICT(member_id) DO UPDATE SET last_pass_at = excluded.last_pass_at, "
      "last_error = excluded.last_error",
      Params().add(memberId).add(nowSeconds).add(error));
}

std::size_t PgPortalStateStore::storeOfflineBatch(const std::string& memberId,
                                                  const std::string& processId,
                                                  const std::vector<OfflineEvent>& records,
                                                  std::int64_t nowMillis) {
  Pool::Lease c = pool_.get();
  // The portal's advisory lock first (pg_counters.h: the writers' lock order): two receivers
  // pulling this portal at once take turns here, so the second sees what the first stored, and
  // the counters count each record once. The commit-order lock comes last, right before the
  // rows take their ids, and is held until COMMIT like the writer's (the stream cursor).
  Transaction tx(*c);
  c->query("SELECT pg_advisory_xact_lock($1)", Params().add(portalLockKey(memberId)));
  std::vector<std::int64_t> offlineIds;
  for (const OfflineEvent& r : records) offlineIds.push_back(r.offlineId);
  Result present = c->query(
      "SELECT offline_id FROM events WHERE member_id = $1 AND offline_id = ANY($2::bigint[])",
      Params().add(memberId).add(arrayLiteral(offlineIds)));
  std::set<std::int64_t> stored;
  for (int i = 0; i < present.rows(); ++i) stored.insert(present.integer(i, 0));
  std::vector<const OfflineEvent*> fresh;
  CounterChanges counters;
  for (const OfflineEvent& r : records) {
    // A record handed out twice in one batch is stored once, too.
    if (!stored.insert(r.offlineId).second) continue;
    fresh.push_back(&r);
    counters.add(memberId, r.event.event, nowMillis, 1);
  }
  counters.flush(*c);
  std::size_t inserted = 0;
  if (!fresh.empty()) {
    c->query("SELECT pg_advisory_xact_lock($1)", Params().add(kCommitOrderLockKey));
    for (const OfflineEvent* r : fresh) {
      const IncomingEvent& e = r->event;
      Params p;
      p.add(memberId).textOrNull(e.domain).add(e.event).add(e.ts).add(nowMillis).add(e.userId);
      // data_json only for data that jsonb cannot hold (pg_json_text.h, migration 0005).
      const std::optional<std::string> safe = jsonbCompatible(e.dataJson);
      p.add(e.entityId).add(e.entityTypeId).add(safe ? *safe : e.dataJson);
      p.add(r->offlineId).add(r->messageId);
      p.add(safe ? std::optional<std::string>(e.dataJson) : std::nullopt);
      // ON CONFLICT as the last word on "stored once" (the unique index of 0004); under the
      // portal lock it never fires, so the counters above are exact.
      inserted += static_cast<std::size_t>(c->query(kInsertOfflineSql, p).rows());
    }
  }
  if (!processId.empty()) {
    c->query(
        "INSERT INTO offline_batches(member_id, process_id, ids, noted_at) "
        "VALUES($1, $2, $3::bigint[], $4) ON CONFLICT(member_id, process_id) DO UPDATE "
        "SET ids = excluded.ids, noted_at = excluded.noted_at",
        Params().add(memberId).add(processId).add(arrayLiteral(offlineIds)).add(nowMillis / 1000));
  }
  c->query(
      "INSERT INTO offline_state(member_id, fetched) VALUES($1, $2) "
      "ON CONFLICT(member_id) DO UPDATE SET fetched = offline_state.fetched + excluded.fetched",
      Params().add(memberId).add(static_cast<std::int64_t>(inserted)));
  tx.commit();
  return inserted;
}

std::vector<OfflineNote> PgPortalStateStore::offlineNotes(const std::string& memberId) {
  Pool::Lease c = pool_.get();
  Result r = c->query(
      "SELECT process_id, ids::text FROM offline_batches WHERE member_id = $1 "
      "ORDER BY noted_at, process_id",
      Params().add(memberId));
  std::vector<OfflineNote> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(OfflineNote{r.text(i, 0), idsOf(r.text(i, 1))});
  return out;
}

void PgPortalStateStore::dropOfflineNote(const std::string& memberId,
                                         const std::string& processId) {
  Pool::Lease c = pool_.get();
  c->query("DELETE FROM offline_batches WHERE member_id = $1 AND process_id = $2",
           Params().add(memberId).add(processId));
}

}  // namespace b24es::pg
