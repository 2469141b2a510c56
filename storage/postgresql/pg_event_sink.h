// Internal to the PostgreSQL backend: the group-commit writer (SPEC §4, §11). One thread per
// sink owns a connection; request threads queue their events and wait; the writer commits
// whatever queued up together in one transaction and wakes each request with its own outcome
// after the COMMIT returned (synchronous_commit decides what that means on disk; on by default).
//
// Several receivers write one database at once, so everything the verifier decides on is
// locked inside the transaction: the batch first takes a transaction-level advisory lock per
// portal (member_id order, so two batches never wait for each other in a circle) and then
// reads the portal rows FOR UPDATE. An install and an event of one portal at two receivers, or
// two installs of one new portal, are therefore decided one after the other, each on what the
// other committed. The new-portal limit counts under one more advisory lock, so that two
// receivers cannot both take the last place in the hour.
//
// Event ids: the batch's rows are inserted last, with one multi-row INSERT ... RETURNING id,
// under a commit-order advisory lock held until COMMIT. Ids are handed out only under that
// lock, and the lock is released only after the commit is visible, so ids become visible in
// increasing order across all receivers: every id below the largest visible one is committed
// or will never exist (README: the stream cursor).
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "mutex.h"
#include "one_shot_signal.h"
#include "pg_connection.h"
#include "pg_health.h"

namespace b24es::pg {

// The statements that select a purge batch, with sample parameters (for pg_query_plan_test).
std::vector<std::pair<std::string, Params>> purgeQueries();

class PgEventSink final : public EventSink {
 public:
  // Opens the write connection and starts the writer thread. Throws StorageError. `settings`
  // and `clock` must outlive the sink. A schema other than `schemaVersion` is reported to
  // `board` as a problem.
  PgEventSink(const PgSettings& settings, const Clock& clock, Verifier verifier,
              const SinkSettings& sinkSettings, std::shared_ptr<HealthBoard> board,
              int schemaVersion);
  ~PgEventSink() override;
  IngestOutcome write(const IncomingEvent& event) override;
  void submit(const IncomingEvent& event, Completion done) override;
  std::int64_t purge(const PurgeRequest& request) override;
  bool recordRejection(const RejectionRecord& rejection) override;
  void close() override;

  // A purge in progress. Changed only by the writer thread until `done` is set.
  struct PurgeJob {
    PurgeRequest request;
    std::int64_t cursor = 0;   // the last id seen
    std::int64_t deleted = 0;  // or counted, for a dry run
    std::string error;         // set when a batch failed; the job ends
    OneShotSignal done;
  };

  // One event waiting to be committed (a write() call's, on the caller's stack, or a
  // submit() call's, owned by its group).
  struct Pending {
    const IncomingEvent* event;
    IngestOutcome outcome;  // set by the writer thread before the group is marked done
    Completion done;        // submit()'s; empty for write()
  };

 private:
  struct Group {
    std::vector<Pending*> items;                      // appended to only while queued
    std::vector<std::unique_ptr<Pending>> submitted;  // the submit() calls among items
    OneShotSignal done;  // set by the writer once every item has its outcome
  };
  class Writer;  // the connection and the per-batch write logic

  std::shared_ptr<Group> enqueue(Pending* pending, std::unique_ptr<Pending>& owned);
  void run();
  void commitGroup(Group& group, std::vector<RejectionRecord>& rejections);
  // Commits batch[from, to) and `rejections` in one transaction, running it again after a
  // deadlock; on success reports and clears `rejections`. False, rolled back, with `error`
  // set, otherwise; `storageWide` when the database (not one event) is at fault.
  bool commitRange(std::vector<Pending*>& batch, std::size_t from, std::size_t to,
                   std::vector<RejectionRecord>& rejections, std::string& error, bool& storageWide);
  // Rejections on their own transaction (their delay passed, or the sink closes).
  void commitRejections(std::vector<RejectionRecord>& rejections);
  void dropRejections(std::vector<RejectionRecord>& rejections);
  bool runPurgeTurn();
  void queueCleanups(std::vector<PurgeRequest> cleanups);
  void tick();
  bool ensureWriter();
  void enterFault(const std::string& problem);
  void leaveFault();

  const PgSettings& settings_;                // const after construction
  const Clock& clock_;                        // const after construction
  const Verifier verifier_;                   // const after construction
  const SinkSettings sinkSettings_;           // const after construction
  const std::shared_ptr<HealthBoard> board_;  // const after construction; thread-safe itself
  const int schemaVersion_;                   // const after construction

  // Used only by thread_ (and by the constructor before it starts):
  std::unique_ptr<Writer> writer_;  // null while the connection is lost, until reopened
  bool faulted_ = false;
  std::string problem_;
  std::chrono::steady_clock::time_point nextTick_;
  std::int64_t highestId_ = 0;  // the highest id this sink committed (the onCommitted watermark)

  Mutex mutex_;
  CondVar wake_;  // signals groups_, purges_ or closing_ changed
  std::deque<std::shared_ptr<Group>> groups_ GUARDED_BY(mutex_);     // oldest first
  std::deque<std::shared_ptr<PurgeJob>> purges_ GUARDED_BY(mutex_);  // oldest first
  bool closing_ GUARDED_BY(mutex_) = false;
  std::vector<RejectionRecord> rejections_ GUARDED_BY(mutex_);  // waiting for a transaction
  // When the oldest of rejections_ must be committed even without events to ride with.
  std::chrono::steady_clock::time_point rejectionsDue_ GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace b24es::pg
