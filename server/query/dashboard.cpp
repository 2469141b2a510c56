#include "dashboard.h"

namespace b24es {

const EmbeddedAsset* findAsset(const std::string& path) {
  for (const EmbeddedAsset& asset : embeddedAssets()) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace b24es
