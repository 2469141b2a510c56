// Settings of the talks with portals (SPEC §3 rest.*, bitrix24.handler_url, bitrix24.events,
// bitrix24.offline_events, offline.interval), filled by loadSettings() in
// server/app/settings.cpp.
#pragma once

#include <string>
#include <vector>

namespace b24es {

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

}  // namespace b24es
