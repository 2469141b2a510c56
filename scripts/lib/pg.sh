# A throwaway PostgreSQL server for the test suite and the benchmarks (issue 16): initdb and
# pg_ctl of Debian's postgresql in a temp folder, listening on 127.0.0.1 at a free port and on a
# Unix socket inside that folder, run as an unprivileged user (PostgreSQL refuses to run as
# root, and CI runs as root). Source it; do not run it.
#
#   b24es_pg_start DIR   creates DIR (its parent must be open to other users, as /tmp and
#                        mktemp -d's own folder are), starts the server, exports B24ES_TEST_PG_URL
#                        (postgresql://b24es:PASSWORD@127.0.0.1:PORT/postgres, a superuser, so
#                        that tests can create a database per case)
#   b24es_pg_stop DIR    stops it (immediate) and removes DIR
#
# Password authentication over TCP (scram-sha-256), so that tests can check what a wrong
# password does and that no password reaches a log line.

B24ES_PG_BIN="${B24ES_PG_BIN:-/usr/lib/postgresql/15/bin}"
B24ES_PG_USER_NAME=b24es-pg  # the unprivileged system user the server runs as under root

# Runs "$@" as the server's user: itself when not root, else the dedicated system user.
b24es_pg_as_user() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  else
    runuser -u "$B24ES_PG_USER_NAME" -- "$@"
  fi
}

b24es_pg_start() {
  local dir="$1"
  if [ ! -x "$B24ES_PG_BIN/initdb" ]; then
    echo "b24es_pg_start: no $B24ES_PG_BIN/initdb (Debian package postgresql)" >&2
    return 1
  fi
  if [ "$(id -u)" -eq 0 ] && ! id "$B24ES_PG_USER_NAME" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$B24ES_PG_USER_NAME"
  fi
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown "$B24ES_PG_USER_NAME" "$dir"
  chmod 0700 "$dir"
  # A random password per run: tests read it from B24ES_TEST_PG_URL only.
  local password
  password="$(head -c 18 /dev/urandom | base64 | tr -d '+/=' | head -c 20)"
  printf '%s\n' "$password" >"$dir/pwfile"
  [ "$(id -u)" -eq 0 ] && chown "$B24ES_PG_USER_NAME" "$dir/pwfile"
  b24es_pg_as_user "$B24ES_PG_BIN/initdb" -D "$dir/data" -U b24es --pwfile="$dir/pwfile" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  rm -f "$dir/pwfile"
  # A port nothing listens on (see b24es_pg_free_port); the unix socket is the fallback.
  local port
  port="$(b24es_pg_free_port)"
  # fsync stays on and synchronous_commit at its default (on): the benchmark measures real
  # commits. max_connections above the default 100: several receivers, each with a read pool.
  b24es_pg_as_user "$B24ES_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
        -c max_connections=300 -c shared_buffers=64MB" start >/dev/null ||
    { cat "$dir/server.log" >&2; return 1; }
  echo "$port" >"$dir/port"
  export B24ES_TEST_PG_URL="postgresql://b24es:$password@127.0.0.1:$port/postgres"
}

b24es_pg_stop() {
  local dir="$1"
  [ -d "$dir/data" ] && b24es_pg_as_user "$B24ES_PG_BIN/pg_ctl" -D "$dir/data" -m immediate \
    -w stop >/dev/null 2>&1
  rm -rf "$dir"
}

# A TCP port on 127.0.0.1 that nothing listens on, from the ephemeral range.
b24es_pg_free_port() {
  local port used
  used="$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)"
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 20000))
    grep -qx "$port" <<<"$used" || { echo "$port"; return 0; }
  done
  echo "b24es_pg_free_port: no free port found" >&2
  return 1
}
