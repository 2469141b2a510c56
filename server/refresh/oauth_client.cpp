#include "oauth_client.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/NumberParser.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <istream>
#include <memory>
#include <thread>
#include <vector>

#ifndef B24ES_VERSION
#define B24ES_VERSION "0.0.0"
#endif

namespace b24es {
namespace {

// Bitrix24's answers that mean the refresh token will never work again: retrying only adds load.
constexpr std::array<const char*, 6> kDeadErrors = {
    "invalid_grant", "expired_token",    "invalid_client",
    "wrong_client",  "PAYMENT_REQUIRED", "NO_AUTH_FOUND",
};

bool isDeadError(const std::string& error) {
  for (const char* dead : kDeadErrors) {
    if (Poco::icompare(error, std::string(dead)) == 0) return true;
  }
  return false;
}

// A member that must be a non-empty JSON string; nullopt for anything else (a number, an array,
// null, "").
std::optional<std::string> stringMember(const Poco::JSON::Object::Ptr& o, const std::string& key) {
  if (!o->has(key)) return std::nullopt;
  Poco::Dynamic::Var v = o->get(key);
  if (!v.isString()) return std::nullopt;
  std::string s = v.extract<std::string>();
  if (s.empty()) return std::nullopt;
  return s;
}

std::string textMember(const Poco::JSON::Object::Ptr& o, const std::string& key) {
  if (!o->has(key)) return {};
  Poco::Dynamic::Var v = o->get(key);
  return v.isEmpty() ? std::string() : v.toString();
}

// An integer, or a string of digits (both occur in Bitrix24 answers).
std::optional<std::int64_t> integerMember(const Poco::JSON::Object::Ptr& o,
                                          const std::string& key) {
  if (!o->has(key)) return std::nullopt;
  Poco::Dynamic::Var v = o->get(key);
  try {
    if (v.isBoolean()) return std::nullopt;  // POCO counts a bool as an integer
    if (v.isInteger() || v.isNumeric()) return v.convert<Poco::Int64>();
    if (v.isString()) {
      Poco::Int64 n = 0;
      if (Poco::NumberParser::tryParse64(v.extract<std::string>(), n)) return n;
    }
  } catch (const Poco::Exception&) {
  }
  return std::nullopt;
}

OAuthAnswer transient(std::string error, std::string description) {
  OAuthAnswer a;
  a.kind = OAuthAnswer::Kind::kTransient;
  a.error = std::move(error);
  a.description = std::move(description);
  return a;
}

// Reads at most `limit` bytes: a broken or hostile endpoint must not fill memory.
std::string readBounded(std::istream& in, std::size_t limit) {
  std::string body;
  char buffer[4096];
  while (in && body.size() < limit) {
    in.read(buffer, static_cast<std::streamsize>(std::min(sizeof buffer, limit - body.size())));
    std::streamsize got = in.gcount();
    if (got <= 0) break;
    body.append(buffer, static_cast<std::size_t>(got));
  }
  return body;
}

}  // namespace

TokenEndpoint tokenEndpointFor(const std::string& serverEndpoint, const OAuthSettings& settings) {
  TokenEndpoint endpoint;
  if (serverEndpoint.empty()) {
    endpoint.error = "the portal has no server_endpoint";
    return endpoint;
  }
  Poco::URI uri;
  try {
    uri = Poco::URI(serverEndpoint);
  } catch (const Poco::Exception&) {
    endpoint.error = "the portal's server_endpoint is not a URL";
    return endpoint;
  }
  const std::string scheme = Poco::toLower(uri.getScheme());
  const std::string host = uri.getHost();
  if (host.empty()) {
    endpoint.error = "the portal's server_endpoint has no host";
    return endpoint;
  }
  if (scheme != "https" && !(scheme == "http" && settings.allowHttp)) {
    endpoint.error = "server_endpoint host " + host + " uses " + scheme +
                     ", and only https is allowed (oauth.allow_http is for local fakes)";
    return endpoint;
  }
  if (!uri.getUserInfo().empty()) {
    endpoint.error = "server_endpoint host " + host + " carries user info, which is not allowed";
    return endpoint;
  }
  bool listed = false;
  for (const std::string& allowed : settings.allowedHosts) {
    listed = listed || Poco::icompare(allowed, host) == 0;
  }
  if (!listed) {
    endpoint.error = "server_endpoint host " + host + " is not in oauth.allowed_hosts";
    return endpoint;
  }
  Poco::URI token;
  token.setScheme(scheme);
  token.setHost(Poco::toLower(host));
  token.setPort(uri.getPort());
  token.setPath("/oauth/token/");
  endpoint.allowed = true;
  endpoint.url = token.toString();
  return endpoint;
}

const char* kindName(OAuthAnswer::Kind kind) {
  switch (kind) {
    case OAuthAnswer::Kind::kSuccess:
      return "success";
    case OAuthAnswer::Kind::kDead:
      return "dead";
    case OAuthAnswer::Kind::kTransient:
      return "transient";
    case OAuthAnswer::Kind::kRefused:
      return "refused";
  }
  return "transient";
}

OAuthAnswer classifyTokenAnswer(int httpStatus, const std::string& body) {
  const std::string status = std::to_string(httpStatus);
  Poco::JSON::Object::Ptr root;
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var parsed = parser.parse(body);
    if (parsed.type() == typeid(Poco::JSON::Object::Ptr)) {
      root = parsed.extract<Poco::JSON::Object::Ptr>();
    }
  } catch (const Poco::Exception&) {
    // Not JSON: decided by the status below.
  }
  if (!root) {
    if (httpStatus >= 200 && httpStatus < 300) {
      return transient("malformed_answer", "HTTP " + status + " without a JSON object");
    }
    return transient("http_" + status, "HTTP " + status);
  }
  std::string error = textMember(root, "error");
  if (!error.empty()) {
    OAuthAnswer a;
    a.kind = isDeadError(error) ? OAuthAnswer::Kind::kDead : OAuthAnswer::Kind::kTransient;
    a.error = error;
    std::string description = textMember(root, "error_description");
    a.description =
        "HTTP " + status + (description.empty() ? "" : ": " + description.substr(0, 300));
    return a;
  }
  if (httpStatus < 200 || httpStatus >= 300) {
    return transient("http_" + status, "HTTP " + status);
  }
  // Typed, not converted: "access_token":123 or an array would otherwise be stored as a token
  // (issue 13), and the real pair would be lost with the spent refresh token.
  std::optional<std::string> access = stringMember(root, "access_token");
  std::optional<std::string> refresh = stringMember(root, "refresh_token");
  if (!access || !refresh) {
    return transient("malformed_answer", "HTTP " + status +
                                             " without access_token and refresh_token as "
                                             "non-empty strings");
  }
  bool hasExpiry = false, badExpiry = false;
  for (const char* key : {"expires", "expires_in"}) {
    if (!root->has(key)) continue;
    hasExpiry = true;
    // A number, or a string of digits (both occur in Bitrix24 answers); not an array, an
    // object, a bool or words.
    badExpiry = badExpiry || !integerMember(root, key);
  }
  if (!hasExpiry || badExpiry) {
    return transient("malformed_answer",
                     "HTTP " + status + " without expires or expires_in as a number");
  }
  OAuthAnswer a;
  a.tokens.accessToken = *access;
  a.tokens.refreshToken = *refresh;
  a.kind = OAuthAnswer::Kind::kSuccess;
  a.tokens.expires = integerMember(root, "expires");
  a.tokens.expiresIn = integerMember(root, "expires_in");
  a.tokens.scope = textMember(root, "scope");
  a.tokens.clientEndpoint = textMember(root, "client_endpoint");
  a.tokens.serverEndpoint = textMember(root, "server_endpoint");
  a.tokens.status = textMember(root, "status");
  return a;
}

HttpOAuthOptions httpOAuthOptions(const RefreshSettings& refresh) {
  HttpOAuthOptions options;
  options.deadline = Poco::Timespan(refresh.timeoutSeconds, 0);
  options.connectTimeout = std::min(options.connectTimeout, options.deadline);
  options.ioTimeout = std::min(options.ioTimeout, options.deadline);
  return options;
}

// Shuts one request's socket down when its deadline passes or the client aborts, from a thread of
// its own: a shutdown socket makes the blocked connect, handshake, send or receive return at
// once. Written by hand: POCO's timeouts bound each socket operation, never a whole request. Only
// the file descriptor crosses threads (never the POCO socket object), and the thread is joined
// before the socket is closed, so the descriptor cannot be reused under it.
class HttpOAuthClient::Deadline {
 public:
  Deadline(HttpOAuthClient& client, int fd, Poco::Timespan after)
      : client_(client),
        fd_(fd),
        until_(std::chrono::steady_clock::now() +
               std::chrono::microseconds(after.totalMicroseconds())),
        thread_([this] { watch(); }) {}
  ~Deadline() {
    {
      MutexLock lock(client_.mutex_);
      done_ = true;
    }
    client_.aborted_.signalAll();
    thread_.join();
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // Why the socket was shut down: "" (it was not), "timeout" or "stopped".
  std::string cause() {
    MutexLock lock(client_.mutex_);
    return cause_;
  }

 private:
  void watch() {
    MutexLock lock(client_.mutex_);
    while (!done_ && !client_.aborting_) {
      if (!client_.aborted_.waitUntil(client_.mutex_, until_) &&
          std::chrono::steady_clock::now() >= until_)
        break;
    }
    if (done_) return;
    cause_ = client_.aborting_ ? "stopped" : "timeout";
    // Again until the request ends: a shutdown that lands between the socket's creation and
    // its connect() has nothing to shut down yet.
    while (!done_) {
      ::shutdown(fd_, SHUT_RDWR);
      client_.aborted_.waitFor(client_.mutex_, std::chrono::milliseconds(50));
    }
  }

  HttpOAuthClient& client_;
  const int fd_;
  const std::chrono::steady_clock::time_point until_;
  bool done_ GUARDED_BY(client_.mutex_) = false;
  std::string cause_ GUARDED_BY(client_.mutex_);
  std::thread thread_;
};

void HttpOAuthClient::abort() {
  {
    MutexLock lock(mutex_);
    aborting_ = true;
  }
  aborted_.signalAll();
}

HttpOAuthClient::HttpOAuthClient(const OAuthSettings& settings, const HttpOAuthOptions& options)
    : settings_(settings), options_(options) {
  Poco::Net::initializeSSL();
  context_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", options_.caLocation,
                                    Poco::Net::Context::VERIFY_STRICT);
  context_->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
  // Without a handler of its own, POCO would build one from the application configuration,
  // whose default asks on the console whether to accept a bad certificate.
  context_->setInvalidCertificateHandler(new Poco::Net::RejectCertificateHandler(false));
}

HttpOAuthClient::~HttpOAuthClient() {
  context_.reset();
  Poco::Net::uninitializeSSL();
}

OAuthAnswer HttpOAuthClient::refresh(const std::string& endpointUrl, const std::string& clientId,
                                     const std::string& clientSecret,
                                     const std::string& refreshToken) {
  // Checked here again: whoever computed the URL, the secret goes only to an allowed host.
  TokenEndpoint endpoint = tokenEndpointFor(endpointUrl, settings_);
  if (!endpoint.allowed || endpoint.url != endpointUrl) {
    OAuthAnswer a;
    a.kind = OAuthAnswer::Kind::kRefused;
    a.error = "host_not_allowed";
    a.description = endpoint.allowed ? "not a token endpoint URL" : endpoint.error;
    return a;
  }
  const Poco::URI uri(endpoint.url);
  {
    MutexLock lock(mutex_);
    if (aborting_) return transient("stopped", "not sent: the refresher is stopping");
  }
  const std::string seconds = std::to_string(options_.deadline.totalSeconds());
  std::unique_ptr<Deadline> deadline;
  // Every failure while the deadline had cut the request short is that, whatever the socket
  // made of it (an exception, or an answer that ends early).
  auto cutShort = [&]() -> std::optional<OAuthAnswer> {
    const std::string cause = deadline ? deadline->cause() : std::string();
    if (cause == "timeout") {
      return transient("timeout", "no complete answer from " + uri.getHost() + " within " +
                                      seconds + " s (refresh.timeout)");
    }
    if (cause == "stopped") return transient("stopped", "the refresher stopped mid-request");
    return std::nullopt;
  };
  try {
    const Poco::Net::SocketAddress address(uri.getHost(), uri.getPort());
    // The socket exists before the connect, so the deadline covers the connect too.
    Poco::Net::StreamSocket tcp(address.family());
    deadline = std::make_unique<Deadline>(*this, static_cast<int>(tcp.impl()->sockfd()),
                                          options_.deadline);
    tcp.connect(address, options_.connectTimeout);
    tcp.setSendTimeout(options_.ioTimeout);
    tcp.setReceiveTimeout(options_.ioTimeout);
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    if (uri.getScheme() == "https") {
      // The handshake verifies the certificate and the host name before anything is sent. A
      // plain HTTPClientSession over the TLS socket: POCO 1.11's HTTPSClientSession refuses an
      // already connected socket (its constructor sets the port and throws).
      session = std::make_unique<Poco::Net::HTTPClientSession>(
          Poco::Net::SecureStreamSocket::attach(tcp, uri.getHost(), context_));
    } else {
      session = std::make_unique<Poco::Net::HTTPClientSession>(tcp);
    }
    session->setKeepAlive(false);

    // A POST form rather than the documentation's GET query: the secret stays out of URLs and
    // proxy logs.
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, uri.getPathEtc(),
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.setHost(uri.getHost(), uri.getPort());
    request.set("User-Agent", "b24-event-store/" B24ES_VERSION);
    request.set("Accept", "application/json");
    Poco::Net::HTMLForm form(Poco::Net::HTMLForm::ENCODING_URL);
    form.set("grant_type", "refresh_token");
    form.set("client_id", clientId);
    form.set("client_secret", clientSecret);
    form.set("refresh_token", refreshToken);
    form.prepareSubmit(request);
    form.write(session->sendRequest(request));

    Poco::Net::HTTPResponse response;
    std::istream& in = session->receiveResponse(response);
    std::string body = readBounded(in, options_.maxAnswerBytes);
    if (auto cut = cutShort()) return *cut;
    OAuthAnswer answer = classifyTokenAnswer(response.getStatus(), body);
    answer.description = redactSecrets(answer.description, {clientSecret, refreshToken});
    return answer;
  } catch (const Poco::TimeoutException&) {
    if (auto cut = cutShort()) return *cut;
    return transient("timeout", "no answer from " + uri.getHost() + " in time");
  } catch (const Poco::Net::ConnectionRefusedException&) {
    if (auto cut = cutShort()) return *cut;
    return transient("connection_failed", "connection to " + uri.getHost() + " refused");
  } catch (const Poco::Net::SSLException& e) {
    if (auto cut = cutShort()) return *cut;
    return transient("tls_error", "TLS with " + uri.getHost() + " failed: " + e.displayText());
  } catch (const Poco::Exception& e) {
    if (auto cut = cutShort()) return *cut;
    return transient("network_error",
                     "request to " + uri.getHost() + " failed: " + e.displayText());
  } catch (const std::exception& e) {
    if (auto cut = cutShort()) return *cut;
    return transient("network_error",
                     "request to " + uri.getHost() + " failed: " + std::string(e.what()));
  }
}

std::string redactSecrets(std::string text, std::initializer_list<std::string> secrets) {
  // Marks every character of `text` inside a common substring of at least kSecretRunChars with
  // a secret (the longest-common-substring table, one row at a time), then replaces each
  // marked stretch. Written by hand: no library offers it. Texts and secrets are short (an
  // error description is cut to 300 characters), so O(text x secret) is nothing.
  std::vector<bool> covered(text.size(), false);
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    const std::size_t run = std::min(kSecretRunChars, secret.size());
    std::vector<std::size_t> previous(secret.size() + 1, 0), current(secret.size() + 1, 0);
    for (std::size_t i = 0; i < text.size(); ++i) {
      for (std::size_t j = 0; j < secret.size(); ++j) {
        current[j + 1] = text[i] == secret[j] ? previous[j] + 1 : 0;
        // A secret shorter than a run counts only as a whole (current never exceeds it).
        if (current[j + 1] >= run) {
          for (std::size_t k = i + 1 - current[j + 1]; k <= i; ++k) covered[k] = true;
        }
      }
      std::swap(previous, current);
    }
  }
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!covered[i]) {
      out += text[i];
    } else if (i == 0 || !covered[i - 1]) {
      out += "[redacted]";
    }
  }
  return out;
}

}  // namespace b24es
