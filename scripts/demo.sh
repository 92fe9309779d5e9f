#!/usr/bin/env bash
# The main job: installs what is needed, builds vmgroupd and vmgroup, starts
# the daemon on a private state directory and socket, and shows a group of
# three VMs snapshotted as one through the CLI and through wbemcli, a
# standard WBEM client. Everything it starts it stops again, by PID.
#
#   scripts/demo.sh [--accel auto|kvm|tcg]     (default: vmgroupd's own, auto:
#                                               KVM where a tiny guest proves it runs)
set -euo pipefail
cd "$(dirname "$0")/.."

accel=auto
if [[ ${1:-} == --accel ]]; then accel=${2:?--accel needs auto, kvm or tcg}; fi

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target vmgroupd vmgroup >/dev/null

work=$(mktemp -d /tmp/vmgroup-demo.XXXXXX)
# Run as root, vmgroupd runs QEMU as vmgroup-qemu, which must reach the VMs'
# run directories below (mktemp makes the directory 0700).
chmod 0711 "$work"
vmgroup=$PWD/build/src/cli/vmgroup
export VMGROUP_CONNECT=unix:$work/vmgroupd.sock
daemon=0
cleanup() {
  if ((daemon > 0)); then
    for vm in db app1 app2; do "$vmgroup" vm turn-off "$vm" >/dev/null 2>&1 || true; done
    kill -TERM "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

build/src/daemon/vmgroupd --no-config --state-dir "$work/state" --listen "unix:$work/vmgroupd.sock" \
  --listen http://127.0.0.1:0 --insecure-loopback --accel "$accel" >"$work/vmgroupd.log" 2>&1 &
daemon=$!
for _ in $(seq 300); do # auto's probe of KVM takes up to 5 s
  grep -q "vmgroupd ready" "$work/vmgroupd.log" && break
  kill -0 "$daemon" 2>/dev/null || { cat "$work/vmgroupd.log"; exit 1; }
  sleep 0.1
done
port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/vmgroupd.log")
echo "vmgroupd is running (state in $work/state, --accel $accel)"

run() {
  echo
  echo "\$ $*"
  if [[ $1 == vmgroup ]]; then "$vmgroup" "${@:2}"; else "$@"; fi
}
run vmgroup host # which accelerator the daemon chose
run vmgroup vm create db --memory 64 --disk 64M --start
run vmgroup vm create app1 --memory 64 --disk 32M --disk 16M --start
run vmgroup vm create app2 --memory 64 --disk 32M --start
run vmgroup group create shop
run vmgroup group add shop db app1 app2
run vmgroup vm list
run vmgroup snapshot create shop --name "before upgrade"
run vmgroup snapshot create shop --type recovery
run vmgroup snapshot list shop
run vmgroup job list
run wbemcli ei "http://127.0.0.1:$port/root/virtualization/v2:Msvm_SnapshotCollection"
echo
echo "Done: the VMs and the daemon are stopped on exit."
