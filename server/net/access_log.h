// The access log and the client address (SPEC §10). Kept apart from the connection loops, which
// call formatAccess()/logAccess() once an answer is queued and resolveClient() once a request's
// headers are parsed; every answer carries RequestNotes so that rejections name the client.
#pragma once

#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/SocketAddress.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "logging.h"

namespace b24es {

// What one answered request was, for its access-log line.
struct AccessRecord {
  std::string listener;    // "ingest" or "query"
  std::string client;      // resolveClient()'s address
  std::string method;      // as the request said it (escaped when logged)
  std::string path;        // the request target without its query string
  int status = 0;          // the answer's status code
  std::int64_t bytes = 0;  // body bytes of the answer (0 for HEAD)
  double durationMs = 0;   // from the request's headers being read to the answer being queued
  std::string memberId;    // ingest: the member_id the request claimed, when it got that far
  std::string event;       // ingest: the event code it claimed
  std::optional<std::int64_t> storedId;  // ingest: the id it was stored under
};

// The fields of the access-log line of `record`, values made safe with logValue().
LogFields accessFields(const AccessRecord& record);

// Logs `record` to b24es.access at information level (off unless log.access). Thread-safe.
void logAccess(const AccessRecord& record);

// True when access lines are logged: callers skip gathering the record otherwise.
bool accessLogOn();

// The client address of a request from `peer`: when the peer's address is in `trusted`, the
// last address of X-Forwarded-For, else X-Real-IP, else the peer's; otherwise the peer's.
// `request` may be null (its headers were not readable). Never throws.
std::string resolveClient(const Poco::Net::SocketAddress& peer,
                          const Poco::Net::HTTPRequest* request,
                          const std::vector<Poco::Net::IPAddress>& trusted);

// Parses ingest.trusted_proxies' addresses. Throws Poco::SyntaxException naming a bad one.
std::vector<Poco::Net::IPAddress> parseTrustedProxies(const std::vector<std::string>& addresses);

// What a handler tells the loop about its request: written by the handler, read by the loop
// for the access log and by sendError() for the rejection's log line. The loops' responses
// inherit it; one response and its notes belong to one request on one thread at a time.
struct RequestNotes {
  std::string client;  // set by the loop: resolveClient()
  std::string memberId;
  std::string event;
  std::string domain;  // ingest: the domain the request claimed (for the rejection record)
  std::optional<std::int64_t> storedId;
  std::string error;  // set by sendError(): the error code of the answer
};

// Told of every 4xx answer a listener queues (SPEC §5: the ingest listener records them in
// `rejections`), with its status and the answer's notes. Called on the connection's loop
// thread, once the answer is queued: it must be quick, must not block and must not throw.
using RejectionObserver = std::function<void(int status, const RequestNotes& notes)>;

// The notes of `response`, or null when the server gives none (a plain POCO server).
RequestNotes* notesOf(Poco::Net::HTTPServerResponse& response);

}  // namespace b24es
