// The live event stream's engine (SPEC §5.1): every open GET /api/v1/events/stream, fed from one
// thread. The writer tells the hub once per committed batch how far the events are committed
// (SinkSettings::onCommitted); the hub then reads the new events once, through the EventReader,
// renders each as one Server-Sent Events message, and hands it to every open stream whose
// filter it matches. No stream reads the database on its own while live, and none holds a
// thread: each is a ResponseStream (server/net/http_server.h) written from the hub's thread and
// sent by the query listener's loop.
//
// A stream starts after an id (Last-Event-ID, after_id, or the newest event the writer reported
// committed). It first reads its backlog in pages on the hub's thread, only up to the hub's
// published watermark and only while its client keeps up, then joins the live set; both happen
// on the one thread that moves the watermark, so the switch has no gap and no duplicate. Each
// stream keeps the last id it was given (its cursor) and is only given ids above it, so each
// event goes out once per stream, in increasing id order.
//
// What "committed through id N" means is the storage's business (storage.h): the hub never
// assumes that ids commit in order, only that every id at or below the watermark it was told
// is visible. It also reads the watermark from the database every `pollEvery`, so commits of
// other processes on the same database reach this process's streams too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "event_query.h"
#include "metrics.h"
#include "mutex.h"

namespace b24es {

class ResponseStream;

struct StreamSettings {
  std::size_t maxStreams = 256;  // query.max_streams: more open at once get 503
  // A ": keep-alive" comment goes to a stream that was sent nothing for this long (SPEC §5.1:
  // at most 15 s), so proxies and clients do not take an idle stream for a dead one.
  std::chrono::milliseconds keepAlive{15000};
  // How often the hub reads the committed watermark from the database itself, for commits the
  // writer of this process did not report (another process's, on the same database).
  std::chrono::milliseconds pollEvery{1000};
};

// Whether `event` passes `filter` as the reader's query would select it: every set field equal
// (event codes are stored upper-cased and filters upper-cased), ts within [from, to] (an event
// without ts matches no time bound). afterId, limit and order are not looked at.
bool eventMatches(const EventFilter& filter, const EventRecord& event);

// One event as a Server-Sent Events message: "id: N", "event: CODE", one "data:" line per line of
// the EVENT JSON (one, as eventJson writes it; a stored document with raw line breaks would give
// more, which the client joins back with "\n"), and the empty line that ends it.
std::string sseMessage(const EventRecord& event);

class StreamHub {
 public:
  // `reader` and `metrics` must outlive the hub.
  StreamHub(EventReader& reader, Metrics& metrics, const StreamSettings& settings);
  ~StreamHub();  // stop()
  StreamHub(const StreamHub&) = delete;
  StreamHub& operator=(const StreamHub&) = delete;

  // Reads the committed watermark (a stream with no start id starts after it) and starts the
  // thread. Throws StorageError when the database cannot answer.
  void start();
  // Ends every open stream (its client sees the connection close after what was queued) and
  // joins the thread. Idempotent.
  void stop();

  // The writer's report (SinkSettings::onCommitted): events up to `through` are committed.
  // Thread-safe and quick: it only wakes the hub's thread.
  void committed(std::int64_t through);

  // Takes one of the query.max_streams places, before the stream's answer is sent; false when
  // all are taken (the request gets 503). Thread-safe. A place taken is given back by release()
  // or, once add() was called, when that stream closes.
  bool reserve();
  void release();
  // Adds a stream in a place reserve() took: the events matching `filter` after `after` (nullopt:
  // after the newest event committed, as far as the hub knows) go to `out`. Thread-safe; never
  // blocks on the database.
  void add(const EventFilter& filter, std::optional<std::int64_t> after,
           std::shared_ptr<ResponseStream> out);

  std::size_t open() const;  // places taken; thread-safe

 private:
  struct Stream;

  void run();
  // Gives the events in (published_, through] to the live streams; false when the reader failed.
  bool publish(std::int64_t through);
  // One backlog page to each stream still catching up whose client has room; true when one of
  // them has more to read right away.
  bool catchUp();
  void keepAlives(std::chrono::steady_clock::time_point now);
  // Writes to one stream; false (and the stream is dropped later) once it is closed.
  bool send(Stream& s, std::string message);

  EventReader& reader_;
  Metrics& metrics_;
  const StreamSettings settings_;  // const after construction

  mutable Mutex mutex_;
  CondVar wake_;                                   // committed_, incoming_ or stop_ changed
  std::int64_t committed_ GUARDED_BY(mutex_) = 0;  // the highest watermark reported
  std::int64_t published_ GUARDED_BY(mutex_) = 0;  // every live stream has been given up to it
  std::vector<std::shared_ptr<Stream>> incoming_ GUARDED_BY(mutex_);  // added, not yet seen
  std::size_t places_ GUARDED_BY(mutex_) = 0;                         // reserved or open
  bool stop_ GUARDED_BY(mutex_) = false;

  // The hub's thread only:
  std::vector<std::shared_ptr<Stream>> streams_;
  std::int64_t publishedHere_ = 0;  // published_, as the thread that moves it knows it
  std::thread thread_;
};

}  // namespace b24es
