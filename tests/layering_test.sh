#!/usr/bin/env bash
# The layering rules of README "Code tour" that the build alone cannot catch (a header found
# through a system include path compiles anywhere):
# - nothing in server/bitrix24/ includes POCO Net or the HTTP error answers (it knows no HTTP);
# - nothing outside server/app/ and storage/sqlite/ includes a SQLite header, POCO's SQLite
#   connector or the SQLite backend's own headers (only the wiring names a backend);
# - likewise nothing outside server/app/ and storage/postgresql/ includes libpq, POCO's
#   PostgreSQL connector or the PostgreSQL backend's headers;
# - only the storage backends include storage/group_commit.h (the writer's scheduling they
#   share; server/ talks to EventSink).
# Prints every offending line and exits 1 when there is one.
set -u
root="${1:?usage: layering_test.sh SOURCE_DIR}"
cd "$root" || exit 2
status=0
report() {
  echo "layering: $1"
  sed 's/^/  /' <<<"$2"
  status=1
}
hits=$(grep -rnE '#include *[<"](Poco/Net/|api_error\.h|common_handlers\.h)' server/bitrix24 || true)
[ -z "$hits" ] || report "server/bitrix24 must not include HTTP headers" "$hits"
hits=$(grep -rnE '#include *[<"](sqlite3\.h|Poco/Data/SQLite/|sqlite_[a-z_]*\.h|embedded_migrations\.h)' \
  server storage --include='*.h' --include='*.cpp' | grep -vE '^(server/app|storage/sqlite)/' || true)
[ -z "$hits" ] || report "only server/app and storage/sqlite may include SQLite headers" "$hits"
hits=$(grep -rnE '#include *[<"](libpq-fe\.h|Poco/Data/PostgreSQL/|pg_[a-z_]*\.h)' \
  server storage --include='*.h' --include='*.cpp' | grep -vE '^(server/app|storage/postgresql)/' || true)
[ -z "$hits" ] || report "only server/app and storage/postgresql may include PostgreSQL headers" "$hits"
hits=$(grep -rnE '#include *[<"]group_commit\.h' server storage --include='*.h' --include='*.cpp' |
  grep -vE '^storage/(sqlite/|postgresql/|group_commit\.cpp)' || true)
[ -z "$hits" ] || report "only the storage backends may include group_commit.h" "$hits"
# The check must have something to check: an empty or moved tree would pass silently.
for dir in server/bitrix24 server/app storage/sqlite storage/postgresql; do
  [ -n "$(ls "$dir"/*.cpp 2>/dev/null)" ] || report "no sources found" "$dir"
done
[ "$status" -eq 0 ] && echo "layering: all rules hold"
exit "$status"
