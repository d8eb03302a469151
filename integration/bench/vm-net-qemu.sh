#!/bin/sh
# What QEMU's own virtio-net reaches in the same emulation (issue 14's reference for
# vm-net-bench.sh): the same guest kernel in QEMU's microvm machine, one vcpu and 256 MiB as a VM
# container gets, its virtio-net on a tap on a bridge, first with QEMU's user-space tap backend
# (hull's design: the VMM reads and writes the tap) and then with vhost-net (the kernel moves
# the frames). The guest is an initramfs of busybox: host -> guest is the guest's wget of M MiB
# from the host's httpd (timed in the guest), guest -> host the host's wget of M MiB the guest
# serves from its tmpfs. Needs an ordinary /dev/kvm, so it runs inside the test machine. POSIX
# sh: the test machine has busybox, not bash. See integration/bench/README.md.
#
#   integration/bench/vm-net-qemu.sh --testvm [--kernel PATH] [-n N] [--mib M]
#
# -n N: transfers each way per backend (default 5); --mib M: their size (default 64). Prints
# the medians (min-max) in MiB/s. Exits 1 when a step fails, 2 on bad usage.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=integration/lib.sh
. "$here/../lib.sh"
kernel="$(default_kernel)"
runs=5
mib=64
testvm=0
initrd=""

die() { printf 'vm-net-qemu: error: %s\n' "$*" >&2; exit 2; }
fail() { printf 'vm-net-qemu: failed: %s\n' "$*" >&2; exit 1; }
posint() { case "$2" in ''|*[!0-9]*|0) die "$1 needs a positive number, got '$2'" ;; esac; }

while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) [ $# -ge 2 ] || die "--kernel needs a path"; kernel="$2"; shift 2 ;;
        --initrd) [ $# -ge 2 ] || die "--initrd needs a path"; initrd="$2"; shift 2 ;;
        -n) [ $# -ge 2 ] || die "-n needs a number"; posint -n "$2"; runs="$2"; shift 2 ;;
        --mib) [ $# -ge 2 ] || die "--mib needs a number"; posint --mib "$2"; mib="$2"; shift 2 ;;
        --testvm) testvm=1; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# The guest's /init: its address, the file it serves, then on the host's word (a GET of /go)
# N timed GETs of the host's file, each printed as "H2G <MiB/s>", then "H2G-DONE".
guest_init() {
    cat <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /srv; mount -t tmpfs tmpfs /srv
ip link set lo up; ip link set eth0 up; ip addr add 10.88.0.2/24 dev eth0
head -c $((mib * 1048576)) /dev/zero >/srv/big
httpd -p 8080 -h /srv
now() { cut -d' ' -f1 /proc/uptime; }
until wget -q -O /dev/null http://10.88.0.1:8080/go 2>/dev/null; do sleep 0.2; done
i=0
while [ \$i -lt $runs ]; do
    a=\$(now); wget -q -O /dev/null http://10.88.0.1:8080/big || echo H2G-FAILED
    b=\$(now); echo "H2G \$(awk -v a=\$a -v b=\$b 'BEGIN { printf "%.1f", $mib / (b - a) }')"
    i=\$((i + 1))
done
echo H2G-DONE
sleep 3600
EOF
}

if [ "$testvm" = 1 ]; then
    repo="$(cd "$here/../.." && pwd)"
    [ -f "$kernel" ] || die "no guest kernel at $kernel (just kernel)"
    qemu="$(command -v qemu-system-x86_64)" || die "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
    busybox="$(find_busybox)" || die "no static busybox (apt-get install busybox-static)"
    command -v cpio >/dev/null 2>&1 || die "no cpio (apt-get install cpio)"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/hull-vm-net-qemu.XXXXXX")" || die "mktemp"
    trap 'rm -rf "$tmp"' EXIT INT TERM
    mkdir -p "$tmp/root/bin" "$tmp/root/proc" "$tmp/root/sys" "$tmp/root/dev"
    cp "$busybox" "$tmp/root/bin/busybox"
    guest_init >"$tmp/root/init"
    chmod 755 "$tmp/root/init"
    (cd "$tmp/root" && find . | cpio -o -H newc 2>/dev/null) >"$tmp/initrd.cpio" || die "cpio"
    rc=0
    "$repo/integration/testvm/testvm.sh" --no-hull --timeout $((240 + 60 * runs)) \
        --add "$kernel" --add "$tmp/initrd.cpio:/bench/initrd.cpio" \
        --add "$qemu:/usr/bin/qemu-system-x86_64" --add /usr/share/qemu --add /usr/share/seabios \
        --add "$here/vm-net-qemu.sh:/bench/vm-net-qemu.sh" --add "$here/../lib.sh:/lib.sh" \
        -- sh /bench/vm-net-qemu.sh --kernel "$kernel" --initrd /bench/initrd.cpio -n "$runs" --mib "$mib" || rc=$?
    exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# Inside: the benchmark itself.

[ -e /dev/kvm ] || die "no /dev/kvm"
[ -f "$initrd" ] || die "no --initrd (run with --testvm from the repository)"
[ -e /dev/vhost-net ] || die "no /dev/vhost-net (the test machine loads vhost_net)"
work="$(mktemp -d "${TMPDIR:-/tmp}/hull-vm-net-qemu.XXXXXX")" || die "mktemp"
bridge=hullqref0
httpd=""
vm=""
cleanup() {
    [ -z "$vm" ] || kill "$vm" 2>/dev/null
    [ -z "$httpd" ] || kill "$httpd" 2>/dev/null
    ip link del "$bridge" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip link add "$bridge" type bridge && ip addr add 10.88.0.1/24 dev "$bridge" && ip link set "$bridge" up ||
    fail "the bridge"
mkdir -p "$work/www"
head -c $((mib * 1048576)) /dev/zero >"$work/www/big"
"$(find_busybox)" httpd -f -p 10.88.0.1:8080 -h "$work/www" &
httpd=$!

uptime_s() { cut -d' ' -f1 /proc/uptime; }
for vhost in off on; do
    rm -f "$work/www/go" "$work/serial"
    qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off,acpi=off -enable-kvm -cpu host -m 256 -smp 1 \
        -nodefaults -no-user-config -nographic -no-reboot -global virtio-mmio.force-legacy=false \
        -serial "file:$work/serial" -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyS0 reboot=t panic=-1 quiet" \
        -netdev "tap,id=n0,ifname=hullqref1,script=no,downscript=no,vhost=$vhost" \
        -device virtio-net-device,netdev=n0 </dev/null >"$work/qemu.out" 2>"$work/qemu.err" &
    vm=$!
    i=0
    until ip link set hullqref1 master "$bridge" 2>/dev/null && ip link set hullqref1 up; do
        kill -0 "$vm" 2>/dev/null || fail "qemu (vhost=$vhost): $(cat "$work/qemu.err")"
        [ $i -lt 200 ] || fail "qemu made no tap"
        sleep 0.1
        i=$((i + 1))
    done
    echo go >"$work/www/go"
    i=0
    until grep -q H2G-DONE "$work/serial" 2>/dev/null; do
        kill -0 "$vm" 2>/dev/null || fail "qemu (vhost=$vhost) ended: $(cat "$work/qemu.err")"
        [ $i -lt $((1200 + 300 * runs)) ] || fail "the guest's transfers did not end (vhost=$vhost)"
        sleep 0.2
        i=$((i + 1))
    done
    grep -q H2G-FAILED "$work/serial" && fail "a guest transfer failed (vhost=$vhost)"
    sed -n 's/^H2G \([0-9.]*\).*/\1/p' "$work/serial" >"$work/h2g-$vhost"
    i=0
    while [ $i -lt "$runs" ]; do
        a="$(uptime_s)"
        timeout 300 wget -q -O /dev/null http://10.88.0.2:8080/big ||
            fail "the host's GET (vhost=$vhost; qemu $(kill -0 "$vm" 2>/dev/null && echo running || echo ended)); the guest's console: $(tail -n 5 "$work/serial"); qemu: $(cat "$work/qemu.err")"
        b="$(uptime_s)"
        awk -v a="$a" -v b="$b" -v m="$mib" 'BEGIN { printf "%.1f\n", m / (b - a) }' >>"$work/g2h-$vhost"
        i=$((i + 1))
    done
    kill "$vm" 2>/dev/null
    wait "$vm" 2>/dev/null
    vm=""
done

cell() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f (%.1f-%.1f)\n", m, v[1], v[NR] }'
}
echo
echo "qemu microvm virtio-net, MiB/s, N=$runs transfers of $mib MiB; 1 vcpu, 256 MiB; $(uname -r), $(nproc) CPUs"
printf '%-30s | %-22s | %s\n' "median (min-max)" "host -> guest" "guest -> host"
printf '%-30s | %-22s | %s\n' "------------------------------" "----------------------" "----------------------"
printf '%-30s | %-22s | %s\n' "user-space tap (vhost=off)" "$(cell "$work/h2g-off")" "$(cell "$work/g2h-off")"
printf '%-30s | %-22s | %s\n' "vhost-net (vhost=on)" "$(cell "$work/h2g-on")" "$(cell "$work/g2h-on")"
exit 0
