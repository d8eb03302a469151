#!/usr/bin/env bash
# Docker drives hull: Debian's docker.io (dockerd 20.10 and its docker CLI), hull registered as
# a runtime in daemon.json, the same checks run with `--runtime hull` and with Debian's runc
# as the reference, on a busybox image this script builds itself (`docker import`, no registry).
#
#   integration/docker/run.sh [--hull PATH] [--keep] [--runtimes "hull runc"] [--testvm] [--kernel PATH]
#
#   --hull PATH      the hull binary (default: target/x86_64-unknown-linux-gnu/release/hull under the repository root)
#   --keep           keep the temporary directory (dockerd's data root, logs) for a post-mortem
#   --runtimes LIST  the runtimes to check, in order (default "hull runc"; hull-vm: every
#                    container a VM container, hull's VMM booting a microVM; needs /dev/kvm)
#   --testvm         run inside the test machine (integration/testvm: pure cgroup v2, an
#                    ordinary /dev/kvm) with dockerd, containerd and the tools carried in;
#                    default runtimes there "hull-vm"
#   --kernel PATH    the guest kernel for hull-vm (default $HULL_KERNEL, else
#                    /usr/local/share/hull/vmlinuz)
#
# Needs root. Installs docker.io and busybox-static from Debian when missing. A private dockerd:
# its data root, exec root, pid file, socket, daemon.json and the containerd it starts all live
# in one temporary directory; its containers' cgroups go under a cgroup parent of its own, and
# its default network is a bridge this script creates (no iptables rules: the host's firewall
# is left alone). A system docker, if any, is not touched. Everything is removed on exit.
# Prints PASS/FAIL per check and "N passed, M failed" per runtime; exits non-zero when anything
# failed with hull (runc's failures are printed for comparison, and fail the run too).

# Container commands are in single quotes on purpose: they expand inside the container.
# shellcheck disable=SC2016
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=integration/lib.sh
. "$repo/integration/lib.sh"
hull="$repo/target/x86_64-unknown-linux-gnu/release/hull"
keep=0
runtimes=""
testvm=0
kernel="$(default_kernel)"
while [ $# -gt 0 ]; do
    case "$1" in
        --hull) hull="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --runtimes) runtimes="$2"; shift 2 ;;
        --testvm) testvm=1; shift ;;
        # (as the other suites take it, for `just conformance-vm`)
        --backend) [ "$2" = vm ] && [ "$testvm" -eq 1 ] || { echo "docker: --backend vm goes with --testvm" >&2; exit 2; }; shift 2 ;;
        --kernel) kernel="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "docker: unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf 'docker: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (dockerd and hull both do)"
hull="$(realpath "$hull" 2>/dev/null)" || die "hull binary not found; run: cargo build --release"
[ -x "$hull" ] || die "$hull is not executable; run: cargo build --release"
[ -n "$runtimes" ] || { if [ "$testvm" -eq 1 ]; then runtimes=hull-vm; else runtimes="hull runc"; fi; }
vm=0
for rt in $runtimes; do
    case "$rt" in
        hull|runc) ;;
        hull-vm) vm=1
            kernel="$(realpath "$kernel" 2>/dev/null)" && [ -f "$kernel" ] ||
                die "hull-vm: no guest kernel at ${kernel:-?} (just kernel; --kernel, HULL_KERNEL)" ;;
        *) die "--runtimes: hull, hull-vm or runc, not $rt" ;;
    esac
done
inside=0
[ -e /etc/testvm ] && inside=1   # (the test machine: nothing to install, all carried in)

# ---------------------------------------------------------------------------------------------
# Debian packages: docker.io (dockerd, docker, docker-init; it pulls containerd and runc) and a
# static busybox. Installing docker.io enables its systemd units; this script never starts them.

need=()
[ "$inside" -eq 1 ] || { [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] && [ -x /usr/sbin/runc ]; } || need+=(docker.io)
find_busybox >/dev/null || need+=(busybox-static)
if [ "${#need[@]}" -gt 0 ] && [ "$inside" -eq 0 ]; then
    log "installing ${need[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null && \
            apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    } || die "apt-get install ${need[*]} failed"
fi
find_busybox >/dev/null || die "no static busybox (install busybox-static)"
# Debian's CLI, by path: a newer docker elsewhere on PATH (a static 28.x in /usr/local/bin on
# some machines) would negotiate down to the daemon's API, but CI has only Debian's, so the
# checks use the same one everywhere.
docker_cli=/usr/bin/docker
[ -x "$docker_cli" ] || die "no $docker_cli (the docker.io package)"

# --testvm: this script again inside the test machine, with what it runs carried in; GNU and
# util-linux tools the checks use go to /usr/local/bin, first on its PATH, over busybox's.
if [ "$testvm" -eq 1 ]; then
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    args=(--hull /hull --runtimes "$runtimes")
    [ "$keep" -eq 1 ] && args+=(--keep)
    adds=(--add "$(readlink -f "$(command -v bash)")":/bin/bash --add "$here/run.sh":/integration/docker/run.sh
        --add "$repo/integration/lib.sh":/integration/lib.sh)
    # (the files themselves, at these paths: Debian's docker-init is a link to tini-static)
    for b in /usr/sbin/dockerd /usr/bin/docker /usr/bin/docker-init /usr/sbin/docker-proxy /usr/sbin/runc; do
        adds+=(--add "$(readlink -f "$b")":"$b")
    done
    for b in containerd containerd-shim-runc-v2; do adds+=(--add "$(command -v "$b")"); done
    for b in timeout script tar ip; do adds+=(--add "$(readlink -f "$(command -v "$b")")":/usr/local/bin/$b); done
    [ "$vm" -eq 1 ] && { adds+=(--add "$kernel"); args+=(--kernel "$kernel"); }
    # apparmor=0: the test machine's kernel has AppArmor, which makes dockerd load its profile
    # with apparmor_parser (not carried in); the host here has none.
    exec "$repo/integration/testvm/testvm.sh" --hull "$hull" --timeout "${HULL_TESTVM_TIMEOUT:-1800}" \
        --append apparmor=0 "${adds[@]}" -- /bin/bash /integration/docker/run.sh "${args[@]}"
fi
[ "$vm" -eq 1 ] && [ ! -e /dev/kvm ] && die "hull-vm needs /dev/kvm (run it with --testvm)"

# ---------------------------------------------------------------------------------------------
# A private dockerd.

tmp="$(mktemp -d /tmp/hull-docker.XXXXXX)"
sock="$tmp/docker.sock"
tag="${tmp##*.}"
cgroup_parent="hull-docker-$tag"   # every container's cgroup: /<cgroup_parent>/<id>
bridge="hulld$tag"                 # (an interface name has at most 15 characters)
wrapper="$tmp/hull"
calls="$tmp/hull-calls.log"        # one line per hull invocation, written by the wrapper
image="hull-test/busybox:latest"
dockerd_pid=""
# Docker 20.10 gives every runtime the shim's runc root of runc: <exec-root>/runtime-runc/moby
# is where hull keeps its state (hull's --root), as runc does.
hull_root="$tmp/exec/runtime-runc/moby"
# Every docker call is bounded: a hang fails its check (exit 124) instead of the whole run.
export DOCKER_HOST="unix://$sock" DOCKER_CONFIG="$tmp/cli"
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_API_VERSION
# The CLI warns on each run on the bridge that IPv4 forwarding is off: this dockerd does not
# turn it on (a host setting), and the checks need none (the container talks to the bridge's
# own address). The warning is dropped so that outputs compare.
# A VM container boots its guest during create (nested under emulation in the test machine:
# seconds each), so with hull-vm the bounds and waits are longer.
if [ "$vm" -eq 1 ]; then limit=180; waits=600; else limit=60; waits=100; fi
d() {
    timeout -v -k 5 "$limit" "$docker_cli" "$@" 2> >(grep -v 'WARNING: IPv4 forwarding is disabled' >&2)
}

# A private /24 for the bridge: the first of a few that no route on this host uses yet.
subnet=""
for n in 250 251 252 253 254; do
    ip route | grep -q "^172\.31\.$n\." || { subnet="172.31.$n"; break; }
done
[ -n "$subnet" ] || die "no free 172.31.250-254.0/24 for the bridge"

cleanup() {
    local rc=$?
    set +e
    if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
        # What a failed check left, then dockerd (which stops the containerd it started).
        local ids
        ids="$(d ps -aq 2>/dev/null)"
        # shellcheck disable=SC2086
        [ -n "$ids" ] && d rm -f $ids >/dev/null 2>&1
        kill "$dockerd_pid"
        for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$dockerd_pid" 2>/dev/null
        wait "$dockerd_pid" 2>/dev/null
    fi
    # The containerd dockerd started, if dockerd died without stopping it.
    local cpid
    cpid="$(cat "$tmp/exec/containerd/containerd.pid" 2>/dev/null)"
    [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null && grep -q containerd "/proc/$cpid/comm" 2>/dev/null && kill "$cpid"
    # Containers hull still holds (a check failed half-way): their processes and cgroups.
    local id
    for id in $("$hull" --root "$hull_root" list -q 2>/dev/null); do
        "$hull" --root "$hull_root" delete --force "$id" >/dev/null 2>&1
    done
    rmdir /sys/fs/cgroup/*/"$cgroup_parent" /sys/fs/cgroup/"$cgroup_parent" 2>/dev/null
    ip link del "$bridge" 2>/dev/null
    # Mounts dockerd left (overlay2 layers, network namespaces), deepest first.
    awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m"; done
    if [ "$keep" -eq 1 ]; then
        log "kept $tmp"
    else
        rm -rf --one-file-system "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/data" "$tmp/exec" "$tmp/cli"
ip link add "$bridge" type bridge && ip addr add "$subnet.1/24" dev "$bridge" && ip link set "$bridge" up \
    || die "creating the bridge $bridge failed"

# The wrappers dockerd runs as the hull runtimes: they record the argv, then become hull; for
# hull-vm through a link named hull-vm (the name chooses the vm backend), with the kernel.
hull_wrappers "$tmp" "$hull" "$kernel" "$calls" || die "making the runtime wrappers in $tmp failed"
cat >"$tmp/daemon.json" <<EOF
{
  "runtimes": { "hull": { "path": "$wrapper" }, "hull-vm": { "path": "$tmp/hull-vm" } },
  "init-path": "/usr/bin/docker-init",
  "cgroup-parent": "/$cgroup_parent",
  "bridge": "$bridge",
  "iptables": false,
  "ip-masq": false,
  "ip-forward": false,
  "userland-proxy": true
}
EOF
# overlay2 cannot sit on overlayfs (/tmp in some CI containers): vfs there.
driver=overlay2
{ [ "$(stat -f -c %T "$tmp")" = overlayfs ] || ! grep -qw overlay /proc/filesystems; } && driver=vfs

# Its own session: a Ctrl-C in the terminal reaches this script, whose cleanup stops it.
setsid /usr/sbin/dockerd --config-file "$tmp/daemon.json" --data-root "$tmp/data" \
    --exec-root "$tmp/exec" --pidfile "$tmp/docker.pid" -H "unix://$sock" \
    --storage-driver "$driver" >"$tmp/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 300); do
    "$docker_cli" version >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.1
done
if ! "$docker_cli" version >/dev/null 2>&1; then
    tail -n 30 "$tmp/dockerd.log" >&2
    die "dockerd did not come up"
fi
log "$("$docker_cli" version --format 'dockerd {{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}')"

# The image: the busybox rootfs as one layer.
busybox_rootfs "$tmp/rootfs" || die "building the busybox rootfs failed"
tar --numeric-owner --owner=0 --group=0 -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" . \
    || die "tar of the rootfs failed"
d import -c 'CMD ["sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tmp/rootfs.tar" "$image" >"$tmp/import.log" 2>&1 \
    || { cat "$tmp/import.log" >&2; die "docker import failed"; }

# ---------------------------------------------------------------------------------------------
# Checks

passed=0
failed=0
t_last="${EPOCHREALTIME/,/.}"
log_mark="$(wc -l <"$tmp/dockerd.log")"
log_from=$((log_mark + 1))
elapsed() {
    local now="${EPOCHREALTIME/,/.}"
    took="$(awk -v a="$t_last" -v b="$now" 'BEGIN { printf "%.1fs", b - a }')"
    t_last="$now"
    log_from=$((log_mark + 1))
    log_mark="$(wc -l <"$tmp/dockerd.log")"
}
pass() { passed=$((passed + 1)); elapsed; printf 'PASS  [%s] %s (%s)\n' "$rt" "$1" "$took"; }
fail() {
    failed=$((failed + 1))
    elapsed
    printf 'FAIL  [%s] %s (%s)\n' "$rt" "$1" "$took"
    shift
    local l
    for l in "$@"; do printf '      %s\n' "$l"; done
    printf '      dockerd.log (errors during this check):\n'
    tail -n "+$log_from" "$tmp/dockerd.log" | grep -E 'level=(error|warning)' | tail -n 5 |
        sed 's/^/        /'
}
# check_eq NAME EXPECTED ACTUAL [detail...]
check_eq() {
    local name="$1" want="$2" got="$3"
    shift 3
    if [ "$got" = "$want" ]; then pass "$name"; else fail "$name" "want: $want" "got:  $got" "$@"; fi
}
# check_re NAME REGEX ACTUAL [detail...]
check_re() {
    local name="$1" re="$2" got="$3"
    shift 3
    if [[ "$got" =~ $re ]]; then pass "$name"; else fail "$name" "want: /$re/" "got:  $got" "$@"; fi
}
# wait_for CONTAINER FORMAT VALUE: until `docker inspect -f FORMAT` says VALUE (10 s, 60 s with
# hull-vm); prints what it said last.
wait_for() {
    local v=""
    for _ in $(seq "$waits"); do
        v="$(d inspect -f "$2" "$1" 2>&1)"
        [ "$v" = "$3" ] && break
        sleep 0.1
    done
    printf '%s' "$v"
}
# Runs a docker command with a pseudo-terminal on its stdin/stdout (-it needs one): util-linux's
# script, its own stdin /dev/null (with an open pipe script 2.38 spins until it closes).
with_pty() {
    local cmd
    printf -v cmd '%q ' "$@"
    # (script echoes the terminal's end of file as a literal ^@: dropped.)
    # (and the CLI's forwarding warning, which goes to the terminal too, as in d()).
    timeout -k 5 "$limit" script -qec "$cmd" /dev/null </dev/null | tr -d '\r\0' |
        sed -e 's/\^@//g' -e '/WARNING: IPv4 forwarding is disabled/d'
    return "${PIPESTATUS[0]}"
}

ids_file="$tmp/container-ids"   # every container's full id, for the cgroup check at the end
remember() { d inspect -f '{{.Id}}' "$1" >>"$ids_file" 2>/dev/null; }

run_checks() {
    local R=(--runtime "$rt") n="hull-$rt" out rc st t0 t1 id
    # A VM container's memory limit holds its guest and the VMM: hull-vm wants 96 MiB at least.
    local mem=64m mem_bytes=67108864 oom_mem=32m oom_bs=64M
    # (A guest with 128 MiB of RAM: 100 MiB touched at once is past what it has free.)
    [ "$rt" = hull-vm ] && mem=256m mem_bytes=268435456 oom_mem=160m oom_bs=100M

    # 1. run --rm: output and exit codes.
    out="$(d run --rm "${R[@]}" "$image" echo hello from docker 2>&1)"
    rc=$?
    check_eq "run --rm: output, exit 0" "hello from docker rc=0" "$out rc=$rc"
    out="$(d run --rm "${R[@]}" "$image" sh -c 'echo out; echo err >&2; exit 3' 2>"$tmp/err")"
    rc=$?
    check_eq "run --rm: stdout and stderr, exit 3" "out err rc=3" "$out $(cat "$tmp/err") rc=$rc"
    # A process SIGKILLed from outside: docker run itself exits 137.
    d run --rm "${R[@]}" --name "$n-sigkill" "$image" sleep 1000 >"$tmp/out" 2>&1 &
    local run_pid=$!
    st="$(wait_for "$n-sigkill" '{{.State.Running}}' true)"
    remember "$n-sigkill"
    d kill "$n-sigkill" >/dev/null 2>&1
    wait "$run_pid"
    rc=$?
    check_eq "run --rm: SIGKILLed by docker kill, exit 137" "true rc=137" "$st rc=$rc" "$(cat "$tmp/out")"

    # 2. -i: stdin reaches the container.
    out="$(printf 'line one\nline two\n' | d run --rm -i "${R[@]}" "$image" sh -c 'wc -l; exit 0' 2>&1)"
    check_eq "run -i: stdin reaches the container" 2 "$(echo $out)"
    # -t without -i: the container's stdout is a terminal.
    out="$(d run --rm -t "${R[@]}" "$image" sh -c 'tty; [ -t 1 ] && echo is-a-tty' </dev/null 2>&1 | tr -d '\r\0')"
    check_re "run -t: the container has a terminal" '^/dev/pts/[0-9]+ is-a-tty$' "$(echo $out)"

    # 3. -d, then exec: output, exit code, -e, -u, -w.
    id="$(d run -d "${R[@]}" --name "$n-d" "$image" sh -c 'trap "exit 0" TERM; echo started; while :; do sleep 0.2; done' 2>&1)"
    rc=$?
    st="$(wait_for "$n-d" '{{.State.Running}}' true)"
    remember "$n-d"
    check_eq "run -d: running" "0 true" "$rc $st" "$id"
    out="$(d exec "$n-d" sh -c 'echo exec output; exit 4' 2>&1)"
    rc=$?
    check_eq "exec: output, exit 4" "exec output rc=4" "$out rc=$rc"
    out="$(d exec -e FOO=bar -u nobody -w /tmp "$n-d" sh -c 'echo "$FOO $(id -u):$(id -g) $(pwd)"' 2>&1)"
    check_eq "exec -e -u nobody -w /tmp" "bar 65534:65534 /tmp" "$out"
    out="$(with_pty "$docker_cli" exec -it "$n-d" sh -c 'tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; exit 5' 2>&1)"
    rc=$?
    check_re "exec -it: a terminal on stdin and stdout, exit 5" '^/dev/pts/[0-9]+ both-ttys rc=5$' "$(echo $out) rc=$rc"

    # 4. top, stats, logs, cp out of the running container.
    out="$(d top "$n-d" 2>&1)"
    if [ "$rt" = hull-vm ]; then
        # docker top runs the host's ps on the pids the runtime's `ps` gives: a VM container's
        # processes are the guest kernel's, and the host process is the VMM.
        check_re "top: lists the VM container's host process, the VMM" 'hull-vm .*create --bundle' "$(echo $out)"
    else
        check_re "top: lists the container's shell" 'sh -c trap' "$(echo $out)"
    fi
    out="$(d stats --no-stream --format '{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}' "$n-d" 2>&1)"
    check_re "stats --no-stream: cpu %, memory, pids" '^[0-9]+\.[0-9]+%\|[0-9.]+[KMG]i?B / [0-9.]+[KMG]i?B\|[1-9][0-9]*$' "$out"
    d exec "$n-d" sh -c 'echo copied out > /tmp/f; echo to stderr >&2' >/dev/null 2>&1
    rm -f "$tmp/f"
    out="$(d cp "$n-d:/tmp/f" "$tmp/f" 2>&1)"
    rc=$?
    check_eq "cp out of a running container" "0 copied out" "$rc $(cat "$tmp/f" 2>/dev/null)" "$out"
    out="$(d logs "$n-d" 2>&1)"
    check_eq "logs" "started" "$out"

    # 5. pause, unpause: the state, and the container works after.
    d pause "$n-d" >"$tmp/out" 2>&1
    st="$(wait_for "$n-d" '{{.State.Status}}' paused)"
    check_eq "pause: paused" paused "$st" "$(cat "$tmp/out")"
    d unpause "$n-d" >"$tmp/out" 2>&1
    st="$(wait_for "$n-d" '{{.State.Status}}' running)"
    out="$(d exec "$n-d" echo alive 2>&1)"
    check_eq "unpause: running, exec works" "running alive" "$st $out" "$(cat "$tmp/out")"

    # update: new limits reach the running container's cgroups (the runtime's `update`).
    d update --memory 128m --memory-swap 256m --pids-limit 50 "$n-d" >"$tmp/out" 2>&1
    rc=$?
    out="$(d exec "$n-d" sh -c '
        cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null ||
        cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max' 2>&1)"
    check_eq "update --memory 128m --pids-limit 50: the running container sees both" \
        "0 134217728 50" "$rc $(echo $out)" "$(cat "$tmp/out")"

    # 6. stop of a shell that traps SIGTERM: exits 0 at once.
    t0=$SECONDS
    d stop -t 10 "$n-d" >"$tmp/out" 2>&1
    rc=$?
    t1=$((SECONDS - t0))
    st="$(d inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$n-d" 2>&1)"
    check_eq "stop: the SIGTERM trap exits 0 (under 5 s)" "0 exited 0 fast" "$rc $st $([ "$t1" -lt 5 ] && echo fast || echo "${t1}s")" "$(cat "$tmp/out")"
    # rm, and the runtime's state of it goes with it.
    d rm "$n-d" >/dev/null 2>&1

    # 7. stop of a shell that ignores SIGTERM: after -t 2, SIGKILL (137).
    d run -d "${R[@]}" --name "$n-ign" "$image" sh -c 'trap "" TERM; while :; do sleep 0.2; done' >/dev/null 2>&1
    wait_for "$n-ign" '{{.State.Running}}' true >/dev/null
    remember "$n-ign"
    t0=$SECONDS
    d stop -t 2 "$n-ign" >"$tmp/out" 2>&1
    rc=$?
    t1=$((SECONDS - t0))
    st="$(d inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$n-ign" 2>&1)"
    check_eq "stop -t 2 of a shell ignoring SIGTERM: killed after the timeout, 137" "0 exited 137 2-5s" \
        "$rc $st $([ "$t1" -ge 2 ] && [ "$t1" -le 5 ] && echo 2-5s || echo "${t1}s")" "$(cat "$tmp/out")"
    d rm "$n-ign" >/dev/null 2>&1

    # 8. kill -s USR1: the init's handler sees it and exits 10.
    d run -d "${R[@]}" --name "$n-usr1" "$image" sh -c 'trap "exit 10" USR1; while :; do sleep 0.2; done' >/dev/null 2>&1
    wait_for "$n-usr1" '{{.State.Running}}' true >/dev/null
    remember "$n-usr1"
    d kill -s USR1 "$n-usr1" >"$tmp/out" 2>&1
    rc=$?
    st="$(wait_for "$n-usr1" '{{.State.Status}} {{.State.ExitCode}}' 'exited 10')"
    check_eq "kill -s USR1: the trap exits 10" "0 exited 10" "$rc $st" "$(cat "$tmp/out")"
    d rm "$n-usr1" >/dev/null 2>&1

    # 9. --init: docker-init (tini) is pid 1, the command its child.
    out="$(d run --rm --init "${R[@]}" "$image" sh -c 'echo "$(cat /proc/1/comm) $$"' 2>&1)"
    check_re "run --init: pid 1 is docker-init, the command is not pid 1" '^docker-init [0-9]+$' "$out"
    [[ "$out" =~ ^docker-init\ 1$ ]] && fail "run --init: the command must not be pid 1" "$out"

    # 10. --restart on-failure:2: two restarts, then it stays exited.
    d run -d "${R[@]}" --name "$n-restart" --restart on-failure:2 "$image" sh -c 'echo run; exit 1' >/dev/null 2>&1
    remember "$n-restart"
    st=""
    for _ in $(seq 150); do
        st="$(d inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}' "$n-restart" 2>&1)"
        [ "$st" = "2 exited 1" ] && break
        sleep 0.1
    done
    sleep 0.5
    st="$(d inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}' "$n-restart" 2>&1)"
    out="$(d logs "$n-restart" 2>&1 | grep -c run)"
    check_eq "run --restart on-failure:2: restarted twice, then exited 1 (3 runs logged)" "2 exited 1 3" "$st $out"
    d rm -f "$n-restart" >/dev/null 2>&1

    # 11. --memory 64m (256m on hull-vm): the container reads its limit (cgroup v1
    # memory.limit_in_bytes, or v2 memory.max).
    out="$(d run --rm "${R[@]}" --memory "$mem" "$image" sh -c '
        cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max' 2>&1)"
    check_eq "run --memory $mem: the container sees its limit" "$mem_bytes" "$out"

    # Outgrowing it: the kernel OOM-kills the process, docker sees the OOM kill (on hull-vm the
    # guest's kernel kills, and the VMM relays the kill to the host cgroup: docs/vm.md).
    d run "${R[@]}" --name "$n-oom" --network none --memory "$oom_mem" "$image" \
        dd if=/dev/zero of=/dev/null bs="$oom_bs" count=1 >/dev/null 2>&1
    remember "$n-oom"
    st="$(d inspect -f '{{.State.OOMKilled}} {{.State.ExitCode}}' "$n-oom" 2>&1)"
    check_eq "run --memory $oom_mem, dd of $oom_bs: OOM-killed, docker says OOMKilled" "true 137" "$st"
    d rm -f "$n-oom" >/dev/null 2>&1

    # 12. networks: none (only lo), the default bridge (an address on it, the host's bridge
    # address answers a ping).
    out="$(d run --rm "${R[@]}" --network none "$image" sh -c 'ls /sys/class/net' 2>&1)"
    check_eq "run --network none: only lo" lo "$(echo $out)"
    out="$(d run --rm "${R[@]}" "$image" sh -c \
        "ip -4 -o addr show eth0 | grep -o 'inet [0-9.]*'; ping -c 1 -W 3 $subnet.1 >/dev/null && echo reached" 2>&1)"
    check_re "run (default bridge): an address on $subnet.0/24, the host's $subnet.1 answers" \
        "^inet ${subnet//./\\.}\.[0-9]+ reached$" "$(echo $out)"

    # -p: a port published on the host's loopback reaches the container. Without iptables
    # rules dockerd's userland proxy (docker-proxy) listens on the host and connects to the
    # container's bridge address.
    d run -d "${R[@]}" --name "$n-port" -p 127.0.0.1::8080 "$image" \
        nc -ll -p 8080 -e echo hello-port >/dev/null 2>&1
    wait_for "$n-port" '{{.State.Running}}' true >/dev/null
    remember "$n-port"
    local port
    port="$(d port "$n-port" 8080/tcp 2>&1 | head -n 1)"
    out=""
    for _ in $(seq 30); do
        out="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" && cat <&3' _ "$port" 2>/dev/null)"
        [ "$out" = hello-port ] && break
        sleep 0.2
    done
    check_eq "run -p 127.0.0.1::8080: the host reaches the container ($port)" hello-port "$out"
    d rm -f "$n-port" >/dev/null 2>&1

    # 13. limits the container reads from its cgroups (v1), and --read-only.
    out="$(d run --rm "${R[@]}" --cpus 0.5 --pids-limit 20 "$image" sh -c '
        cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/pids/pids.max 2>/dev/null ||
        cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/pids.max' 2>&1)"
    check_re "run --cpus 0.5 --pids-limit 20: the container sees both" '^50000 100000 20$' "$(echo $out)"
    out="$(d run --rm "${R[@]}" --read-only "$image" sh -c 'touch /x 2>&1; echo rc=$?' 2>&1)"
    check_re "run --read-only: the root filesystem refuses a write" 'Read-only file system rc=1$' "$(echo $out)"
    # Device rules: dockerd's spec allows a few devices; runc adds mknod of any node and
    # /dev/net/tun (a VPN client's), and images count on it. A block device's node can be
    # made (not read), /dev/net/tun made and opened (its read then fails: no interface). In
    # /dev, the container's tmpfs (on hull-vm the guest's: a node in the shared rootfs would be
    # made on the host by the VMM, which keeps no CAP_MKNOD).
    out="$(d run --rm "${R[@]}" --network none "$image" sh -c '
        mknod /dev/hull-loop b 7 0 && echo mknod-b-ok; head -c1 /dev/hull-loop >/dev/null 2>&1 || echo read-b-refused
        mknod /dev/hull-tun c 10 200 && echo mknod-tun-ok; head -c1 /dev/hull-tun 2>&1 | grep -c "not permitted"' 2>&1)"
    check_eq "mknod of a block device (not readable) and of /dev/net/tun (opens)" \
        "mknod-b-ok read-b-refused mknod-tun-ok 0" "$(echo $out)"
    # -it: a terminal both ways, and the exit code.
    out="$(with_pty "$docker_cli" run --rm -it "${R[@]}" "$image" sh -c 'tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; exit 6' 2>&1)"
    rc=$?
    check_re "run -it: a terminal on stdin and stdout, exit 6" '^/dev/pts/[0-9]+ both-ttys rc=6$' "$(echo $out) rc=$rc"

    # 14. rm -f of a running container: gone, and so is the runtime's state of it.
    d run -d "${R[@]}" --name "$n-rmf" "$image" sleep 1000 >/dev/null 2>&1
    wait_for "$n-rmf" '{{.State.Running}}' true >/dev/null
    id="$(d inspect -f '{{.Id}}' "$n-rmf" 2>/dev/null)"
    echo "$id" >>"$ids_file"
    d rm -f "$n-rmf" >"$tmp/out" 2>&1
    rc=$?
    out="$(d ps -aq --filter "name=$n-rmf")"
    st="$([ -n "$id" ] && [ ! -e "$hull_root/$id" ] && echo gone || echo "left: $hull_root/$id")"
    check_eq "rm -f of a running container: gone, its runtime state too" "0  gone" "$rc $out $st" "$(cat "$tmp/out")"
}

totals=()
for rt in $runtimes; do
    p0=$passed f0=$failed t_start=$SECONDS
    run_checks
    # Not a check: how long a whole `docker run --rm true` takes (dockerd, containerd, the
    # shim and the runtime), the mean of 5.
    t0="${EPOCHREALTIME/,/.}"
    for _ in 1 2 3 4 5; do d run --rm --runtime "$rt" --network none "$image" true >/dev/null 2>&1; done
    mean="$(awk -v a="$t0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.2f", (b - a) / 5 }')"
    totals+=("$rt: $((passed - p0)) passed, $((failed - f0)) failed ($((SECONDS - t_start)) s; docker run --rm --network none true: ${mean} s, mean of 5)")
done

# hull really ran the hull containers: the wrapper saw the shim's calls.
for rt in $runtimes; do
    [ "$rt" = runc ] && continue
    missing=""
    for c in "create --bundle" "start" "exec" "kill" "delete" "pause" "resume" "update"; do
        grep -Eq -- "^$rt (.* )?$c( |\$)" "$calls" 2>/dev/null || missing="$missing, $c"
    done
    if [ -z "$missing" ]; then
        pass "hull was called by the shim: $(grep -c "^$rt " "$calls") calls, all of create, start, exec, kill, delete, pause, resume, update"
    else
        fail "hull was called by the shim for each command" "not seen: ${missing#, }" \
            "first calls:" "$(head -n 3 "$calls" 2>/dev/null)"
    fi
done

# Nothing left: no container in the runtime root, no cgroup named after a container.
rt=all
left="$(d ps -aq 2>&1)"
check_eq "no container left in dockerd" "" "$left"
left="$("$hull" --root "$hull_root" list -q 2>&1)"
check_eq "no container left in the runtime root ($hull_root)" "" "$left"
left=""
while read -r id; do
    [ -n "$id" ] || continue
    left="$left$(find /sys/fs/cgroup -maxdepth 4 -type d -name "*$id*" 2>/dev/null | head -n 3)"
done <"$ids_file"
check_eq "no cgroup named after any of the $(wc -l <"$ids_file") containers" "" "$left"
left="$(find /sys/fs/cgroup/*/"$cgroup_parent" /sys/fs/cgroup/"$cgroup_parent" -mindepth 1 -type d 2>/dev/null | head -n 5)"
check_eq "no cgroup left under /$cgroup_parent (the --rm containers too)" "" "$left"

printf '%s\n' "${totals[@]}"
echo "$passed passed, $failed failed (docker: $runtimes)"
[ "$failed" -eq 0 ]
