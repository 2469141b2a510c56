#!/usr/bin/env bash
# ctest package_test (issue 14, SPEC §10): `cmake --install` and `cpack -G DEB` from the build
# folder BUILD. Checks what lands where, the package's control data (Depends from
# dpkg-shlibdeps, the conffile, the maintainer scripts), `systemd-analyze verify` of the units
# and their `systemd-analyze security` exposure (2.0 or lower). Usage: package_test.sh BUILD
set -euo pipefail
build="$(cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
for tool in cpack dpkg-deb dpkg-shlibdeps systemd-analyze; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/test installs it)"
done

# The exposure `systemd-analyze security` gives unit file $1 (offline: no systemd needed).
exposure() {
  systemd-analyze security --offline=yes "$1" 2>&1 |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
check_exposure() {
  local level
  level="$(exposure "$1")"
  [ -n "$level" ] || fail "no exposure level for $1"
  awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || fail "$(basename "$1") exposure $level > 2.0"
  echo "$(basename "$1"): exposure $level"
}

# 1. cmake --install into a prefix of its own.
stage="$work/stage"
cmake --install "$build" --prefix "$stage" >/dev/null
for f in bin/b24-event-store lib/systemd/system/b24-event-store.service \
  lib/systemd/system/b24-event-store-refresh.service lib/systemd/system/b24-event-store-refresh.timer \
  lib/sysusers.d/b24-event-store.conf lib/tmpfiles.d/b24-event-store.conf \
  etc/b24-event-store/b24-event-store.properties share/doc/b24-event-store/README.md \
  share/doc/b24-event-store/b24-event-store.properties.example; do
  [ -e "$stage/$f" ] || fail "cmake --install did not install $f"
done
units="$stage/lib/systemd/system"
grep -qx "ExecStart=$stage/bin/b24-event-store serve --config $stage/etc/b24-event-store/b24-event-store.properties" \
  "$units/b24-event-store.service" || fail "serve unit's ExecStart is not the installed binary"
grep -q "^ExecStart=$stage/bin/b24-event-store refresh-tokens " "$units/b24-event-store-refresh.service" ||
  fail "refresh unit's ExecStart is not the installed binary"
grep -qx 'Type=notify' "$units/b24-event-store.service" || fail "serve unit is not Type=notify"
grep -qx 'db.path = /var/lib/b24-event-store/events.db' \
  "$stage/etc/b24-event-store/b24-event-store.properties" || fail "installed db.path"
grep -q '^@\|@B24ES' "$units"/* && fail "an unsubstituted @VARIABLE@ in a unit"
# The binary the units name exists here, so verify checks ExecStart too.
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$units/b24-event-store.service" \
  "$units/b24-event-store-refresh.service" "$units/b24-event-store-refresh.timer" ||
  fail "systemd-analyze verify"
check_exposure "$units/b24-event-store.service"
check_exposure "$units/b24-event-store-refresh.service"
# The installed configuration starts serve as it is (ports and database moved into $work).
"$stage/bin/b24-event-store" migrate --config "$stage/etc/b24-event-store/b24-event-store.properties" \
  --db "$work/events.db" >/dev/null || fail "the installed configuration does not load"

# 2. cpack -G DEB.
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/cpack" >/dev/null
deb="$(ls "$work"/cpack/b24-event-store_*.deb)"
[ -f "$deb" ] || fail "cpack made no .deb"
contents="$(dpkg-deb -c "$deb")"
for f in ./usr/bin/b24-event-store ./usr/lib/systemd/system/b24-event-store.service \
  ./usr/lib/systemd/system/b24-event-store-refresh.service \
  ./usr/lib/systemd/system/b24-event-store-refresh.timer ./usr/lib/sysusers.d/b24-event-store.conf \
  ./usr/lib/tmpfiles.d/b24-event-store.conf ./etc/b24-event-store/b24-event-store.properties \
  ./usr/share/doc/b24-event-store/README.md; do
  grep -q " $f\$" <<<"$contents" || fail "the package has no $f"
done
info="$(dpkg-deb -I "$deb")"
depends="$(dpkg-deb -f "$deb" Depends)"
echo "Depends: $depends"
for lib in libc6 libstdc++6 libpoco libsqlite3-0 libsystemd0; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib (dpkg-shlibdeps): $depends"
done
for script in postinst prerm postrm conffiles; do
  grep -q " $script\$\| $script " <<<"$info" || fail "the package has no $script"
done
conffiles="$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)"
[ "$conffiles" = /etc/b24-event-store/b24-event-store.properties ] ||
  fail "conffiles is '$conffiles'"
postinst="$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst)"
for step in "systemd-sysusers b24-event-store.conf" "systemd-tmpfiles --create b24-event-store.conf" \
  "daemon-reload"; do
  grep -q "$step" <<<"$postinst" || fail "postinst does not run $step"
done
dpkg-deb -x "$deb" "$work/root"
packaged="$work/root/usr/lib/systemd/system"
grep -qx 'ExecStart=/usr/bin/b24-event-store serve --config /etc/b24-event-store/b24-event-store.properties' \
  "$packaged/b24-event-store.service" || fail "packaged serve unit's ExecStart"
grep -q '^ExecStart=/usr/bin/b24-event-store refresh-tokens ' "$packaged/b24-event-store-refresh.service" ||
  fail "packaged refresh unit's ExecStart"
check_exposure "$packaged/b24-event-store.service"
echo "package: $(basename "$deb") ok"
