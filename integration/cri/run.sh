#!/usr/bin/env bash
# Kubernetes' CRI drives hull: Debian's containerd with its CRI plugin on, runtime handlers on
# containerd-shim-runc-v2 (BinaryName), CNI's bridge from Debian's containernetworking-plugins,
# and the calls a kubelet makes (pods, containers joining the sandbox's namespaces, exec, a
# terminal over the streaming server, logs, stats, stop with a grace period) made over the
# CRI socket by checks.py. The same checks run against Debian's runc as a reference.
#
#   integration/cri/run.sh [--hull PATH] [--keep] [--handlers "hull runc"] [--testvm] [--kernel PATH]
#
#   --hull PATH        the hull binary (default: target/x86_64-unknown-linux-gnu/release/hull under the repository root)
#   --keep             keep the temporary directory (containerd's root, its log, hull's argv log)
#   --handlers LIST    the runtime handlers to run the checks against, in order (default
#                      "hull runc"; runc is Debian's, the reference: a check it fails is broken;
#                      hull-vm: app containers in VMs, the sandbox native; needs /dev/kvm)
#   --testvm           run inside the test machine (integration/testvm: pure cgroup v2, an
#                      ordinary /dev/kvm), with containerd, the CNI plugins, Debian's python3.11
#                      and the client's packages carried in; default handlers there "hull-vm hull"
#   --kernel PATH      the guest kernel for hull-vm (default $HULL_KERNEL, else
#                      /usr/local/share/hull/vmlinuz)
#
# Needs root. Installs containerd, containernetworking-plugins, busybox-static and gcc from
# Debian when missing, and grpcio, grpcio-tools and websocket-client from PyPI into a venv kept
# outside the work tree (/var/cache/hull-cri/venv; HULL_CRI_CACHE moves it). Everything
# containerd writes lives in one temporary directory, removed on exit with the containerd it
# started. Prints PASS/FAIL per check and "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/integration/cri"
# shellcheck source=integration/lib.sh
. "$repo/integration/lib.sh"
hull="$repo/target/x86_64-unknown-linux-gnu/release/hull"
keep=0
handlers=""
testvm=0
kernel="$(default_kernel)"
python=""      # inside the test machine: the carried python3.11 (else the venv's)
gen=""         # inside the test machine: cri.proto compiled on the host
pause_bin=""   # inside the test machine: pause.c built on the host
while [ $# -gt 0 ]; do
    case "$1" in
        --hull) hull="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --handlers) handlers="$2"; shift 2 ;;
        --testvm) testvm=1; shift ;;
        # (as the other suites take it, for `just conformance-vm`: the test machine's default
        # handlers already put app containers in VMs)
        --backend) [ "$2" = vm ] && [ "$testvm" -eq 1 ] || { echo "cri: --backend vm goes with --testvm" >&2; exit 2; }; shift 2 ;;
        --kernel) kernel="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --gen) gen="$2"; shift 2 ;;
        --pause) pause_bin="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "cri: unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf 'cri: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (containerd and hull both do)"
hull="$(realpath "$hull" 2>/dev/null)" && [ -x "$hull" ] || die "no hull binary; run: cargo build --release"
[ -n "$handlers" ] || { if [ "$testvm" -eq 1 ]; then handlers="hull-vm hull"; else handlers="hull runc"; fi; }
for h in $handlers; do
    case "$h" in
        hull|runc) ;;
        hull-vm) kernel="$(realpath "$kernel" 2>/dev/null)" && [ -f "$kernel" ] ||
            die "hull-vm: no guest kernel at ${kernel:-?} (just kernel; --kernel, HULL_KERNEL)" ;;
        *) die "--handlers: hull, hull-vm or runc, not $h" ;;
    esac
done
inside=0
[ -n "$python" ] && inside=1   # (run by the --testvm branch below, in the test machine)

# ---------------------------------------------------------------------------------------------
# What the checks need: Debian's packages, and the gRPC client from PyPI in a cached venv.

need=()
[ "$inside" -eq 1 ] || for b in containerd ctr containerd-shim-runc-v2; do
    command -v "$b" >/dev/null 2>&1 || { need+=(containerd); break; }
done
if [ "$inside" -eq 0 ]; then
    command -v runc >/dev/null 2>&1 || need+=(runc)
    find_busybox >/dev/null || need+=(busybox-static)
    for p in bridge host-local loopback; do
        [ -x "/usr/lib/cni/$p" ] || { need+=(containernetworking-plugins); break; }
    done
    command -v gcc >/dev/null 2>&1 && [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(gcc libc6-dev)
    command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
    # Debian's python3.11 with venv: the client's venv is made with it, so that the packages
    # also run on the same python carried into the test machine (one CPython ABI).
    { [ -x /usr/bin/python3.11 ] && /usr/bin/python3.11 -c 'import ensurepip' 2>/dev/null; } ||
        need+=(python3.11 python3.11-venv)
fi
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null &&
            apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    } || die "apt-get install ${need[*]} failed"
fi

cache="${HULL_CRI_CACHE:-/var/cache/hull-cri}"
venv="$cache/venv"
py_deps=(grpcio==1.85.4 grpcio-tools==1.85.4 websocket-client==1.9.2)
if [ "$inside" -eq 0 ]; then
    if ! "$venv/bin/python" -c 'import grpc, grpc_tools, websocket' 2>/dev/null ||
        [ "$(cat "$venv/.deps" 2>/dev/null)" != "/usr/bin/python3.11 ${py_deps[*]}" ]; then
        log "making the gRPC client's venv in $venv (${py_deps[*]})"
        rm -rf "$venv"
        mkdir -p "$cache"
        /usr/bin/python3.11 -m venv "$venv" || die "python3.11 -m venv $venv failed"
        "$venv/bin/pip" install -q "${py_deps[@]}" || die "pip install ${py_deps[*]} failed"
        echo "/usr/bin/python3.11 ${py_deps[*]}" >"$venv/.deps"
    fi
    python="$venv/bin/python"
    # The client (cri.proto compiled) and the sandbox's pause, made here: the test machine
    # has neither protoc nor a C compiler.
    gen="$cache/gen"
    rm -rf "$gen" && mkdir -p "$gen"
    "$python" -m grpc_tools.protoc -I "$here" --python_out="$gen" --grpc_python_out="$gen" \
        "$here/cri.proto" || die "compiling cri.proto failed"
    pause_bin="$cache/pause"
    gcc -static -Os -o "$pause_bin" "$here/pause.c" || die "building pause.c failed"
fi

# --testvm: this script again inside the test machine, with what it runs carried in: the
# client runs on Debian's python3.11 with the venv's packages (the same CPython ABI); GNU
# tools the script uses go to /usr/local/bin, first on its PATH, over busybox's.
if [ "$testvm" -eq 1 ]; then
    site="$("$python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    args=(--hull /hull --handlers "$handlers" --python /usr/bin/python3.11 --gen /opt/cri/gen
        --pause /opt/cri/pause)
    [ "$keep" -eq 1 ] && args+=(--keep)
    adds=(--add "$(readlink -f "$(command -v bash)")":/bin/bash --add "$here":/integration/cri
        --add "$repo/integration/lib.sh":/integration/lib.sh --add "$gen":/opt/cri/gen
        --add "$pause_bin":/opt/cri/pause --add /usr/bin/python3.11 --add /usr/lib/python3.11)
    for p in grpc google websocket typing_extensions.py; do adds+=(--add "$site/$p":/opt/cri/site/$p); done
    # The libraries of python's own extension modules (testvm follows only executables').
    for l in $(ldd /usr/lib/python3.11/lib-dynload/*.so 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u); do
        adds+=(--add "$(readlink -f "$l")":"$l")
    done
    for b in containerd ctr containerd-shim-runc-v2; do adds+=(--add "$(command -v "$b")"); done
    for b in timeout tar gzip comm; do adds+=(--add "$(readlink -f "$(command -v "$b")")":/usr/local/bin/$b); done
    adds+=(--add "$(readlink -f "$(command -v ip)")":/usr/local/bin/ip)
    for p in bridge host-local loopback; do adds+=(--add /usr/lib/cni/$p); done
    case " $handlers " in *" hull-vm "*) adds+=(--add "$kernel"); args+=(--kernel "$kernel") ;; esac
    exec "$repo/integration/testvm/testvm.sh" --hull "$hull" --timeout "${HULL_TESTVM_TIMEOUT:-1800}" \
        --env PYTHONPATH=/opt/cri/site "${adds[@]}" -- /bin/bash /integration/cri/run.sh "${args[@]}"
fi
case " $handlers " in *" hull-vm "*) [ -e /dev/kvm ] || die "hull-vm needs /dev/kvm (run it with --testvm)" ;; esac
log "$(containerd --version)"

# ---------------------------------------------------------------------------------------------
# A private containerd with the CRI plugin: root, state, config, sockets, the handlers' runtime
# roots, CNI's config and state, the pods' logs, all in one temporary directory.

tmp="$(mktemp -d /tmp/hull-cri.XXXXXX)"
tag="${tmp##*.}"
sock="$tmp/containerd.sock"
calls="$tmp/hull-calls.log"
cgroup_parent="/hull-cri-$tag"
bridge="hullcri$tag"
bridge="${bridge:0:15}"
busybox="docker.io/hull-test/busybox:latest"
pause="docker.io/hull-test/pause:latest"
containerd_pid=""
netns_before="$(ls /run/netns 2>/dev/null | sort)"

ctr_() { timeout -v -k 5 60 ctr -a "$sock" -n k8s.io "$@"; }
# The handlers' runtime roots. Long on purpose: a VM container's sockets live in its state
# directory, <root>/k8s.io/<64-hex id>/vsock_1024 (115 bytes here, as Docker's 109), past
# the 107 bytes a unix socket's address holds, which hull-vm must handle.
roots="$tmp/runtime"
runtime_root() { echo "$roots/$1/k8s.io"; }   # the shim adds the namespace to Root
runtime_bin() { if [ "$1" = runc ]; then command -v runc; else echo "$tmp/$1"; fi; }

cleanup() {
    local rc=$?
    set +e
    [ -n "$containerd_pid" ] && stop_containerd "$sock" k8s.io "$containerd_pid"
    local h id
    for h in $handlers; do
        for id in $("$(runtime_bin "$h")" --root "$(runtime_root "$h")" list -q 2>/dev/null); do
            "$(runtime_bin "$h")" --root "$(runtime_root "$h")" delete --force "$id" >/dev/null 2>&1
        done
    done
    # Network namespaces the CRI made and did not remove (a failed teardown).
    for n in $(comm -13 <(echo "$netns_before") <(ls /run/netns 2>/dev/null | sort)); do
        case "$n" in cni-*) ip netns delete "$n" 2>/dev/null ;; esac
    done
    ip link delete "$bridge" 2>/dev/null
    # The pods' cgroups (kubelet makes and removes the pod level; here the script does).
    find /sys/fs/cgroup -depth -type d -path "*$cgroup_parent*" -exec rmdir {} + 2>/dev/null
    awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m"; done
    if [ "$keep" -eq 1 ]; then log "kept $tmp"; else rm -rf --one-file-system "$tmp" 2>/dev/null || rm -rf "$tmp"; fi  # (busybox rm: no --one-file-system)
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/root" "$tmp/state" "$tmp/net.d" "$tmp/cni" "$tmp/images" "$tmp/logs"
snapshotter=overlayfs
if [ "$(stat -f -c %T "$tmp")" = overlayfs ] || ! grep -qw overlay /proc/filesystems; then
    snapshotter=native
fi

# A kubelet gives the sandbox an oom_score_adj of -998, which needs CAP_SYS_RESOURCE to set.
# Where this root lacks it (some container hosts, these machines among them), every runtime
# fails the sandbox's create; containerd's restrict_oom_score_adj clamps the value to its own.
restrict_oom=false
sh -c 'echo -1 >/proc/self/oom_score_adj' 2>/dev/null || restrict_oom=true

# The wrappers the shim runs for the hull handlers: record the argv, then become hull; for
# hull-vm through a link named hull-vm (the name chooses the vm backend), with the kernel.
hull_wrappers "$tmp" "$hull" "$kernel" "$calls" || die "making the runtime wrappers in $tmp failed"

{
    cat <<EOF
version = 2
root = "$tmp/root"
state = "$tmp/state"

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = $restrict_oom
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$tmp/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snapshotter"
    default_runtime_name = "${handlers%% *}"
EOF
    for h in $handlers; do
        cat <<EOF
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$h]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$h.options]
        BinaryName = "$(runtime_bin "$h")"
        Root = "$roots/$h"
EOF
    done
} >"$tmp/config.toml"

# CNI: one bridge with host-local addresses, no masquerade (so no iptables), as a cluster's
# simplest pod network. The CRI adds loopback itself.
octet=$(( 0x$(printf '%s' "$tag" | sha256sum | cut -c1-2) % 200 + 20 ))
subnet="10.89.$octet"
cat >"$tmp/net.d/10-hull-cri.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "hull-cri",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$subnet.0/24", "gateway": "$subnet.1" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$tmp/cni"
      }
    }
  ]
}
EOF

setsid containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 150); do
    ctr -a "$sock" version >/dev/null 2>&1 && break
    kill -0 "$containerd_pid" 2>/dev/null || break
    sleep 0.1
done
ctr -a "$sock" version >/dev/null 2>&1 || { tail -n 30 "$tmp/containerd.log" >&2; die "containerd did not come up"; }
if ! ctr -a "$sock" plugins ls 2>/dev/null | grep -q 'io.containerd.grpc.v1 *cri .* ok'; then
    ctr -a "$sock" plugins ls 2>&1 | grep -E 'cri|snapshotter' >&2
    grep -E 'cri|level=(error|fatal)' "$tmp/containerd.log" | tail -n 20 >&2
    die "containerd's CRI plugin did not load"
fi

# ---------------------------------------------------------------------------------------------
# The images, built by hand and imported into the CRI's namespace (no registry): busybox, and
# the sandbox image holding only pause.c built static.

busybox_rootfs "$tmp/images/busybox" || die "building the busybox rootfs failed"
oci_image_tar "$tmp/images/busybox" "$tmp/images/busybox.tar" '["sh"]' integration/cri/run.sh ||
    die "building the busybox image failed"
mkdir -p "$tmp/images/pause"
cp "$pause_bin" "$tmp/images/pause/pause" || die "no pause binary at $pause_bin"
oci_image_tar "$tmp/images/pause" "$tmp/images/pause.tar" '["/pause"]' integration/cri/run.sh ||
    die "building the pause image failed"
for i in busybox pause; do
    ref="docker.io/hull-test/$i"
    ctr_ images import --base-name "$ref" "$tmp/images/$i.tar" >"$tmp/import.log" 2>&1 ||
        { cat "$tmp/import.log" >&2; die "ctr images import $i failed"; }
done

# ---------------------------------------------------------------------------------------------
# The checks, a handler at a time, then what each handler left.

passed=0
failed=0
skipped=0
leftover() {
    local h="$1" what
    what="$("$(runtime_bin "$h")" --root "$(runtime_root "$h")" list -q 2>/dev/null)"
    [ -z "$what" ] || echo "containers still in $h's root: $what"
    what="$(find /sys/fs/cgroup -mindepth 2 -type d -path "*$cgroup_parent/pod-$h-*/*" 2>/dev/null | head -n 5)"
    [ -z "$what" ] || echo "container cgroups left: $what"
    what="$(ip -o link show master "$bridge" 2>/dev/null)"
    [ -z "$what" ] || echo "ports left on the bridge: $what"
    what="$(comm -13 <(echo "$netns_before") <(ls /run/netns 2>/dev/null | sort))"
    [ -z "$what" ] || echo "network namespaces left: $what"
    what="$(awk -v t="$tmp/root/" 'index($2, t) == 1 && $2 !~ /snapshots$/ { print $2 }' /proc/self/mounts | head -n 5)"
    [ -z "$what" ] || echo "mounts left under containerd's root: $what"
}
for h in $handlers; do
    start=$SECONDS
    out="$tmp/checks-$h.out"
    vm=()
    limit=60
    [ "$h" = hull-vm ] && vm=(--vm) && limit=240   # a guest boots nested under emulation
    PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$gen" "$python" "$here/checks.py" --socket "$sock" --handler "$h" \
        --image "$busybox" --work "$tmp" --cgroup-parent "$cgroup_parent" --tag "$tag" --limit "$limit" "${vm[@]}" |
        tee "$out"
    totals='^\['"$h"'\] \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$'
    p="$(sed -n "s/$totals/\1/p" "$out")"
    f="$(sed -n "s/$totals/\2/p" "$out")"
    skipped=$((skipped + $(sed -n "s/$totals/\3/p" "$out" | grep . || echo 0)))
    [ -n "$p" ] || { p=0; f=$((f + 1)); echo "FAIL  [$h] checks.py ended before its totals"; }
    passed=$((passed + p))
    failed=$((failed + f))
    what="$(leftover "$h")"
    if [ -z "$what" ]; then
        passed=$((passed + 1))
        echo "PASS  [$h] nothing left: containers, cgroups, bridge ports, netns, mounts"
    else
        failed=$((failed + 1))
        echo "FAIL  [$h] nothing left: containers, cgroups, bridge ports, netns, mounts"
        printf '%s\n' "$what" | sed 's/^/      /'
    fi
    if [ "$h" != runc ]; then
        # The shim really ran hull, for every verb the checks need of a runtime.
        missing=""
        for verb in create start exec kill delete; do
            grep -Eq "^$h (.* )?$verb( |$)" "$calls" 2>/dev/null || missing="$missing $verb"
        done
        if [ -z "$missing" ]; then
            passed=$((passed + 1))
            echo "PASS  [$h] the shim ran hull for create, start, exec, kill, delete"
        else
            failed=$((failed + 1))
            echo "FAIL  [$h] the shim never ran hull for:$missing"
        fi
    fi
    log "[$h] $((SECONDS - start)) s"
done

if [ "$failed" -gt 0 ]; then
    log "containerd's errors:"
    grep -E 'level=error' "$tmp/containerd.log" | tail -n 20 >&2
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
