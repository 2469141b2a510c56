// Internal to the SQLite backend: the group-commit writer (its scheduling is GroupCommitSink's,
// storage/group_commit.h). One thread owns the write connection; request threads queue their
// events and wait; the writer commits whatever queued up together in one transaction, then
// wakes each request with its own outcome. With
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
#include <memory>
#include <vector>

#include "group_commit.h"
#include "sqlite_event_reader.h"
#include "sqlite_files.h"
#include "sqlite_health.h"
#include "sqlite_storage.h"

namespace b24es::sqlite {

// The statements that select a purge batch, with sample parameters (for query_plan_test).
std::vector<SqlQuery> purgeQueries();

// The statements that write and trim rejections, with sample parameters (for query_plan_test).
std::vector<SqlQuery> rejectionWriteQueries();

class SqliteEventSink final : public GroupCommitSink {
 public:
  // Opens the write connection and starts the writer thread. Throws StorageError.
  // `settings` and `clock` must outlive the sink. The sink reports its state to `board`, and a
  // schema other than `schemaVersion` as a problem there.
  SqliteEventSink(const SqliteSettings& settings, const Clock& clock, Verifier verifier,
                  const SinkSettings& sinkSettings, std::shared_ptr<HealthBoard> board,
                  int schemaVersion);
  ~SqliteEventSink() override;

 private:
  class Writer;  // the connection, its prepared statements and the per-event write logic

  // Why the writer does not acknowledge. kFiles also means "recover before committing".
  enum class Fault { kNone, kCommit, kFiles };
  struct Failure {
    std::string reason;
    int code = 0;               // SQLite's extended result code; 0 when not SQLite's
    bool filesChanged = false;  // the check before COMMIT found the files changed
  };

  // GroupCommitSink's hooks (writer thread).
  void commitGroup(Group& group, std::vector<RejectionRecord>& rejections) override;
  void commitRejections(std::vector<RejectionRecord>& rejections) override;
  // Once a second: the file check, and the recovery or probe a fault calls for.
  void tick() override;
  bool canPurge() override;  // while the files are sound
  bool purgeBatch(PurgeJob& job, std::size_t limit) override;
  void afterGroup() override;  // a checkpoint when the WAL grew large
  void closeBackend() override;

  // Applies batch[from, to) and `rejections` in one transaction; COMMITs only when the files
  // are still the ones at the path, and then empties `rejections`. False, rolled back, with
  // `failure` set otherwise.
  bool commitRange(std::vector<Pending*>& batch, std::size_t from, std::size_t to,
                   std::vector<RejectionRecord>& rejections, Failure& failure);
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
  const Verifier verifier_;                   // const after construction
  const std::shared_ptr<HealthBoard> board_;  // const after construction; thread-safe itself
  const int schemaVersion_;                   // const after construction

  // Used only by the writer thread (and by the constructor before it starts):
  std::unique_ptr<Writer> writer_;  // null after a failed reopen, until the next one succeeds
  DatabaseFiles files_;             // what writer_ has open
  Fault fault_ = Fault::kNone;
  std::string problem_;                                    // why, while fault_ != kNone
  std::string lastRecoveryError_;                          // logged once until it changes
  std::chrono::steady_clock::time_point lastFailedBatch_;  // when a batch last failed
};

}  // namespace b24es::sqlite
