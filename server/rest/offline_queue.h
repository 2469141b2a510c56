// Bitrix24's offline event queue (SPEC §8.3): a pass pulls what a portal queued while nobody
// took it. Each event.offline.get answer (clear=0, limit=50) is stored with a note of its batch
// in one transaction, then cleared at Bitrix24 with its process_id and ids, then the note is
// dropped; a pass first clears the batches older notes name (a crash between commit and clear).
// A record already stored is not stored again, so a crash anywhere loses nothing and stores
// nothing twice. A portal whose plan has no reservation (WRONG_LICENSE on clear=0) is pulled with
// clear=1 from then on. event.offline.clear is never called without a process_id.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "clock.h"
#include "metrics.h"
#include "portal_state.h"
#include "rest_client.h"
#include "storage.h"

namespace b24es {

struct OfflinePassReport {
  std::size_t fetched = 0;  // records stored by this pass
  bool failed = false;
  std::string error;  // when failed; no secrets
};

// An event.offline.get record as an event of `portal`: event = EVENT_NAME upper-cased, data =
// EVENT_DATA ({} when false or null), ts = TIMESTAMP_X, user_id = EVENT_ADDITIONAL.user_id when
// not 0, derived columns and redaction as for online events. nullopt when the record has no ID
// or no EVENT_NAME. Pure.
std::optional<OfflineEvent> offlineEventOf(const Poco::JSON::Object::Ptr& record,
                                           const PortalRecord& portal, std::int64_t nowSeconds);

// Passes of one process. Thread-safe; passes of one portal must not run at once in one process
// (PortalJobs and fetch-offline run one at a time); several processes may pass at once.
class OfflineQueue {
 public:
  // References must outlive the queue; `metrics` may be null.
  OfflineQueue(RestClient& rest, PortalStateStore& store, const Clock& clock,
               Metrics* metrics = nullptr);
  // One pass for `portal`. Throws StorageError only when the database fails before anything
  // was pulled; later failures end the pass as failed.
  OfflinePassReport pass(const PortalRecord& portal);

 private:
  // Clears one committed batch at Bitrix24 and drops its note; false (with `error`) on failure.
  bool clear(const PortalRecord& portal, const OfflineNote& note, std::string& error);

  RestClient& rest_;
  PortalStateStore& store_;
  const Clock& clock_;
  Metrics* const metrics_;
};

}  // namespace b24es
