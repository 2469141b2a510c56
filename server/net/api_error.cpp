#include "api_error.h"

#include <Poco/JSON/Object.h>
#include <Poco/Logger.h>
#include <Poco/Timestamp.h>

#include <sstream>

#include "access_log.h"
#include "log_value.h"

namespace b24es {

void sendJson(Poco::Net::HTTPServerResponse& response, Poco::Net::HTTPResponse::HTTPStatus status,
              const std::string& body) {
  response.setStatusAndReason(status);
  response.setContentType("application/json");
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  response.send() << body;
}

void sendError(Poco::Net::HTTPServerResponse& response, const ApiError& error, Poco::Logger& log,
               const std::string& context) {
  std::string line = std::to_string(error.status) + " " + error.code + ": " + error.message;
  if (!context.empty()) line += " (" + context + ")";
  // Callers pass request values through logValue() (escaped and cut); this catches any that
  // still holds a control character (an exception's text quoting a request, say) without
  // changing the escaped ones.
  line = logValue(line, std::string::npos);
  // Every rejection names its client (SPEC §10); the loops put the address in the notes.
  LogFields fields;
  if (const RequestNotes* notes = notesOf(response); notes && !notes->client.empty()) {
    fields.push_back({"client", notes->client});
  }
  logWithFields(log, error.status >= 500 ? Poco::Message::PRIO_ERROR : Poco::Message::PRIO_WARNING,
                line, fields);
  sendError(response, error);
}

void sendError(Poco::Net::HTTPServerResponse& response, const ApiError& error) {
  if (RequestNotes* notes = notesOf(response)) notes->error = error.code;
  Poco::JSON::Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  body.set("error", error.code);
  body.set("message", error.message);
  std::ostringstream out;
  body.stringify(out);
  if (error.status == 503 && !response.has("Retry-After")) response.set("Retry-After", "1");
  if (error.status == 413) response.setKeepAlive(false);
  sendJson(response, static_cast<Poco::Net::HTTPResponse::HTTPStatus>(error.status), out.str());
}

void stampResponse(Poco::Net::HTTPServerResponse& response,
                   const Poco::Net::HTTPServerParams& params, const std::string& version,
                   bool keepAlive) {
  response.setDate(Poco::Timestamp());
  response.setVersion(version);
  response.setKeepAlive(keepAlive);
  const std::string& server = params.getSoftwareVersion();
  if (!server.empty()) response.set("Server", server);
}

void sendRefusal(Poco::Net::HTTPServerResponse& response, const Poco::Net::HTTPServerParams& params,
                 const ApiError& error, Poco::Logger& log, const std::string& context) {
  stampResponse(response, params, Poco::Net::HTTPMessage::HTTP_1_1, false);
  sendError(response, error, log, context);
}

}  // namespace b24es
