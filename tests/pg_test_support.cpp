#include "pg_test_support.h"

#include <libpq-fe.h>

#include <Poco/DigestEngine.h>
#include <Poco/MD5Engine.h>
#include <Poco/UUIDGenerator.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace b24es::test {
namespace {

using Conn = std::unique_ptr<PGconn, void (*)(PGconn*)>;

Conn connect(const std::string& url) {
  Conn c(PQconnectdb(url.c_str()), &PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) {
    throw std::runtime_error(std::string("test PostgreSQL: ") + PQerrorMessage(c.get()));
  }
  return c;
}

// The URL with another database name after its last '/' (and before any '?').
std::string withDatabase(const std::string& url, const std::string& name) {
  const std::size_t query = url.find('?');
  const std::string base = url.substr(0, query);
  const std::size_t slash = base.rfind('/');
  return base.substr(0, slash + 1) + name +
         (query == std::string::npos ? std::string() : url.substr(query));
}

}  // namespace

std::optional<std::string> pgServerUrl() {
  const char* url = std::getenv("B24ES_TEST_PG_URL");
  if (url && *url) return std::string(url);
  const char* required = std::getenv("B24ES_TEST_PG_REQUIRED");
  if (required && *required && std::string(required) != "0") {
    throw std::runtime_error(
        "B24ES_TEST_PG_REQUIRED is set but B24ES_TEST_PG_URL is not: scripts/test starts the "
        "throwaway PostgreSQL (scripts/lib/pg.sh) and sets both");
  }
  return std::nullopt;
}

std::string pgDatabaseFor(const std::string& dir) {
  std::optional<std::string> server = pgServerUrl();
  if (!server) throw std::runtime_error("no B24ES_TEST_PG_URL");
  // Temp folder names repeat across runs; the databases of an earlier run stay on the server
  // (a developer's), so the name also holds a nonce of this process.
  static const std::string nonce =
      Poco::UUIDGenerator::defaultGenerator().createRandom().toString();
  Poco::MD5Engine md5;
  md5.update(nonce + dir);
  const std::string name = "b24es_t_" + Poco::DigestEngine::digestToHex(md5.digest()).substr(0, 20);
  Conn admin = connect(*server);
  const std::string exists =
      "SELECT 1 FROM pg_database WHERE datname = '" + name + "'";  // name: hex digits only
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(admin.get(), exists.c_str()), &PQclear);
  if (PQntuples(r.get()) == 0) {
    std::unique_ptr<PGresult, void (*)(PGresult*)> created(
        PQexec(admin.get(), ("CREATE DATABASE " + name).c_str()), &PQclear);
    // Two test processes creating one folder's database cannot happen (folders are unique),
    // but a concurrent CREATE of the same name would fail here with 42P04: that is fine too.
    if (PQresultStatus(created.get()) != PGRES_COMMAND_OK) {
      const char* state = PQresultErrorField(created.get(), PG_DIAG_SQLSTATE);
      if (!state || std::string(state) != "42P04") {
        throw std::runtime_error(std::string("CREATE DATABASE: ") +
                                 PQresultErrorMessage(created.get()));
      }
    }
  }
  return withDatabase(*server, name);
}

std::vector<std::string> pgQuery(const std::string& url, const std::string& sql) {
  Conn c = connect(url);
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(c.get(), sql.c_str()), &PQclear);
  ExecStatusType status = PQresultStatus(r.get());
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    throw std::runtime_error(std::string("test PostgreSQL: ") + PQresultErrorMessage(r.get()));
  }
  std::vector<std::string> rows;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    rows.push_back(PQgetisnull(r.get(), i, 0) ? "NULL" : PQgetvalue(r.get(), i, 0));
  }
  return rows;
}

}  // namespace b24es::test
