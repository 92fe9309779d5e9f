#!/usr/bin/env bash
# Includes point down only (ARCHITECTURE.md): each layer may include its own
# headers and those of the layers listed for it here, nothing above.
set -euo pipefail
cd "$(dirname "$0")/../src"

declare -A allowed=(
  [base]="base"
  [storage]="base storage"
  [hypervisor]="base storage hypervisor"
  [catalog]="base catalog"
  [engine]="base storage hypervisor catalog engine"
  [cim]="base cim"
  [schema]="schema"
  [services]="base catalog engine cim schema services"
  [remote]="base engine cim schema remote"
  [daemon]="base hypervisor catalog engine cim schema services remote daemon"
  [cli]="base cim schema cli"
)
status=0
for layer in "${!allowed[@]}"; do
  [[ -d $layer ]] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    target=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"${line#*:}")
    # Test-only code may use the shared test helpers.
    if [[ $target == testing && $file == *_test.cc ]]; then continue; fi
    if [[ " ${allowed[$layer]} " != *" $target "* ]]; then
      echo "layer violation: $file includes $target/ (a $layer file may use: ${allowed[$layer]})"
      status=1
    fi
  done < <(grep -rHE '^#include "[a-z_]+/' "$layer" || true)
done
exit $status
