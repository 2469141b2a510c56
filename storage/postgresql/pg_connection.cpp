#include "pg_connection.h"

#include <Poco/Data/PostgreSQL/Connector.h>
#include <Poco/Data/PostgreSQL/SessionImpl.h>
#include <Poco/DigestEngine.h>
#include <Poco/Exception.h>
#include <Poco/NumberParser.h>
#include <Poco/SHA2Engine.h>
#include <Poco/URI.h>

#include <cctype>
#include <mutex>

namespace b24es {
namespace {

// What db.url says, split into libpq's keywords. Parsed by Poco::URI (percent-decoding
// included); only the mapping to keywords is ours.
struct UrlParts {
  std::string user, password, host, dbname;
  unsigned short port = 5432;
  std::vector<std::pair<std::string, std::string>> params;  // ?sslmode=require&...
};

UrlParts parseUrl(const std::string& url) {
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception&) {
    // The URL holds the password: the message names the key, not the value.
    throw StorageError("db.url is not a valid URL");
  }
  if (uri.getScheme() != "postgresql" && uri.getScheme() != "postgres") {
    throw StorageError("db.url must start with postgresql://");
  }
  UrlParts parts;
  const std::string info = uri.getUserInfo();
  const std::size_t colon = info.find(':');
  parts.user = info.substr(0, colon);
  if (colon != std::string::npos) parts.password = info.substr(colon + 1);
  parts.host = uri.getHost();
  if (uri.getPort() != 0) parts.port = uri.getPort();
  parts.dbname = uri.getPath().empty() ? std::string() : uri.getPath().substr(1);
  if (parts.host.empty() || parts.dbname.empty() || parts.user.empty()) {
    throw StorageError("db.url must name a user, a host and a database");
  }
  for (auto& kv : uri.getQueryParameters()) parts.params.push_back(kv);
  return parts;
}

// POCO's connector takes "key=value key=value" and splits it on blanks without quoting, so a
// value holding a blank or a quote cannot be passed; such a URL is refused, naming the part.
std::string keywordValue(const std::string& key, const std::string& value, bool secret) {
  if (value.find_first_of(" \t\r\n'\\") != std::string::npos) {
    throw StorageError("db.url: the " + (secret ? std::string("password") : key) +
                       " contains a blank, a quote or a backslash, which POCO's PostgreSQL "
                       "connector cannot pass on");
  }
  return key + "=" + value;
}

std::string connectionString(const UrlParts& p, int timeoutSeconds) {
  std::string s =
      keywordValue("host", p.host, false) + " " +
      keywordValue("port", std::to_string(p.port), false) + " " +
      keywordValue("user", p.user, false) + " " + keywordValue("dbname", p.dbname, false) + " " +
      "connect_timeout=" + std::to_string(timeoutSeconds) + " application_name=b24-event-store";
  if (!p.password.empty()) s += " " + keywordValue("password", p.password, true);
  for (const auto& kv : p.params) s += " " + keywordValue(kv.first, kv.second, false);
  return s;
}

}  // namespace

std::string describePgUrl(const std::string& url) {
  try {
    UrlParts p = parseUrl(url);
    return "postgresql://" + p.user + "@" + p.host + ":" + std::to_string(p.port) + "/" + p.dbname;
  } catch (const std::exception&) {
    return "an invalid db.url";
  }
}

namespace pg {

std::string scrub(std::string message, const std::string& password) {
  if (password.empty()) return message;
  for (std::size_t at = message.find(password); at != std::string::npos;
       at = message.find(password, at)) {
    message.replace(at, password.size(), "***");
  }
  return message;
}

std::int64_t Result::integer(int row, int col) const {
  const char* v = PQgetvalue(r_.get(), row, col);
  Poco::Int64 n = 0;
  // Booleans come as t/f; counts and bigints as digits.
  if (v[0] == 't' && v[1] == 0) return 1;
  if (v[0] == 'f' && v[1] == 0) return 0;
  if (!Poco::NumberParser::tryParse64(v, n)) {
    throw StorageError(std::string("not an integer in a result column: ") + v);
  }
  return n;
}

std::int64_t Result::affected() const {
  const char* n = PQcmdTuples(r_.get());
  return n[0] ? std::stoll(n) : 0;
}

namespace {
std::string parsedPassword(const std::string& url) {
  try {
    return parseUrl(url).password;
  } catch (const std::exception&) {
    return {};
  }
}

Poco::Data::Session openSession(const PgSettings& settings, const std::string& password) {
  static std::once_flag registered;
  std::call_once(registered, [] { Poco::Data::PostgreSQL::Connector::registerConnector(); });
  const std::string keywords =
      connectionString(parseUrl(settings.url), settings.connectTimeoutSeconds);
  try {
    return Poco::Data::Session("PostgreSQL", keywords);
  } catch (const Poco::Exception& e) {
    std::string message = scrub(e.displayText(), password);
    // libpq ends its messages with a newline, and indents a second line under the first.
    while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back()))) {
      message.pop_back();
    }
    for (std::size_t nl = message.find("\n\t"); nl != std::string::npos;
         nl = message.find("\n\t", nl)) {
      message.replace(nl, 2, " ");
    }
    throw StorageError("cannot connect to " + describePgUrl(settings.url) + ": " + message);
  }
}
}  // namespace

Connection::Connection(const PgSettings& settings)
    : password_(parsedPassword(settings.url)),
      session_(openSession(settings, password_)),
      conn_(static_cast<Poco::Data::PostgreSQL::SessionImpl*>(session_.impl())->handle()) {
  // NOTICEs ("relation already exists, skipping") are not errors; libpq would print them to
  // stderr, outside the log.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
}

PgError Connection::error(PGresult* r) const {
  std::string message = r ? PQresultErrorMessage(r) : "";
  if (message.empty()) message = PQerrorMessage(conn_);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  return PgError("PostgreSQL: " + scrub(message, password_), state ? state : "");
}

void Connection::exec(const std::string& sql) {
  Result r(PQexec(conn_, sql.c_str()));
  ExecStatusType status = PQresultStatus(r.raw());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw error(r.raw());
}

const std::string& Connection::prepared(const std::string& sql) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "s" + std::to_string(nextName_++);
    Result p(PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr));
    if (PQresultStatus(p.raw()) != PGRES_COMMAND_OK) throw error(p.raw());
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  return it->second;
}

namespace {
std::vector<const char*> valuePointers(const Params& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& v : params.values()) values.push_back(v ? v->c_str() : nullptr);
  return values;
}
}  // namespace

Result Connection::query(const std::string& sql, const Params& params) {
  const std::string& name = prepared(sql);
  std::vector<const char*> values = valuePointers(params);
  Result r(PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(),
                          nullptr, nullptr, 0));
  ExecStatusType status = PQresultStatus(r.raw());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw error(r.raw());
  return r;
}

// libpq gives the pipeline's calls (PQenterPipelineMode, PQsend*, PQpipelineSync, PQgetResult)
// but no "send these, return those"; this is that loop. The connection stays in blocking mode:
// the libpq docs warn that a client which only sends can deadlock once the server's results fill
// the socket while the client still writes; a batch's statements are a few dozen, their results
// command tags and a few ids, far below a socket buffer, so it cannot come to that here.
std::vector<Result> Connection::pipeline(const Statements& statements) {
  std::vector<Result> results;
  if (statements.empty()) return results;
  if (PQenterPipelineMode(conn_) != 1) throw error(nullptr);
  // What the server answers, in order: a Parse for each text not yet prepared, then the
  // statement. `text` is set for a Parse: forgotten again unless it succeeded.
  struct Expected {
    const std::string* text;
  };
  std::vector<Expected> expected;
  auto fail = [this]() -> PgError {
    // Sending failed, or the answers were not what the protocol promises: the connection's
    // state is unknown, so it is not used again (its owner opens a new one).
    broken_ = true;
    PgError e = error(nullptr);
    return PgError(e.what(), "");
  };
  for (const Statements::Statement& s : statements.list_) {
    std::vector<const char*> values = valuePointers(s.params);
    const int n = static_cast<int>(values.size());
    int sent = 0;
    if (!s.prepare) {
      sent =
          PQsendQueryParams(conn_, s.sql.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0);
    } else {
      auto it = prepared_.find(s.sql);
      if (it == prepared_.end()) {
        std::string name = "s" + std::to_string(nextName_++);
        if (!PQsendPrepare(conn_, name.c_str(), s.sql.c_str(), 0, nullptr)) throw fail();
        it = prepared_.emplace(s.sql, std::move(name)).first;
        expected.push_back(Expected{&it->first});
      }
      sent = PQsendQueryPrepared(conn_, it->second.c_str(), n, values.data(), nullptr, nullptr, 0);
    }
    if (!sent) throw fail();
    expected.push_back(Expected{nullptr});
  }
  if (!PQpipelineSync(conn_)) throw fail();
  std::optional<PgError> first;
  std::vector<std::string> forget;
  for (const Expected& e : expected) {
    // Each answer is one result, then a null that ends it.
    PGresult* raw = PQgetResult(conn_);
    if (!raw) throw fail();
    Result r(raw);
    while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);
    const ExecStatusType status = PQresultStatus(raw);
    const bool good = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
    if (!good && status != PGRES_PIPELINE_ABORTED) {
      if (!first) first = error(raw);
      if (PQstatus(conn_) != CONNECTION_OK) throw *first;
    }
    if (e.text) {
      if (!good) forget.push_back(*e.text);
    } else {
      results.push_back(std::move(r));
    }
  }
  for (const std::string& text : forget) prepared_.erase(text);
  Result sync(PQgetResult(conn_));
  if (!sync.raw() || PQresultStatus(sync.raw()) != PGRES_PIPELINE_SYNC) throw fail();
  if (PQexitPipelineMode(conn_) != 1) throw fail();
  if (first) throw *first;
  return results;
}

void Connection::rollbackQuietly() noexcept {
  if (broken_ || PQtransactionStatus(conn_) == PQTRANS_IDLE) return;
  PGresult* r = PQexec(conn_, "ROLLBACK");
  if (r) PQclear(r);
}

std::string migrationChecksum(const std::string& sql) {
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(sql);
  return Poco::DigestEngine::digestToHex(sha.digest());
}

}  // namespace pg
}  // namespace b24es
