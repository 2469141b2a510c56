// The storage contract of b24-event-store. The server talks only to these interfaces; the
// embedded SQLite backend (sqlite_storage.h) implements them, and a PostgreSQL backend can
// implement them later without touching server/. Nothing here assumes that one process owns
// the database: every decision that depends on stored state is taken inside a transaction.
#pragma once

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
  // (kRejected, nothing written) or could not be committed (kUnavailable, nothing written).
  // Never throws for storage failures.
  virtual IngestOutcome write(const IncomingEvent& event) = 0;
  // write() without the wait: queues `event` and returns; `done` receives the same outcome
  // write() would have returned. `event` must stay alive and unchanged until then. This default
  // runs write() and `done` on the calling thread.
  virtual void submit(const IncomingEvent& event, Completion done) { done(write(event)); }
  // Finishes the events already submitted, then refuses new ones with kUnavailable.
  virtual void close() = 0;
};

// Tunables of the write path.
struct SinkSettings {
  std::size_t maxBatch = 256;  // most events committed in one transaction
  // Called by the writer thread after each batch with the number of events in it (for
  // metrics); must be thread-safe and quick. None when empty.
  std::function<void(std::size_t)> onBatch;
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
  // True when the database answers a trivial query and the schema is current.
  virtual bool healthy() = 0;
  // The token rows as OAuth refresh uses them (token_store.h). Owned by the Storage.
  virtual TokenStore& tokenStore() = 0;
  // The read-only queries of the query API (event_query.h). Owned by the Storage; thread-safe.
  virtual EventReader& reader() = 0;
  // Bindings and the offline queue (portal_state.h). Owned by the Storage; thread-safe.
  virtual PortalStateStore& portalState() = 0;
};

}  // namespace b24es
