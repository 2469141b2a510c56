// Internal to the SQLite backend: the group-commit writer. One thread owns the write
// connection; request threads queue their events and wait; the writer commits whatever queued
// up together in one transaction, then wakes each request with its own outcome. With
// synchronous=FULL every acknowledged event is on disk, and the fsync is shared by the batch.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "sqlite_storage.h"

namespace b24es::sqlite {

class SqliteEventSink final : public EventSink {
 public:
  // Opens the write connection and starts the writer thread. Throws StorageError.
  // `settings` and `clock` must outlive the sink.
  SqliteEventSink(const SqliteSettings& settings, const Clock& clock, Verifier verifier,
                  const SinkSettings& sinkSettings);
  ~SqliteEventSink() override;
  IngestOutcome write(IncomingEvent event) override;
  void close() override;

 private:
  struct Pending {
    IncomingEvent event;
    std::promise<IngestOutcome> done;
  };
  class Writer;  // the connection, its prepared statements and the per-event write logic

  void run();

  const Clock& clock_;               // const after construction
  const Verifier verifier_;          // const after construction
  const SinkSettings sinkSettings_;  // const after construction
  std::unique_ptr<Writer> writer_;   // used only by thread_

  std::mutex mutex_;
  std::condition_variable wake_;  // guarded by mutex_: signals queue_ or closing_ changed
  std::deque<Pending*> queue_;    // guarded by mutex_
  bool closing_ = false;          // guarded by mutex_
  std::thread thread_;
};

}  // namespace b24es::sqlite
