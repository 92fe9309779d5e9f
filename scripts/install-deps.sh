#!/usr/bin/env bash
# Installs everything vmgroup needs to build and test on Debian 12, from Debian's
# own packages, then its system accounts (dist/sysusers.d/vmgroup.conf: group
# vmgroup, user vmgroup-qemu that QEMU runs as) and the kernel setting an
# unprivileged QEMU needs for snapshots with memory (dist/sysctl.d/vmgroup.conf).
# Idempotent: what is present is left alone, so a second run costs a few queries.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config
  qemu-system-x86 qemu-utils
  libsqlite3-dev nlohmann-json3-dev libgtest-dev libpugixml-dev
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  tini  # testing/private_libvirtd: reaps the QEMUs libvirtd orphans in its PID namespace
  iproute2 util-linux  # testing/net_hosts: ip, and nsenter/unshare for hosts as network namespaces
  libpam0g-dev libxxhash-dev sblim-wbemcli
  libmicrohttpd-dev libcurl4-gnutls-dev gnutls-bin curl openssl
  cpio gzip e2fsprogs clang-format git procps
  clang libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer
  libnbd-dev  # storage/nbd_reader: the NBD client that reads a backup session's changed ranges
  libnbd-bin  # nbdinfo, nbdcopy: the tests read backup sessions' NBD exports
  libsystemd-dev  # daemon/systemd: sd_notify (Type=notify), sd_listen_fds (socket activation)
  systemd  # systemd-socket-activate, systemd-analyze: the tests play systemd's part
  debhelper dpkg-dev fakeroot lintian man-db  # scripts/test-package.sh: the .deb, built and checked
  bash-completion  # tests/shell/bash_completion_test.sh
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The accounts, by systemd-sysusers where it exists (it needs no running
# systemd), else by reading its g/u/m lines into groupadd and useradd.
sysusers=dist/sysusers.d/vmgroup.conf
if command -v systemd-sysusers >/dev/null; then
  $sudo systemd-sysusers "$PWD/$sysusers"  # a relative name is looked up in sysusers.d
else
  while read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    eval "set -- $line"  # type, name, id/group, GECOS in quotes, home, shell
    case $1 in
      g) getent group "$2" >/dev/null || $sudo groupadd --system "$2" ;;
      u) getent passwd "$2" >/dev/null ||
           $sudo useradd --system --user-group --no-create-home --home-dir / \
             --shell "${6:-/usr/sbin/nologin}" --comment "$4" "$2" ;;
      m) getent group "$3" >/dev/null || $sudo groupadd --system "$3"
         id -nG "$2" | grep -qw "$3" || $sudo usermod -a -G "$3" "$2" ;;
    esac
  done < "$sysusers"
fi

sysctl=dist/sysctl.d/vmgroup.conf
if [[ $(sysctl -n vm.unprivileged_userfaultfd) != 1 ]]; then
  echo "install-deps: applying $sysctl (see the comment there)" >&2
  $sudo sysctl -q -p "$sysctl" ||
    echo "install-deps: could not apply $sysctl: snapshots with memory fail while QEMU runs" \
      "as an unprivileged user" >&2
fi
