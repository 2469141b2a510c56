#include "settings.h"

#include <Poco/Environment.h>
#include <Poco/Exception.h>
#include <Poco/File.h>
#include <Poco/NumberParser.h>
#include <Poco/String.h>
#include <Poco/StringTokenizer.h>
#include <Poco/Util/MapConfiguration.h>
#include <Poco/Util/PropertyFileConfiguration.h>

#include <algorithm>

#include "access_log.h"
#include "embedded_migrations.h"

namespace b24es {
namespace {

// Environment variable -> configuration key (SPEC §3).
const std::map<std::string, std::string>& environmentKeys() {
  static const std::map<std::string, std::string> keys = {
      {"B24ES_DB", "db.path"},
      {"B24ES_DB_URL", "db.url"},
      {"B24ES_QUERY_TOKEN", "query.token"},
      {"B24_CLIENT_ID", "bitrix24.client_id"},
      {"B24_CLIENT_SECRET", "bitrix24.client_secret"},
  };
  return keys;
}

std::vector<std::string> list(const std::string& text) {
  Poco::StringTokenizer parts(
      text, ",", Poco::StringTokenizer::TOK_TRIM | Poco::StringTokenizer::TOK_IGNORE_EMPTY);
  return {parts.begin(), parts.end()};
}

int intKey(const Poco::Util::AbstractConfiguration& c, const std::string& key, int def) {
  try {
    return c.getInt(key, def);
  } catch (const Poco::SyntaxException&) {
    throw Poco::SyntaxException("configuration key " + key + " is not an integer");
  }
}

LogSettings loadLogSettings(const Poco::Util::AbstractConfiguration& c) {
  Poco::Util::AbstractConfiguration::Keys poco;
  c.keys("logging", poco);
  if (!poco.empty()) {
    throw Poco::SyntaxException(
        "the logging.* keys (POCO's LoggingConfigurator) are not read by b24-event-store; use "
        "log.level, log.format, log.file and log.access (README \"Logs\")");
  }
  LogSettings log;
  log.level = Poco::toLower(c.getString("log.level", log.level));
  static const std::vector<std::string> levels = {"error", "warning", "notice", "information",
                                                  "debug"};
  if (std::find(levels.begin(), levels.end(), log.level) == levels.end()) {
    throw Poco::SyntaxException("log.level must be error, warning, notice, information or debug");
  }
  log.format = Poco::toLower(c.getString("log.format", log.format));
  if (log.format != "text" && log.format != "json") {
    throw Poco::SyntaxException("log.format must be text or json");
  }
  log.file = c.getString("log.file", "");
  try {
    log.access = c.getBool("log.access", false);
  } catch (const Poco::SyntaxException&) {
    throw Poco::SyntaxException("configuration key log.access is not true or false");
  }
  return log;
}

std::vector<std::string> upperList(const std::string& text) {
  std::vector<std::string> out = list(text);
  for (std::string& item : out) Poco::toUpperInPlace(item);
  return out;
}

// SPEC §3's rest.*, bitrix24.handler_url, bitrix24.events, bitrix24.offline_events and
// offline.interval.
void loadRestSettings(const Poco::Util::AbstractConfiguration& c, Settings& s) {
  if (c.has("rest.allowed_hosts")) s.rest.allowedHosts = list(c.getString("rest.allowed_hosts"));
  try {
    s.rest.allowHttp = c.getBool("rest.allow_http", false);
  } catch (const Poco::SyntaxException&) {
    throw Poco::SyntaxException("configuration key rest.allow_http is not true or false");
  }
  try {
    s.rest.rate = c.getDouble("rest.rate", s.rest.rate);
    s.rest.burst = c.getDouble("rest.burst", s.rest.burst);
  } catch (const Poco::SyntaxException&) {
    throw Poco::SyntaxException("configuration keys rest.rate and rest.burst are numbers");
  }
  s.rest.timeoutSeconds = intKey(c, "rest.timeout", s.rest.timeoutSeconds);
  if (!(s.rest.rate > 0) || !(s.rest.burst >= 1) || s.rest.timeoutSeconds <= 0) {
    throw Poco::SyntaxException("rest.rate and rest.timeout must be > 0, rest.burst >= 1");
  }
  s.bitrix24.handlerUrl = c.getString("bitrix24.handler_url", "");
  s.bitrix24.events = upperList(c.getString("bitrix24.events", ""));
  s.bitrix24.offlineEvents = upperList(c.getString("bitrix24.offline_events", ""));
  s.bitrix24.offlineIntervalSeconds =
      intKey(c, "offline.interval", s.bitrix24.offlineIntervalSeconds);
  if (s.bitrix24.offlineIntervalSeconds < 0) {
    throw Poco::SyntaxException("offline.interval must be >= 0");
  }
}

}  // namespace

Settings loadSettings(const Poco::Util::AbstractConfiguration& c) {
  Settings s;
  s.db.path = c.getString("db.path", s.db.path);
  s.db.synchronous = Poco::toLower(c.getString("db.synchronous", s.db.synchronous));
  s.pg.url = c.getString("db.url", "");
  if (!s.pg.url.empty() && describePgUrl(s.pg.url) == "an invalid db.url") {
    // The value holds a password: the message never repeats it.
    throw Poco::SyntaxException(
        "db.url must be postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?PARAMS]");
  }
  s.ingest.listen = c.getString("ingest.listen", s.ingest.listen);
  s.ingest.path = c.getString("ingest.path", s.ingest.path);
  int maxBody = intKey(c, "ingest.max_body_bytes", static_cast<int>(s.ingest.maxBodyBytes));
  if (maxBody <= 0) throw Poco::SyntaxException("ingest.max_body_bytes must be positive");
  s.ingest.maxBodyBytes = static_cast<std::size_t>(maxBody);
  s.ingest.requestTimeoutSeconds =
      intKey(c, "ingest.request_timeout", s.ingest.requestTimeoutSeconds);
  s.ingest.threads = intKey(c, "ingest.threads", s.ingest.threads);
  if (s.ingest.requestTimeoutSeconds <= 0) {
    throw Poco::SyntaxException("ingest.request_timeout must be > 0");
  }
  if (s.ingest.threads < 1 || s.ingest.threads > 64) {
    // It once counted connection threads (default 256); older configurations may say so.
    throw Poco::SyntaxException(
        "ingest.threads is the number of event-loop threads serving ingest connections and "
        "must be between 1 and 64 (default 2; each thread serves any number of connections)");
  }
  s.ingest.staticTokens = list(c.getString("bitrix24.application_tokens", ""));
  if (c.has("ingest.trusted_proxies")) {
    s.ingest.trustedProxies = parseTrustedProxies(list(c.getString("ingest.trusted_proxies")));
  }
  const int maxNewPortals =
      intKey(c, "ingest.max_new_portals", static_cast<int>(s.ingest.maxNewPortals));
  if (maxNewPortals < 0) throw Poco::SyntaxException("ingest.max_new_portals must be >= 0");
  s.ingest.maxNewPortals = static_cast<std::size_t>(maxNewPortals);
  const int keepRejections =
      intKey(c, "ingest.keep_rejections", static_cast<int>(s.ingest.keepRejections));
  if (keepRejections < 0) throw Poco::SyntaxException("ingest.keep_rejections must be >= 0");
  s.ingest.keepRejections = static_cast<std::size_t>(keepRejections);
  s.query.listen = c.getString("query.listen", s.query.listen);
  // Checked here so a bad address is a configuration error (exit 2), not a failure to serve.
  splitHostPort(s.ingest.listen);
  splitHostPort(s.query.listen);
  s.query.token = c.getString("query.token", "");
  const int maxStreams = intKey(c, "query.max_streams", static_cast<int>(s.query.maxStreams));
  // 0 would answer every stream 503; a listener that wants none can simply not be asked.
  if (maxStreams < 1) throw Poco::SyntaxException("query.max_streams must be >= 1");
  s.query.maxStreams = static_cast<std::size_t>(maxStreams);
  s.oauth.clientId = c.getString("bitrix24.client_id", "");
  s.oauth.clientSecret = c.getString("bitrix24.client_secret", "");
  if (c.has("oauth.allowed_hosts")) s.oauth.allowedHosts = list(c.getString("oauth.allowed_hosts"));
  try {
    s.oauth.allowHttp = c.getBool("oauth.allow_http", false);
  } catch (const Poco::SyntaxException&) {
    throw Poco::SyntaxException("configuration key oauth.allow_http is not true or false");
  }
  s.refresh.intervalSeconds = intKey(c, "refresh.interval", s.refresh.intervalSeconds);
  s.refresh.maxAgeDays = intKey(c, "refresh.max_age_days", s.refresh.maxAgeDays);
  try {
    s.refresh.rate = c.getDouble("refresh.rate", s.refresh.rate);
  } catch (const Poco::SyntaxException&) {
    throw Poco::SyntaxException("configuration key refresh.rate is not a number");
  }
  s.refresh.timeoutSeconds = intKey(c, "refresh.timeout", s.refresh.timeoutSeconds);
  if (s.refresh.timeoutSeconds <= 0) throw Poco::SyntaxException("refresh.timeout must be > 0");
  if (s.refresh.intervalSeconds < 0 || s.refresh.maxAgeDays < 0 || s.refresh.rate <= 0) {
    throw Poco::SyntaxException(
        "refresh.interval and refresh.max_age_days must be >= 0, refresh.rate > 0");
  }
  s.log = loadLogSettings(c);
  s.retention.days = intKey(c, "retention.days", s.retention.days);
  if (s.retention.days < 0) throw Poco::SyntaxException("retention.days must be >= 0");
  try {
    s.retention.purgeOnClean = c.getBool("bitrix24.purge_on_clean", false);
  } catch (const Poco::SyntaxException&) {
    throw Poco::SyntaxException("configuration key bitrix24.purge_on_clean is not true or false");
  }
  loadRestSettings(c, s);
  return s;
}

Poco::AutoPtr<Poco::Util::LayeredConfiguration> layerConfiguration(
    const std::string& configFile, const std::map<std::string, std::string>& environment,
    const std::map<std::string, std::string>& flags) {
  Poco::AutoPtr<Poco::Util::LayeredConfiguration> layered(new Poco::Util::LayeredConfiguration);
  Poco::AutoPtr<Poco::Util::MapConfiguration> fromFlags(new Poco::Util::MapConfiguration);
  for (const auto& [key, value] : flags) fromFlags->setString(key, value);
  Poco::AutoPtr<Poco::Util::MapConfiguration> fromEnv(new Poco::Util::MapConfiguration);
  for (const auto& [var, key] : environmentKeys()) {
    auto it = environment.find(var);
    // SPEC §2: set to the empty string counts as unset, so `B24ES_QUERY_TOKEN=` in a unit
    // file cannot silently switch a configured query.token off.
    if (it != environment.end() && !it->second.empty()) fromEnv->setString(key, it->second);
  }
  // Lower priority numbers win.
  layered->add(fromFlags, 0);
  layered->add(fromEnv, 10);
  if (!configFile.empty()) {
    layered->add(new Poco::Util::PropertyFileConfiguration(configFile), 20);
  }
  return layered;
}

std::map<std::string, std::string> knownEnvironment() {
  std::map<std::string, std::string> env;
  for (const auto& entry : environmentKeys()) {
    if (Poco::Environment::has(entry.first)) env[entry.first] = Poco::Environment::get(entry.first);
  }
  return env;
}

std::pair<std::string, unsigned short> splitHostPort(const std::string& listen) {
  std::string::size_type colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    throw Poco::InvalidArgumentException("listen address must be HOST:PORT: " + listen);
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  if (!Poco::NumberParser::tryParseUnsigned(listen.substr(colon + 1), port) || port > 65535) {
    throw Poco::InvalidArgumentException("bad port in listen address: " + listen);
  }
  return {host.empty() ? "0.0.0.0" : host, static_cast<unsigned short>(port)};
}

}  // namespace b24es

namespace b24es {

std::unique_ptr<Storage> openStorage(const Settings& settings, const Clock& clock) {
  if (!settings.pg.url.empty()) {
    return openPgStorage(settings.pg, clock, embeddedPgMigrations());
  }
  return openSqliteStorage(settings.db, clock, embeddedMigrations());
}

const std::vector<Migration>& storageMigrations(const Settings& settings) {
  return settings.pg.url.empty() ? embeddedMigrations() : embeddedPgMigrations();
}

std::string describeDatabase(const Settings& settings) {
  return settings.pg.url.empty() ? settings.db.path : describePgUrl(settings.pg.url);
}

bool databaseMissing(const Settings& settings) {
  return settings.pg.url.empty() && !Poco::File(settings.db.path).exists();
}

}  // namespace b24es
