// What the store keeps about its conversation with each portal (SPEC §8.2, §8.3): the outcome
// of event bindings, and the offline queue (its mode, its last pass, the batches committed but
// not yet cleared at Bitrix24) together with the events pulled from it. Like storage.h, nothing
// here is SQLite specific.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "records.h"

namespace b24es {

// A row of `bindings`.
struct BindingRecord {
  std::string event;  // upper-case
  std::string type;   // online or offline
  std::string state;  // bound or error
  std::optional<std::string> error;
  std::int64_t updatedAt = 0;  // unix seconds
};

// A row of offline_state: how a portal's offline queue is pulled.
struct OfflineState {
  std::string mode = "reserve";  // reserve (clear=0 and event.offline.clear) or clear (clear=1)
  std::optional<std::int64_t> lastPassAt;
  std::optional<std::string> lastError;
  std::int64_t fetched = 0;  // records stored from the queue
};

// A batch whose records are committed and that Bitrix24 has not yet been told to clear.
struct OfflineNote {
  std::string processId;
  std::vector<std::int64_t> ids;  // the records' ID
};

// One record of event.offline.get, decoded and checked like an online event. event.dataJson is
// redacted; member_id and domain are the portal's.
struct OfflineEvent {
  IncomingEvent event;
  std::int64_t offlineId = 0;            // ID
  std::optional<std::string> messageId;  // MESSAGE_ID
};

// Thread-safe; any number of processes may use the same database: every write is one
// transaction, and storeOfflineBatch() skips what another process stored first. Every method
// throws StorageError when the database fails.
class PortalStateStore {
 public:
  virtual ~PortalStateStore() = default;

  // Installed portals (installed_at set, not uninstalled), by member_id; one when memberId is set.
  virtual std::vector<PortalRecord> installedPortals(
      const std::optional<std::string>& memberId) = 0;

  virtual std::vector<BindingRecord> bindings(const std::string& memberId) = 0;
  // Inserts or replaces the row of (memberId, event, type).
  virtual void recordBinding(const std::string& memberId, const BindingRecord& binding) = 0;
  virtual void removeBinding(const std::string& memberId, const std::string& event,
                             const std::string& type) = 0;

  // The portal's state (defaults when it has no row).
  virtual OfflineState offlineState(const std::string& memberId) = 0;
  virtual void setOfflineMode(const std::string& memberId, const std::string& mode) = 0;
  // Records the end of a pass: when, and its error (nullopt: it went well).
  virtual void recordOfflinePass(const std::string& memberId,
                                 const std::optional<std::string>& error,
                                 std::int64_t nowSeconds) = 0;

  // Stores `records` as events of `memberId` (source offline) and, when processId is not empty,
  // a note of the batch, in ONE transaction (with the event counters, as the writer keeps
  // them). A record whose (member_id, offline_id) is stored already is skipped. Returns how many
  // events it stored; adds them to offline_state.fetched.
  virtual std::size_t storeOfflineBatch(const std::string& memberId, const std::string& processId,
                                        const std::vector<OfflineEvent>& records,
                                        std::int64_t nowMillis) = 0;
  // The notes of batches not yet cleared, oldest first.
  virtual std::vector<OfflineNote> offlineNotes(const std::string& memberId) = 0;
  virtual void dropOfflineNote(const std::string& memberId, const std::string& processId) = 0;
};

}  // namespace b24es
