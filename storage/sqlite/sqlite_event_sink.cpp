#include "sqlite_event_sink.h"

#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Exception.h>
#include <Poco/Logger.h>

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>

#include "sqlite_connection.h"
#include "sqlite_counters.h"
#include "sqlite_statement.h"

namespace b24es::sqlite {
namespace {

// A purge batch: one portal's events after the cursor (events_member_id), or the oldest
// events after the cursor (the rowid), with the texts of their keys (migration 0011) for the
// counters. Listed by purgeQueries() for query_plan_test.
#define B24ES_PURGE_COLUMNS                                             \
  "SELECT r.id, p.member_id, c.event, r.received_at FROM event_rows r " \
  "CROSS JOIN event_portals p ON p.key = r.portal CROSS JOIN event_codes c ON c.key = r.code "
constexpr const char* kSelectPortalBatchSql = B24ES_PURGE_COLUMNS
    "WHERE r.portal = (SELECT key FROM event_portals WHERE member_id = ?1) "
    "AND r.id > ?2 AND r.id < ?3 ORDER BY r.id LIMIT ?4";
constexpr const char* kSelectOldestBatchSql =
    B24ES_PURGE_COLUMNS "WHERE r.id > ?1 ORDER BY r.id LIMIT ?2";
#undef B24ES_PURGE_COLUMNS

// One of the key tables of migration 0011 (event_portals, event_domains, event_codes): the
// integer key of a text, found or made on first use. What the open transaction found or made is
// remembered until clear() at the start of the next one: a key this transaction made is gone
// again if it rolls back, and a key made by another process is found by the select.
class KeyTable {
 public:
  // `select` takes the text as ?1 and answers the key; `insert` adds the text as ?1.
  KeyTable(sqlite3* db, const char* select, const char* insert)
      : db_(db), select_(db, select), insert_(db, insert) {}

  // Inside an open write transaction. Throws StorageError.
  std::int64_t key(const std::string& text) {
    auto known = keys_.find(text);
    if (known != keys_.end()) return known->second;
    std::int64_t key = 0;
    select_.bind(1, text);
    if (select_.row()) {
      key = select_.integer(0);
      select_.reset();
    } else {
      insert_.bind(1, text).run();
      key = ::sqlite3_last_insert_rowid(db_);
    }
    keys_.emplace(text, key);
    return key;
  }

  void clear() { keys_.clear(); }

 private:
  sqlite3* const db_;
  Statement select_;
  Statement insert_;
  std::unordered_map<std::string, std::int64_t> keys_;  // of the open transaction
};

// Rejections (0008): one insert per rejection, then the trim, which deletes the ids at or below
// (newest id - ingest.keep_rejections): a range of the rowid, as long as the rows it removes.
constexpr const char* kInsertRejectionSql =
    "INSERT INTO rejections(received_at, client_addr, status, error, event, member_id, domain) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* kTrimRejectionsSql = "DELETE FROM rejections WHERE id <= ?1";

}  // namespace

std::vector<SqlQuery> purgeQueries() {
  return {{kSelectPortalBatchSql,
           {std::string("member"), std::int64_t{0}, std::int64_t{100}, std::int64_t{1000}}},
          {kSelectOldestBatchSql, {std::int64_t{0}, std::int64_t{1000}}}};
}

std::vector<SqlQuery> rejectionWriteQueries() {
  return {{kInsertRejectionSql,
           {std::int64_t{0}, std::string("127.0.0.1"), std::int64_t{401},
            std::string("verification_failed"), std::string("ONCRMDEALADD"), std::string("member"),
            std::string("example.bitrix24.com")}},
          {kTrimRejectionsSql, {std::int64_t{100}}}};
}

// The write connection, its prepared statements and what one event writes. Used only by the
// writer thread, always inside an open ImmediateTransaction.
class SqliteEventSink::Writer {
 public:
  Writer(const SqliteSettings& settings, const Clock& clock, std::size_t maxNewPortals,
         bool purgeOnClean)
      : session(openSession(settings)),
        clock_(clock),
        maxNewPortals_(maxNewPortals),
        purgeOnClean_(purgeOnClean),
        db_(Poco::Data::SQLite::Utility::dbHandle(session)),
        counters_(db_),
        selectPortalBatch_(db_, kSelectPortalBatchSql),
        selectOldestBatch_(db_, kSelectOldestBatchSql),
        deleteEvent_(db_, "DELETE FROM event_rows WHERE id = ?1"),
        portalKeys_(db_, "SELECT key FROM event_portals WHERE member_id = ?1",
                    "INSERT INTO event_portals(member_id) VALUES(?1)"),
        domainKeys_(db_, "SELECT key FROM event_domains WHERE domain = ?1",
                    "INSERT INTO event_domains(domain) VALUES(?1)"),
        codeKeys_(db_, "SELECT key FROM event_codes WHERE event = ?1",
                  "INSERT INTO event_codes(event) VALUES(?1)"),
        selectPortal_(db_,
                      "SELECT application_token, installed_at, uninstalled_at FROM portals "
                      "WHERE member_id = ?1"),
        // installed_at keeps the first install time while the portal stays installed.
        installPortal_(db_,
                       "INSERT INTO portals(member_id, domain, client_endpoint, server_endpoint, "
                       "application_token, status, scope, installed_at, uninstalled_at, "
                       "updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?8) "
                       "ON CONFLICT(member_id) DO UPDATE SET domain = excluded.domain, "
                       "client_endpoint = excluded.client_endpoint, "
                       "server_endpoint = excluded.server_endpoint, "
                       "application_token = excluded.application_token, "
                       "status = excluded.status, scope = excluded.scope, "
                       "installed_at = CASE WHEN portals.installed_at IS NULL "
                       "OR portals.uninstalled_at IS NOT NULL THEN excluded.installed_at "
                       "ELSE portals.installed_at END, "
                       "uninstalled_at = NULL, updated_at = excluded.updated_at"),
        createPortal_(db_,
                      "INSERT INTO portals(member_id, domain, client_endpoint, server_endpoint, "
                      "status, scope, updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                      "ON CONFLICT(member_id) DO NOTHING"),
        uninstallPortal_(db_,
                         "UPDATE portals SET uninstalled_at = ?2, application_token = NULL, "
                         "updated_at = ?2 WHERE member_id = ?1"),
        deleteTokens_(db_, "DELETE FROM tokens WHERE member_id = ?1"),
        rotateToken_(db_,
                     "UPDATE portals SET application_token = ?2, updated_at = ?3 "
                     "WHERE member_id = ?1"),
        deleteBindings_(db_, "DELETE FROM bindings WHERE member_id = ?1"),
        deleteOfflineState_(db_, "DELETE FROM offline_state WHERE member_id = ?1"),
        deleteOfflineNotes_(db_, "DELETE FROM offline_batches WHERE member_id = ?1"),
        // Install tokens replace whatever was stored: a reinstall starts a new authorization.
        installToken_(db_,
                      "INSERT INTO tokens(member_id, user_id, access_token, refresh_token, "
                      "expires_at, refresh_token_at, scope, source, updated_at, from_install) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 'install', ?8, 1) "
                      "ON CONFLICT(member_id, user_id) DO UPDATE SET "
                      "access_token = excluded.access_token, "
                      "refresh_token = excluded.refresh_token, "
                      "expires_at = excluded.expires_at, "
                      "refresh_token_at = excluded.refresh_token_at, scope = excluded.scope, "
                      "source = 'install', updated_at = excluded.updated_at, "
                      "last_refresh_error = NULL, refresh_failures = 0, refresh_dead_at = NULL, "
                      "from_install = 1"),
        // An event's token replaces the stored one only when it expires later, and keeps the
        // stored refresh token when the event carries none (ordinary events carry only an
        // access token).
        eventToken_(db_,
                    "INSERT INTO tokens(member_id, user_id, access_token, refresh_token, "
                    "expires_at, refresh_token_at, scope, source, updated_at) "
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 'event', ?8) "
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
                    "WHERE tokens.expires_at IS NULL OR excluded.expires_at > tokens.expires_at"),
        // Installations begun in the window, read through portals_installed_at (0010).
        countInstalls_(db_, "SELECT count(*) FROM portals WHERE installed_at > ?1"),
        // The install whose leaving the window makes room for one more.
        freeingInstall_(db_,
                        "SELECT installed_at FROM portals WHERE installed_at > ?1 "
                        "ORDER BY installed_at LIMIT 1 OFFSET ?2"),
        // The table behind the events view (0011): member_id, domain and event as their keys.
        insertEvent_(db_,
                     "INSERT INTO event_rows(portal, domain, code, event_handler_id, event_id, "
                     "ts, received_at, user_id, entity_id, entity_type_id, data) "
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)") {
    // Replaces SQLite's autocheckpoint on this connection (see checkpointIfLarge).
    ::sqlite3_wal_hook(db_, &Writer::onWalCommit, this);
  }

  // Checkpoints the WAL once it holds kCheckpointFrames pages, here, between batches: inside a
  // commit (SQLite's autocheckpoint) it would hold up that batch's acknowledgements, and from
  // another thread it never completes while this one keeps appending, so the WAL never restarts
  // and grows without bound (176 MB after 5 s of benchmark). With no other writer a PASSIVE
  // checkpoint completes and the next transaction restarts the WAL from its beginning.
  void checkpointIfLarge() {
    if (walFrames_ < kCheckpointFrames) return;
    int logFrames = 0, copied = 0;
    int rc =
        ::sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &logFrames, &copied);
    walFrames_ = 0;
    // BUSY: another process is checkpointing; the next batch tries again. Logged when the
    // error changes, not after every batch (a full disk fails each one).
    if (rc == SQLITE_OK) {
      checkpointError_.clear();
    } else if (rc != SQLITE_BUSY && checkpointError_ != ::sqlite3_errmsg(db_)) {
      checkpointError_ = ::sqlite3_errmsg(db_);
      Poco::Logger::get("b24es.storage").warning("WAL checkpoint failed: %s", checkpointError_);
    }
  }

  // Called at the start of every transaction: what the previous one learned may have been
  // rolled back, or changed since by another connection.
  void beginTransaction() {
    portals_.clear();
    grants_.clear();
    portalKeys_.clear();
    domainKeys_.clear();
    codeKeys_.clear();
    counters_.clear();
    cleanups_.clear();
  }

  // Just before the commit: the counters of what this transaction stored.
  void finishTransaction() { counters_.flush(); }

  // The purges that this transaction's uninstalls with CLEAN=1 asked for; to be run once it
  // has committed (moved out).
  std::vector<PurgeRequest> takeCleanups() { return std::move(cleanups_); }

  IngestOutcome apply(const IncomingEvent& e, const Verifier& verifier) {
    const std::optional<PortalRecord>& portal = loadPortal(e.memberId);
    Verdict verdict = verifier(e, portal);
    std::int64_t nowSec = clock_.nowSeconds();
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
        forgetPortal(e.memberId);
        bindPortal(installPortal_, e)
            .bind(5, e.applicationToken)
            .bind(6, e.status)
            .bind(7, e.scope);
        installPortal_.bind(8, nowSec).run();
        for (const TokenGrant& t : e.tokens) bindToken(installToken_, e.memberId, t, nowSec).run();
        break;
      case Verdict::Action::kStoreAndCreatePortal:
        forgetPortal(e.memberId);
        createPortal(e, nowSec);
        for (const TokenGrant& t : e.tokens) applyEventToken(e.memberId, t, nowSec);
        break;
      case Verdict::Action::kStore:
        for (const TokenGrant& t : e.tokens) applyEventToken(e.memberId, t, nowSec);
        break;
      case Verdict::Action::kRotate:
        forgetPortal(e.memberId);
        rotateToken_.bind(1, e.memberId).bind(2, e.applicationToken).bind(3, nowSec).run();
        for (const TokenGrant& t : e.tokens) applyEventToken(e.memberId, t, nowSec);
        break;
      case Verdict::Action::kUninstall:
        forgetPortal(e.memberId);
        createPortal(e, nowSec);  // a portal known only through a static token
        uninstallPortal_.bind(1, e.memberId).bind(2, nowSec).run();
        deleteTokens_.bind(1, e.memberId).run();
        if (e.clean && purgeOnClean_) deletePortalState(e.memberId);
        break;
    }
    const std::int64_t receivedMillis = clock_.nowMillis();
    insertEvent_.bind(1, portalKeys_.key(e.memberId));
    if (e.domain.empty()) {
      insertEvent_.bindNull(2);
    } else {
      insertEvent_.bind(2, domainKeys_.key(e.domain));
    }
    insertEvent_.bind(3, codeKeys_.key(e.event));
    insertEvent_.bind(4, e.eventHandlerId).bind(5, e.eventId).bind(6, e.ts);
    insertEvent_.bind(7, receivedMillis).bind(8, e.userId).bind(9, e.entityId);
    insertEvent_.bind(10, e.entityTypeId).bind(11, e.dataJson).run();
    const std::int64_t id = ::sqlite3_last_insert_rowid(db_);
    counters_.add(e.memberId, e.event, receivedMillis, 1);
    if (verdict.action == Verdict::Action::kUninstall && e.clean && purgeOnClean_) {
      PurgeRequest earlier;
      earlier.memberId = e.memberId;
      earlier.beforeId = id;  // the uninstall event itself stays
      cleanups_.push_back(std::move(earlier));
    }
    return IngestOutcome{IngestOutcome::Status::kStored, id, {}};
  }

  // One purge transaction: deletes (or counts, for a dry run) at most `limit` of the events
  // `job` selects after its cursor, and prunes timeline buckets; true when nothing is left.
  bool purgeBatch(PurgeJob& job, int limit) {
    const PurgeRequest& r = job.request;
    ImmediateTransaction tx(session);
    beginTransaction();
    bool finished = true;
    if (r.memberId || r.receivedBefore) {
      Statement& select = r.memberId ? selectPortalBatch_ : selectOldestBatch_;
      if (r.memberId) {
        select.bind(1, *r.memberId).bind(2, job.cursor);
        select.bind(3, r.beforeId.value_or(std::numeric_limits<std::int64_t>::max()));
        select.bind(4, static_cast<std::int64_t>(limit));
      } else {
        select.bind(1, job.cursor).bind(2, static_cast<std::int64_t>(limit));
      }
      std::vector<std::int64_t> ids;
      int rows = 0;
      while (select.row()) {
        ++rows;
        const std::int64_t receivedAt = select.integer(3);
        // Ids grow with received time (one writer stamps both), so the first event received
        // after the cut ends a time purge; see README (retention) for a clock set back.
        if (r.receivedBefore && !r.memberId && receivedAt >= *r.receivedBefore) {
          select.reset();
          rows = -1;
          break;
        }
        ids.push_back(select.integer(0));
        if (!r.dryRun) counters_.add(select.text(1), select.text(2), receivedAt, -1);
      }
      if (!r.dryRun) {
        for (std::int64_t id : ids) deleteEvent_.bind(1, id).run();
      }
      if (!ids.empty()) job.cursor = ids.back();
      job.deleted += static_cast<std::int64_t>(ids.size());
      finished = rows < limit;
    }
    if (finished && r.pruneTimelineAt && !r.dryRun) {
      finished = counters_.pruneBuckets(*r.pruneTimelineAt, limit) < limit;
    }
    counters_.flush();
    // Gives the pages this batch freed back to the file system (a no-op in a database created
    // before auto_vacuum=INCREMENTAL, whose free pages are reused by later inserts instead).
    // Bounded, so that the batch stays short: 1,000 events free well under 512 pages.
    if (!r.dryRun) exec(session, "PRAGMA incremental_vacuum(512)");
    tx.commit();
    return finished;
  }

  // Inserts `rejections` and trims the table to the newest `keep`, inside the open transaction.
  // Returns how many were written: 0 when this file has no rejections table (a schema before
  // 0008, which still takes events). Throws StorageError when an insert fails.
  std::size_t insertRejections(const std::vector<RejectionRecord>& rejections, std::size_t keep) {
    if (rejections.empty()) return 0;
    if (!insertRejection_) {
      // Prepared on first use, and again after a failure: the table may come with a migration.
      try {
        insertRejection_.emplace(db_, kInsertRejectionSql);
        trimRejections_.emplace(db_, kTrimRejectionsSql);
      } catch (const StorageError&) {
        insertRejection_.reset();
        return 0;
      }
    }
    for (const RejectionRecord& r : rejections) {
      insertRejection_->bind(1, r.receivedAt).bind(2, r.clientAddr);
      insertRejection_->bind(3, static_cast<std::int64_t>(r.status)).bind(4, r.error);
      insertRejection_->bind(5, r.event).bind(6, r.memberId).bind(7, r.domain).run();
    }
    const std::int64_t newest = ::sqlite3_last_insert_rowid(db_);
    const auto kept = static_cast<std::int64_t>(keep);
    if (newest > kept) trimRejections_->bind(1, newest - kept).run();
    return rejections.size();
  }

  // The probe of a faulted writer: a small write of its own, with the events' id sequence
  // raised to `highestId` (a file that replaced the one this sink wrote must not hand out an id
  // this sink already acknowledged). Inside an open transaction. Throws StorageError.
  void probeWrite(std::int64_t nowMillis, std::int64_t highestId) {
    // Prepared on first use: a file of an older schema can still take events.
    if (!probe_) {
      probe_.emplace(db_, "INSERT OR REPLACE INTO writer_probe(id, probed_at) VALUES(1, ?1)");
    }
    probe_->bind(1, nowMillis).run();
    if (highestId <= 0) return;
    if (!raiseSequence_) {
      // sqlite_sequence is where AUTOINCREMENT keeps the largest id it handed out (0005).
      raiseSequence_.emplace(
          db_,
          "INSERT OR REPLACE INTO sqlite_sequence(rowid, name, seq) "
          "SELECT (SELECT rowid FROM sqlite_sequence WHERE name = 'event_rows'), "
          "'event_rows', ?1 WHERE ?1 > COALESCE((SELECT seq FROM sqlite_sequence "
          "WHERE name = 'event_rows'), 0)");
    }
    raiseSequence_->bind(1, highestId).run();
  }

  // The largest event id the file's AUTOINCREMENT handed out; 0 before the first, or when the
  // file has no sqlite_sequence (a schema before 0005).
  std::int64_t sequence() {
    try {
      Statement seq(db_, "SELECT seq FROM sqlite_sequence WHERE name = 'event_rows'");
      std::int64_t v = seq.row() ? seq.optionalInteger(0).value_or(0) : 0;
      seq.reset();
      return v;
    } catch (const StorageError&) {
      return 0;
    }
  }

  // The schema version the file is at; 0 before the first migration. Throws StorageError when
  // the file cannot be read.
  int schemaVersion() {
    Statement tables(db_, "SELECT count(*) FROM sqlite_master WHERE name = 'schema_migrations'");
    bool migrated = tables.row() && tables.integer(0) > 0;
    tables.reset();
    if (!migrated) return 0;
    Statement version(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    int v = version.row() ? static_cast<int>(version.integer(0)) : 0;
    version.reset();
    return v;
  }

  // Makes this connection harmless to the files now at the path, and keeps it so while open:
  // SQLite deletes "-wal" and "-shm" by name when the last connection to a file closes, and
  // those names now belong to another file. PERSIST_WAL stops this connection from deleting
  // them; the read transaction holds the shared lock that stops every other connection of this
  // process to the old file from taking the exclusive lock it deletes under.
  void retire() {
    int persist = 1;
    ::sqlite3_file_control(db_, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    ::sqlite3_exec(db_, "BEGIN; SELECT count(*) FROM sqlite_master;", nullptr, nullptr, nullptr);
  }

  sqlite3* db() const { return db_; }

  Poco::Data::Session session;

 private:
  static constexpr std::int64_t kNewPortalWindowSeconds = 3600;

  // nullopt when one more portal may be registered now; otherwise the seconds until the window
  // has room (at least 1). Reads this transaction's own installs too, so a batch of installs
  // cannot overshoot the limit.
  std::optional<std::int64_t> newPortalWait(std::int64_t nowSec) {
    const std::int64_t since = nowSec - kNewPortalWindowSeconds;
    countInstalls_.bind(1, since);
    countInstalls_.row();
    const std::int64_t count = countInstalls_.optionalInteger(0).value_or(0);
    countInstalls_.reset();
    const auto limit = static_cast<std::int64_t>(maxNewPortals_);
    if (count < limit) return std::nullopt;
    std::int64_t wait = kNewPortalWindowSeconds;
    if (limit > 0) {
      freeingInstall_.bind(1, since).bind(2, count - limit);
      if (freeingInstall_.row()) {
        wait =
            freeingInstall_.optionalInteger(0).value_or(nowSec) + kNewPortalWindowSeconds - nowSec;
      }
      freeingInstall_.reset();
    }
    return std::max<std::int64_t>(1, wait);
  }

  // Only what the verifier reads; the rest of the row is not needed on the write path. Read
  // once per transaction and portal: a batch is mostly events of a few portals, and inside the
  // transaction only this writer changes the row (forgetPortal() after each change).
  const std::optional<PortalRecord>& loadPortal(const std::string& memberId) {
    auto cached = portals_.find(memberId);
    if (cached != portals_.end()) return cached->second;
    std::optional<PortalRecord> p;
    selectPortal_.bind(1, memberId);
    if (selectPortal_.row()) {
      p.emplace();
      p->memberId = memberId;
      p->applicationToken = selectPortal_.optionalText(0);
      p->installedAt = selectPortal_.optionalInteger(1);
      p->uninstalledAt = selectPortal_.optionalInteger(2);
    }
    selectPortal_.reset();
    return portals_.emplace(memberId, std::move(p)).first->second;
  }

  // After a statement that changes the portal row or deletes its tokens.
  void forgetPortal(const std::string& memberId) {
    portals_.erase(memberId);
    grants_.clear();  // rare (install, uninstall, first static-token event): start over
  }

  // Runs eventToken_ unless this transaction already ran it with the same grant for the same
  // token row, in which case it would change nothing: after a grant with an expiry was applied
  // the row expires no earlier than it, so the same grant again fails the statement's WHERE.
  // (Only install, uninstall and the refresher change a token row otherwise: the first two
  // call forgetPortal(), the last writes through another connection, outside this transaction.)
  void applyEventToken(const std::string& memberId, const TokenGrant& t, std::int64_t nowSec) {
    const bool repeatable = t.expiresAt.has_value();
    auto key = std::make_pair(memberId, t.userId);
    auto last = grants_.find(key);
    if (repeatable && last != grants_.end() && sameGrant(last->second, t)) return;
    bindToken(eventToken_, memberId, t, nowSec).run();
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

  // Binds member_id, domain and the two endpoints as ?1..?4.
  static Statement& bindPortal(Statement& s, const IncomingEvent& e) {
    return s.bind(1, e.memberId)
        .bind(2, e.domain)
        .bindTextOrNull(3, e.clientEndpoint)
        .bindTextOrNull(4, e.serverEndpoint);
  }

  void createPortal(const IncomingEvent& e, std::int64_t nowSec) {
    bindPortal(createPortal_, e).bindTextOrNull(5, e.status).bindTextOrNull(6, e.scope);
    createPortal_.bind(7, nowSec).run();
  }

  static Statement& bindToken(Statement& s, const std::string& memberId, const TokenGrant& t,
                              std::int64_t nowSec) {
    s.bind(1, memberId).bind(2, t.userId).bind(3, t.accessToken).bind(4, t.refreshToken);
    s.bind(5, t.expiresAt);
    if (t.refreshToken) {
      s.bind(6, nowSec);
    } else {
      s.bindNull(6);
    }
    return s.bind(7, t.scope).bind(8, nowSec);
  }

  static constexpr int kCheckpointFrames = 1000;  // SQLite's own autocheckpoint threshold

  // SPEC §9's bindings go with CLEAN=1, and with them what the store knew of the portal's
  // offline queue (migration 0007): its mode and the notes of batches not yet cleared (the
  // portal is gone; its reservations lapse at Bitrix24).
  void deletePortalState(const std::string& memberId) {
    deleteBindings_.bind(1, memberId).run();
    deleteOfflineState_.bind(1, memberId).run();
    deleteOfflineNotes_.bind(1, memberId).run();
  }

  static int onWalCommit(void* self, sqlite3*, const char*, int frames) {
    static_cast<Writer*>(self)->walFrames_ = frames;
    return SQLITE_OK;
  }

  const Clock& clock_;
  const std::size_t maxNewPortals_;  // SinkSettings::maxNewPortalsPerHour
  const bool purgeOnClean_;          // SinkSettings::purgeOnClean
  sqlite3* const db_;                // owned by session
  int walFrames_ = 0;                // frames in the WAL after the last commit (set by onWalCommit)
  std::string checkpointError_;      // the last checkpoint's error, logged once
  CounterChanges counters_;          // of the open transaction
  Statement selectPortalBatch_;
  Statement selectOldestBatch_;
  Statement deleteEvent_;
  KeyTable portalKeys_;                 // member_id -> event_rows.portal
  KeyTable domainKeys_;                 // domain -> event_rows.domain
  KeyTable codeKeys_;                   // event -> event_rows.code
  std::vector<PurgeRequest> cleanups_;  // asked for by the open transaction
  Statement selectPortal_;
  Statement installPortal_;
  Statement createPortal_;
  Statement uninstallPortal_;
  Statement deleteTokens_;
  Statement rotateToken_;
  Statement deleteBindings_;
  Statement deleteOfflineState_;
  Statement deleteOfflineNotes_;
  Statement installToken_;
  Statement eventToken_;
  Statement countInstalls_;
  Statement freeingInstall_;
  Statement insertEvent_;
  std::optional<Statement> probe_;            // see probeWrite()
  std::optional<Statement> raiseSequence_;    // see probeWrite()
  std::optional<Statement> insertRejection_;  // see insertRejections()
  std::optional<Statement> trimRejections_;
  // What this transaction already read or wrote (see beginTransaction()).
  std::unordered_map<std::string, std::optional<PortalRecord>> portals_;  // by member_id
  std::map<std::pair<std::string, std::int64_t>, TokenGrant> grants_;     // by (member, user)
};

namespace {

constexpr std::chrono::seconds kTickInterval{1};  // SPEC §10: the files checked once a second

Poco::Logger& storageLog() { return Poco::Logger::get("b24es.storage"); }

// Result codes that say the database cannot commit at all, rather than that one event cannot be
// written: no point retrying the batch's events one by one.
bool storageWide(int code) {
  switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_NOMEM:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL:
    case SQLITE_PERM:
      return true;
    default:
      return false;
  }
}

IngestOutcome unavailable(const std::string& reason) {
  return IngestOutcome{IngestOutcome::Status::kUnavailable, 0, reason};
}

}  // namespace

SqliteEventSink::SqliteEventSink(const SqliteSettings& settings, const Clock& clock,
                                 Verifier verifier, const SinkSettings& sinkSettings,
                                 std::shared_ptr<HealthBoard> board, int schemaVersion)
    : settings_(settings),
      clock_(clock),
      verifier_(std::move(verifier)),
      sinkSettings_(sinkSettings),
      board_(std::move(board)),
      schemaVersion_(schemaVersion) {
  openWriter();
  nextTick_ = std::chrono::steady_clock::now() + kTickInterval;
  thread_ = std::thread([this] { run(); });
}

SqliteEventSink::~SqliteEventSink() { close(); }

void SqliteEventSink::openWriter() {
  writer_.reset();
  auto writer = std::make_unique<Writer>(settings_, clock_, sinkSettings_.maxNewPortalsPerHour,
                                         sinkSettings_.purgeOnClean);
  // A 16 MiB page cache keeps the upper levels of the eight events indexes in memory (SQLite's
  // default 2 MiB made each insert re-read them).
  exec(writer->session, "PRAGMA cache_size=-16384");
  // The first read opens the -wal and -shm, so that the identities recorded are the ones used.
  int version = writer->schemaVersion();
  files_ = DatabaseFiles::record(settings_.path);
  // What the probe raises another file's sequence to, should the writer ever move to one.
  highestId_ = std::max(highestId_, writer->sequence());
  writer_ = std::move(writer);
  if (schemaVersion_ > 0 && version != schemaVersion_) {
    StorageHealth h = board_->get();
    h.ok = false;
    h.problem = "the database schema is at version " + std::to_string(version) +
                "; this binary expects " + std::to_string(schemaVersion_);
    h.sinceMillis = clock_.nowMillis();
    board_->set(h);
  }
}

std::shared_ptr<SqliteEventSink::Group> SqliteEventSink::enqueue(Pending* pending,
                                                                 std::unique_ptr<Pending>& owned) {
  std::shared_ptr<Group> group;
  {
    MutexLock lock(mutex_);
    if (closing_) return nullptr;
    if (groups_.empty() || groups_.back()->items.size() >= sinkSettings_.maxBatch) {
      groups_.push_back(std::make_shared<Group>());
    }
    group = groups_.back();
    // Room first, so that linking `pending` cannot fail halfway (items without its owner).
    auto makeRoom = [](auto& v) {
      if (v.size() == v.capacity()) v.reserve(std::max<std::size_t>(16, 2 * v.capacity()));
    };
    makeRoom(group->items);
    if (owned) makeRoom(group->submitted);
    group->items.push_back(pending);
    if (owned) group->submitted.push_back(std::move(owned));
  }
  wake_.signal();
  return group;
}

IngestOutcome SqliteEventSink::write(const IncomingEvent& event) {
  Pending pending{&event, {}, {}};
  std::unique_ptr<Pending> none;
  std::shared_ptr<Group> group = enqueue(&pending, none);
  if (!group) return shuttingDown();
  // Waits without the mutex: the batch's waiters all wake at once and need no lock to return.
  group->done.wait();
  return pending.outcome;
}

void SqliteEventSink::submit(const IncomingEvent& event, Completion done) {
  auto pending = std::make_unique<Pending>(Pending{&event, {}, std::move(done)});
  Pending* raw = pending.get();
  // On success the group owns `pending` and the writer thread calls `done`.
  if (!enqueue(raw, pending)) raw->done(shuttingDown());
}

bool SqliteEventSink::recordRejection(const RejectionRecord& rejection) {
  if (sinkSettings_.keepRejections == 0) return false;  // ingest.keep_rejections = 0: none kept
  RejectionRecord record = cutRejection(rejection);
  record.id = 0;
  record.receivedAt = clock_.nowMillis();
  bool queued = false;
  bool first = false;
  {
    MutexLock lock(mutex_);
    if (!closing_ && rejections_.size() < sinkSettings_.maxPendingRejections) {
      first = rejections_.empty();
      if (first) rejectionsDue_ = std::chrono::steady_clock::now() + sinkSettings_.rejectionDelay;
      rejections_.push_back(std::move(record));
      queued = true;
    }
  }
  // The writer learns of a deadline earlier than the one it sleeps towards; later ones it sees
  // when it next wakes.
  if (first) wake_.signal();
  if (!queued && sinkSettings_.onRejections) sinkSettings_.onRejections(0, 1);
  return queued;
}

void SqliteEventSink::dropRejections(std::vector<RejectionRecord>& rejections) {
  if (!rejections.empty() && sinkSettings_.onRejections) {
    sinkSettings_.onRejections(0, rejections.size());
  }
  rejections.clear();
}

void SqliteEventSink::commitRejections(std::vector<RejectionRecord>& rejections) {
  // While faulted, the events' commits and the probe decide when the store works again (a
  // small commit may fit where a batch does not); rejections wait for no one and are dropped.
  if (fault_ != Fault::kNone || !writer_) return dropRejections(rejections);
  std::vector<Pending*> none;
  Failure failure;
  if (commitRange(none, 0, 0, rejections, failure)) return;
  // Not a fault of its own: the next batch of events, or tick() within a second, finds out
  // whether the storage is failing.
  dropRejections(rejections);
}

std::int64_t SqliteEventSink::purge(const PurgeRequest& request) {
  auto job = std::make_shared<PurgeJob>();
  job->request = request;
  {
    MutexLock lock(mutex_);
    if (closing_) throw StorageError("the store is shutting down");
    purges_.push_back(job);
  }
  wake_.signal();
  job->done.wait();
  if (!job->error.empty()) throw StorageError(job->error);
  return job->deleted;
}

bool SqliteEventSink::runPurgeTurn(Poco::Logger& log) {
  std::shared_ptr<PurgeJob> job;
  {
    MutexLock lock(mutex_);
    if (purges_.empty()) return false;
    job = purges_.front();
  }
  bool finished = true;
  const std::int64_t before = job->deleted;
  try {
    finished = writer_->purgeBatch(*job, sinkSettings_.purgeBatch);
    if (sinkSettings_.onPurgeBatch) sinkSettings_.onPurgeBatch(job->deleted - before);
  } catch (const std::exception& e) {
    job->error = e.what();
    log.error("purge failed after %Ld events: %s", static_cast<Poco::Int64>(job->deleted),
              job->error);
  }
  if (finished) {
    {
      MutexLock lock(mutex_);
      purges_.pop_front();
    }
    if (!job->request.dryRun && job->error.empty() && job->deleted > 0) {
      log.information("purged %Ld events", static_cast<Poco::Int64>(job->deleted));
    }
    job->done.set();
  }
  return true;
}

void SqliteEventSink::queueCleanups() {
  std::vector<PurgeRequest> cleanups = writer_->takeCleanups();
  if (cleanups.empty()) return;
  MutexLock lock(mutex_);
  for (PurgeRequest& r : cleanups) {
    auto job = std::make_shared<PurgeJob>();  // nobody waits for it
    job->request = std::move(r);
    purges_.push_back(std::move(job));
  }
}

void SqliteEventSink::close() {
  {
    MutexLock lock(mutex_);
    closing_ = true;
  }
  wake_.signal();
  if (thread_.joinable()) thread_.join();
  writer_.reset();
}

void SqliteEventSink::run() {
#if defined(__linux__)
  // Shown by top -H, ps -L and perf, so that the thread every request waits for can be watched.
  ::pthread_setname_np(::pthread_self(), "b24es-writer");
#endif
  Poco::Logger& log = storageLog();
  std::vector<RejectionRecord> rejections;  // taken from rejections_ for the next transaction
  for (;;) {
    std::shared_ptr<Group> group;
    bool rejectionsDue = false;
    bool finished = false;
    {
      MutexLock lock(mutex_);
      for (;;) {
        const auto now = std::chrono::steady_clock::now();
        rejectionsDue = !rejections_.empty() && now >= rejectionsDue_;
        if (closing_ || !groups_.empty() || !purges_.empty() || rejectionsDue) break;
        const auto until = rejections_.empty() ? nextTick_ : std::min(nextTick_, rejectionsDue_);
        if (!wake_.waitUntil(mutex_, until) && std::chrono::steady_clock::now() >= nextTick_) break;
      }
      if (groups_.empty() && closing_) {  // closing and drained: purges stop where they are
        for (const std::shared_ptr<PurgeJob>& job : purges_) {
          job->error = "the store is shutting down";
          job->done.set();
        }
        purges_.clear();
        rejections.swap(rejections_);  // the last rejections still go in, on their own
        finished = true;
      } else if (!groups_.empty()) {
        // Once off the queue a group receives no more events: writers append to groups_.back().
        group = groups_.front();
        groups_.pop_front();
        rejections.swap(rejections_);  // they ride with the events
      } else if (rejectionsDue) {
        rejections.swap(rejections_);
      }
    }
    if (finished) {
      if (!rejections.empty()) commitRejections(rejections);
      return;
    }
    if (std::chrono::steady_clock::now() >= nextTick_) {
      tick();
      nextTick_ = std::chrono::steady_clock::now() + kTickInterval;
    }
    if (!group) {
      if (rejectionsDue) commitRejections(rejections);
      // No events waiting: a purge turn, while the files are sound.
      if (writer_ && fault_ == Fault::kNone) runPurgeTurn(log);
      continue;
    }
    const std::int64_t highestBefore = highestId_;
    commitGroup(*group, rejections);
    // Before the waiters are answered: a stream's wake-up should not queue behind them.
    if (highestId_ > highestBefore && sinkSettings_.onCommitted) {
      sinkSettings_.onCommitted(highestId_);
    }
    const std::size_t size = group->items.size();  // `items` may be gone once the waiters wake
    for (const std::unique_ptr<Pending>& submitted : group->submitted) {
      try {
        submitted->done(submitted->outcome);
      } catch (const std::exception& e) {
        log.error("an event's completion threw: %s", std::string(e.what()));
      }
    }
    // One wake-up call for the whole batch, and only its own waiters wake.
    group->done.set();
    if (sinkSettings_.onBatch) sinkSettings_.onBatch(size);
    if (writer_) writer_->checkpointIfLarge();
    // Purges take turns with ingest: one purge transaction after each batch of events.
    if (writer_ && fault_ == Fault::kNone) runPurgeTurn(log);
  }
}

bool SqliteEventSink::commitRange(std::vector<Pending*>& batch, std::size_t from, std::size_t to,
                                  std::vector<RejectionRecord>& rejections, Failure& failure) {
  std::size_t written = 0;
  try {
    sqlite::ImmediateTransaction tx(writer_->session);
    writer_->beginTransaction();
    try {
      for (std::size_t i = from; i < to; ++i) {
        batch[i]->outcome = writer_->apply(*batch[i]->event, verifier_);
      }
      written = writer_->insertRejections(rejections, sinkSettings_.keepRejections);
      writer_->finishTransaction();  // the counters, in the same transaction as the events
      // Last, right before COMMIT: a commit into a file no longer at the path would be
      // acknowledged and then lost; rolled back, it is answered 503 and truly not stored.
      failure.reason = files_.changed();
      if (!failure.reason.empty()) {
        failure.filesChanged = true;
        return false;
      }
      tx.commit();
      queueCleanups();
    } catch (const std::exception& e) {
      // Before the ROLLBACK of `tx` overwrites it.
      failure.code = ::sqlite3_extended_errcode(writer_->db());
      failure.reason = e.what();
      return false;
    }
  } catch (const std::exception& e) {  // BEGIN IMMEDIATE failed
    failure.code = ::sqlite3_extended_errcode(writer_->db());
    failure.reason = e.what();
    return false;
  }
  for (std::size_t i = from; i < to; ++i) highestId_ = std::max(highestId_, batch[i]->outcome.id);
  if (!rejections.empty() && sinkSettings_.onRejections) {
    // Those not written had no table to go to (a schema before 0008).
    sinkSettings_.onRejections(written, rejections.size() - written);
  }
  rejections.clear();
  return true;
}

void SqliteEventSink::commitGroup(Group& group, std::vector<RejectionRecord>& rejections) {
  std::vector<Pending*>& batch = group.items;
  auto failAll = [&](const std::string& reason) {
    for (Pending* p : batch) p->outcome = unavailable(reason);
  };
  // Nothing is committed to files that are no longer the database at the path; tick() retries
  // the recovery once a second (each try may copy the whole database).
  if (fault_ == Fault::kFiles || !writer_) {
    failAll(problem_);
    return dropRejections(rejections);
  }

  Failure failure;
  if (commitRange(batch, 0, batch.size(), rejections, failure)) return leaveFault();
  failAll(failure.reason);
  lastFailedBatch_ = std::chrono::steady_clock::now();
  if (!failure.filesChanged) {
    // After every failed commit: a removed folder or WAL often shows first as an I/O error.
    std::string change = files_.changed();
    if (!change.empty()) {
      failure.filesChanged = true;
      failure.reason = change;
    }
  }
  if (failure.filesChanged) {
    enterFault(Fault::kFiles, failure.reason);
    dropRejections(rejections);
    // Right away, so that the events queued behind this batch can commit on the saved file.
    recover();
    return;
  }
  if (batch.size() == 1 || storageWide(failure.code)) {
    dropRejections(rejections);
    return enterFault(Fault::kCommit, "a commit failed: " + failure.reason);
  }
  // One event that cannot be written must not take its neighbours down with it: retry each
  // alone. Only when none commits is it the storage's fault rather than those events'.
  std::vector<std::size_t> failed;
  std::string lastReason = failure.reason;
  // The rejections ride with the first of these transactions that commits.
  for (std::size_t i = 0; i < batch.size(); ++i) {
    Failure one;
    if (!commitRange(batch, i, i + 1, rejections, one)) {
      batch[i]->outcome = unavailable(one.reason);
      failed.push_back(i);
      lastReason = one.reason;
    }
  }
  dropRejections(rejections);  // none committed
  if (failed.size() == batch.size()) {
    return enterFault(Fault::kCommit, "a commit failed: " + lastReason);
  }
  leaveFault();
  for (std::size_t i : failed) {
    storageLog().error("commit failed for one %s event: %s", batch[i]->event->event,
                       batch[i]->outcome.reason);
  }
}

void SqliteEventSink::tick() {
  if (fault_ != Fault::kFiles && writer_) {
    std::string change = files_.changed();
    if (!change.empty()) enterFault(Fault::kFiles, change);
  }
  if (fault_ == Fault::kFiles) {
    recover();
  } else if (fault_ == Fault::kCommit &&
             std::chrono::steady_clock::now() - lastFailedBatch_ >= kTickInterval) {
    // Without traffic nothing else would find out that the disk has room again. With traffic
    // the events' own commits decide: on a nearly full disk the probe's one row still fits
    // while batches do not, and each probe would log a recovery that the next batch undoes.
    probe();
  }
}

bool SqliteEventSink::probe() {
  if (!writer_) return false;
  try {
    sqlite::ImmediateTransaction tx(writer_->session);
    writer_->probeWrite(clock_.nowMillis(), highestId_);
    std::string change = files_.changed();
    if (!change.empty()) {
      enterFault(Fault::kFiles, change);
      return false;
    }
    tx.commit();
  } catch (const std::exception&) {
    return false;  // still in the fault that made this probe run; logged when it began
  }
  leaveFault();
  return true;
}

std::string SqliteEventSink::copyOpenDatabase() {
  const std::string folder = folderOf(settings_.path);
  createFolders(folder);
  const std::string copy = settings_.path + ".recovered-" + std::to_string(clock_.nowMillis());
  // The copy must never exist with a wider mode than the database (0600).
  int fd = ::open(copy.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  // Errors name the folder, not the copy: the recovery log line repeats only when they change.
  if (fd < 0) {
    throw StorageError("cannot create a copy of the database in " + folder + ": " +
                       std::strerror(errno));
  }
  ::close(fd);
  sqlite3* target = nullptr;
  int rc = ::sqlite3_open_v2(copy.c_str(), &target, SQLITE_OPEN_READWRITE, nullptr);
  std::string error;
  if (rc == SQLITE_OK) {
    // Rollback-journal mode with synchronous=FULL while copying: the copy is on disk when the
    // backup finishes. The copied header says WAL, which the reopened writer then uses.
    ::sqlite3_exec(target, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
    sqlite3_backup* backup = ::sqlite3_backup_init(target, "main", writer_->db(), "main");
    if (backup) {
      rc = ::sqlite3_backup_step(backup, -1);
      ::sqlite3_backup_finish(backup);
      if (rc != SQLITE_DONE) error = ::sqlite3_errstr(rc);
    } else {
      error = ::sqlite3_errmsg(target);
    }
  } else {
    error = target ? ::sqlite3_errmsg(target) : ::sqlite3_errstr(rc);
  }
  ::sqlite3_close(target);
  if (!error.empty()) {
    ::unlink(copy.c_str());
    throw StorageError("cannot copy the open database into " + folder + ": " + error);
  }
  return copy;
}

void SqliteEventSink::recover() {
  Poco::Logger& log = storageLog();
  try {
    if (writer_) {
      // The open connection is the only holder of what was acknowledged since the change; it
      // is retired only after a copy is on disk.
      const std::string copy = copyOpenDatabase();
      std::optional<FileId> atPath = identify(settings_.path);
      const bool foreign = atPath && (!files_.file || *atPath != *files_.file);
      auto removeIfOurs = [](const std::string& name, const std::optional<FileId>& ours, bool any) {
        std::optional<FileId> there = identify(name);
        if (there && (any || (ours && *there == *ours))) ::unlink(name.c_str());
      };
      if (foreign) {
        // Someone put another file at the path: keep ours beside it rather than overwrite it.
        log.error(
            "storage: %s holds another database file; the events this store wrote are "
            "kept in %s; ingest continues on the file at the path",
            settings_.path, copy);
      } else {
        // A "-wal" or "-shm" at the path would be read as the copy's own; none of them is
        // (the copy has everything): its WAL is empty.
        removeIfOurs(settings_.path + "-wal", files_.wal, true);
        removeIfOurs(settings_.path + "-shm", files_.shm, true);
        if (::rename(copy.c_str(), settings_.path.c_str()) != 0) {
          throw StorageError("cannot move " + copy + " to " + settings_.path + ": " +
                             std::strerror(errno));
        }
        syncFolder(folderOf(settings_.path));
        log.warning("storage: wrote the open database to %s", settings_.path);
      }
      if (foreign) {
        // Ours, left at the path by a rename of the database file alone, belong to no file there.
        removeIfOurs(settings_.path + "-wal", files_.wal, false);
        removeIfOurs(settings_.path + "-shm", files_.shm, false);
      }
      writer_->retire();
      // The board keeps it, also when reopening fails below.
      board_->movedToNewFile(std::shared_ptr<Writer>(std::move(writer_)));
    }
    openWriter();
    lastRecoveryError_.clear();
  } catch (const std::exception& e) {
    // Once a second until it works; logged when the reason changes, not every time.
    if (e.what() != lastRecoveryError_) {
      lastRecoveryError_ = e.what();
      log.error("storage: recovery failed, retrying every second: %s", lastRecoveryError_);
    }
    return;
  }
  // The files are fine again; a commit decides the rest (probe() now, or the next batch).
  fault_ = Fault::kCommit;
  problem_ = "reopened " + settings_.path + "; waiting for a commit to succeed";
  board_->set(StorageHealth{false, problem_, clock_.nowMillis()});
  probe();
}

void SqliteEventSink::enterFault(Fault kind, const std::string& problem) {
  if (kind == fault_) return;  // once per change of state, not once per request
  fault_ = kind;
  problem_ = problem;
  storageLog().error(
      "storage fault: %s; ingest answers 503 storage_unavailable until a commit succeeds on %s",
      problem, settings_.path);
  board_->set(StorageHealth{false, problem, clock_.nowMillis()});
}

void SqliteEventSink::leaveFault() {
  if (fault_ == Fault::kNone) return;
  fault_ = Fault::kNone;
  problem_.clear();
  storageLog().information("storage recovered: a commit succeeded on %s; acknowledging again",
                           settings_.path);
  board_->set(StorageHealth{true, {}, clock_.nowMillis()});
}

}  // namespace b24es::sqlite
