#!/usr/bin/env bash
# dist/bash-completion/vmgroup against the built vmgroup: commands, verbs and
# options complete from the CLI's own help (no daemon needed).
#   bash_completion_test.sh DIR-OF-VMGROUP SOURCE-DIR
set -uo pipefail
source /usr/share/bash-completion/bash_completion
export PATH=$1:$PATH
source "$2/dist/bash-completion/vmgroup"

failed=0
expect() {  # expect "WANT" WORDS... : the completions of the last word
  local want=$1
  shift
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _vmgroup
  if [[ "${COMPREPLY[*]}" != "$want" ]]; then
    echo "FAILED: [$*] completes to [${COMPREPLY[*]}], want [$want]"
    failed=1
  fi
}
expect "snapshot" vmgroup sn
expect "start stop" vmgroup vm st
expect "begin" vmgroup --json backup b
expect "apply create delete export list release show to-refpoint" vmgroup snapshot ""
expect "--consistency --name --no-wait --type --help" vmgroup snapshot create shop --
expect "--as-new --no-wait --help" vmgroup import /tmp --
expect "--connect --cacert --password-file --json --help --version" vmgroup --
exit $failed
