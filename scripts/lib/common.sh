# Shared by scripts/run, scripts/test and the other scripts: install missing Debian packages,
# configure and build. Source it; do not run it.

B24ES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# The Debian packages every build needs.
B24ES_BUILD_PACKAGES=(cmake make g++ pkg-config libpoco-dev libboost-test-dev libsqlite3-dev
  sqlite3 ca-certificates curl procps)

# What the tests need besides the build: php-cli for tests/php_differential_test.cpp, which
# compares the form decoder with PHP's own $_POST (`php -S`).
B24ES_TEST_PACKAGES=(php-cli)

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
