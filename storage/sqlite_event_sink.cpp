#include "sqlite_event_sink.h"

#include <Poco/Data/Session.h>
#include <Poco/Exception.h>
#include <Poco/Logger.h>
#include <Poco/Nullable.h>

#include "sqlite_connection.h"

using Poco::Nullable;
using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using Poco::Data::Keywords::use;

namespace b24es::sqlite {
namespace {

template <typename T>
Nullable<T> nullable(const std::optional<T>& v) {
  return v ? Nullable<T>(*v) : Nullable<T>();
}

Nullable<std::string> nullableText(const std::string& s) {
  return s.empty() ? Nullable<std::string>() : Nullable<std::string>(s);
}

}  // namespace

// The write connection and what one event writes. Used only by the writer thread, always
// inside an open ImmediateTransaction.
class SqliteEventSink::Writer {
 public:
  Writer(const SqliteSettings& settings, const Clock& clock)
      : session(openSession(settings)), clock_(clock) {}

  IngestOutcome apply(const IncomingEvent& e, const Verifier& verifier) {
    std::optional<PortalRecord> portal = loadPortal(e.memberId);
    Verdict verdict = verifier(e, portal);
    std::int64_t nowSec = clock_.nowSeconds();
    switch (verdict.action) {
      case Verdict::Action::kReject:
        return IngestOutcome{IngestOutcome::Status::kRejected, 0, verdict.reason};
      case Verdict::Action::kInstall:
        installPortal(e, nowSec);
        for (const TokenGrant& t : e.tokens) storeInstallToken(e.memberId, t, nowSec);
        break;
      case Verdict::Action::kStoreAndCreatePortal:
        createPortal(e, nowSec);
        for (const TokenGrant& t : e.tokens) storeEventToken(e.memberId, t, nowSec);
        break;
      case Verdict::Action::kStore:
        for (const TokenGrant& t : e.tokens) storeEventToken(e.memberId, t, nowSec);
        break;
      case Verdict::Action::kUninstall:
        createPortal(e, nowSec);  // a portal known only through a static token
        uninstallPortal(e.memberId, nowSec);
        break;
    }
    return IngestOutcome{IngestOutcome::Status::kStored, insertEvent(e), {}};
  }

  Poco::Data::Session session;

 private:
  std::optional<PortalRecord> loadPortal(const std::string& memberId) {
    return selectPortal(session, memberId);
  }

  void installPortal(const IncomingEvent& e, Poco::Int64 nowSec) {
    std::string memberId = e.memberId, domain = e.domain, appToken = e.applicationToken;
    auto client = nullableText(e.clientEndpoint), server = nullableText(e.serverEndpoint),
         status = nullableText(e.status), scope = nullableText(e.scope);
    // installed_at keeps the first install time while the portal stays installed.
    session << "INSERT INTO portals(member_id, domain, client_endpoint, server_endpoint, "
               "application_token, status, scope, installed_at, uninstalled_at, updated_at) "
               "VALUES(?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) "
               "ON CONFLICT(member_id) DO UPDATE SET domain = excluded.domain, "
               "client_endpoint = excluded.client_endpoint, "
               "server_endpoint = excluded.server_endpoint, "
               "application_token = excluded.application_token, status = excluded.status, "
               "scope = excluded.scope, "
               "installed_at = CASE WHEN portals.installed_at IS NULL "
               "OR portals.uninstalled_at IS NOT NULL THEN excluded.installed_at "
               "ELSE portals.installed_at END, "
               "uninstalled_at = NULL, updated_at = excluded.updated_at",
        use(memberId), use(domain), use(client), use(server), use(appToken), use(status),
        use(scope), use(nowSec), use(nowSec), now;
  }

  void createPortal(const IncomingEvent& e, Poco::Int64 nowSec) {
    std::string memberId = e.memberId, domain = e.domain;
    auto client = nullableText(e.clientEndpoint), server = nullableText(e.serverEndpoint),
         status = nullableText(e.status), scope = nullableText(e.scope);
    session << "INSERT INTO portals(member_id, domain, client_endpoint, server_endpoint, "
               "status, scope, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT(member_id) DO NOTHING",
        use(memberId), use(domain), use(client), use(server), use(status), use(scope), use(nowSec),
        now;
  }

  void uninstallPortal(const std::string& memberId, Poco::Int64 nowSec) {
    std::string key = memberId;
    session << "UPDATE portals SET uninstalled_at = ?, application_token = NULL, "
               "updated_at = ? WHERE member_id = ?",
        use(nowSec), use(nowSec), use(key), now;
    session << "DELETE FROM tokens WHERE member_id = ?", use(key), now;
  }

  // Install tokens replace whatever was stored: a reinstall starts a new authorization.
  void storeInstallToken(const std::string& memberId, const TokenGrant& t, Poco::Int64 nowSec) {
    std::string key = memberId, access = t.accessToken, scope = t.scope;
    Poco::Int64 userId = t.userId;
    auto refresh = nullable(t.refreshToken);
    auto expiresAt = nullable(t.expiresAt);
    Nullable<Poco::Int64> refreshAt =
        t.refreshToken ? Nullable<Poco::Int64>(nowSec) : Nullable<Poco::Int64>();
    session << "INSERT INTO tokens(member_id, user_id, access_token, refresh_token, expires_at, "
               "refresh_token_at, scope, source, updated_at) "
               "VALUES(?, ?, ?, ?, ?, ?, ?, 'install', ?) "
               "ON CONFLICT(member_id, user_id) DO UPDATE SET "
               "access_token = excluded.access_token, refresh_token = excluded.refresh_token, "
               "expires_at = excluded.expires_at, refresh_token_at = excluded.refresh_token_at, "
               "scope = excluded.scope, source = 'install', updated_at = excluded.updated_at, "
               "last_refresh_error = NULL, refresh_failures = 0",
        use(key), use(userId), use(access), use(refresh), use(expiresAt), use(refreshAt),
        use(scope), use(nowSec), now;
  }

  // An event's token replaces the stored one only when it expires later, and keeps the stored
  // refresh token when the event carries none (ordinary events carry only an access token).
  void storeEventToken(const std::string& memberId, const TokenGrant& t, Poco::Int64 nowSec) {
    std::string key = memberId, access = t.accessToken, scope = t.scope;
    Poco::Int64 userId = t.userId;
    auto refresh = nullable(t.refreshToken);
    auto expiresAt = nullable(t.expiresAt);
    Nullable<Poco::Int64> refreshAt =
        t.refreshToken ? Nullable<Poco::Int64>(nowSec) : Nullable<Poco::Int64>();
    session << "INSERT INTO tokens(member_id, user_id, access_token, refresh_token, expires_at, "
               "refresh_token_at, scope, source, updated_at) "
               "VALUES(?, ?, ?, ?, ?, ?, ?, 'event', ?) "
               "ON CONFLICT(member_id, user_id) DO UPDATE SET "
               "access_token = excluded.access_token, "
               "refresh_token = COALESCE(excluded.refresh_token, tokens.refresh_token), "
               "refresh_token_at = CASE WHEN excluded.refresh_token IS NULL "
               "THEN tokens.refresh_token_at ELSE excluded.refresh_token_at END, "
               "expires_at = excluded.expires_at, "
               "scope = COALESCE(NULLIF(excluded.scope, ''), tokens.scope), source = 'event', "
               "updated_at = excluded.updated_at "
               "WHERE tokens.expires_at IS NULL OR excluded.expires_at > tokens.expires_at",
        use(key), use(userId), use(access), use(refresh), use(expiresAt), use(refreshAt),
        use(scope), use(nowSec), now;
  }

  Poco::Int64 insertEvent(const IncomingEvent& e) {
    std::string memberId = e.memberId, event = e.event, data = e.dataJson;
    auto domain = nullableText(e.domain);
    auto handlerId = nullable(e.eventHandlerId);
    auto eventId = nullable(e.eventId);
    auto ts = nullable(e.ts), userId = nullable(e.userId), entityId = nullable(e.entityId),
         entityTypeId = nullable(e.entityTypeId);
    Poco::Int64 receivedAt = clock_.nowMillis();
    Poco::Int64 id = 0;
    session << "INSERT INTO events(member_id, domain, event, event_handler_id, event_id, ts, "
               "received_at, user_id, entity_id, entity_type_id, data) "
               "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        use(memberId), use(domain), use(event), use(handlerId), use(eventId), use(ts),
        use(receivedAt), use(userId), use(entityId), use(entityTypeId), use(data), into(id), now;
    return id;
  }

  const Clock& clock_;
};

SqliteEventSink::SqliteEventSink(const SqliteSettings& settings, const Clock& clock,
                                 Verifier verifier, const SinkSettings& sinkSettings)
    : clock_(clock),
      verifier_(std::move(verifier)),
      sinkSettings_(sinkSettings),
      writer_(std::make_unique<Writer>(settings, clock)) {
  thread_ = std::thread([this] { run(); });
}

SqliteEventSink::~SqliteEventSink() { close(); }

IngestOutcome SqliteEventSink::write(IncomingEvent event) {
  Pending pending{std::move(event), {}};
  std::future<IngestOutcome> outcome = pending.done.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_) {
      return IngestOutcome{IngestOutcome::Status::kUnavailable, 0, "the store is shutting down"};
    }
    queue_.push_back(&pending);
  }
  wake_.notify_one();
  return outcome.get();
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
  Poco::Logger& log = Poco::Logger::get("b24es.storage");
  std::vector<Pending*> batch;
  std::vector<IngestOutcome> outcomes;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closing and drained
      while (!queue_.empty() && batch.size() < sinkSettings_.maxBatch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    // One transaction for the whole batch. When it fails, each event is retried alone so one
    // event that cannot be written does not take its neighbours down with it.
    auto commitAll = [&](std::size_t from, std::size_t to) {
      sqlite::ImmediateTransaction tx(writer_->session);
      for (std::size_t i = from; i < to; ++i) {
        outcomes[i] = writer_->apply(batch[i]->event, verifier_);
      }
      tx.commit();
    };
    outcomes.assign(batch.size(), IngestOutcome{});
    try {
      commitAll(0, batch.size());
    } catch (const std::exception& batchError) {
      std::string reason = batchError.what();
      if (batch.size() == 1) {
        outcomes[0] = IngestOutcome{IngestOutcome::Status::kUnavailable, 0, reason};
        log.error("commit failed for 1 event: %s", reason);
      } else {
        log.warning("commit of %z events failed (%s); retrying one by one", batch.size(), reason);
        for (std::size_t i = 0; i < batch.size(); ++i) {
          try {
            commitAll(i, i + 1);
          } catch (const std::exception& e) {
            outcomes[i] = IngestOutcome{IngestOutcome::Status::kUnavailable, 0, e.what()};
            log.error("commit failed for one %s event: %s", batch[i]->event.event,
                      std::string(e.what()));
          }
        }
      }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->done.set_value(outcomes[i]);
    if (sinkSettings_.onBatch) sinkSettings_.onBatch(batch.size());
    batch.clear();
  }
}

}  // namespace b24es::sqlite
