// `b24-event-store purge (--member-id ID | --before TIME) [--dry-run]` (SPEC §2, §9).
#pragma once

#include <ostream>

#include "command_line.h"

namespace b24es {

// Deletes one portal's events, or every event received before TIME (unix seconds or ISO 8601),
// through an event sink's purge batches (so it takes turns with nothing here, and with a running
// `serve` through SQLite's lock, one batch at a time). Prints `deleted=N` (with --dry-run what
// it would delete) on `out`. 0 done, 1 database failure, 2 usage or configuration error.
int runPurge(const CommandLine& command, std::ostream& out, std::ostream& err);

}  // namespace b24es
