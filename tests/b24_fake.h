// A fake Bitrix24 portal's REST API for the tests of SPEC §8: a POCO HTTPServer on 127.0.0.1
// and port 0 inside the test binary (or in scripts/bench-rest's helper), answering POST
// {baseUrl}/rest/{method}. It knows batch, event.get, event.bind, event.unbind, event.offline.get
// (reservation by process_id, or a plan without it that answers WRONG_LICENSE to clear=0),
// event.offline.clear, app.info, and echoes any other method. Access tokens are checked against
// a set the test fills; `expired_token` and `QUERY_LIMIT_EXCEEDED` can be injected. Every request
// line and body is recorded, so tests can assert that no token ever went into a URL.
#pragma once

#include <Poco/Net/HTTPServer.h>
#include <Poco/ThreadPool.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace b24es::test {

class FakeBitrix24 {
 public:
  struct Request {
    std::string method;       // the REST method, from the path
    std::string requestLine;  // "POST /rest/event.get HTTP/1.1"
    std::string contentType;
    std::string body;
    std::multimap<std::string, std::string> form;  // the body decoded (form bodies)
    std::int64_t arrivedMicros = 0;                // steady clock, for the benchmark
    std::string batchKey;  // a command of a `batch`: its key in cmd[...]; "" for a request
    std::string param(const std::string& key) const;  // first value or ""
  };
  struct Binding {
    std::string event;    // upper-case
    std::string handler;  // "" for offline bindings
    bool offline = false;
    bool hidden = false;  // bound, but event.get does not list it (bind answers "already")
  };
  struct OfflineRecord {
    std::int64_t id = 0;
    std::string eventName;        // as Bitrix24 sends it (upper-case)
    std::string dataJson = "{}";  // EVENT_DATA
    std::int64_t userId = 0;
    std::string messageId;
    std::string processId;  // reservation; "" when free
  };

  // `tls`: HTTPS with tests/data/tls (certificate for 127.0.0.1).
  explicit FakeBitrix24(bool tls = false);
  ~FakeBitrix24();

  std::string baseUrl() const;
  std::string clientEndpoint() const;  // baseUrl + "/rest/"

  // Access tokens that work; any other is invalid_token, one in `expire` is expired_token.
  void acceptToken(const std::string& token);
  void expireToken(const std::string& token);
  // Also accepts whatever this says is live (the fake OAuth server's issued tokens).
  void setTokenCheck(std::function<bool(const std::string&)> live);

  // The next `n` calls answer 503 QUERY_LIMIT_EXCEEDED.
  void injectQueryLimit(int n);
  // The next `n` calls of `method` answer 500 without JSON (a broken portal).
  void injectServerError(const std::string& method, int n);

  void addBinding(const Binding& b);
  // Removes every binding of `event`, as Bitrix24 does to some after an application update.
  void dropBinding(const std::string& event);
  std::vector<Binding> bindings() const;

  // Queues offline records (ids assigned in order); returns their ids.
  std::vector<std::int64_t> queueOffline(const std::string& eventName, int count);
  std::size_t offlineQueued() const;  // records still in the queue
  // Frees every reservation, as when Bitrix24's lapses.
  void releaseReservations();
  // No reservation mode: clear=0 answers WRONG_LICENSE.
  void setPlanWithoutReservation(bool on);
  // Answers app.info's result with this object (JSON text); "" means app.info answers like any
  // call (the token decides).
  void setAppInfo(const std::string& resultJson);
  // Calls of `method` wait (after being recorded) until release(); "" holds nothing.
  void hold(const std::string& method);
  // apply=false: the held calls fail (500) without effect, as if they never reached Bitrix24.
  void release(bool apply = true);
  // Every event.offline.get hands out reserved records again (as after lapsed reservations);
  // with `gets` >= 0 only the next `gets` calls do. Two processes pulling while every call
  // re-reserves can starve each other forever (each clear comes after the other's get took the
  // records over), which Bitrix24's minutes-long reservations do not do: tests with two pullers
  // bound the lapses so that both finish.
  void setReservationsLapse(bool on, int gets = -1);
  // Makes event.offline.clear of the next `n` passes fail (500), as when the portal is down.
  void failClears(int n);

  std::vector<Request> requests() const;
  std::vector<Request> requestsOf(const std::string& method) const;
  std::size_t clearsWithoutProcessId() const;
  bool waitFor(const std::function<bool()>& condition, int timeoutMillis);

  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);

 private:
  std::string answer(const Request& r, int& status);  // under mutex_
  std::string offlineGet(const Request& r, int& status);
  // `batch`: runs the commands in order (halt=1 stops at the first error).
  std::string batchAnswer(const Request& r, int& status);
  static std::vector<Request> batchCommands(const Request& batch);
  std::string offlineClear(const Request& r, int& status);

  const bool tls_;
  Poco::ThreadPool pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;               // guarded by mutex_
  std::set<std::string> accepted_;                // guarded by mutex_
  std::set<std::string> expired_;                 // guarded by mutex_
  std::function<bool(const std::string&)> live_;  // guarded by mutex_
  int queryLimit_ = 0;                            // guarded by mutex_
  std::map<std::string, int> serverErrors_;       // guarded by mutex_
  std::vector<Binding> bindings_;                 // guarded by mutex_
  std::vector<OfflineRecord> queue_;              // guarded by mutex_
  std::int64_t nextId_ = 1;                       // guarded by mutex_
  std::uint64_t processes_ = 0;                   // guarded by mutex_
  bool noReservation_ = false;                    // guarded by mutex_
  std::string appInfo_;                           // guarded by mutex_
  int failClears_ = 0;                            // guarded by mutex_
  bool dropHeld_ = false;                         // guarded by mutex_
  bool lapse_ = false;                            // guarded by mutex_
  int lapseGets_ = -1;                            // guarded by mutex_; < 0: no bound
  std::string held_;                              // guarded by mutex_
  bool stopping_ = false;                         // guarded by mutex_
  std::size_t clearsWithoutProcess_ = 0;          // guarded by mutex_
  std::vector<Request> requests_;                 // guarded by mutex_
};

}  // namespace b24es::test
