#include "b24_fake.h"

#include <algorithm>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/String.h>
#include <Poco/StringTokenizer.h>
#include <Poco/URI.h>

#include <chrono>
#include <sstream>

namespace b24es::test {
namespace {

class Handler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(FakeBitrix24& fake) : fake_(fake) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    fake_.handle(request, response);
  }

 private:
  FakeBitrix24& fake_;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(FakeBitrix24& fake) : fake_(fake) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Handler(fake_);
  }

 private:
  FakeBitrix24& fake_;
};

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

std::string resultBody(const Poco::Dynamic::Var& result) {
  Poco::JSON::Object o;
  o.set("result", result);
  Poco::JSON::Object time;
  time.set("start", 1767261600.0);
  time.set("duration", 0.01);
  o.set("time", time);
  return json(o);
}

std::string tlsFile(const std::string& name) {
  return std::string(B24ES_TEST_DATA) + "/tls/" + name;
}

std::int64_t steadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string FakeBitrix24::Request::param(const std::string& key) const {
  auto it = form.find(key);
  return it == form.end() ? std::string() : it->second;
}

FakeBitrix24::FakeBitrix24(bool tls) : tls_(tls), pool_(2, 32) {
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(32);
  params->setKeepAlive(false);
  params->setTimeout(Poco::Timespan(10, 0));
  Poco::Net::SocketAddress address("127.0.0.1", 0);
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

FakeBitrix24::~FakeBitrix24() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    held_.clear();
  }
  changed_.notify_all();
  server_->stopAll(true);
  pool_.joinAll();
  server_.reset();
  if (tls_) Poco::Net::uninitializeSSL();
}

std::string FakeBitrix24::baseUrl() const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(server_->port());
}

std::string FakeBitrix24::clientEndpoint() const { return baseUrl() + "/rest/"; }

void FakeBitrix24::acceptToken(const std::string& token) {
  std::lock_guard<std::mutex> lock(mutex_);
  accepted_.insert(token);
  expired_.erase(token);
}

void FakeBitrix24::expireToken(const std::string& token) {
  std::lock_guard<std::mutex> lock(mutex_);
  accepted_.erase(token);
  expired_.insert(token);
}

void FakeBitrix24::setTokenCheck(std::function<bool(const std::string&)> live) {
  std::lock_guard<std::mutex> lock(mutex_);
  live_ = std::move(live);
}

void FakeBitrix24::injectQueryLimit(int n) {
  std::lock_guard<std::mutex> lock(mutex_);
  queryLimit_ = n;
}

void FakeBitrix24::injectServerError(const std::string& method, int n) {
  std::lock_guard<std::mutex> lock(mutex_);
  serverErrors_[method] = n;
}

void FakeBitrix24::addBinding(const Binding& b) {
  std::lock_guard<std::mutex> lock(mutex_);
  bindings_.push_back(b);
}

void FakeBitrix24::dropBinding(const std::string& event) {
  std::lock_guard<std::mutex> lock(mutex_);
  bindings_.erase(std::remove_if(bindings_.begin(), bindings_.end(),
                                 [&](const Binding& b) { return b.event == event; }),
                  bindings_.end());
}

std::vector<FakeBitrix24::Binding> FakeBitrix24::bindings() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bindings_;
}

std::vector<std::int64_t> FakeBitrix24::queueOffline(const std::string& eventName, int count) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < count; ++i) {
    OfflineRecord r;
    r.id = nextId_++;
    r.eventName = eventName;
    r.dataJson = "{\"FIELDS\":{\"ID\":\"" + std::to_string(1000 + r.id) + "\"}}";
    r.userId = 1;
    r.messageId = "msg" + std::to_string(r.id);
    queue_.push_back(r);
    ids.push_back(r.id);
  }
  return ids;
}

std::size_t FakeBitrix24::offlineQueued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void FakeBitrix24::releaseReservations() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (OfflineRecord& r : queue_) r.processId.clear();
}

void FakeBitrix24::setPlanWithoutReservation(bool on) {
  std::lock_guard<std::mutex> lock(mutex_);
  noReservation_ = on;
}

void FakeBitrix24::setAppInfo(const std::string& resultJson) {
  std::lock_guard<std::mutex> lock(mutex_);
  appInfo_ = resultJson;
}

void FakeBitrix24::hold(const std::string& method) {
  std::lock_guard<std::mutex> lock(mutex_);
  held_ = method;
  dropHeld_ = false;
}

void FakeBitrix24::release(bool apply) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    held_.clear();
    dropHeld_ = !apply;
  }
  changed_.notify_all();
}

void FakeBitrix24::setReservationsLapse(bool on, int gets) {
  std::lock_guard<std::mutex> lock(mutex_);
  lapse_ = on;
  lapseGets_ = gets;
}

void FakeBitrix24::failClears(int n) {
  std::lock_guard<std::mutex> lock(mutex_);
  failClears_ = n;
}

std::vector<FakeBitrix24::Request> FakeBitrix24::requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

std::vector<FakeBitrix24::Request> FakeBitrix24::requestsOf(const std::string& method) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Request> out;
  for (const Request& r : requests_) {
    if (r.method == method) out.push_back(r);
  }
  return out;
}

std::size_t FakeBitrix24::clearsWithoutProcessId() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return clearsWithoutProcess_;
}

bool FakeBitrix24::waitFor(const std::function<bool()>& condition, int timeoutMillis) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMillis);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, std::chrono::milliseconds(20));
  }
  return condition();
}

void FakeBitrix24::handle(Poco::Net::HTTPServerRequest& request,
                          Poco::Net::HTTPServerResponse& response) {
  Request seen;
  seen.arrivedMicros = steadyMicros();
  seen.requestLine = request.getMethod() + " " + request.getURI() + " " + request.getVersion();
  seen.contentType = request.has("Content-Type") ? request.getContentType() : "";
  Poco::StreamCopier::copyToString(request.stream(), seen.body);
  std::string path;
  try {
    path = Poco::URI(request.getURI()).getPath();
  } catch (const Poco::Exception&) {
  }
  if (path.rfind("/rest/", 0) == 0) seen.method = path.substr(6);
  if (seen.contentType.find("json") != std::string::npos) {
    try {
      Poco::JSON::Parser parser;
      auto o = parser.parse(seen.body).extract<Poco::JSON::Object::Ptr>();
      for (const auto& [k, v] : *o) seen.form.emplace(k, v.toString());
    } catch (const Poco::Exception&) {
    }
  } else {
    Poco::Net::HTMLForm form;
    std::istringstream body(seen.body);
    try {
      form.load(request, body);
    } catch (const Poco::Exception&) {
    }
    for (const auto& [k, v] : form) seen.form.emplace(k, v);
  }
  // A `batch` is recorded with each of its commands as a request of its own (the batch's
  // request line, the outer auth), so tests see every method that was called.
  std::vector<Request> commands = batchCommands(seen);
  auto holds = [&](const std::string& held) {
    if (held.empty()) return false;
    if (held == seen.method) return true;
    for (const Request& c : commands) {
      if (c.method == held) return true;
    }
    return false;
  };
  int status = 200;
  std::string body;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    requests_.push_back(seen);
    for (const Request& c : commands) requests_.push_back(c);
    changed_.notify_all();
    const bool wasHeld = holds(held_);
    changed_.wait(lock, [&] { return stopping_ || !holds(held_); });
    if (wasHeld && dropHeld_) {
      status = 500;
      body = "<html>lost</html>";
    } else {
      body = answer(seen, status);
    }
  }
  changed_.notify_all();
  response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
  response.setContentType(body.empty() || body[0] != '{' ? "text/html" : "application/json");
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  response.send() << body;
}

std::string FakeBitrix24::answer(const Request& r, int& status) {
  if (r.method.empty() || r.requestLine.rfind("POST ", 0) != 0) {
    status = 405;
    return errorBody("ERROR_METHOD", "POST to /rest/METHOD");
  }
  if (queryLimit_ > 0) {
    --queryLimit_;
    status = 503;
    return errorBody("QUERY_LIMIT_EXCEEDED", "Too many requests");
  }
  if (auto it = serverErrors_.find(r.method); it != serverErrors_.end() && it->second > 0) {
    --it->second;
    status = 500;
    return "<html>Internal Server Error</html>";
  }
  const std::string auth = r.param("auth");
  if (expired_.count(auth)) {
    status = 401;
    return errorBody("expired_token", "The access token provided has expired.");
  }
  if (!accepted_.count(auth) && !(live_ && live_(auth))) {
    status = 401;
    return errorBody("invalid_token", "The access token provided is invalid.");
  }
  if (r.method == "app.info") {
    Poco::JSON::Parser parser;
    return resultBody(parser.parse(appInfo_.empty()
                                       ? R"({"ID":7,"CODE":"local.fake","VERSION":"3",)"
                                         R"("STATUS":"P","INSTALLED":true,)"
                                         R"("PAYMENT_EXPIRED":"N","DAYS":"30"})"
                                       : appInfo_));
  }
  if (r.method == "event.get") {
    Poco::JSON::Array list;
    for (const Binding& b : bindings_) {
      if (b.hidden) continue;
      Poco::JSON::Object o;
      o.set("event", b.event);
      o.set("handler", b.handler);
      o.set("auth_type", "0");
      o.set("offline", b.offline ? 1 : 0);
      list.add(o);
    }
    return resultBody(list);
  }
  if (r.method == "event.bind" || r.method == "event.unbind") {
    const std::string event = Poco::toUpper(r.param("event"));
    const bool offline = r.param("event_type") == "offline";
    const std::string handler = offline ? "" : r.param("handler");
    if (event.empty() || (!offline && handler.empty())) {
      status = 400;
      return errorBody("INVALID_ARGUMENTS", "event and handler are required");
    }
    auto same = [&](const Binding& b) {
      return b.event == event && b.offline == offline && b.handler == handler;
    };
    if (r.method == "event.bind") {
      for (const Binding& b : bindings_) {
        if (same(b)) {
          status = 400;
          return errorBody("ERROR_CORE", "Handler already binded");
        }
      }
      bindings_.push_back(Binding{event, handler, offline, false});
      return resultBody(true);
    }
    int removed = 0;
    for (auto it = bindings_.begin(); it != bindings_.end();) {
      if (same(*it)) {
        it = bindings_.erase(it);
        ++removed;
      } else {
        ++it;
      }
    }
    Poco::JSON::Object count;
    count.set("count", removed);
    return resultBody(count);
  }
  if (r.method == "batch") return batchAnswer(r, status);
  if (r.method == "event.offline.get") return offlineGet(r, status);
  if (r.method == "event.offline.clear") return offlineClear(r, status);
  // Any other method: its parameters back, shaped like crm.deal.get.
  Poco::JSON::Object result;
  for (const auto& [k, v] : r.form) {
    if (k != "auth") result.set(Poco::toUpper(k), v);
  }
  result.set("TITLE", "Fake " + r.method);
  return resultBody(result);
}

std::vector<FakeBitrix24::Request> FakeBitrix24::batchCommands(const Request& batch) {
  std::vector<Request> commands;
  if (batch.method != "batch") return commands;
  // In body order (the form multimap sorts by key); each value is METHOD?QUERY.
  Poco::StringTokenizer pairs(batch.body, "&");
  for (const std::string& pair : pairs) {
    std::string::size_type eq = pair.find('=');
    if (eq == std::string::npos) continue;
    std::string key, value;
    Poco::URI::decode(pair.substr(0, eq), key, true);
    Poco::URI::decode(pair.substr(eq + 1), value, true);
    if (key.rfind("cmd[", 0) != 0 || key.back() != ']') continue;
    Request c;
    c.arrivedMicros = batch.arrivedMicros;
    c.requestLine = batch.requestLine;
    c.contentType = batch.contentType;
    c.batchKey = key.substr(4, key.size() - 5);
    std::string::size_type q = value.find('?');
    c.method = value.substr(0, q);
    c.body = q == std::string::npos ? "" : value.substr(q + 1);
    Poco::StringTokenizer params(c.body, "&");
    for (const std::string& p : params) {
      std::string::size_type e = p.find('=');
      std::string k, v;
      Poco::URI::decode(p.substr(0, e), k, true);
      if (e != std::string::npos) Poco::URI::decode(p.substr(e + 1), v, true);
      c.form.emplace(k, v);
    }
    c.form.emplace("auth", batch.param("auth"));
    commands.push_back(std::move(c));
  }
  return commands;
}

std::string FakeBitrix24::batchAnswer(const Request& r, int& status) {
  const bool halt = r.param("halt") == "1";
  Poco::JSON::Object results, errors;
  for (const Request& c : batchCommands(r)) {
    int commandStatus = 200;
    std::string body = answer(c, commandStatus);
    Poco::JSON::Object::Ptr parsed;
    try {
      Poco::JSON::Parser parser;
      parsed = parser.parse(body).extract<Poco::JSON::Object::Ptr>();
    } catch (const Poco::Exception&) {
      // A broken command breaks the whole batch, as a portal that fails mid-request.
      status = commandStatus;
      return body;
    }
    if (parsed->has("error")) {
      Poco::JSON::Object e;
      e.set("error", parsed->get("error"));
      e.set("error_description", parsed->get("error_description"));
      errors.set(c.batchKey, e);
      if (halt) break;
    } else {
      results.set(c.batchKey, parsed->get("result"));
    }
  }
  Poco::JSON::Object result;
  result.set("result", results);
  result.set("result_error", errors);
  return resultBody(result);
}

std::string FakeBitrix24::offlineGet(const Request& r, int& status) {
  const bool clear = r.param("clear") == "1";
  int limit = 50;
  if (!r.param("limit").empty()) limit = std::stoi(r.param("limit"));
  if (!clear && noReservation_) {
    status = 402;
    return errorBody("WRONG_LICENSE", "The offline events queue without clear needs a plan");
  }
  const std::string process = "proc" + std::to_string(++processes_);
  const bool lapse = lapse_ && lapseGets_ != 0;
  if (lapse && !clear && lapseGets_ > 0) --lapseGets_;
  Poco::JSON::Array events;
  int taken = 0;
  for (auto it = queue_.begin(); it != queue_.end() && taken < limit;) {
    if (!clear && !lapse && !it->processId.empty()) {
      ++it;
      continue;
    }
    Poco::JSON::Object o;
    o.set("ID", std::to_string(it->id));
    o.set("TIMESTAMP_X", "2026-01-01T10:00:00+00:00");
    o.set("EVENT_NAME", it->eventName);
    Poco::JSON::Parser parser;
    o.set("EVENT_DATA", parser.parse(it->dataJson));
    Poco::JSON::Object additional;
    additional.set("user_id", std::to_string(it->userId));
    o.set("EVENT_ADDITIONAL", additional);
    o.set("MESSAGE_ID", it->messageId);
    events.add(o);
    ++taken;
    if (clear) {
      it = queue_.erase(it);
    } else {
      it->processId = process;
      ++it;
    }
  }
  Poco::JSON::Object result;
  result.set("process_id",
             taken > 0 && !clear ? Poco::Dynamic::Var(process) : Poco::Dynamic::Var());
  result.set("events", events);
  return resultBody(result);
}

std::string FakeBitrix24::offlineClear(const Request& r, int& status) {
  if (failClears_ > 0) {
    --failClears_;
    status = 500;
    return "<html>Internal Server Error</html>";
  }
  const std::string process = r.param("process_id");
  std::set<std::string> ids;
  for (auto [it, end] = r.form.equal_range("id[]"); it != end; ++it) ids.insert(it->second);
  if (process.empty()) {
    // What Bitrix24 does: every unreserved record of the application goes.
    ++clearsWithoutProcess_;
    for (auto it = queue_.begin(); it != queue_.end();) {
      it = it->processId.empty() ? queue_.erase(it) : std::next(it);
    }
    return resultBody(true);
  }
  for (auto it = queue_.begin(); it != queue_.end();) {
    const bool named = ids.empty() || ids.count(std::to_string(it->id));
    if (it->processId == process && named) {
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return resultBody(true);
}

}  // namespace b24es::test
