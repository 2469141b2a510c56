// One HTTP/1.1 server connection as a protocol state machine with no socket inside, the way
// Envoy's HTTP/1 codec works (source/common/http/http1/codec_impl.cc): bytes go in with
// receive(), complete requests come out of startRequest(), answers go in with finishRequest(),
// and what to send comes out of unsent(). The reactor side (http_server.cpp) moves the bytes;
// tests/http1_connection_test.cpp drives it byte by byte.
//
// Framing is strict (SPEC §4 v2, RFC 9112 §2.2, §5, §6.1-6.3, §7.1), so that no byte of one
// request is ever taken as the start of another whatever proxy sits in front: every message a
// server could read two ways is refused with 400, the JSON error body and the connection closed
// (after the answer is sent, input is drained and dropped, see http_server.cpp). The request
// line and headers are parsed here by hand: Poco::Net::HTTPRequest::read accepts a header line
// without a colon, whitespace before the colon, control characters and folded lines, and
// HTTPMessage::getContentLength64 takes "+236" and the first of two Content-Length headers.
// Parsed requests are handed up as Poco::Net::HTTPServerRequest (and answered through
// Poco::Net::HTTPServerResponse), so POCO's handler interfaces and header accessors serve as
// they are.
//
// Not thread-safe: one thread (the connection's loop) at a time.
#pragma once

#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/SocketAddress.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "access_log.h"
#include "api_error.h"
#include "http_framing.h"

namespace Poco {
class Logger;
class MemoryInputStream;
}  // namespace Poco

namespace b24es {

struct Http1Limits {
  // The request line and header fields together (the empty line included).
  std::size_t maxHeaderBytes = 64 * 1024;
  // Bodies are buffered up to this; a longer one is not read: the request is handed up with its
  // body cut (Content-Length as declared, or limit + 1 bytes of a chunked body) for the handler
  // to refuse, and the connection closes after the answer.
  std::size_t maxBodyBytes = 1048576;
  // For the access log and rejections' log lines (access_log.h): the listener's name and the
  // peers whose X-Forwarded-For / X-Real-IP name the client.
  std::string listener = "http";
  std::vector<Poco::Net::IPAddress> trustedProxies;
  // Told of every 4xx answer, refusals of unframeable input included; none when empty.
  RejectionObserver onRejection;
};

// The answer to one request, collected in memory and serialized whole. Its RequestNotes carry the
// client address (set by the connection) and what the handler adds for the access log.
class Http1Response final : public Poco::Net::HTTPServerResponse, public RequestNotes {
 public:
  explicit Http1Response(bool head) : head_(head) {}

  void sendContinue() override {}  // the connection sends 100 Continue itself, when it must
  std::ostream& send() override;
  void sendFile(const std::string& path, const std::string& mediaType) override;
  void sendBuffer(const void* buffer, std::size_t length) override;
  void redirect(const std::string& uri, HTTPStatus status) override;
  void requireAuthentication(const std::string& realm) override;
  bool sent() const override { return sent_; }

  // Appends the status line, the headers and the body to `out`. The whole body is known, so a
  // body the handler meant to send chunked, or without a length, is sent with its length.
  void appendTo(std::string& out);
  // The status line and headers only, for a streamed answer: no Content-Length is added.
  void appendHeadTo(std::string& out);
  // The body's length as it is sent (0 for HEAD).
  std::int64_t bodyBytes() const;

 private:
  const bool head_;  // a HEAD request: headers only
  bool sent_ = false;
  std::ostringstream body_;
  std::ostream discard_{nullptr};
};

// A request whose headers and body are in memory.
class Http1Request final : public Poco::Net::HTTPServerRequest {
 public:
  Http1Request(const Poco::Net::SocketAddress& client, const Poco::Net::SocketAddress& server,
               const Poco::Net::HTTPServerParams& params);
  ~Http1Request() override;

  void setBody(std::string body);
  void setResponse(Poco::Net::HTTPServerResponse* response) { response_ = response; }
  const std::string& body() const { return body_; }
  // The body was over the limit and not read (see Http1Limits::maxBodyBytes).
  bool bodyCut() const { return bodyCut_; }
  void setBodyCut() { bodyCut_ = true; }

  std::istream& stream() override;
  const Poco::Net::SocketAddress& clientAddress() const override { return client_; }
  const Poco::Net::SocketAddress& serverAddress() const override { return server_; }
  const Poco::Net::HTTPServerParams& serverParams() const override { return params_; }
  Poco::Net::HTTPServerResponse& response() const override { return *response_; }
  bool secure() const override { return false; }

 private:
  const Poco::Net::SocketAddress client_;
  const Poco::Net::SocketAddress server_;
  const Poco::Net::HTTPServerParams& params_;
  std::string body_;
  bool bodyCut_ = false;
  std::unique_ptr<Poco::MemoryInputStream> stream_;
  Poco::Net::HTTPServerResponse* response_ = nullptr;
};

class Http1Connection {
 public:
  // `params` (keep-alive allowed, most requests per connection, the Server header) must outlive
  // the connection; refusals are logged to `log`.
  Http1Connection(const Poco::Net::SocketAddress& peer, const Poco::Net::SocketAddress& local,
                  const Poco::Net::HTTPServerParams& params, const Http1Limits& limits,
                  Poco::Logger& log);
  ~Http1Connection();
  Http1Connection(const Http1Connection&) = delete;
  Http1Connection& operator=(const Http1Connection&) = delete;

  // Input. Bytes that arrive while the connection is closing are counted and dropped.
  void receive(const char* data, std::size_t size);
  // The client closed its sending side: requests already received are still answered, a
  // request cut short is refused (400).
  void receiveEnd();
  bool peerClosed() const { return peerClosed_; }
  // Whether more input is welcome: false once a request and a whole body limit are buffered
  // ahead of the answers (pipelining is bounded), or the client has closed its side.
  bool wantsInput() const;
  std::size_t dropped() const { return dropped_; }  // bytes received while closing

  // Requests. When no request is being answered and the next one has fully arrived, makes it
  // the current one, with request() and response() (stamped: version, Date, Server, keep-alive)
  // and returns true. Otherwise false: incomplete (a 100 Continue may have been queued), or
  // refused (400 queued, closing() is now true). `stopping`: the answer will close the
  // connection.
  bool startRequest(bool stopping);
  bool handling() const { return request_ != nullptr; }
  Http1Request& request() { return *request_; }
  Http1Response& response() { return *response_; }
  // Queues the current request's answer (response(), which the handler has sent). Keeps the
  // connection open when the request, the response, the params and `stopping` all allow it
  // and, after a half-close, while requests received are left to answer.
  void finishRequest(bool stopping);
  // Queues the head of the current request's answer (response(), not sent: status and headers
  // only) as the start of a streamed body, which appendStream() continues and endStream()
  // ends. The connection then reads no more requests: input is counted and dropped, and the
  // answer closes the connection. Its access-log line is written now, with no body bytes.
  void startStream();
  bool streaming() const { return streaming_; }
  void appendStream(std::string bytes) {
    if (out_.empty()) {
      out_ = std::move(bytes);  // the usual case: the client keeps up; no copy
    } else {
      out_ += bytes;
    }
  }
  // The streamed body is complete: the connection closes once it is sent.
  void endStream();
  // Drops the current request, if any, and queues `error` on a new HTTP/1.1 response that
  // closes the connection (a handler failed, no handler, ...), logged with `context`.
  void refuse(const ApiError& error, const std::string& context);

  // Nothing queued to send, no request being answered and no byte of a next one received: the
  // connection may be closed for idleness.
  bool idle() const;
  // Bytes of a next request are buffered (it may be complete, waiting for earlier answers to
  // be sent).
  bool inputPending() const;
  // The last answer is queued: once it is sent, the connection is to close.
  bool closing() const { return closing_; }
  std::uint64_t requests() const { return requests_; }

  // Output: bytes queued and not yet sent. Written by the transport, which calls sent() with
  // how many it got out. Answers are serialized whole into this one queue; a streamed answer
  // (startStream) appends its head and then its pieces, and unsent() is how far its reader is
  // behind (the server bounds pipelining and cuts slow streams by it).
  std::size_t unsent() const { return out_.size() - sentBytes_; }
  const char* unsentData() const { return out_.data() + sentBytes_; }
  void sent(std::size_t count);

 private:
  enum class Framing { kNone, kLength, kChunked };

  bool readHead();
  void refuseMalformed(const std::string& message);
  void sendContinue();
  void resetReading();
  // The access-log line of `response` to `request` (null: its head was unreadable), and the
  // rejection observer's call for a 4xx answer.
  void logAnswer(const Http1Request* request, const Http1Response& response) const;

  const Poco::Net::SocketAddress peer_;
  const Poco::Net::SocketAddress local_;
  const Poco::Net::HTTPServerParams& params_;
  const Http1Limits limits_;
  Poco::Logger& log_;

  std::string in_;           // received and not yet used
  std::size_t scanned_ = 0;  // where the search for the end of the header block resumes
  bool peerClosed_ = false;
  bool closing_ = false;
  bool streaming_ = false;  // a streamed answer is under way (startStream, until endStream)
  std::size_t dropped_ = 0;
  std::uint64_t requests_ = 0;

  // The request being read: its head parsed once, its body gathered as it arrives.
  std::unique_ptr<Http1Request> reading_;
  Framing framing_ = Framing::kNone;
  std::size_t length_ = 0;  // Content-Length, for kLength
  std::optional<ChunkedDecoder> chunked_;
  std::string body_;
  bool continueSent_ = false;

  // The request being answered.
  std::unique_ptr<Http1Request> request_;
  std::unique_ptr<Http1Response> response_;
  std::chrono::steady_clock::time_point started_;  // when request_'s head was complete
  bool keepAlive_ = false;                         // what the connection may do after this answer

  std::string out_;
  std::size_t sentBytes_ = 0;
};

}  // namespace b24es
