#!/usr/bin/env bash
# Installs everything vmgroup needs to build and test on Debian 12, from Debian's
# own packages. Idempotent: packages already present are left alone, so a second
# run costs one dpkg query.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  qemu-system-x86 qemu-utils
  libsqlite3-dev nlohmann-json3-dev libgtest-dev libpugixml-dev
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  libpam0g-dev libxxhash-dev sblim-wbemcli
  libmicrohttpd-dev libcurl4-gnutls-dev gnutls-bin curl openssl
  cpio gzip e2fsprogs clang-format git
  clang libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
