#!/usr/bin/env bash
# The main job until the daemon exists: installs what is needed, builds, and
# runs the engine demo (a group of tiny QEMU VMs snapshotted as one).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target vmgroup-demo
exec build/src/tools/vmgroup-demo "$@"
