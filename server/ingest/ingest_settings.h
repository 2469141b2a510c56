// The ingest listener's settings (SPEC §3 ingest.*, bitrix24.application_tokens), filled by
// loadSettings() in server/app/settings.cpp.
#pragma once

#include <Poco/Net/IPAddress.h>

#include <cstddef>
#include <string>
#include <vector>

namespace b24es {

struct IngestSettings {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free port
  std::string path = "/bitrix24/events";  // where events are POSTed
  std::size_t maxBodyBytes = 1048576;     // larger bodies get 413
  int requestTimeoutSeconds = 30;         // a whole request must arrive within this
  int threads = 2;                        // event-loop threads serving ingest connections
  std::vector<std::string> staticTokens;  // bitrix24.application_tokens (secrets)
  std::size_t maxNewPortals = 1000;       // portals ONAPPINSTALL may register per hour
  std::size_t keepRejections = 10000;     // newest rejected requests kept (0: none recorded)
  // Peers whose X-Forwarded-For / X-Real-IP name the client (SPEC §10); empty trusts none.
  std::vector<Poco::Net::IPAddress> trustedProxies{Poco::Net::IPAddress("127.0.0.1"),
                                                   Poco::Net::IPAddress("::1")};
};

}  // namespace b24es
