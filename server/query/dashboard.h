// The dashboard page of SPEC §5.2 and its assets (HTML, CSS, JavaScript, Debian's Chart.js),
// embedded into the binary at build time (cmake/embed_assets.cmake) and served by the query
// listener without the bearer token: the page holds no secret and asks for the token itself.
#pragma once

#include <string>
#include <vector>

namespace b24es {

struct EmbeddedAsset {
  std::string path;         // "/", "/assets/dashboard.js", ...
  std::string contentType;  // with charset for text
  std::string body;
};

// Every embedded asset; built once, thread-safe.
const std::vector<EmbeddedAsset>& embeddedAssets();

// The asset served at `path`, or nullptr.
const EmbeddedAsset* findAsset(const std::string& path);

}  // namespace b24es
