#!/usr/bin/env bash
# containerd drives hull: Debian's containerd and ctr, containerd-shim-runc-v2 with
# BinaryName=hull (`ctr run --runc-binary`), on a busybox image this script builds itself.
#
#   integration/containerd/run.sh [--hull PATH] [--keep] [--backend native|vm] [--testvm]
#                                 [--kernel PATH]
#
#   --hull PATH      the hull binary (default: target/x86_64-unknown-linux-gnu/release/hull under the repository root)
#   --keep           keep the temporary directory (containerd's root, logs) for a post-mortem
#   --backend vm     the shim's runc is a `hull-vm` symlink: every container is a VM container
#                    (hull's VMM booting a KVM microVM; needs an ordinary /dev/kvm, see --testvm)
#   --testvm         run the same checks inside the test machine (integration/testvm: QEMU,
#                    pure cgroup v2, an ordinary /dev/kvm), with the host's containerd, ctr,
#                    containerd-shim-runc-v2, bash and a few GNU tools carried in
#   --kernel PATH    the guest kernel for --backend vm (default $HULL_KERNEL, else
#                    /usr/local/share/hull/vmlinuz)
#
# Needs root. Installs containerd and busybox-static from Debian when missing. Everything
# containerd writes (root, state, config, socket, images, the runtime root hull is given) lives
# in one temporary directory, removed on exit together with the containerd it started.
# Prints PASS/FAIL per check and "N passed, M failed"; exits non-zero when anything failed.

# Container commands are in single quotes on purpose: they expand inside the container.
# shellcheck disable=SC2016
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=integration/lib.sh
. "$repo/integration/lib.sh"
hull="$repo/target/x86_64-unknown-linux-gnu/release/hull"
keep=0
backend=native
testvm=0
kernel="$(default_kernel)"
while [ $# -gt 0 ]; do
    case "$1" in
        --hull) hull="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --backend) backend="$2"; shift 2 ;;
        --testvm) testvm=1; shift ;;
        --kernel) kernel="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "containerd: unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf 'containerd: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (containerd and hull both do)"
hull="$(realpath "$hull" 2>/dev/null)" || die "hull binary not found; run: cargo build --release"
[ -x "$hull" ] || die "$hull is not executable; run: cargo build --release"
case "$backend" in native|vm) ;; *) die "--backend: native or vm, not $backend" ;; esac
if [ "$backend" = vm ]; then
    kernel="$(realpath "$kernel" 2>/dev/null)" && [ -f "$kernel" ] \
        || die "no guest kernel at ${kernel:-?} (just kernel; --kernel, HULL_KERNEL)"
fi

# ---------------------------------------------------------------------------------------------
# Debian packages: containerd (containerd, ctr, containerd-shim-runc-v2) and a static busybox.

need=()
for b in containerd ctr containerd-shim-runc-v2; do
    command -v "$b" >/dev/null 2>&1 || { need+=(containerd); break; }
done
find_busybox >/dev/null || need+=(busybox-static)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || need+=(containernetworking-plugins)
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null && \
            apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    } || die "apt-get install ${need[*]} failed"
fi
find_busybox >/dev/null || die "no static busybox (install busybox-static)"

# --testvm: the same script inside the test machine, with what it runs carried in. Its
# busybox lacks what the checks use of GNU tools (timeout --foreground, script -e, tar --sort):
# those go to /usr/local/bin, first on its PATH.
if [ "$testvm" -eq 1 ]; then
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    args=(--hull /hull --backend "$backend")
    [ "$keep" -eq 1 ] && args+=(--keep)
    adds=(--add "$(readlink -f "$(command -v bash)")":/bin/bash --add "$here/run.sh":/integration/containerd/run.sh
        --add "$repo/integration/lib.sh":/integration/lib.sh)
    for b in containerd ctr containerd-shim-runc-v2; do adds+=(--add "$(command -v "$b")"); done
    for b in timeout script tar gzip unshare; do adds+=(--add "$(readlink -f "$(command -v "$b")")":/usr/local/bin/$b); done
    # CNI's plugins for the CNI bridge network check (static Go binaries).
    adds+=(--add /usr/lib/cni/bridge --add /usr/lib/cni/host-local)
    if [ "$backend" = vm ]; then
        adds+=(--add "$kernel")
        args+=(--kernel "$kernel")
    fi
    exec "$repo/integration/testvm/testvm.sh" --hull "$hull" --timeout "${HULL_TESTVM_TIMEOUT:-1800}" \
        "${adds[@]}" -- /bin/bash /integration/containerd/run.sh "${args[@]}"
fi
log "$(containerd --version)"
[ "$backend" = vm ] && [ ! -e /dev/kvm ] && die "--backend vm needs /dev/kvm (run it with --testvm)"

# ---------------------------------------------------------------------------------------------
# A private containerd: root, state, config, sockets and hull's runtime root in one temp dir.

tmp="$(mktemp -d /tmp/hull-containerd.XXXXXX)"
sock="$tmp/containerd.sock"
ns="hull-test"
runc_root="$tmp/runc"          # the shim gives hull --root $runc_root/$ns
hull_root="$runc_root/$ns"
calls="$tmp/hull-calls.log"    # one line per hull invocation, written by the wrapper
wrapper="$tmp/hull"
image="docker.io/hull-test/busybox:latest"
containerd_pid=""

# Every ctr call is bounded: a hang fails its check (exit 124) instead of the whole run. A VM
# container boots its guest during create (5-20 s in the emulated test machine, 60 s at most
# before hull gives up), so it gets longer; waits for a task's status scale the same way.
if [ "$backend" = vm ]; then limit=150; wait_s=60; else limit=60; wait_s=10; fi
# (--verbose: a check that timed out says so, instead of looking like a SIGKILL's 137.)
ctr_() { timeout -v -k 5 "$limit" ctr -a "$sock" -n "$ns" "$@"; }

cleanup() {
    local rc=$?
    set +e
    [ -n "$containerd_pid" ] && stop_containerd "$sock" "$ns" "$containerd_pid"
    # Containers hull still holds (a check failed half-way): their processes and cgroups.
    local id
    for id in $("$hull" --root "$hull_root" list -q 2>/dev/null); do
        "$hull" --root "$hull_root" delete --force "$id" >/dev/null 2>&1
    done
    # The namespace's parent cgroup (/hull-test), when empty: runc leaves it, hull removes it.
    rmdir /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns" 2>/dev/null
    # Mounts containerd left (snapshots, rootfs of containers), deepest first.
    awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m"; done
    if [ "$keep" -eq 1 ]; then
        log "kept $tmp"
    else
        rm -rf --one-file-system "$tmp" 2>/dev/null || rm -rf "$tmp"  # (busybox rm: no --one-file-system)
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/root" "$tmp/state" "$tmp/opt" "$runc_root"
# overlayfs (ctr's default snapshotter) cannot sit on overlayfs, as /tmp is inside some CI
# containers, and the test machine's kernel has no overlay module loaded (its initramfs
# carries only the kvm modules): use the native (copying) snapshotter there.
if [ "$(stat -f -c %T "$tmp")" = overlayfs ] || ! grep -qw overlay /proc/filesystems; then
    export CONTAINERD_SNAPSHOTTER=native
fi
cat >"$tmp/config.toml" <<EOF
version = 2
root = "$tmp/root"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = "$tmp/opt"
EOF

# The wrapper the shim runs as its runc: it records the argv, then becomes hull. With the vm
# backend it is named hull-vm and becomes hull through a symlink named hull-vm (hull's program
# name chooses the backend; commands on an existing container take it from its state), with
# the guest kernel in HULL_KERNEL.
runtime="$hull"
env_line=""
if [ "$backend" = vm ]; then
    mkdir -p "$tmp/bin"
    ln -s "$hull" "$tmp/bin/hull-vm"
    runtime="$tmp/bin/hull-vm"
    wrapper="$tmp/hull-vm"
    env_line="export HULL_KERNEL='$kernel'"
fi
cat >"$wrapper" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$calls"
$env_line
exec "$runtime" "\$@"
EOF
chmod 755 "$wrapper"

# Its own session: a Ctrl-C in the terminal reaches this script, whose cleanup then stops the
# containers through containerd before stopping containerd.
setsid containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do
    ctr -a "$sock" version >/dev/null 2>&1 && break
    kill -0 "$containerd_pid" 2>/dev/null || break
    sleep 0.1
done
if ! ctr -a "$sock" version >/dev/null 2>&1; then
    tail -n 30 "$tmp/containerd.log" >&2
    die "containerd did not come up"
fi

# ---------------------------------------------------------------------------------------------
# The image: an OCI image layout built by hand (one gzip layer: busybox, its applets, passwd
# and group), imported with ctr. No registry.

build_image() {
    busybox_rootfs "$tmp/image/rootfs" || return 1
    oci_image_tar "$tmp/image/rootfs" "$tmp/image/busybox-oci.tar" '["sh"]' "integration/containerd/run.sh"
}
build_image || die "building the busybox image failed"
# Debian's ctr (containerd 1.6) names the index's "latest" ref <base-name>:latest.
ctr_ images import --base-name "${image%:*}" "$tmp/image/busybox-oci.tar" >"$tmp/import.log" 2>&1 \
    || { cat "$tmp/import.log" >&2; die "ctr images import failed"; }
ctr_ images ls -q | grep -qx "$image" \
    || { ctr_ images ls >&2; die "image $image not in containerd after the import"; }

# ---------------------------------------------------------------------------------------------
# Checks

passed=0
failed=0
skipped=0
t_last="${EPOCHREALTIME/,/.}"
log_mark="$(wc -l <"$tmp/containerd.log")"
log_from=$((log_mark + 1))
# Sets $took to the seconds since the last check ended, for a slow step to show, and
# $log_from to the first line containerd logged since then.
elapsed() {
    local now="${EPOCHREALTIME/,/.}"
    took="$(awk -v a="$t_last" -v b="$now" 'BEGIN { printf "%.1fs", b - a }')"
    t_last="$now"
    log_from=$((log_mark + 1))
    log_mark="$(wc -l <"$tmp/containerd.log")"
}
pass() { passed=$((passed + 1)); elapsed; printf 'PASS  %s (%s)\n' "$1" "$took"; }
fail() {
    failed=$((failed + 1))
    elapsed
    printf 'FAIL  %s (%s)\n' "$1" "$took"
    shift
    local l
    for l in "$@"; do printf '      %s\n' "$l"; done
    # What hull told the shim (the last lines of each container's log.json) and containerd.
    local f
    for f in "$tmp"/state/io.containerd.runtime.v2.task/"$ns"/*/log.json; do
        [ -s "$f" ] || continue
        printf '      %s:\n' "${f#"$tmp"/}"
        tail -n 3 "$f" | sed 's/^/        /'
    done
    printf '      containerd.log (errors and warnings during this check):\n'
    tail -n "+$log_from" "$tmp/containerd.log" | grep -E 'level=(error|warning)' | tail -n 5 |
        sed 's/^/        /'
}
# A check that cannot hold for this backend: said, with why, and counted apart.
skip() { skipped=$((skipped + 1)); elapsed; printf 'SKIP  %s (%s)\n      why: %s\n' "$1" "$took" "$2"; }
# check NAME EXPECTED ACTUAL [detail...]
check_eq() {
    local name="$1" want="$2" got="$3"
    shift 3
    if [ "$got" = "$want" ]; then pass "$name"; else fail "$name" "want: $want" "got:  $got" "$@"; fi
}

# ctr run with hull as the runc of containerd-shim-runc-v2 (BinaryName), in the private root.
RUN=(run --runtime io.containerd.runc.v2 --runc-binary "$wrapper" --runc-root "$runc_root")

# Runs ctr with a pseudo-terminal on its stdin/stdout (ctr -t needs one): util-linux's script.
# Its own stdin must be /dev/null: with a pipe that stays open, script 2.38 spins until the
# pipe closes and then exits 0 whatever the command's status.
with_pty() {
    local cmd
    # (Absolute paths: the test machine's busybox sh, which script runs the command with, would
    # take its own timeout applet, which has no --foreground, over the PATH's.)
    printf -v cmd '%q ' "$(type -P timeout)" --foreground -v -k 5 "$limit" "$(type -P ctr)" -a "$sock" -n "$ns" "$@"
    script -qefc "$cmd" /dev/null </dev/null
}

# Status of a task in `ctr task ls` (RUNNING, PAUSED, STOPPED, ...), empty when none.
task_status() { ctr_ tasks ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
task_pid() { ctr_ tasks ls 2>/dev/null | awk -v id="$1" '$1 == id { print $2 }'; }
wait_status() {
    local id="$1" want="$2" s="" end=$((SECONDS + wait_s))
    while :; do
        s="$(task_status "$id")"
        [ "$s" = "$want" ] && break
        [ "$SECONDS" -lt "$end" ] || break
        sleep 0.1
    done
    echo "$s"
}
# Feeds TEXT to stdin once the task ID is RUNNING (ctr closes a task's stdin on EOF only once
# the task exists: an earlier EOF is lost and the container waits forever, with runc too).
stdin_when_running() {
    wait_status "$1" RUNNING >/dev/null
    sleep 0.5
    printf '%s' "$2"
}
# The same for an exec'd process: TEXT once `task ps ID` lists more than N processes.
stdin_when_more_than() {
    local end=$((SECONDS + wait_s))
    while [ "$SECONDS" -lt "$end" ]; do
        [ "$(ctr_ tasks ps "$1" 2>/dev/null | awk 'NR > 1' | wc -l)" -gt "$2" ] && break
        sleep 0.2
    done
    sleep 0.5
    printf '%s' "$3"
}
# The exit code `ctr task delete` reported in OUTFILE: newer ctr exits with it, Debian's
# (containerd 1.6) exits 0 and warns "exit with non-zero exit code N"; 0 when neither says.
exit_code_of() {
    local n
    n="$(sed -n 's/.*exit with non-zero exit code \([0-9]*\).*/\1/p' "$1" | tail -n1)"
    echo "${n:-0}"
}
# The cgroup file FILE of the v1 controller CTRL (or the v2 unified file) of process PID.
cgroup_file() {
    local pid="$1" ctrl="$2" file="$3" line path
    while IFS= read -r line; do
        case "$line" in
            *":$ctrl:"*) path="${line#*:"$ctrl":}"; echo "/sys/fs/cgroup/$ctrl$path/$file"; return ;;
        esac
    done <"/proc/$pid/cgroup"
    line="$(grep '^0::' "/proc/$pid/cgroup")"
    path="${line#0::}"
    if [ -d /sys/fs/cgroup/unified ]; then
        echo "/sys/fs/cgroup/unified$path/$file"
    else
        echo "/sys/fs/cgroup$path/$file"
    fi
}

# 1. run --rm: output reaches ctr.
out="$(ctr_ "${RUN[@]}" --rm "$image" hull-echo echo hello from hull </dev/null 2>&1)"
rc=$?
check_eq "run --rm: output of echo" "hello from hull rc=0" "$out rc=$rc"

# 2. exit codes: ctr run exits with the container's code.
ctr_ "${RUN[@]}" --rm "$image" hull-exit sh -c 'exit 3' </dev/null >"$tmp/out" 2>&1
rc=$?
check_eq "run --rm: exit code 3" 3 "$rc" "$(cat "$tmp/out")"
ctr_ "${RUN[@]}" --rm "$image" hull-false false </dev/null >"$tmp/out" 2>&1
rc=$?
# (1 is also what ctr exits with on its own errors: the output must be empty too.)
check_eq "run --rm: exit code of false" "1 " "$rc $(cat "$tmp/out")"

# 3. the image's config reaches the container: default Cmd (sh) with stdin, Env PATH, cwd.
out="$(stdin_when_running hull-stdin 'echo "$PATH"; pwd; echo $$
' | ctr_ "${RUN[@]}" --rm "$image" hull-stdin 2>&1)"
rc=$?
check_eq "run --rm: image Cmd sh reads stdin (PATH, cwd, pid 1)" \
    "$(printf '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/\n1') rc=0" "$out rc=$rc"

# 4. run -t: the container's stdio is a terminal.
with_pty "${RUN[@]}" --rm -t "$image" hull-tty sh -c 'tty; [ -t 0 ] && [ -t 1 ] && echo both-tty; exit 4' \
    >"$tmp/out" 2>&1
rc=$?
out="$(tr -d '\r' <"$tmp/out")"
case "$out" in
    */dev/pts/*both-tty*) check_eq "run --rm -t: terminal, exit code 4" 4 "$rc" "$out" ;;
    *) fail "run --rm -t: terminal, exit code 4" "got: $out (rc=$rc)" ;;
esac

# 5. run -d, then exec into the running task.
id="hull-long"
ctr_ "${RUN[@]}" -d "$image" "$id" sh -c 'trap "exit 143" TERM; while :; do sleep 1; done' \
    </dev/null >"$tmp/out" 2>&1
rc=$?
check_eq "run -d: started, task RUNNING" "0 RUNNING" "$rc $(wait_status "$id" RUNNING)" "$(cat "$tmp/out")"
pid="$(task_pid "$id")"

out="$(ctr_ tasks exec --exec-id e1 "$id" sh -c 'echo exec-out; echo exec-err >&2; cat /proc/1/cmdline | tr "\0" " "' </dev/null 2>"$tmp/err")"
rc=$?
check_eq "task exec: stdout and stderr, in the container's pid namespace" \
    "$(printf 'exec-out\nsh -c trap "exit 143" TERM; while :; do sleep 1; done ') exec-err rc=0" \
    "$out $(cat "$tmp/err") rc=$rc"

ctr_ tasks exec --exec-id e2 "$id" sh -c 'exit 7' </dev/null >"$tmp/out" 2>&1
rc=$?
check_eq "task exec: exit code 7" 7 "$rc" "$(cat "$tmp/out")"

n="$(ctr_ tasks ps "$id" 2>/dev/null | awk 'NR > 1' | wc -l)"
out="$(stdin_when_more_than "$id" "$n" 'line-in
' | ctr_ tasks exec --exec-id e3 "$id" cat 2>&1)"
rc=$?
check_eq "task exec: stdin reaches the process" "line-in rc=0" "$out rc=$rc"

with_pty tasks exec -t --exec-id e4 "$id" sh -c 'tty; [ -t 0 ] && [ -t 1 ] && echo both-tty; exit 5' \
    >"$tmp/out" 2>&1
rc=$?
out="$(tr -d '\r' <"$tmp/out")"
case "$out" in
    */dev/pts/*both-tty*) check_eq "task exec -t: terminal, exit code 5" 5 "$rc" "$out" ;;
    *) fail "task exec -t: terminal, exit code 5" "got: $out (rc=$rc)" ;;
esac

ctr_ tasks exec --exec-id e5 "$id" /no/such/binary </dev/null >"$tmp/out" 2>&1
rc=$?
if [ "$rc" -ne 0 ] && [ "$(task_status "$id")" = RUNNING ]; then
    pass "task exec of a missing binary fails, the task keeps running"
else
    fail "task exec of a missing binary fails, the task keeps running" \
        "rc=$rc status=$(task_status "$id")" "$(cat "$tmp/out")"
fi

# 6. task ps: the shim asks hull (ps --format json) for the container's pids.
ctr_ tasks exec -d --exec-id e6 "$id" sleep 1000 </dev/null >"$tmp/out" 2>&1
# The host pids it lists: the init, and one whose command line is the exec'd `sleep 1000`.
# A VM container's processes run in the guest and have no host pid: there hull lists the VMM
# (the init) and, for each exec'd process, the host stand-in that relays it (a hull process in
# the container's cgroup, living as long as the guest process): that is what is looked for.
if [ "$backend" = vm ]; then
    exec_what="the host stand-in of the exec'd sleep (a guest process has no host pid)"
    is_exec_pid() { [ "$1" != "$pid" ] && [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$hull" ]; }
else
    exec_what="the exec'd process"
    is_exec_pid() { [ "$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" = "sleep 1000 " ]; }
fi
ps_ok=0
end=$((SECONDS + wait_s))
while :; do
    ps_out="$(ctr_ tasks ps "$id" 2>&1)"
    rc=$?
    pids="$(echo "$ps_out" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')"
    exec_pid=""
    for p in $pids; do is_exec_pid "$p" && exec_pid="$p"; done
    if [ "$rc" -eq 0 ] && [[ " $pids" == *" $pid "* ]] && [ -n "$exec_pid" ]; then ps_ok=1; break; fi
    [ "$SECONDS" -lt "$end" ] || break
    sleep 0.1
done
if [ "$ps_ok" -eq 1 ]; then
    pass "task ps: lists the init (pid $pid) and $exec_what (pid $exec_pid)"
else
    fail "task ps: lists the init (pid $pid) and $exec_what" "rc=$rc" "$ps_out"
fi

# 7. task metrics: Debian's shim (1.6) reads the cgroup of the init itself, not `events --stats`.
out="$(ctr_ tasks metrics "$id" 2>&1)"
rc=$?
if [ "$rc" -eq 0 ] && echo "$out" | grep -Eq 'memory\.(usage_in_bytes|usage)|pids\.current'; then
    pass "task metrics: memory and pids stats (the shim reads hull's cgroup)"
else
    fail "task metrics: memory and pids stats (the shim reads hull's cgroup)" "rc=$rc" "$out"
fi

# 8. pause and resume: the status containerd reports, and the freezer really froze the cgroup.
ctr_ tasks pause "$id" >"$tmp/out" 2>&1
rc=$?
st="$(task_status "$id")"
f="$(cgroup_file "$pid" freezer freezer.state)"
[ -e "$f" ] || f="$(cgroup_file "$pid" "" cgroup.freeze)"
frozen="$(cat "$f" 2>/dev/null)"
check_eq "task pause: PAUSED, cgroup frozen" "0 PAUSED" "$rc $st" "$(cat "$tmp/out")"
case "$frozen" in
    FROZEN|1) pass "task pause: freezer says frozen ($f)" ;;
    *) fail "task pause: freezer says frozen" "$f: $frozen" ;;
esac
ctr_ tasks resume "$id" >"$tmp/out" 2>&1
rc=$?
st="$(task_status "$id")"
check_eq "task resume: RUNNING, cgroup thawed" "0 RUNNING $(case "$frozen" in 1) echo 0 ;; *) echo THAWED ;; esac)" \
    "$rc $st $(cat "$f" 2>/dev/null)" "$(cat "$tmp/out")"
out="$(ctr_ tasks exec --exec-id e7 "$id" echo alive </dev/null 2>&1)"
check_eq "task exec after resume" alive "$out"

# 9. task kill (SIGTERM: the init's trap exits 143), then task delete, container delete.
ctr_ tasks kill "$id" >"$tmp/out" 2>&1
rc=$?
st="$(wait_status "$id" STOPPED)"
check_eq "task kill (SIGTERM): task STOPPED" "0 STOPPED" "$rc $st" "$(cat "$tmp/out")"
# Debian's ctr (1.6) exits 0 here and warns "task ID exit with non-zero exit code N".
ctr_ tasks delete "$id" >"$tmp/out" 2>&1
rc=$?
check_eq "task delete: exit status 143 of the SIGTERM trap" "0 143" "$rc $(exit_code_of "$tmp/out")" "$(cat "$tmp/out")"
ctr_ containers delete "$id" >"$tmp/out" 2>&1
rc=$?
left="$(ctr_ containers ls -q | grep -x "$id")"
check_eq "container delete" "0 " "$rc $left" "$(cat "$tmp/out")"

# 10. task kill -s SIGKILL of an init that ignores SIGTERM (sleep as pid 1).
id="hull-kill"
ctr_ "${RUN[@]}" -d "$image" "$id" sleep 1000 </dev/null >"$tmp/out" 2>&1
wait_status "$id" RUNNING >/dev/null
ctr_ tasks kill -s SIGKILL "$id" >"$tmp/out" 2>&1
rc=$?
st="$(wait_status "$id" STOPPED)"
check_eq "task kill -s SIGKILL: task STOPPED" "0 STOPPED" "$rc $st" "$(cat "$tmp/out")"
ctr_ tasks delete "$id" >"$tmp/out" 2>&1
rc=$?
check_eq "task delete: exit status 137 (SIGKILL)" "0 137" "$rc $(exit_code_of "$tmp/out")" "$(cat "$tmp/out")"
ctr_ containers delete "$id" >/dev/null 2>&1

# 11. task kill --all: every process of the container, not only its init. The init (sh, pid 1
# of its namespace, no handler) ignores SIGTERM; its two children do not. Only a signal to all
# of them kills the children, after which the init's `wait` returns and the task stops.
id="hull-killall"
ctr_ "${RUN[@]}" -d "$image" "$id" sh -c 'sleep 1000 & sleep 1001 & wait; exit 9' \
    </dev/null >"$tmp/out" 2>&1
wait_status "$id" RUNNING >/dev/null
pid="$(task_pid "$id")"
children=""
# (A VM container's children are guest processes, not to be seen from the host: it gets a few
# seconds for its init to start them.)
[ "$backend" = vm ] && sleep 3
[ "$backend" = vm ] || for _ in $(seq 50); do
    children="$(cat /proc/"$pid"/task/*/children 2>/dev/null | xargs)"
    [ "$(echo "$children" | wc -w)" -ge 2 ] && break
    sleep 0.1
done
ctr_ tasks kill --all -s SIGTERM "$id" >"$tmp/out" 2>&1
rc=$?
st="$(wait_status "$id" STOPPED)"
alive=""
for c in $children; do kill -0 "$c" 2>/dev/null && alive="$alive $c"; done
if [ "$backend" = vm ]; then
    # The children are guest processes: the host has no pid to look for (the VMM has no child
    # processes). That they died shows in the next check, the init's exit status 9.
    check_eq "task kill --all (SIGTERM): task STOPPED (vm: the guest's children have no host pids to check; see the exit status next)" \
        "0 STOPPED" "$rc $st" "$(cat "$tmp/out")"
else
    check_eq "task kill --all (SIGTERM): both children ($children) gone, init's wait returns" \
        "0 2 STOPPED " "$rc $(echo "$children" | wc -w) $st $alive" "$(cat "$tmp/out")"
fi
# (When the kill did not stop it, a SIGKILL does, so that the checks after this one do not
# fail for its leftovers; the exit status is then 137, and this check fails as it should.)
if [ "$st" != STOPPED ]; then
    ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1
    wait_status "$id" STOPPED >/dev/null
fi
ctr_ tasks delete "$id" >"$tmp/out" 2>&1
check_eq "task delete: exit status 9 of the init after its wait" 9 "$(exit_code_of "$tmp/out")" \
    "$(cat "$tmp/out")"
ctr_ containers delete "$id" >/dev/null 2>&1

# 12. task delete of a task that was created but never started, and of an exited one.
id="hull-exited"
ctr_ "${RUN[@]}" -d "$image" "$id" true </dev/null >"$tmp/out" 2>&1
st="$(wait_status "$id" STOPPED)"
ctr_ tasks delete "$id" >"$tmp/out" 2>&1
rc=$?
check_eq "task delete of an exited task (exit 0)" "STOPPED 0 0" "$st $rc $(exit_code_of "$tmp/out")" "$(cat "$tmp/out")"
ctr_ containers delete "$id" >/dev/null 2>&1

# 13. --memory-limit: the container reads its own limit from its cgroup. containerd 1.6's
# default spec has no cgroup mount (its CRI plugin adds one): ask for it as CRI does, which
# also checks hull's `cgroup` mount (v1: a tmpfs with the container's own cgroup of each
# hierarchy; v2: cgroup2, showing the whole tree without a cgroup namespace).
# 256 MiB: a VM container's limit holds its guest's RAM (the limit less 32 MiB for the VMM),
# and hull refuses one under 96 MiB; the same numbers serve both backends.
out="$(ctr_ "${RUN[@]}" --rm --memory-limit 268435456 \
    --mount type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:noexec:nodev \
    "$image" hull-mem sh -c '
        for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max \
                "/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)/memory.max"; do
            if [ -r "$f" ]; then cat "$f"; exit 0; fi
        done
        echo "no memory limit file; /sys/fs/cgroup has: $(ls /sys/fs/cgroup)"; exit 1' \
    </dev/null 2>&1)"
rc=$?
check_eq "run --memory-limit 268435456: the container reads its limit" "268435456 rc=0" "$out rc=$rc"

# 14. the limit holds: a process that outgrows it is OOM-killed, and the shim (which watches
# the cgroup hull put the container in) reports the OOM to containerd. On the vm backend the
# kill is the guest kernel's, and the VMM relays it to that cgroup (docs/vm.md, "OOM"). dd allocates one buffer
# of twice the limit, or of the RAM /proc/meminfo shows less 4 MiB when that is smaller: a VM's
# guest kernel (RAM: the limit less 32 MiB) refuses an allocation larger than its RAM outright
# (ENOMEM, dd exits 1) instead of OOM-killing; natively MemTotal is the host's.
ctr_ "${RUN[@]}" --rm --memory-limit 134217728 "$image" hull-oom sh -c \
    'sleep 1; t=$(sed -n "s/^MemTotal: *\([0-9]*\) kB/\1/p" /proc/meminfo); n=$((t / 1024 - 4))
     [ "$n" -gt 256 ] && n=256
     dd if=/dev/zero of=/dev/null bs=${n}M count=1 2>/dev/null; exit $?' \
    </dev/null >"$tmp/out" 2>&1
rc=$?
oom=no
for _ in $(seq 20); do
    grep -q 'topic=/tasks/oom' "$tmp/containerd.log" && { oom=yes; break; }
    sleep 0.1
done
check_eq "run --memory-limit 128M: dd of more than it allows is OOM-killed (137), containerd sees the OOM" \
    "137 yes" "$rc $oom" "$(cat "$tmp/out")"

# 14b. A CNI bridge network in a network namespace made for the test, as a CNI-driven client
#      makes one: CNI's bridge plugin (Debian's containernetworking-plugins, host-local IPAM)
#      adds eth0 there, and `ctr run --with-ns network:PATH` puts the container in it. The
#      container has the address and default route CNI gave, fetches 4 MiB from the host's
#      httpd at the bridge's address and serves 4 MiB that the host fetches, both intact (the
#      files go through a bind mount). With the vm backend that is seen from inside the guest
#      (the VMM mirrors the veth to the guest's NIC). After delete and CNI's DEL the bridge
#      has no port.
cni_check() {
    local name="CNI bridge network (a namespace made for the test, ctr run --with-ns): address, default route, 4 MiB each way"
    local id=hull-net nspath=/run/netns/hull-ctr-net share="$tmp/netshare" bb result ip="" fetched=""
    bb="$(find_busybox)" || { fail "$name" "no busybox"; return; }
    [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] ||
        { fail "$name" "no CNI plugins in /usr/lib/cni (containernetworking-plugins)"; return; }
    local conf='{"cniVersion": "0.4.0", "name": "hullctr", "type": "bridge", "bridge": "hullctr0",
        "isGateway": true, "ipMasq": false, "ipam": {"type": "host-local", "dataDir": "'"$tmp/cni-ipam"'",
        "ranges": [[{"subnet": "10.89.78.0/24", "gateway": "10.89.78.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}}'
    cni() {
        printf '%s' "$conf" | CNI_COMMAND="$1" CNI_CONTAINERID="$id" CNI_NETNS="$nspath" CNI_IFNAME=eth0 \
            CNI_PATH=/usr/lib/cni /usr/lib/cni/bridge
    }
    mkdir -p /run/netns "$share" && : >"$nspath" && unshare --net="$nspath" true ||
        { fail "$name" "could not make the network namespace $nspath"; rm -f "$nspath"; return; }
    head -c 4194304 /dev/urandom >"$share/to-host"
    head -c 4194304 /dev/urandom >"$tmp/to-container"
    local to_c from_c
    to_c="$(md5sum <"$tmp/to-container" | cut -d' ' -f1)"
    from_c="$(md5sum <"$share/to-host" | cut -d' ' -f1)"
    "$bb" httpd -f -p 18082 -h "$tmp" &
    local httpd=$!
    if result="$(cni ADD 2>&1)"; then
        ip="$(sed -n 's/.*"address": *"\([0-9.]*\)\/24".*/\1/p' <<<"$result" | head -n1)"
        ctr_ "${RUN[@]}" -d --with-ns "network:$nspath" \
            --mount "type=bind,src=$share,dst=/share,options=rbind:rw" "$image" "$id" sh -c '
                { echo "addr $(ip -4 -o addr show eth0 | awk "{ print \$4 }")"
                  echo "route $(ip route show default)"
                  echo "got $(timeout 60 wget -q -O - http://10.89.78.1:18082/to-container | md5sum | cut -d" " -f1)"
                } >/share/said
                httpd -p 8081 -h /share && echo serving >>/share/said
                exec sleep 600' </dev/null >"$tmp/out" 2>&1
        local i=0
        until grep -q '^serving' "$share/said" 2>/dev/null || [ $i -ge 1200 ]; do sleep 0.1; i=$((i + 1)); done
        grep -q '^serving' "$share/said" 2>/dev/null &&
            fetched="$(timeout 60 "$bb" wget -q -O - "http://$ip:8081/to-host" 2>>"$tmp/out" | md5sum | cut -d' ' -f1)"
        ctr_ tasks kill -s SIGKILL "$id" >>"$tmp/out" 2>&1
        wait_status "$id" STOPPED >/dev/null
        ctr_ tasks delete "$id" >>"$tmp/out" 2>&1
        ctr_ containers delete "$id" >>"$tmp/out" 2>&1
        cni DEL >>"$tmp/out" 2>&1
    fi
    kill "$httpd" 2>/dev/null; wait "$httpd" 2>/dev/null
    umount "$nspath" 2>/dev/null; rm -f "$nspath"
    local ports said
    ports="$(ls -A /sys/class/net/hullctr0/brif 2>/dev/null)"
    said="$(cat "$share/said" 2>/dev/null)"
    ip link del hullctr0 2>/dev/null
    if [ -n "$ip" ] && grep -q "^addr $ip/24\$" <<<"$said" && grep -q '^route default via 10.89.78.1 dev eth0' <<<"$said" &&
        grep -q "^got $to_c\$" <<<"$said" && [ "$fetched" = "$from_c" ] && [ -z "$ports" ]; then
        pass "$name ($ip)"
    else
        fail "$name" "ip=${ip:-none}; host sent $to_c, container sent $from_c, host got ${fetched:-nothing}; bridge ports left: ${ports:-none}" \
            "CNI said: $result" "the container said: $said" "$(cat "$tmp/out")"
    fi
}
cni_check

# 14c. `ctr run --cni`: containerd 1.6's ctr makes the task (hull create), runs the CNI
#      network it finds first in /etc/cni/net.d (plugins from /opt/cni/bin) in the task's network
#      namespace, then starts it, so the interface comes between create and start. The container
#      has CNI's address and default route and fetches 4 MiB from the host at the gateway,
#      intact. It writes /etc/cni/net.d and /opt/cni/bin, so it runs only where neither exists
#      (the test machine) and removes both after.
ctr_cni_check() {
    local name="ctr run --cni (the network comes between create and start): address, default route, 4 MiB from the host"
    if [ -e /etc/cni/net.d ] || [ -e /opt/cni/bin ]; then
        skip "$name" "this machine has its own /etc/cni/net.d or /opt/cni/bin, which the check would change (it runs in the test machine)"
        return
    fi
    local bb out_c to_c got
    bb="$(find_busybox)" || { fail "$name" "no busybox"; return; }
    mkdir -p /etc/cni/net.d /opt/cni/bin
    ln -s /usr/lib/cni/bridge /usr/lib/cni/host-local /opt/cni/bin/
    cat >/etc/cni/net.d/10-hullcni.conflist <<EOF
{"cniVersion": "0.4.0", "name": "hullcni", "plugins": [{"type": "bridge", "bridge": "hullcni1",
 "isGateway": true, "ipMasq": false, "ipam": {"type": "host-local", "dataDir": "$tmp/cni-ipam-ctr",
 "ranges": [[{"subnet": "10.89.79.0/24", "gateway": "10.89.79.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
    mkdir -p "$tmp/www-cni"
    head -c 4194304 /dev/urandom >"$tmp/www-cni/blob"
    to_c="$(md5sum <"$tmp/www-cni/blob" | cut -d' ' -f1)"
    "$bb" httpd -f -p 18083 -h "$tmp/www-cni" &
    local httpd=$!
    out_c="$(ctr_ "${RUN[@]}" --rm --cni "$image" hull-cni sh -c '
        echo "addr $(ip -4 -o addr show eth0 | awk "{ print \$4 }")"
        echo "route $(ip route show default)"
        echo "got $(timeout 60 wget -q -O - http://10.89.79.1:18083/blob | md5sum | cut -d" " -f1)"' </dev/null 2>&1)"
    local rc=$?
    kill "$httpd" 2>/dev/null; wait "$httpd" 2>/dev/null
    local ports
    ports="$(ls -A /sys/class/net/hullcni1/brif 2>/dev/null)"
    ip link del hullcni1 2>/dev/null
    rm -rf /etc/cni /opt/cni
    if [ "$rc" = 0 ] && grep -q '^addr 10\.89\.79\.[0-9]*/24$' <<<"$out_c" &&
        grep -q '^route default via 10.89.79.1 dev eth0' <<<"$out_c" && grep -q "^got $to_c\$" <<<"$out_c" && [ -z "$ports" ]; then
        pass "$name ($(sed -n 's/^addr //p' <<<"$out_c"))"
    else
        fail "$name" "rc=$rc; host sent $to_c; bridge ports left: ${ports:-none}" "$out_c"
    fi
}
ctr_cni_check

# 15. hull really was the runtime: the wrapper saw the shim's calls, with its global flags.
# (Debian's shim reads stats and OOM events from the cgroup itself, never `events`.)
want_cmds=("create --bundle" "start" "exec" "kill" "kill --all" "delete" "delete --force"
    "pause" "resume" "ps --format json")
missing=""
for c in "${want_cmds[@]}"; do
    grep -Eq -- "^--root $hull_root --log [^ ]+/log\.json --log-format json $c( |\$)" "$calls" \
        2>/dev/null || missing="$missing, $c"
done
if [ -z "$missing" ]; then
    pass "hull was called by the shim: $(wc -l <"$calls") calls, all of create, start, exec, kill [--all], delete [--force], pause, resume, ps"
else
    fail "hull was called by the shim for each command" "not seen: ${missing#, }" \
        "first calls:" "$(head -n 3 "$calls" 2>/dev/null)"
fi

# 16. nothing left behind: no container in hull's root, no cgroup under the namespace's.
left="$("$hull" --root "$hull_root" list -q 2>&1)"
check_eq "no container left in hull's root ($hull_root)" "" "$left"
left="$(find /sys/fs/cgroup -mindepth 2 -maxdepth 4 -type d -path "*/$ns/hull-*" 2>/dev/null | head -n 5)"
check_eq "no container cgroup left under /$ns" "" "$left"

echo "$passed passed, $failed failed, $skipped skipped (backend $backend)"
[ "$failed" -eq 0 ]
