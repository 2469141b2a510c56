#include "rest_commands.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>
#include <Poco/NumberParser.h>

#include <set>

#include "bindings.h"
#include "command_environment.h"
#include "oauth_client.h"
#include "offline_queue.h"
#include "rest_client.h"
#include "token_refresher.h"

namespace b24es {
namespace {

const std::set<std::string> kCallOptions = {"user-id", "json"};
const std::set<std::string> kBindOptions = {"member-id", "dry-run"};

// A usage error naming the first option `allowed` does not hold, or "".
std::string foreign(const std::map<std::string, std::string>& params,
                    const std::set<std::string>& allowed) {
  for (const auto& [name, value] : params) {
    if (!allowed.count(name)) return "--" + name;
  }
  return "";
}

// The portal's REST client with on-demand refresh through the lease, as `token` does it.
struct PortalCaller {
  HttpOAuthClient oauth;
  TokenRefresher refresher;
  RestClient rest;

  explicit PortalCaller(CommandEnvironment& env)
      : oauth(env.settings.oauth, httpOAuthOptions(env.settings.refresh)),
        refresher(env.storage->tokenStore(), oauth, env.settings.oauth, env.settings.refresh,
                  env.clock),
        rest(
            env.settings.rest,
            [this](const std::string& memberId, const std::optional<std::int64_t>& userId,
                   bool force) { return refresher.accessToken(memberId, userId, force); },
            env.clock, sleepMillis) {}
};

}  // namespace

int runCall(const CommandLine& command, std::ostream& out, std::ostream& err) {
  const char* usage =
      "usage: b24-event-store call MEMBER_ID METHOD [--user-id N] [--param KEY=VALUE]... "
      "[--json BODY]";
  if (command.args.size() != 3 || command.args[1].empty() || command.args[2].empty()) {
    err << usage << std::endl;
    return kExitUsage;
  }
  if (std::string other = foreign(command.params, kCallOptions); !other.empty()) {
    err << "call does not take " << other << std::endl;
    return kExitUsage;
  }
  std::optional<std::int64_t> userId;
  if (auto it = command.params.find("user-id"); it != command.params.end()) {
    Poco::Int64 id = 0;
    if (!Poco::NumberParser::tryParse64(it->second, id) || id < 0) {
      err << "--user-id takes a user id, not '" << it->second << "'" << std::endl;
      return kExitUsage;
    }
    userId = id;
  }
  RestParams params;
  for (const std::string& param : command.restParams) {
    std::string::size_type eq = param.find('=');
    if (eq == std::string::npos || eq == 0) {
      err << "--param takes KEY=VALUE, not '" << param << "'" << std::endl;
      return kExitUsage;
    }
    params.form.emplace_back(param.substr(0, eq), param.substr(eq + 1));
  }
  if (auto it = command.params.find("json"); it != command.params.end()) {
    if (!params.form.empty()) {
      err << "--json and --param cannot be combined" << std::endl;
      return kExitUsage;
    }
    try {
      Poco::JSON::Parser parser;
      Poco::Dynamic::Var parsed = parser.parse(it->second);
      if (parsed.type() != typeid(Poco::JSON::Object::Ptr)) throw Poco::DataFormatException();
      params.json = parsed.extract<Poco::JSON::Object::Ptr>();
    } catch (const Poco::Exception&) {
      err << "--json takes a JSON object" << std::endl;
      return kExitUsage;
    }
  }

  CommandEnvironment env;
  if (int rc = prepareCommand(command, env, err); rc != kExitOk) return rc;
  const std::string& memberId = command.args[1];
  try {
    std::optional<PortalRecord> portal = env.storage->findPortal(memberId);
    if (!portal || !portal->installed()) {
      err << "error: no_portal: portal " << memberId << " is not installed" << std::endl;
      return kExitFailure;
    }
    PortalCaller caller(env);
    RestResult result = caller.rest.call(*portal, userId, command.args[2], params);
    if (!result.ok()) {
      err << "error: " << result.error << ": " << result.description << std::endl;
      return kExitFailure;
    }
    out << result.body;
    if (result.body.empty() || result.body.back() != '\n') out << "\n";
    out.flush();
    return kExitOk;
  } catch (const StorageError& e) {
    err << "database: " << e.what() << std::endl;
    return kExitFailure;
  } catch (const Poco::Exception& e) {
    err << "call: " << e.displayText() << std::endl;
    return kExitFailure;
  }
}

int runBind(const CommandLine& command, std::ostream& out, std::ostream& err) {
  if (command.args.size() != 1) {
    err << "usage: b24-event-store bind [--member-id ID] [--dry-run]" << std::endl;
    return kExitUsage;
  }
  if (std::string other = foreign(command.params, kBindOptions); !other.empty()) {
    err << "bind does not take " << other << std::endl;
    return kExitUsage;
  }
  std::optional<std::string> memberId;
  if (auto it = command.params.find("member-id"); it != command.params.end()) {
    if (it->second.empty()) {
      err << "--member-id needs a member_id" << std::endl;
      return kExitUsage;
    }
    memberId = it->second;
  }
  const bool dryRun = command.params.count("dry-run") > 0;
  CommandEnvironment env;
  if (int rc = prepareCommand(command, env, err); rc != kExitOk) return rc;
  if (!bindingsConfigured(env.settings.bitrix24)) {
    err << "configuration: bitrix24.handler_url and bitrix24.events or bitrix24.offline_events "
           "are needed to bind events"
        << std::endl;
    return kExitUsage;
  }
  try {
    PortalCaller caller(env);
    BindingSync sync(env.settings.bitrix24, caller.rest, env.storage->portalState(), env.clock);
    std::vector<PortalRecord> portals = env.storage->portalState().installedPortals(memberId);
    std::size_t bound = 0, unbound = 0, failed = 0, failedPortals = 0;
    for (const PortalRecord& portal : portals) {
      BindingReport report = sync.sync(portal, dryRun);
      bound += report.bound;
      unbound += report.unbound;
      failed += report.failed;
      if (report.failed > 0) {
        ++failedPortals;
        err << "portal " << portal.memberId << " (" << portal.domain << "): " << report.error
            << std::endl;
      }
    }
    out << "portals=" << portals.size() << " bound=" << bound << " unbound=" << unbound
        << " failed=" << failed << std::endl;
    return failedPortals > 0 ? kExitFailure : kExitOk;
  } catch (const StorageError& e) {
    err << "database: " << e.what() << std::endl;
    return kExitFailure;
  } catch (const Poco::Exception& e) {
    err << "bind: " << e.displayText() << std::endl;
    return kExitFailure;
  }
}

int runFetchOffline(const CommandLine& command, std::ostream& out, std::ostream& err) {
  if (command.args.size() != 1) {
    err << "usage: b24-event-store fetch-offline [--member-id ID]" << std::endl;
    return kExitUsage;
  }
  if (std::string other = foreign(command.params, {"member-id"}); !other.empty()) {
    err << "fetch-offline does not take " << other << std::endl;
    return kExitUsage;
  }
  std::optional<std::string> memberId;
  if (auto it = command.params.find("member-id"); it != command.params.end()) {
    if (it->second.empty()) {
      err << "--member-id needs a member_id" << std::endl;
      return kExitUsage;
    }
    memberId = it->second;
  }
  CommandEnvironment env;
  if (int rc = prepareCommand(command, env, err); rc != kExitOk) return rc;
  if (env.settings.bitrix24.offlineEvents.empty()) {
    err << "configuration: bitrix24.offline_events is empty, so there is no offline queue to pull"
        << std::endl;
    return kExitUsage;
  }
  try {
    PortalCaller caller(env);
    OfflineQueue queue(caller.rest, env.storage->portalState(), env.clock);
    std::vector<PortalRecord> portals = env.storage->portalState().installedPortals(memberId);
    std::size_t fetched = 0, failed = 0;
    for (const PortalRecord& portal : portals) {
      OfflinePassReport report = queue.pass(portal);
      fetched += report.fetched;
      if (report.failed) {
        ++failed;
        err << "portal " << portal.memberId << " (" << portal.domain << "): " << report.error
            << std::endl;
      }
    }
    out << "portals=" << portals.size() << " fetched=" << fetched << " failed=" << failed
        << std::endl;
    return failed > 0 ? kExitFailure : kExitOk;
  } catch (const StorageError& e) {
    err << "database: " << e.what() << std::endl;
    return kExitFailure;
  } catch (const Poco::Exception& e) {
    err << "fetch-offline: " << e.displayText() << std::endl;
    return kExitFailure;
  }
}

}  // namespace b24es
