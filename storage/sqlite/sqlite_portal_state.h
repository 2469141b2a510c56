// Internal to the SQLite backend: the PortalStateStore over `bindings`, `offline_state`,
// `offline_batches` and the offline rows of `events` (SPEC §7, §8; migration 0007).
#pragma once

#include <Poco/Data/Session.h>
#include <sqlite3.h>

#include "mutex.h"
#include "portal_state.h"
#include "sqlite_health.h"
#include "sqlite_storage.h"

namespace b24es::sqlite {

// One connection of its own, used by one call at a time: these calls are rare (a pass every few
// minutes, a sync after an install), and a write is one BEGIN IMMEDIATE transaction of at most
// one offline batch (50 records), so ingest's writer waits at most a few milliseconds for it.
// Thread-safe.
class SqlitePortalStateStore final : public PortalStateStore {
 public:
  // Opens the connection. Throws StorageError. `settings` and `board` must outlive the store;
  // it reopens its connection when the writer moved to a new file (board.generation()).
  SqlitePortalStateStore(const SqliteSettings& settings, const HealthBoard& board);

  std::vector<PortalRecord> installedPortals(const std::optional<std::string>& memberId) override;
  std::vector<BindingRecord> bindings(const std::string& memberId) override;
  void recordBinding(const std::string& memberId, const BindingRecord& binding) override;
  void removeBinding(const std::string& memberId, const std::string& event,
                     const std::string& type) override;
  OfflineState offlineState(const std::string& memberId) override;
  void setOfflineMode(const std::string& memberId, const std::string& mode) override;
  void recordOfflinePass(const std::string& memberId, const std::optional<std::string>& error,
                         std::int64_t nowSeconds) override;
  std::size_t storeOfflineBatch(const std::string& memberId, const std::string& processId,
                                const std::vector<OfflineEvent>& records,
                                std::int64_t nowMillis) override;
  std::vector<OfflineNote> offlineNotes(const std::string& memberId) override;
  void dropOfflineNote(const std::string& memberId, const std::string& processId) override;

 private:
  // Called first under mutex_ by each public method. Throws StorageError.
  void reopenIfMoved() REQUIRES(mutex_);
  sqlite3* db() REQUIRES(mutex_);

  const SqliteSettings& settings_;  // const after construction
  const HealthBoard& board_;        // const after construction; thread-safe itself
  Mutex mutex_;
  std::uint64_t generation_ GUARDED_BY(mutex_);  // the board's when session_ was opened
  Poco::Data::Session session_ GUARDED_BY(mutex_);
};

}  // namespace b24es::sqlite
