#include "oauth_fake.h"

#include <Poco/JSON/Object.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Random.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <chrono>
#include <sstream>

namespace b24es::test {
namespace {

class Handler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(FakeOAuthServer& fake) : fake_(fake) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    fake_.handle(request, response);
  }

 private:
  FakeOAuthServer& fake_;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(FakeOAuthServer& fake) : fake_(fake) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Handler(fake_);
  }

 private:
  FakeOAuthServer& fake_;
};

void answer(Poco::Net::HTTPServerResponse& response, int status, const std::string& body) {
  response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
  response.setContentType("application/json");
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  response.send() << body;
}

std::string json(const Poco::JSON::Object& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

std::string errorBody(const std::string& error, const std::string& description) {
  Poco::JSON::Object o;
  o.set("error", error);
  o.set("error_description", description);
  return json(o);
}

std::string randomHex(std::size_t n) {
  static Poco::Random random;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  static bool seeded = false;
  if (!seeded) {
    random.seed();
    seeded = true;
  }
  const char* digits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += digits[random.next(16)];
  return s;
}

std::string tlsFile(const std::string& name) {
  return std::string(B24ES_TEST_DATA) + "/tls/" + name;
}

}  // namespace

FakeOAuthServer::FakeOAuthServer(const Clock& clock, const std::string& host, bool tls)
    : clock_(clock), host_(host), tls_(tls), pool_(2, 32) {
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(32);
  params->setKeepAlive(false);
  params->setTimeout(Poco::Timespan(10, 0));
  Poco::Net::SocketAddress address(host, 0);
  if (tls_) {
    Poco::Net::initializeSSL();
    Poco::Net::Context::Ptr context =
        new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, tlsFile("fake-oauth-key.pem"),
                               tlsFile("fake-oauth-cert.pem"), "", Poco::Net::Context::VERIFY_NONE);
    Poco::Net::SecureServerSocket socket(address, 64, context);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), pool_, socket, params);
  } else {
    Poco::Net::ServerSocket socket(address, 64);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), pool_, socket, params);
  }
  server_->start();
}

FakeOAuthServer::~FakeOAuthServer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  server_->stopAll(true);
  pool_.joinAll();
  server_.reset();
  if (tls_) Poco::Net::uninitializeSSL();
}

std::string FakeOAuthServer::baseUrl() const {
  return std::string(tls_ ? "https" : "http") + "://" + host_ + ":" +
         std::to_string(server_->port());
}

std::string FakeOAuthServer::serverEndpoint() const { return baseUrl() + "/rest/"; }

void FakeOAuthServer::setCredentials(const std::string& clientId, const std::string& clientSecret) {
  std::lock_guard<std::mutex> lock(mutex_);
  clientId_ = clientId;
  clientSecret_ = clientSecret;
}

void FakeOAuthServer::accept(const std::string& refreshToken, const std::string& memberId,
                             std::int64_t userId) {
  std::lock_guard<std::mutex> lock(mutex_);
  live_[refreshToken] = Grant{memberId, userId};
}

void FakeOAuthServer::script(Scripted answer) {
  std::lock_guard<std::mutex> lock(mutex_);
  scripted_.push_back(std::move(answer));
}

void FakeOAuthServer::setExpiresIn(std::int64_t seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  expiresIn_ = seconds;
}

void FakeOAuthServer::setRotationDelayMillis(int millis) {
  std::lock_guard<std::mutex> lock(mutex_);
  rotationDelayMillis_ = millis;
}

void FakeOAuthServer::setUnavailable(bool unavailable) {
  std::lock_guard<std::mutex> lock(mutex_);
  unavailable_ = unavailable;
}

bool FakeOAuthServer::waitIdle(int timeoutMillis) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, std::chrono::milliseconds(timeoutMillis),
                           [&] { return inFlight_ == 0; });
}

std::optional<FakeOAuthServer::Pair> FakeOAuthServer::lastIssued(const std::string& memberId,
                                                                 std::int64_t userId) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = lastIssued_.find({memberId, userId});
  if (it == lastIssued_.end()) return std::nullopt;
  return it->second;
}

std::vector<FakeOAuthServer::Request> FakeOAuthServer::requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

std::size_t FakeOAuthServer::requestCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_.size();
}

std::vector<std::string> FakeOAuthServer::receivedRefreshTokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> tokens;
  for (const Request& r : requests_) {
    auto it = r.form.find("refresh_token");
    if (it != r.form.end()) tokens.push_back(it->second);
  }
  return tokens;
}

bool FakeOAuthServer::isLive(const std::string& refreshToken) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_.count(refreshToken) > 0;
}

std::set<std::string> FakeOAuthServer::liveAccessTokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return liveAccess_;
}

bool FakeOAuthServer::waitForRequests(std::size_t n, int timeoutMillis) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, std::chrono::milliseconds(timeoutMillis),
                           [&] { return requests_.size() >= n; });
}

std::string FakeOAuthServer::issue(const Grant& grant, std::string& accessToken) {
  ++issued_;
  accessToken = "fake-access-" + std::to_string(issued_) + "-" + randomHex(24);
  std::string refreshToken = "fake-refresh-" + std::to_string(issued_) + "-" + randomHex(24);
  live_[refreshToken] = grant;
  liveAccess_.insert(accessToken);
  lastIssued_[{grant.memberId, grant.userId}] = Pair{accessToken, refreshToken};
  return refreshToken;
}

void FakeOAuthServer::handle(Poco::Net::HTTPServerRequest& request,
                             Poco::Net::HTTPServerResponse& response) {
  Request seen;
  seen.method = request.getMethod();
  seen.target = request.getURI();
  seen.path = Poco::URI(request.getURI()).getPath();
  seen.contentType = request.has("Content-Type") ? request.getContentType() : "";
  Poco::StreamCopier::copyToString(request.stream(), seen.body);
  {
    Poco::Net::HTMLForm form;
    std::istringstream body(seen.body);
    try {
      form.load(request, body);
    } catch (const Poco::Exception&) {
      // Recorded as received; the checks below answer it.
    }
    for (const auto& [k, v] : form) seen.form[k] = v;
  }

  // REST calls for the example script: a live access token works, any other is expired.
  if (seen.path.rfind("/rest/", 0) == 0) {
    std::string auth = seen.form.count("auth") ? seen.form["auth"] : "";
    std::lock_guard<std::mutex> lock(mutex_);
    if (liveAccess_.count(auth)) {
      return answer(response, 200, R"({"result":{"ID":"1","NAME":"Fake"}})");
    }
    return answer(response, 401,
                  errorBody("expired_token", "The access token provided has expired."));
  }

  // Counts the request as in flight until the answer is sent (declared before `lock`, so it
  // runs after `lock` has released the mutex).
  struct InFlight {
    explicit InFlight(FakeOAuthServer& fake) : fake_(fake) {
      std::lock_guard<std::mutex> guard(fake_.mutex_);
      ++fake_.inFlight_;
    }
    ~InFlight() {
      {
        std::lock_guard<std::mutex> guard(fake_.mutex_);
        --fake_.inFlight_;
      }
      fake_.changed_.notify_all();
    }
    FakeOAuthServer& fake_;
  };
  InFlight inFlight(*this);
  std::unique_lock<std::mutex> lock(mutex_);
  const std::size_t index = requests_.size();
  requests_.push_back(seen);
  changed_.notify_all();
  // The request's outcome, under the lock (requests_ may grow meanwhile; the index stays).
  auto outcome = [&](const char* what) { requests_[index].outcome = what; };
  if (unavailable_) {
    outcome("unavailable");
    lock.unlock();
    return answer(response, 503, errorBody("temporarily_unavailable", "try again later"));
  }
  if (!scripted_.empty()) {
    outcome("scripted");
    Scripted next = scripted_.front();
    scripted_.pop_front();
    changed_.wait_for(lock, std::chrono::milliseconds(next.delayMillis),
                      [this] { return stopping_; });
    if (next.trickleMillis > 0) {
      response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(next.status));
      response.setContentType("application/json");
      response.setContentLength(static_cast<std::streamsize>(next.body.size()));
      lock.unlock();
      std::ostream& out = response.send();
      out.flush();
      lock.lock();
      for (char c : next.body) {
        if (changed_.wait_for(lock, std::chrono::milliseconds(next.trickleMillis),
                              [this] { return stopping_; })) {
          break;
        }
        lock.unlock();
        out << c;
        out.flush();
        const bool gone = !out.good();  // the client hung up
        lock.lock();
        if (gone) break;
      }
      return;
    }
    lock.unlock();
    return answer(response, next.status, next.body);
  }
  if (seen.path != "/oauth/token/" || seen.method != "POST") {
    outcome("bad_request");
    lock.unlock();
    return answer(response, 400, errorBody("invalid_request", "POST to /oauth/token/"));
  }
  if (seen.form["grant_type"] != "refresh_token") {
    outcome("bad_request");
    lock.unlock();
    return answer(response, 400, errorBody("unsupported_grant_type", "refresh_token only"));
  }
  if (seen.form["client_id"] != clientId_ || seen.form["client_secret"] != clientSecret_) {
    outcome("invalid_client");
    lock.unlock();
    return answer(response, 401, errorBody("invalid_client", "Unknown client"));
  }
  if (rotationDelayMillis_ > 0) {
    changed_.wait_for(lock, std::chrono::milliseconds(rotationDelayMillis_),
                      [this] { return stopping_; });
  }
  const std::string spent = seen.form["refresh_token"];
  auto it = live_.find(spent);
  if (it == live_.end()) {
    outcome("invalid_grant");
    lock.unlock();
    return answer(response, 400,
                  errorBody("invalid_grant",
                            "The provided authorization grant is invalid, expired, revoked"));
  }
  outcome("rotated");
  Grant grant = it->second;
  live_.erase(it);
  spent_.insert(spent);
  std::string accessToken;
  std::string refreshToken = issue(grant, accessToken);
  Poco::JSON::Object o;
  o.set("access_token", accessToken);
  o.set("client_endpoint", "https://acme-test.bitrix24.com/rest/");
  o.set("domain", "oauth.bitrix.info");
  o.set("expires", clock_.nowSeconds() + expiresIn_);
  o.set("expires_in", expiresIn_);
  o.set("member_id", grant.memberId);
  o.set("refresh_token", refreshToken);
  o.set("scope", "crm,task,imbot,im,user,calendar,placement");
  o.set("server_endpoint", serverEndpoint());
  o.set("status", "F");
  o.set("user_id", grant.userId);
  lock.unlock();
  answer(response, 200, json(o));
}

unsigned short closedPort() {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  unsigned short port = socket.address().port();
  socket.close();
  return port;
}

namespace {

std::string enc(const std::string& s) {
  std::string out;
  Poco::URI::encode(s, "!#$&'()*+,/:;=?@[]", out);
  return out;
}

std::string authFields(const InstallSpec& spec, const std::string& accessToken,
                       const std::string& refreshToken, std::int64_t expires) {
  std::string body;
  body += "&auth%5Baccess_token%5D=" + enc(accessToken);
  body += "&auth%5Bexpires%5D=" + std::to_string(expires);
  body += "&auth%5Bexpires_in%5D=3600";
  body += "&auth%5Bscope%5D=crm%2Ctask%2Cimbot%2Cim%2Cuser%2Ccalendar%2Cplacement";
  body += "&auth%5Bdomain%5D=" + enc(spec.domain);
  body += "&auth%5Bserver_endpoint%5D=" + enc(spec.serverEndpoint);
  body += "&auth%5Bstatus%5D=F";
  body +=
      "&auth%5Bclient_endpoint%5D=" +
      enc(spec.clientEndpoint.empty() ? "https://" + spec.domain + "/rest/" : spec.clientEndpoint);
  body += "&auth%5Bmember_id%5D=" + enc(spec.memberId);
  body += "&auth%5Buser_id%5D=" + std::to_string(spec.userId);
  if (!refreshToken.empty()) body += "&auth%5Brefresh_token%5D=" + enc(refreshToken);
  body += "&auth%5Bapplication_token%5D=" + enc(spec.applicationToken);
  return body;
}

}  // namespace

std::string installForm(const InstallSpec& spec) {
  return "event=ONAPPINSTALL&event_handler_id=11&data%5BVERSION%5D=1&data%5BACTIVE%5D=Y"
         "&data%5BINSTALLED%5D=Y&data%5BLANGUAGE_ID%5D=en&ts=1767261600" +
         authFields(spec, spec.accessToken, spec.refreshToken, spec.expires);
}

std::string dealAddForm(const InstallSpec& spec, const std::string& accessToken,
                        const std::string& refreshToken, std::int64_t expires) {
  return "event=ONCRMDEALADD&event_handler_id=58&data%5BFIELDS%5D%5BID%5D=7405&ts=1767262000" +
         authFields(spec, accessToken, refreshToken, expires);
}

}  // namespace b24es::test
