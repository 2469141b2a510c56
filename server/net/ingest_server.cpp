#include "ingest_server.h"

#include <Poco/Exception.h>
#include <Poco/FileStream.h>
#include <Poco/Logger.h>
#include <Poco/MemoryStream.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/StreamSocketImpl.h>
#include <Poco/StreamCopier.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>

#include "access_log.h"
#include "api_error.h"
#include "http_framing.h"

// The loop is written by hand on epoll and an eventfd because POCO 1.11 offers no event loop
// that another thread can wake: SocketReactor::wakeUp() only interrupts its idle sleep, not a
// poll in progress, and PollSet has no wake-up at all (it came with 1.12). The answers of a
// committed batch arrive from the writer thread, so the loop must be woken from outside.
// Everything HTTP is still POCO's: requests are parsed by HTTPRequest::read, answered by the
// factory's handlers through HTTPServerResponse, and written by HTTPResponse::write.

namespace b24es {
namespace {

using Clock = std::chrono::steady_clock;

// A request's line and headers may take this much; POCO's own limits (100 fields, 8192 bytes a
// value) are checked by HTTPRequest::read within it.
constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
// After an answer that closes the connection, what the client still sends is read and dropped
// for at most this long and this much before the close: closing a socket with unread input
// resets the connection, and a reset can destroy the answer before the client has read it.
constexpr auto kDrainTime = std::chrono::seconds(1);
constexpr std::size_t kDrainBytes = 256 * 1024;
// How often each loop looks for connections past their deadlines.
constexpr auto kSweepEvery = std::chrono::milliseconds(100);
// Answers of pipelined requests not yet sent, beyond which no further request is started.
constexpr std::size_t kMaxUnsent = 64 * 1024;

Poco::Logger& httpLog() { return Poco::Logger::get("b24es.http"); }

ApiError malformedRequest() {
  return {400, "malformed_request",
          "the request line or a header is malformed or too long (headers: at most 100 fields, "
          "8192 bytes per value)"};
}

ApiError badLength() {
  return {400, "malformed_request", "the Content-Length header is not a number of bytes"};
}

// The answer to one request, collected in memory for the loop to send.
class BufferedResponse final : public Poco::Net::HTTPServerResponse, public RequestNotes {
 public:
  explicit BufferedResponse(bool head) : head_(head) {}

  // The loop sends 100 Continue itself, before the body has arrived.
  void sendContinue() override {}

  std::ostream& send() override {
    if (sent_) throw Poco::IllegalStateException("the response was sent already");
    sent_ = true;
    return head_ ? discard_ : body_;
  }

  void sendFile(const std::string& path, const std::string& mediaType) override {
    Poco::FileInputStream in(path);
    setContentType(mediaType);
    Poco::StreamCopier::copyStream(in, send());
  }

  void sendBuffer(const void* buffer, std::size_t length) override {
    send().write(static_cast<const char*>(buffer), static_cast<std::streamsize>(length));
  }

  void redirect(const std::string& uri, HTTPStatus status) override {
    setStatusAndReason(status);
    set("Location", uri);
    send();
  }

  void requireAuthentication(const std::string& realm) override {
    setStatusAndReason(HTTP_UNAUTHORIZED);
    set("WWW-Authenticate", "Basic realm=\"" + realm + "\"");
    send();
  }

  bool sent() const override { return sent_; }
  // The body's length as it will be sent (for the access log).
  std::int64_t bodyBytes() { return head_ ? 0 : static_cast<std::int64_t>(body_.tellp()); }

  // Appends the status line, the headers and the body to `out`. The whole body is known, so a
  // body the handler meant to send chunked, or without a length, is sent with its length.
  void appendTo(std::string& out) {
    std::string body = body_.str();
    if (!head_ && (getChunkedTransferEncoding() || !hasContentLength())) {
      setChunkedTransferEncoding(false);
      setContentLength64(static_cast<Poco::Int64>(body.size()));
    }
    std::ostringstream head;
    write(head);
    out += head.str();
    out += body;
  }

 private:
  const bool head_;  // a HEAD request: headers only
  bool sent_ = false;
  std::ostringstream body_;
  std::ostream discard_{nullptr};
};

// A request whose headers and body are in memory.
class BufferedRequest final : public Poco::Net::HTTPServerRequest {
 public:
  BufferedRequest(const Poco::Net::SocketAddress& client, const Poco::Net::SocketAddress& server,
                  const Poco::Net::HTTPServerParams& params)
      : client_(client), server_(server), params_(params) {}

  void setBody(std::string body) {
    body_ = std::move(body);
    stream_ = std::make_unique<Poco::MemoryInputStream>(body_.data(), body_.size());
  }
  void setResponse(Poco::Net::HTTPServerResponse* response) { response_ = response; }
  // When its headers were read: the access log's duration counts from here.
  const Clock::time_point started = Clock::now();

  std::istream& stream() override { return *stream_; }
  const Poco::Net::SocketAddress& clientAddress() const override { return client_; }
  const Poco::Net::SocketAddress& serverAddress() const override { return server_; }
  const Poco::Net::HTTPServerParams& serverParams() const override { return params_; }
  Poco::Net::HTTPServerResponse& response() const override { return *response_; }
  bool secure() const override { return false; }

 private:
  const Poco::Net::SocketAddress& client_;
  const Poco::Net::SocketAddress& server_;
  const Poco::Net::HTTPServerParams& params_;
  std::string body_;
  std::unique_ptr<Poco::MemoryInputStream> stream_;
  Poco::Net::HTTPServerResponse* response_ = nullptr;
};

}  // namespace

// One connection and the request it is in.
struct IngestConnection {
  enum class State {
    kReading,   // waiting for (the rest of) a request
    kHandling,  // an asynchronous handler has the request
    kClosing,   // sending the last answer
    kDraining,  // answer sent, sending side shut, dropping what the client still sends
  };

  IngestConnection(int socketFd, const Poco::Net::SocketAddress& peerAddress)
      : socket(new Poco::Net::StreamSocketImpl(socketFd)), fd(socketFd), peer(peerAddress) {}

  Poco::Net::StreamSocket socket;  // owns fd
  const int fd;
  const Poco::Net::SocketAddress peer;
  Poco::Net::SocketAddress local;
  State state = State::kReading;
  std::string in;           // received and not yet used
  std::size_t scanned = 0;  // where the search for the end of the headers resumes
  // The request being read: its headers parsed once, its body gathered as it arrives.
  std::unique_ptr<BufferedRequest> reading;
  std::string body;                       // so far
  std::optional<ChunkedDecoder> chunked;  // when its body is chunked
  std::size_t bodyLength = 0;             // its Content-Length, when not chunked
  bool cut = false;                       // its body exceeds the limit and is not read
  bool continueSent = false;              // 100 Continue sent for it
  void resetRequest() {
    reading.reset();
    body.clear();
    chunked.reset();
    bodyLength = 0;
    cut = false;
    continueSent = false;
  }
  std::string out;          // answers not yet sent
  std::size_t sent = 0;     // bytes of `out` sent
  bool peerClosed = false;  // the client closed its sending side
  bool broken = false;      // a send or receive failed: nothing more can be sent
  bool closed = false;      // closed during this loop iteration; deleted after it
  std::uint32_t interest = 0;
  std::uint64_t requests = 0;
  Clock::time_point idleDeadline;     // the next request's first byte must arrive by then
  Clock::time_point requestDeadline;  // the whole next request must arrive by then
  Clock::time_point drainDeadline;    // kClosing, kDraining: closed at the latest then
  std::size_t drained = 0;
  // The request being answered.
  std::unique_ptr<BufferedRequest> request;
  std::unique_ptr<BufferedResponse> response;
  std::unique_ptr<Poco::Net::HTTPRequestHandler> handler;
  bool keepAlive = false;  // what the connection may do after this answer
  bool awaiting = false;   // an AsyncRequestHandler has not resumed yet
};

class IngestServer::Loop {
 public:
  Loop(int listenFd, Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
       Poco::Net::HTTPServerParams::Ptr params, const IngestServerSettings& settings)
      : listenFd_(listenFd),
        handlers_(handlers),
        params_(params),
        requestTimeout_(std::chrono::microseconds(settings.requestTimeout.totalMicroseconds())),
        firstTimeout_(std::chrono::microseconds(params->getTimeout().totalMicroseconds())),
        idleTimeout_(std::chrono::microseconds(params->getKeepAliveTimeout().totalMicroseconds())),
        maxBody_(settings.maxBodyBytes),
        trustedProxies_(settings.trustedProxies),
        epoll_(::epoll_create1(EPOLL_CLOEXEC)),
        wakeFd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (epoll_ < 0 || wakeFd_ < 0) {
      int error = errno;
      closeFds();
      throw Poco::SystemException("cannot create the ingest event loop", std::strerror(error));
    }
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.ptr = &wakeTag_;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wakeFd_, &e);
    listen(true);
  }

  ~Loop() {
    connections_.clear();
    closeFds();
  }

  // Called from any thread.
  void requestStop(Clock::time_point graceEnd) {
    graceEnd_.store(graceEnd.time_since_epoch().count());
    stopping_.store(true);
    wake();
  }

  void run() {
    epoll_event events[64];
    Clock::time_point nextSweep = Clock::now() + kSweepEvery;
    bool stopSeen = false;
    for (;;) {
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(nextSweep - Clock::now());
      int n = ::epoll_wait(epoll_, events, 64, static_cast<int>(std::max<long>(0, wait.count())));
      if (n < 0 && errno != EINTR) {
        httpLog().error("the ingest event loop failed: %s", std::string(std::strerror(errno)));
        return;
      }
      for (int i = 0; i < n; ++i) {
        void* tag = events[i].data.ptr;
        if (tag == &listenTag_) {
          acceptAll();
        } else if (tag == &wakeTag_) {
          std::uint64_t count;
          while (::read(wakeFd_, &count, sizeof count) > 0) {
          }
          resumeAll();
        } else {
          auto* c = static_cast<IngestConnection*>(tag);
          if (c->closed) continue;
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) onReadable(*c, events[i].events);
          if (!c->closed && (events[i].events & EPOLLOUT)) {
            flush(*c);
            // Pipelined requests wait while their predecessors' answers are unsent.
            if (!c->closed && c->state == IngestConnection::State::kReading) process(*c);
            settle(*c);
          }
        }
      }
      Clock::time_point now = Clock::now();
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
      if (stopSeen && connections_.empty()) return;
    }
  }

 private:
  void closeFds() {
    if (epoll_ >= 0) ::close(epoll_);
    if (wakeFd_ >= 0) ::close(wakeFd_);
  }

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(wakeFd_, &one, sizeof one);
  }

  // Called by an AsyncRequestHandler, from any thread, once.
  void resume(IngestConnection* c) {
    // One wake-up for however many answers arrive before the loop looks. Written under the
    // lock: once the loop has taken `c`, the server may stop and this loop be destroyed.
    std::lock_guard<std::mutex> lock(mutex_);
    if (resumed_.empty()) wake();
    resumed_.push_back(c);
  }

  void listen(bool on) {
    epoll_event e{};
    e.events = EPOLLIN | EPOLLEXCLUSIVE;  // one loop wakes for a new connection, not all
    e.data.ptr = &listenTag_;
    ::epoll_ctl(epoll_, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, listenFd_, &e);
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
      auto c = std::make_unique<IngestConnection>(
          fd, Poco::Net::SocketAddress(reinterpret_cast<const sockaddr*>(&address), length));
      try {
        c->local = c->socket.address();
      } catch (const Poco::Exception&) {
        continue;  // gone already
      }
      Clock::time_point now = Clock::now();
      c->idleDeadline = now + firstTimeout_;
      c->requestDeadline = now + requestTimeout_;
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.ptr = c.get();
      if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &e) != 0) continue;
      c->interest = EPOLLIN;
      IngestConnection* key = c.get();
      connections_.emplace(key, std::move(c));
    }
  }

  // A connection that wants nothing is taken out of the epoll set altogether: epoll reports a
  // hang-up or an error even to a descriptor registered for no events, again on every wait.
  void setInterest(IngestConnection& c, std::uint32_t interest) {
    if (c.interest == interest) return;
    epoll_event e{};
    e.events = interest;
    e.data.ptr = &c;
    int op = interest == 0 ? EPOLL_CTL_DEL : c.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    ::epoll_ctl(epoll_, op, c.fd, &e);
    c.interest = interest;
  }

  // What the connection wants to hear about now.
  void updateInterest(IngestConnection& c) {
    std::uint32_t interest = 0;
    // Input is read ahead of the request being answered, up to a bound; a closing connection's
    // input is read and dropped.
    if (!c.peerClosed && !c.broken &&
        (c.state == IngestConnection::State::kDraining ||
         c.state == IngestConnection::State::kClosing ||
         c.in.size() < kMaxHeaderBytes + maxBody_)) {
      interest |= EPOLLIN;
    }
    if (c.sent < c.out.size()) interest |= EPOLLOUT;
    setInterest(c, interest);
  }

  void close(IngestConnection& c) {
    if (c.closed) return;
    setInterest(c, 0);
    // A handler that has not resumed still refers to the connection: it is closed once it
    // resumes (resumeAll), until then only marked broken.
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

  void onReadable(IngestConnection& c, std::uint32_t events) {
    // An error stays pending where recv() cannot report it (after the client's FIN).
    if (events & EPOLLERR) c.broken = true;
    char buffer[16384];
    for (;;) {
      ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (got > 0) {
        if (c.state == IngestConnection::State::kDraining ||
            c.state == IngestConnection::State::kClosing) {
          c.drained += static_cast<std::size_t>(got);
          if (c.drained >= kDrainBytes) return close(c);
          continue;
        }
        c.in.append(buffer, static_cast<std::size_t>(got));
        if (static_cast<std::size_t>(got) < sizeof buffer) break;
        if (c.in.size() >= kMaxHeaderBytes + maxBody_ + sizeof buffer) break;
        continue;
      }
      if (got == 0) {
        c.peerClosed = true;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      } else if (errno == EINTR) {
        continue;
      } else {
        c.broken = true;
      }
      break;
    }
    if (c.broken) return close(c);
    if (c.state == IngestConnection::State::kDraining && c.peerClosed) return close(c);
    if (c.state == IngestConnection::State::kReading) process(c);
    settle(c);
  }

  // After the connection's requests were started: a client that closed its sending side is
  // closed once nothing is left to answer.
  void settle(IngestConnection& c) {
    if (c.closed) return;
    if (c.peerClosed && c.state == IngestConnection::State::kReading) {
      // No request is left (process() answered or refused whatever had arrived).
      if (c.sent == c.out.size()) return close(c);
      c.state = IngestConnection::State::kClosing;
      c.drainDeadline = Clock::now() + requestTimeout_;
    }
    updateInterest(c);
  }

  // Starts every complete request buffered on `c`, in order, until one is handled
  // asynchronously or the connection is to close.
  void process(IngestConnection& c) {
    while (c.state == IngestConnection::State::kReading && !c.closed && !c.in.empty() &&
           c.out.size() - c.sent < kMaxUnsent) {
      if (!startRequest(c)) return;  // incomplete
    }
  }

  // Reads the request at the front of c.in as far as it has arrived (its headers are parsed
  // once, its body gathered across calls) and starts it once whole; false while incomplete.
  bool startRequest(IngestConnection& c) {
    if (!c.reading && !readHeaders(c)) return false;
    if (!c.reading) return true;  // refused
    if (c.cut) {
      c.in.clear();  // Content-Length over the limit: the body is not read
    } else if (c.chunked) {
      std::size_t used = 0;
      ChunkedDecoder::Result result = c.chunked->decode(c.in, used, c.body);
      c.in.erase(0, used);
      switch (result) {
        case ChunkedDecoder::Result::kIncomplete:
          if (c.peerClosed) {
            refuse(c, {400, "malformed_body", "the chunked body ended early"}, "truncated body");
            return true;
          }
          sendContinue(c);
          return false;
        case ChunkedDecoder::Result::kTooLarge:
          c.cut = true;
          c.in.clear();
          break;
        case ChunkedDecoder::Result::kMalformed:
          refuse(c, {400, "malformed_body", "the chunked body is malformed"}, "bad chunk");
          return true;
        case ChunkedDecoder::Result::kDone:
          break;
      }
    } else if (c.in.size() >= c.bodyLength) {
      c.body.assign(c.in, 0, c.bodyLength);
      c.in.erase(0, c.bodyLength);
    } else if (c.peerClosed) {
      // The client stopped sending: the handler sees the short body and refuses it.
      c.body = std::move(c.in);
      c.in.clear();
    } else {
      sendContinue(c);
      return false;
    }
    std::unique_ptr<BufferedRequest> request = std::move(c.reading);
    request->setBody(std::move(c.body));
    const bool cut = c.cut;
    c.resetRequest();
    dispatch(c, std::move(request), cut);
    return true;
  }

  // Parses the header block at the front of c.in into c.reading and drops it from c.in; false
  // while it is incomplete. Refuses a malformed one (c.reading stays empty).
  bool readHeaders(IngestConnection& c) {
    // Empty lines before a request are skipped, as POCO's HTTPRequest::read does.
    std::size_t first = c.in.find_first_not_of("\r\n");
    if (first == std::string::npos) {
      c.in.clear();
      c.scanned = 0;
      return false;
    }
    if (first > 0) {
      c.in.erase(0, first);
      c.scanned = 0;
    }
    std::size_t bodyStart = headerEnd(c.in, c.scanned);
    if (bodyStart == std::string::npos) {
      if (c.peerClosed) {
        refuse(c, malformedRequest(), "the input ended inside the request headers");
        return true;
      }
      if (c.in.size() <= kMaxHeaderBytes) {
        c.scanned = c.in.size() < 2 ? 0 : c.in.size() - 2;
        return false;
      }
    }
    if (bodyStart == std::string::npos || bodyStart > kMaxHeaderBytes) {
      refuse(c, malformedRequest(),
             "the request headers exceed " + std::to_string(kMaxHeaderBytes) + " bytes");
      return true;
    }
    auto request = std::make_unique<BufferedRequest>(c.peer, c.local, *params_);
    try {
      Poco::MemoryInputStream head(c.in.data(), bodyStart);
      request->read(head);
    } catch (const Poco::Exception& e) {
      // HTTPRequest::read and MessageHeader::read: a method, URI or version missing or too long
      // (32, 16384, 8 bytes), a header name or value too long (256, 8192 bytes) or without a
      // colon, more than 100 header fields. 431 or 414 would name some of these better, but
      // POCO throws the same exception for all of them, so all get 400.
      refuse(c, malformedRequest(), e.message());
      return true;
    }
    const std::string& version = request->getVersion();
    if (version != Poco::Net::HTTPMessage::HTTP_1_1 &&
        version != Poco::Net::HTTPMessage::HTTP_1_0) {
      refuse(c, {400, "malformed_request", "the request line does not end in HTTP/1.1 or HTTP/1.0"},
             "not an HTTP/1.x request line");
      return true;
    }
    if (request->getChunkedTransferEncoding()) {
      c.chunked.emplace(maxBody_);
    } else if (request->hasContentLength()) {
      Poco::Int64 length = 0;
      try {
        length = request->getContentLength64();
      } catch (const Poco::Exception&) {
        refuse(c, badLength(), "Content-Length is not a number");
        return true;
      }
      if (length < 0) {
        refuse(c, badLength(), "Content-Length is negative");
        return true;
      }
      // Over the limit, the handler sees the declared length and refuses it.
      c.cut = static_cast<Poco::UInt64>(length) > maxBody_;
      c.bodyLength = c.cut ? 0 : static_cast<std::size_t>(length);
    }
    // A request without Content-Length or chunked encoding has no body (RFC 9112 §6.3).
    c.in.erase(0, bodyStart);
    c.scanned = 0;
    c.reading = std::move(request);
    return true;
  }

  void sendContinue(IngestConnection& c) {
    if (!c.reading->getExpectContinue() || c.continueSent) return;
    c.continueSent = true;
    c.out += "HTTP/1.1 100 Continue\r\n\r\n";
    flush(c);
  }

  void dispatch(IngestConnection& c, std::unique_ptr<BufferedRequest> request, bool cut) {
    ++c.requests;
    const int maxRequests = params_->getMaxKeepAliveRequests();  // 0: unlimited
    c.keepAlive = !cut && !stopping_.load() && params_->getKeepAlive() &&
                  (maxRequests <= 0 || c.requests < static_cast<std::uint64_t>(maxRequests)) &&
                  request->getKeepAlive();
    auto response = std::make_unique<BufferedResponse>(request->getMethod() ==
                                                       Poco::Net::HTTPRequest::HTTP_HEAD);
    response->client = resolveClient(c.peer, request.get(), trustedProxies_);
    request->setResponse(response.get());
    stampResponse(*response, *params_, request->getVersion(), c.keepAlive);
    c.request = std::move(request);
    c.response = std::move(response);
    try {
      c.handler.reset(handlers_->createRequestHandler(*c.request));
      if (!c.handler) {
        return refuse(c, {501, "not_implemented", "no handler serves this request"},
                      c.request->getMethod());
      }
      if (auto* async = dynamic_cast<AsyncRequestHandler*>(c.handler.get())) {
        c.state = IngestConnection::State::kHandling;
        c.awaiting = true;
        IngestConnection* target = &c;
        if (async->begin(*c.request, *c.response, [this, target] { resume(target); })) return;
        c.awaiting = false;
      } else {
        c.handler->handleRequest(*c.request, *c.response);
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

  void resumeAll() {
    std::vector<IngestConnection*> ready;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready.swap(resumed_);
    }
    for (IngestConnection* c : ready) {
      c->awaiting = false;
      if (c->broken) {
        c->handler.reset();
        close(*c);
        continue;
      }
      try {
        static_cast<AsyncRequestHandler&>(*c->handler).finish(*c->response);
      } catch (const Poco::Exception& e) {
        handlerFailed(*c, e.name());
        continue;
      } catch (const std::exception&) {
        handlerFailed(*c, "a C++ exception");
        continue;
      }
      complete(*c);
      if (!c->closed && c->state == IngestConnection::State::kReading) process(*c);
      settle(*c);
    }
  }

  // A handler threw: 500 if it had not answered yet (the exception's text is not logged: it may
  // quote the request), and the connection is closed in either case.
  void handlerFailed(IngestConnection& c, const std::string& what) {
    if (c.response && !c.response->sent()) {
      return refuse(c, {500, "internal_error", "the server failed while answering this request"},
                    "handler threw " + what);
    }
    httpLog().error("a handler threw %s after answering; connection closed", what);
    c.handler.reset();
    close(c);
  }

  // The handler has answered into c.response: queue the answer and go on.
  void complete(IngestConnection& c) {
    // Decided again now: the server may have begun stopping, or the client closed its side
    // while the handler worked (its requests already received are still answered).
    const bool moreToAnswer = c.in.find_first_not_of("\r\n") != std::string::npos;
    const bool keepAlive = c.keepAlive && c.response->getKeepAlive() && !stopping_.load() &&
                           !(c.peerClosed && !moreToAnswer);
    c.response->setKeepAlive(keepAlive);
    logAnswer(*c.request, *c.response);
    c.response->appendTo(c.out);
    c.handler.reset();
    c.response.reset();
    c.request.reset();
    if (keepAlive) {
      Clock::time_point now = Clock::now();
      c.state = IngestConnection::State::kReading;
      c.idleDeadline = now + idleTimeout_;
      c.requestDeadline = now + requestTimeout_;
    } else {
      c.state = IngestConnection::State::kClosing;
      c.drainDeadline = Clock::now() + requestTimeout_;
      c.in.clear();
    }
    flush(c);
  }

  // Answers `error` on a new HTTP/1.1 response that closes the connection (the request may be
  // half read or unreadable), and logs it with `context`.
  void refuse(IngestConnection& c, const ApiError& error, const std::string& context) {
    BufferedResponse response(false);
    // The headers may be unreadable, or half read: the peer is the client.
    response.client = c.request ? c.response->client : c.peer.host().toString();
    sendRefusal(response, *params_, error, httpLog(), context);
    if (c.request) {
      logAnswer(*c.request, response);
    } else {
      AccessRecord record;
      record.listener = "ingest";
      record.client = response.client;
      record.status = static_cast<int>(response.getStatus());
      record.bytes = response.bodyBytes();
      logAccess(record);
    }
    response.appendTo(c.out);
    c.handler.reset();
    c.response.reset();
    c.request.reset();
    c.resetRequest();
    c.in.clear();
    c.state = IngestConnection::State::kClosing;
    c.drainDeadline = Clock::now() + requestTimeout_;
    flush(c);
  }

  // The access-log line of an answer about to be queued (SPEC §10).
  static void logAnswer(const BufferedRequest& request, BufferedResponse& response) {
    if (!accessLogOn()) return;
    AccessRecord record;
    record.listener = "ingest";
    record.client = response.client;
    record.method = request.getMethod();
    record.path = request.getURI().substr(0, request.getURI().find('?'));
    record.status = static_cast<int>(response.getStatus());
    record.bytes = response.bodyBytes();
    record.durationMs =
        std::chrono::duration<double, std::milli>(Clock::now() - request.started).count();
    record.memberId = response.memberId;
    record.event = response.event;
    record.storedId = response.storedId;
    logAccess(record);
  }

  // Sends what it can of c.out; once a closing connection's answer is out, shuts the sending
  // side and starts draining.
  void flush(IngestConnection& c) {
    while (c.sent < c.out.size() && !c.broken) {
      ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        c.broken = true;
      }
    }
    if (c.broken) return close(c);
    if (c.sent == c.out.size()) {
      c.out.clear();
      c.sent = 0;
      if (c.state == IngestConnection::State::kClosing) {
        ::shutdown(c.fd, SHUT_WR);
        if (c.peerClosed) return close(c);
        c.state = IngestConnection::State::kDraining;
        c.drainDeadline = Clock::now() + kDrainTime;
      }
    }
    updateInterest(c);
  }

  void beginStop() {
    if (listening_) listen(false);
    listenPaused_ = false;
    for (auto& entry : connections_) {
      IngestConnection& c = *entry.second;
      // Idle connections close now; requests under way are answered (Connection: close).
      if (c.state == IngestConnection::State::kReading && c.in.empty() && c.sent == c.out.size()) {
        close(c);
      }
    }
  }

  void sweep(Clock::time_point now, bool stopping) {
    if (listenPaused_ && !stopping) {
      listenPaused_ = false;
      listen(true);
    }
    const bool graceOver = stopping && now.time_since_epoch().count() >= graceEnd_.load();
    for (auto& entry : connections_) {
      IngestConnection& c = *entry.second;
      if (c.closed) continue;
      switch (c.state) {
        case IngestConnection::State::kReading:
          // Unanswered: the client was too slow, or is idle.
          if ((c.in.empty() && c.sent == c.out.size() && (now >= c.idleDeadline || stopping)) ||
              now >= c.requestDeadline || graceOver) {
            close(c);
          }
          break;
        case IngestConnection::State::kHandling:
          break;  // its handler resumes it; a connection is never deleted before that
        case IngestConnection::State::kClosing:
        case IngestConnection::State::kDraining:
          if (now >= c.drainDeadline || graceOver) close(c);
          break;
      }
    }
  }

  const int listenFd_;
  Poco::Net::HTTPRequestHandlerFactory::Ptr handlers_;
  Poco::Net::HTTPServerParams::Ptr params_;
  const Clock::duration requestTimeout_;  // a whole request, from connect or previous answer
  const Clock::duration firstTimeout_;    // a new connection's first byte
  const Clock::duration idleTimeout_;     // the next request's first byte after an answer
  const std::size_t maxBody_;
  const std::vector<Poco::Net::IPAddress> trustedProxies_;
  int epoll_;
  int wakeFd_;
  char listenTag_ = 0;  // epoll data of the listening socket
  char wakeTag_ = 0;    // epoll data of wakeFd_
  bool listening_ = false;
  bool listenPaused_ = false;  // after running out of descriptors, until the next sweep
  Clock::time_point lastAcceptWarning_;
  // Keyed by address, not descriptor: a closed connection's descriptor can be reused by a new
  // one before the closed one is deleted at the end of the loop iteration.
  std::unordered_map<IngestConnection*, std::unique_ptr<IngestConnection>> connections_;
  std::atomic<bool> stopping_{false};
  std::atomic<Clock::rep> graceEnd_{0};
  std::mutex mutex_;
  std::vector<IngestConnection*> resumed_;  // guarded by mutex_
};

IngestServer::IngestServer(const Poco::Net::ServerSocket& socket,
                           Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
                           Poco::Net::HTTPServerParams::Ptr params,
                           const IngestServerSettings& settings)
    : socket_(socket) {
  socket_.setBlocking(false);
  for (int i = 0; i < std::max(1, settings.threads); ++i) {
    loops_.push_back(std::make_unique<Loop>(socket_.impl()->sockfd(), handlers, params, settings));
  }
}

IngestServer::~IngestServer() { stop(Poco::Timespan(0)); }

void IngestServer::start() {
  for (auto& loop : loops_) {
    Loop* l = loop.get();
    threads_.emplace_back([l] {
#if defined(__linux__)
      ::pthread_setname_np(::pthread_self(), "b24es-ingest");
#endif
      l->run();
    });
  }
}

void IngestServer::stop(Poco::Timespan grace) {
  auto graceEnd = Clock::now() + std::chrono::microseconds(grace.totalMicroseconds());
  for (auto& loop : loops_) loop->requestStop(graceEnd);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace b24es
