# Shared by scripts/run, scripts/test and the other scripts: install missing Debian packages,
# configure and build. Source it; do not run it.

B24ES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# The Debian packages every build needs.
B24ES_BUILD_PACKAGES=(cmake make g++ clang pkg-config libpoco-dev libboost-test-dev libsqlite3-dev
  libsystemd-dev sqlite3 ca-certificates curl procps libjs-chart.js libpq-dev)

# What the tests need besides the build:
# - package_test: cpack's DEB generator runs dpkg-shlibdeps (dpkg-dev) on what `file` says is an
#   ELF file; systemd-analyze (systemd) checks the units;
# - php_differential_test: php-cli, whose `php -S` decodes form bodies as PHP's own $_POST;
# - dashboard_browser_test: a real headless Chromium driven over WebDriver (chromium-driver);
# - the PostgreSQL suites: a throwaway server (postgresql, scripts/lib/pg.sh; psql from
#   postgresql-client for the tests that read the schema), ss (iproute2) to find a free port.
B24ES_TEST_PACKAGES=(dpkg-dev file systemd php-cli chromium chromium-driver postgresql
  postgresql-client iproute2)

# What the benchmarks run by hand need (scripts/bench-*): wrk for load, GNU time for peak RSS,
# sqlite3_analyzer (sqlite3-tools) for bytes per event by table and index.
B24ES_BENCH_PACKAGES=(wrk time sqlite3-tools)

# What the suite needs besides the build: node and npm for the OpenAPI linter (openapi_lint).
# Installed only when no npm is on PATH, so a Node.js from elsewhere (NodeSource) is kept.
B24ES_NODE_PACKAGES=(nodejs npm)

# The OpenAPI linter, pinned; installed under the build folder, never committed.
B24ES_REDOCLY_VERSION=1.34.5

# Installs the OpenAPI linter into $1/npm unless it is there already.
b24es_install_linter() {
  local prefix="$1/npm"
  command -v npm >/dev/null || b24es_install_packages "${B24ES_NODE_PACKAGES[@]}"
  [ -x "$prefix/node_modules/.bin/redocly" ] && return 0
  mkdir -p "$prefix"
  echo "installing @redocly/cli@$B24ES_REDOCLY_VERSION into $prefix" >&2
  npm install --no-audit --no-fund --no-save --prefix "$prefix" \
    "@redocly/cli@$B24ES_REDOCLY_VERSION" >/dev/null
}

# Installs the named Debian packages that are not installed yet; does nothing when all are.
b24es_install_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing: ${missing[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Configures $1 (a folder under the repo) with the cmake arguments after it. Arguments not given
# keep their cached values, so scripts/run and scripts/test share build/ without rebuilding.
b24es_configure() {
  local dir="$1"
  shift
  cmake -S "$B24ES_ROOT" -B "$B24ES_ROOT/$dir" "$@" >/dev/null
}

# Builds the configured folder $1; with more arguments, only those targets.
b24es_compile() {
  local dir="$1"
  shift
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$B24ES_ROOT/$dir" -j"$(nproc)" "${targets[@]}"
}
