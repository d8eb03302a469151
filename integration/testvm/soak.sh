#!/usr/bin/env bash
# Boots N hull guests in a row in the test machine, through the paths CI uses (testvm.sh, hull
# vm-run, hull's VMM and guest kernel), and counts how many froze or failed.
#
#   soak.sh [-n N] [--load K] [--limit S] [--hull PATH] [--kernel PATH]
#
#   -n N        boots in all (default 200)
#   --load K    K busy processes on the host for the whole run (a parallel build's load)
#   --limit S   a guest boot that takes longer is a hung guest (default 60)
#
# The boots run in one test machine (integration/vm/boot-loop.sh); when the test machine
# itself stalls (testvm.sh's heartbeat check, exit 123) that is counted as a freeze, the boot it
# was in is counted as frozen, and a fresh machine goes on with the next boot. The settings of
# the emulation come from testvm.sh's environment (HULL_TESTVM_ACCEL, HULL_TESTVM_CPU,
# HULL_TESTVM_APPEND, HULL_TESTVM_CPUS), so that rates can be compared between settings.
#
# Prints a summary line; exits 0 only when every boot passed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
n=200
load=0
limit=60
hull="$repo/target/x86_64-unknown-linux-gnu/release/hull"
kernel="${HULL_KERNEL:-/usr/local/share/hull/vmlinuz}"
while [ "$#" -gt 0 ]; do
    case "$1" in
        -n) n="$2"; shift 2 ;;
        --load) load="$2"; shift 2 ;;
        --limit) limit="$2"; shift 2 ;;
        --hull) hull="$2"; shift 2 ;;
        --kernel) kernel="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "soak: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$hull" ] || { echo "soak: no hull at $hull (just build)" >&2; exit 2; }
[ -f "$kernel" ] || { echo "soak: no guest kernel at $kernel (just kernel)" >&2; exit 2; }

log="$(mktemp /tmp/hull-soak.XXXXXX)"
load_pids=()
cleanup() { local p; for p in "${load_pids[@]}"; do kill "$p" 2>/dev/null; done; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq 1 "$load"); do
    sha256sum /dev/zero >/dev/null 2>&1 & load_pids+=($!)
done

settings="accel=${HULL_TESTVM_ACCEL:-tcg,thread=multi} cpus=${HULL_TESTVM_CPUS:-2} append='${HULL_TESTVM_APPEND:-}' load=$load"
echo "soak: $n boots; $settings"
t0=$(date +%s)
next=1
machines=0
freezes=0
frozen_boots=""
other_failures=0
while [ "$next" -le "$n" ]; do
    machines=$((machines + 1))
    rc=0
    "$here/testvm.sh" --hull "$hull" --add "$kernel" --add "$repo/integration:/integration" \
        --stall-retries 0 --timeout $((n * (limit + 10) + 120)) -- \
        sh /integration/vm/boot-loop.sh --kernel "$kernel" --from "$next" --to "$n" --limit "$limit" \
        2>&1 | tee -a "$log" | grep --line-buffered -E '^(BOOT|  \||testvm: (STALL|error|  ))' || true
    rc="${PIPESTATUS[0]}"
    last="$(grep -o '^BOOT [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)"
    last="${last:-$((next - 1))}"
    if [ "$rc" = 123 ]; then
        freezes=$((freezes + 1))
        frozen_boots="$frozen_boots $((last + 1))"
        echo "soak: the test machine froze during boot $((last + 1))"
        next=$((last + 2))
    elif [ "$rc" != 0 ] && [ "$last" -lt "$n" ]; then
        other_failures=$((other_failures + 1))
        echo "soak: the test machine failed (status $rc) after boot $last"
        [ "$last" -ge "$next" ] || { echo "soak: no progress; giving up"; break; }
        next=$((last + 1))
    else
        next=$((last + 1))
    fi
done
booted="$(grep -c '^BOOT .* rc=0 ' "$log")"
hung="$(grep -c '^BOOT .*TIMEOUT' "$log")"
failed="$(grep '^BOOT ' "$log" | grep -v ' rc=0 ' | grep -vc TIMEOUT)"
echo "soak: $n boots in $(($(date +%s) - t0)) s over $machines test machines: $booted ok," \
    "$hung hung guests, $failed failed, $freezes test-machine freezes${frozen_boots:+ (boots$frozen_boots)}," \
    "$other_failures test-machine failures; $settings"
[ "$booted" = "$n" ]
