#!/bin/sh
# Which pages of hull's binary a VMM process has mapped: run inside the test machine (it needs an
# ordinary /dev/kvm) by record-vmm-order.sh, on a release hull linked with
# HULL_LINK_KEEP_SYMBOLS=1 (the same layout as the stripped one).
#
#   vmm-pages.sh --kernel PATH [--hull PATH] [--mem MIB]
#
# Why pages, not uprobes: the VMM runs in the emulated test machine, where creating a uprobe per
# function takes the kernel far too long. With fault-around set to one page
# (debugfs's fault_around_bytes), a page is mapped only when the process touched it, so the
# present bits of /proc/PID/pagemap are the pages it used. Sampled at the point where
# `vm-bench.sh` samples the RSS: while the guest's workload runs, for `hull vm-run` and for a
# VM container's VMM after `start` and an `exec`.
#
# Prints "VMMPAGE WORKLOAD FILE_OFFSET" (hex, a page) for every present page of a file mapping
# of hull's binary, and restores fault_around_bytes.
set -eu
# shellcheck source=../../integration/lib.sh
. /lib.sh

kernel="" hull="" mem=256
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel="$2"; shift 2 ;;
        --hull) hull="$2"; shift 2 ;;
        --mem) mem="$2"; shift 2 ;;
        *) echo "vmm-pages: unknown argument $1" >&2; exit 2 ;;
    esac
done
hull="$(vm_script_prerequisites "$hull" "$kernel")" || exit 2

mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
knob=/sys/kernel/debug/fault_around_bytes
[ -w "$knob" ] || { echo "vmm-pages: no $knob" >&2; exit 1; }
old_fault_around="$(cat "$knob")"
work="$(mktemp -d /tmp/vmm-pages.XXXXXX)"
cleanup() {
    echo "$old_fault_around" >"$knob"
    [ -z "${vm_pid:-}" ] || kill -9 "$vm_pid" 2>/dev/null || true
    "$hull" --root "$work/croot" delete --force vmmpages >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
echo 4096 >"$knob"
# The binary's pages are in the page cache already (a run before this one): every fault maps
# exactly the page that was touched, and no read-ahead brings in more.
"$hull" --version >/dev/null

rootfs="$work/rootfs"
busybox_rootfs "$rootfs"
flag=/.vmm-pages-running

# present PID WORKLOAD: the present pages of PID's mappings of its own executable.
present() {
    exe="$(readlink "/proc/$1/exe")"
    grep " $exe\$" "/proc/$1/maps" | while read -r range _perm offset _rest; do
        start=$((0x${range%-*}))
        end=$((0x${range#*-}))
        off=$((0x$offset))
        dd if="/proc/$1/pagemap" bs=8 skip=$((start / 4096)) count=$(((end - start) / 4096)) 2>/dev/null |
            od -An -v -tx8 | tr -s ' ' '\n' | awk -v off="$off" -v w="$2" '
                NF { if (substr($1, 1, 1) ~ /[89a-f]/) printf "VMMPAGE %s %x\n", w, off + n * 4096; n++ }'
    done
}

# hull vm-run, as vm-bench.sh's RSS sample runs it.
"$hull" vm-run --kernel "$kernel" --mem "$mem" --cpus 1 --share "$rootfs" --boot-timeout 200 \
    -- /bin/sh -c "touch $flag; sleep 3" </dev/null >"$work/vm-run.out" 2>"$work/vm-run.err" &
vm_pid=$!
if wait_for_file "$rootfs$flag" "$vm_pid"; then
    present "$vm_pid" vm-run
else
    echo "vmm-pages: vm-run did not reach its workload:" >&2
    cat "$work/vm-run.err" >&2
    exit 1
fi
wait "$vm_pid" || { echo "vmm-pages: vm-run failed" >&2; cat "$work/vm-run.err" >&2; exit 1; }
vm_pid=""

# A VM container, as vm-bench.sh's container path runs it: create, start, exec, then the sample.
bundle="$work/bundle"
vm_bundle "$hull" "$bundle" "$rootfs" "$mem" '"/bin/sleep", "1000"'
h() { HULL_KERNEL="$kernel" timeout -s KILL 120 "$hull" --root "$work/croot" "$@" </dev/null; }
h --backend vm create --bundle "$bundle" vmmpages >/dev/null
h start vmmpages >/dev/null
h exec vmmpages /bin/true >/dev/null
vmm="$(h state vmmpages | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -n1)"
[ -n "$vmm" ] || { echo "vmm-pages: no pid in the container's state" >&2; exit 1; }
present "$vmm" container
h delete --force vmmpages >/dev/null
