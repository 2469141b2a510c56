// Process-wide logging (SPEC §10): POCO's root channel configured from the log.* keys, the JSON
// line format, log lines that carry named fields, and the log file reopened on SIGHUP.
#pragma once

#include <Poco/Logger.h>
#include <Poco/Message.h>

#include <string>
#include <vector>

#include "log_value.h"

namespace b24es {

struct LogSettings {
  std::string level = "information";  // error, warning, notice, information, debug
  std::string format = "text";        // text or json
  std::string file;                   // log to this file instead of stderr; empty: stderr
  bool access = false;                // one b24es.access line per request
};

// One named value of a log line; `number` ones are JSON numbers in the json format.
struct LogField {
  std::string name;
  std::string value;
  bool number = false;
};
using LogFields = std::vector<LogField>;

// Sets the root channel of POCO's loggers for `settings` and every logger's level, including
// b24es.access (off unless settings.access). Throws Poco::Exception when log.file cannot be
// opened. Call once at startup, before other threads log.
void configureLogging(const LogSettings& settings);

// Reopens log.file (after logrotate moved it); false (and nothing done) when logging to stderr.
// Thread-safe.
bool reopenLogFile();

// Logs `text` with `fields` at `priority`: in the text format as `text k=v k=v`, in the json
// format as "message": text plus one member per field. Values are taken as they are: escape
// what came from a request with logValue() first.
void logWithFields(Poco::Logger& logger, Poco::Message::Priority priority, const std::string& text,
                   const LogFields& fields);

// The JSON line for one message, as the json format writes it (for tests and the formatter).
std::string jsonLogLine(const Poco::Message& message);

}  // namespace b24es
