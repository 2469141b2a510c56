// A fake Bitrix24 OAuth server for the token refresh tests: a small POCO HTTPServer on a
// loopback address and port 0, inside the test binary. It rotates refresh tokens as Bitrix24
// does (each one works once; a reused or unknown one gets invalid_grant), records every request,
// and can be scripted to answer errors, garbage or nothing. It also answers REST calls under
// /rest/ (expired_token unless the call carries a live access token), for the example script.
#pragma once

#include <Poco/Net/HTTPServer.h>
#include <Poco/ThreadPool.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "clock.h"

namespace b24es::test {

class FakeOAuthServer {
 public:
  // One request as received.
  struct Request {
    std::string method;
    std::string target;  // path and query as sent
    std::string path;
    std::string contentType;
    std::string body;
    std::map<std::string, std::string> form;  // the body (or query) decoded
    // How the fake answered a token request: "rotated" (a new pair issued), "invalid_grant"
    // (a spent or unknown refresh token), "invalid_client", "unavailable" (503 while
    // setUnavailable), "scripted", "bad_request"; empty while it is being answered.
    std::string outcome;
  };
  // The newest pair the rotation issued for one portal and user.
  struct Pair {
    std::string accessToken;
    std::string refreshToken;
  };
  // A scripted answer, used (first in, first out) instead of the rotation logic.
  struct Scripted {
    int status = 200;
    std::string body;
    int delayMillis = 0;  // before answering; cut short when the server stops
    // When > 0: the status line and headers at once, then the body one byte every this many
    // milliseconds (a server that trickles its answer), until done, the client goes or the
    // server stops.
    int trickleMillis = 0;
  };

  // Listens on host:0 (plain HTTP, or HTTPS with tests/data/tls when `tls`). `clock` gives the
  // `expires` of issued tokens and must outlive the server.
  FakeOAuthServer(const Clock& clock, const std::string& host = "127.0.0.1", bool tls = false);
  ~FakeOAuthServer();

  std::string baseUrl() const;         // http(s)://host:port
  std::string serverEndpoint() const;  // baseUrl + "/rest/", as an install event carries it

  // The application credentials the fake accepts (others get invalid_client).
  void setCredentials(const std::string& clientId, const std::string& clientSecret);
  // Makes `refreshToken` live for the portal, as if an install had handed it out.
  void accept(const std::string& refreshToken, const std::string& memberId, std::int64_t userId);
  void script(Scripted answer);
  void setExpiresIn(std::int64_t seconds);
  // Waits this long before it looks at the refresh token of a (non-scripted) token request, so
  // that refreshers racing for one token overlap; cut short when the server stops.
  void setRotationDelayMillis(int millis);
  // While true, token requests get 503 and spend nothing: a test stops the refreshers from
  // rotating further before it compares what is stored with what was issued.
  void setUnavailable(bool unavailable);
  // Waits (bounded) until no token request is being answered; false on timeout.
  bool waitIdle(int timeoutMillis);

  std::vector<Request> requests() const;  // token requests only, in arrival order
  std::size_t requestCount() const;
  std::vector<std::string> receivedRefreshTokens() const;
  bool isLive(const std::string& refreshToken) const;  // issued and not yet spent
  std::set<std::string> liveAccessTokens() const;
  // The pair last issued for the portal and user; nullopt when the rotation issued none.
  std::optional<Pair> lastIssued(const std::string& memberId, std::int64_t userId) const;
  // Waits (bounded) until at least n token requests arrived.
  bool waitForRequests(std::size_t n, int timeoutMillis);

  // Used by the request handler.
  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);

 private:
  struct Grant {
    std::string memberId;
    std::int64_t userId = 0;
  };
  std::string issue(const Grant& grant, std::string& accessToken);

  const Clock& clock_;
  const std::string host_;
  const bool tls_;
  Poco::ThreadPool pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;  // guarded by mutex_
  bool stopping_ = false;            // guarded by mutex_
  std::string clientId_ = "app.6752f1a3b4c8d9.41234567";
  std::string clientSecret_ = "fake-client-secret";  // guarded by mutex_
  std::map<std::string, Grant> live_;                // refresh token -> portal; guarded
  std::set<std::string> spent_;                      // guarded by mutex_
  std::set<std::string> liveAccess_;                 // guarded by mutex_
  std::deque<Scripted> scripted_;                    // guarded by mutex_
  std::vector<Request> requests_;                    // guarded by mutex_
  std::int64_t expiresIn_ = 3600;                    // guarded by mutex_
  std::uint64_t issued_ = 0;                         // guarded by mutex_
  int rotationDelayMillis_ = 0;                      // guarded by mutex_
  bool unavailable_ = false;                         // guarded by mutex_
  int inFlight_ = 0;                                 // token requests being answered; guarded
  std::map<std::pair<std::string, std::int64_t>, Pair> lastIssued_;  // guarded by mutex_
};

// A loopback port on which nothing listens (bound, then closed).
unsigned short closedPort();

// The fields of an ONAPPINSTALL form body (SPEC §4), portal A's sample values by default.
struct InstallSpec {
  std::string memberId = "7c1e5a93d2b84f06a9e3c5d71b2f8e40";
  std::string domain = "acme-test.bitrix24.com";
  std::string applicationToken = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";
  std::string serverEndpoint = "https://oauth.bitrix.info/rest/";
  std::string accessToken =
      "b053566900b7e2a1005a3c4d00000001f8d1386963934cba6bd69a4a9fb6c316c0ac26";
  std::string refreshToken =
      "a0d27d6900b7e2a1005a3c4d000000017e06216efe7d340cfddfee5c84ab5ad9fe1d3b";
  std::int64_t expires = 0;  // auth[expires], unix seconds
  std::int64_t userId = 1;
  std::string clientEndpoint;  // auth[client_endpoint]; empty: https://DOMAIN/rest/
};
// The install body, shaped like tests/data/01-ONAPPINSTALL.form.
std::string installForm(const InstallSpec& spec);
// An ONCRMDEALADD body of the same portal carrying an access token (and a refresh token when
// refreshToken is not empty).
std::string dealAddForm(const InstallSpec& spec, const std::string& accessToken,
                        const std::string& refreshToken, std::int64_t expires);

}  // namespace b24es::test
