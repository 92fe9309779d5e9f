#!/usr/bin/env bash
# Installs what vmgroup needs, builds it, and runs every test: the layer and
# format checks, the unit and integration tests (real QEMU), the Debian
# package (scripts/test-package.sh), then the tests again under ASan +
# UBSan, then each fuzz target for 20 s (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/check-layers.sh
scripts/check-format.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVMGROUP_WERROR=ON \
  -DBUILD_TESTING=ON -DVMGROUP_BUILD_BENCH=ON
cmake --build build
ctest --test-dir build --output-on-failure -j2 --timeout 900
# The Debian package, built from a clean clone, installed and checked.
scripts/test-package.sh

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVMGROUP_SANITIZE=ON \
  -DVMGROUP_WERROR=ON -DBUILD_TESTING=ON -DVMGROUP_BUILD_BENCH=ON
cmake --build build-asan
ctest --test-dir build-asan --output-on-failure -j2 --timeout 900
scripts/fuzz.sh 20
