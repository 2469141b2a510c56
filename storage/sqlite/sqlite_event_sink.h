// Internal to the SQLite backend: the group-commit writer. One thread owns the write
// connection; request threads queue their events and wait; the writer commits whatever queued
// up together in one transaction, then wakes each request with its own outcome. With
// synchronous=FULL every acknowledged event is on disk, and the fsync is shared by the batch.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "one_shot_signal.h"
#include "sqlite_event_reader.h"

namespace Poco {
class Logger;
}
#include "sqlite_storage.h"

namespace b24es::sqlite {

// The statements that select a purge batch, with sample parameters (for query_plan_test).
std::vector<SqlQuery> purgeQueries();

class SqliteEventSink final : public EventSink {
 public:
  // Opens the write connection and starts the writer thread. Throws StorageError.
  // `settings` and `clock` must outlive the sink.
  SqliteEventSink(const SqliteSettings& settings, const Clock& clock, Verifier verifier,
                  const SinkSettings& sinkSettings);
  ~SqliteEventSink() override;
  IngestOutcome write(const IncomingEvent& event) override;
  void submit(const IncomingEvent& event, Completion done) override;
  std::int64_t purge(const PurgeRequest& request) override;
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

  void run();
  // One purge transaction of the oldest queued job, if any; false when none was queued.
  bool runPurgeTurn(Poco::Logger& log);
  // Queues the purges the batch just committed asked for (purge_on_clean).
  void queueCleanups();

  const Verifier verifier_;          // const after construction
  const SinkSettings sinkSettings_;  // const after construction
  std::unique_ptr<Writer> writer_;   // used only by thread_

  std::mutex mutex_;
  std::condition_variable wake_;                  // signals groups_ or closing_ changed
  std::deque<std::shared_ptr<Group>> groups_;     // guarded by mutex_; oldest first
  std::deque<std::shared_ptr<PurgeJob>> purges_;  // guarded by mutex_; oldest first
  bool closing_ = false;                          // guarded by mutex_
  std::thread thread_;
};

}  // namespace b24es::sqlite
