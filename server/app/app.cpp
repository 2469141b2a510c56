#include "app.h"

#include <Poco/Logger.h>
#include <Poco/Util/HelpFormatter.h>
#include <Poco/Util/Option.h>
#include <Poco/Util/OptionSet.h>

#include <pthread.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <iostream>

#include "clock.h"
#include "logging.h"
#include "purge_command.h"
#include "refresh_commands.h"
#include "rest_commands.h"
#include "service.h"
#include "settings.h"

#ifndef B24ES_VERSION
#define B24ES_VERSION "0.0.0"
#endif

namespace b24es {
namespace {

using Poco::Util::Option;

// Options that are configuration keys, so that they layer over environment and file.
const std::map<std::string, std::string>& optionKeys() {
  static const std::map<std::string, std::string> keys = {
      {"db", "db.path"},
      {"listen", "ingest.listen"},
      {"query-listen", "query.listen"},
  };
  return keys;
}

Poco::Logger& appLog() { return Poco::Logger::get("b24es"); }

// Each command's own options (SPEC §2: `COMMAND --help` lists these and only these), by the
// names defineOptions() gives them, and its usage line.
struct CommandHelp {
  const char* usage;
  std::vector<std::string> options;
};
const std::map<std::string, CommandHelp>& commandHelp() {
  static const std::map<std::string, CommandHelp> help = {
      {"serve",
       {"serve [--config FILE] [--db PATH] [--listen HOST:PORT] [--query-listen HOST:PORT]",
        {"config", "db", "listen", "query-listen"}}},
      {"migrate", {"migrate [--status] [--config FILE] [--db PATH]", {"config", "db", "status"}}},
      {"refresh-tokens",
       {"refresh-tokens [--expiring-within SECONDS] [--member-id ID] [--force] [--dry-run] "
        "[--config FILE] [--db PATH]",
        {"config", "db", "expiring-within", "member-id", "force", "dry-run"}}},
      {"token",
       {"token MEMBER_ID [--user-id N] [--refresh] [--config FILE] [--db PATH]",
        {"config", "db", "user-id", "refresh"}}},
      {"call",
       {"call MEMBER_ID METHOD [--user-id N] [--param KEY=VALUE]... [--json BODY] "
        "[--config FILE] [--db PATH]",
        {"config", "db", "user-id", "param", "json"}}},
      {"bind",
       {"bind [--member-id ID] [--dry-run] [--config FILE] [--db PATH]",
        {"config", "db", "member-id", "dry-run"}}},
      {"fetch-offline",
       {"fetch-offline [--member-id ID] [--config FILE] [--db PATH]",
        {"config", "db", "member-id"}}},
  };
  return help;
}

// Waits for SIGINT, SIGTERM or SIGQUIT, which `serve` blocked in every thread. SIGHUP reopens
// log.file (logrotate) and SIGUSR1 is logged and ignored: neither may stop the server, and
// ServerApplication::waitForTerminationRequest() leaves them to their default action (exit).
void waitForStop() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1}) sigaddset(&signals, sig);
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      appLog().information(reopenLogFile() ? "SIGHUP: log file reopened"
                                           : "SIGHUP: no log.file to reopen (logging to stderr)");
    } else if (sig == SIGUSR1) {
      appLog().information("SIGUSR1 ignored");
    } else {
      return;
    }
  }
}

}  // namespace

void App::initialize(Poco::Util::Application& self) {
  ServerApplication::initialize(self);
  // The defaults until a command has read its configuration's log.* keys.
  configureLogging(LogSettings{});
}

void App::defineOptions(Poco::Util::OptionSet& options) {
  ServerApplication::defineOptions(options);
  options.addOption(Option("help", "h", "show this help"));
  options.addOption(Option("version", "", "print the version"));
  options.addOption(Option("config", "", "properties file (SPEC §3)").argument("FILE"));
  options.addOption(Option("db", "", "SQLite database file").argument("PATH"));
  options.addOption(Option("listen", "", "serve: ingest listener").argument("HOST:PORT"));
  options.addOption(Option("query-listen", "", "serve: query API listener").argument("HOST:PORT"));
  options.addOption(Option("status", "", "migrate: list applied and pending migrations"));
  options.addOption(
      Option("expiring-within", "", "refresh-tokens: also access tokens expiring that soon")
          .argument("SECONDS"));
  options.addOption(
      Option("member-id", "", "refresh-tokens, purge, bind, fetch-offline: only this portal")
          .argument("ID"));
  options.addOption(
      Option("before", "", "purge: events received before TIME (unix seconds or ISO 8601)")
          .argument("TIME"));
  options.addOption(Option("force", "", "refresh-tokens: every selected token regardless of age"));
  options.addOption(
      Option("dry-run", "", "refresh-tokens, purge, bind: say what would be done, do nothing"));
  options.addOption(Option("user-id", "", "token, call: this user's token").argument("N"));
  options.addOption(Option("refresh", "", "token: refresh first (after expired_token)"));
  options.addOption(Option("param", "", "call: a parameter of the method (repeatable)")
                        .argument("KEY=VALUE")
                        .repeatable(true));
  options.addOption(Option("json", "", "call: the parameters as one JSON object").argument("BODY"));
}

void App::handleOption(const std::string& name, const std::string& value) {
  ServerApplication::handleOption(name, value);
  if (name == "help") {
    helpRequested_ = true;
    stopOptionsProcessing();
  } else if (name == "version") {
    versionRequested_ = true;
  } else if (name == "config") {
    configFile_ = value;
  } else if (name == "param") {
    restParams_.push_back(value);
  } else if (auto it = optionKeys().find(name); it != optionKeys().end()) {
    flags_[it->second] = value;
  } else {
    params_[name] = value;
  }
}

void App::printHelp(const std::string& command) {
  if (auto it = commandHelp().find(command); it != commandHelp().end()) {
    Poco::Util::OptionSet own;
    for (const std::string& name : it->second.options) own.addOption(options().getOption(name));
    own.addOption(options().getOption("help"));
    Poco::Util::HelpFormatter help(own);
    help.setCommand("b24-event-store");
    help.setUsage(it->second.usage);
    help.setHeader("Options of " + command + " (b24-event-store --help lists the commands):");
    help.format(std::cout);
    return;
  }
  Poco::Util::HelpFormatter help(options());
  help.setCommand("b24-event-store");
  help.setUsage(
      "serve | migrate [--status] | refresh-tokens [--expiring-within SECONDS] [--member-id ID] "
      "[--force] [--dry-run] | token MEMBER_ID [--user-id N] [--refresh] | "
      "call MEMBER_ID METHOD [--user-id N] [--param KEY=VALUE]... [--json BODY] | "
      "bind [--member-id ID] [--dry-run] | fetch-offline [--member-id ID] | "
      "purge (--member-id ID | --before TIME) [--dry-run] [options]");
  help.setHeader("Receives, verifies and stores Bitrix24 REST events (see README.md).");
  help.format(std::cout);
}

int App::main(const std::vector<std::string>& args) {
  if (helpRequested_) {
    // `COMMAND --help`: POCO stops reading options at --help and passes the command on.
    printHelp(args.empty() ? std::string() : args[0]);
    return kExitOk;
  }
  if (versionRequested_) {
    std::cout << "b24-event-store " << B24ES_VERSION << std::endl;
    return kExitOk;
  }
  if (args.empty()) {
    printHelp({});
    return kExitUsage;
  }
  const std::string& command = args[0];
  // Only `call` reads --param: elsewhere it would be dropped without a word.
  if (!restParams_.empty() && command != "call") {
    std::cerr << command << " does not take --param (try " << command << " --help)" << std::endl;
    return kExitUsage;
  }
  if (command == "token") {
    return runToken({configFile_, flags_, params_, args, {}}, std::cout, std::cerr);
  }
  if (command == "call") {
    return runCall({configFile_, flags_, params_, args, restParams_}, std::cout, std::cerr);
  }
  if (args.size() > 1) {
    std::cerr << "unexpected argument: " << args[1] << std::endl;
    return kExitUsage;
  }
  if (command == "serve") return serve();
  if (command == "migrate") return migrate();
  if (command == "purge")
    return runPurge({configFile_, flags_, params_, args, {}}, std::cout, std::cerr);
  if (command == "refresh-tokens") {
    return runRefreshTokens({configFile_, flags_, params_, args, {}}, std::cout, std::cerr);
  }
  if (command == "bind")
    return runBind({configFile_, flags_, params_, args, {}}, std::cout, std::cerr);
  if (command == "fetch-offline") {
    return runFetchOffline({configFile_, flags_, params_, args, {}}, std::cout, std::cerr);
  }
  std::cerr << "unknown command: " << command << " (try --help)" << std::endl;
  return kExitUsage;
}

std::optional<Settings> App::settings() {
  try {
    Settings loaded = loadSettings(*layerConfiguration(configFile_, knownEnvironment(), flags_));
    configureLogging(loaded.log);
    return loaded;
  } catch (const Poco::Exception& e) {
    appLog().error("configuration: %s", e.displayText());
    return std::nullopt;
  }
}

int App::serve() {
  std::optional<Settings> loaded = settings();
  if (!loaded) return kExitUsage;
  const Settings& settings = *loaded;
  // Block the termination signals before any thread starts, so that every thread inherits the
  // mask and waitForTerminationRequest()'s sigwait receives them; otherwise a signal delivered
  // to a worker thread kills the process with its default action.
  sigset_t termination;
  sigemptyset(&termination);
  for (int sig : {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1}) sigaddset(&termination, sig);
  pthread_sigmask(SIG_BLOCK, &termination, nullptr);
  SystemClock clock;
  try {
    Service service(settings, clock);
    service.start();
    std::cout << "listening ingest=" << service.ingestUrl() << " query=" << service.queryUrl()
              << std::endl;
    appLog().information("serving %s on %s%s, query API on %s", describeDatabase(settings),
                         service.ingestUrl(), settings.ingest.path, service.queryUrl());
    // Type=notify (b24-event-store.service): both listeners are bound and serving. Without
    // NOTIFY_SOCKET (not under systemd) sd_notify does nothing.
    sd_notify(0, "READY=1");
    waitForStop();
    sd_notify(0, "STOPPING=1");
    appLog().information("stopping: finishing in-flight requests");
    service.stop();
    appLog().information("stopped");
    return kExitOk;
  } catch (const ServiceError& e) {
    appLog().error("cannot serve: %s", std::string(e.what()));
    return kExitFailure;
  }
}

int App::migrate() {
  std::optional<Settings> loaded = settings();
  if (!loaded) return kExitUsage;
  const Settings& settings = *loaded;
  // --status only reads: a database that does not exist has every migration pending, and is
  // not created by asking.
  if (params_.count("status") && databaseMissing(settings)) {
    for (const Migration& m : storageMigrations(settings))
      std::cout << "pending " << m.name << std::endl;
    return kExitOk;
  }
  SystemClock clock;
  try {
    auto storage = openStorage(settings, clock);
    if (params_.count("status")) {
      bool problem = false;
      for (const MigrationState& m : storage->migrator().status()) {
        std::string state = !m.appliedAt ? "pending" : (m.changed ? "CHANGED" : "applied");
        problem = problem || m.changed;
        std::cout << state << " " << m.name << std::endl;
      }
      return problem ? kExitFailure : kExitOk;
    }
    MigrationResult result = storage->migrator().apply();
    for (const std::string& name : result.applied) std::cout << "applied " << name << std::endl;
    if (!result.ok) {
      appLog().error("migrate: %s", result.error);
      return kExitFailure;
    }
    std::cout << "schema version " << result.schemaVersion << std::endl;
    return kExitOk;
  } catch (const StorageError& e) {
    appLog().error("migrate: %s", std::string(e.what()));
    return kExitFailure;
  }
}

}  // namespace b24es
