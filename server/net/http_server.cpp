#include "http_server.h"

#include <Poco/AutoPtr.h>
#include <Poco/Exception.h>
#include <Poco/Logger.h>
#include <Poco/Net/StreamSocketImpl.h>
#include <Poco/Notification.h>
#include <Poco/NotificationQueue.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <unordered_map>

#include "api_error.h"
#include "http1_connection.h"
#include "mutex.h"
#include "reactor.h"

namespace b24es {
namespace {

using Clock = std::chrono::steady_clock;

// After an answer that closes the connection, what the client still sends is read and dropped
// for at most this long and this much before the close: closing a socket with unread input
// resets the connection, and a reset can destroy the answer before the client has read it.
constexpr auto kDrainTime = std::chrono::seconds(1);
constexpr std::size_t kDrainBytes = 256 * 1024;
// How often each loop looks for connections past their deadlines.
constexpr auto kSweepEvery = std::chrono::milliseconds(100);
// Answers of pipelined requests not yet sent, beyond which no further request is started.
constexpr std::size_t kMaxUnsent = 64 * 1024;

Poco::Logger& httpLog() {
  static Poco::Logger& log = Poco::Logger::get("b24es.http");
  return log;
}

void nameThread(const std::string& name) {
#if defined(__linux__)
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
#endif
}

}  // namespace

// Threads for handlers that block, fed from one queue (POCO's NotificationQueue).
class HttpServer::Workers {
 public:
  Workers(int count, const std::string& name) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, name] {
        nameThread(name);
        for (;;) {
          Poco::AutoPtr<Poco::Notification> job(queue_.waitDequeueNotification());
          if (!job || !static_cast<Job&>(*job).work) return;  // an empty job: stop
          static_cast<Job&>(*job).work();
        }
      });
    }
  }
  // Called once no job is queued or running (the loops have stopped: every handler resumed).
  ~Workers() {
    // One empty job per thread, not wakeUpAll(): that wakes only the threads waiting now.
    for (std::size_t i = 0; i < threads_.size(); ++i) queue_.enqueueNotification(new Job({}));
    for (std::thread& t : threads_) t.join();
  }

  void run(std::function<void()> work) { queue_.enqueueNotification(new Job(std::move(work))); }

 private:
  struct Job final : Poco::Notification {
    explicit Job(std::function<void()> w) : work(std::move(w)) {}
    std::function<void()> work;
  };

  Poco::NotificationQueue queue_;  // thread-safe
  std::vector<std::thread> threads_;
};

namespace {

// Runs a plain (blocking) handler on a worker thread and resumes the connection after it, as
// an asynchronous one would. What the handler throws is thrown again on the loop thread, where
// the server answers 500.
class PooledHandler final : public AsyncRequestHandler {
 public:
  PooledHandler(Poco::Net::HTTPRequestHandler* inner,
                std::function<void(std::function<void()>)> run)
      : inner_(inner), run_(std::move(run)) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    inner_->handleRequest(request, response);
  }

  bool begin(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
             std::function<void()> resume) override {
    run_([this, &request, &response, resume = std::move(resume)] {
      try {
        inner_->handleRequest(request, response);
      } catch (...) {
        failure_ = std::current_exception();
      }
      resume();
    });
    return true;
  }

  void finish(Poco::Net::HTTPServerResponse&) override {
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  std::unique_ptr<Poco::Net::HTTPRequestHandler> inner_;
  std::function<void(std::function<void()>)> run_;
  std::exception_ptr failure_;  // written by the worker before it resumes the connection
};

}  // namespace

class HttpServer::Loop {
 public:
  Loop(int listenFd, Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
       Poco::Net::HTTPServerParams::Ptr params, const HttpServerSettings& settings,
       Workers* workers)
      : listenFd_(listenFd),
        handlers_(handlers),
        params_(params),
        workers_(workers),
        requestTimeout_(std::chrono::microseconds(settings.requestTimeout.totalMicroseconds())),
        firstTimeout_(std::chrono::microseconds(params->getTimeout().totalMicroseconds())),
        idleTimeout_(std::chrono::microseconds(params->getKeepAliveTimeout().totalMicroseconds())),
        maxStreamUnsent_(settings.maxStreamUnsent),
        listener_(*this) {
    limits_.maxBodyBytes = settings.maxBodyBytes;
    limits_.listener = settings.name;
    limits_.trustedProxies = settings.trustedProxies;
    limits_.onRejection = settings.onRejection;
    listen(true);
  }

  ~Loop() {
    // Normally every connection closed before the loop ended; a stream's producer must never
    // post to this loop once it is gone.
    for (auto& entry : connections_) {
      if (entry.second->channel) entry.second->channel->detach(ResponseStream::Closed::kEnded);
    }
    connections_.clear();
    if (listening_) listen(false);
  }

  // Called from any thread.
  void requestStop(Clock::time_point graceEnd) {
    graceEnd_.store(graceEnd.time_since_epoch().count());
    stopping_.store(true);
    reactor_.post([] {});  // a wake-up
  }

  void run() {
    Clock::time_point nextSweep = Clock::now() + kSweepEvery;
    bool stopSeen = false;
    bool ok = reactor_.run(kSweepEvery, [&](Clock::time_point now) {
      if (stopping_.load() && !stopSeen) {
        stopSeen = true;
        beginStop();
      }
      if (now >= nextSweep) {
        sweep(now, stopSeen);
        nextSweep = now + kSweepEvery;
      }
      for (auto it = connections_.begin(); it != connections_.end();) {
        it = it->second->closed ? connections_.erase(it) : std::next(it);
      }
      return !(stopSeen && connections_.empty());
    });
    if (!ok) httpLog().error("an event loop failed: %s", std::string(std::strerror(errno)));
  }

 private:
  struct Connection;

  // The ResponseStream of one streamed answer. What producers queue (pending_) is guarded by
  // mutex_; one wake-up task at a time carries it to the loop, which appends it to the
  // connection and sends it. The connection side (connection_) is the loop thread's alone.
  class Channel final : public ResponseStream, public std::enable_shared_from_this<Channel> {
   public:
    Channel(Loop& loop, Connection& connection) : loop_(loop), connection_(&connection) {}

    bool write(std::string bytes) override {
      MutexLock lock(mutex_);
      if (closed_ || ended_) return false;
      queued_ += bytes.size();
      if (pending_.empty()) {
        pending_ = std::move(bytes);
      } else {
        pending_ += bytes;
      }
      wakeLocked();
      return true;
    }
    void end() override {
      MutexLock lock(mutex_);
      if (closed_ || ended_) return;
      ended_ = true;
      wakeLocked();
    }
    bool isOpen() const override {
      MutexLock lock(mutex_);
      return !closed_ && !ended_;
    }
    std::size_t queued() const override {
      MutexLock lock(mutex_);
      return queued_;
    }
    void onClose(std::function<void(Closed)> done) override {
      Closed why;
      {
        MutexLock lock(mutex_);
        if (!closed_) {
          done_ = std::move(done);
          return;
        }
        why = why_;
      }
      done(why);
    }

    // Loop thread. What the producers queued since the last call, and whether end() came.
    bool take(std::string& bytes) {
      MutexLock lock(mutex_);
      bytes.swap(pending_);
      wakePosted_ = false;
      return ended_;
    }
    // Loop thread: refuses further writes (the server is stopping).
    void refuseMore() {
      MutexLock lock(mutex_);
      ended_ = true;
    }
    // Loop thread, after each send: `unsent` bytes wait in the connection.
    void sentDown(std::size_t unsent) {
      MutexLock lock(mutex_);
      queued_ = pending_.size() + unsent;
    }
    // Loop thread, once, when the connection closes.
    void detach(Closed why) {
      std::function<void(Closed)> done;
      {
        MutexLock lock(mutex_);
        connection_ = nullptr;
        closed_ = true;
        why_ = why;
        pending_.clear();
        queued_ = 0;
        done = std::move(done_);
      }
      if (done) done(why);
    }
    Connection* connection() { return connection_; }  // loop thread; null once closed

   private:
    // Posted under mutex_, so that a stream detached (and its loop gone after it) is never
    // posted to: detach() takes mutex_ first.
    void wakeLocked() REQUIRES(mutex_) {
      if (wakePosted_) return;
      wakePosted_ = true;
      loop_.reactor_.post([self = shared_from_this()] {
        if (Connection* c = self->connection()) self->loop_.streamOut(*c);
      });
    }

    Loop& loop_;
    Connection* connection_;  // loop thread only
    mutable Mutex mutex_;
    std::string pending_ GUARDED_BY(mutex_);  // written, not yet taken by the loop
    std::size_t queued_ GUARDED_BY(mutex_) = 0;
    bool wakePosted_ GUARDED_BY(mutex_) = false;
    bool ended_ GUARDED_BY(mutex_) = false;
    bool closed_ GUARDED_BY(mutex_) = false;
    Closed why_ GUARDED_BY(mutex_) = Closed::kEnded;
    std::function<void(Closed)> done_ GUARDED_BY(mutex_);
  };

  // One socket and its HTTP/1 connection.
  struct Connection final : Reactor::Handler {
    Connection(Loop& owner, int socketFd, const Poco::Net::SocketAddress& peer,
               const Poco::Net::SocketAddress& local)
        : loop(owner),
          socket(new Poco::Net::StreamSocketImpl(socketFd)),
          fd(socketFd),
          http(peer, local, *owner.params_, owner.limits_, httpLog()) {}
    void onReady(std::uint32_t events) override { loop.onReady(*this, events); }

    Loop& loop;
    Poco::Net::StreamSocket socket;  // owns fd
    const int fd;
    Http1Connection http;
    std::unique_ptr<Poco::Net::HTTPRequestHandler> handler;  // of the request being answered
    std::uint32_t interest = 0;                              // what the reactor watches for
    bool awaiting = false;              // an asynchronous handler has not resumed yet
    bool closeWhenSent = false;         // the client closed its side and nothing is left to answer
    bool draining = false;              // last answer sent and sending side shut; input dropped
    bool broken = false;                // a send or receive failed: nothing more can be sent
    bool closed = false;                // closed during this loop iteration; deleted after it
    Clock::time_point idleDeadline;     // the next request's first byte must arrive by then
    Clock::time_point requestDeadline;  // the whole next request must arrive by then
    std::optional<Clock::time_point> closeDeadline;  // closing: closed at the latest then
    std::shared_ptr<Channel> channel;                // of a streamed answer; null otherwise
    ResponseStream::Closed closedBecause = ResponseStream::Closed::kClient;  // told to channel
  };

  struct Listener final : Reactor::Handler {
    explicit Listener(Loop& owner) : loop(owner) {}
    void onReady(std::uint32_t) override { loop.acceptAll(); }
    Loop& loop;
  };

  bool stopping() const { return stopping_.load(); }

  void listen(bool on) {
    // EPOLLEXCLUSIVE: one loop wakes for a new connection, not all.
    reactor_.watch(listenFd_, &listener_, listenInterest_, on ? EPOLLIN | EPOLLEXCLUSIVE : 0);
    listening_ = on;
  }

  void acceptAll() {
    for (;;) {
      sockaddr_storage address{};
      socklen_t length = sizeof address;
      int fd = ::accept4(listenFd_, reinterpret_cast<sockaddr*>(&address), &length,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: stop listening until the next sweep rather than spin, and say
          // so at most once a minute.
          Clock::time_point now = Clock::now();
          if (now - lastAcceptWarning_ >= std::chrono::minutes(1)) {
            lastAcceptWarning_ = now;
            httpLog().warning("cannot accept connections: %s (retrying every %d ms)",
                              std::string(std::strerror(errno)),
                              static_cast<int>(kSweepEvery.count()));
          }
          listen(false);
          listenPaused_ = true;
        }
        return;  // EAGAIN: none left; other errors concern only that connection
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      sockaddr_storage local{};
      socklen_t localLength = sizeof local;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLength) != 0) {
        ::close(fd);
        continue;  // gone already
      }
      auto c = std::make_unique<Connection>(
          *this, fd, Poco::Net::SocketAddress(reinterpret_cast<const sockaddr*>(&address), length),
          Poco::Net::SocketAddress(reinterpret_cast<const sockaddr*>(&local), localLength));
      Clock::time_point now = Clock::now();
      c->idleDeadline = now + firstTimeout_;
      c->requestDeadline = now + requestTimeout_;
      if (!reactor_.watch(fd, c.get(), c->interest, EPOLLIN)) continue;
      Connection* key = c.get();
      connections_.emplace(key, std::move(c));
    }
  }

  void updateInterest(Connection& c) {
    std::uint32_t interest = 0;
    if (!c.broken && !c.http.peerClosed() && (c.draining || c.http.wantsInput())) {
      interest |= EPOLLIN;
    }
    if (c.http.unsent() > 0) interest |= EPOLLOUT;
    if (!reactor_.watch(c.fd, &c, c.interest, interest)) c.broken = true;
  }

  void close(Connection& c) {
    if (c.closed) return;
    reactor_.watch(c.fd, &c, c.interest, 0);
    if (c.channel) {
      std::shared_ptr<Channel> channel = std::move(c.channel);
      channel->detach(c.closedBecause);
    }
    // A handler that has not resumed still refers to the connection: it is closed once it
    // resumes, until then only marked broken.
    if (c.awaiting) {
      c.broken = true;
      return;
    }
    c.closed = true;
    try {
      c.socket.close();
    } catch (const Poco::Exception&) {
      // Closed either way.
    }
  }

  void onReady(Connection& c, std::uint32_t events) {
    if (c.closed) return;
    // An error stays pending where recv() cannot report it (after the client's FIN).
    if (events & EPOLLERR) c.broken = true;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readInput(c);
    advance(c);
  }

  // Reads what the socket holds, as far as the connection wants it.
  void readInput(Connection& c) {
    char buffer[16384];
    while (!c.broken && !c.http.peerClosed() && (c.draining || c.http.wantsInput())) {
      ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (got > 0) {
        c.http.receive(buffer, static_cast<std::size_t>(got));
        if (c.http.dropped() >= kDrainBytes) {
          c.broken = true;  // a client that keeps sending after its answer: enough
          break;
        }
        if (static_cast<std::size_t>(got) < sizeof buffer) break;
        continue;
      }
      if (got == 0) {
        c.http.receiveEnd();
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      } else if (errno != EINTR) {
        c.broken = true;
      }
    }
  }

  // Starts every complete request received, in order, until one is handled asynchronously or
  // the connection is to close; sends what is queued; closes what is finished.
  void advance(Connection& c) {
    if (c.closed) return;
    if (c.broken) return close(c);
    if (c.draining && c.http.peerClosed()) return close(c);
    // A stream's client that closed its side is gone: nobody reads what is left of the body.
    if (c.http.streaming() && c.http.peerClosed()) return close(c);
    bool blocked;  // stopped by the bound on unsent answers, not for want of a whole request
    do {
      blocked = false;
      while (!c.closed && !c.awaiting) {
        if (c.http.unsent() >= kMaxUnsent) {
          blocked = true;
          break;
        }
        if (!c.http.startRequest(stopping())) break;
        dispatch(c);
      }
      if (c.closed) return;
      // A client that closed its sending side is closed once nothing is left to answer (the
      // loop above answered or refused whatever had arrived).
      if (c.http.peerClosed() && !c.awaiting && !c.http.handling() && !c.http.closing() &&
          !c.http.inputPending()) {
        c.closeWhenSent = true;
      }
      flush(c);
      // Answers sent make room for the pipelined requests behind them.
    } while (blocked && !c.closed && c.http.unsent() < kMaxUnsent);
  }

  void dispatch(Connection& c) {
    Http1Request& request = c.http.request();
    try {
      Poco::Net::HTTPRequestHandler* handler = handlers_->createRequestHandler(request);
      if (!handler) {
        c.http.refuse({501, "not_implemented", "no handler serves this request"},
                      request.getMethod());
        return;
      }
      if (auto* streaming = dynamic_cast<StreamingRequestHandler*>(handler)) {
        c.handler.reset(handler);
        streaming->open(request, c.http.response());
        if (!c.http.response().sent()) {
          startStream(c, *streaming);
          c.handler.reset();
          return;
        }
        complete(c);
        return;
      }
      if (workers_ && !dynamic_cast<AsyncRequestHandler*>(handler)) {
        Workers* workers = workers_;
        handler = new PooledHandler(
            handler, [workers](std::function<void()> work) { workers->run(std::move(work)); });
      }
      c.handler.reset(handler);
      if (auto* async = dynamic_cast<AsyncRequestHandler*>(handler)) {
        c.awaiting = true;
        Connection* target = &c;
        if (async->begin(request, c.http.response(), [this, target] { resume(target); })) return;
        c.awaiting = false;
      } else {
        handler->handleRequest(request, c.http.response());
      }
    } catch (const Poco::Exception& e) {
      c.awaiting = false;
      return handlerFailed(c, e.name());
    } catch (const std::exception&) {
      c.awaiting = false;
      return handlerFailed(c, "a C++ exception");
    }
    complete(c);
  }

  // The handler left its answer unsent: a streamed answer starts with its head.
  void startStream(Connection& c, StreamingRequestHandler& handler) {
    c.http.startStream();
    c.channel = std::make_shared<Channel>(*this, c);
    handler.start(c.channel);
    if (stopping()) endStream(c);
  }

  // The head is sent; the stream's own bytes follow. Ends it as the server stops.
  void endStream(Connection& c) {
    if (!c.channel) return;
    c.channel->refuseMore();
    streamOut(c);
  }

  // Loop thread: moves what a stream's producers queued into its connection and sends it. A
  // client more than maxStreamUnsent_ behind (after the kernel's buffer took what it could) is
  // cut, so a reader that stopped costs the server at most that much.
  void streamOut(Connection& c) {
    if (c.closed || !c.channel) return;
    std::string bytes;
    const bool ended = c.channel->take(bytes);
    if (c.http.streaming()) {
      c.http.appendStream(std::move(bytes));
      if (ended) {
        c.http.endStream();
        c.closedBecause = ResponseStream::Closed::kEnded;
      }
    }
    flush(c);
    if (c.closed || !c.http.streaming() || c.http.unsent() <= maxStreamUnsent_) return;
    httpLog().notice("a stream's client is %z bytes behind; disconnected", c.http.unsent());
    c.closedBecause = ResponseStream::Closed::kTooSlow;
    c.broken = true;
    close(c);
  }

  // Called by an asynchronous handler, from any thread, once.
  void resume(Connection* c) {
    reactor_.post([this, c] { resumed(*c); });
  }

  void resumed(Connection& c) {
    c.awaiting = false;
    if (c.broken) {
      c.handler.reset();
      return close(c);
    }
    try {
      static_cast<AsyncRequestHandler&>(*c.handler).finish(c.http.response());
    } catch (const Poco::Exception& e) {
      handlerFailed(c, e.name());
      return advance(c);
    } catch (const std::exception&) {
      handlerFailed(c, "a C++ exception");
      return advance(c);
    }
    complete(c);
    advance(c);
  }

  // A handler threw: 500 if it had not answered yet (the exception's text is not logged: it may
  // quote the request), and the connection is closed in either case.
  void handlerFailed(Connection& c, const std::string& what) {
    if (c.http.handling() && !c.http.response().sent()) {
      c.http.refuse({500, "internal_error", "the server failed while answering this request"},
                    "handler threw " + what);
      c.handler.reset();
      return;
    }
    httpLog().error("a handler threw %s after answering; connection closed", what);
    c.handler.reset();
    close(c);
  }

  // The handler has answered: queue the answer and re-arm the deadlines for the next request.
  void complete(Connection& c) {
    c.http.finishRequest(stopping());
    c.handler.reset();
    if (!c.http.closing()) {
      Clock::time_point now = Clock::now();
      c.idleDeadline = now + idleTimeout_;
      c.requestDeadline = now + requestTimeout_;
    }
  }

  // Sends what it can; once a closing connection's last answer is out, shuts the sending side
  // and starts draining.
  void flush(Connection& c) {
    while (c.http.unsent() > 0 && !c.broken) {
      ssize_t n = ::send(c.fd, c.http.unsentData(), c.http.unsent(), MSG_NOSIGNAL);
      if (n > 0) {
        c.http.sent(static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        c.broken = true;
      }
    }
    if (c.broken) return close(c);
    if (c.channel) c.channel->sentDown(c.http.unsent());
    if (c.http.unsent() == 0 && !c.draining && (c.http.closing() || c.closeWhenSent)) {
      if (c.http.peerClosed()) return close(c);
      ::shutdown(c.fd, SHUT_WR);
      c.draining = true;
      c.closeDeadline = Clock::now() + kDrainTime;
    }
    updateInterest(c);
  }

  void beginStop() {
    if (listening_) listen(false);
    listenPaused_ = false;
    for (auto& entry : connections_) {
      // Idle connections close now; requests under way are answered (Connection: close);
      // streams end after what was queued for them.
      if (entry.second->http.idle()) {
        close(*entry.second);
      } else if (entry.second->http.streaming()) {
        endStream(*entry.second);
      }
    }
  }

  // Whether a connection waiting for (the rest of) a request is past its deadline.
  bool late(const Connection& c, Clock::time_point now, bool stopping) const {
    return (c.http.idle() && (now >= c.idleDeadline || stopping)) || now >= c.requestDeadline;
  }

  void sweep(Clock::time_point now, bool stopping) {
    if (listenPaused_ && !stopping) {
      listenPaused_ = false;
      listen(true);
    }
    const bool graceOver = stopping && now.time_since_epoch().count() >= graceEnd_.load();
    for (auto& entry : connections_) {
      Connection& c = *entry.second;
      if (c.closed || c.awaiting) continue;  // a handler resumes it; never deleted before that
      if (c.draining || c.http.closing() || c.closeWhenSent) {
        if (!c.closeDeadline) c.closeDeadline = now + requestTimeout_;  // to send the answer
        if (now >= *c.closeDeadline || graceOver) close(c);
        continue;
      }
      if (graceOver) {
        close(c);
        continue;
      }
      if (c.http.streaming()) continue;  // no request deadlines: the answer is under way
      if (!late(c, now, stopping)) continue;
      // Input that arrived while this process could not run (paused by SIGSTOP, or this loop
      // busy) is read before the connection is closed for being late: a request that has fully
      // arrived is answered, not dropped with its connection.
      const std::uint64_t before = c.http.requests();
      readInput(c);
      advance(c);
      if (c.closed || c.awaiting || c.http.requests() != before || c.http.closing() ||
          c.closeWhenSent) {
        continue;
      }
      if (late(c, now, stopping)) close(c);
    }
  }

  const int listenFd_;
  Poco::Net::HTTPRequestHandlerFactory::Ptr handlers_;
  Poco::Net::HTTPServerParams::Ptr params_;
  Workers* const workers_;                // may be null; outlives the loop
  const Clock::duration requestTimeout_;  // a whole request, from connect or previous answer
  const Clock::duration firstTimeout_;    // a new connection's first byte
  const Clock::duration idleTimeout_;     // the next request's first byte after an answer
  const std::size_t maxStreamUnsent_;     // a stream's client further behind is cut
  Http1Limits limits_;                    // const after construction
  Reactor reactor_;
  Listener listener_;
  std::uint32_t listenInterest_ = 0;
  bool listening_ = false;
  bool listenPaused_ = false;  // after running out of descriptors, until the next sweep
  Clock::time_point lastAcceptWarning_;
  // Keyed by address, not descriptor: a closed connection's descriptor can be reused by a new
  // one before the closed one is deleted at the end of the loop iteration.
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
  std::atomic<bool> stopping_{false};
  std::atomic<Clock::rep> graceEnd_{0};
};

HttpServer::HttpServer(const Poco::Net::ServerSocket& socket,
                       Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
                       Poco::Net::HTTPServerParams::Ptr params, const HttpServerSettings& settings)
    : socket_(socket), name_(settings.name) {
  socket_.setBlocking(false);
  if (settings.workers > 0) {
    workers_ = std::make_unique<Workers>(settings.workers, "b24es-" + name_ + "-w");
  }
  for (int i = 0; i < std::max(1, settings.threads); ++i) {
    loops_.push_back(std::make_unique<Loop>(socket_.impl()->sockfd(), handlers, params, settings,
                                            workers_.get()));
  }
}

HttpServer::~HttpServer() {
  stop(Poco::Timespan(0));
  loops_.clear();
  workers_.reset();
}

void HttpServer::start() {
  for (auto& loop : loops_) {
    Loop* l = loop.get();
    std::string name = "b24es-" + name_;
    threads_.emplace_back([l, name] {
      nameThread(name);
      l->run();
    });
  }
}

void HttpServer::stop(Poco::Timespan grace) {
  auto graceEnd = Clock::now() + std::chrono::microseconds(grace.totalMicroseconds());
  for (auto& loop : loops_) loop->requestStop(graceEnd);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace b24es
