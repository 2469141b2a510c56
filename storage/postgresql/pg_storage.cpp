#include "pg_storage.h"

#include <algorithm>

#include "pg_event_reader.h"
#include "pg_event_sink.h"
#include "pg_health.h"
#include "pg_migrator.h"
#include "pg_pool.h"
#include "pg_portal_state.h"
#include "pg_token_store.h"

namespace b24es {
namespace {

int latestVersion(const std::vector<Migration>& migrations) {
  int latest = 0;
  for (const Migration& m : migrations) latest = std::max(latest, m.version);
  return latest;
}

class PgStorage final : public Storage {
 public:
  PgStorage(const PgSettings& settings, const Clock& clock, std::vector<Migration> migrations)
      : settings_(settings),
        clock_(clock),
        knownVersion_(latestVersion(migrations)),
        migrator_(settings_, clock_, std::move(migrations)),
        pool_(settings_, settings_.readPoolSize),
        tokenStore_(pool_),
        reader_(pool_),
        portalState_(pool_) {
    // One connection now, so that a wrong URL, password or host fails at start-up.
    pool_.get()->exec("SELECT 1");
  }

  Migrator& migrator() override { return migrator_; }

  std::unique_ptr<EventSink> openEventSink(Verifier verifier,
                                           const SinkSettings& settings) override {
    return std::make_unique<pg::PgEventSink>(settings_, clock_, std::move(verifier), settings,
                                             board_, knownVersion_);
  }

  std::optional<PortalRecord> findPortal(const std::string& memberId) override {
    pg::Pool::Lease c = pool_.get();
    pg::Result r = c->query(
        "SELECT member_id, domain, client_endpoint, server_endpoint, application_token, status, "
        "scope, installed_at, uninstalled_at, updated_at FROM portals WHERE member_id = $1",
        pg::Params().add(memberId));
    if (r.rows() == 0) return std::nullopt;
    PortalRecord p;
    p.memberId = r.text(0, 0);
    p.domain = r.text(0, 1);
    p.clientEndpoint = r.optionalText(0, 2).value_or("");
    p.serverEndpoint = r.optionalText(0, 3).value_or("");
    p.applicationToken = r.optionalText(0, 4);
    p.status = r.optionalText(0, 5).value_or("");
    p.scope = r.optionalText(0, 6).value_or("");
    p.installedAt = r.optionalInteger(0, 7);
    p.uninstalledAt = r.optionalInteger(0, 8);
    p.updatedAt = r.integer(0, 9);
    return p;
  }

  StorageHealth health() override { return board_->get(); }
  TokenStore& tokenStore() override { return tokenStore_; }
  EventReader& reader() override { return reader_; }
  PortalStateStore& portalState() override { return portalState_; }

 private:
  const PgSettings settings_;  // const after construction
  const Clock& clock_;         // const after construction
  const int knownVersion_;     // const after construction
  pg::PgMigrator migrator_;
  const std::shared_ptr<pg::HealthBoard> board_ = std::make_shared<pg::HealthBoard>();
  pg::Pool pool_;                       // thread-safe itself
  pg::PgTokenStore tokenStore_;         // thread-safe itself
  pg::PgEventReader reader_;            // thread-safe itself
  pg::PgPortalStateStore portalState_;  // thread-safe itself
};

}  // namespace

std::unique_ptr<Storage> openPgStorage(const PgSettings& settings, const Clock& clock,
                                       std::vector<Migration> migrations) {
  return std::make_unique<PgStorage>(settings, clock, std::move(migrations));
}

}  // namespace b24es
