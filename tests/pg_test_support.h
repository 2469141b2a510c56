// The throwaway PostgreSQL server of the suite (scripts/lib/pg.sh) as tests see it: its URL,
// a database per test folder, and plain SQL for white-box checks. Under scripts/test
// (B24ES_TEST_PG_REQUIRED=1) a missing server is a failure, never a silent skip.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace b24es::test {

// B24ES_TEST_PG_URL (a superuser on the throwaway server), or nullopt when not set. Throws
// std::runtime_error when it is not set but B24ES_TEST_PG_REQUIRED is.
std::optional<std::string> pgServerUrl();

// The URL of the database that belongs to `dir` (a TempDir's path): created empty when it
// does not exist yet, the same one again for the same folder. Throws std::runtime_error.
std::string pgDatabaseFor(const std::string& dir);

// Runs `sql` on the database at `url` and returns the first column of each row as text
// (NULL as "NULL"). Throws std::runtime_error with PostgreSQL's message.
std::vector<std::string> pgQuery(const std::string& url, const std::string& sql);

}  // namespace b24es::test
