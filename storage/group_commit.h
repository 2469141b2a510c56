// Internal to the storage backends: the group-commit writer's scheduling, which both backends
// share. One thread per sink; request threads queue their events and wait (write()) or leave a
// completion (submit()); the thread takes what queued up together as one group, hands it to
// the backend, which commits it in one transaction and sets each event's outcome, and then
// wakes the group's waiters at once. Purges take turns with the groups (one purge transaction
// after each group, or when idle); rejections wait in a bounded queue and ride with the next
// group, or are committed on their own once the oldest has waited SinkSettings::rejectionDelay.
// Once a second the backend's tick() runs (its file checks, probes, recovery).
//
// What a transaction is, what a fault is and how to recover are the backend's: SQLite's
// (storage/sqlite/sqlite_event_sink.h) and PostgreSQL's (storage/postgresql/pg_event_sink.h)
// implement the hooks below. Nothing here touches a database.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "clock.h"
#include "mutex.h"
#include "one_shot_signal.h"
#include "storage.h"

namespace Poco {
class Logger;
}

namespace b24es {

// The logger both backends write through ("b24es.storage").
Poco::Logger& storageLog();
// An outcome of kUnavailable (ingest answers 503) for `reason`.
IngestOutcome unavailable(const std::string& reason);

class GroupCommitSink : public EventSink {
 public:
  IngestOutcome write(const IncomingEvent& event) final;
  void submit(const IncomingEvent& event, Completion done) final;
  std::int64_t purge(const PurgeRequest& request) final;
  bool recordRejection(const RejectionRecord& rejection) final;
  // Finishes what is queued (the last rejections on their own), stops the thread, then calls
  // closeBackend(). Idempotent.
  void close() final;

  // A purge in progress: where it is and what it did. Changed only by the writer thread until
  // `done` is set.
  struct PurgeJob {
    PurgeRequest request;
    std::int64_t cursor = 0;   // the last id seen
    std::int64_t deleted = 0;  // or counted, for a dry run
    std::string error;         // set when a batch failed; the job ends
    OneShotSignal done;
  };

  // One event waiting to be committed: a write() call's, on the caller's stack, or a submit()
  // call's, owned by its group.
  struct Pending {
    const IncomingEvent* event;
    IngestOutcome outcome;  // set by the writer thread before the group is marked done
    Completion done;        // submit()'s; empty for write()
  };

  // The events committed together, and the waiters to wake after it.
  struct Group {
    std::vector<Pending*> items;                      // appended to only while the group is queued
    std::vector<std::unique_ptr<Pending>> submitted;  // the submit() calls among items
    OneShotSignal done;  // set by the writer once every item has its outcome
  };

 protected:
  // `clock` must outlive the sink.
  GroupCommitSink(const Clock& clock, const SinkSettings& sinkSettings);
  // The derived destructor must have called close(): the thread calls the hooks below.
  ~GroupCommitSink() override;

  // Starts the writer thread; the derived constructor calls it last, once the hooks can run.
  void startWriter();

  // The hooks, all called on the writer thread only.
  // Commits `group` (in one transaction, or more after a failure), setting every item's
  // outcome; `rejections` ride with it: committed and reported, or dropped (dropRejections()).
  // Raises highestId_ to the largest id committed.
  virtual void commitGroup(Group& group, std::vector<RejectionRecord>& rejections) = 0;
  // Commits `rejections` alone; on failure drops them (dropRejections()).
  virtual void commitRejections(std::vector<RejectionRecord>& rejections) = 0;
  // Once a second: the backend's checks, probe or recovery.
  virtual void tick() = 0;
  // Whether purges may run now (no fault, a connection).
  virtual bool canPurge() = 0;
  // One purge transaction of `job`, at most `limit` rows; true when the job is finished.
  // Throws on failure (the transaction rolled back).
  virtual bool purgeBatch(PurgeJob& job, std::size_t limit) = 0;
  // After each group's waiters were woken (SQLite: a checkpoint when the WAL is large).
  virtual void afterGroup() {}
  // On the closing thread once the writer thread has stopped: release the connection.
  virtual void closeBackend() = 0;

  // Queues purges nobody waits for (purge_on_clean after an uninstall). Any thread.
  void queueCleanups(std::vector<PurgeRequest> cleanups);
  // Counts `rejections` as dropped (SinkSettings::onRejections) and empties it.
  void dropRejections(std::vector<RejectionRecord>& rejections);

  const Clock& clock_;               // const after construction
  const SinkSettings sinkSettings_;  // const after construction
  // Used only by the writer thread (and the derived constructor before it starts): the
  // largest event id this sink committed, SinkSettings::onCommitted's watermark.
  std::int64_t highestId_ = 0;

 private:
  // Appends `pending` to the open group and returns that group, taking `owned` (a submit()'s
  // `pending` itself) into it; null, leaving `owned` alone, when closing.
  std::shared_ptr<Group> enqueue(Pending* pending, std::unique_ptr<Pending>& owned);
  void run();
  // One purge transaction of the oldest queued job, if any; false when none was queued.
  bool runPurgeTurn();

  std::chrono::steady_clock::time_point nextTick_;  // writer thread only

  Mutex mutex_;
  CondVar wake_;  // signals groups_, purges_, rejections_ or closing_ changed
  std::deque<std::shared_ptr<Group>> groups_ GUARDED_BY(mutex_);     // oldest first
  std::deque<std::shared_ptr<PurgeJob>> purges_ GUARDED_BY(mutex_);  // oldest first
  bool closing_ GUARDED_BY(mutex_) = false;
  // Rejections waiting for a transaction, oldest first; at most maxPendingRejections.
  std::vector<RejectionRecord> rejections_ GUARDED_BY(mutex_);
  // When the oldest of rejections_ has waited rejectionDelay (meaningful while not empty).
  std::chrono::steady_clock::time_point rejectionsDue_ GUARDED_BY(mutex_);
  std::thread thread_;
  Mutex closeMutex_;  // close() from two threads: one joins, the other waits for it
};

}  // namespace b24es
