#!/bin/sh
# Network benchmark of VM containers against native ones (issue 14): a native and a VM container,
# each in a network namespace (by path) holding a veth whose host end is on one bridge, side by
# side in one run: TCP throughput host -> container and container -> host (HTTP with busybox
# httpd and wget, the receiver writing to /dev/null), and request latency (small GETs from the
# host in a row, one wget process each: the same process cost for both). Needs an ordinary
# /dev/kvm, so it runs inside the test machine (integration/testvm). POSIX sh: the test machine
# has busybox, not bash. See integration/bench/README.md, "just bench-vm".
#
# From the repository, on the host (builds nothing; run `just build` and `just kernel` first):
#
#   integration/bench/vm-net-bench.sh --testvm [--hull PATH] [--kernel PATH] [-n N] [--mib M]
#       [--requests R]
#
# which carries the kernel, this script and iproute2's ip (at /opt/iproute2) into the test
# machine. -n N: timed transfers each way per container (default 5); --mib M: the size of each
# (default 64); --requests R: small GETs per latency sample (default 100; 5 samples).
# Prints a table of medians (min-max), the vm/native ratios and the issue's target (VM
# throughput at least half of native's). Exits 0 whether or not the target is met, 1 when a
# step fails, 2 on bad usage.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
# In the test machine this script is /bench/vm-net-bench.sh and lib.sh is carried to /lib.sh.
# shellcheck source=integration/lib.sh
. "$here/../lib.sh"
hull=""
kernel="$(default_kernel)"
runs=5
mib=64
requests=100
testvm=0

die() { printf 'vm-net-bench: error: %s\n' "$*" >&2; exit 2; }
fail() { printf 'vm-net-bench: failed: %s\n' "$*" >&2; exit 1; }
say() { printf 'vm-net-bench: %s\n' "$*" >&2; }
posint() { case "$2" in ''|*[!0-9]*|0) die "$1 needs a positive number, got '$2'" ;; esac; }

while [ $# -gt 0 ]; do
    case "$1" in
        --hull) [ $# -ge 2 ] || die "--hull needs a path"; hull="$2"; shift 2 ;;
        --kernel) [ $# -ge 2 ] || die "--kernel needs a path"; kernel="$2"; shift 2 ;;
        -n) [ $# -ge 2 ] || die "-n needs a number"; posint -n "$2"; runs="$2"; shift 2 ;;
        --mib) [ $# -ge 2 ] || die "--mib needs a number"; posint --mib "$2"; mib="$2"; shift 2 ;;
        --requests) [ $# -ge 2 ] || die "--requests needs a number"; posint --requests "$2"
            requests="$2"; shift 2 ;;
        --testvm) testvm=1; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

if [ "$testvm" = 1 ]; then
    repo="$(cd "$here/../.." && pwd)"
    [ -n "$hull" ] || hull="$repo/target/x86_64-unknown-linux-gnu/release/hull"
    [ -x "$hull" ] || die "no hull at $hull (just build)"
    [ -f "$kernel" ] || die "no guest kernel at $kernel (just kernel)"
    ip="$(command -v ip 2>/dev/null)" || die "no iproute2 ip on this host (apt-get install iproute2)"
    exec "$repo/integration/testvm/testvm.sh" --hull "$hull" --timeout $((300 + 60 * runs)) \
        --add "$kernel" --add "$(readlink -f "$ip"):/opt/iproute2/ip" \
        --add "$here/vm-net-bench.sh:/bench/vm-net-bench.sh" --add "$here/../lib.sh:/lib.sh" \
        -- sh /bench/vm-net-bench.sh --kernel "$kernel" --hull /hull -n "$runs" --mib "$mib" --requests "$requests"
fi

# ---------------------------------------------------------------------------------------------
# Inside: the benchmark itself.

hull="$(vm_script_prerequisites "$hull" "$kernel")" || exit 2
IP=/opt/iproute2/ip
[ -x "$IP" ] || IP="$(command -v ip)"
"$IP" netns list >/dev/null 2>&1 || die "no iproute2 ip with netns (at /opt/iproute2/ip or on PATH)"
export HULL_KERNEL="$kernel"

work="$(mktemp -d "${TMPDIR:-/tmp}/hull-vm-net-bench.XXXXXX")" || die "mktemp"
root="$work/root"
bridge=hullbench0
httpd=""
cleanup() {
    [ -z "$httpd" ] || kill "$httpd" 2>/dev/null
    for id in nat vmc; do "$hull" --root "$root" delete --force "$id" >/dev/null 2>&1; done
    for ns in hullbench-nat hullbench-vmc; do "$IP" netns del "$ns" 2>/dev/null; done
    "$IP" link del "$bridge" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_us
case "$_now" in ''|*[!0-9]*) die "cannot read the clock with adjtimex" ;; esac

rootfs="$work/rootfs"
busybox_rootfs "$rootfs" || die "cannot make a busybox rootfs"
mkdir -p "$rootfs/srv" "$work/www"
head -c $((mib * 1048576)) /dev/zero >"$rootfs/srv/big"
head -c $((mib * 1048576)) /dev/zero >"$work/www/big"
echo ok >"$rootfs/srv/small"

# The bridge, and per container a namespace with a veth whose host end is on it.
"$IP" link add "$bridge" type bridge || fail "a bridge (is the bridge module loaded?)"
"$IP" addr add 10.77.0.1/24 dev "$bridge" && "$IP" link set "$bridge" up || fail "the bridge's address"
netns() { # NAME ADDRESS
    "$IP" netns add "hullbench-$1" &&
        "$IP" link add "hb-$1" type veth peer name eth0 netns "hullbench-$1" &&
        "$IP" link set "hb-$1" master "$bridge" up &&
        "$IP" -n "hullbench-$1" link set lo up &&
        "$IP" -n "hullbench-$1" addr add "$2/24" dev eth0 &&
        "$IP" -n "hullbench-$1" link set eth0 up &&
        "$IP" -n "hullbench-$1" route add default via 10.77.0.1 || fail "the namespace for $1"
}
netns nat 10.77.0.2
netns vmc 10.77.0.3

# A bundle in the namespace NAME whose process serves /srv (busybox httpd in the foreground).
bundle() { # NAME
    _b="$work/b-$1"
    mkdir -p "$_b"
    (cd "$_b" && "$hull" spec) || die "hull spec"
    sed -i -e 's/"terminal": true/"terminal": false/' -e "s#\"path\": \"rootfs\"#\"path\": \"$rootfs\"#" \
        -e "s#^\( *\)\"sh\"\$#\1\"httpd\", \"-f\", \"-p\", \"8081\", \"-h\", \"/srv\"#" \
        -e "/\"type\": \"network\"/s#\"network\"#\"network\", \"path\": \"/run/netns/hullbench-$1\"#" \
        "$_b/config.json"
}
h() { timeout -s KILL 180 "$hull" --root "$root" "$@" </dev/null; }
bundle nat
bundle vmc
h create --bundle "$work/b-nat" nat >/dev/null 2>"$work/err" && h start nat 2>>"$work/err" ||
    fail "the native container: $(cat "$work/err")"
h --backend vm create --bundle "$work/b-vmc" vmc >/dev/null 2>"$work/err" && h start vmc 2>>"$work/err" ||
    fail "the VM container: $(cat "$work/err")"
"$(find_busybox)" httpd -f -p 10.77.0.1:18080 -h "$work/www" &
httpd=$!

# ms FILE CMD...: runs CMD (output to /dev/null), appends its wall time in ms to FILE.
ms() {
    _f="$1"
    shift
    now_us; _a=$_now
    "$@" >/dev/null 2>>"$work/err" || fail "$* ($(tail -n 3 "$work/err"))"
    now_us
    awk -v d=$((_now - _a)) 'BEGIN { printf "%.1f\n", d / 1000 }' >>"$_f"
}
get() { timeout 300 wget -q -O /dev/null "$1"; }
gets() { # URL COUNT: COUNT GETs in a row
    _n=0
    while [ "$_n" -lt "$2" ]; do timeout 30 wget -q -O /dev/null "$1" || return 1; _n=$((_n + 1)); done
}
for c in nat vmc; do
    case "$c" in nat) addr=10.77.0.2 ;; *) addr=10.77.0.3 ;; esac
    # The file the container serves is read once first: what is timed is the network, not the
    # first read through the VM's shared filesystem.
    i=0
    until get "http://$addr:8081/small" 2>/dev/null || [ $i -ge 100 ]; do sleep 0.2; i=$((i + 1)); done
    ms "$work/warm" get "http://$addr:8081/big"
    ms "$work/$c.exec" h exec "$c" /bin/true
    i=1
    while [ $i -le "$runs" ]; do
        ms "$work/$c.from" get "http://$addr:8081/big"
        ms "$work/$c.to" h exec "$c" wget -q -O /dev/null http://10.77.0.1:18080/big
        i=$((i + 1))
    done
    i=1
    while [ $i -le 5 ]; do
        ms "$work/$c.lat" gets "http://$addr:8081/small" "$requests"
        i=$((i + 1))
    done
    say "$c done: container -> host $(tail -n1 "$work/$c.from") ms, host -> container $(tail -n1 "$work/$c.to") ms per $mib MiB"
done

# What crossed the VM container's tap: frames and bytes each way, so the table can say how
# large the frames were (with TSO a bulk stream crosses in segments of up to 64 KiB).
tap_stats="$("$IP" -n hullbench-vmc -s link show hulltap0 2>/dev/null | awk '
    /RX:/ { getline; rxb = $1; rxp = $2 } /TX:/ { getline; txb = $1; txp = $2 }
    END { if (rxp > 0 && txp > 0) printf "the guest sent %d frames of %.0f bytes on average, got %d of %.0f", rxp, rxb / rxp, txp, txb / txp }')"

# --- the table -------------------------------------------------------------------------------
stats() { # FILE: "median min max"
    sort -n "$1" | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "- - -"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m, v[1], v[NR]
        }'
}
# MiB/s from ms, less the exec's own time (host -> container is timed as `hull exec wget`).
rate() { # FILE [OVERHEAD_FILE]
    _o=0
    [ -z "${2:-}" ] || _o="$(stats "$2" | cut -d' ' -f1)"
    awk -v m="$mib" -v o="$_o" '{ t = $1 - o; if (t < 1) t = 1; printf "%.1f\n", m * 1000 / t }' "$1" >"$1.rate"
    echo "$1.rate"
}
per_request() { awk -v r="$requests" '{ printf "%.2f\n", $1 / r }' "$1" >"$1.per"; echo "$1.per"; }
cell() { stats "$1" | awk '$1 == "-" { print "-"; exit } { printf "%.1f (%.1f-%.1f)\n", $1, $2, $3 }'; }
med() { stats "$1" | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2fx\n", a / b; else print "" }'; }
row() { printf '%-44s | %-22s | %-22s | %s\n' "$1" "$2" "$3" "$4"; }

nat_from="$(rate "$work/nat.from")"; vmc_from="$(rate "$work/vmc.from")"
nat_to="$(rate "$work/nat.to" "$work/nat.exec")"; vmc_to="$(rate "$work/vmc.to" "$work/vmc.exec")"
nat_lat="$(per_request "$work/nat.lat")"; vmc_lat="$(per_request "$work/vmc.lat")"
echo
echo "$("$hull" --version | head -n1): network, native vs VM container on one bridge; N=$runs transfers of $mib MiB each way, 5 x $requests small GETs; $(uname -r), $(nproc) CPUs"
row "median (min-max)" "native" "vm backend" "vm/native"
row "--------------------------------------------" "----------------------" "----------------------" "---------"
row "TCP container -> host, MiB/s" "$(cell "$nat_from")" "$(cell "$vmc_from")" "$(ratio "$(med "$vmc_from")" "$(med "$nat_from")")"
row "TCP host -> container, MiB/s (exec less)" "$(cell "$nat_to")" "$(cell "$vmc_to")" "$(ratio "$(med "$vmc_to")" "$(med "$nat_to")")"
row "small GET from the host, ms per request" "$(cell "$nat_lat")" "$(cell "$vmc_lat")" "$(ratio "$(med "$vmc_lat")" "$(med "$nat_lat")")"
echo "  (host -> container is timed as \`hull exec C wget ...\` less the median of \`hull exec C /bin/true\`: native $(med "$work/nat.exec") ms, vm $(med "$work/vmc.exec") ms)"
[ -z "$tap_stats" ] || echo "  (the VM container's tap: $tap_stats)"
echo "target (issue 14): VM throughput at least half of native's, both ways"
for pair in "$vmc_from $nat_from container -> host" "$vmc_to $nat_to host -> container"; do
    # shellcheck disable=SC2086 # "VM_FILE NATIVE_FILE LABEL..."
    set -- $pair
    v="$(med "$1")"; n="$(med "$2")"
    shift 2
    if awk -v a="$v" -v b="$n" 'BEGIN { exit !(b > 0 && a >= b / 2) }'; then printf '  ok   '; else printf '  MISS '; fi
    echo "$*: vm $v MiB/s vs native $n MiB/s"
done
exit 0
