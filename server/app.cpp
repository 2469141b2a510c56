#include "app.h"

#include <Poco/AutoPtr.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/File.h>
#include <Poco/FormattingChannel.h>
#include <Poco/Logger.h>
#include <Poco/PatternFormatter.h>
#include <Poco/Util/HelpFormatter.h>
#include <Poco/Util/Option.h>
#include <Poco/Util/OptionSet.h>

#include <pthread.h>
#include <signal.h>

#include <iostream>

#include "clock.h"
#include "embedded_migrations.h"
#include "refresh_commands.h"
#include "rest_commands.h"
#include "service.h"
#include "settings.h"
#include "sqlite_storage.h"

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

}  // namespace

void App::initialize(Poco::Util::Application& self) {
  ServerApplication::initialize(self);
  // Log lines go to stderr, so stdout stays for what scripts read (the listening line, tokens).
  Poco::AutoPtr<Poco::PatternFormatter> format(
      new Poco::PatternFormatter("%Y-%m-%dT%H:%M:%S.%iZ %p %s: %t"));
  Poco::AutoPtr<Poco::ConsoleChannel> console(new Poco::ConsoleChannel(std::cerr));
  Poco::AutoPtr<Poco::FormattingChannel> channel(new Poco::FormattingChannel(format, console));
  Poco::Logger::setChannel("", channel);
  Poco::Logger::setLevel("", Poco::Message::PRIO_INFORMATION);
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
  options.addOption(Option("member-id", "", "refresh-tokens: only this portal").argument("ID"));
  options.addOption(Option("force", "", "refresh-tokens: every selected token regardless of age"));
  options.addOption(Option("dry-run", "", "refresh-tokens: list what would be refreshed"));
  options.addOption(Option("user-id", "", "token: this user's token").argument("N"));
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

void App::printHelp() {
  Poco::Util::HelpFormatter help(options());
  help.setCommand("b24-event-store");
  help.setUsage(
      "serve | migrate [--status] | refresh-tokens [--expiring-within SECONDS] [--member-id ID] "
      "[--force] [--dry-run] | token MEMBER_ID [--user-id N] [--refresh] | call MEMBER_ID METHOD "
      "[--user-id N] [--param KEY=VALUE]... [--json BODY] | bind [--member-id ID] [--dry-run] | "
      "fetch-offline [--member-id ID] [options]");
  help.setHeader("Receives, verifies and stores Bitrix24 REST events (see README.md).");
  help.format(std::cout);
}

int App::main(const std::vector<std::string>& args) {
  if (helpRequested_) {
    printHelp();
    return kExitOk;
  }
  if (versionRequested_) {
    std::cout << "b24-event-store " << B24ES_VERSION << std::endl;
    return kExitOk;
  }
  if (args.empty()) {
    printHelp();
    return kExitUsage;
  }
  const std::string& command = args[0];
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
  if (command == "fetch-offline") {
    return runFetchOffline({configFile_, flags_, params_, args, {}}, std::cout, std::cerr);
  }
  if (command == "bind") {
    return runBind({configFile_, flags_, params_, args, {}}, std::cout, std::cerr);
  }
  if (command == "migrate") return migrate();
  if (command == "refresh-tokens") {
    return runRefreshTokens({configFile_, flags_, params_, args, {}}, std::cout, std::cerr);
  }
  std::cerr << "unknown command: " << command << " (try --help)" << std::endl;
  return kExitUsage;
}

std::optional<Settings> App::settings() {
  try {
    return loadSettings(*layerConfiguration(configFile_, knownEnvironment(), flags_));
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
  for (int sig : {SIGINT, SIGTERM, SIGQUIT}) sigaddset(&termination, sig);
  pthread_sigmask(SIG_BLOCK, &termination, nullptr);
  SystemClock clock;
  try {
    Service service(settings, clock);
    service.start();
    std::cout << "listening ingest=" << service.ingestUrl() << " query=" << service.queryUrl()
              << std::endl;
    appLog().information("serving %s on %s%s, query API on %s", settings.db.path,
                         service.ingestUrl(), settings.ingest.path, service.queryUrl());
    waitForTerminationRequest();
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
  if (params_.count("status") && !Poco::File(settings.db.path).exists()) {
    for (const Migration& m : embeddedMigrations()) std::cout << "pending " << m.name << std::endl;
    return kExitOk;
  }
  SystemClock clock;
  try {
    auto storage = openSqliteStorage(settings.db, clock, embeddedMigrations());
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
