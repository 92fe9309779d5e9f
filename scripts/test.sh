#!/usr/bin/env bash
# Installs what vmgroup needs, builds it, and runs every test: the layer and
# format checks, the unit and integration tests (real QEMU), the Debian
# package (scripts/test-package.sh), then most tests again under ASan + UBSan
# built by clang, then each fuzz target for 20 s (docs/fuzzing.md). Prints
# how long each stage took at the end, also when one fails: CI must end
# within 90 minutes on 2 cores.
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

# Line tables only (-g1): backtraces and sanitizer reports keep file and
# line, and a build takes a third less time than with full debug info.
relwithdebinfo=(-DCMAKE_BUILD_TYPE=RelWithDebInfo '-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG')

stage configure cmake -S . -B build -G Ninja "${relwithdebinfo[@]}" \
  -DVMGROUP_WERROR=ON -DBUILD_TESTING=ON -DVMGROUP_BUILD_BENCH=ON
stage build cmake --build build
stage tests ctest --test-dir build --output-on-failure -j2 --timeout 900
# The Debian package, built from a clean clone, installed and checked.
stage package scripts/test-package.sh

# Under ASan and UBSan, built by clang (a second compiler's warnings, as
# errors too): every test but the LONG ones (cmake/VmgroupTest.cmake) and the
# crash campaign, whose minutes go to guests and random kills the first run
# already checks; then each fuzz target for 20 s. One build serves both:
# scripts/fuzz.sh builds its targets in build-fuzz.
stage sanitize-configure env CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja \
  "${relwithdebinfo[@]}" -DVMGROUP_FUZZ=ON -DVMGROUP_WERROR=ON -DBUILD_TESTING=ON \
  -DVMGROUP_BUILD_BENCH=OFF
stage sanitize-build cmake --build build-fuzz --target sanitized_tests fuzz_targets
stage sanitize-tests ctest --test-dir build-fuzz --output-on-failure -j2 --timeout 900 \
  -L 'unit|integration' -LE long
stage fuzz scripts/fuzz.sh 20
