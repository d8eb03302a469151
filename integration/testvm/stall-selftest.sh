#!/usr/bin/env bash
# Checks testvm.sh's stall handling end to end: a guest whose heartbeat stops is reported as
# stalled (a STALL banner with the monitor's report), the command is rerun on a fresh machine
# and its status is the rerun's; a command that stalls on every try fails with 123. The stall
# is made by stopping the guest's heartbeat process (SIGSTOP), which from the host looks the
# same as a frozen machine. Prints 'N passed, N failed'; exits 1 when a check failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d /tmp/hull-stall-selftest.XXXXXX)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
check() { # NAME CONDITION...
    local name="$1"; shift
    if "$@"; then passed=$((passed + 1)); echo "PASS $name"
    else failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/  | /' "$work/err" | tail -n 40; fi
}

# Says it finished a part of its work (HULL-TESTVM-DONE), stops the heartbeat on the tries named
# in STALL_TRIES, then prints which try it ran on and what earlier tries finished, and exits 3.
# shellcheck disable=SC2016 # expanded in the guest
cmd='echo HULL-TESTVM-DONE part-of-try-$HULL_TESTVM_TRY=ok; case " $STALL_TRIES " in *" $HULL_TESTVM_TRY "*) kill -STOP "$(cat /run/testvm-heartbeat.pid)"; sleep 600 ;; esac; echo ran-on-try-$HULL_TESTVM_TRY; echo "earlier-tries-did:$HULL_TESTVM_DONE"; exit 3'

run() { # STALL_TRIES RETRIES
    local rc=0
    HULL_TESTVM_STALL_LOG="$work/stalls" "$here/testvm.sh" --no-hull --stall-timeout 10 --stall-retries "$2" \
        --timeout 300 --env "STALL_TRIES=$1" -- sh -c "$cmd" >"$work/out" 2>"$work/err" || rc=$?
    echo "$rc" >"$work/rc"
}

run 1 1
check "a stall on the first try: rerun, the rerun's status (3) and output" \
    test "$(cat "$work/rc")" = 3 -a "$(grep -c '^ran-on-try-2$' "$work/out")" = 1
check "the stall is reported loudly, with the vcpus' instruction pointers" \
    grep -q 'STALL: the test machine stopped making progress (try 1 of 2)' "$work/err"
check "the report names where the vcpus were" grep -q 'cpu 0 rip 0x' "$work/err"
check "the stall log has one line" test "$(wc -l <"$work/stalls")" = 1
check "the rerun knows what the first try finished (HULL_TESTVM_DONE)" \
    grep -qx 'earlier-tries-did:part-of-try-1=ok' "$work/out"

rm -f "$work/stalls"
run 1 0
check "a stall with no retries left fails with 123" test "$(cat "$work/rc")" = 123
check "and says so" grep -q 'stalled on every try' "$work/err"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
