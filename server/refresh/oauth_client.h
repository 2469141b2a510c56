// The OAuth side of token refresh (SPEC §6): which URL may receive the client secret, the
// request to a portal's token endpoint, and what its answer means. The refresher talks to an
// OAuthClient interface so that tests and the serve timer share the same code path with a
// scripted or a real client.
#pragma once

#include <Poco/Net/Context.h>
#include <Poco/Timespan.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "mutex.h"
#include "refresh_settings.h"

namespace b24es {

// The token endpoint derived from a portal's server_endpoint, or why it may not be contacted.
struct TokenEndpoint {
  bool allowed = false;
  std::string url;    // scheme://host[:port]/oauth/token/ when allowed
  std::string error;  // when not allowed: a sentence naming the endpoint's host, no secrets
};

// Same scheme and host (and port) as `serverEndpoint`, path /oauth/token/ (SPEC §6). Allowed
// only for https (or http with settings.allowHttp) and a host listed in settings.allowedHosts
// (exact, case-insensitive). Pure; thread-safe.
TokenEndpoint tokenEndpointFor(const std::string& serverEndpoint, const OAuthSettings& settings);

// The new pair and portal fields of a successful answer. Secrets.
struct TokenAnswer {
  std::string accessToken;
  std::string refreshToken;
  std::optional<std::int64_t> expires;    // absolute, unix seconds, when the server sent it
  std::optional<std::int64_t> expiresIn;  // seconds, when the server sent it
  std::string scope;
  std::string clientEndpoint;
  std::string serverEndpoint;
  std::string status;
};

// What one refresh request came to.
struct OAuthAnswer {
  enum class Kind {
    kSuccess,    // tokens holds the new pair
    kDead,       // Bitrix24 says the refresh token (or the app's access) is gone for good
    kTransient,  // try again later with the same refresh token
    kRefused,    // not sent: the endpoint is not allowed (no connection was made)
  };
  Kind kind = Kind::kTransient;
  std::string error;        // a short word: invalid_grant, http_503, timeout, ...
  std::string description;  // what happened, for people: "HTTP 400: <the server's words>",
                            // "connection to HOST refused"; secrets redacted
  TokenAnswer tokens;       // when kSuccess
};

const char* kindName(OAuthAnswer::Kind kind);

// Classifies an HTTP answer of a token endpoint: a 2xx JSON object whose access_token and
// refresh_token are non-empty strings and whose expiry (expires and/or expires_in) is a number
// (or a string of digits) is a success, and any other 2xx answer a transient malformed_answer
// (SPEC §6); an `error` of invalid_grant, expired_token, invalid_client, wrong_client,
// PAYMENT_REQUIRED or NO_AUTH_FOUND is dead whatever the status (Bitrix24 sends some with 200);
// anything else (5xx, other errors, unparsable bodies) is transient. Pure; thread-safe.
OAuthAnswer classifyTokenAnswer(int httpStatus, const std::string& body);

// Asks a token endpoint for a new pair.
class OAuthClient {
 public:
  virtual ~OAuthClient() = default;
  // Sends grant_type=refresh_token with the credentials and `refreshToken` to `endpointUrl`
  // (a URL from tokenEndpointFor). Never throws: every failure is an answer. Implementations
  // are thread-safe.
  virtual OAuthAnswer refresh(const std::string& endpointUrl, const std::string& clientId,
                              const std::string& clientSecret, const std::string& refreshToken) = 0;
};

// Timeouts and trust of the real client.
struct HttpOAuthOptions {
  Poco::Timespan connectTimeout{10, 0};
  Poco::Timespan ioTimeout{20, 0};  // each send and each receive
  // The whole request, from connect to the answer's last byte (refresh.timeout): a server that
  // trickles its answer a byte at a time never trips ioTimeout, so the socket is shut down when
  // this passes.
  Poco::Timespan deadline{20, 0};
  // Certificates (a file or a hashed folder) that HTTPS endpoints must chain to: the system
  // store of the ca-certificates package. Tests point it at their own CA.
  std::string caLocation = "/etc/ssl/certs";
  std::size_t maxAnswerBytes = 65536;  // longer answers are cut and then fail to parse
};

// The options of the real client for refresh.timeout: the deadline, and connect and I/O
// timeouts no longer than it.
HttpOAuthOptions httpOAuthOptions(const RefreshSettings& refresh);

// The real client: POST application/x-www-form-urlencoded over HTTPS with certificate and host
// name verification (VERIFY_STRICT), or plain HTTP only when settings.allowHttp. Checks
// `endpointUrl` against tokenEndpointFor itself, so the secret never reaches a host outside
// settings.allowedHosts whoever calls it. Thread-safe; one connection per call.
class HttpOAuthClient final : public OAuthClient {
 public:
  // Throws Poco::Net::SSLException when the TLS context cannot be created.
  explicit HttpOAuthClient(const OAuthSettings& settings, const HttpOAuthOptions& options = {});
  ~HttpOAuthClient() override;
  OAuthAnswer refresh(const std::string& endpointUrl, const std::string& clientId,
                      const std::string& clientSecret, const std::string& refreshToken) override;
  // Ends every request in flight now (its socket is shut down; it answers transient
  // `stopped`) and makes later ones answer so at once: for a serve that stops within its grace
  // period. Thread-safe; irreversible.
  void abort();

 private:
  class Deadline;  // shuts one request's socket down at its deadline or on abort()

  const OAuthSettings settings_;     // const after construction
  const HttpOAuthOptions options_;   // const after construction
  Poco::Net::Context::Ptr context_;  // const after construction; thread-safe itself
  Mutex mutex_;
  CondVar aborted_;  // signals aborting_ and the end of a request (Deadline)
  bool aborting_ GUARDED_BY(mutex_) = false;
};

// `text` with every run of 8 or more characters that also occurs in one of the secrets (and
// every whole occurrence of a shorter non-empty secret) replaced by "[redacted]": answers are
// quoted into logs and last_refresh_error, and a server must not be able to echo a secret, or
// most of one, there. Pure; thread-safe.
std::string redactSecrets(std::string text, std::initializer_list<std::string> secrets);

// The shortest run of a secret's characters that redactSecrets() removes.
inline constexpr std::size_t kSecretRunChars = 8;

}  // namespace b24es
