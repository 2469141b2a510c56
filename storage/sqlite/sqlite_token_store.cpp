#include "sqlite_token_store.h"

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/Statement.h>
#include <Poco/Exception.h>
#include <Poco/Nullable.h>
#include <Poco/UUIDGenerator.h>

#include "sqlite_connection.h"

using Poco::Nullable;
using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using Poco::Data::Keywords::use;

namespace b24es::sqlite {
namespace {

const char* const kSelectColumns =
    "SELECT t.member_id, t.user_id, p.domain, p.server_endpoint, t.access_token, "
    "t.refresh_token, t.expires_at, t.refresh_token_at, t.source, t.last_refresh_at, "
    "t.last_refresh_error, t.refresh_failures, t.refresh_dead_at, t.refresh_lease_until, "
    "t.from_install, "
    // proven (StoredToken::proven); the EXISTS is one search of events_member_event, on the
    // keys of migration 0011 (no ONAPPINSTALL key yet: every event is another).
    "(t.source <> 'install' OR EXISTS (SELECT 1 FROM event_rows e WHERE e.portal = "
    "(SELECT key FROM event_portals WHERE member_id = t.member_id) "
    "AND e.code IS NOT (SELECT key FROM event_codes WHERE event = 'ONAPPINSTALL'))) "
    "FROM tokens t JOIN portals p ON p.member_id = t.member_id ";

std::optional<std::int64_t> optionalInt(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return std::nullopt;
  return v.convert<Poco::Int64>();
}

std::optional<std::string> optionalText(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return std::nullopt;
  return v.convert<std::string>();
}

std::vector<StoredToken> rowsOf(Poco::Data::Statement& select) {
  select.execute();
  Poco::Data::RecordSet rs(select);
  std::vector<StoredToken> rows;
  for (std::size_t r = 0; r < rs.rowCount(); ++r) {
    StoredToken t;
    t.memberId = rs.value(0, r).convert<std::string>();
    t.userId = rs.value(1, r).convert<Poco::Int64>();
    t.domain = optionalText(rs.value(2, r)).value_or("");
    t.serverEndpoint = optionalText(rs.value(3, r)).value_or("");
    t.accessToken = optionalText(rs.value(4, r)).value_or("");
    t.refreshToken = optionalText(rs.value(5, r));
    t.expiresAt = optionalInt(rs.value(6, r));
    t.refreshTokenAt = optionalInt(rs.value(7, r));
    t.source = optionalText(rs.value(8, r)).value_or("");
    t.lastRefreshAt = optionalInt(rs.value(9, r));
    t.lastRefreshError = optionalText(rs.value(10, r));
    t.refreshFailures = optionalInt(rs.value(11, r)).value_or(0);
    t.deadAt = optionalInt(rs.value(12, r));
    t.leaseUntil = optionalInt(rs.value(13, r));
    t.fromInstall = optionalInt(rs.value(14, r)).value_or(0) != 0;
    t.proven = optionalInt(rs.value(15, r)).value_or(0) != 0;
    rows.push_back(std::move(t));
  }
  return rows;
}

Poco::Int64 changes(Poco::Data::Session& session) {
  Poco::Int64 n = 0;
  session << "SELECT changes()", into(n), now;
  return n;
}

Nullable<std::string> nullableText(const std::string& s) {
  return s.empty() ? Nullable<std::string>() : Nullable<std::string>(s);
}

// Runs `body` and turns POCO's database exceptions into StorageError, the interface's one
// failure type.
template <typename F>
auto guarded(F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Poco::Exception& e) {
    throw StorageError("token store: " + e.displayText());
  }
}

}  // namespace

SqliteTokenStore::SqliteTokenStore(const SqliteSettings& settings, const HealthBoard& board)
    : settings_(settings),
      board_(board),
      generation_(board.generation()),
      session_(openSession(settings)) {}

void SqliteTokenStore::reopenIfMoved() {
  std::uint64_t now = board_.generation();
  if (now == generation_) return;
  // Token writes on the old file would be lost with it, refresh tokens included.
  session_ = openSession(settings_);
  generation_ = now;
}

std::vector<StoredToken> SqliteTokenStore::listTokens(const std::optional<std::string>& memberId) {
  return guarded([&] {
    MutexLock lock(mutex_);
    reopenIfMoved();
    Poco::Data::Statement select(session_);
    std::string key = memberId.value_or("");
    if (memberId) {
      select << std::string(kSelectColumns) +
                    "WHERE t.member_id = ? ORDER BY t.member_id, t.user_id",
          use(key);
    } else {
      select << std::string(kSelectColumns) + "ORDER BY t.member_id, t.user_id";
    }
    return rowsOf(select);
  });
}

std::optional<StoredToken> SqliteTokenStore::findToken(const std::string& memberId,
                                                       const std::optional<std::int64_t>& userId) {
  return guarded([&]() -> std::optional<StoredToken> {
    MutexLock lock(mutex_);
    reopenIfMoved();
    if (userId) return selectRow(memberId, *userId);
    std::string key = memberId;
    Poco::Data::Statement select(session_);
    select << std::string(kSelectColumns) +
                  "WHERE t.member_id = ? ORDER BY t.from_install DESC, t.user_id LIMIT 1",
        use(key);
    std::vector<StoredToken> rows = rowsOf(select);
    if (rows.empty()) return std::nullopt;
    return rows.front();
  });
}

std::optional<StoredToken> SqliteTokenStore::selectRow(const std::string& memberId,
                                                       std::int64_t userId) {
  std::string key = memberId;
  Poco::Int64 user = userId;
  Poco::Data::Statement select(session_);
  select << std::string(kSelectColumns) + "WHERE t.member_id = ? AND t.user_id = ?", use(key),
      use(user);
  std::vector<StoredToken> rows = rowsOf(select);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

Claim SqliteTokenStore::claim(const ClaimRequest& request, std::int64_t nowSeconds) {
  return guarded([&] {
    MutexLock lock(mutex_);
    reopenIfMoved();
    ImmediateTransaction tx(session_);
    Claim claim;
    claim.token = selectRow(request.memberId, request.userId);
    if (!claim.token) {
      claim.status = Claim::Status::kGone;
      return claim;
    }
    const StoredToken& row = *claim.token;
    if (!row.refreshToken || row.refreshToken->empty()) {
      claim.status = Claim::Status::kNoRefreshToken;
    } else if (request.expectedRefreshToken && row.refreshToken != request.expectedRefreshToken) {
      claim.status = Claim::Status::kChanged;
    } else if (row.leaseUntil && *row.leaseUntil > nowSeconds) {
      claim.status = Claim::Status::kBusy;
    } else if (row.deadAt && !request.includeDead) {
      claim.status = Claim::Status::kDead;
    } else if (request.stillWanted && !request.stillWanted(row)) {
      claim.status = Claim::Status::kNotWanted;
    } else {
      claim.status = Claim::Status::kClaimed;
      claim.leaseOwner = Poco::UUIDGenerator::defaultGenerator().createRandom().toString();
      std::string key = request.memberId, owner = claim.leaseOwner;
      Poco::Int64 user = request.userId, until = nowSeconds + request.leaseSeconds;
      session_ << "UPDATE tokens SET refresh_lease_until = ?, refresh_lease_owner = ? "
                  "WHERE member_id = ? AND user_id = ?",
          use(until), use(owner), use(key), use(user), now;
      tx.commit();
    }
    return claim;
  });
}

bool SqliteTokenStore::recordSuccess(const Claim& claim, const RefreshedTokens& fresh,
                                     std::int64_t nowSeconds) {
  return guarded([&] {
    MutexLock lock(mutex_);
    reopenIfMoved();
    ImmediateTransaction tx(session_);
    std::string key = claim.token->memberId, spent = claim.token->refreshToken.value_or("");
    Poco::Int64 user = claim.token->userId, at = nowSeconds;
    std::string access = fresh.accessToken, refresh = fresh.refreshToken, scope = fresh.scope;
    Nullable<Poco::Int64> expiresAt =
        fresh.expiresAt ? Nullable<Poco::Int64>(*fresh.expiresAt) : Nullable<Poco::Int64>();
    // Empty strings keep the stored value (token_store.h), and a kept refresh token keeps the
    // time it was obtained.
    session_ << "UPDATE tokens SET access_token = COALESCE(NULLIF(?, ''), access_token), "
                "refresh_token = COALESCE(NULLIF(?, ''), refresh_token), expires_at = ?, "
                "refresh_token_at = CASE WHEN ? = '' THEN refresh_token_at ELSE ? END, "
                "scope = COALESCE(NULLIF(?, ''), scope), "
                "source = 'refresh', updated_at = ?, last_refresh_at = ?, "
                "last_refresh_error = NULL, refresh_failures = 0, refresh_dead_at = NULL, "
                "refresh_lease_until = NULL, refresh_lease_owner = NULL "
                "WHERE member_id = ? AND user_id = ? AND refresh_token = ?",
        use(access), use(refresh), use(expiresAt), use(refresh), use(at), use(scope), use(at),
        use(at), use(key), use(user), use(spent), now;
    bool written = changes(session_) == 1;
    if (written) {
      auto client = nullableText(fresh.clientEndpoint), server = nullableText(fresh.serverEndpoint),
           status = nullableText(fresh.status);
      session_ << "UPDATE portals SET client_endpoint = COALESCE(?, client_endpoint), "
                  "server_endpoint = COALESCE(?, server_endpoint), "
                  "status = COALESCE(?, status), updated_at = ? WHERE member_id = ?",
          use(client), use(server), use(status), use(at), use(key), now;
    } else {
      releaseLease(claim);
    }
    tx.commit();
    return written;
  });
}

bool SqliteTokenStore::recordFailure(const Claim& claim, const std::string& error, bool dead,
                                     std::int64_t nowSeconds) {
  return guarded([&] {
    MutexLock lock(mutex_);
    reopenIfMoved();
    ImmediateTransaction tx(session_);
    std::string key = claim.token->memberId, spent = claim.token->refreshToken.value_or("");
    std::string message = error;
    Poco::Int64 user = claim.token->userId, at = nowSeconds;
    Nullable<Poco::Int64> deadAt = dead ? Nullable<Poco::Int64>(at) : Nullable<Poco::Int64>();
    session_ << "UPDATE tokens SET last_refresh_at = ?, last_refresh_error = ?, "
                "refresh_failures = refresh_failures + 1, "
                "refresh_dead_at = COALESCE(?, refresh_dead_at), "
                "refresh_lease_until = NULL, refresh_lease_owner = NULL "
                "WHERE member_id = ? AND user_id = ? AND refresh_token = ?",
        use(at), use(message), use(deadAt), use(key), use(user), use(spent), now;
    bool written = changes(session_) == 1;
    if (!written) releaseLease(claim);
    tx.commit();
    return written;
  });
}

void SqliteTokenStore::release(const Claim& claim) {
  guarded([&] {
    MutexLock lock(mutex_);
    reopenIfMoved();
    ImmediateTransaction tx(session_);
    releaseLease(claim);
    tx.commit();
  });
}

void SqliteTokenStore::releaseLease(const Claim& claim) {
  std::string key = claim.token->memberId, owner = claim.leaseOwner;
  Poco::Int64 user = claim.token->userId;
  session_ << "UPDATE tokens SET refresh_lease_until = NULL, refresh_lease_owner = NULL "
              "WHERE member_id = ? AND user_id = ? AND refresh_lease_owner = ?",
      use(key), use(user), use(owner), now;
}

}  // namespace b24es::sqlite
