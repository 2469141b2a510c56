// Internal to the PostgreSQL backend: one connection, opened through POCO Data/PostgreSQL, and
// the statements run on it through libpq, the library under POCO's connector (as the SQLite
// backend runs its hot statements on sqlite3 under POCO's session). POCO 1.11's PostgreSQL
// statements prepare every text, so a migration file of several statements fails ("cannot
// insert multiple commands into a prepared statement"), and its exceptions carry no SQLSTATE
// (the writer retries a deadlock, 40P01); libpq's PQexec and PQexecParams do both.
#pragma once

#include <libpq-fe.h>

#include <Poco/Data/Session.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pg_storage.h"

namespace b24es::pg {

// A database error with PostgreSQL's SQLSTATE ("" when the connection itself failed).
class PgError : public StorageError {
 public:
  PgError(const std::string& message, std::string sqlstate)
      : StorageError(message), sqlstate_(std::move(sqlstate)) {}
  const std::string& sqlstate() const { return sqlstate_; }
  // A deadlock or serialization failure: the transaction may simply be run again.
  bool retryable() const { return sqlstate_ == "40P01" || sqlstate_ == "40001"; }

 private:
  std::string sqlstate_;
};

// The values bound to $1, $2, ... of one statement, in text form (PostgreSQL converts them to
// the column's type); nullopt is NULL.
class Params {
 public:
  Params& add(std::int64_t v) { return text(std::to_string(v)); }
  Params& add(const std::optional<std::int64_t>& v) { return v ? add(*v) : nullValue(); }
  Params& add(const std::string& v) { return text(v); }
  Params& add(const char* v) { return text(v); }
  Params& add(const std::optional<std::string>& v) { return v ? text(*v) : nullValue(); }
  // Empty strings as NULL (optional endpoint and status fields).
  Params& textOrNull(const std::string& v) { return v.empty() ? nullValue() : text(v); }
  Params& nullValue() {
    values_.emplace_back();
    return *this;
  }
  std::size_t size() const { return values_.size(); }
  const std::vector<std::optional<std::string>>& values() const { return values_; }

 private:
  Params& text(std::string v) {
    values_.emplace_back(std::move(v));
    return *this;
  }
  std::vector<std::optional<std::string>> values_;
};

// A statement's result rows. Owns the PGresult. Columns are read as text or integers.
class Result {
 public:
  explicit Result(PGresult* r) : r_(r, &PQclear) {}
  int rows() const { return PQntuples(r_.get()); }
  bool isNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string text(int row, int col) const { return PQgetvalue(r_.get(), row, col); }
  std::int64_t integer(int row, int col) const;
  std::optional<std::string> optionalText(int row, int col) const {
    if (isNull(row, col)) return std::nullopt;
    return text(row, col);
  }
  std::optional<std::int64_t> optionalInteger(int row, int col) const {
    if (isNull(row, col)) return std::nullopt;
    return integer(row, col);
  }
  bool boolean(int row, int col) const { return !isNull(row, col) && text(row, col) == "t"; }
  // Rows changed by an INSERT, UPDATE or DELETE.
  std::int64_t affected() const;
  PGresult* raw() const { return r_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_;
};

// Statements queued to be sent together by Connection::pipeline(), in one round trip.
class Statements {
 public:
  // Queues `sql` (one statement). `prepare`: prepared on the connection on first use, as
  // Connection::query() does; false for texts that vary without bound (numbers written into
  // them), sent unnamed. Returns the index of its result in what pipeline() returns.
  std::size_t add(std::string sql, Params params = {}, bool prepare = true) {
    list_.push_back(Statement{std::move(sql), std::move(params), prepare});
    return list_.size() - 1;
  }
  bool empty() const { return list_.empty(); }
  std::size_t size() const { return list_.size(); }
  void clear() { list_.clear(); }

 private:
  friend class Connection;
  struct Statement {
    std::string sql;
    Params params;
    bool prepare;
  };
  std::vector<Statement> list_;
};

// One connection. Not thread-safe: one thread at a time.
class Connection {
 public:
  // Connects. Throws StorageError without the password.
  explicit Connection(const PgSettings& settings);

  // Runs `sql`, which may hold several statements (simple query protocol, no parameters).
  void exec(const std::string& sql);
  // Runs one statement with its parameters, prepared on this connection on first use (each
  // distinct text once). Throws PgError.
  Result query(const std::string& sql, const Params& params = {});
  // Runs `statements` in libpq's pipeline mode: all sent, one sync, then every result read in
  // order, so the lot costs one round trip. The server runs them one after another, each
  // starting after the one before it ended; after the first that fails it skips the rest up
  // to the sync (an open transaction is then in the failed state, for rollbackQuietly()).
  // Returns one result per statement; throws the first failure's PgError once every result
  // has been read.
  std::vector<Result> pipeline(const Statements& statements);
  // Rolls back an open transaction, if any; never throws.
  void rollbackQuietly() noexcept;
  // Whether the connection still works (a failed one is dropped by its owner and reopened).
  bool ok() const { return !broken_ && PQstatus(conn_) == CONNECTION_OK; }

 private:
  PgError error(PGresult* r) const;
  // The name `sql` is prepared under, preparing it on first use.
  const std::string& prepared(const std::string& sql);

  const std::string password_;  // for scrubbing messages; never shown
  Poco::Data::Session session_;
  PGconn* conn_;                                           // owned by session_
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
  std::uint64_t nextName_ = 0;  // names are never reused, though a failed Parse forgets one
  bool broken_ = false;         // a pipeline left the protocol in an unknown state
};

// A PostgreSQL message with `password` replaced by "***" (a server echoes nothing of it, but a
// message that quotes the connection string must not carry it either).
std::string scrub(std::string message, const std::string& password);

// BEGIN ... COMMIT that rolls back when not committed. Not thread-safe.
class Transaction {
 public:
  explicit Transaction(Connection& c) : c_(c) { c_.exec("BEGIN"); }
  ~Transaction() {
    if (!done_) c_.rollbackQuietly();
  }
  void commit() {
    c_.exec("COMMIT");
    done_ = true;
  }

 private:
  Connection& c_;
  bool done_ = false;
};

// SHA-256 of a migration's text, hex (the checksum of schema_migrations).
std::string migrationChecksum(const std::string& sql);

}  // namespace b24es::pg
