// Internal to the SQLite backend: the group-commit writer. One thread owns the write
// connection; request threads queue their events and wait; the writer commits whatever queued
// up together in one transaction, then wakes each request with its own outcome. With
// synchronous=FULL every acknowledged event is on disk, and the fsync is shared by the batch.
//
// Storage faults (SPEC §10): before every COMMIT, and once a second when idle, the writer checks
// that the folder, file, -wal and -shm it has open are still the ones at the configured path.
// When they are not, or a commit fails, it answers kUnavailable (503) without committing, says
// so once in the log and in Storage::health(), and recovers: a removed or replaced file is saved
// by copying the open database (SQLite's backup API reads it, WAL included, through the open
// connection) to the configured path, so nothing acknowledged is lost; then it reopens and
// acknowledges again once a commit there succeeds. README "Storage faults" has the why.
//
// Rejections (SPEC §5 `rejections`) wait in a bounded queue and ride in the next transaction
// of events; when no events come, they are committed on their own once the oldest has waited
// SinkSettings::rejectionDelay, so a flood of forged requests costs one commit per delay at
// most, not one per request.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "one_shot_signal.h"
#include "sqlite_event_reader.h"
#include "sqlite_files.h"
#include "sqlite_health.h"

namespace Poco {
class Logger;
}
#include "mutex.h"
#include "sqlite_storage.h"

namespace b24es::sqlite {

// The statements that select a purge batch, with sample parameters (for query_plan_test).
std::vector<SqlQuery> purgeQueries();

// The statements that write and trim rejections, with sample parameters (for query_plan_test).
std::vector<SqlQuery> rejectionWriteQueries();

class SqliteEventSink final : public EventSink {
 public:
  // Opens the write connection and starts the writer thread. Throws StorageError.
  // `settings` and `clock` must outlive the sink. The sink reports its state to `board`, and a
  // schema other than `schemaVersion` as a problem there.
  SqliteEventSink(const SqliteSettings& settings, const Clock& clock, Verifier verifier,
                  const SinkSettings& sinkSettings, std::shared_ptr<HealthBoard> board,
                  int schemaVersion);
  ~SqliteEventSink() override;
  IngestOutcome write(const IncomingEvent& event) override;
  void submit(const IncomingEvent& event, Completion done) override;
  std::int64_t purge(const PurgeRequest& request) override;
  bool recordRejection(const RejectionRecord& rejection) override;
  void close() override;

  // A purge in progress: where it is and what it did. Changed only by the writer thread until
  // `done` is set.
  struct PurgeJob {
    PurgeRequest request;
    std::int64_t cursor = 0;   // the last id seen
    std::int64_t deleted = 0;  // or counted, for a dry run
    std::string error;         // set when a batch failed; the job ends
    OneShotSignal done;
  };

 private:
  // One event waiting to be committed: a write() call's, on the caller's stack, or a submit()
  // call's, owned by its group.
  struct Pending {
    const IncomingEvent* event;
    IngestOutcome outcome;  // set by the writer thread before the group is marked done
    Completion done;        // submit()'s; empty for write()
  };
  // The events committed together in one transaction, and the waiters to wake after it.
  struct Group {
    std::vector<Pending*> items;                      // appended to only while the group is queued
    std::vector<std::unique_ptr<Pending>> submitted;  // the submit() calls among items
    OneShotSignal done;  // set by the writer once every item has its outcome
  };
  // Appends `pending` to the open group and returns that group, taking `owned` (a submit()'s
  // `pending` itself) into it; null, leaving `owned` alone, when closing.
  std::shared_ptr<Group> enqueue(Pending* pending, std::unique_ptr<Pending>& owned);
  static IngestOutcome shuttingDown() {
    return IngestOutcome{IngestOutcome::Status::kUnavailable, 0, "the store is shutting down"};
  }
  class Writer;  // the connection, its prepared statements and the per-event write logic

  // Why the writer does not acknowledge. kFiles also means "recover before committing".
  enum class Fault { kNone, kCommit, kFiles };
  struct Failure {
    std::string reason;
    int code = 0;               // SQLite's extended result code; 0 when not SQLite's
    bool filesChanged = false;  // the check before COMMIT found the files changed
  };
  // One purge transaction of the oldest queued job, if any; false when none was queued.
  bool runPurgeTurn(Poco::Logger& log);
  // Queues the purges the batch just committed asked for (purge_on_clean).
  void queueCleanups();

  void run();
  // Commits one group, setting every item's outcome (each wait ends after this).
  void commitGroup(Group& group, std::vector<RejectionRecord>& rejections);
  // Applies batch[from, to) and `rejections` in one transaction; COMMITs only when the files
  // are still the ones at the path, and then empties `rejections`. False, rolled back, with
  // `failure` set otherwise.
  bool commitRange(std::vector<Pending*>& batch, std::size_t from, std::size_t to,
                   std::vector<RejectionRecord>& rejections, Failure& failure);
  // Commits `rejections` alone (no events came within rejectionDelay); dropped on failure.
  void commitRejections(std::vector<RejectionRecord>& rejections);
  // Counts `rejections` as dropped and empties it.
  void dropRejections(std::vector<RejectionRecord>& rejections);
  // Once a second: the file check, and the recovery or probe a fault calls for.
  void tick();
  // Runs one small write transaction; true when it committed on the files at the path.
  bool probe();
  // Saves the open database to the path when it is gone from there, then reopens (kFiles).
  void recover();
  // Writes a copy of the open database next to the path; returns the copy's name.
  std::string copyOpenDatabase();
  // (Re)opens writer_ on the path and records its files. Throws.
  void openWriter();
  void enterFault(Fault kind, const std::string& problem);
  void leaveFault();

  const SqliteSettings& settings_;            // const after construction
  const Clock& clock_;                        // const after construction
  const Verifier verifier_;                   // const after construction
  const SinkSettings sinkSettings_;           // const after construction
  const std::shared_ptr<HealthBoard> board_;  // const after construction; thread-safe itself
  const int schemaVersion_;                   // const after construction

  // Used only by thread_ (and by the constructor before it starts):
  std::unique_ptr<Writer> writer_;  // null after a failed reopen, until the next one succeeds
  DatabaseFiles files_;             // what writer_ has open
  std::int64_t highestId_ = 0;      // the largest event id this sink committed
  Fault fault_ = Fault::kNone;
  std::string problem_;            // why, while fault_ != kNone
  std::string lastRecoveryError_;  // logged once until it changes
  std::chrono::steady_clock::time_point nextTick_;
  std::chrono::steady_clock::time_point lastFailedBatch_;  // when a batch last failed

  Mutex mutex_;
  CondVar wake_;  // signals groups_, purges_ or closing_ changed
  std::deque<std::shared_ptr<Group>> groups_ GUARDED_BY(mutex_);     // oldest first
  std::deque<std::shared_ptr<PurgeJob>> purges_ GUARDED_BY(mutex_);  // oldest first
  bool closing_ GUARDED_BY(mutex_) = false;
  // Rejections waiting for a transaction, oldest first; at most maxPendingRejections.
  std::vector<RejectionRecord> rejections_ GUARDED_BY(mutex_);
  // When the oldest of rejections_ has waited rejectionDelay (meaningful while not empty).
  std::chrono::steady_clock::time_point rejectionsDue_ GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace b24es::sqlite
