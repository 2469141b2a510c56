// The commands of SPEC §2 that talk to portals: `call MEMBER_ID METHOD` (one REST call with the
// stored token, §8.1), `bind` (§8.2) and `fetch-offline` (§8.3). App dispatches to them; the work
// is in RestClient.
#pragma once

#include <ostream>

#include "command_line.h"

namespace b24es {

// `call MEMBER_ID METHOD [--user-id N] [--param KEY=VALUE]... [--json BODY]`: prints the whole
// answer's JSON on `out`. Returns 0 on success; 1 on a Bitrix24 or network error, a refused
// endpoint, an unknown portal or no usable token (`error: CODE: description` on `err`); 2 on a
// usage or configuration error.
int runCall(const CommandLine& command, std::ostream& out, std::ostream& err);

// `bind [--member-id ID] [--dry-run]`: syncs the configured bindings of every installed portal,
// or one (§8.2); prints `portals=N bound=N unbound=N failed=N`. Returns 0, 1 when any portal
// failed, 2 on a usage or configuration error (no bitrix24.handler_url or no events).
int runBind(const CommandLine& command, std::ostream& out, std::ostream& err);

// `fetch-offline [--member-id ID]`: one offline-queue pass for every installed portal, or one
// (§8.3); prints `portals=N fetched=N failed=N`. Returns 0, 1 when any pass failed, 2 on a usage
// or configuration error (bitrix24.offline_events empty).
int runFetchOffline(const CommandLine& command, std::ostream& out, std::ostream& err);

}  // namespace b24es
