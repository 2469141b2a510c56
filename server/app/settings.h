// All configuration of b24-event-store (SPEC §3) in one struct per component, with defaults
// and one line per field, filled from a POCO configuration in exactly one place.
#pragma once

#include <Poco/AutoPtr.h>
#include <Poco/Util/AbstractConfiguration.h>
#include <Poco/Util/LayeredConfiguration.h>

#include <map>
#include <string>
#include <vector>

#include "ingest_settings.h"
#include "logging.h"
#include "pg_storage.h"
#include "query_settings.h"
#include "refresh_settings.h"
#include "rest_settings.h"
#include "retention.h"
#include "sqlite_storage.h"

namespace b24es {

struct Settings {
  SqliteSettings db;  // db.path, db.synchronous: the SQLite default
  PgSettings pg;      // db.url: PostgreSQL instead of SQLite when its url is set (SPEC §11)
  IngestSettings ingest;
  QuerySettings query;
  OAuthSettings oauth;
  RefreshSettings refresh;
  LogSettings log;
  RetentionSettings retention;
  RestSettings rest;
  Bitrix24Settings bitrix24;
};

// Reads every key of SPEC §3 from `config`, defaults for the missing ones. Throws
// Poco::SyntaxException (with the key's name, never its value) for a malformed number or bool,
// and for any key under logging.: POCO's LoggingConfigurator is not used, so they would be
// silently ignored; log.* configures logging.
Settings loadSettings(const Poco::Util::AbstractConfiguration& config);

// Layers the sources with SPEC §2's precedence: `flags` (command-line options, by config key)
// over the environment variables of SPEC §3 found in `environment` over the properties file
// `configFile` (none when empty). Throws Poco::FileNotFoundException for a missing file.
Poco::AutoPtr<Poco::Util::LayeredConfiguration> layerConfiguration(
    const std::string& configFile, const std::map<std::string, std::string>& environment,
    const std::map<std::string, std::string>& flags);

// The process environment restricted to the variables SPEC §3 names.
std::map<std::string, std::string> knownEnvironment();

// The storage backend is chosen here and only here: PostgreSQL when db.url is set, else the
// SQLite file at db.path.
// Opens the database the settings name (not yet migrated). Throws StorageError, with no
// password in its message.
std::unique_ptr<Storage> openStorage(const Settings& settings, const Clock& clock);
// The migrations the binary embeds for that backend.
const std::vector<Migration>& storageMigrations(const Settings& settings);
// The database for log lines and messages: db.path, or db.url without its password.
std::string describeDatabase(const Settings& settings);
// True when the settings name a SQLite file that does not exist (commands that only read or
// maintain a database refuse to create one). A PostgreSQL database is the server's to say.
bool databaseMissing(const Settings& settings);

// Splits "host:port" (or "[v6]:port"). Throws Poco::InvalidArgumentException.
std::pair<std::string, unsigned short> splitHostPort(const std::string& listen);

}  // namespace b24es
