// Internal to the PostgreSQL backend: the TokenStore of token_store.h. A claim locks the token
// row (SELECT ... FOR UPDATE) inside its transaction, so claims in any number of processes take
// turns on it and at most one of them leases the row. A result is written only while the row
// still holds the claimed refresh token. Writes that touch the portal row lock it before the
// token row, the order in which the event writer locks them, so the two never deadlock.
#pragma once

#include "pg_pool.h"
#include "token_store.h"

namespace b24es::pg {

class PgTokenStore final : public TokenStore {
 public:
  explicit PgTokenStore(Pool& pool) : pool_(pool) {}
  std::vector<StoredToken> listTokens(const std::optional<std::string>& memberId) override;
  std::optional<StoredToken> findToken(const std::string& memberId,
                                       const std::optional<std::int64_t>& userId) override;
  Claim claim(const ClaimRequest& request, std::int64_t nowSeconds) override;
  bool recordSuccess(const Claim& claim, const RefreshedTokens& fresh,
                     std::int64_t nowSeconds) override;
  bool recordFailure(const Claim& claim, const std::string& error, bool dead,
                     std::int64_t nowSeconds) override;
  void release(const Claim& claim) override;

 private:
  Pool& pool_;  // thread-safe itself
};

}  // namespace b24es::pg
