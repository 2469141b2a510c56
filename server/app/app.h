// The command line of b24-event-store (SPEC §2): a POCO ServerApplication that parses options,
// layers configuration and runs one command. Lifecycle only; the work is in Service and the
// storage interfaces.
#pragma once

#include <Poco/Util/ServerApplication.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "command_line.h"
#include "settings.h"

namespace b24es {

class App final : public Poco::Util::ServerApplication {
 protected:
  void initialize(Poco::Util::Application& self) override;
  void defineOptions(Poco::Util::OptionSet& options) override;
  void handleOption(const std::string& name, const std::string& value) override;
  int main(const std::vector<std::string>& args) override;

 private:
  // The layered configuration (SPEC §2), or nullopt after logging why it is invalid.
  std::optional<Settings> settings();
  int serve();
  int migrate();
  // The global help, or COMMAND's own (its options only) when `command` names one.
  void printHelp(const std::string& command);

  std::string configFile_;                     // --config
  std::map<std::string, std::string> flags_;   // options that set configuration keys
  std::map<std::string, std::string> params_;  // command options (--status, ...)
  std::vector<std::string> restParams_;        // call: each --param, in order
  bool helpRequested_ = false;
  bool versionRequested_ = false;
};

}  // namespace b24es
