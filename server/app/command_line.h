// What every command of SPEC §2 shares: the parsed command line and the exit codes. App parses;
// the command functions (refresh_commands.h, ...) take a CommandLine and return an ExitCode.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace b24es {

// Exit codes shared by every command.
enum ExitCode { kExitOk = 0, kExitFailure = 1, kExitUsage = 2 };

// What App parsed from the command line.
struct CommandLine {
  std::string configFile;                     // --config
  std::map<std::string, std::string> flags;   // options that are configuration keys
  std::map<std::string, std::string> params;  // command options (--force, --user-id, ...)
  std::vector<std::string> args;              // the command and its arguments
  std::vector<std::string> restParams;        // call: each --param KEY=VALUE, in order
};

}  // namespace b24es
