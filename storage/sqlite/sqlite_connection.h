// Internal to the SQLite backend: opening a configured connection, running plain SQL and the
// BEGIN IMMEDIATE transaction that every write uses (a deferred BEGIN that later upgrades to a
// write lock fails at once with SQLITE_BUSY when another process wrote in between; an
// immediate one waits for the lock under busy_timeout instead).
#pragma once

#include <Poco/Data/Session.h>

#include <optional>
#include <string>

#include "sqlite_storage.h"

namespace b24es::sqlite {

// Registers POCO's SQLite connector once; thread-safe.
void registerConnector();

// Creates the database's folder (0700) and file (0600) when missing. Throws StorageError.
void prepareFiles(const std::string& path);

// A new connection with busy_timeout, WAL, the configured synchronous level and foreign keys.
// Throws StorageError.
Poco::Data::Session openSession(const SqliteSettings& settings);

// Runs one or more SQL statements without results. Throws StorageError with SQLite's message.
void exec(Poco::Data::Session& session, const std::string& sql);

// The portals row of member_id, or nullopt. Throws Poco::Data exceptions.
std::optional<PortalRecord> selectPortal(Poco::Data::Session& session, const std::string& memberId);

// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless commit() succeeded.
// Not thread-safe; one per connection at a time.
class ImmediateTransaction {
 public:
  explicit ImmediateTransaction(Poco::Data::Session& session);
  ~ImmediateTransaction();
  ImmediateTransaction(const ImmediateTransaction&) = delete;
  ImmediateTransaction& operator=(const ImmediateTransaction&) = delete;
  void commit();  // throws StorageError; the transaction is rolled back then

 private:
  Poco::Data::Session& session_;
  bool open_ = true;
};

}  // namespace b24es::sqlite
