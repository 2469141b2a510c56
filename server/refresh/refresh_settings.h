// Token refresh settings (SPEC §3 bitrix24.client_*, oauth.*, refresh.*), filled by
// loadSettings() in server/app/settings.cpp.
#pragma once

#include <string>
#include <vector>

namespace b24es {

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
  int timeoutSeconds = 20;     // one token request, from connect to its last byte
};

}  // namespace b24es
