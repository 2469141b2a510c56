#include "rest_commands.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>
#include <Poco/NumberParser.h>

#include <set>

#include "app.h"
#include "oauth_client.h"
#include "rest_client.h"
#include "token_refresher.h"

namespace b24es {
namespace {

const std::set<std::string> kCallOptions = {"user-id", "json"};

// The portal's REST client with on-demand refresh through the lease, as `token` does it.
struct PortalCaller {
  HttpOAuthClient oauth;
  TokenRefresher refresher;
  RestClient rest;

  explicit PortalCaller(CommandEnvironment& env)
      : oauth(env.settings.oauth),
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
  for (const auto& [name, value] : command.params) {
    if (!kCallOptions.count(name)) {
      err << "call does not take --" << name << std::endl;
      return kExitUsage;
    }
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

}  // namespace b24es
