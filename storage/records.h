// Plain values that cross the storage interfaces: what a verified event asks the store to
// write, and what the store knows about a portal. No behaviour, no SQL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace b24es {

// A row of `portals` (SPEC §7). application_token is a secret: never log or serve it.
struct PortalRecord {
  std::string memberId;
  std::string domain;
  std::string clientEndpoint;
  std::string serverEndpoint;
  std::optional<std::string> applicationToken;  // learned at install; absent when created
                                                // from a static token or after uninstall
  std::string status;                           // L, F, D, T, P or S
  std::string scope;
  std::optional<std::int64_t> installedAt;  // unix seconds
  std::optional<std::int64_t> uninstalledAt;
  std::int64_t updatedAt = 0;

  bool installed() const { return installedAt.has_value() && !uninstalledAt.has_value(); }
};

// An OAuth token pair carried by an event (auth.* or data.BOT.<id>.*). Secrets.
struct TokenGrant {
  std::int64_t userId = 0;
  std::string accessToken;
  std::optional<std::string> refreshToken;  // ordinary events carry none
  std::optional<std::int64_t> expiresAt;    // unix seconds
  std::string scope;
};

// What kind of event this is, as far as the store is concerned.
enum class EventKind { kInstall, kUninstall, kOther };

// A decoded event, checked for shape, waiting to be verified and written.
// data_json is already redacted: it holds no token values.
struct IncomingEvent {
  EventKind kind = EventKind::kOther;
  std::string event;  // upper-cased event code
  std::string memberId;
  std::string domain;
  std::string clientEndpoint;
  std::string serverEndpoint;
  std::string status;
  std::string scope;
  std::string applicationToken;  // as presented by the sender; secret, may be empty
  std::string authAccessToken;   // auth[access_token] as presented; secret, may be empty
  std::optional<std::int64_t> eventHandlerId;
  std::optional<std::string> eventId;
  std::optional<std::int64_t> ts;
  std::optional<std::int64_t> userId;
  std::optional<std::int64_t> entityId;
  std::optional<std::int64_t> entityTypeId;
  std::string dataJson = "{}";
  std::vector<TokenGrant> tokens;  // auth tokens first, then bot tokens
  bool clean = false;              // an ONAPPUNINSTALL with data.CLEAN = 1 (delete the data)
  // What app.info at the portal's stored client_endpoint confirmed before the event reached the
  // store (SPEC §4 items 4 and 5); set only by the lifecycle verifier, never from a request.
  enum class Confirmed {
    kNothing,
    kRotation,  // the new applicationToken replaces `replacedToken`
    kPayment,   // an event without application token; dataJson holds data.APP_INFO
  };
  Confirmed confirmed = Confirmed::kNothing;
  std::string replacedToken;  // kRotation: the stored token when app.info answered; secret
};

// The verifier's decision for one event, taken inside the write transaction so that an install
// and an event of the same portal cannot race each other.
struct Verdict {
  enum class Action {
    kReject,                // store nothing
    kInstall,               // register/refresh the portal, store install tokens and the event
    kStore,                 // store the event and update tokens
    kStoreAndCreatePortal,  // verified by a static token for a portal with no record
    kUninstall,             // mark uninstalled, delete tokens, store the event
    kRotate,                // replace the portal's application token, store the event
  };
  Action action = Action::kReject;
  std::string reason;  // for rejections: a human sentence without secrets
};

// The result of writing one event.
struct IngestOutcome {
  enum class Status {
    kStored,
    kRejected,
    kUnavailable,
    kLimited,  // an install of a new portal over SinkSettings::maxNewPortalsPerHour
    // The portal that had to confirm the event (app.info) did not answer; nothing written.
    kUnreachable,
  };
  Status status = Status::kUnavailable;
  std::int64_t id = 0;                 // events.id when stored
  std::string reason;                  // why rejected or unavailable; no secrets
  std::int64_t retryAfterSeconds = 0;  // kLimited: when the hour's window has room again
};

}  // namespace b24es
