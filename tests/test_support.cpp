#include "test_support.h"

#include "pg_test_support.h"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/File.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Path.h>
#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/StreamCopier.h>
#include <Poco/TemporaryFile.h>
#include <Poco/URI.h>
#include <signal.h>

#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace b24es::test {

TempDir::TempDir() {
  path_ = Poco::TemporaryFile::tempName();
  Poco::File(path_).createDirectories();
}

TempDir::~TempDir() {
  try {
    Poco::File(path_).remove(true);
  } catch (...) {
  }
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string sample(const std::string& name) {
  return readFile(std::string(B24ES_TEST_DATA) + "/" + name);
}

Backend testBackend() {
  const char* name = std::getenv("B24ES_TEST_BACKEND");
  if (!name || !*name || std::string(name) == "sqlite") return Backend::sqlite;
  if (std::string(name) == "postgresql") return Backend::postgresql;
  throw std::runtime_error("B24ES_TEST_BACKEND must be sqlite or postgresql");
}

const char* backendName(Backend backend) {
  return backend == Backend::postgresql ? "postgresql" : "sqlite";
}

std::map<std::string, std::string> backendEnv(const TempDir& dir) {
  if (testBackend() != Backend::postgresql) return {};
  return {{"B24ES_DB_URL", pgDatabaseFor(dir.path())}};
}

std::unique_ptr<Storage> openTestStorage(const Settings& settings, const Clock& clock) {
  std::unique_ptr<Storage> storage = openStorage(settings, clock);
  MigrationResult report = storage->migrator().apply();
  if (!report.ok) throw std::runtime_error("test storage: migrations failed: " + report.error);
  return storage;
}

Settings testSettings(const TempDir& dir) {
  Settings s;
  s.db.path = dir.file("db/events.db");
  if (testBackend() == Backend::postgresql) s.pg.url = pgDatabaseFor(dir.path());
  s.ingest.listen = "127.0.0.1:0";
  s.query.listen = "127.0.0.1:0";
  return s;
}

Poco::JSON::Object::Ptr HttpResult::json() const {
  Poco::JSON::Parser parser;
  return parser.parse(body).extract<Poco::JSON::Object::Ptr>();
}

HttpResult httpRequest(const std::string& url, const std::string& method, const std::string& target,
                       const std::string& body, const std::string& contentType,
                       const std::map<std::string, std::string>& headers) {
  Poco::URI uri(url);
  Poco::Net::HTTPClientSession session(uri.getHost(), uri.getPort());
  session.setTimeout(Poco::Timespan(30, 0));
  Poco::Net::HTTPRequest request(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
  if (!contentType.empty()) request.setContentType(contentType);
  for (const auto& [k, v] : headers) request.set(k, v);
  if (!body.empty() || method == Poco::Net::HTTPRequest::HTTP_POST) {
    request.setContentLength(static_cast<std::streamsize>(body.size()));
  }
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  HttpResult result;
  result.status = response.getStatus();
  for (const auto& [k, v] : response) result.headers[k] = v;
  Poco::StreamCopier::copyToString(in, result.body);
  return result;
}

HttpResult postForm(const std::string& url, const std::string& target, const std::string& body) {
  return httpRequest(url, "POST", target, body, "application/x-www-form-urlencoded");
}

HttpResult postJson(const std::string& url, const std::string& target, const std::string& body) {
  return httpRequest(url, "POST", target, body, "application/json");
}

HttpResult httpGet(const std::string& url, const std::string& target) {
  return httpRequest(url, "GET", target);
}

std::string queryScalar(const std::string& dbPath, const std::string& sql) {
  Poco::Data::SQLite::Connector::registerConnector();
  Poco::Data::Session session("SQLite", dbPath);
  std::vector<Poco::Nullable<std::string>> rows;
  session << sql, Poco::Data::Keywords::into(rows), Poco::Data::Keywords::now;
  if (rows.empty()) return "";
  return rows[0].isNull() ? "NULL" : rows[0].value();
}

std::string queryScalar(const Settings& settings, const std::string& sql) {
  if (settings.pg.url.empty()) return queryScalar(settings.db.path, sql);
  std::vector<std::string> rows = pgQuery(settings.pg.url, sql);
  return rows.empty() ? "" : rows[0];
}

struct ChildProcess::Drain {
  explicit Drain(Poco::Pipe pipe) : pipe_(pipe), thread_([this] { run(); }) {}
  ~Drain() {
    // The child has exited, so its end is closed and run() sees EOF.
    if (thread_.joinable()) thread_.join();
    pipe_.close();
  }
  void run() {
    char buffer[4096];
    for (;;) {
      int n = pipe_.readBytes(buffer, sizeof buffer);
      std::lock_guard<std::mutex> lock(mutex_);
      if (n <= 0) {
        eof_ = true;
        changed_.notify_all();
        return;
      }
      text_.append(buffer, static_cast<std::size_t>(n));
      changed_.notify_all();
    }
  }
  // Waits until `text_` has a full line starting with prefix; false on EOF or timeout.
  bool waitForLine(const std::string& prefix, std::string& line) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto found = [&] {
      std::size_t at = text_.find(prefix);
      while (at != std::string::npos && at != 0 && text_[at - 1] != '\n') {
        at = text_.find(prefix, at + 1);
      }
      if (at == std::string::npos) return false;
      std::size_t end = text_.find('\n', at);
      if (end == std::string::npos) return false;
      line = text_.substr(at, end - at);
      return true;
    };
    changed_.wait_for(lock, std::chrono::seconds(60), [&] { return found() || eof_; });
    return found();
  }
  // Waits until `text_` holds `needle` `count` times; false on EOF or timeout.
  bool waitFor(const std::string& needle, std::size_t count) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto found = [&] {
      std::size_t n = 0;
      for (std::size_t at = text_.find(needle); at != std::string::npos;
           at = text_.find(needle, at + needle.size())) {
        ++n;
      }
      return n >= count;
    };
    changed_.wait_for(lock, std::chrono::seconds(60), [&] { return found() || eof_; });
    return found();
  }
  std::string all() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(60), [&] { return eof_; });
    return text_;
  }

  Poco::Pipe pipe_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string text_;
  bool eof_ = false;
  std::thread thread_;
};

ChildProcess::ChildProcess(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env) {
  Poco::Pipe outPipe, errPipe;
  Poco::Process::Env environment(env.begin(), env.end());
  Poco::ProcessHandle handle =
      Poco::Process::launch(B24ES_BINARY, args, nullptr, &outPipe, &errPipe, environment);
  handle_ = std::make_unique<Poco::ProcessHandle>(handle);
  pid_ = handle.id();
  out_ = std::make_unique<Drain>(outPipe);
  err_ = std::make_unique<Drain>(errPipe);
}

ChildProcess::~ChildProcess() {
  if (!waited_) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

bool ChildProcess::readListeningLine(std::string& ingestUrl, std::string& queryUrl) {
  std::string line;
  if (!out_->waitForLine("listening ", line)) return false;
  std::istringstream words(line);
  std::string word;
  while (words >> word) {
    if (word.rfind("ingest=", 0) == 0) ingestUrl = word.substr(7);
    if (word.rfind("query=", 0) == 0) queryUrl = word.substr(6);
  }
  return !ingestUrl.empty() && !queryUrl.empty();
}

bool ChildProcess::waitForStderr(const std::string& text, std::size_t count) {
  return err_->waitFor(text, count);
}

void ChildProcess::signal(int sig) { ::kill(pid_, sig); }

int ChildProcess::wait() {
  if (!waited_) {
    exitCode_ = handle_->wait();
    waited_ = true;
  }
  return exitCode_;
}

std::string ChildProcess::readAllStdout() { return out_->all(); }
std::string ChildProcess::readAllStderr() { return err_->all(); }

std::vector<std::string> serveArgs(const TempDir& dir) {
  return {"serve",       "--db",           dir.file("events.db"), "--listen",
          "127.0.0.1:0", "--query-listen", "127.0.0.1:0"};
}

int runBinary(const std::vector<std::string>& args, std::string& out, std::string& err,
              const std::map<std::string, std::string>& env) {
  ChildProcess child(args, env);
  int rc = child.wait();
  out = child.readAllStdout();
  err = child.readAllStderr();
  return rc;
}

}  // namespace b24es::test
