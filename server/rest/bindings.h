// Event bindings (SPEC §8.2): keeps each installed portal's bindings in line with the
// configuration. event.get lists what is bound; configured events not yet bound to
// bitrix24.handler_url (online) or offline are bound; events bound to handler_url, or offline,
// that are no longer configured are unbound; bindings to other handlers are never touched. The
// outcome per (portal, event, type) goes to the bindings table. Run after each committed
// ONAPPINSTALL and ONAPPUPDATE (PortalJobs, in the background) and by `bind`.
#pragma once

#include <cstddef>
#include <string>

#include "clock.h"
#include "portal_state.h"
#include "rest_client.h"
#include "rest_settings.h"

namespace b24es {

// What one sync did. In a dry run, what it would do (nothing is called or stored).
struct BindingReport {
  std::size_t bound = 0;    // bindings created, or found bound already
  std::size_t unbound = 0;  // bindings removed
  std::size_t failed = 0;   // bindings that could not be made or removed (or all, when event.get
                            // failed)
  std::string error;        // the first failure, for the log; no secrets
};

// True when bindings are configured: handler_url set and some online or offline event listed.
bool bindingsConfigured(const Bitrix24Settings& settings);

// Thread-safe when RestClient and the store are (they are); syncs of one portal must not run at
// once (PortalJobs runs one per portal at a time).
class BindingSync {
 public:
  // References must outlive the sync.
  BindingSync(const Bitrix24Settings& settings, RestClient& rest, PortalStateStore& store,
              const Clock& clock);
  // One portal's sync. Never throws for REST failures (they are counted and stored); throws
  // StorageError when the database fails.
  BindingReport sync(const PortalRecord& portal, bool dryRun);

 private:
  const Bitrix24Settings settings_;  // const after construction
  RestClient& rest_;
  PortalStateStore& store_;
  const Clock& clock_;
};

}  // namespace b24es
