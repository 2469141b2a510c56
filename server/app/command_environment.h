// What every command that works on an existing database needs (refresh-tokens, token, call,
// bind, fetch-offline): the settings, a clock and the storage, opened and migrated.
#pragma once

#include <memory>
#include <ostream>

#include "clock.h"
#include "command_line.h"
#include "settings.h"
#include "storage.h"

namespace b24es {

struct CommandEnvironment {
  Settings settings;
  SystemClock clock;
  std::unique_ptr<Storage> storage;
};

// Loads the settings (and configures logging from them), opens and migrates the database into
// `env`. Returns kExitOk, or another exit code after writing why to `err` (2: configuration,
// 1: no database at db.path, or it cannot be opened or migrated).
int prepareCommand(const CommandLine& command, CommandEnvironment& env, std::ostream& err);

}  // namespace b24es
