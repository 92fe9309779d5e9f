#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/fuzzing.md) in build-fuzz/ with
# clang, ASan and UBSan, and runs each for SECONDS on a copy of its seed corpus
# (fuzz/corpus/TARGET/ is never written). Prints per target the inputs run and
# what it found; exits 1 if any target found a crash, a leak, a timeout or ran
# out of memory, leaving the input that did it in build-fuzz/artifacts/TARGET/.
#
# Usage: scripts/fuzz.sh SECONDS [TARGET...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: scripts/fuzz.sh SECONDS [TARGET...]"
seconds=${1:?$usage}
shift
if [[ ! $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: SECONDS must be a whole number above 0, not '$seconds'" >&2
  exit 2
fi

# Each target with the longest input it is given: a few times its largest seed.
declare -A max_len=(
  [xml_request]=16384
  [xml_response]=16384
  [cim_object_header]=1024
  [qmp_client]=65536
  [guest_agent]=4096
  [export_manifest]=16384
  [qcow2_header]=8192
)
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(xml_request xml_response cim_object_header qmp_client guest_agent export_manifest
           qcow2_header)
fi
for t in "${targets[@]}"; do
  if [[ -z ${max_len[$t]:-} ]]; then
    echo "fuzz.sh: no target '$t' (targets: ${!max_len[*]})" >&2
    exit 2
  fi
done

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVMGROUP_FUZZ=ON >/dev/null
cmake --build build-fuzz --target "${targets[@]/%/_fuzz}"

root=$PWD
failed=()
for t in "${targets[@]}"; do
  work=$root/build-fuzz/run/$t
  artifacts=$root/build-fuzz/artifacts/$t
  rm -rf "$work" "$artifacts"  # artifacts/: what the last run found
  mkdir -p "$work/corpus" "$work/tmp" "$artifacts"
  cp fuzz/corpus/"$t"/* "$work/corpus/"
  rc=0
  started=$SECONDS
  # -timeout: seconds one input may take; -rss_limit_mb: memory for the process.
  TMPDIR=$work/tmp UBSAN_OPTIONS=print_stacktrace=1 "build-fuzz/fuzz/${t}_fuzz" "$work/corpus" \
    -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$work/log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  if ((rc == 0)); then
    found="nothing"
  else
    failed+=("$t")
    # What happened (an exception's what(), else the sanitizer's or
    # libFuzzer's summary) and where in our code.
    found=$(grep -m1 -E 'what\(\):|^SUMMARY:|ALARM: working on the last Unit|out-of-memory' \
      "$work/log" | sed 's/^ *//' || true)
    where=$(grep -E '^ +#[0-9]+ ' "$work/log" | grep -m1 -oE "$root/(src|fuzz)/[^ ]+\.cc:[0-9]+" |
      sed "s|^$root/||" || true)
    input=$(ls -t "$artifacts" | head -1)
    found="${found:-exit code $rc}${where:+ at $where}; input: build-fuzz/artifacts/$t/$input"
  fi
  printf '%-18s %10s inputs in %ss: %s\n' "$t" "${runs:-?}" "$((SECONDS - started))" "$found"
done

if ((${#failed[@]})); then
  echo "fuzz.sh: findings in: ${failed[*]} (reproduce: build-fuzz/fuzz/TARGET_fuzz INPUT)" >&2
  exit 1
fi
