// Internal to the PostgreSQL backend: the group-commit writer (SPEC §4, §11; its scheduling is
// GroupCommitSink's, storage/group_commit.h). One thread per
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

#include <memory>
#include <vector>

#include "group_commit.h"
#include "pg_connection.h"
#include "pg_health.h"

namespace b24es::pg {

// The statements that select a purge batch, with sample parameters (for pg_query_plan_test).
std::vector<std::pair<std::string, Params>> purgeQueries();

class PgEventSink final : public GroupCommitSink {
 public:
  // Opens the write connection and starts the writer thread. Throws StorageError. `settings`
  // and `clock` must outlive the sink. A schema other than `schemaVersion` is reported to
  // `board` as a problem.
  PgEventSink(const PgSettings& settings, const Clock& clock, Verifier verifier,
              const SinkSettings& sinkSettings, std::shared_ptr<HealthBoard> board,
              int schemaVersion);
  ~PgEventSink() override;

 private:
  class Writer;  // the connection and the per-batch write logic

  // GroupCommitSink's hooks (writer thread).
  void commitGroup(Group& group, std::vector<RejectionRecord>& rejections) override;
  // Rejections on their own transaction (their delay passed, or the sink closes).
  void commitRejections(std::vector<RejectionRecord>& rejections) override;
  // While faulted: a small transaction once a second, to find out the server is back.
  void tick() override;
  bool canPurge() override;  // while not faulted
  bool purgeBatch(PurgeJob& job, std::size_t limit) override;
  void closeBackend() override;

  // Commits batch[from, to) and `rejections` in one transaction, running it again after a
  // deadlock; on success reports and clears `rejections`. False, rolled back, with `error`
  // set, otherwise; `storageWide` when the database (not one event) is at fault.
  bool commitRange(std::vector<Pending*>& batch, std::size_t from, std::size_t to,
                   std::vector<RejectionRecord>& rejections, std::string& error, bool& storageWide);
  bool ensureWriter();
  void enterFault(const std::string& problem);
  void leaveFault();

  const PgSettings& settings_;                // const after construction
  const Verifier verifier_;                   // const after construction
  const std::shared_ptr<HealthBoard> board_;  // const after construction; thread-safe itself
  const int schemaVersion_;                   // const after construction

  // Used only by the writer thread (and by the constructor before it starts):
  std::unique_ptr<Writer> writer_;  // null while the connection is lost, until reopened
  bool faulted_ = false;
  std::string problem_;
};

}  // namespace b24es::pg
