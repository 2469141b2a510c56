// Shared by the test executables: a fresh temp folder per test, a clock tests can move,
// the sample payloads, HTTP helpers over real sockets, and a child process running the binary.
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Process.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clock.h"
#include "settings.h"

namespace b24es::test {

// A new empty folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A clock that stands still until moved. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t millis = 1767261600000) : millis_(millis) {}
  std::int64_t nowMillis() const override { return millis_.load(); }
  void advanceSeconds(std::int64_t s) { millis_ += s * 1000; }
  void advanceMillis(std::int64_t ms) { millis_ += ms; }
  void setSeconds(std::int64_t s) { millis_ = s * 1000; }

 private:
  std::atomic<std::int64_t> millis_;
};

// Contents of tests/data/NAME.
std::string sample(const std::string& name);
std::string readFile(const std::string& path);

// The backend the suite runs against: B24ES_TEST_BACKEND=postgresql, else SQLite (see
// tests/test_backend.h).
enum class Backend { sqlite, postgresql };
Backend testBackend();
const char* backendName(Backend backend);

// Settings for a test service: the database of `dir` (db/events.db in it, or on PostgreSQL the
// server's database for that folder in pg.url), both listeners on 127.0.0.1:0.
Settings testSettings(const TempDir& dir);

// What a child process needs in its environment to use the database of `dir` on the suite's
// backend: B24ES_DB_URL on PostgreSQL (it wins over --db), nothing on SQLite.
std::map<std::string, std::string> backendEnv(const TempDir& dir);

// The storage the settings name (openStorage of the binary), migrated.
std::unique_ptr<Storage> openTestStorage(const Settings& settings, const Clock& clock);

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  Poco::JSON::Object::Ptr json() const;  // body parsed; throws when it is not a JSON object
};

// One request over a new connection. `url` is http://host:port, `target` the path and query.
HttpResult httpRequest(const std::string& url, const std::string& method, const std::string& target,
                       const std::string& body = {}, const std::string& contentType = {},
                       const std::map<std::string, std::string>& headers = {});
HttpResult postForm(const std::string& url, const std::string& target, const std::string& body);
HttpResult postJson(const std::string& url, const std::string& target, const std::string& body);
HttpResult httpGet(const std::string& url, const std::string& target);

// Runs sqlite3-free queries against a database file through POCO Data: the first column of the
// first row as text ("" when no row, "NULL" for NULL).
std::string queryScalar(const std::string& dbPath, const std::string& sql);
// The same on the database the settings name, SQLite or PostgreSQL. The SQL must suit the
// backend: cases branch on testBackend() where the dialects differ (json_extract against ->>).
std::string queryScalar(const Settings& settings, const std::string& sql);

// The build's b24-event-store running as a child process with the given arguments. Reads the
// `listening` line when `serve`. Kills the child on destruction if it still runs.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {});
  ~ChildProcess();
  // Reads stdout until the listening line; returns false on EOF first.
  bool readListeningLine(std::string& ingestUrl, std::string& queryUrl);
  // Waits (60 s at most) until stderr so far holds `text` `count` times; false on EOF first.
  bool waitForStderr(const std::string& text, std::size_t count = 1);
  void signal(int sig);
  int wait();  // exit code
  std::string readAllStdout();
  std::string readAllStderr();
  int pid() const { return pid_; }

 private:
  struct Drain;  // a thread copying one pipe into a string
  int pid_ = -1;
  std::unique_ptr<Poco::ProcessHandle> handle_;
  std::unique_ptr<Drain> out_;
  std::unique_ptr<Drain> err_;
  bool waited_ = false;
  int exitCode_ = -1;
};

// `serve` on a database in `dir` (events.db) with both listeners on 127.0.0.1:0.
std::vector<std::string> serveArgs(const TempDir& dir);

// Runs the binary to completion; returns the exit code and fills stdout/stderr.
int runBinary(const std::vector<std::string>& args, std::string& out, std::string& err,
              const std::map<std::string, std::string>& env = {});

}  // namespace b24es::test
