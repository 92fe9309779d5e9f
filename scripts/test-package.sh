#!/usr/bin/env bash
# Builds the Debian package from a clean clone of what is committed, checks
# it with lintian, installs it on this machine, and checks what an operator
# gets: the files, the units (systemd-analyze verify), `vmgroupd --version`,
# every man page (man -l), the service's group and QEMU user. Purges it
# afterwards. Installs as root (sudo when not root); run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vmgroup-package.XXXXXX")
cleanup() {
  $sudo dpkg --purge vmgroup >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

git clone -q --no-local . "$work/vmgroup"
(cd "$work/vmgroup" && dpkg-buildpackage -b -uc -us >"$work/build.log" 2>&1) || {
  tail -50 "$work/build.log"
  echo "test-package: dpkg-buildpackage failed" >&2
  exit 1
}
deb=$(ls "$work"/vmgroup_*.deb)
echo "test-package: built $(basename "$deb")"

# lintian: no errors (warnings are printed for a person to read).
lintian --fail-on error "$deb"

$sudo dpkg -i "$deb" >/dev/null
fail=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@" >"$work/check.out" 2>&1; then
    echo "test-package: ok: $what"
  else
    echo "test-package: FAILED: $what" >&2
    cat "$work/check.out" >&2
    fail=1
  fi
}
for f in /usr/sbin/vmgroupd /usr/bin/vmgroup /etc/pam.d/vmgroupd \
  /lib/systemd/system/vmgroupd.service /lib/systemd/system/vmgroupd.socket \
  /usr/lib/sysusers.d/vmgroup.conf /usr/lib/tmpfiles.d/vmgroup.conf \
  /usr/lib/sysctl.d/vmgroup.conf /etc/vmgroup/vmgroupd.conf \
  /usr/share/bash-completion/completions/vmgroup; do
  check "$f is installed" test -e "$f"
done
check "the units verify" systemd-analyze verify /lib/systemd/system/vmgroupd.service \
  /lib/systemd/system/vmgroupd.socket
check "vmgroupd --version" sh -c '/usr/sbin/vmgroupd --version | grep -q "^vmgroupd [0-9]"'
check "vmgroup --version" sh -c '/usr/bin/vmgroup --version | grep -q "^vmgroup [0-9]"'
pages=$(dpkg -L vmgroup | grep '^/usr/share/man/man[0-9]/.*\.gz$' || true)
check "man pages are installed" test -n "$pages"
for page in $pages; do
  check "man -l $page" sh -c "MANWIDTH=80 man -l '$page' 2>&1 >/dev/null | grep . && exit 1 || exit 0"
done
check "group vmgroup exists" getent group vmgroup
check "user vmgroup-qemu exists" getent passwd vmgroup-qemu
check "the state directory exists" test -d /var/lib/vmgroup
check "the peers' credentials directory is root's alone" \
  sh -c 'test "$(stat -c %a:%U /etc/vmgroup/peers)" = 700:root'
exit $fail
