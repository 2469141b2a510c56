#include "sqlite_connection.h"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Exception.h>
#include <Poco/Nullable.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "sqlite_files.h"

namespace b24es::sqlite {

void registerConnector() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Data::SQLite::Connector::registerConnector(); });
}

void prepareFiles(const std::string& path) {
  try {
    // Every missing level 0700, not only the last: the database holds tokens.
    createFolders(folderOf(path));
  } catch (const std::runtime_error& e) {
    throw StorageError(std::string("cannot create database folder: ") + e.what());
  }
  // open(2) rather than Poco::File::createFile: the file must never exist with a wider mode,
  // and SQLite gives its -wal and -shm files the mode of the database file.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw StorageError("cannot open database file " + path + ": " + std::strerror(errno));
  }
  ::close(fd);
}

Poco::Data::Session openSession(const SqliteSettings& settings) {
  registerConnector();
  if (settings.synchronous != "full" && settings.synchronous != "normal") {
    throw StorageError("db.synchronous must be full or normal, not '" + settings.synchronous + "'");
  }
  try {
    // A short login timeout: POCO retries a failing open for this long (60 s by default), and
    // the writer must not hang there while the folder is gone.
    Poco::Data::Session session("SQLite", settings.path, 1);
    ::sqlite3_busy_timeout(Poco::Data::SQLite::Utility::dbHandle(session), settings.busyTimeoutMs);
    // auto_vacuum takes effect only in a database that has no table yet (a new one); an older
    // file keeps its mode until a VACUUM (README: retention). INCREMENTAL lets purges give
    // their pages back (incremental_vacuum) without the cost of FULL on every commit.
    exec(session, "PRAGMA auto_vacuum=INCREMENTAL");
    exec(session, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=" +
                      std::string(settings.synchronous == "full" ? "FULL" : "NORMAL") + ";");
    return session;
  } catch (const Poco::Exception& e) {
    throw StorageError("cannot open database " + settings.path + ": " + e.displayText());
  }
}

void exec(Poco::Data::Session& session, const std::string& sql) {
  sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(session);
  char* error = nullptr;
  int rc = ::sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error ? error : ::sqlite3_errstr(rc);
    ::sqlite3_free(error);
    throw StorageError(message);
  }
}

ImmediateTransaction::ImmediateTransaction(Poco::Data::Session& session) : session_(session) {
  exec(session_, "BEGIN IMMEDIATE");
}

ImmediateTransaction::~ImmediateTransaction() {
  if (!open_) return;
  try {
    exec(session_, "ROLLBACK");
  } catch (const StorageError&) {
    // SQLite may already have rolled back (e.g. after SQLITE_FULL); nothing left to undo.
  }
}

void ImmediateTransaction::commit() {
  exec(session_, "COMMIT");
  open_ = false;
}

}  // namespace b24es::sqlite

namespace b24es::sqlite {

std::optional<PortalRecord> selectPortal(Poco::Data::Session& session,
                                         const std::string& memberId) {
  using Poco::Nullable;
  using Poco::Data::Keywords::into;
  using Poco::Data::Keywords::now;
  using Poco::Data::Keywords::use;
  std::string key = memberId;
  std::vector<std::string> domain;
  std::vector<Nullable<std::string>> client, server, appToken, status, scope;
  std::vector<Nullable<Poco::Int64>> installedAt, uninstalledAt;
  std::vector<Poco::Int64> updatedAt;
  session << "SELECT domain, client_endpoint, server_endpoint, application_token, status, "
             "scope, installed_at, uninstalled_at, updated_at FROM portals WHERE member_id = ?",
      use(key), into(domain), into(client), into(server), into(appToken), into(status), into(scope),
      into(installedAt), into(uninstalledAt), into(updatedAt), now;
  if (domain.empty()) return std::nullopt;
  PortalRecord p;
  p.memberId = memberId;
  p.domain = domain[0];
  p.clientEndpoint = client[0].value("");
  p.serverEndpoint = server[0].value("");
  if (!appToken[0].isNull()) p.applicationToken = appToken[0].value();
  p.status = status[0].value("");
  p.scope = scope[0].value("");
  if (!installedAt[0].isNull()) p.installedAt = installedAt[0].value();
  if (!uninstalledAt[0].isNull()) p.uninstalledAt = uninstalledAt[0].value();
  p.updatedAt = updatedAt[0];
  return p;
}

}  // namespace b24es::sqlite
