// Internal to the PostgreSQL backend: the PortalStateStore of portal_state.h (bindings, the
// offline queue's state and notes, and the events pulled from it). Each call takes a pooled
// connection and is one transaction; several receivers may pull one portal's queue at once.
#pragma once

#include "pg_pool.h"
#include "portal_state.h"

namespace b24es::pg {

class PgPortalStateStore final : public PortalStateStore {
 public:
  explicit PgPortalStateStore(Pool& pool) : pool_(pool) {}

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
  Pool& pool_;  // thread-safe itself
};

}  // namespace b24es::pg
