// The storage contract of b24-event-store. The server talks only to these interfaces; the
// embedded SQLite backend (sqlite_storage.h) implements them, and a PostgreSQL backend can
// implement them later without touching server/. Nothing here assumes that one process owns
// the database: every decision that depends on stored state is taken inside a transaction.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "event_query.h"
#include "portal_state.h"
#include "records.h"
#include "rejections.h"
#include "token_store.h"

namespace b24es {

// One migration file as known to the binary (embedded at build time) or to a test.
struct Migration {
  int version = 0;   // from the file name: 0001_initial.sql is version 1
  std::string name;  // the file name
  std::string sql;
};

// A migration as the database and the binary see it.
struct MigrationState {
  int version = 0;
  std::string name;
  std::string checksum;  // SHA-256 of the file as the binary has it, hex
  std::optional<std::int64_t> appliedAt;
  bool changed = false;  // applied with a different checksum: start-up refuses
};

// Result of a migrator call: ok, or a sentence naming the file that stopped it.
struct MigrationResult {
  bool ok = false;
  int schemaVersion = 0;
  std::vector<std::string> applied;  // file names applied by this call
  std::string error;
};

// Applies numbered migrations in order, each in its own transaction with its
// schema_migrations row. Not thread-safe; call from one thread at start-up. Safe against a
// second process migrating at the same time (the loser sees the rows the winner wrote).
class Migrator {
 public:
  virtual ~Migrator() = default;
  // Applies every pending migration. Fails, applying nothing more, when an applied file's
  // checksum changed or a statement fails; the failing migration is rolled back whole.
  virtual MigrationResult apply() = 0;
  // Every known and applied migration, oldest first. Throws StorageError when the database
  // cannot be read.
  virtual std::vector<MigrationState> status() = 0;
};

// Decides, from the stored portal, whether an event may be stored and how. Called by the
// EventSink inside its write transaction; must be pure and thread-safe.
using Verifier = std::function<Verdict(const IncomingEvent&, const std::optional<PortalRecord>&)>;

// Which stored events a purge deletes (SPEC §9). Events are selected only by memberId or
// receivedBefore; a request with neither deletes none (it may still prune the timeline).
struct PurgeRequest {
  std::optional<std::string> memberId;          // this portal's events,
  std::optional<std::int64_t> beforeId;         // with memberId: only ids below this one
  std::optional<std::int64_t> receivedBefore;   // events received before this (unix ms)
  std::optional<std::int64_t> pruneTimelineAt;  // also drop expired timeline buckets (unix s)
  bool dryRun = false;                          // count what would go, delete nothing
};

// Verifies and durably writes events. Thread-safe: any number of threads call write() or
// submit() at once; implementations commit the events that arrive together in one transaction.
class EventSink {
 public:
  // Receives the outcome of a submitted event. Called once, on a thread of the sink's (or on
  // the submitting thread, see submit()); it must be quick, must not throw and must not call
  // into the sink.
  using Completion = std::function<void(const IngestOutcome&)>;

  virtual ~EventSink() = default;
  // Blocks until the event is committed (kStored, with its id), rejected by the verifier
  // (kRejected, nothing written), refused by the new-portal limit (kLimited, nothing written)
  // or could not be committed (kUnavailable, nothing written).
  // Never throws for storage failures.
  virtual IngestOutcome write(const IncomingEvent& event) = 0;
  // write() without the wait: queues `event` and returns; `done` receives the same outcome
  // write() would have returned. `event` must stay alive and unchanged until then. This default
  // runs write() and `done` on the calling thread.
  virtual void submit(const IncomingEvent& event, Completion done) { done(write(event)); }
  // Deletes (or with dryRun counts) the events `request` selects, keeping the counters exact,
  // in transactions of at most SinkSettings::purgeBatch rows that take turns with the batches
  // of ingest; blocks until done and returns how many. Throws StorageError when a batch fails
  // (the batches before it stay deleted) or the sink is closing.
  virtual std::int64_t purge(const PurgeRequest& request) = 0;
  // Queues `rejection` (a 4xx answer of the ingest listener, SPEC §5) to be written in the
  // writer's next transaction, values cut by cutRejection() and received_at stamped now; the
  // store keeps only the newest SinkSettings::keepRejections. Never waits for the writer or
  // for I/O (the ingest event loops call it): when SinkSettings::maxPendingRejections are
  // already waiting, or the sink is closing, the rejection is dropped and counted (a flood must
  // not grow memory). Returns whether it was queued. Thread-safe; never throws for storage
  // failures (rejections in a transaction that fails are dropped and counted).
  virtual bool recordRejection(const RejectionRecord& rejection) = 0;
  // Finishes the events already submitted, then refuses new ones with kUnavailable.
  virtual void close() = 0;
};

// Tunables of the write path.
struct SinkSettings {
  std::size_t maxBatch = 256;  // most events committed in one transaction
  // Most portals an ONAPPINSTALL may register in any hour (ingest.max_new_portals, SPEC §4):
  // an install of a portal the store has no row for, when this many portals began an
  // installation within the last 3600 s, is kLimited. Counted inside the write transaction,
  // so the limit is exact across batches, restarts and processes. Installs of known portals are
  // never limited (they count, though: a reinstall begins an installation too).
  std::size_t maxNewPortalsPerHour = 1000;
  int purgeBatch = 1000;  // most rows one purge transaction deletes (SPEC §9)
  // bitrix24.purge_on_clean: an ONAPPUNINSTALL with CLEAN=1 also deletes the portal's bindings
  // and, in purge batches after it commits, its earlier events (SPEC §9).
  bool purgeOnClean = false;
  // Called by the writer thread after each purge transaction with the rows it deleted (or
  // counted); thread-safe and quick. None when empty.
  std::function<void(std::int64_t)> onPurgeBatch;
  // Called by the writer thread after each batch with the number of events in it (for
  // metrics); must be thread-safe and quick. None when empty.
  std::function<void(std::size_t)> onBatch;
  // Called by the writer thread after each committed batch that stored an event, with a
  // watermark: every event with an id at or below it that will ever be visible to the
  // EventReader is visible now (EventReader::committedThrough() says the same from the
  // database). Live streams (SPEC §5.1) wake on it, once per batch. How the watermark is found
  // is the backend's business: SQLite's single writer assigns ids in commit order, so it is the
  // batch's highest id; a backend whose ids can commit out of order must pass less. A read the
  // EventReader starts after this call sees every event up to the watermark. Must be
  // thread-safe and quick (it runs before the batch's waiters are answered). None when empty.
  std::function<void(std::int64_t committedThrough)> onCommitted;
  // ingest.keep_rejections: how many of the newest rejections the store keeps (SPEC §3); 0
  // records none.
  std::size_t keepRejections = 10000;
  // Most rejections waiting for the writer; more are dropped (counted) until it catches up.
  std::size_t maxPendingRejections = 4096;
  // How long rejections wait for a batch of events to ride in before they are committed on
  // their own: a flood costs one commit per this much time, not one per request.
  std::chrono::milliseconds rejectionDelay{100};
  // Called with the rejections written by a commit (`written`) or dropped (`dropped`: the
  // queue was full, the sink closing, or their transaction failed), from the writer thread or
  // from recordRejection()'s caller; must be thread-safe and quick. None when empty.
  std::function<void(std::size_t written, std::size_t dropped)> onRejections;
};

// What the writer knows about the database, for /healthz (SPEC §5, §10). A plain value.
struct StorageHealth {
  bool ok = true;
  std::string problem;           // empty when ok; one sentence otherwise, without secrets
  std::int64_t sinceMillis = 0;  // when this state began (the storage's clock)
};

// Storage failures that are not part of an interface's normal results.
class StorageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One opened database. Thread-safe: the accessors may be used from any thread.
class Storage {
 public:
  virtual ~Storage() = default;
  virtual Migrator& migrator() = 0;
  // A new writer. The caller owns it and must close() it before the Storage goes away.
  virtual std::unique_ptr<EventSink> openEventSink(Verifier verifier,
                                                   const SinkSettings& settings) = 0;
  // Reads the portal record, or nullopt. Throws StorageError when the database fails.
  virtual std::optional<PortalRecord> findPortal(const std::string& memberId) = 0;
  // The writer's last known state: not ok while the latest commit attempt failed, the database
  // file, its WAL or its folder is no longer the one at the configured path, or the schema is
  // not the one the binary knows. Never touches the database or waits for a lock ingest needs,
  // so it answers at once from any thread (an event loop's included).
  virtual StorageHealth health() = 0;
  bool healthy() { return health().ok; }
  // The token rows as OAuth refresh uses them (token_store.h). Owned by the Storage.
  virtual TokenStore& tokenStore() = 0;
  // The read-only queries of the query API (event_query.h). Owned by the Storage; thread-safe.
  virtual EventReader& reader() = 0;
  // Bindings and the offline queue (portal_state.h). Owned by the Storage; thread-safe.
  virtual PortalStateStore& portalState() = 0;
};

// What /healthz reports: nullopt while `storage` is healthy, else the problem sentence.
inline std::optional<std::string> healthProblem(Storage& storage) {
  StorageHealth health = storage.health();
  if (health.ok) return std::nullopt;
  return health.problem;
}

}  // namespace b24es
