#!/usr/bin/env bash
# Installs the Debian package as an admin would, and checks what it promises: the binary and
# its version, the default configuration passing `exsync config check`, the systemd unit's
# syntax and hardening, the system user, the files' owners and modes, state surviving an
# upgrade, remove and purge, and purge taking away only what the package made.
#
#   tests/package/install.sh PATH.deb
#
# Needs root (dpkg -i). It leaves the machine as it found it: the package purged, the user gone.
set -euo pipefail
deb=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }
[ "$(id -u)" = 0 ] || fail "the install test needs root (dpkg -i)"
# Two checkouts testing on one machine take turns: the package is installed system-wide.
exec 9>/tmp/exsync-package-test.lock
flock 9
if dpkg-query -W -f='${Status}' exsync 2>/dev/null | grep -q "install ok installed"; then
  fail "an exsync package is already installed here; the test would replace it"
fi
trap 'dpkg --purge exsync >/dev/null 2>&1 || true; rm -rf /var/lib/exsync; userdel exsync 2>/dev/null || true; groupdel exsync 2>/dev/null || true' EXIT

expected=$(dpkg-deb -f "$deb" Version)

step "dpkg -i $(basename "$deb")"
dpkg -i "$deb" >/dev/null

step "/usr/bin/exsync --version"
v=$(/usr/bin/exsync --version)
echo "$v"
[[ $v =~ ^exsync\ $expected\ \(commit\ ([0-9a-f]{7,40}|unknown)\)$ ]] ||
  fail "--version printed '$v', expected 'exsync $expected (commit <hash>)'"

step "exsync config check /etc/exsync/exsync.toml"
out=$(/usr/bin/exsync config check /etc/exsync/exsync.toml) ||
  fail "the packaged configuration does not pass config check:
$out"
grep -q "^store: SQLite /var/lib/exsync/exsync.db$" <<<"$out" ||
  fail "the packaged configuration keeps the state database elsewhere:
$out"
# The service's user reads it too (group exsync, 0640).
sudo_exsync() { setpriv --reuid=exsync --regid=exsync --clear-groups -- "$@"; }
sudo_exsync /usr/bin/exsync config check /etc/exsync/exsync.toml >/dev/null ||
  fail "the exsync user cannot read /etc/exsync/exsync.toml"

step "the service user and the files' owners and modes"
getent passwd exsync | grep -q ':/var/lib/exsync:/usr/sbin/nologin$' ||
  fail "user exsync: $(getent passwd exsync)"
mode() { stat -c '%U:%G %a' "$1"; }
[ "$(mode /etc/exsync)" = "root:exsync 750" ] || fail "/etc/exsync is $(mode /etc/exsync)"
[ "$(mode /etc/exsync/exsync.toml)" = "root:exsync 640" ] ||
  fail "/etc/exsync/exsync.toml is $(mode /etc/exsync/exsync.toml)"
[ "$(mode /var/lib/exsync)" = "exsync:exsync 700" ] || fail "/var/lib/exsync is $(mode /var/lib/exsync)"
[ "$(mode /usr/bin/exsync)" = "root:root 755" ] || fail "/usr/bin/exsync is $(mode /usr/bin/exsync)"
dpkg-query -W -f='${Conffiles}\n' exsync | grep -q '/etc/exsync/exsync.toml' ||
  fail "/etc/exsync/exsync.toml is not a conffile"

step "systemd-analyze verify exsync.service"
systemd-analyze verify /lib/systemd/system/exsync.service
step "systemd-analyze security --offline (exposure at most 2.0, OK)"
security=$(systemd-analyze security --offline=yes --threshold=20 \
  /lib/systemd/system/exsync.service 2>&1) ||
  fail "the unit is more exposed than 2.0; what systemd-analyze security holds against it:
$(grep '✗' <<<"$security")
$(tail -n 1 <<<"$security")"
tail -n 1 <<<"$security"

step "admin commands as the service user, with the unit's key file"
sudo_exsync /usr/bin/exsync -c /etc/exsync/exsync.toml secrets set exchange.password \
  --key-file /var/lib/exsync/exsync.key <<<"not-a-real-password" >/dev/null
[ "$(mode /var/lib/exsync/exsync.key)" = "exsync:exsync 600" ] ||
  fail "the master key is $(mode /var/lib/exsync/exsync.key)"
[ "$(mode /var/lib/exsync/exsync.db)" = "exsync:exsync 600" ] ||
  fail "the state database is $(mode /var/lib/exsync/exsync.db)"
key_sum=$(sha256sum /var/lib/exsync/exsync.key /var/lib/exsync/exsync.db)

step "upgrade: the admin's configuration and the state stay as they are"
echo "# edited by the admin" >>/etc/exsync/exsync.toml
chmod 0644 /etc/exsync/exsync.toml
dpkg -i --force-confold "$deb" >/dev/null
tail -n 1 /etc/exsync/exsync.toml | grep -q "edited by the admin" || fail "the upgrade replaced the edited configuration"
[ "$(mode /etc/exsync/exsync.toml)" = "root:exsync 644" ] || fail "the upgrade reset the configuration's mode"
[ "$(sha256sum /var/lib/exsync/exsync.key /var/lib/exsync/exsync.db)" = "$key_sum" ] ||
  fail "the upgrade changed the key or the state database"
sudo_exsync /usr/bin/exsync -c /etc/exsync/exsync.toml secrets list \
  --key-file /var/lib/exsync/exsync.key | grep -q exchange.password ||
  fail "the stored secret is gone after the upgrade"

step "dpkg --remove keeps the configuration and the state"
dpkg --remove exsync >/dev/null
[ ! -e /usr/bin/exsync ] || fail "/usr/bin/exsync is still there after remove"
[ -f /etc/exsync/exsync.toml ] || fail "remove took the configuration"
[ "$(sha256sum /var/lib/exsync/exsync.key /var/lib/exsync/exsync.db)" = "$key_sum" ] ||
  fail "remove changed the key or the state database"

step "dpkg --purge with state: the configuration goes, the database and key stay"
purge_out=$(dpkg --purge exsync 2>&1)
[ ! -e /etc/exsync ] || fail "purge left /etc/exsync: $(ls -la /etc/exsync)"
[ "$(sha256sum /var/lib/exsync/exsync.key /var/lib/exsync/exsync.db)" = "$key_sum" ] ||
  fail "purge changed the key or the state database"
grep -q "kept /var/lib/exsync" <<<"$purge_out" || fail "purge did not say it kept the state: $purge_out"
getent passwd exsync >/dev/null || fail "purge removed the user that still owns /var/lib/exsync"

step "a fresh install, then purge with no state: nothing is left"
rm -rf /var/lib/exsync
dpkg -i "$deb" >/dev/null
dpkg --purge exsync >/dev/null
for left in /etc/exsync /var/lib/exsync /usr/bin/exsync /lib/systemd/system/exsync.service; do
  [ ! -e "$left" ] || fail "purge left $left"
done
! getent passwd exsync >/dev/null || fail "purge left the exsync user"
! getent group exsync >/dev/null || fail "purge left the exsync group"
echo "package install test: OK"
