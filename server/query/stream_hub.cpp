#include "stream_hub.h"

#include <Poco/Logger.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <utility>

#include "http_server.h"
#include "query_json.h"
#include "storage.h"

namespace b24es {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Live events are read in pages of at most this many rows or (the last row included) bytes of
// messages, so a burst of big events never sits in memory whole (SPEC §5: a few MiB).
constexpr std::size_t kLivePageRows = EventFilter::kMaxLimit;
constexpr std::size_t kLivePageBytes = 4 * 1024 * 1024;
// A stream catching up reads pages this big, and only while less than kBacklogRoom of what it
// was sent waits for its client: a backlog goes out as fast as the client reads, and a client
// is never cut (1 MiB behind) for the size of its backlog.
constexpr std::size_t kBacklogRows = 256;
constexpr std::size_t kBacklogBytes = 256 * 1024;
constexpr std::size_t kBacklogRoom = 256 * 1024;
// How soon a stream waiting for room in its client is looked at again.
constexpr auto kRoomPoll = std::chrono::milliseconds(20);
// After the database failed to answer, the next attempt waits this long.
constexpr auto kRetry = std::chrono::seconds(1);

const std::string kKeepAlive = ": keep-alive\n\n";

Poco::Logger& streamLog() {
  static Poco::Logger& log = Poco::Logger::get("b24es.stream");
  return log;
}

}  // namespace

bool eventMatches(const EventFilter& f, const EventRecord& e) {
  if (f.memberId && *f.memberId != e.memberId) return false;
  if (f.domain && (!e.domain || *f.domain != *e.domain)) return false;
  if (f.event && *f.event != e.event) return false;
  if (f.entityId && (!e.entityId || *f.entityId != *e.entityId)) return false;
  if (f.entityTypeId && (!e.entityTypeId || *f.entityTypeId != *e.entityTypeId)) return false;
  if (f.userId && (!e.userId || *f.userId != *e.userId)) return false;
  if (f.from && (!e.ts || *e.ts < *f.from)) return false;
  if (f.to && (!e.ts || *e.ts > *f.to)) return false;
  if (f.source && *f.source != (e.offline ? "offline" : "online")) return false;
  return true;
}

std::string sseMessage(const EventRecord& event) {
  std::string out = "id: " + std::to_string(event.id) + "\n";
  // An event code is one line (the parser keeps it as sent, upper-cased); one that is not would
  // end the field early, so it is left to the data, which carries it too.
  if (!event.event.empty() && event.event.find_first_of("\r\n") == std::string::npos) {
    out += "event: " + event.event + "\n";
  }
  const std::string json = eventJson(event);
  // SSE ends a line at CR, LF or CRLF; JSON escapes them inside strings, so any here are
  // whitespace between tokens, and splitting there keeps the document the same.
  std::size_t start = 0;
  while (start <= json.size()) {
    std::size_t end = json.find_first_of("\r\n", start);
    if (end == std::string::npos) end = json.size();
    out += "data: ";
    out.append(json, start, end - start);
    out += '\n';
    if (end == json.size()) break;
    start = end + (json.compare(end, 2, "\r\n") == 0 ? 2 : 1);
  }
  out += '\n';
  return out;
}

struct StreamHub::Stream {
  Stream(const EventFilter& f, std::shared_ptr<ResponseStream> o) : filter(f), out(std::move(o)) {}

  const EventFilter filter;
  const std::shared_ptr<ResponseStream> out;
  std::atomic<bool> closed{false};  // set by out's onClose, on the listener's loop thread
  // The hub's thread only (written by add() before the thread sees the stream):
  std::int64_t cursor = 0;  // the last id given to it or passed over
  bool live = false;        // caught up: fed by publish()
  SteadyClock::time_point lastWrite;
};

StreamHub::StreamHub(EventReader& reader, Metrics& metrics, const StreamSettings& settings)
    : reader_(reader), metrics_(metrics), settings_(settings) {}

StreamHub::~StreamHub() { stop(); }

void StreamHub::start() {
  const std::int64_t through = reader_.committedThrough();
  {
    MutexLock lock(mutex_);
    committed_ = std::max(committed_, through);
    published_ = through;
  }
  publishedHere_ = through;
  thread_ = std::thread([this] { run(); });
}

void StreamHub::stop() {
  {
    MutexLock lock(mutex_);
    stop_ = true;
  }
  wake_.signal();
  if (thread_.joinable()) thread_.join();
  std::vector<std::shared_ptr<Stream>> left;
  {
    MutexLock lock(mutex_);
    left.swap(incoming_);
  }
  left.insert(left.end(), streams_.begin(), streams_.end());
  streams_.clear();
  for (const std::shared_ptr<Stream>& s : left) s->out->end();
}

void StreamHub::committed(std::int64_t through) {
  {
    MutexLock lock(mutex_);
    if (through <= committed_) return;
    committed_ = through;
  }
  wake_.signal();
}

bool StreamHub::reserve() {
  MutexLock lock(mutex_);
  if (stop_ || places_ >= settings_.maxStreams) return false;
  ++places_;
  return true;
}

void StreamHub::release() {
  MutexLock lock(mutex_);
  if (places_ > 0) --places_;
}

std::size_t StreamHub::open() const {
  MutexLock lock(mutex_);
  return places_;
}

void StreamHub::add(const EventFilter& filter, std::optional<std::int64_t> after,
                    std::shared_ptr<ResponseStream> out) {
  auto s = std::make_shared<Stream>(filter, out);
  s->lastWrite = SteadyClock::now();
  {
    MutexLock lock(mutex_);
    // Without a start id: after the newest event known committed. The writer reports a batch
    // before its clients are answered, so every event acknowledged before this request is at
    // or below committed_, even while this thread has not yet published it (then publish()
    // passes over it for this stream: the cursor is above it).
    s->cursor = after.value_or(std::max(committed_, published_));
    incoming_.push_back(s);
  }
  metrics_.streamOpened();
  // Outside the lock: onClose runs `done` at once when the stream closed already.
  std::weak_ptr<Stream> weak = s;
  out->onClose([this, weak](ResponseStream::Closed why) {
    if (auto stream = weak.lock()) stream->closed = true;
    release();
    metrics_.streamClosed(why == ResponseStream::Closed::kTooSlow);
  });
  wake_.signal();
}

bool StreamHub::send(Stream& s, std::string message) {
  if (s.closed || !s.out->write(std::move(message))) {
    s.closed = true;
    return false;
  }
  s.lastWrite = SteadyClock::now();
  return true;
}

void StreamHub::run() {
  SteadyClock::time_point nextPoll = SteadyClock::now() + settings_.pollEvery;
  SteadyClock::time_point retryAt{};  // after a failed read, not before this
  bool moreBacklog = false;           // a stream catching up can read its next page now
  bool waitingForRoom = false;        // a stream catching up waits for its client
  for (;;) {
    std::int64_t through;
    {
      MutexLock lock(mutex_);
      for (;;) {
        if (stop_) return;
        SteadyClock::time_point now = SteadyClock::now();
        const bool canRead = now >= retryAt;
        if (!incoming_.empty() || (canRead && (committed_ > publishedHere_ || moreBacklog))) {
          break;
        }
        SteadyClock::time_point deadline = nextPoll;
        for (const std::shared_ptr<Stream>& s : streams_) {
          deadline = std::min(deadline, s->lastWrite + settings_.keepAlive);
        }
        if (waitingForRoom) deadline = std::min(deadline, now + kRoomPoll);
        if (!canRead) deadline = std::min(deadline, retryAt);
        if (now >= deadline) break;
        wake_.waitUntil(mutex_, deadline);
      }
      for (std::shared_ptr<Stream>& s : incoming_) streams_.push_back(std::move(s));
      incoming_.clear();
      through = committed_;
    }
    streams_.erase(
        std::remove_if(streams_.begin(), streams_.end(),
                       [](const std::shared_ptr<Stream>& s) { return s->closed.load(); }),
        streams_.end());
    SteadyClock::time_point now = SteadyClock::now();
    bool failed = false;
    if (now >= retryAt) {
      if (now >= nextPoll) {
        nextPoll = now + settings_.pollEvery;
        try {
          through = std::max(through, reader_.committedThrough());
        } catch (const StorageError& e) {
          streamLog().warning("streams: cannot read the committed watermark: %s",
                              std::string(e.what()));
          failed = true;
        }
      }
      if (!failed && through > publishedHere_) failed = !publish(through);
      moreBacklog = false;
      waitingForRoom = false;
      if (!failed) {
        try {
          moreBacklog = catchUp();
        } catch (const StorageError& e) {
          streamLog().warning("streams: cannot read a backlog: %s", std::string(e.what()));
          failed = true;
        }
      }
      for (const std::shared_ptr<Stream>& s : streams_) {
        if (!s->live && !s->closed) waitingForRoom = true;
      }
      if (failed) retryAt = SteadyClock::now() + kRetry;
    }
    keepAlives(SteadyClock::now());
  }
}

bool StreamHub::publish(std::int64_t through) {
  std::vector<std::shared_ptr<Stream>> live;
  for (const std::shared_ptr<Stream>& s : streams_) {
    if (s->live && !s->closed) live.push_back(s);
  }
  if (live.empty()) {
    // Nobody to give them to: streams catching up read their backlogs up to the watermark.
    publishedHere_ = through;
    MutexLock lock(mutex_);
    published_ = through;
    return true;
  }
  std::int64_t after = publishedHere_;
  while (after < through) {
    EventFilter all;
    all.afterId = after;
    all.limit = kLivePageRows;
    std::vector<EventRecord> page;
    std::size_t bytes = 0;
    bool more = false;
    try {
      reader_.scanEvents(all, [&](EventRecord& e) {
        // Beyond the watermark an id may be visible while a smaller one is not yet (a backend
        // whose ids commit out of order): it waits for the watermark to pass it.
        if (e.id > through) return false;
        if (page.size() == kLivePageRows || bytes >= kLivePageBytes) {
          more = true;
          return false;
        }
        bytes += e.dataJson.size();
        page.push_back(std::move(e));
        return true;
      });
    } catch (const StorageError& e) {
      streamLog().warning("streams: cannot read new events: %s", std::string(e.what()));
      return false;
    }
    // Each event is rendered once, and only if a stream wants it; each stream then gets the
    // page's messages in one write (one wake-up of its loop, one send), however many they are.
    std::vector<std::string> out(live.size());
    for (const EventRecord& event : page) {
      std::optional<std::string> message;
      for (std::size_t i = 0; i < live.size(); ++i) {
        Stream& st = *live[i];
        if (event.id <= st.cursor || st.closed) continue;
        st.cursor = event.id;
        if (!eventMatches(st.filter, event)) continue;
        if (!message) message = sseMessage(event);
        out[i] += *message;
      }
    }
    for (std::size_t i = 0; i < live.size(); ++i) {
      if (!out[i].empty()) send(*live[i], std::move(out[i]));
    }
    after = more ? page.back().id : through;
    // Published as far as the page went, so a stream that joins now starts behind none of it.
    publishedHere_ = after;
    for (const std::shared_ptr<Stream>& s : live) s->cursor = std::max(s->cursor, after);
    MutexLock lock(mutex_);
    published_ = after;
  }
  return true;
}

bool StreamHub::catchUp() {
  bool more = false;
  for (const std::shared_ptr<Stream>& s : streams_) {
    if (s->live || s->closed) continue;
    if (s->cursor >= publishedHere_) {
      s->live = true;
      continue;
    }
    if (s->out->queued() >= kBacklogRoom) continue;  // its client reads; looked at again soon
    EventFilter f = s->filter;
    f.afterId = s->cursor;
    f.limit = kBacklogRows;
    f.order = EventFilter::Order::kAsc;
    std::size_t taken = 0;
    bool end = true;  // no row up to the watermark is left after this page
    std::string out;  // the page's messages, written at once
    std::int64_t last = s->cursor;
    // A read that fails part way throws before anything is sent or the cursor moves, so the
    // page is read again whole on the next try: no gap.
    reader_.scanEvents(f, [&](EventRecord& e) {
      if (e.id > publishedHere_) return false;
      if (taken == kBacklogRows || out.size() >= kBacklogBytes) {
        end = false;
        return false;
      }
      out += sseMessage(e);
      ++taken;
      last = e.id;
      return true;
    });
    s->cursor = last;
    if (!out.empty()) send(*s, std::move(out));
    if (s->closed) continue;
    if (end) {
      // Caught up: every matching event up to the watermark was sent; publish() goes on.
      s->cursor = std::max(s->cursor, publishedHere_);
      s->live = true;
    } else {
      more = true;
    }
  }
  return more;
}

void StreamHub::keepAlives(SteadyClock::time_point now) {
  for (const std::shared_ptr<Stream>& s : streams_) {
    if (!s->closed && now - s->lastWrite >= settings_.keepAlive) send(*s, kKeepAlive);
  }
}

}  // namespace b24es
