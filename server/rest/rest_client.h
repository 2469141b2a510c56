// Calls to a portal's REST API (SPEC §8.1): which client_endpoint may be called and at which
// address, the per-portal pacing (rest.rate, rest.burst), and the call itself with its two
// retries: `expired_token` refreshes the token through the refresh lease and retries once,
// `QUERY_LIMIT_EXCEEDED` waits 1, 2, 4 s and retries. Used by `call`, the bindings worker, the
// offline queue and the lifecycle verification of ONAPPUPDATE and ONAPPPAYMENT.
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/URI.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "clock.h"
#include "mutex.h"
#include "records.h"
#include "refresh_policy.h"
#include "rest_settings.h"
#include "token_refresher.h"

namespace b24es {

// True for an address a portal on the internet can have: not loopback, private (10/8,
// 172.16/12, 192.168/16, fc00::/7), link-local, shared (100.64/10), multicast, unspecified,
// broadcast or 0/8; IPv4-mapped IPv6 addresses are judged by their IPv4 address. Pure.
bool isPublicAddress(const Poco::Net::IPAddress& address);

// The addresses a host name resolves to (an IP literal resolves to itself). Throws
// Poco::Exception when it cannot be resolved.
using Resolver = std::function<std::vector<Poco::Net::IPAddress>(const std::string& host)>;
Resolver systemResolver();

// Where one REST call goes, or why it may not be made.
struct RestTarget {
  bool allowed = false;
  std::string error;  // when not allowed: a sentence naming the host, no secrets
  Poco::URI uri;      // {client_endpoint}{method}
  std::string host;   // the name sent as Host and SNI, and checked against the certificate
  std::uint16_t port = 0;
  Poco::Net::IPAddress address;  // the checked address the connection goes to
};

// Checks `clientEndpoint` and builds the target of `method` (SPEC §8.1): https only (http only
// with settings.allowHttp), no user info; with settings.allowedHosts only those hosts (exact,
// case-insensitive, or `*.suffix`), otherwise only a host whose every resolved address is
// public. `method` must be a plain method name (letters, digits, dots, underscores). Never
// throws; a failed resolution is a refusal.
RestTarget restTargetFor(const std::string& clientEndpoint, const std::string& method,
                         const RestSettings& settings, const Resolver& resolve);

// Paces the calls to one portal: a bucket of `burst` calls refilled at `rate` per second. A
// caller takes a call's place at once and is told how long to wait for it, so concurrent callers
// queue in order. Thread-safe.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst);
  // Reserves one call at `nowMillis`; returns the milliseconds to wait before making it.
  std::int64_t reserve(std::int64_t nowMillis);

 private:
  const double rate_;   // const after construction; calls per second, > 0
  const double burst_;  // const after construction
  Mutex mutex_;
  double tokens_ GUARDED_BY(mutex_);  // negative: calls waiting
  std::optional<std::int64_t> last_ GUARDED_BY(mutex_);
};

// One call's parameters: a PHP-bracket form (keys such as `id[]` may repeat) or a JSON object.
// The access token is added by the client as `auth`, in the body.
struct RestParams {
  std::vector<std::pair<std::string, std::string>> form;
  Poco::JSON::Object::Ptr json;  // used instead of `form` when set
};

// What a call came to.
struct RestResult {
  enum class Kind {
    kOk,           // the portal answered with a result
    kError,        // the portal answered with an error (error, description)
    kUnreachable,  // no answer: connection, TLS, timeout, or a 5xx without a Bitrix24 error
    kRefused,      // not sent: endpoint not allowed, no portal or no token
  };
  Kind kind = Kind::kUnreachable;
  int httpStatus = 0;
  std::string error;        // Bitrix24's `error`, or a word of ours: host_not_allowed, timeout
  std::string description;  // Bitrix24's `error_description`, or what happened; no secrets
  std::string body;         // the whole answer as received (kOk)
  Poco::JSON::Object::Ptr answer;  // the answer parsed (kOk)

  bool ok() const { return kind == Kind::kOk; }
  // answer["result"], empty when absent.
  Poco::Dynamic::Var result() const;
};
const char* restKindName(RestResult::Kind kind);

// Gets the access token of (member_id, user_id): the stored one while usable, else (or with
// forceRefresh, after `expired_token`) refreshed through the lease. TokenRefresher::accessToken.
using AccessTokenSource = std::function<AccessTokenResult(
    const std::string& memberId, const std::optional<std::int64_t>& userId, bool forceRefresh)>;

struct RestClientOptions {
  std::string caLocation = "/etc/ssl/certs";      // certificates HTTPS endpoints must chain to
  std::size_t maxAnswerBytes = 32 * 1024 * 1024;  // longer answers fail as bad_answer
  std::int64_t firstLimitWaitMillis = 1000;       // QUERY_LIMIT_EXCEEDED: 1 s, 2 s, 4 s
  int limitRetries = 3;
};

// The REST client. Thread-safe: any number of threads may call at once; calls to one portal
// share its TokenBucket. One connection per call (calls are rare and paced).
class RestClient {
 public:
  // `clock` and `sleep` pace and back off (tests pass a fake clock and a sleeper that moves
  // it); `onCall` (may be empty) is told each HTTP exchange's method and result for metrics.
  // Throws Poco::Net::SSLException when the TLS context cannot be created.
  RestClient(const RestSettings& settings, AccessTokenSource tokens, const Clock& clock,
             Sleeper sleep, RestClientOptions options = {}, Resolver resolve = systemResolver(),
             std::function<void(const std::string&, const std::string&)> onCall = {});
  ~RestClient();

  // `method` at `portal`'s stored client_endpoint with the token of `userId` (the installing
  // user's when nullopt), refreshed and retried once on expired_token. Never throws.
  RestResult call(const PortalRecord& portal, const std::optional<std::int64_t>& userId,
                  const std::string& method, const RestParams& params);
  // `method` at `portal`'s stored client_endpoint with a given access token (an event's), no
  // refresh. Never throws.
  RestResult callWithToken(const PortalRecord& portal, const std::string& accessToken,
                           const std::string& method, const RestParams& params);

 private:
  // One call with QUERY_LIMIT_EXCEEDED retries.
  RestResult send(const PortalRecord& portal, const std::string& accessToken,
                  const std::string& method, const RestParams& params);
  // One HTTP exchange.
  RestResult exchange(const RestTarget& target, const std::string& accessToken,
                      const RestParams& params);
  // Waits for the portal's bucket; false when the sleeper was interrupted (the service stops).
  bool pace(const std::string& memberId);

  const RestSettings settings_;  // const after construction
  AccessTokenSource tokens_;     // const after construction
  const Clock& clock_;
  Sleeper sleep_;                                                       // const after construction
  const RestClientOptions options_;                                     // const after construction
  Resolver resolve_;                                                    // const after construction
  std::function<void(const std::string&, const std::string&)> onCall_;  // const after constr.
  Poco::Net::Context::Ptr context_;  // const after construction; thread-safe itself

  Mutex bucketsMutex_;
  std::map<std::string, std::unique_ptr<TokenBucket>> buckets_ GUARDED_BY(bucketsMutex_);
};

// Classifies an HTTP answer of a REST endpoint: a JSON object with `error` is kError whatever
// the status; a 2xx JSON object is kOk; a 5xx without one is kUnreachable; anything else kError
// (bad_answer). Pure.
RestResult classifyRestAnswer(int httpStatus, std::string body);

// Bitrix24's `batch` method (several calls in one request, in order): `cmd[KEY]` holds
// `METHOD?QUERY`, the query form-encoded here so that it survives the body's own encoding. Pure.
std::string batchCommand(const std::string& method,
                         const std::vector<std::pair<std::string, std::string>>& params);
// The part of a successful `batch` answer that command `key` got: kOk with answer {"result":
// ...} from result.result[key], kError with Bitrix24's error from result.result_error[key], or
// kError `not_run` when the batch halted before it. Pure.
RestResult batchPart(const RestResult& batch, const std::string& key);

// A real sleep in milliseconds (for commands; the service passes one that stop interrupts).
bool sleepMillis(std::int64_t millis);

// Sleeps that stop() cuts short, so the service's REST waits (pacing, backoff) end when it
// stops. Thread-safe.
class Interrupter {
 public:
  // Sleeps `millis`; false when stopped (at once if stopped already).
  bool sleep(std::int64_t millis);
  void stop();
  Sleeper sleeper() {
    return [this](std::int64_t millis) { return sleep(millis); };
  }

 private:
  Mutex mutex_;
  CondVar changed_;  // signals stopped_
  bool stopped_ GUARDED_BY(mutex_) = false;
};

}  // namespace b24es
