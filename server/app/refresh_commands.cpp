#include "refresh_commands.h"

#include <Poco/Exception.h>
#include <Poco/NumberParser.h>

#include <set>

#include "clock.h"
#include "command_environment.h"
#include "logging.h"
#include "oauth_client.h"
#include "settings.h"
#include "token_refresher.h"

namespace b24es {
namespace {

// The options of the two commands; each rejects the other's.
const std::set<std::string> kRefreshTokensOptions = {"expiring-within", "member-id", "force",
                                                     "dry-run"};
const std::set<std::string> kTokenOptions = {"user-id", "refresh"};

// A usage error naming the first option that belongs to another command, or "".
std::string foreignOption(const std::map<std::string, std::string>& params,
                          const std::set<std::string>& allowed) {
  for (const auto& [name, value] : params) {
    bool ours = kRefreshTokensOptions.count(name) || kTokenOptions.count(name) || name == "status";
    if (ours && !allowed.count(name)) return "--" + name;
  }
  return "";
}

bool parseNonNegative(const std::string& text, std::int64_t& value) {
  Poco::Int64 n = 0;
  if (!Poco::NumberParser::tryParse64(text, n) || n < 0) return false;
  value = n;
  return true;
}

}  // namespace

int runRefreshTokens(const CommandLine& command, std::ostream& out, std::ostream& err) {
  if (command.args.size() != 1) {
    err << "refresh-tokens takes no arguments (try --help)" << std::endl;
    return kExitUsage;
  }
  if (std::string foreign = foreignOption(command.params, kRefreshTokensOptions);
      !foreign.empty()) {
    err << "refresh-tokens does not take " << foreign << std::endl;
    return kExitUsage;
  }
  RefreshSelection selection;
  const auto& params = command.params;
  if (auto it = params.find("expiring-within"); it != params.end()) {
    std::int64_t seconds = 0;
    if (!parseNonNegative(it->second, seconds)) {
      err << "--expiring-within takes a number of seconds, not '" << it->second << "'" << std::endl;
      return kExitUsage;
    }
    selection.expiringWithinSeconds = seconds;
  }
  if (auto it = params.find("member-id"); it != params.end()) {
    if (it->second.empty()) {
      err << "--member-id needs a member_id" << std::endl;
      return kExitUsage;
    }
    selection.memberId = it->second;
  }
  selection.force = params.count("force") > 0;
  const bool dryRun = params.count("dry-run") > 0;

  CommandEnvironment env;
  if (int rc = prepareCommand(command, env, err); rc != kExitOk) return rc;
  const Settings& settings = env.settings;
  if (!dryRun && (settings.oauth.clientId.empty() || settings.oauth.clientSecret.empty())) {
    err << "configuration: bitrix24.client_id and bitrix24.client_secret (B24_CLIENT_ID, "
           "B24_CLIENT_SECRET) are needed to refresh tokens"
        << std::endl;
    return kExitUsage;
  }
  try {
    HttpOAuthClient client(settings.oauth, httpOAuthOptions(settings.refresh));
    TokenRefresher refresher(env.storage->tokenStore(), client, settings.oauth, settings.refresh,
                             env.clock);
    PassReport report = refresher.runPass(selection, dryRun);
    if (dryRun) {
      for (const DueToken& t : report.dueTokens) {
        out << "would refresh portal " << t.memberId << " (" << t.domain << ") user " << t.userId
            << ": " << dueReasonName(t.reason) << "\n";
      }
    }
    out << report.summary(dryRun) << std::endl;
    return report.failed() > 0 ? kExitFailure : kExitOk;
  } catch (const StorageError& e) {
    err << "database: " << e.what() << std::endl;
    return kExitFailure;
  } catch (const Poco::Exception& e) {
    err << "refresh-tokens: " << e.displayText() << std::endl;
    return kExitFailure;
  }
}

int runToken(const CommandLine& command, std::ostream& out, std::ostream& err) {
  if (command.args.size() != 2 || command.args[1].empty()) {
    err << "usage: b24-event-store token MEMBER_ID [--user-id N] [--refresh]" << std::endl;
    return kExitUsage;
  }
  if (std::string foreign = foreignOption(command.params, kTokenOptions); !foreign.empty()) {
    err << "token does not take " << foreign << std::endl;
    return kExitUsage;
  }
  std::optional<std::int64_t> userId;
  if (auto it = command.params.find("user-id"); it != command.params.end()) {
    std::int64_t id = 0;
    if (!parseNonNegative(it->second, id)) {
      err << "--user-id takes a user id, not '" << it->second << "'" << std::endl;
      return kExitUsage;
    }
    userId = id;
  }
  const bool forceRefresh = command.params.count("refresh") > 0;

  CommandEnvironment env;
  if (int rc = prepareCommand(command, env, err); rc != kExitOk) return rc;
  try {
    HttpOAuthClient client(env.settings.oauth, httpOAuthOptions(env.settings.refresh));
    TokenRefresher refresher(env.storage->tokenStore(), client, env.settings.oauth,
                             env.settings.refresh, env.clock);
    AccessTokenResult result = refresher.accessToken(command.args[1], userId, forceRefresh);
    if (!result.accessToken) {
      err << "token: " << result.error << std::endl;
      return result.configError ? kExitUsage : kExitFailure;
    }
    out << *result.accessToken << std::endl;
    return kExitOk;
  } catch (const StorageError& e) {
    err << "database: " << e.what() << std::endl;
    return kExitFailure;
  } catch (const Poco::Exception& e) {
    err << "token: " << e.displayText() << std::endl;
    return kExitFailure;
  }
}

}  // namespace b24es
