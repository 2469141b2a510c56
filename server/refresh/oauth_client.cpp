#include "oauth_client.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/NumberParser.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <array>
#include <istream>
#include <memory>

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
    if (v.isInteger()) return v.convert<Poco::Int64>();
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
      return transient("bad_answer", "HTTP " + status + " without a JSON object");
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
  OAuthAnswer a;
  a.tokens.accessToken = textMember(root, "access_token");
  a.tokens.refreshToken = textMember(root, "refresh_token");
  if (a.tokens.accessToken.empty() || a.tokens.refreshToken.empty()) {
    return transient("bad_answer", "HTTP " + status + " without access_token and refresh_token");
  }
  a.kind = OAuthAnswer::Kind::kSuccess;
  a.tokens.expires = integerMember(root, "expires");
  a.tokens.expiresIn = integerMember(root, "expires_in");
  a.tokens.scope = textMember(root, "scope");
  a.tokens.clientEndpoint = textMember(root, "client_endpoint");
  a.tokens.serverEndpoint = textMember(root, "server_endpoint");
  a.tokens.status = textMember(root, "status");
  return a;
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
  try {
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    if (uri.getScheme() == "https") {
      session =
          std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), context_);
    } else {
      session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
    }
    session->setTimeout(options_.connectTimeout, options_.ioTimeout, options_.ioTimeout);
    session->setKeepAlive(false);

    // A POST form rather than the documentation's GET query: the secret stays out of URLs and
    // proxy logs.
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, uri.getPathEtc(),
                                   Poco::Net::HTTPMessage::HTTP_1_1);
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
    OAuthAnswer answer = classifyTokenAnswer(response.getStatus(), body);
    answer.description = redactSecrets(answer.description, {clientSecret, refreshToken});
    return answer;
  } catch (const Poco::TimeoutException&) {
    return transient("timeout", "no answer from " + uri.getHost() + " in time");
  } catch (const Poco::Net::ConnectionRefusedException&) {
    return transient("connection_failed", "connection to " + uri.getHost() + " refused");
  } catch (const Poco::Net::SSLException& e) {
    return transient("tls_error", "TLS with " + uri.getHost() + " failed: " + e.displayText());
  } catch (const Poco::Exception& e) {
    return transient("network_error",
                     "request to " + uri.getHost() + " failed: " + e.displayText());
  } catch (const std::exception& e) {
    return transient("network_error",
                     "request to " + uri.getHost() + " failed: " + std::string(e.what()));
  }
}

std::string redactSecrets(std::string text, std::initializer_list<std::string> secrets) {
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
      text.replace(at, secret.size(), "[redacted]");
    }
  }
  return text;
}

}  // namespace b24es
