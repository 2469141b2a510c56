#include "sqlite_storage.h"

#include <algorithm>

#include <Poco/Data/Session.h>
#include <Poco/Exception.h>

#include "sqlite_connection.h"
#include "sqlite_event_reader.h"
#include "sqlite_event_sink.h"
#include "sqlite_migrator.h"
#include "sqlite_portal_state.h"
#include "sqlite_read_pool.h"
#include "sqlite_token_store.h"

using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;

namespace b24es {
namespace {

int latestVersion(const std::vector<Migration>& migrations) {
  int latest = 0;
  for (const Migration& m : migrations) latest = std::max(latest, m.version);
  return latest;
}

class SqliteStorage final : public Storage {
 public:
  SqliteStorage(const SqliteSettings& settings, const Clock& clock,
                std::vector<Migration> migrations)
      : settings_(settings),
        clock_(clock),
        knownVersion_(latestVersion(migrations)),
        migrator_(settings_, clock_, std::move(migrations)) {
    sqlite::prepareFiles(settings_.path);
    // Opening one connection here applies WAL mode and proves the file is a database.
    Poco::Data::Session probe = sqlite::openSession(settings_);
    sqlite::exec(probe, "SELECT count(*) FROM sqlite_master");
    pool_ = std::make_unique<sqlite::ReadPool>(settings_.path, settings_.readPoolSize, *board_);
    tokenStore_ = std::make_unique<sqlite::SqliteTokenStore>(settings_, *board_);
    portalState_ = std::make_unique<sqlite::SqlitePortalStateStore>(settings_, *board_);
    reader_ = std::make_unique<sqlite::SqliteEventReader>(*pool_);
  }

  Migrator& migrator() override { return migrator_; }

  std::unique_ptr<EventSink> openEventSink(Verifier verifier,
                                           const SinkSettings& settings) override {
    return std::make_unique<sqlite::SqliteEventSink>(settings_, clock_, std::move(verifier),
                                                     settings, board_, knownVersion_);
  }

  std::optional<PortalRecord> findPortal(const std::string& memberId) override {
    try {
      Poco::Data::Session session = pool_->get();
      return sqlite::selectPortal(session, memberId);
    } catch (const Poco::Exception& e) {
      throw StorageError(e.displayText());
    }
  }

  // What the writer last reported; no session, no lock ingest takes (finding of issue 13: a
  // probe query here waited 60 s in POCO's open loop holding the pool's mutex).
  StorageHealth health() override { return board_->get(); }

  TokenStore& tokenStore() override { return *tokenStore_; }
  EventReader& reader() override { return *reader_; }
  PortalStateStore& portalState() override { return *portalState_; }

 private:
  const SqliteSettings settings_;  // const after construction
  const Clock& clock_;             // const after construction
  const int knownVersion_;         // const after construction
  sqlite::SqliteMigrator migrator_;
  // Written by the sinks; thread-safe itself. Before every connection, so that it goes after
  // them (it keeps retired connections open, see HealthBoard::movedToNewFile).
  const std::shared_ptr<sqlite::HealthBoard> board_ = std::make_shared<sqlite::HealthBoard>();
  std::unique_ptr<sqlite::ReadPool> pool_;  // thread-safe itself

  std::unique_ptr<sqlite::SqliteTokenStore> tokenStore_;         // thread-safe itself
  std::unique_ptr<sqlite::SqlitePortalStateStore> portalState_;  // thread-safe itself
  // Reads through pool_; thread-safe.
  std::unique_ptr<sqlite::SqliteEventReader> reader_;
};

}  // namespace

std::unique_ptr<Storage> openSqliteStorage(const SqliteSettings& settings, const Clock& clock,
                                           std::vector<Migration> migrations) {
  try {
    return std::make_unique<SqliteStorage>(settings, clock, std::move(migrations));
  } catch (const Poco::Exception& e) {
    throw StorageError(e.displayText());
  }
}

}  // namespace b24es
