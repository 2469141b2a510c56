// The token commands of SPEC §2: `refresh-tokens` (one keep-alive pass, for cron and systemd
// timers) and `token MEMBER_ID` (an access token for scripts). App dispatches to them; the work
// is in TokenRefresher.
#pragma once

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "clock.h"
#include "settings.h"
#include "storage.h"

namespace b24es {

// What App parsed from the command line.
struct CommandLine {
  std::string configFile;                     // --config
  std::map<std::string, std::string> flags;   // options that are configuration keys
  std::map<std::string, std::string> params;  // command options (--force, --user-id, ...)
  std::vector<std::string> args;              // the command and its arguments
  std::vector<std::string> restParams;        // call: each --param KEY=VALUE, in order
};

// Settings, storage and migrations as every command that works on the database needs them.
struct CommandEnvironment {
  Settings settings;
  SystemClock clock;
  std::unique_ptr<Storage> storage;
};

// Loads the settings and opens and migrates an existing database into `env`. Returns kExitOk,
// or another exit code after writing why to `err` (2: configuration, 1: no or bad database).
int prepareCommand(const CommandLine& command, CommandEnvironment& env, std::ostream& err);

// `refresh-tokens [--expiring-within SECONDS] [--member-id ID] [--force] [--dry-run]`: prints
// the tokens a dry run would refresh, then exactly one summary line on `out`; logs to stderr.
// Returns 0 when every attempted refresh succeeded, 1 when any failed or the database failed
// (or does not exist),
// 2 on a usage or configuration error (bad option value, missing bitrix24.client_id or
// client_secret unless --dry-run).
int runRefreshTokens(const CommandLine& command, std::ostream& out, std::ostream& err);

// `token MEMBER_ID [--user-id N] [--refresh]`: prints only the access token on `out`. Returns 1
// with a sentence on `err` when no valid token can be had, 2 on a usage or configuration error
// (a refresh is needed and the credentials are not configured).
int runToken(const CommandLine& command, std::ostream& out, std::ostream& err);

}  // namespace b24es
