#include "purge_command.h"

#include <Poco/Exception.h>

#include "clock.h"
#include "query_params.h"
#include "settings.h"

namespace b24es {

int runPurge(const CommandLine& command, std::ostream& out, std::ostream& err) {
  for (const auto& param : command.params) {
    if (param.first != "member-id" && param.first != "before" && param.first != "dry-run") {
      err << "purge takes --member-id ID or --before TIME, and --dry-run; not --" << param.first
          << std::endl;
      return kExitUsage;
    }
  }
  auto member = command.params.find("member-id");
  auto before = command.params.find("before");
  if ((member == command.params.end()) == (before == command.params.end())) {
    err << "purge needs exactly one of --member-id ID and --before TIME" << std::endl;
    return kExitUsage;
  }
  PurgeRequest request;
  request.dryRun = command.params.count("dry-run") > 0;
  if (member != command.params.end()) {
    if (member->second.empty()) {
      err << "--member-id needs a member_id" << std::endl;
      return kExitUsage;
    }
    request.memberId = member->second;
  } else {
    std::optional<std::int64_t> seconds = parseTime(before->second);
    if (!seconds) {
      err << "--before must be unix seconds or an ISO 8601 time such as 2026-01-01T00:00:00Z"
          << std::endl;
      return kExitUsage;
    }
    request.receivedBefore = *seconds * 1000;
  }
  Settings settings;
  try {
    settings =
        loadSettings(*layerConfiguration(command.configFile, knownEnvironment(), command.flags));
  } catch (const Poco::Exception& e) {
    err << "configuration: " << e.displayText() << std::endl;
    return kExitUsage;
  }
  if (databaseMissing(settings)) {
    err << "database " << settings.db.path << " does not exist (check db.path)" << std::endl;
    return kExitFailure;
  }
  SystemClock clock;
  try {
    auto storage = openStorage(settings, clock);
    MigrationResult migrated = storage->migrator().apply();
    if (!migrated.ok) {
      err << "migrate: " << migrated.error << std::endl;
      return kExitFailure;
    }
    // The sink stores nothing here: its verifier refuses every event. Its purge batches are
    // the ones `serve` runs, so the counters stay exact the same way.
    auto sink = storage->openEventSink(
        [](const IncomingEvent&, const std::optional<PortalRecord>&) {
          return Verdict{Verdict::Action::kReject, "purge stores no events"};
        },
        SinkSettings{});
    std::int64_t deleted = 0;
    try {
      deleted = sink->purge(request);
    } catch (const StorageError&) {
      sink->close();
      throw;
    }
    sink->close();
    out << "deleted=" << deleted << std::endl;
    return kExitOk;
  } catch (const StorageError& e) {
    err << "purge: " << e.what() << std::endl;
    return kExitFailure;
  }
}

}  // namespace b24es
