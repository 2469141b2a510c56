// The query listener's settings (SPEC §3 query.*), filled by loadSettings() in
// server/app/settings.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace b24es {

struct QuerySettings {
  std::string listen = "127.0.0.1:8081";  // HOST:PORT of the read-only API
  std::string token;                      // bearer token required when set (secret)
  std::size_t maxStreams = 256;           // query.max_streams: open event streams at most
  // A stream sent nothing for this long gets a keep-alive comment (SPEC §5.1: at most 15 s; not
  // a configuration key, tests shorten it).
  std::chrono::milliseconds streamKeepAlive{15000};
};

}  // namespace b24es
