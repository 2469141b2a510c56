#include "command_environment.h"

#include <Poco/Exception.h>

#include "logging.h"

namespace b24es {

int prepareCommand(const CommandLine& command, CommandEnvironment& env, std::ostream& err) {
  try {
    env.settings =
        loadSettings(*layerConfiguration(command.configFile, knownEnvironment(), command.flags));
    configureLogging(env.settings.log);  // log.* as in serve (the timer shares its config)
  } catch (const Poco::Exception& e) {
    err << "configuration: " << e.displayText() << std::endl;
    return kExitUsage;
  }
  // A cron job pointed at the wrong path must say so, not create an empty database and report
  // that nothing was due.
  if (databaseMissing(env.settings)) {
    err << "database " << env.settings.db.path
        << " does not exist (check db.path; `serve` or `migrate` creates it)" << std::endl;
    return kExitFailure;
  }
  try {
    env.storage = openStorage(env.settings, env.clock);
    // A cron job that runs right after an upgrade finds the columns it needs.
    MigrationResult migrated = env.storage->migrator().apply();
    if (!migrated.ok) {
      err << "migrate: " << migrated.error << std::endl;
      return kExitFailure;
    }
  } catch (const StorageError& e) {
    err << "database: " << e.what() << std::endl;
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace b24es
