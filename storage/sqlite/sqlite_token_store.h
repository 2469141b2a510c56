// Internal to the SQLite backend: the TokenStore over `tokens` and `portals` (SPEC §6, §7).
#pragma once

#include <Poco/Data/Session.h>

#include "mutex.h"
#include "sqlite_health.h"
#include "sqlite_storage.h"
#include "token_store.h"

namespace b24es::sqlite {

// One connection of its own, used by one call at a time: refreshes are rare and short, and
// every write is a BEGIN IMMEDIATE transaction, so ingest's writer waits at most for one small
// statement. Thread-safe.
class SqliteTokenStore final : public TokenStore {
 public:
  // Opens the connection. Throws StorageError. `settings` and `board` must outlive the store;
  // the store reopens its connection when the writer moved to a new file (board.generation()).
  SqliteTokenStore(const SqliteSettings& settings, const HealthBoard& board);

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
  std::optional<StoredToken> selectRow(const std::string& memberId, std::int64_t userId)
      REQUIRES(mutex_);
  void releaseLease(const Claim& claim) REQUIRES(mutex_);
  // Called first under mutex_ by each public method. Throws StorageError.
  void reopenIfMoved() REQUIRES(mutex_);

  const SqliteSettings& settings_;  // const after construction
  const HealthBoard& board_;        // const after construction; thread-safe itself
  Mutex mutex_;
  std::uint64_t generation_ GUARDED_BY(mutex_);  // the board's when session_ was opened
  Poco::Data::Session session_ GUARDED_BY(mutex_);
};

}  // namespace b24es::sqlite
