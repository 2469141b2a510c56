#include "pg_token_store.h"

#include <Poco/UUIDGenerator.h>

namespace b24es::pg {
namespace {

const std::string kSelectColumns =
    "SELECT t.member_id, t.user_id, p.domain, p.server_endpoint, t.access_token, "
    "t.refresh_token, t.expires_at, t.refresh_token_at, t.source, t.last_refresh_at, "
    "t.last_refresh_error, t.refresh_failures, t.refresh_dead_at, t.refresh_lease_until, "
    "t.from_install, "
    // proven (StoredToken::proven); the EXISTS is one search of events_member_event.
    "(t.source <> 'install' OR EXISTS (SELECT 1 FROM events e WHERE e.member_id = t.member_id "
    "AND e.event <> 'ONAPPINSTALL')) "
    "FROM tokens t JOIN portals p ON p.member_id = t.member_id ";

std::vector<StoredToken> rowsOf(const Result& r) {
  std::vector<StoredToken> rows;
  for (int i = 0; i < r.rows(); ++i) {
    StoredToken t;
    t.memberId = r.text(i, 0);
    t.userId = r.integer(i, 1);
    t.domain = r.optionalText(i, 2).value_or("");
    t.serverEndpoint = r.optionalText(i, 3).value_or("");
    t.accessToken = r.optionalText(i, 4).value_or("");
    t.refreshToken = r.optionalText(i, 5);
    t.expiresAt = r.optionalInteger(i, 6);
    t.refreshTokenAt = r.optionalInteger(i, 7);
    t.source = r.optionalText(i, 8).value_or("");
    t.lastRefreshAt = r.optionalInteger(i, 9);
    t.lastRefreshError = r.optionalText(i, 10);
    t.refreshFailures = r.optionalInteger(i, 11).value_or(0);
    t.deadAt = r.optionalInteger(i, 12);
    t.leaseUntil = r.optionalInteger(i, 13);
    t.fromInstall = r.optionalInteger(i, 14).value_or(0) != 0;
    t.proven = r.boolean(i, 15);
    rows.push_back(std::move(t));
  }
  return rows;
}

std::optional<StoredToken> first(const Result& r) {
  std::vector<StoredToken> rows = rowsOf(r);
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}

// Releases `claim`'s lease if it still holds it. Inside the caller's transaction.
void releaseLease(Connection& c, const Claim& claim) {
  c.query(
      "UPDATE tokens SET refresh_lease_until = NULL, refresh_lease_owner = NULL "
      "WHERE member_id = $1 AND user_id = $2 AND refresh_lease_owner = $3",
      Params().add(claim.token->memberId).add(claim.token->userId).add(claim.leaseOwner));
}

// The portal row first, then the token row: the event writer's order (see the header).
void lockPortal(Connection& c, const std::string& memberId) {
  c.query("SELECT 1 FROM portals WHERE member_id = $1 FOR UPDATE", Params().add(memberId));
}

}  // namespace

std::vector<StoredToken> PgTokenStore::listTokens(const std::optional<std::string>& memberId) {
  Pool::Lease c = pool_.get();
  if (memberId) {
    return rowsOf(
        c->query(kSelectColumns + "WHERE t.member_id = $1 ORDER BY t.member_id, t.user_id",
                 Params().add(*memberId)));
  }
  return rowsOf(c->query(kSelectColumns + "ORDER BY t.member_id, t.user_id"));
}

std::optional<StoredToken> PgTokenStore::findToken(const std::string& memberId,
                                                   const std::optional<std::int64_t>& userId) {
  Pool::Lease c = pool_.get();
  if (userId) {
    return first(c->query(kSelectColumns + "WHERE t.member_id = $1 AND t.user_id = $2",
                          Params().add(memberId).add(*userId)));
  }
  return first(c->query(
      kSelectColumns + "WHERE t.member_id = $1 ORDER BY t.from_install DESC, t.user_id LIMIT 1",
      Params().add(memberId)));
}

Claim PgTokenStore::claim(const ClaimRequest& request, std::int64_t nowSeconds) {
  Pool::Lease c = pool_.get();
  Transaction tx(*c);
  Claim claim;
  // FOR UPDATE OF t: claims of one row in any number of processes take turns here; the one
  // after a winner reads the lease the winner wrote.
  claim.token = first(c->query(kSelectColumns + "WHERE t.member_id = $1 AND t.user_id = $2 "
                                                "FOR UPDATE OF t",
                               Params().add(request.memberId).add(request.userId)));
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
    c->query(
        "UPDATE tokens SET refresh_lease_until = $1, refresh_lease_owner = $2 "
        "WHERE member_id = $3 AND user_id = $4",
        Params()
            .add(nowSeconds + request.leaseSeconds)
            .add(claim.leaseOwner)
            .add(request.memberId)
            .add(request.userId));
    tx.commit();
  }
  return claim;
}

bool PgTokenStore::recordSuccess(const Claim& claim, const RefreshedTokens& fresh,
                                 std::int64_t nowSeconds) {
  Pool::Lease c = pool_.get();
  Transaction tx(*c);
  lockPortal(*c, claim.token->memberId);
  // Empty strings keep the stored value (token_store.h), and a kept refresh token keeps the
  // time it was obtained.
  Result updated = c->query(
      "UPDATE tokens SET access_token = COALESCE(NULLIF($1, ''), access_token), "
      "refresh_token = COALESCE(NULLIF($2, ''), refresh_token), expires_at = $3, "
      "refresh_token_at = CASE WHEN $2 = '' THEN refresh_token_at ELSE $4 END, "
      "scope = COALESCE(NULLIF($5, ''), scope), "
      "source = 'refresh', updated_at = $4, last_refresh_at = $4, "
      "last_refresh_error = NULL, refresh_failures = 0, refresh_dead_at = NULL, "
      "refresh_lease_until = NULL, refresh_lease_owner = NULL "
      "WHERE member_id = $6 AND user_id = $7 AND refresh_token = $8",
      Params()
          .add(fresh.accessToken)
          .add(fresh.refreshToken)
          .add(fresh.expiresAt)
          .add(nowSeconds)
          .add(fresh.scope)
          .add(claim.token->memberId)
          .add(claim.token->userId)
          .add(claim.token->refreshToken.value_or("")));
  const bool written = updated.affected() == 1;
  if (written) {
    c->query(
        "UPDATE portals SET client_endpoint = COALESCE($1, client_endpoint), "
        "server_endpoint = COALESCE($2, server_endpoint), "
        "status = COALESCE($3, status), updated_at = $4 WHERE member_id = $5",
        Params()
            .textOrNull(fresh.clientEndpoint)
            .textOrNull(fresh.serverEndpoint)
            .textOrNull(fresh.status)
            .add(nowSeconds)
            .add(claim.token->memberId));
  } else {
    releaseLease(*c, claim);
  }
  tx.commit();
  return written;
}

bool PgTokenStore::recordFailure(const Claim& claim, const std::string& error, bool dead,
                                 std::int64_t nowSeconds) {
  Pool::Lease c = pool_.get();
  Transaction tx(*c);
  Params params;
  params.add(nowSeconds).add(error);
  if (dead) {
    params.add(nowSeconds);
  } else {
    params.nullValue();
  }
  params.add(claim.token->memberId)
      .add(claim.token->userId)
      .add(claim.token->refreshToken.value_or(""));
  Result updated = c->query(
      "UPDATE tokens SET last_refresh_at = $1, last_refresh_error = $2, "
      "refresh_failures = refresh_failures + 1, "
      "refresh_dead_at = COALESCE($3, refresh_dead_at), "
      "refresh_lease_until = NULL, refresh_lease_owner = NULL "
      "WHERE member_id = $4 AND user_id = $5 AND refresh_token = $6",
      params);
  const bool written = updated.affected() == 1;
  if (!written) releaseLease(*c, claim);
  tx.commit();
  return written;
}

void PgTokenStore::release(const Claim& claim) {
  Pool::Lease c = pool_.get();
  Transaction tx(*c);
  releaseLease(*c, claim);
  tx.commit();
}

}  // namespace b24es::pg
