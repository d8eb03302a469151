#!/bin/sh
# Two VM containers on one bridge, as CNI's bridge plugin puts them (issue 14): each in a
# network namespace named by path, holding a veth end whose peer is a port of bridge hullbr9.
# Container A serves 4 MiB; container B fetches it ROUNDS times and checks each copy. A round
# that does not finish in 60 s is a stall: both guests' and the host's view of the path are
# printed (interface counters, TCP counters, the tc mirrors, the VMMs' threads), then the
# rounds go on. A soak for the VM-to-VM path, not part of `just ci`.
#
#   integration/vm/vm2vm.sh --testvm [--hull PATH] [--kernel PATH] [--rounds N] [--from-host]
#
# --from-host: both containers serve and the host fetches from both at once each round (two
# busy guests, no traffic between them), to tell the VM-to-VM path from two busy guests.
# Prints one line per round and `N rounds, M stalled, K corrupt`; exits 1 if any round failed.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=integration/lib.sh
. "$here/../lib.sh"
hull=""
kernel="$(default_kernel)"
testvm=0
rounds=20
from_host=0
die() { printf 'vm2vm: error: %s\n' "$*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --hull) [ $# -ge 2 ] || die "--hull needs a path"; hull="$2"; shift 2 ;;
        --kernel) [ $# -ge 2 ] || die "--kernel needs a path"; kernel="$2"; shift 2 ;;
        --rounds) [ $# -ge 2 ] || die "--rounds needs a number"; rounds="$2"; shift 2 ;;
        --testvm) testvm=1; shift ;;
        --from-host) from_host=1; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
if [ "$from_host" = 1 ]; then set -- --from-host; else set --; fi
[ "$testvm" = 1 ] && vm_script_in_testvm "$here" vm2vm.sh "$hull" "$kernel" 1500 --rounds "$rounds" "$@"
hull="$(vm_script_prerequisites "$hull" "$kernel")" || exit 2
IP=/opt/iproute2/ip
TC=/opt/iproute2/tc
[ -x "$IP" ] && [ -x "$TC" ] || die "no iproute2 at /opt/iproute2"
work="$(mktemp -d "${TMPDIR:-/tmp}/hull-vm2vm.XXXXXX")" || die "mktemp"
root="$work/root"
export HULL_KERNEL="$kernel"
export HULL_CONFIG="$work/no-config.toml"
h() { "$hull" --root "$root" "$@"; }
cleanup() {
    h delete --force vma >/dev/null 2>&1
    h delete --force vmb >/dev/null 2>&1
    for n in a b; do "$IP" netns del "hull2$n" 2>/dev/null; done
    "$IP" link del hullbr9 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

rootfs="$work/rootfs"
busybox_rootfs "$rootfs" || die "cannot make a busybox rootfs"
mkdir -p "$rootfs/srv"
head -c 4194304 /dev/urandom >"$rootfs/srv/blob"
want="$(md5sum <"$rootfs/srv/blob" | cut -d' ' -f1)"

"$IP" link add hullbr9 type bridge || die "bridge"
"$IP" addr add 10.89.9.1/24 dev hullbr9
"$IP" link set hullbr9 up
n=2
for c in a b; do
    "$IP" netns add "hull2$c"
    "$IP" link add "h2${c}0" type veth peer name "h2${c}1"
    "$IP" link set "h2${c}1" netns "hull2$c"
    "$IP" link set "h2${c}0" master hullbr9 up
    "$IP" -n "hull2$c" link set lo up
    "$IP" -n "hull2$c" addr add "10.89.9.$n/24" dev "h2${c}1"
    "$IP" -n "hull2$c" link set "h2${c}1" up
    "$IP" -n "hull2$c" route add default via 10.89.9.1
    n=$((n + 1))
done

# bundle NAME NETNS ARGS_JSON
bundle() {
    b="$work/$1"
    mkdir -p "$b"
    (cd "$b" && "$hull" spec) || die "hull spec"
    sed -i -e 's/"terminal": true/"terminal": false/' -e "s#\"path\": \"rootfs\"#\"path\": \"$rootfs\"#" \
        -e "/\"type\": \"network\"/s#\"network\"#\"network\", \"path\": \"/run/netns/$2\"#" "$b/config.json"
    awk -v a="$3" '
        skip && /\]/ { skip = 0; next }
        skip { next }
        /"args": \[/ { print "    \"args\": [" a "],"; skip = 1; next }
        { print }' "$b/config.json" >"$b/config.new" && mv "$b/config.new" "$b/config.json"
}
# What a guest says about its network, one line each.
cat >"$rootfs/netview.sh" <<'EOS'
echo "dev: $(tr -s ' ' </proc/net/dev | grep h2 | tr '\n' ' ')"
echo "tcp: $(grep Tcp: /proc/net/snmp | tail -n1)"
echo "sockets: $(grep -cv local_address /proc/net/tcp)"
EOS
cat >"$rootfs/fetch.sh" <<EOS
i=1
while [ \$i -le $rounds ]; do
    t=\$(cut -d. -f1 /proc/uptime)
    set -- \$(timeout 60 wget -q -O - http://10.89.9.2:8081/blob | md5sum)
    echo round \$i \$1 \$((\$(cut -d. -f1 /proc/uptime) - t))
    [ \$1 = $want ] || sh /netview.sh
    i=\$((i + 1))
done
echo done
EOS
bundle a hull2a '"/bin/sh", "-c", "httpd -p 8081 -h /srv && echo serving; exec sleep 100000"'
if [ "$from_host" = 1 ]; then
    bundle b hull2b '"/bin/sh", "-c", "httpd -p 8081 -h /srv && echo serving; exec sleep 100000"'
else
    bundle b hull2b '"/bin/sh", "/fetch.sh"'
fi

h --backend vm run --bundle "$work/a" vma </dev/null >"$work/a.out" 2>"$work/a.err" &
i=0
until grep -q '^serving' "$work/a.out" 2>/dev/null; do
    sleep 0.2; i=$((i + 1))
    [ $i -lt 1500 ] || { cat "$work/a.err"; die "container a did not come up"; }
done
h --backend vm run --bundle "$work/b" vmb </dev/null >"$work/b.out" 2>"$work/b.err" &
runner=$!
if [ "$from_host" = 1 ]; then
    # The host plays b's part against both servers at once, writing b.out's lines itself.
    i=0
    until grep -q '^serving' "$work/b.out" 2>/dev/null; do
        sleep 0.2; i=$((i + 1))
        [ $i -lt 1500 ] || { cat "$work/b.err"; die "container b did not come up"; }
    done
    (
        i=1
        while [ $i -le "$rounds" ]; do
            t=$(date +%s)
            timeout 60 wget -q -O - http://10.89.9.2:8081/blob 2>/dev/null | md5sum >"$work/ma" &
            timeout 60 wget -q -O - http://10.89.9.3:8081/blob 2>/dev/null | md5sum >"$work/mb"
            wait
            set -- $(cat "$work/ma") $(cat "$work/mb")
            # Both must be intact: the round's sum is a's when they agree, else the odd one.
            if [ "$1" = "$want" ]; then got="$3"; else got="$1"; fi
            echo "round $i $got $(($(date +%s) - t))" >>"$work/b.out"
            i=$((i + 1))
        done
        echo done >>"$work/b.out"
    ) &
fi

# host_view: the path from the host's side, on stdout.
host_view() {
    for c in a b; do
        echo "  ns $c: $("$IP" -n "hull2$c" -s -o link 2>&1 | tr -s ' ' | grep -v ' lo:' | tr '\n' ' ')"
        for d in $("$IP" -n "hull2$c" -o link | sed -n 's/^[0-9]*: \([^:@]*\).*/\1/p' | grep -v '^lo$'); do
            echo "  ns $c tc $d: $("$TC" -n "hull2$c" -s filter show dev "$d" ingress 2>&1 | tr -s ' \n' ' ')"
        done
    done
    echo "  bridge: $("$IP" -s -o link show hullbr9 | tr -s ' ')"
    for id in vma vmb; do
        p="$(h state "$id" 2>/dev/null | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')"
        [ -n "$p" ] || continue
        for t in /proc/"$p"/task/*; do
            echo "  $id thread ${t##*/} $(cat "$t/comm") $(cut -d' ' -f3,14,15 "$t/stat") wchan $(cat "$t/wchan" 2>/dev/null)"
        done
    done
    if [ -n "$(h state vma 2>/dev/null)" ]; then
        echo "  a says: $(h exec vma sh /netview.sh 2>&1 | tr '\n' '|')"
    elif [ "$a_told" = 0 ]; then
        a_told=1
        echo "  container a is gone; its output and stderr:"
        sed 's/^/  | /' "$work/a.out" "$work/a.err" | tail -n 60
    fi
}
a_told=0

seen=0 last=0 quiet=0 stalled=0 corrupt=0 end=$(($(date +%s) + rounds * 90 + 300))
while [ "$(date +%s)" -lt "$end" ]; do
    lines="$(grep -c '^round ' "$work/b.out" 2>/dev/null)"
    while [ "$seen" -lt "${lines:-0}" ]; do
        seen=$((seen + 1))
        l="$(grep '^round ' "$work/b.out" | sed -n "${seen}p")"
        set -- $l
        if [ "$3" = "$want" ]; then
            echo "round $2: ok in $4 s"
        else
            if [ "$3" = d41d8cd98f00b204e9800998ecf8427e ] || [ "$4" -ge 59 ]; then stalled=$((stalled + 1)); else corrupt=$((corrupt + 1)); fi
            echo "round $2: FAILED ($3 after $4 s); b says: $(sed -n "/^round $2 /,/^round /p" "$work/b.out" | grep -v '^round' | tr '\n' '|')"
            host_view
        fi
    done
    grep -q '^done' "$work/b.out" && break
    kill -0 "$runner" 2>/dev/null || break
    # Without a server the rounds left would fail at once: say why and end.
    if [ "$a_told" = 1 ]; then
        h kill vmb KILL 2>/dev/null
        break
    fi
    # A round running long: look at the path while it is stuck, once a round.
    if [ "$seen" = "$last" ] && [ "$seen" -gt 0 ]; then
        quiet=$((quiet + 1))
        if [ "$quiet" = 30 ]; then echo "round $((seen + 1)): nothing after 30 s; now:"; host_view; fi
    else
        last="$seen" quiet=0
    fi
    sleep 1
done
if [ "$a_told" = 0 ] && ! grep -q '^done' "$work/b.out"; then
    echo "b did not finish; its stderr:"
    tail -n 20 "$work/b.err"
    stalled=$((stalled + 1))
    host_view
fi
echo "$seen rounds, $stalled stalled, $corrupt corrupt"
[ "$stalled" = 0 ] && [ "$corrupt" = 0 ] && [ "$seen" = "$rounds" ]
