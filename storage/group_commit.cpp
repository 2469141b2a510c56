#include "group_commit.h"

#include <Poco/Logger.h>
#include <Poco/Types.h>

#include <algorithm>
#include <exception>

#include "rejections.h"

#if defined(__linux__)
#include <pthread.h>
#endif

namespace b24es {
namespace {

// SPEC §10: the backend's checks (SQLite's files, a probe while faulted) once a second.
constexpr std::chrono::seconds kTickInterval{1};

}  // namespace

Poco::Logger& storageLog() { return Poco::Logger::get("b24es.storage"); }

IngestOutcome unavailable(const std::string& reason) {
  return IngestOutcome{IngestOutcome::Status::kUnavailable, 0, reason};
}

GroupCommitSink::GroupCommitSink(const Clock& clock, const SinkSettings& sinkSettings)
    : clock_(clock), sinkSettings_(sinkSettings) {}

GroupCommitSink::~GroupCommitSink() = default;

void GroupCommitSink::startWriter() {
  nextTick_ = std::chrono::steady_clock::now() + kTickInterval;
  thread_ = std::thread([this] { run(); });
}

std::shared_ptr<GroupCommitSink::Group> GroupCommitSink::enqueue(Pending* pending,
                                                                 std::unique_ptr<Pending>& owned) {
  std::shared_ptr<Group> group;
  {
    MutexLock lock(mutex_);
    if (closing_) return nullptr;
    if (groups_.empty() || groups_.back()->items.size() >= sinkSettings_.maxBatch) {
      groups_.push_back(std::make_shared<Group>());
    }
    group = groups_.back();
    // Room first, so that linking `pending` cannot fail halfway (items without its owner).
    auto makeRoom = [](auto& v) {
      if (v.size() == v.capacity()) v.reserve(std::max<std::size_t>(16, 2 * v.capacity()));
    };
    makeRoom(group->items);
    if (owned) makeRoom(group->submitted);
    group->items.push_back(pending);
    if (owned) group->submitted.push_back(std::move(owned));
  }
  wake_.signal();
  return group;
}

IngestOutcome GroupCommitSink::write(const IncomingEvent& event) {
  Pending pending{&event, {}, {}};
  std::unique_ptr<Pending> none;
  std::shared_ptr<Group> group = enqueue(&pending, none);
  if (!group) return unavailable("the store is shutting down");
  // Waits without the mutex: the batch's waiters all wake at once and need no lock to return.
  group->done.wait();
  return pending.outcome;
}

void GroupCommitSink::submit(const IncomingEvent& event, Completion done) {
  auto pending = std::make_unique<Pending>(Pending{&event, {}, std::move(done)});
  Pending* raw = pending.get();
  // On success the group owns `pending` and the writer thread calls `done`.
  if (!enqueue(raw, pending)) raw->done(unavailable("the store is shutting down"));
}

std::int64_t GroupCommitSink::purge(const PurgeRequest& request) {
  auto job = std::make_shared<PurgeJob>();
  job->request = request;
  {
    MutexLock lock(mutex_);
    if (closing_) throw StorageError("the store is shutting down");
    purges_.push_back(job);
  }
  wake_.signal();
  job->done.wait();
  if (!job->error.empty()) throw StorageError(job->error);
  return job->deleted;
}

bool GroupCommitSink::recordRejection(const RejectionRecord& rejection) {
  if (sinkSettings_.keepRejections == 0) return false;  // ingest.keep_rejections = 0: none kept
  RejectionRecord record = cutRejection(rejection);
  record.id = 0;
  record.receivedAt = clock_.nowMillis();
  bool queued = false;
  bool first = false;
  {
    MutexLock lock(mutex_);
    if (!closing_ && rejections_.size() < sinkSettings_.maxPendingRejections) {
      first = rejections_.empty();
      if (first) rejectionsDue_ = std::chrono::steady_clock::now() + sinkSettings_.rejectionDelay;
      rejections_.push_back(std::move(record));
      queued = true;
    }
  }
  // The writer learns of a deadline earlier than the one it sleeps towards; later ones it sees
  // when it next wakes.
  if (first) wake_.signal();
  if (!queued && sinkSettings_.onRejections) sinkSettings_.onRejections(0, 1);
  return queued;
}

void GroupCommitSink::dropRejections(std::vector<RejectionRecord>& rejections) {
  if (!rejections.empty() && sinkSettings_.onRejections) {
    sinkSettings_.onRejections(0, rejections.size());
  }
  rejections.clear();
}

void GroupCommitSink::queueCleanups(std::vector<PurgeRequest> cleanups) {
  if (cleanups.empty()) return;
  MutexLock lock(mutex_);
  for (PurgeRequest& r : cleanups) {
    auto job = std::make_shared<PurgeJob>();  // nobody waits for it
    job->request = std::move(r);
    purges_.push_back(std::move(job));
  }
}

void GroupCommitSink::close() {
  {
    MutexLock lock(mutex_);
    closing_ = true;
  }
  wake_.signal();
  MutexLock lock(closeMutex_);
  if (thread_.joinable()) thread_.join();
  closeBackend();
}

bool GroupCommitSink::runPurgeTurn() {
  std::shared_ptr<PurgeJob> job;
  {
    MutexLock lock(mutex_);
    if (purges_.empty()) return false;
    job = purges_.front();
  }
  bool finished = true;
  const std::int64_t before = job->deleted;
  try {
    finished = purgeBatch(*job, sinkSettings_.purgeBatch);
    if (sinkSettings_.onPurgeBatch) sinkSettings_.onPurgeBatch(job->deleted - before);
  } catch (const std::exception& e) {
    job->error = e.what();
    storageLog().error("purge failed after %Ld events: %s", static_cast<Poco::Int64>(job->deleted),
                       job->error);
  }
  if (finished) {
    {
      MutexLock lock(mutex_);
      purges_.pop_front();
    }
    if (!job->request.dryRun && job->error.empty() && job->deleted > 0) {
      storageLog().information("purged %Ld events", static_cast<Poco::Int64>(job->deleted));
    }
    job->done.set();
  }
  return true;
}

void GroupCommitSink::run() {
#if defined(__linux__)
  // Shown by top -H, ps -L and perf, so that the thread every request waits for can be watched.
  ::pthread_setname_np(::pthread_self(), "b24es-writer");
#endif
  std::vector<RejectionRecord> rejections;  // taken from rejections_ for the next transaction
  for (;;) {
    std::shared_ptr<Group> group;
    bool rejectionsDue = false;
    bool finished = false;
    {
      MutexLock lock(mutex_);
      for (;;) {
        const auto now = std::chrono::steady_clock::now();
        rejectionsDue = !rejections_.empty() && now >= rejectionsDue_;
        if (closing_ || !groups_.empty() || !purges_.empty() || rejectionsDue) break;
        const auto until = rejections_.empty() ? nextTick_ : std::min(nextTick_, rejectionsDue_);
        if (!wake_.waitUntil(mutex_, until) && std::chrono::steady_clock::now() >= nextTick_) break;
      }
      if (groups_.empty() && closing_) {  // closing and drained: purges stop where they are
        for (const std::shared_ptr<PurgeJob>& job : purges_) {
          job->error = "the store is shutting down";
          job->done.set();
        }
        purges_.clear();
        rejections.swap(rejections_);  // the last rejections still go in, on their own
        finished = true;
      } else if (!groups_.empty()) {
        // Once off the queue a group receives no more events: writers append to groups_.back().
        group = groups_.front();
        groups_.pop_front();
        rejections.swap(rejections_);  // they ride with the events
      } else if (rejectionsDue) {
        rejections.swap(rejections_);
      }
    }
    if (finished) {
      if (!rejections.empty()) commitRejections(rejections);
      return;
    }
    if (std::chrono::steady_clock::now() >= nextTick_) {
      tick();
      nextTick_ = std::chrono::steady_clock::now() + kTickInterval;
    }
    if (!group) {
      if (rejectionsDue) commitRejections(rejections);
      // No events waiting: a purge turn, while the store can take one.
      if (canPurge()) runPurgeTurn();
      continue;
    }
    const std::int64_t highestBefore = highestId_;
    commitGroup(*group, rejections);
    // The group's highest id is a watermark (each backend says why in its sink's header).
    // Before the waiters are answered: a stream's wake-up should not queue behind them.
    if (highestId_ > highestBefore && sinkSettings_.onCommitted) {
      sinkSettings_.onCommitted(highestId_);
    }
    const std::size_t size = group->items.size();  // `items` may be gone once the waiters wake
    for (const std::unique_ptr<Pending>& submitted : group->submitted) {
      try {
        submitted->done(submitted->outcome);
      } catch (const std::exception& e) {
        storageLog().error("an event's completion threw: %s", std::string(e.what()));
      }
    }
    // One wake-up call for the whole batch, and only its own waiters wake.
    group->done.set();
    if (sinkSettings_.onBatch) sinkSettings_.onBatch(size);
    afterGroup();
    // Purges take turns with ingest: one purge transaction after each batch of events.
    if (canPurge()) runPurgeTurn();
  }
}

}  // namespace b24es
