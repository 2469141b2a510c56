#include "sqlite_event_sink.h"

#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Exception.h>
#include <Poco/Logger.h>

#include <pthread.h>

#include <algorithm>
#include <map>
#include <unordered_map>
#include <utility>

#include "sqlite_connection.h"
#include "sqlite_statement.h"

namespace b24es::sqlite {

// The write connection, its prepared statements and what one event writes. Used only by the
// writer thread, always inside an open ImmediateTransaction.
class SqliteEventSink::Writer {
 public:
  Writer(const SqliteSettings& settings, const Clock& clock)
      : session(openSession(settings)),
        clock_(clock),
        db_(Poco::Data::SQLite::Utility::dbHandle(session)),
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
        insertEvent_(db_,
                     "INSERT INTO events(member_id, domain, event, event_handler_id, event_id, "
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
    // BUSY: another process is checkpointing; the next batch tries again.
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      Poco::Logger::get("b24es.storage")
          .warning("WAL checkpoint failed: %s", std::string(::sqlite3_errmsg(db_)));
    }
  }

  // Called at the start of every transaction: what the previous one learned may have been
  // rolled back, or changed since by another connection.
  void beginTransaction() {
    portals_.clear();
    grants_.clear();
  }

  IngestOutcome apply(const IncomingEvent& e, const Verifier& verifier) {
    Verdict verdict = verifier(e, loadPortal(e.memberId));
    std::int64_t nowSec = clock_.nowSeconds();
    switch (verdict.action) {
      case Verdict::Action::kReject:
        return IngestOutcome{IngestOutcome::Status::kRejected, 0, verdict.reason};
      case Verdict::Action::kInstall:
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
        break;
    }
    insertEvent_.bind(1, e.memberId).bindTextOrNull(2, e.domain).bind(3, e.event);
    insertEvent_.bind(4, e.eventHandlerId).bind(5, e.eventId).bind(6, e.ts);
    insertEvent_.bind(7, clock_.nowMillis()).bind(8, e.userId).bind(9, e.entityId);
    insertEvent_.bind(10, e.entityTypeId).bind(11, e.dataJson).run();
    return IngestOutcome{IngestOutcome::Status::kStored, ::sqlite3_last_insert_rowid(db_), {}};
  }

  Poco::Data::Session session;

 private:
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

  static int onWalCommit(void* self, sqlite3*, const char*, int frames) {
    static_cast<Writer*>(self)->walFrames_ = frames;
    return SQLITE_OK;
  }

  const Clock& clock_;
  sqlite3* const db_;  // owned by session
  int walFrames_ = 0;  // frames in the WAL after the last commit (set by onWalCommit)
  Statement selectPortal_;
  Statement installPortal_;
  Statement createPortal_;
  Statement uninstallPortal_;
  Statement deleteTokens_;
  Statement rotateToken_;
  Statement installToken_;
  Statement eventToken_;
  Statement insertEvent_;
  // What this transaction already read or wrote (see beginTransaction()).
  std::unordered_map<std::string, std::optional<PortalRecord>> portals_;  // by member_id
  std::map<std::pair<std::string, std::int64_t>, TokenGrant> grants_;     // by (member, user)
};

SqliteEventSink::SqliteEventSink(const SqliteSettings& settings, const Clock& clock,
                                 Verifier verifier, const SinkSettings& sinkSettings)
    : verifier_(std::move(verifier)),
      sinkSettings_(sinkSettings),
      writer_(std::make_unique<Writer>(settings, clock)) {
  // A 16 MiB page cache keeps the upper levels of the eight events indexes in memory (SQLite's
  // default 2 MiB made each insert re-read them).
  exec(writer_->session, "PRAGMA cache_size=-16384");
  thread_ = std::thread([this] { run(); });
}

SqliteEventSink::~SqliteEventSink() { close(); }

std::shared_ptr<SqliteEventSink::Group> SqliteEventSink::enqueue(Pending* pending,
                                                                 std::unique_ptr<Pending>& owned) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (closing_) return nullptr;
  if (groups_.empty() || groups_.back()->items.size() >= sinkSettings_.maxBatch) {
    groups_.push_back(std::make_shared<Group>());
  }
  std::shared_ptr<Group> group = groups_.back();
  // Room first, so that linking `pending` cannot fail halfway (items without its owner).
  auto makeRoom = [](auto& v) {
    if (v.size() == v.capacity()) v.reserve(std::max<std::size_t>(16, 2 * v.capacity()));
  };
  makeRoom(group->items);
  if (owned) makeRoom(group->submitted);
  group->items.push_back(pending);
  if (owned) group->submitted.push_back(std::move(owned));
  lock.unlock();
  wake_.notify_one();
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

void SqliteEventSink::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void SqliteEventSink::run() {
#if defined(__linux__)
  // Shown by top -H, ps -L and perf, so that the thread every request waits for can be watched.
  ::pthread_setname_np(::pthread_self(), "b24es-writer");
#endif
  Poco::Logger& log = Poco::Logger::get("b24es.storage");
  for (;;) {
    std::shared_ptr<Group> group;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return closing_ || !groups_.empty(); });
      if (groups_.empty()) return;  // closing and drained
      // Once off the queue a group receives no more events: writers append to groups_.back().
      group = groups_.front();
      groups_.pop_front();
    }
    std::vector<Pending*>& batch = group->items;
    // One transaction for the whole batch. When it fails, each event is retried alone so one
    // event that cannot be written does not take its neighbours down with it.
    auto commitAll = [&](std::size_t from, std::size_t to) {
      sqlite::ImmediateTransaction tx(writer_->session);
      writer_->beginTransaction();
      for (std::size_t i = from; i < to; ++i) {
        batch[i]->outcome = writer_->apply(*batch[i]->event, verifier_);
      }
      tx.commit();
    };
    try {
      commitAll(0, batch.size());
    } catch (const std::exception& batchError) {
      std::string reason = batchError.what();
      if (batch.size() == 1) {
        batch[0]->outcome = IngestOutcome{IngestOutcome::Status::kUnavailable, 0, reason};
        log.error("commit failed for 1 event: %s", reason);
      } else {
        log.warning("commit of %z events failed (%s); retrying one by one", batch.size(), reason);
        for (std::size_t i = 0; i < batch.size(); ++i) {
          try {
            commitAll(i, i + 1);
          } catch (const std::exception& e) {
            batch[i]->outcome = IngestOutcome{IngestOutcome::Status::kUnavailable, 0, e.what()};
            log.error("commit failed for one %s event: %s", batch[i]->event->event,
                      std::string(e.what()));
          }
        }
      }
    }
    const std::size_t size = batch.size();  // `batch` may be gone once the waiters wake
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
    writer_->checkpointIfLarge();
  }
}

}  // namespace b24es::sqlite
