// The one way a request is refused: an HTTP status and the JSON error body of SPEC §4,
// {"error":"code","message":"human sentence"}. Messages never quote tokens or secrets.
#pragma once

#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <string>

namespace Poco {
class Logger;
}

namespace b24es {

struct ApiError {
  int status = 400;     // HTTP status
  std::string code;     // stable machine word, e.g. "verification_failed"
  std::string message;  // a sentence for people; no secrets
};

// Answers the request with `error` and logs it (warnings for 4xx, errors for 5xx) with
// `context` (e.g. the member_id and event code, never a token). Adds Allow for 405 and
// Retry-After for 503 (values given by the caller in the response headers are kept).
// Closes the connection after 413 so the unread body is not parsed as the next request.
void sendError(Poco::Net::HTTPServerResponse& response, const ApiError& error, Poco::Logger& log,
               const std::string& context = {});
// The same answer without a log line, for a cause that is logged once elsewhere (a storage
// fault: the writer logs when it begins and ends, not once per refused request).
void sendError(Poco::Net::HTTPServerResponse& response, const ApiError& error);

// Sets what every answer of the server carries: the protocol version, Date, the params'
// Server header (when set) and whether the connection stays open.
void stampResponse(Poco::Net::HTTPServerResponse& response,
                   const Poco::Net::HTTPServerParams& params, const std::string& version,
                   bool keepAlive);

// Answers a request refused before any handler ran (unparsable, over a limit, ...): HTTP/1.1,
// stamped as above, closing the connection, with the JSON error body of sendError().
void sendRefusal(Poco::Net::HTTPServerResponse& response, const Poco::Net::HTTPServerParams& params,
                 const ApiError& error, Poco::Logger& log, const std::string& context);

// Writes `body` as application/json with the given status.
void sendJson(Poco::Net::HTTPServerResponse& response, Poco::Net::HTTPResponse::HTTPStatus status,
              const std::string& body);

}  // namespace b24es
