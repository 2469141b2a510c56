// Internal to the SQLite backend: a statement prepared once and run many times, for the write
// path. POCO Data prepares a statement again on every `session << ...`; on the group-commit
// writer that was most of the cost of an event (profiled in issue 6), so the hot path keeps its
// statements prepared with SQLite's own API. Everything else uses POCO Data.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

namespace b24es::sqlite {

// Not thread-safe: owned and used by one thread, like the connection it was prepared on.
// Text bound with bind() must stay alive until the statement is reset (run() and the end of a
// row() loop reset it).
class Statement {
 public:
  // Prepares `sql` on `db`. Throws StorageError with SQLite's message.
  Statement(sqlite3* db, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are numbered from 1, as in SQLite.
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, const std::string& value);
  Statement& bind(int index, const std::optional<std::int64_t>& value);  // NULL when empty
  Statement& bind(int index, const std::optional<std::string>& value);   // NULL when empty
  Statement& bindNull(int index);
  // Binds text, or NULL when it is empty.
  Statement& bindTextOrNull(int index, const std::string& value);

  // Runs to completion and resets. Throws StorageError.
  void run();
  // Steps once: true with a row to read, false when done (then it is reset). Throws
  // StorageError (and resets).
  bool row();
  // Resets after row() returned true and the caller read what it needed.
  void reset();

  std::int64_t integer(int column) const;
  std::optional<std::int64_t> optionalInteger(int column) const;
  std::string text(int column) const;  // "" for NULL
  std::optional<std::string> optionalText(int column) const;

 private:
  [[noreturn]] void fail(int rc);

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace b24es::sqlite
