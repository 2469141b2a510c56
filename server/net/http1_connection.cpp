#include "http1_connection.h"

#include <Poco/Exception.h>
#include <Poco/FileStream.h>
#include <Poco/MemoryStream.h>
#include <Poco/StreamCopier.h>
#include <Poco/String.h>

#include <string_view>

namespace b24es {
namespace {

// The limits POCO's HTTPRequest::read had, which the refusal messages have named since issue 6.
constexpr std::size_t kMaxMethod = 32;
constexpr std::size_t kMaxTarget = 16384;
constexpr std::size_t kMaxName = 256;
constexpr std::size_t kMaxValue = 8192;
constexpr std::size_t kMaxFields = 100;
// Content-Length digits: more would overflow a 64-bit size, and no body here comes near.
constexpr std::size_t kMaxLengthDigits = 18;

// RFC 9110 §5.6.2: token characters.
bool isTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != 0 &&
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// RFC 9110 §5.5: field-vchar, SP and HTAB; obs-text (0x80-0xFF) is allowed as RFC 9112 keeps it.
// Every other control character (NUL, a CR alone, DEL, ...) is refused.
bool isValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7F); }

bool isTargetChar(unsigned char c) { return c > 0x20 && c != 0x7F; }

std::string_view trimWhitespace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses the header block text[0, end) (which ends in its empty line) into `request`. Returns
// what is wrong with it, never quoting it (it may hold a token), or "" when it is well formed.
std::string parseHead(std::string_view text, Poco::Net::HTTPRequest& request) {
  std::size_t pos = 0;
  auto nextLine = [&text, &pos]() {
    std::size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };

  std::string_view line = nextLine();
  std::size_t first = line.find(' ');
  std::size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos) {
    return "the request line is not a method, a target and a version separated by single spaces";
  }
  std::string_view method = line.substr(0, first);
  std::string_view target = line.substr(first + 1, second - first - 1);
  std::string_view version = line.substr(second + 1);
  if (method.empty() || method.size() > kMaxMethod) {
    return "the method is empty or longer than " + std::to_string(kMaxMethod) + " bytes";
  }
  for (char c : method) {
    if (!isTokenChar(static_cast<unsigned char>(c))) return "the method is not a token";
  }
  if (target.empty() || target.size() > kMaxTarget) {
    return "the request target is empty or longer than " + std::to_string(kMaxTarget) + " bytes";
  }
  for (char c : target) {
    if (!isTargetChar(static_cast<unsigned char>(c))) {
      return "the request target holds a control character";
    }
  }
  if (version != Poco::Net::HTTPMessage::HTTP_1_1 && version != Poco::Net::HTTPMessage::HTTP_1_0) {
    return "the request line does not end in HTTP/1.1 or HTTP/1.0";
  }
  request.setMethod(std::string(method));
  request.setURI(std::string(target));
  request.setVersion(std::string(version));

  for (std::size_t fields = 0;; ++fields) {
    line = nextLine();
    if (line.empty()) return {};
    if (fields == kMaxFields) return "more than " + std::to_string(kMaxFields) + " header fields";
    if (line.front() == ' ' || line.front() == '\t') {
      return "a header line begins with whitespace (a folded line, RFC 9112 §5.2)";
    }
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return "a header line has no colon";
    std::string_view name = line.substr(0, colon);
    if (name.empty()) return "a header line has no name";
    if (name.size() > kMaxName) {
      return "a header name is longer than " + std::to_string(kMaxName) + " bytes";
    }
    for (char c : name) {
      if (c == ' ' || c == '\t') return "whitespace between a header name and its colon";
      if (!isTokenChar(static_cast<unsigned char>(c))) {
        return "a header name holds a character other than a token's";
      }
    }
    std::string_view value = trimWhitespace(line.substr(colon + 1));
    if (value.size() > kMaxValue) {
      return "a header value is longer than " + std::to_string(kMaxValue) + " bytes";
    }
    for (char c : value) {
      if (!isValueChar(static_cast<unsigned char>(c))) {
        return "a header value holds a control character";
      }
    }
    request.add(std::string(name), std::string(value));
  }
}

// The values of every field named `name`, in any letter case.
std::vector<std::string> fieldValues(const Poco::Net::HTTPRequest& request,
                                     const std::string& name) {
  std::vector<std::string> values;
  for (const auto& field : request) {
    if (Poco::icompare(field.first, name) == 0) values.push_back(field.second);
  }
  return values;
}

// Content-Length as RFC 9112 §6.3 and SPEC §4 want it: one field of plain digits. "+236" and
// "0236" are both refused: the first is not 1*DIGIT; the second is, but POCO read it as octal
// in places and other parsers differ on it, so a leading zero is refused unless the value is
// "0" (a sender has no reason to write one, and a message read two ways is the risk).
std::optional<std::uint64_t> plainLength(const std::string& value) {
  if (value.empty() || value.size() > kMaxLengthDigits) return std::nullopt;
  if (value[0] == '0' && value.size() > 1) return std::nullopt;
  std::uint64_t length = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    length = length * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return length;
}

}  // namespace

std::ostream& Http1Response::send() {
  if (sent_) throw Poco::IllegalStateException("the response was sent already");
  sent_ = true;
  return head_ ? discard_ : body_;
}

void Http1Response::sendFile(const std::string& path, const std::string& mediaType) {
  Poco::FileInputStream in(path);
  setContentType(mediaType);
  Poco::StreamCopier::copyStream(in, send());
}

void Http1Response::sendBuffer(const void* buffer, std::size_t length) {
  send().write(static_cast<const char*>(buffer), static_cast<std::streamsize>(length));
}

void Http1Response::redirect(const std::string& uri, HTTPStatus status) {
  setStatusAndReason(status);
  set("Location", uri);
  send();
}

void Http1Response::requireAuthentication(const std::string& realm) {
  setStatusAndReason(HTTP_UNAUTHORIZED);
  set("WWW-Authenticate", "Basic realm=\"" + realm + "\"");
  send();
}

std::int64_t Http1Response::bodyBytes() const {
  return head_ ? 0 : static_cast<std::int64_t>(body_.str().size());
}

void Http1Response::appendTo(std::string& out) {
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

void Http1Response::appendHeadTo(std::string& out) {
  sent_ = true;
  std::ostringstream head;
  write(head);
  out += head.str();
}

Http1Request::Http1Request(const Poco::Net::SocketAddress& client,
                           const Poco::Net::SocketAddress& server,
                           const Poco::Net::HTTPServerParams& params)
    : client_(client), server_(server), params_(params) {}

Http1Request::~Http1Request() = default;

void Http1Request::setBody(std::string body) {
  body_ = std::move(body);
  stream_ = std::make_unique<Poco::MemoryInputStream>(body_.data(), body_.size());
}

std::istream& Http1Request::stream() {
  if (!stream_) setBody({});
  return *stream_;
}

Http1Connection::Http1Connection(const Poco::Net::SocketAddress& peer,
                                 const Poco::Net::SocketAddress& local,
                                 const Poco::Net::HTTPServerParams& params,
                                 const Http1Limits& limits, Poco::Logger& log)
    : peer_(peer), local_(local), params_(params), limits_(limits), log_(log) {}

Http1Connection::~Http1Connection() = default;

void Http1Connection::receive(const char* data, std::size_t size) {
  if (closing_ || streaming_) {
    dropped_ += size;
    return;
  }
  in_.append(data, size);
}

void Http1Connection::receiveEnd() { peerClosed_ = true; }

bool Http1Connection::wantsInput() const {
  return !peerClosed_ &&
         (closing_ || streaming_ || in_.size() < limits_.maxHeaderBytes + limits_.maxBodyBytes);
}

bool Http1Connection::idle() const {
  return !closing_ && !streaming_ && !request_ && !reading_ && in_.empty() && unsent() == 0;
}

bool Http1Connection::inputPending() const {
  return reading_ != nullptr || in_.find_first_not_of("\r\n") != std::string::npos;
}

void Http1Connection::sent(std::size_t count) {
  sentBytes_ += count;
  if (sentBytes_ >= out_.size()) {
    out_.clear();
    sentBytes_ = 0;
  }
}

void Http1Connection::resetReading() {
  reading_.reset();
  framing_ = Framing::kNone;
  length_ = 0;
  chunked_.reset();
  body_.clear();
  continueSent_ = false;
  scanned_ = 0;
}

void Http1Connection::refuse(const ApiError& error, const std::string& context) {
  Http1Response response(false);
  // The head may be unreadable or half read: the peer is the client.
  response.client = peer_.host().toString();
  sendRefusal(response, params_, error, log_, context);
  logAnswer(nullptr, response);
  response.appendTo(out_);
  request_.reset();
  response_.reset();
  resetReading();
  in_.clear();
  closing_ = true;
}

void Http1Connection::logAnswer(const Http1Request* request, const Http1Response& response) const {
  const int status = static_cast<int>(response.getStatus());
  if (status >= 400 && status < 500 && limits_.onRejection) limits_.onRejection(status, response);
  if (!accessLogOn()) return;
  AccessRecord record;
  record.listener = limits_.listener;
  record.client = response.client;
  if (request) {
    record.method = request->getMethod();
    record.path = request->getURI().substr(0, request->getURI().find('?'));
    record.durationMs =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
            .count();
  }
  record.status = status;
  record.bytes = response.bodyBytes();
  record.memberId = response.memberId;
  record.event = response.event;
  record.storedId = response.storedId;
  logAccess(record);
}

void Http1Connection::refuseMalformed(const std::string& message) {
  refuse({400, "malformed_request", message}, "framing");
}

bool Http1Connection::readHead() {
  // Empty lines before a request line are skipped (RFC 9112 §2.2).
  std::size_t first = in_.find_first_not_of("\r\n");
  if (first == std::string::npos) {
    in_.clear();
    scanned_ = 0;
    return false;
  }
  if (first > 0) {
    in_.erase(0, first);
    scanned_ = 0;
  }
  std::size_t bodyStart = headerEnd(in_, scanned_);
  if (bodyStart == std::string::npos) {
    if (in_.size() > limits_.maxHeaderBytes) {
      refuseMalformed("the request headers exceed " + std::to_string(limits_.maxHeaderBytes) +
                      " bytes");
    } else if (peerClosed_) {
      refuseMalformed("the input ended inside the request headers");
    } else {
      scanned_ = in_.size() < 2 ? 0 : in_.size() - 2;
    }
    return false;
  }
  if (bodyStart > limits_.maxHeaderBytes) {
    refuseMalformed("the request headers exceed " + std::to_string(limits_.maxHeaderBytes) +
                    " bytes");
    return false;
  }
  auto request = std::make_unique<Http1Request>(peer_, local_, params_);
  std::string wrong = parseHead(std::string_view(in_.data(), bodyStart), *request);
  if (!wrong.empty()) {
    refuseMalformed(wrong);
    return false;
  }
  // RFC 9112 §6.1-6.3: how long the body is, read only one way.
  const std::vector<std::string> encodings = fieldValues(*request, "Transfer-Encoding");
  const std::vector<std::string> lengths = fieldValues(*request, "Content-Length");
  if (!encodings.empty()) {
    if (request->getVersion() == Poco::Net::HTTPMessage::HTTP_1_0) {
      refuseMalformed("Transfer-Encoding on an HTTP/1.0 request");
      return false;
    }
    if (!lengths.empty()) {
      refuseMalformed("both Transfer-Encoding and Content-Length");
      return false;
    }
    // Only chunked, alone: a request with another coding could not be framed (§6.3 item 4),
    // and a list ("gzip, chunked") would mean decoding what the handlers read as it came.
    if (encodings.size() != 1 || Poco::icompare(encodings[0], "chunked") != 0) {
      refuseMalformed("a Transfer-Encoding other than chunked alone");
      return false;
    }
    framing_ = Framing::kChunked;
    chunked_.emplace(limits_.maxBodyBytes);
  } else if (!lengths.empty()) {
    // SPEC §4 refuses two Content-Length fields even when they are equal (RFC 9112 §6.3 would
    // let a server accept identical ones): one rule, with nothing to compare.
    if (lengths.size() > 1) {
      refuseMalformed("more than one Content-Length");
      return false;
    }
    std::optional<std::uint64_t> length = plainLength(lengths[0]);
    if (!length) {
      refuseMalformed("the Content-Length header is not a number of bytes");
      return false;
    }
    framing_ = Framing::kLength;
    if (*length > limits_.maxBodyBytes) {
      request->setBodyCut();
    } else {
      length_ = static_cast<std::size_t>(*length);
    }
  }
  // Neither: no body (RFC 9112 §6.3 item 7).
  in_.erase(0, bodyStart);
  scanned_ = 0;
  reading_ = std::move(request);
  return true;
}

void Http1Connection::sendContinue() {
  // RFC 9110 §10.1.1: not to an HTTP/1.0 client, and only while the body is still to come.
  if (continueSent_ || !reading_->getExpectContinue() ||
      reading_->getVersion() != Poco::Net::HTTPMessage::HTTP_1_1) {
    return;
  }
  continueSent_ = true;
  out_ += "HTTP/1.1 100 Continue\r\n\r\n";
}

bool Http1Connection::startRequest(bool stopping) {
  if (closing_ || streaming_ || request_) return false;
  if (!reading_ && !readHead()) return false;
  if (reading_->bodyCut()) {
    in_.clear();  // Content-Length over the limit: the body is not read, the connection closes
  } else if (framing_ == Framing::kChunked) {
    std::size_t used = 0;
    ChunkedDecoder::Result result = chunked_->decode(in_, used, body_);
    in_.erase(0, used);
    switch (result) {
      case ChunkedDecoder::Result::kIncomplete:
        if (peerClosed_) {
          refuse({400, "malformed_body", "the chunked body ended early"}, "truncated body");
          return false;
        }
        sendContinue();
        return false;
      case ChunkedDecoder::Result::kTooLarge:
        reading_->setBodyCut();
        in_.clear();
        break;
      case ChunkedDecoder::Result::kMalformed:
        refuseMalformed("the chunked body is malformed (chunk sizes are plain hexadecimal)");
        return false;
      case ChunkedDecoder::Result::kDone:
        break;
    }
  } else if (in_.size() >= length_) {
    body_.assign(in_, 0, length_);
    in_.erase(0, length_);
  } else if (peerClosed_) {
    // The client stopped sending: the handler sees the short body and refuses it.
    body_ = std::move(in_);
    in_.clear();
  } else {
    sendContinue();
    return false;
  }

  std::unique_ptr<Http1Request> request = std::move(reading_);
  request->setBody(std::move(body_));
  resetReading();
  ++requests_;
  const int maxRequests = params_.getMaxKeepAliveRequests();  // 0: unlimited
  keepAlive_ = !request->bodyCut() && !stopping && params_.getKeepAlive() &&
               (maxRequests <= 0 || requests_ < static_cast<std::uint64_t>(maxRequests)) &&
               request->getKeepAlive();
  response_ =
      std::make_unique<Http1Response>(request->getMethod() == Poco::Net::HTTPRequest::HTTP_HEAD);
  request->setResponse(response_.get());
  response_->client = resolveClient(peer_, request.get(), limits_.trustedProxies);
  stampResponse(*response_, params_, request->getVersion(), keepAlive_);
  request_ = std::move(request);
  started_ = std::chrono::steady_clock::now();
  return true;
}

void Http1Connection::finishRequest(bool stopping) {
  // Decided again now: the server may have begun stopping, or the client closed its side
  // while the handler worked (its requests already received are still answered).
  const bool moreToAnswer = in_.find_first_not_of("\r\n") != std::string::npos;
  const bool keepAlive =
      keepAlive_ && response_->getKeepAlive() && !stopping && !(peerClosed_ && !moreToAnswer);
  response_->setKeepAlive(keepAlive);
  logAnswer(request_.get(), *response_);
  response_->appendTo(out_);
  request_.reset();
  response_.reset();
  if (!keepAlive) {
    closing_ = true;
    in_.clear();
    resetReading();
  }
}

void Http1Connection::startStream() {
  // The body ends with the connection: no length to give, and no next request to frame.
  response_->setKeepAlive(false);
  logAnswer(request_.get(), *response_);
  response_->appendHeadTo(out_);
  request_.reset();
  response_.reset();
  in_.clear();
  resetReading();
  streaming_ = true;
}

void Http1Connection::endStream() {
  if (!streaming_) return;
  streaming_ = false;
  closing_ = true;
}

}  // namespace b24es
