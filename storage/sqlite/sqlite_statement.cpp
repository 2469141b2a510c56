#include "sqlite_statement.h"

#include "storage.h"

namespace b24es::sqlite {

Statement::Statement(sqlite3* db, const char* sql) : db_(db) {
  int rc = ::sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    throw StorageError(std::string("cannot prepare statement: ") + ::sqlite3_errmsg(db_));
  }
}

Statement::~Statement() { ::sqlite3_finalize(stmt_); }

Statement& Statement::bind(int index, std::int64_t value) {
  ::sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::bind(int index, const std::string& value) {
  ::sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  return *this;
}

Statement& Statement::bind(int index, const std::optional<std::int64_t>& value) {
  return value ? bind(index, *value) : bindNull(index);
}

Statement& Statement::bind(int index, const std::optional<std::string>& value) {
  return value ? bind(index, *value) : bindNull(index);
}

Statement& Statement::bindNull(int index) {
  ::sqlite3_bind_null(stmt_, index);
  return *this;
}

Statement& Statement::bindTextOrNull(int index, const std::string& value) {
  return value.empty() ? bindNull(index) : bind(index, value);
}

void Statement::run() {
  while (row()) {
  }
}

bool Statement::row() {
  int rc = ::sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) {
    reset();
    return false;
  }
  fail(rc);
}

void Statement::reset() {
  ::sqlite3_reset(stmt_);
  ::sqlite3_clear_bindings(stmt_);
}

void Statement::fail(int rc) {
  std::string message = ::sqlite3_errmsg(db_);
  if (message.empty()) message = ::sqlite3_errstr(rc);
  reset();
  throw StorageError(message);
}

std::int64_t Statement::integer(int column) const { return ::sqlite3_column_int64(stmt_, column); }

std::optional<std::int64_t> Statement::optionalInteger(int column) const {
  if (::sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
  return integer(column);
}

std::string Statement::text(int column) const {
  const unsigned char* p = ::sqlite3_column_text(stmt_, column);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<std::size_t>(::sqlite3_column_bytes(stmt_, column)));
}

std::optional<std::string> Statement::optionalText(int column) const {
  if (::sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
  return text(column);
}

}  // namespace b24es::sqlite
