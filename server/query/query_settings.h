// The query listener's settings (SPEC §3 query.*), filled by loadSettings() in
// server/app/settings.cpp.
#pragma once

#include <string>

namespace b24es {

struct QuerySettings {
  std::string listen = "127.0.0.1:8081";  // HOST:PORT of the read-only API
  std::string token;                      // bearer token required when set (secret)
};

}  // namespace b24es
