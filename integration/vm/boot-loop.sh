#!/bin/sh
# Boots hull guests in a row with `hull vm-run`, the way the vm e2e checks do, and prints one
# line per boot: BOOT <index> cpus=<n> serial=<0|1> rc=<status> took=<s> [TIMEOUT]. Runs inside
# the test machine (integration/testvm/soak.sh drives it); POSIX sh.
#
#   boot-loop.sh --kernel PATH --from I --to J [--limit S]
#
# Boot I uses 1 vcpu when I is odd and 2 when even, and every third boot has the serial console
# on (the settings the test machine froze on). A boot that runs past --limit (default 60 s) is
# killed and counted as a hung guest; the loop goes on.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"

kernel=/usr/local/share/hull/vmlinuz
from=1
to=10
limit=60
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel="$2"; shift 2 ;;
        --from) from="$2"; shift 2 ;;
        --to) to="$2"; shift 2 ;;
        --limit) limit="$2"; shift 2 ;;
        *) echo "boot-loop: unknown argument $1" >&2; exit 2 ;;
    esac
done
hull="$(command -v hull || echo /hull)"
work="$(mktemp -d /tmp/boot-loop.XXXXXX)"
trap 'rm -rf "$work"' EXIT
busybox_rootfs "$work/rootfs" || exit 2

i="$from"
while [ "$i" -le "$to" ]; do
    cpus=$((2 - i % 2))
    serial=0
    set -- --cpus "$cpus"
    if [ $((i % 3)) = 0 ]; then serial=1; set -- "$@" --serial; fi
    t0=$(date +%s)
    rc=0
    timeout -k 5 "$limit" "$hull" vm-run --kernel "$kernel" --share "$work/rootfs" --boot-timeout 50 \
        "$@" -- /bin/sh -c 'echo booted; nproc' </dev/null >"$work/out" 2>"$work/err" || rc=$?
    took=$(($(date +%s) - t0))
    note=""
    if [ "$took" -ge "$limit" ]; then note=" TIMEOUT"
    elif [ "$rc" = 0 ] && ! grep -qx booted "$work/out"; then rc=99; note=" NO-OUTPUT"; fi
    echo "BOOT $i cpus=$cpus serial=$serial rc=$rc took=$took$note"
    if [ "$rc" != 0 ]; then tail -n 5 "$work/err" | sed 's/^/  | /'; fi
    i=$((i + 1))
done
