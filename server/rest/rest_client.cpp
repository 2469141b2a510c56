#include "rest_client.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/DNS.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HostEntry.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/String.h>
#include <Poco/Thread.h>

#include <chrono>
#include <cmath>
#include <istream>
#include <memory>
#include <sstream>

#ifndef B24ES_VERSION
#define B24ES_VERSION "0.0.0"
#endif

namespace b24es {
namespace {

bool hostListed(const std::string& host, const std::vector<std::string>& allowed) {
  const std::string name = Poco::toLower(host);
  for (const std::string& entry : allowed) {
    const std::string rule = Poco::toLower(entry);
    if (rule.size() > 2 && rule.compare(0, 2, "*.") == 0) {
      const std::string suffix = rule.substr(1);  // ".example.com"
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return true;
      }
    } else if (rule == name) {
      return true;
    }
  }
  return false;
}

bool plainMethodName(const std::string& method) {
  if (method.empty() || method.size() > 128) return false;
  for (char c : method) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string textMember(const Poco::JSON::Object::Ptr& o, const std::string& key) {
  if (!o || !o->has(key)) return {};
  Poco::Dynamic::Var v = o->get(key);
  return v.isEmpty() ? std::string() : v.toString();
}

RestResult failure(RestResult::Kind kind, std::string error, std::string description) {
  RestResult r;
  r.kind = kind;
  r.error = std::move(error);
  r.description = std::move(description);
  return r;
}

// Reads at most `limit` bytes and says whether the answer was longer.
bool readBounded(std::istream& in, std::size_t limit, std::string& body) {
  char buffer[16384];
  while (in) {
    in.read(buffer, sizeof buffer);
    std::streamsize got = in.gcount();
    if (got <= 0) break;
    if (body.size() + static_cast<std::size_t>(got) > limit) return false;
    body.append(buffer, static_cast<std::size_t>(got));
  }
  return true;
}

std::string redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
    text.replace(at, secret.size(), "[redacted]");
  }
  return text;
}

}  // namespace

bool isPublicAddress(const Poco::Net::IPAddress& address) {
  using Poco::Net::IPAddress;
  if (address.family() == IPAddress::IPv6 && address.isIPv4Mapped()) {
    // ::ffff:a.b.c.d reaches a.b.c.d.
    const auto* bytes = static_cast<const unsigned char*>(address.addr());
    return isPublicAddress(IPAddress(bytes + 12, 4));
  }
  if (address.isWildcard() || address.isLoopback() || address.isLinkLocal() ||
      address.isSiteLocal() || address.isMulticast() || address.isBroadcast()) {
    return false;
  }
  const auto* b = static_cast<const unsigned char*>(address.addr());
  if (address.family() == IPAddress::IPv4) {
    if (b[0] == 0) return false;                              // 0.0.0.0/8
    if (b[0] == 100 && (b[1] & 0xC0) == 64) return false;     // 100.64.0.0/10, shared
    if (b[0] == 192 && b[1] == 0 && b[2] == 0) return false;  // 192.0.0.0/24, protocol
    return true;
  }
  if ((b[0] & 0xFE) == 0xFC) return false;  // fc00::/7, unique local
  if (address.isIPv4Compatible()) return false;
  return true;
}

Resolver systemResolver() {
  return [](const std::string& host) {
    Poco::Net::IPAddress literal;
    if (Poco::Net::IPAddress::tryParse(host, literal)) {
      return std::vector<Poco::Net::IPAddress>{literal};
    }
    Poco::Net::HostEntry entry = Poco::Net::DNS::hostByName(host);
    return std::vector<Poco::Net::IPAddress>(entry.addresses().begin(), entry.addresses().end());
  };
}

RestTarget restTargetFor(const std::string& clientEndpoint, const std::string& method,
                         const RestSettings& settings, const Resolver& resolve) {
  RestTarget target;
  if (clientEndpoint.empty()) {
    target.error = "the portal has no client_endpoint";
    return target;
  }
  if (!plainMethodName(method)) {
    target.error = "'" + method.substr(0, 64) + "' is not a REST method name";
    return target;
  }
  Poco::URI uri;
  try {
    uri = Poco::URI(clientEndpoint);
  } catch (const Poco::Exception&) {
    target.error = "the portal's client_endpoint is not a URL";
    return target;
  }
  const std::string scheme = Poco::toLower(uri.getScheme());
  const std::string host = Poco::toLower(uri.getHost());
  if (host.empty()) {
    target.error = "the portal's client_endpoint has no host";
    return target;
  }
  if (scheme != "https" && !(scheme == "http" && settings.allowHttp)) {
    target.error = "client_endpoint host " + host + " uses " + scheme +
                   ", and only https is allowed (rest.allow_http is for local fakes)";
    return target;
  }
  if (!uri.getUserInfo().empty() || !uri.getQuery().empty() || !uri.getFragment().empty()) {
    target.error = "client_endpoint host " + host + " has user info, a query or a fragment";
    return target;
  }
  const bool listed = !settings.allowedHosts.empty();
  if (listed && !hostListed(host, settings.allowedHosts)) {
    target.error = "client_endpoint host " + host + " is not in rest.allowed_hosts";
    return target;
  }
  std::vector<Poco::Net::IPAddress> addresses;
  try {
    addresses = resolve(host);
  } catch (const Poco::Exception& e) {
    target.error = "client_endpoint host " + host + " cannot be resolved: " + e.displayText();
    return target;
  }
  if (addresses.empty()) {
    target.error = "client_endpoint host " + host + " has no address";
    return target;
  }
  if (!listed) {
    // Every address, not just the one used: a name that resolves to a public and a private
    // address could otherwise be steered inside on a later lookup.
    for (const Poco::Net::IPAddress& a : addresses) {
      if (!isPublicAddress(a)) {
        target.error = "client_endpoint host " + host + " resolves to " + a.toString() +
                       ", which is not a public address (set rest.allowed_hosts to call it)";
        return target;
      }
    }
  }
  std::string path = uri.getPath();
  if (path.empty() || path.back() != '/') path += '/';
  uri.setScheme(scheme);
  uri.setHost(host);
  uri.setPath(path + method);
  target.allowed = true;
  target.uri = uri;
  target.host = host;
  target.port = uri.getPort();
  target.address = addresses.front();
  return target;
}

TokenBucket::TokenBucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst) {}

std::int64_t TokenBucket::reserve(std::int64_t nowMillis) {
  MutexLock lock(mutex_);
  if (last_ && nowMillis > *last_) {
    tokens_ = std::min(burst_, tokens_ + static_cast<double>(nowMillis - *last_) * rate_ / 1000.0);
  }
  if (!last_ || nowMillis > *last_) last_ = nowMillis;
  tokens_ -= 1;
  if (tokens_ >= 0) return 0;
  return static_cast<std::int64_t>(std::ceil(-tokens_ * 1000.0 / rate_));
}

Poco::Dynamic::Var RestResult::result() const {
  if (!answer || !answer->has("result")) return {};
  return answer->get("result");
}

const char* restKindName(RestResult::Kind kind) {
  switch (kind) {
    case RestResult::Kind::kOk:
      return "ok";
    case RestResult::Kind::kError:
      return "error";
    case RestResult::Kind::kUnreachable:
      return "unreachable";
    case RestResult::Kind::kRefused:
      return "refused";
  }
  return "error";
}

RestResult classifyRestAnswer(int httpStatus, std::string body) {
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
  if (root && root->has("error") && !textMember(root, "error").empty()) {
    RestResult r = failure(RestResult::Kind::kError, textMember(root, "error"),
                           textMember(root, "error_description").substr(0, 300));
    r.httpStatus = httpStatus;
    return r;
  }
  if (httpStatus >= 500 && !root) {
    RestResult r = failure(RestResult::Kind::kUnreachable, "http_" + status, "HTTP " + status);
    r.httpStatus = httpStatus;
    return r;
  }
  if (!root || httpStatus < 200 || httpStatus >= 300) {
    RestResult r = failure(RestResult::Kind::kError, "bad_answer",
                           "HTTP " + status + (root ? " without an error" : " without JSON"));
    r.httpStatus = httpStatus;
    return r;
  }
  RestResult r;
  r.kind = RestResult::Kind::kOk;
  r.httpStatus = httpStatus;
  r.body = std::move(body);
  r.answer = root;
  return r;
}

std::string batchCommand(const std::string& method,
                         const std::vector<std::pair<std::string, std::string>>& params) {
  // What PHP's http_build_query gives and Bitrix24 parses: reserved characters, brackets
  // included, percent-encoded.
  const std::string reserved = "!#$&'()*+,/:;=?@[]\"% ";
  std::string out = method;
  char separator = '?';
  for (const auto& [key, value] : params) {
    std::string k, v;
    Poco::URI::encode(key, reserved, k);
    Poco::URI::encode(value, reserved, v);
    out += separator + k + "=" + v;
    separator = '&';
  }
  return out;
}

RestResult batchPart(const RestResult& batch, const std::string& key) {
  // An empty PHP array is `[]` in JSON: result and result_error are objects only when not empty.
  auto objectAt = [](const Poco::JSON::Object::Ptr& o, const std::string& name) {
    if (!o || !o->has(name)) return Poco::JSON::Object::Ptr();
    Poco::Dynamic::Var v = o->get(name);
    return v.type() == typeid(Poco::JSON::Object::Ptr) ? v.extract<Poco::JSON::Object::Ptr>()
                                                       : Poco::JSON::Object::Ptr();
  };
  Poco::JSON::Object::Ptr outer;
  if (batch.result().type() == typeid(Poco::JSON::Object::Ptr)) {
    outer = batch.result().extract<Poco::JSON::Object::Ptr>();
  }
  if (Poco::JSON::Object::Ptr errors = objectAt(outer, "result_error");
      errors && errors->has(key)) {
    Poco::JSON::Object::Ptr e = objectAt(errors, key);
    std::string error = textMember(e, "error");
    return failure(RestResult::Kind::kError, error.empty() ? "bad_answer" : error,
                   textMember(e, "error_description").substr(0, 300));
  }
  Poco::JSON::Object::Ptr results = objectAt(outer, "result");
  if (!results || !results->has(key)) {
    return failure(RestResult::Kind::kError, "not_run",
                   "the batch answered nothing for " + key.substr(0, 64));
  }
  RestResult r;
  r.kind = RestResult::Kind::kOk;
  r.httpStatus = batch.httpStatus;
  r.answer = new Poco::JSON::Object;
  r.answer->set("result", results->get(key));
  return r;
}

bool sleepMillis(std::int64_t millis) {
  if (millis > 0) Poco::Thread::sleep(static_cast<long>(millis));
  return true;
}

bool Interrupter::sleep(std::int64_t millis) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(std::max<std::int64_t>(0, millis));
  MutexLock lock(mutex_);
  while (!stopped_ && std::chrono::steady_clock::now() < deadline) {
    changed_.waitUntil(mutex_, deadline);
  }
  return !stopped_;
}

void Interrupter::stop() {
  {
    MutexLock lock(mutex_);
    stopped_ = true;
  }
  changed_.signalAll();
}

RestClient::RestClient(const RestSettings& settings, AccessTokenSource tokens, const Clock& clock,
                       Sleeper sleep, RestClientOptions options, Resolver resolve,
                       std::function<void(const std::string&, const std::string&)> onCall)
    : settings_(settings),
      tokens_(std::move(tokens)),
      clock_(clock),
      sleep_(sleep ? std::move(sleep) : Sleeper(sleepMillis)),
      options_(std::move(options)),
      resolve_(std::move(resolve)),
      onCall_(std::move(onCall)) {
  Poco::Net::initializeSSL();
  context_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", options_.caLocation,
                                    Poco::Net::Context::VERIFY_STRICT);
  context_->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
  // Without a handler of its own POCO would build one from the application configuration,
  // whose default asks on the console whether to accept a bad certificate.
  context_->setInvalidCertificateHandler(new Poco::Net::RejectCertificateHandler(false));
}

RestClient::~RestClient() {
  context_.reset();
  Poco::Net::uninitializeSSL();
}

bool RestClient::pace(const std::string& memberId) {
  TokenBucket* bucket = nullptr;
  {
    MutexLock lock(bucketsMutex_);
    auto& slot = buckets_[memberId];
    if (!slot) slot = std::make_unique<TokenBucket>(settings_.rate, settings_.burst);
    bucket = slot.get();  // buckets are never removed, so the pointer stays valid
  }
  std::int64_t wait = bucket->reserve(clock_.nowMillis());
  return wait <= 0 || sleep_(wait);
}

RestResult RestClient::call(const PortalRecord& portal, const std::optional<std::int64_t>& userId,
                            const std::string& method, const RestParams& params) {
  AccessTokenResult token = tokens_(portal.memberId, userId, false);
  if (!token.accessToken) {
    return failure(RestResult::Kind::kRefused, "no_token", token.error);
  }
  RestResult r = send(portal, *token.accessToken, method, params);
  if (r.kind != RestResult::Kind::kError || r.error != "expired_token") return r;
  // SPEC §6: refresh only when a call says the token expired, then retry once.
  AccessTokenResult fresh = tokens_(portal.memberId, userId, true);
  if (!fresh.accessToken) {
    return failure(RestResult::Kind::kError, "expired_token",
                   "the access token expired and could not be refreshed: " + fresh.error);
  }
  return send(portal, *fresh.accessToken, method, params);
}

RestResult RestClient::callWithToken(const PortalRecord& portal, const std::string& accessToken,
                                     const std::string& method, const RestParams& params) {
  if (accessToken.empty()) return failure(RestResult::Kind::kRefused, "no_token", "no token");
  return send(portal, accessToken, method, params);
}

RestResult RestClient::send(const PortalRecord& portal, const std::string& accessToken,
                            const std::string& method, const RestParams& params) {
  // Resolved and checked once per call: the connection goes to the address checked here.
  RestTarget target = restTargetFor(portal.clientEndpoint, method, settings_, resolve_);
  if (!target.allowed) {
    if (onCall_) onCall_(method, "refused");
    return failure(RestResult::Kind::kRefused, "host_not_allowed", target.error);
  }
  std::int64_t wait = options_.firstLimitWaitMillis;
  for (int attempt = 0;; ++attempt) {
    // A stopping service makes no call that has to wait for the bucket: a pass in progress ends
    // within the portal's burst, not after every batch still queued.
    if (!pace(portal.memberId)) {
      return failure(RestResult::Kind::kUnreachable, "stopped", "the service is stopping");
    }
    RestResult r = exchange(target, accessToken, params);
    if (onCall_)
      onCall_(method, r.ok() ? "ok" : (r.error.empty() ? restKindName(r.kind) : r.error));
    if (r.kind != RestResult::Kind::kError || r.error != "QUERY_LIMIT_EXCEEDED" ||
        attempt >= options_.limitRetries) {
      return r;
    }
    if (!sleep_(wait)) return r;
    wait *= 2;
  }
}

RestResult RestClient::exchange(const RestTarget& target, const std::string& accessToken,
                                const RestParams& params) {
  const std::string& host = target.host;
  try {
    const Poco::Timespan timeout(settings_.timeoutSeconds, 0);
    const Poco::Net::SocketAddress address(target.address, target.port);
    Poco::Net::StreamSocket plain;
    plain.connect(address, timeout);
    plain.setReceiveTimeout(timeout);
    plain.setSendTimeout(timeout);
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    if (target.uri.getScheme() == "https") {
      // TLS over the connection to the checked address, with the name as SNI and as the name
      // the certificate must carry (VERIFY_STRICT).
      Poco::Net::SecureStreamSocket secure =
          Poco::Net::SecureStreamSocket::attach(plain, host, context_);
      // A plain session over the secure socket: HTTPSClientSession's socket constructor sets the
      // port, which POCO 1.11 refuses on a connected socket.
      session = std::make_unique<Poco::Net::HTTPClientSession>(secure);
    } else {
      session = std::make_unique<Poco::Net::HTTPClientSession>(plain);
    }
    session->setTimeout(timeout, timeout, timeout);
    session->setKeepAlive(false);

    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, target.uri.getPathEtc(),
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.setHost(host, target.port);
    request.set("User-Agent", "b24-event-store/" B24ES_VERSION);
    request.set("Accept", "application/json");
    std::string body;
    if (params.json) {
      // A copy: the caller's object must not keep the token.
      Poco::JSON::Object copy(*params.json);
      copy.set("auth", accessToken);
      std::ostringstream out;
      copy.stringify(out);
      body = out.str();
      request.setContentType("application/json");
    } else {
      Poco::Net::HTMLForm form(Poco::Net::HTMLForm::ENCODING_URL);
      for (const auto& [key, value] : params.form) form.add(key, value);
      form.add("auth", accessToken);
      std::ostringstream out;
      form.write(out);
      body = out.str();
      request.setContentType("application/x-www-form-urlencoded");
    }
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    session->sendRequest(request) << body;

    Poco::Net::HTTPResponse response;
    std::istream& in = session->receiveResponse(response);
    std::string answer;
    if (!readBounded(in, options_.maxAnswerBytes, answer)) {
      return failure(RestResult::Kind::kError, "bad_answer",
                     "the answer of " + host + " is larger than " +
                         std::to_string(options_.maxAnswerBytes) + " bytes");
    }
    RestResult r = classifyRestAnswer(response.getStatus(), std::move(answer));
    r.description = redact(r.description, accessToken);
    return r;
  } catch (const Poco::TimeoutException&) {
    return failure(RestResult::Kind::kUnreachable, "timeout",
                   "no answer from " + host + " in time");
  } catch (const Poco::Net::ConnectionRefusedException&) {
    return failure(RestResult::Kind::kUnreachable, "connection_failed",
                   "connection to " + host + " refused");
  } catch (const Poco::Net::SSLException& e) {
    return failure(RestResult::Kind::kUnreachable, "tls_error",
                   "TLS with " + host + " failed: " + e.displayText());
  } catch (const Poco::Exception& e) {
    return failure(RestResult::Kind::kUnreachable, "network_error",
                   "request to " + host + " failed: " + e.displayText());
  } catch (const std::exception& e) {
    return failure(RestResult::Kind::kUnreachable, "network_error",
                   "request to " + host + " failed: " + std::string(e.what()));
  }
}

}  // namespace b24es
