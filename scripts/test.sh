#!/usr/bin/env bash
# Installs what vmgroup needs, builds it, and runs every test: the layer and
# format checks, the unit and integration tests (real QEMU), the Debian
# package (scripts/test-package.sh), then the tests again under ASan +
# UBSan, then each fuzz target for 20 s (docs/fuzzing.md). Prints how long
# each stage took at the end, also when one fails: CI must end within 90
# minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

timings=()
trap 'printf "stage times:\n"; printf "  %s\n" "${timings[@]}"' EXIT
stage() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  timings+=("$(printf '%-22s %5d s' "$name" $((SECONDS - start)))")
}

stage install scripts/install-deps.sh
stage checks bash -c 'scripts/check-layers.sh && scripts/check-format.sh'

stage configure cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVMGROUP_WERROR=ON -DBUILD_TESTING=ON -DVMGROUP_BUILD_BENCH=ON
stage build cmake --build build
stage tests ctest --test-dir build --output-on-failure -j2 --timeout 900
# The Debian package, built from a clean clone, installed and checked.
stage package scripts/test-package.sh

# Under the sanitizers: every test but the benchmarks' (timings mean nothing
# here) and the crash campaign (random kills whose invariants the first run
# already checks; under ASan it is the slowest test, 260 s of a CI run near
# its 90 minutes).
stage asan-configure cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DVMGROUP_SANITIZE=ON -DVMGROUP_WERROR=ON -DBUILD_TESTING=ON -DVMGROUP_BUILD_BENCH=OFF
stage asan-build cmake --build build-asan
stage asan-tests ctest --test-dir build-asan --output-on-failure -j2 --timeout 900 -LE campaign
stage fuzz scripts/fuzz.sh 20
