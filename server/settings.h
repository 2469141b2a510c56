// All configuration of b24-event-store (SPEC §3) in one struct per component, with defaults
// and one line per field, filled from a POCO configuration in exactly one place.
#pragma once

#include <Poco/AutoPtr.h>
#include <Poco/Util/AbstractConfiguration.h>
#include <Poco/Util/LayeredConfiguration.h>

#include <map>
#include <string>
#include <vector>

#include "sqlite_storage.h"

namespace b24es {

struct IngestSettings {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free port
  std::string path = "/bitrix24/events";  // where events are POSTed
  std::size_t maxBodyBytes = 1048576;     // larger bodies get 413
  int requestTimeoutSeconds = 30;         // a whole request must arrive within this
  int threads = 2;                        // event-loop threads serving ingest connections
  std::vector<std::string> staticTokens;  // bitrix24.application_tokens (secrets)
};

struct QuerySettings {
  std::string listen = "127.0.0.1:8081";  // HOST:PORT of the read-only API
  std::string token;                      // bearer token required when set (secret)
};

struct OAuthSettings {
  std::string clientId;      // bitrix24.client_id
  std::string clientSecret;  // bitrix24.client_secret (secret)
  std::vector<std::string> allowedHosts{"oauth.bitrix.info", "oauth.bitrix24.tech"};
  bool allowHttp = false;  // permit http:// token endpoints (tests, local fakes)
};

struct RefreshSettings {
  int intervalSeconds = 3600;  // keep-alive pass period in serve; 0 disables
  int maxAgeDays = 30;         // refresh tokens older than this are renewed
  double rate = 2;             // most token requests per second
};

// REST calls to portals (SPEC §8.1).
struct RestSettings {
  std::vector<std::string> allowedHosts;  // client_endpoint hosts (exact or *.suffix); empty:
                                          // any host whose every address is public
  bool allowHttp = false;                 // permit http:// endpoints (tests, local fakes)
  double rate = 2;                        // calls per second to one portal
  double burst = 10;                      // calls one portal's bucket holds
  int timeoutSeconds = 10;                // one call, connect to last byte
};

// Event bindings and the offline queue (SPEC §8.2, §8.3).
struct Bitrix24Settings {
  std::string handlerUrl;                  // bitrix24.handler_url: where Bitrix24 posts events
  std::vector<std::string> events;         // bound as online events, upper-cased
  std::vector<std::string> offlineEvents;  // bound offline and pulled, upper-cased
  int offlineIntervalSeconds = 300;        // offline.interval; 0: no timer in serve
};

struct Settings {
  SqliteSettings db;
  IngestSettings ingest;
  QuerySettings query;
  OAuthSettings oauth;
  RefreshSettings refresh;
  RestSettings rest;
  Bitrix24Settings bitrix24;
};

// Reads every key of SPEC §3 from `config`, defaults for the missing ones. Throws
// Poco::SyntaxException (with the key's name, never its value) for a malformed number or bool.
Settings loadSettings(const Poco::Util::AbstractConfiguration& config);

// Layers the sources with SPEC §2's precedence: `flags` (command-line options, by config key)
// over the environment variables of SPEC §3 found in `environment` over the properties file
// `configFile` (none when empty). Throws Poco::FileNotFoundException for a missing file.
Poco::AutoPtr<Poco::Util::LayeredConfiguration> layerConfiguration(
    const std::string& configFile, const std::map<std::string, std::string>& environment,
    const std::map<std::string, std::string>& flags);

// The process environment restricted to the variables SPEC §3 names.
std::map<std::string, std::string> knownEnvironment();

// Splits "host:port" (or "[v6]:port"). Throws Poco::InvalidArgumentException.
std::pair<std::string, unsigned short> splitHostPort(const std::string& listen);

}  // namespace b24es
