#include "pg_event_sink.h"

#include <Poco/DigestEngine.h>
#include <Poco/Logger.h>
#include <Poco/MD5Engine.h>

#include <pthread.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

#include "pg_counters.h"
#include "pg_json_text.h"
#include "pg_migrator.h"

namespace b24es::pg {
namespace {

constexpr int kDeadlockRetries = 3;
constexpr std::int64_t kNewPortalWindowSeconds = 3600;
// How long minute and hour buckets are kept (as SQLite's).
constexpr std::int64_t kMinuteBucketKeepSeconds = 7 * 86400;
constexpr std::int64_t kHourBucketKeepSeconds = 90 * 86400;

// Advisory lock keys (pg_advisory_xact_lock), constants of this program: ASCII "b24es-np"
// (new portals) and "b24es-id" (commit order, kCommitOrderLockKey, in kInsertEventsHead).
// Portal keys: portalLockKey().
constexpr const char* kNewPortalLock = "SELECT pg_advisory_xact_lock(7102601135318347376)";

constexpr const char* kSelectPortalBatchSql =
    "SELECT id, received_at FROM events WHERE member_id = $1 AND id > $2 AND id < $3 "
    "ORDER BY id LIMIT $4";
constexpr const char* kSelectOldestBatchSql =
    "SELECT id, received_at FROM events WHERE id > $1 ORDER BY id LIMIT $2";

constexpr const char* kInsertEventsHead =
    "WITH commit_order AS MATERIALIZED (SELECT pg_advisory_xact_lock(7102601135318346084)) "
    "INSERT INTO events(member_id, domain, event, event_handler_id, event_id, ts, received_at, "
    "user_id, entity_id, entity_type_id, data, data_json) SELECT v.* FROM commit_order, (VALUES ";
constexpr const char* kInsertEventsTail =
    ") AS v(member_id, domain, event, event_handler_id, event_id, ts, received_at, user_id, "
    "entity_id, entity_type_id, data, data_json) RETURNING id";
constexpr int kEventParams = 12;
// The columns' types: VALUES in a subquery does not take them from the target table.
constexpr const char* kEventCasts[kEventParams] = {"::text",   "::text",   "::text",   "::bigint",
                                                   "::text",   "::bigint", "::bigint", "::bigint",
                                                   "::bigint", "::bigint", "::jsonb",  "::json"};

constexpr const char* kRejectionCasts[7] = {"::bigint", "::text", "::integer", "::text",
                                            "::text",   "::text", "::text"};

// Class 08 (connection), 53 (resources: disk full, out of memory), 57 (operator intervention:
// shutdown), 58 (system error), and no SQLSTATE at all (the connection broke): no event of a
// batch can be written, so retrying them one by one is pointless.
bool storageWide(const std::string& sqlstate) {
  if (sqlstate.size() < 2) return true;
  const std::string cls = sqlstate.substr(0, 2);
  return cls == "08" || cls == "53" || cls == "57" || cls == "58" || cls == "25";
}

}  // namespace

std::vector<std::pair<std::string, Params>> purgeQueries() {
  return {
      {kSelectPortalBatchSql,
       Params().add("member").add(std::int64_t{0}).add(std::int64_t{100}).add(std::int64_t{1000})},
      {kSelectOldestBatchSql, Params().add(std::int64_t{0}).add(std::int64_t{1000})}};
}

// The connection and what one batch writes. Used only by the writer thread.
class PgEventSink::Writer {
 public:
  Writer(const PgSettings& settings, const Clock& clock, const SinkSettings& sinkSettings)
      : c(settings), clock_(clock), sink_(sinkSettings) {}

  // Begins a transaction and applies batch[from, to) in it; sets each outcome but the stored
  // events' ids, which commit() reads. What the batch writes is queued, not sent: commit()
  // sends it with the COMMIT in one round trip. Throws PgError.
  void applyBatch(std::vector<Pending*>& batch, std::size_t from, std::size_t to,
                  const Verifier& verifier) {
    portals_.clear();
    grants_.clear();
    counters_.clear();
    cleanups_.clear();
    writes_.clear();
    stored_.clear();
    cleanup_.clear();
    insertAt_.reset();
    installLocked_ = false;
    if (from == to) {  // rejections alone: no portal to lock
      writes_.add("BEGIN");
      return;
    }
    beginLocked(batch, from, to);
    std::vector<std::int64_t> receivedAt;
    for (std::size_t i = from; i < to; ++i) {
      const IncomingEvent& e = *batch[i]->event;
      std::int64_t received = 0;
      bool clean = false;
      batch[i]->outcome = apply(e, verifier, received, clean);
      if (batch[i]->outcome.status == IngestOutcome::Status::kStored) {
        stored_.push_back(batch[i]);
        receivedAt.push_back(received);
        cleanup_.push_back(clean);
      }
    }
    counters_.flush(writes_);
    if (stored_.empty()) return;
    // Ids are taken under the commit-order lock, held until COMMIT (see the header). One
    // statement: the lock is in a MATERIALIZED CTE that the rows are joined with, so it is
    // granted before the first row (and its nextval) comes out of the join. It is the last
    // lock the batch takes (pg_counters.h): the token, portal and counter rows were locked by
    // the statements queued before it, which the server runs first.
    Params params;
    for (std::size_t k = 0; k < stored_.size(); ++k) {
      const IncomingEvent& e = *stored_[k]->event;
      params.add(e.memberId).textOrNull(e.domain).add(e.event).add(e.eventHandlerId);
      params.add(e.eventId).add(e.ts).add(receivedAt[k]).add(e.userId).add(e.entityId);
      params.add(e.entityTypeId);
      // data_json only for data that jsonb cannot hold (pg_json_text.h, migration 0005).
      if (std::optional<std::string> safe = jsonbCompatible(e.dataJson)) {
        params.add(*safe).add(e.dataJson);
      } else {
        params.add(e.dataJson).add(std::optional<std::string>());
      }
    }
    insertAt_ = writes_.add(std::string(kInsertEventsHead) +
                                placeholders(stored_.size(), kEventParams, -1, "", 0, kEventCasts) +
                                kInsertEventsTail,
                            std::move(params));
  }

  // Sends what applyBatch() and insertRejections() queued, and COMMIT, in one pipeline; then
  // gives the stored events their ids. Any failure (the server skips the rest, COMMIT
  // included) throws PgError with the transaction still open in the failed state, as a
  // statement run on its own would have left it.
  void commit() {
    writes_.add("COMMIT");
    std::vector<Result> results = c.pipeline(writes_);
    writes_.clear();
    if (!insertAt_) return;
    const Result& ids = results[*insertAt_];
    // The rows of one INSERT take their ids in the order of its VALUES list; RETURNING's order
    // is not promised, so the ids are sorted rather than read in the order they come.
    std::vector<std::int64_t> assigned;
    for (int r = 0; r < ids.rows(); ++r) assigned.push_back(ids.integer(r, 0));
    std::sort(assigned.begin(), assigned.end());
    if (assigned.size() != stored_.size()) {
      throw StorageError("the events INSERT returned " + std::to_string(assigned.size()) +
                         " ids for " + std::to_string(stored_.size()) + " rows");
    }
    for (std::size_t k = 0; k < stored_.size(); ++k) {
      stored_[k]->outcome.id = assigned[k];
      if (cleanup_[k]) {
        PurgeRequest earlier;
        earlier.memberId = stored_[k]->event->memberId;
        earlier.beforeId = assigned[k];  // the uninstall event itself stays
        cleanups_.push_back(std::move(earlier));
      }
    }
  }

  std::vector<PurgeRequest> takeCleanups() { return std::move(cleanups_); }

  // Queues the INSERT of `rejections` (one statement) and the trim of the table to the newest
  // `keep`, by an id range of the primary key: the ids at or below (this insert's newest -
  // keep). The newest is currval() of the identity's sequence, this session's last nextval,
  // so the DELETE needs nothing back from the INSERT and both ride in commit()'s pipeline.
  // Ids come from one sequence for every receiver, so the range is right across them too (a
  // gap from a rolled-back insert keeps a few rows fewer). Returns how many are written.
  std::size_t insertRejections(const std::vector<RejectionRecord>& rejections, std::size_t keep) {
    if (rejections.empty()) return 0;
    Params params;
    for (const RejectionRecord& r : rejections) {
      params.add(r.receivedAt).add(r.clientAddr).add(std::int64_t{r.status}).add(r.error);
      params.add(r.event).add(r.memberId).add(r.domain);
    }
    writes_.add(
        "INSERT INTO rejections(received_at, client_addr, status, error, event, member_id, "
        "domain) VALUES " +
            placeholders(rejections.size(), 7, -1, "", 0, kRejectionCasts),
        std::move(params));
    writes_.add(
        "DELETE FROM rejections WHERE id <= currval(pg_get_serial_sequence('rejections', 'id')) - "
        "$1",
        Params().add(static_cast<std::int64_t>(keep)));
    return rejections.size();
  }

  // One purge transaction: deletes (or counts) at most `limit` of the events `job` selects
  // after its cursor, and prunes timeline buckets; true when nothing is left.
  bool purgeBatch(PurgeJob& job, int limit) {
    const PurgeRequest& r = job.request;
    Transaction tx(c);
    counters_.clear();
    bool finished = true;
    if (r.memberId || r.receivedBefore) {
      Result rows =
          r.memberId
              ? c.query(kSelectPortalBatchSql,
                        Params()
                            .add(*r.memberId)
                            .add(job.cursor)
                            .add(r.beforeId.value_or(std::numeric_limits<std::int64_t>::max()))
                            .add(std::int64_t{limit}))
              : c.query(kSelectOldestBatchSql, Params().add(job.cursor).add(std::int64_t{limit}));
      std::vector<std::int64_t> ids;
      bool cut = false;
      for (int i = 0; i < rows.rows(); ++i) {
        // Ids grow with received time (README: retention), so the first event received after
        // the cut ends a time purge.
        if (r.receivedBefore && !r.memberId && rows.integer(i, 1) >= *r.receivedBefore) {
          cut = true;
          break;
        }
        ids.push_back(rows.integer(i, 0));
      }
      if (!ids.empty()) job.cursor = ids.back();
      if (r.dryRun) {
        job.deleted += static_cast<std::int64_t>(ids.size());
      } else if (!ids.empty()) {
        // The rows this transaction really deleted: another receiver's purge may have taken
        // some, and its counters went with them.
        std::string list = "{";
        for (std::size_t i = 0; i < ids.size(); ++i) {
          if (i) list += ',';
          list += std::to_string(ids[i]);
        }
        list += "}";
        Result gone = c.query(
            "DELETE FROM events WHERE id = ANY($1::bigint[]) RETURNING member_id, event, "
            "received_at",
            Params().add(list));
        for (int i = 0; i < gone.rows(); ++i) {
          count(gone.text(i, 0), gone.text(i, 1), gone.integer(i, 2), -1);
        }
        job.deleted += gone.rows();
      }
      finished = cut || rows.rows() < limit;
    }
    if (finished && r.pruneTimelineAt && !r.dryRun) {
      Result pruned = c.query(
          "DELETE FROM event_buckets WHERE (width, member_id, start, event) IN "
          "(SELECT width, member_id, start, event FROM event_buckets "
          "WHERE (width = 60 AND start < $1) OR (width = 3600 AND start < $2) LIMIT $3)",
          Params()
              .add(*r.pruneTimelineAt - kMinuteBucketKeepSeconds)
              .add(*r.pruneTimelineAt - kHourBucketKeepSeconds)
              .add(std::int64_t{limit}));
      finished = pruned.affected() < limit;
    }
    flushCounters();
    tx.commit();
    return finished;
  }

  Connection c;

 private:
  // Begins the transaction and locks the batch's portals: advisory locks in key order, then
  // the rows FOR UPDATE, in one pipeline (one round trip). The lock keys are numbers made here,
  // so that text holds no input; it varies with the batch's portals, so it is not prepared. The
  // SELECT is a statement of its own: at READ COMMITTED each statement takes its snapshot when
  // it starts, and in a pipeline the server starts it only after the one before it (the locks)
  // has finished, so the rows read show what the locks' last holder committed.
  void beginLocked(const std::vector<Pending*>& batch, std::size_t from, std::size_t to) {
    std::set<std::string> members;
    for (std::size_t i = from; i < to; ++i) members.insert(batch[i]->event->memberId);
    std::set<std::int64_t> keys;
    for (const std::string& m : members) keys.insert(portalLockKey(m));
    std::string locks = "SELECT ";
    for (auto k = keys.begin(); k != keys.end(); ++k) {
      // The target list is evaluated left to right: the locks are taken in key order, the same
      // order in every receiver, so two batches never wait for each other in a circle.
      locks += (k == keys.begin() ? "" : ", ") + std::string("pg_advisory_xact_lock(") +
               std::to_string(*k) + ")";
    }
    Params params;
    std::string in;
    int n = 0;
    for (const std::string& m : members) {
      params.add(m);
      ++n;
      in += (n > 1 ? ", $" : "$") + std::to_string(n);
    }
    Statements begin;
    begin.add("BEGIN");
    begin.add(std::move(locks), {}, false);
    const std::size_t select = begin.add(
        "SELECT member_id, application_token, installed_at, uninstalled_at FROM portals "
        "WHERE member_id IN (" +
            in + ") ORDER BY member_id FOR UPDATE",
        std::move(params));
    std::vector<Result> results = c.pipeline(begin);
    const Result& rows = results[select];
    for (const std::string& m : members) portals_[m] = std::nullopt;
    for (int i = 0; i < rows.rows(); ++i) portals_[rows.text(i, 0)] = portalOf(rows, i);
  }

  static PortalRecord portalOf(const Result& r, int i) {
    PortalRecord p;
    p.memberId = r.text(i, 0);
    p.applicationToken = r.optionalText(i, 1);
    p.installedAt = r.optionalInteger(i, 2);
    p.uninstalledAt = r.optionalInteger(i, 3);
    return p;
  }

  // After a statement that changed the portal row (rare: install, uninstall, first event of
  // a static-token portal): the row as it now is, for the batch's next events.
  void reloadPortal(const std::string& memberId) {
    Result rows = read(
        "SELECT member_id, application_token, installed_at, uninstalled_at FROM portals "
        "WHERE member_id = $1",
        Params().add(memberId));
    portals_[memberId] =
        rows.rows() ? std::optional<PortalRecord>(portalOf(rows, 0)) : std::nullopt;
    grants_.clear();
  }

  IngestOutcome apply(const IncomingEvent& e, const Verifier& verifier, std::int64_t& received,
                      bool& clean) {
    const std::optional<PortalRecord> portal = portals_[e.memberId];
    const Verdict verdict = verifier(e, portal);
    const std::int64_t nowSec = clock_.nowSeconds();
    switch (verdict.action) {
      case Verdict::Action::kReject:
        return IngestOutcome{IngestOutcome::Status::kRejected, 0, verdict.reason};
      case Verdict::Action::kInstall:
        if (!portal) {
          if (std::optional<std::int64_t> wait = newPortalWait(nowSec)) {
            return IngestOutcome{IngestOutcome::Status::kLimited, 0,
                                 "ingest.max_new_portals portals were registered in the last "
                                 "hour",
                                 *wait};
          }
        }
        // installed_at keeps the first install time while the portal stays installed.
        write(
            "INSERT INTO portals(member_id, domain, client_endpoint, server_endpoint, "
            "application_token, status, scope, installed_at, uninstalled_at, updated_at) "
            "VALUES($1, $2, $3, $4, $5, $6, $7, $8, NULL, $8) "
            "ON CONFLICT(member_id) DO UPDATE SET domain = excluded.domain, "
            "client_endpoint = excluded.client_endpoint, "
            "server_endpoint = excluded.server_endpoint, "
            "application_token = excluded.application_token, "
            "status = excluded.status, scope = excluded.scope, "
            "installed_at = CASE WHEN portals.installed_at IS NULL "
            "OR portals.uninstalled_at IS NOT NULL THEN excluded.installed_at "
            "ELSE portals.installed_at END, "
            "uninstalled_at = NULL, updated_at = excluded.updated_at",
            portalParams(e).add(e.applicationToken).add(e.status).add(e.scope).add(nowSec));
        // Install tokens replace whatever was stored: a reinstall starts a new authorization.
        for (const TokenGrant& t : e.tokens) {
          write(
              "INSERT INTO tokens(member_id, user_id, access_token, refresh_token, "
              "expires_at, refresh_token_at, scope, source, updated_at, from_install) "
              "VALUES($1, $2, $3, $4, $5, $6, $7, 'install', $8, 1) "
              "ON CONFLICT(member_id, user_id) DO UPDATE SET "
              "access_token = excluded.access_token, refresh_token = excluded.refresh_token, "
              "expires_at = excluded.expires_at, refresh_token_at = excluded.refresh_token_at, "
              "scope = excluded.scope, source = 'install', updated_at = excluded.updated_at, "
              "last_refresh_error = NULL, refresh_failures = 0, refresh_dead_at = NULL, "
              "from_install = 1",
              tokenParams(e.memberId, t, nowSec));
        }
        reloadPortal(e.memberId);
        break;
      case Verdict::Action::kStoreAndCreatePortal:
        createPortal(e, nowSec);
        reloadPortal(e.memberId);
        for (const TokenGrant& t : e.tokens) applyEventToken(e.memberId, t, nowSec);
        break;
      case Verdict::Action::kStore:
        for (const TokenGrant& t : e.tokens) applyEventToken(e.memberId, t, nowSec);
        break;
      case Verdict::Action::kRotate:
        // app.info confirmed the new token (the lifecycle verifier); the row is locked FOR
        // UPDATE, so a rotation at another receiver is decided on this one's result.
        write("UPDATE portals SET application_token = $2, updated_at = $3 WHERE member_id = $1",
              Params().add(e.memberId).add(e.applicationToken).add(nowSec));
        reloadPortal(e.memberId);
        for (const TokenGrant& t : e.tokens) applyEventToken(e.memberId, t, nowSec);
        break;
      case Verdict::Action::kUninstall:
        createPortal(e, nowSec);  // a portal known only through a static token
        write(
            "UPDATE portals SET uninstalled_at = $2, application_token = NULL, "
            "updated_at = $2 WHERE member_id = $1",
            Params().add(e.memberId).add(nowSec));
        write("DELETE FROM tokens WHERE member_id = $1", Params().add(e.memberId));
        if (e.clean && sink_.purgeOnClean) {
          // SPEC §9's bindings go with CLEAN=1, and with them what the store knew of the
          // portal's offline queue (0004): its mode and the notes of batches not yet cleared.
          write("DELETE FROM bindings WHERE member_id = $1", Params().add(e.memberId));
          write("DELETE FROM offline_state WHERE member_id = $1", Params().add(e.memberId));
          write("DELETE FROM offline_batches WHERE member_id = $1", Params().add(e.memberId));
          clean = true;
        }
        reloadPortal(e.memberId);
        break;
    }
    received = clock_.nowMillis();
    count(e.memberId, e.event, received, 1);
    return IngestOutcome{IngestOutcome::Status::kStored, 0, {}};
  }

  static Params portalParams(const IncomingEvent& e) {
    Params p;
    p.add(e.memberId).add(e.domain).textOrNull(e.clientEndpoint).textOrNull(e.serverEndpoint);
    return p;
  }

  void createPortal(const IncomingEvent& e, std::int64_t nowSec) {
    write(
        "INSERT INTO portals(member_id, domain, client_endpoint, server_endpoint, status, "
        "scope, updated_at) VALUES($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT(member_id) DO NOTHING",
        portalParams(e).textOrNull(e.status).textOrNull(e.scope).add(nowSec));
  }

  static Params tokenParams(const std::string& memberId, const TokenGrant& t, std::int64_t nowSec) {
    Params p;
    p.add(memberId).add(t.userId).add(t.accessToken).add(t.refreshToken).add(t.expiresAt);
    if (t.refreshToken) {
      p.add(nowSec);
    } else {
      p.nullValue();
    }
    return p.add(t.scope).add(nowSec);
  }

  // An event's token replaces the stored one only when it expires later, and keeps the stored
  // refresh token when the event carries none. Skipped when this transaction already applied
  // the same grant with an expiry to the same row (it would fail the WHERE and change nothing).
  void applyEventToken(const std::string& memberId, const TokenGrant& t, std::int64_t nowSec) {
    const bool repeatable = t.expiresAt.has_value();
    auto key = std::make_pair(memberId, t.userId);
    auto last = grants_.find(key);
    if (repeatable && last != grants_.end() && sameGrant(last->second, t)) return;
    write(
        "INSERT INTO tokens(member_id, user_id, access_token, refresh_token, "
        "expires_at, refresh_token_at, scope, source, updated_at) "
        "VALUES($1, $2, $3, $4, $5, $6, $7, 'event', $8) "
        "ON CONFLICT(member_id, user_id) DO UPDATE SET "
        "access_token = excluded.access_token, "
        "refresh_token = COALESCE(excluded.refresh_token, tokens.refresh_token), "
        "refresh_token_at = CASE WHEN excluded.refresh_token IS NULL "
        "THEN tokens.refresh_token_at ELSE excluded.refresh_token_at END, "
        "expires_at = excluded.expires_at, "
        "scope = COALESCE(NULLIF(excluded.scope, ''), tokens.scope), "
        "source = 'event', updated_at = excluded.updated_at, "
        // A new refresh token revives a row Bitrix24 had declared dead.
        "refresh_dead_at = CASE WHEN excluded.refresh_token IS NULL "
        "THEN tokens.refresh_dead_at ELSE NULL END "
        "WHERE tokens.expires_at IS NULL OR excluded.expires_at > tokens.expires_at",
        tokenParams(memberId, t, nowSec));
    if (!repeatable) {
      if (last != grants_.end()) grants_.erase(last);
    } else if (last != grants_.end()) {
      last->second = t;
    } else {
      grants_.emplace(std::move(key), t);
    }
  }

  static bool sameGrant(const TokenGrant& a, const TokenGrant& b) {
    return a.userId == b.userId && a.accessToken == b.accessToken &&
           a.refreshToken == b.refreshToken && a.expiresAt == b.expiresAt && a.scope == b.scope;
  }

  // nullopt when one more portal may be registered now; else the seconds until the window has
  // room (at least 1). Under the new-portal lock, held to COMMIT, so the count includes every
  // receiver's committed installs and this transaction's own.
  std::optional<std::int64_t> newPortalWait(std::int64_t nowSec) {
    if (!installLocked_) {
      sendWrites();
      c.exec(kNewPortalLock);
      installLocked_ = true;
    }
    const std::int64_t since = nowSec - kNewPortalWindowSeconds;
    const std::int64_t n =
        read("SELECT count(*) FROM portals WHERE installed_at > $1", Params().add(since))
            .integer(0, 0);
    const auto limit = static_cast<std::int64_t>(sink_.maxNewPortalsPerHour);
    if (n < limit) return std::nullopt;
    std::int64_t wait = kNewPortalWindowSeconds;
    if (limit > 0) {
      Result freeing = read(
          "SELECT installed_at FROM portals WHERE installed_at > $1 "
          "ORDER BY installed_at LIMIT 1 OFFSET $2",
          Params().add(since).add(n - limit));
      if (freeing.rows()) {
        wait = freeing.optionalInteger(0, 0).value_or(nowSec) + kNewPortalWindowSeconds - nowSec;
      }
    }
    return std::max<std::int64_t>(1, wait);
  }

  void count(const std::string& memberId, const std::string& event, std::int64_t receivedMillis,
             std::int64_t delta) {
    counters_.add(memberId, event, receivedMillis, delta);
  }
  void flushCounters() { counters_.flush(c); }

  // A statement of the batch whose result is not looked at: queued for commit()'s pipeline.
  void write(std::string sql, Params params) { writes_.add(std::move(sql), std::move(params)); }
  // A statement whose result the batch needs now (rare: after an install, a rotation or an
  // uninstall, and the new-portal limit): what was queued goes first, in order, in one
  // pipeline, so that the read sees it.
  Result read(const std::string& sql, const Params& params) {
    sendWrites();
    return c.query(sql, params);
  }
  void sendWrites() {
    c.pipeline(writes_);
    writes_.clear();
  }

  const Clock& clock_;
  const SinkSettings& sink_;
  // What this transaction read or wrote, reset at its start.
  std::unordered_map<std::string, std::optional<PortalRecord>> portals_;  // by member_id
  std::map<std::pair<std::string, std::int64_t>, TokenGrant> grants_;     // by (member, user)
  CounterChanges counters_;
  std::vector<PurgeRequest> cleanups_;
  bool installLocked_ = false;
  Statements writes_;                    // sent by commit() (or by read(), earlier)
  std::vector<Pending*> stored_;         // the events the INSERT writes, in its order
  std::vector<bool> cleanup_;            // per stored_: an uninstall with CLEAN=1
  std::optional<std::size_t> insertAt_;  // the INSERT's index in writes_
};

PgEventSink::PgEventSink(const PgSettings& settings, const Clock& clock, Verifier verifier,
                         const SinkSettings& sinkSettings, std::shared_ptr<HealthBoard> board,
                         int schemaVersion)
    : GroupCommitSink(clock, sinkSettings),
      settings_(settings),
      verifier_(std::move(verifier)),
      board_(std::move(board)),
      schemaVersion_(schemaVersion) {
  writer_ = std::make_unique<Writer>(settings_, clock_, sinkSettings_);
  const int version = appliedVersion(writer_->c);
  if (schemaVersion_ > 0 && version != schemaVersion_) {
    board_->set(StorageHealth{false,
                              "the database schema is at version " + std::to_string(version) +
                                  "; this binary expects " + std::to_string(schemaVersion_),
                              clock_.nowMillis()});
  }
  startWriter();
}

PgEventSink::~PgEventSink() { close(); }

void PgEventSink::commitRejections(std::vector<RejectionRecord>& rejections) {
  // While faulted, the events' commits and the probe decide when the store works again;
  // rejections wait for no one and are dropped.
  if (faulted_) return dropRejections(rejections);
  std::vector<Pending*> none;
  std::string error;
  bool wide = false;
  if (!commitRange(none, 0, 0, rejections, error, wide)) {
    storageLog().warning("rejections not recorded: %s", error);
    dropRejections(rejections);
  }
}

bool PgEventSink::ensureWriter() {
  if (writer_ && writer_->c.ok()) return true;
  writer_.reset();
  try {
    writer_ = std::make_unique<Writer>(settings_, clock_, sinkSettings_);
    return true;
  } catch (const std::exception& e) {
    enterFault(e.what());
    return false;
  }
}

bool PgEventSink::commitRange(std::vector<Pending*>& batch, std::size_t from, std::size_t to,
                              std::vector<RejectionRecord>& rejections, std::string& error,
                              bool& wide) {
  for (int attempt = 0;; ++attempt) {
    if (!ensureWriter()) {
      error = problem_;
      wide = true;
      return false;
    }
    try {
      // Two round trips for a batch: BEGIN with the portal locks and rows, then everything it
      // writes with COMMIT (more only when an install, a rotation or an uninstall must read
      // back what it wrote).
      writer_->applyBatch(batch, from, to, verifier_);
      const std::size_t written =
          writer_->insertRejections(rejections, sinkSettings_.keepRejections);
      writer_->commit();
      queueCleanups(writer_->takeCleanups());
      for (std::size_t i = from; i < to; ++i) {
        highestId_ = std::max(highestId_, batch[i]->outcome.id);
      }
      if (!rejections.empty() && sinkSettings_.onRejections) {
        sinkSettings_.onRejections(written, rejections.size() - written);
      }
      rejections.clear();
      return true;
    } catch (const PgError& e) {
      writer_->c.rollbackQuietly();
      // Two receivers' batches can still meet in a circle on rows outside the portal locks
      // (the token store's); PostgreSQL breaks it by failing one, which simply runs again.
      if (e.retryable() && attempt < kDeadlockRetries) continue;
      error = e.what();
      wide = storageWide(e.sqlstate());
      return false;
    } catch (const std::exception& e) {
      writer_->c.rollbackQuietly();
      error = e.what();
      wide = false;
      return false;
    }
  }
}

void PgEventSink::commitGroup(Group& group, std::vector<RejectionRecord>& rejections) {
  std::vector<Pending*>& batch = group.items;
  std::string error;
  bool wide = false;
  if (commitRange(batch, 0, batch.size(), rejections, error, wide)) return leaveFault();
  for (Pending* p : batch) p->outcome = unavailable(error);
  if (batch.size() == 1 || wide) {
    dropRejections(rejections);
    return enterFault("a commit failed: " + error);
  }
  // One event that cannot be written must not take its neighbours down with it.
  std::size_t failed = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    std::string one;
    bool oneWide = false;
    // The rejections ride with the first of these transactions that commits.
    if (!commitRange(batch, i, i + 1, rejections, one, oneWide)) {
      batch[i]->outcome = unavailable(one);
      ++failed;
      storageLog().error("commit failed for one %s event: %s", batch[i]->event->event, one);
      error = one;
    }
  }
  dropRejections(rejections);  // none committed
  if (failed == batch.size()) return enterFault("a commit failed: " + error);
  leaveFault();
}

bool PgEventSink::canPurge() { return !faulted_; }

bool PgEventSink::purgeBatch(PurgeJob& job, std::size_t limit) {
  if (!ensureWriter()) throw StorageError(problem_);
  try {
    return writer_->purgeBatch(job, static_cast<int>(limit));
  } catch (...) {
    if (writer_) writer_->c.rollbackQuietly();
    throw;
  }
}

void PgEventSink::closeBackend() { writer_.reset(); }

void PgEventSink::tick() {
  // Without traffic nothing else would find out that the server is back: a small transaction
  // once a second while faulted.
  if (!faulted_) return;
  if (!ensureWriter()) return;
  try {
    Transaction tx(writer_->c);
    writer_->c.exec("SELECT 1");
    tx.commit();
    leaveFault();
  } catch (const std::exception&) {
    // Still in the fault that was logged when it began.
  }
}

void PgEventSink::enterFault(const std::string& problem) {
  if (faulted_) return;  // once per change of state, not once per request
  faulted_ = true;
  problem_ = problem;
  storageLog().error(
      "storage fault: %s; ingest answers 503 storage_unavailable until a commit succeeds", problem);
  board_->set(StorageHealth{false, problem, clock_.nowMillis()});
}

void PgEventSink::leaveFault() {
  if (!faulted_) return;
  faulted_ = false;
  problem_.clear();
  storageLog().information("storage recovered: a commit succeeded; acknowledging again");
  board_->set(StorageHealth{true, {}, clock_.nowMillis()});
}

}  // namespace b24es::pg
