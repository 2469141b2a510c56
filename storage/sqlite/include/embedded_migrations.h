// The migrations/*.sql files compiled into the binary (generated at build time by
// cmake/embed_migrations.cmake), in version order.
#pragma once

#include <vector>

#include "storage.h"

namespace b24es {

// Thread-safe; the list lives for the whole program.
const std::vector<Migration>& embeddedMigrations();

}  // namespace b24es
