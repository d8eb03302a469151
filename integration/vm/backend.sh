#!/bin/sh
# End-to-end checks of the vm backend: the container commands (create, start, state, kill,
# delete, run, and on a running VM container exec, ps, pause, resume, update, events) on a VM
# container, whose init is hull's VMM. Needs an ordinary /dev/kvm, so it
# runs inside the test machine (integration/testvm), not on the project's PVM hosts. POSIX sh:
# the test machine has busybox, not bash (and no jq: config.json is edited with sed and awk).
#
# From the repository, on the host (builds nothing; run `just build` and `just kernel` first):
#
#   integration/vm/backend.sh --testvm [--hull PATH] [--kernel PATH] [--only lifecycle|exec]
#
# Inside (or on any machine with a usable /dev/kvm):
#
#   backend.sh [--hull PATH] [--kernel PATH] [--keep] [--only lifecycle|exec]
#
# Prints one PASS or FAIL line per check and a summary, and exits 1 if any check failed.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=integration/lib.sh
. "$here/../lib.sh"
hull=""
kernel="$(default_kernel)"
keep=0
testvm=0
only=""

die() { printf 'backend: error: %s\n' "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --hull) [ $# -ge 2 ] || die "--hull needs a path"; hull="$2"; shift 2 ;;
        --kernel) [ $# -ge 2 ] || die "--kernel needs a path"; kernel="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --only) [ $# -ge 2 ] || die "--only needs lifecycle or exec"; only="$2"; shift 2 ;;
        --testvm) testvm=1; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

case "$only" in ""|lifecycle|exec) ;; *) die "--only: lifecycle or exec, not $only" ;; esac
if [ -n "$only" ]; then set -- --only "$only"; else set --; fi
[ "$testvm" = 1 ] && vm_script_in_testvm "$here" backend.sh "$hull" "$kernel" 1200 "$@"
hull="$(vm_script_prerequisites "$hull" "$kernel")" || exit 2
work="$(mktemp -d "${TMPDIR:-/tmp}/hull-vmb.XXXXXX")" || die "mktemp"
root="$work/root"
cleanup() {
    for d in "$root"/*/; do
        [ -d "$d" ] && "$hull" --root "$root" delete --force "$(basename "$d")" >/dev/null 2>&1
    done
    [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The kernel comes from HULL_KERNEL; no config file decides anything.
export HULL_KERNEL="$kernel"
export HULL_CONFIG="$work/no-config.toml"
hull_exe="$(readlink -f "$hull")"

rootfs="$work/rootfs"
busybox_rootfs "$rootfs" || die "cannot make a busybox rootfs"

passed=0
failed=0
took=0
t0=0
out="$work/out"
err="$work/err"
rc=0

clock() { t0=$(date +%s); }
lap() { took=$(($(date +%s) - t0)); }
has() { grep -q -- "$1" "$2"; }

# bundle NAME ARGS_JSON [SED_SCRIPT]: a bundle at $work/NAME on the shared rootfs, no
# terminal, process.args set to the JSON list items ARGS_JSON, then SED_SCRIPT applied.
bundle() {
    b="$work/$1"
    mkdir -p "$b"
    (cd "$b" && "$hull" spec) || die "hull spec"
    sed -i -e 's/"terminal": true/"terminal": false/' -e "s#\"path\": \"rootfs\"#\"path\": \"$rootfs\"#" \
        "$b/config.json"
    awk -v a="$2" '
        skip && /\]/ { skip = 0; next }
        skip { next }
        /"args": \[/ { print "    \"args\": [" a "],"; skip = 1; next }
        { print }' "$b/config.json" >"$b/config.new" && mv "$b/config.new" "$b/config.json"
    if [ $# -ge 3 ]; then sed -i -e "$3" "$b/config.json"; fi
}

# annotate NAME: the bundle asks for the vm backend itself.
annotate() {
    awk '{ print } /"ociVersion"/ { print "  \"annotations\": {\"hull.backend\": \"vm\"}," }' \
        "$work/$1/config.json" >"$work/$1/config.new" && mv "$work/$1/config.new" "$work/$1/config.json"
}

h() { "$hull" --root "$root" "$@"; }
status_of() { h state "$1" 2>/dev/null | grep -o '"status": *"[a-z]*"' | sed 's/.*"\([a-z]*\)"$/\1/'; }
pid_of() { h state "$1" 2>/dev/null | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$'; }
# wait_status ID STATUS SECONDS
wait_status() {
    i=0
    while [ $i -lt $(($3 * 10)) ]; do
        [ "$(status_of "$1")" = "$2" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# wait_line FILE LINE SECONDS [PID]: whether FILE has the line LINE within SECONDS (sooner
# false when PID, the job that would write it, is gone)
wait_line() {
    i=0
    while [ $i -lt $(($3 * 10)) ]; do
        grep -q "^$2\$" "$1" 2>/dev/null && return 0
        # PID gone: the line will not come (a guest that died waits out no limit).
        [ -z "${4:-}" ] || kill -0 "$4" 2>/dev/null || { grep -q "^$2\$" "$1" 2>/dev/null; return; }
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# wait_bounded PID SECONDS [PIDS...]: waits for a background job, SIGKILLing it after SECONDS;
# its status in $rc, and timed_out=1 when it had to be killed (a nested guest now and then
# stalls: one check fails, the script goes on). Before it kills, the watchdog describes the job,
# its children and PIDS (state, kernel stack, pending signals, cgroup, fds), in $stuck.
#
# The watchdog watches the job and ends by itself when the job is gone: it is never signalled.
# (It used to be killed once the job ended, and a kill that came while the subshell was still
# starting, with the script's TERM trap not yet reset, was lost: the wait for it then took the
# whole limit, and a job that had ended at once counted as killed.)
wait_bounded() {
    _job="$1" _limit="$2"
    shift 2
    rm -f "$work/watchdog.$_job"
    (
        # (date, not $SECONDS: the test machine's shell has no SECONDS.)
        _end=$(($(date +%s) + _limit))
        # A job that ended is reaped by the wait below at once, so kill -0 fails from then on.
        while kill -0 "$_job" 2>/dev/null; do
            if [ "$(date +%s)" -ge "$_end" ]; then
                describe_procs "$_job" "$@" >"$work/watchdog.$_job" 2>&1
                kill -KILL "$_job" 2>/dev/null
                break
            fi
            sleep 0.2
        done
    ) &
    _watchdog=$!
    rc=0
    wait "$_job" || rc=$?
    wait "$_watchdog" 2>/dev/null
    timed_out=0 stuck=""
    if [ -e "$work/watchdog.$_job" ]; then
        timed_out=1
        stuck="$(tr '\n' ' ' <"$work/watchdog.$_job")"
    fi
    rm -f "$work/watchdog.$_job"
    return 0
}
# describe_procs PID...: each process and its children, one line each.
describe_procs() {
    for _p in "$@" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        [ -n "$_p" ] || continue
        if [ ! -d "/proc/$_p" ]; then echo "[$_p: gone]"; continue; fi
        printf '[%s %s: %s; ppid %s; sigpnd %s shdpnd %s blk %s; wchan %s; stack %s; cgroup %s; fds %s]' "$_p" \
            "$(cat "/proc/$_p/comm" 2>/dev/null)" \
            "$(sed -n 's/^State:[[:space:]]*//p' "/proc/$_p/status" 2>/dev/null)" \
            "$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$_p/status" 2>/dev/null)" \
            "$(sed -n 's/^SigPnd:[[:space:]]*//p' "/proc/$_p/status" 2>/dev/null)" \
            "$(sed -n 's/^ShdPnd:[[:space:]]*//p' "/proc/$_p/status" 2>/dev/null)" \
            "$(sed -n 's/^SigBlk:[[:space:]]*//p' "/proc/$_p/status" 2>/dev/null)" \
            "$(cat "/proc/$_p/wchan" 2>/dev/null)" \
            "$(tr '\n' ' ' <"/proc/$_p/stack" 2>/dev/null | cut -c1-300)" \
            "$(tr '\n' ' ' <"/proc/$_p/cgroup" 2>/dev/null)" \
            "$(for f in /proc/"$_p"/fd/*; do printf '%s->%s ' "${f##*/}" "$(readlink "$f")"; done 2>/dev/null)"
        echo
    done
}
# start_runner ID ARGS...: `hull --backend vm run ARGS... ID` in the background (pid in
# $runner) until its workload printed "ready". The emulated machine's nested SVM now and then
# stalls a guest's vcpu for minutes (its kernel logs a soft lockup in KVM_RUN), and about one
# VM container in a hundred dies of a triple fault there: a guest that did not come up for
# either reason is tried once more, and says so. A failure prints the runner's stderr.
start_runner() {
    _id="$1"
    shift
    for _attempt in 1 2; do
        # Emptied here, not only by the job's redirection: that one happens in the background
        # job, and the loop below could first read the last check's "ready" (it did once,
        # and `kill` then met a container still being created).
        : >"$out"
        : >"$err"
        "$hull" --root "$root" --backend vm run "$@" "$_id" </dev/null >"$out" 2>"$err" &
        runner=$!
        _i=0
        while [ $_i -lt 2000 ]; do
            grep -q '^ready$' "$out" 2>/dev/null && return 0
            kill -0 "$runner" 2>/dev/null || break
            sleep 0.1
            _i=$((_i + 1))
        done
        grep -q '^ready$' "$out" 2>/dev/null && return 0
        wait_bounded "$runner" 60
        if [ "$_attempt" = 2 ] || ! grep -qE 'did not connect within|triple-faulted' "$err"; then
            printf '  %s did not come up (status %s); its stderr:\n' "$_id" "$rc"
            sed 's/^/  | /' "$err" | tail -n 30
            return 1
        fi
        printf 'RETRY %s: the guest did not come up; its stderr:\n' "$_id"
        sed 's/^/  | /' "$err" | tail -n 30
        "$hull" --root "$root" delete --force "$_id" >/dev/null 2>&1
    done
    return 1
}
cgroups_of() { find /sys/fs/cgroup -type d -name "*$1*" 2>/dev/null; }
# leftovers ID [PID]: what a container left behind, empty when nothing.
leftovers() {
    [ -e "$root/$1" ] && echo "state dir $root/$1"
    c="$(cgroups_of "$1")"
    [ -n "$c" ] && echo "cgroup $c"
    [ $# -ge 2 ] && [ -n "$2" ] && [ -d "/proc/$2" ] && echo "process $2 ($(cat "/proc/$2/comm" 2>/dev/null))"
    return 0
}

lifecycle_checks() {
# 1, 2. run: output, exit code, stdout and stderr apart
bundle run1 '"/bin/sh", "-c", "echo hello; echo to-err >&2; exit 3"'
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm run --bundle "$work/run1" r1 </dev/null >"$out" 2>"$err" || rc=$?
lap
if [ "$rc" = 3 ] && has '^hello$' "$out"; then pass "run: output and exit code 3"; else fail "run: output and exit code 3" "status $rc"; fi
if has '^to-err$' "$err" && ! has 'to-err' "$out" && ! has 'hello' "$err"; then
    pass "run: stdout and stderr apart"
else
    fail "run: stdout and stderr apart" "status $rc"
fi

# 3. stdin is forwarded, with its end
bundle cat1 '"/bin/cat"'
printf 'line one\nline two\n' >"$work/input"
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm run --bundle "$work/cat1" r2 <"$work/input" >"$out" 2>"$err" || rc=$?
lap
if [ "$rc" = 0 ] && [ "$(cat "$out")" = "$(cat "$work/input")" ]; then pass "run: stdin forwarded"; else fail "run: stdin forwarded" "status $rc"; fi

# 4. process.user, cwd and env reach the workload
bundle user1 '"/bin/sh", "-c", "id -u; id -g; pwd; echo $FOO"' \
    's/"uid": 0/"uid": 1000/; s/"gid": 0/"gid": 1001/; s#"cwd": "/"#"cwd": "/tmp"#; s#"TERM=xterm"#"TERM=xterm", "FOO=bar-baz"#'
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm run --bundle "$work/user1" r3 </dev/null >"$out" 2>"$err" || rc=$?
lap
if [ "$rc" = 0 ] && [ "$(tr '\n' ' ' <"$out")" = "1000 1001 /tmp bar-baz " ]; then
    pass "run: user, cwd and env"
else
    fail "run: user, cwd and env" "status $rc"
fi

# 4b. the spec applies in the guest as on a host: the same bundle run natively and in a VM
#     shows the same pid namespace, capabilities, no_new_privs, hostname, ids, read-only
#     root, /dev, masked and read-only /proc paths, rlimits, and its memory and pids limits
#     in its own cgroup
bundle same '"/bin/sh", "-c", "echo pid=$$; grep -e ^CapInh -e ^CapPrm -e ^CapEff -e ^CapBnd -e ^CapAmb -e ^NoNewPrivs /proc/self/status; hostname; id; if touch /probe 2>/dev/null; then echo root-rw; else echo root-ro; fi; test -c /dev/null && test -d /dev/pts && test -d /dev/shm && echo dev-ok; if echo x >/proc/sys/kernel/domainname 2>/dev/null; then echo proc-sys-writable; else echo proc-sys-read-only; fi; ulimit -n; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"' \
    's/"resources": {/"resources": {"memory": {"limit": 268435456}, "pids": {"limit": 77},/'
clock; rc=0; nrc=0
timeout -k 10 100 "$hull" --root "$root" run --bundle "$work/same" same-native </dev/null >"$work/same.native" 2>"$err" || nrc=$?
timeout -k 10 200 "$hull" --root "$root" --backend vm run --bundle "$work/same" same-vm </dev/null >"$out" 2>>"$err" || rc=$?
lap
if [ "$rc" = 0 ] && [ "$nrc" = 0 ] && has '^pid=1$' "$out" && cmp -s "$out" "$work/same.native"; then
    pass "the spec applies in the guest as natively (pid ns, caps, ids, ro root, /dev, ro paths, rlimits, cgroup limits)"
else
    fail "the spec applies in the guest as natively (pid ns, caps, ids, ro root, /dev, ro paths, rlimits, cgroup limits)" \
        "status $rc (native $nrc); native saw: $(tr '\n' '|' <"$work/same.native")"
fi

# 5. bind mounts of host paths: a directory read-write, one read-only, a single file
mkdir -p "$work/vol" "$work/rovol"
echo from-host >"$work/vol/in"
echo ro-content >"$work/rovol/f0"
echo '10.1.2.3 bound-hosts-file' >"$work/hostsfile"
# (a writable root: the guest makes the mount points that are missing)
bundle binds '"/bin/sh", "-c", "cat /vol/in; echo from-guest > /vol/out; cat /rovol/f0; if echo x > /rovol/f1; then echo ro-writable; else echo ro-refused; fi; cat /etc/hosts"' \
    's/"readonly": true/"readonly": false/'
awk -v w="$work" '{ print } /"mounts": \[/ {
    print "    {\"destination\": \"/vol\", \"type\": \"bind\", \"source\": \"" w "/vol\", \"options\": [\"rbind\", \"rw\"]},"
    print "    {\"destination\": \"/rovol\", \"type\": \"bind\", \"source\": \"" w "/rovol\", \"options\": [\"rbind\", \"ro\"]},"
    print "    {\"destination\": \"/etc/hosts\", \"type\": \"bind\", \"source\": \"" w "/hostsfile\", \"options\": [\"rbind\", \"ro\"]},"
}' "$work/binds/config.json" >"$work/binds/config.new" && mv "$work/binds/config.new" "$work/binds/config.json"
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm run --bundle "$work/binds" b1 </dev/null >"$out" 2>"$err" || rc=$?
lap
if [ "$rc" = 0 ] && has '^from-host$' "$out" && [ "$(cat "$work/vol/out" 2>/dev/null)" = from-guest ]; then
    pass "bind mount: a host directory, read-write"
else
    fail "bind mount: a host directory, read-write" "status $rc, vol/out: $(cat "$work/vol/out" 2>&1)"
fi
if has '^ro-content$' "$out" && has '^ro-refused$' "$out" && [ ! -e "$work/rovol/f1" ]; then
    pass "bind mount: read-only holds"
else
    fail "bind mount: read-only holds" "status $rc"
fi
if has '^10.1.2.3 bound-hosts-file$' "$out" && ! grep -q bound-hosts-file "$rootfs/etc/hosts" 2>/dev/null; then
    pass "bind mount: a single file (/etc/hosts)"
else
    fail "bind mount: a single file (/etc/hosts)" "status $rc"
fi

# 5b. process.terminal: run hands the pty to its caller; the workload's stdio is a terminal
bundle term '"/bin/sh", "-c", "tty; test -t 0 && test -t 2 && echo stdio-is-a-tty; exit 5"' \
    's/"terminal": false/"terminal": true/'
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm run --bundle "$work/term" t1 </dev/null >"$out" 2>"$err" || rc=$?
lap
if [ "$rc" = 5 ] && grep -q '^/dev/pts/[0-9]' "$out" && has 'stdio-is-a-tty' "$out"; then
    pass "process.terminal: a pty in the guest, exit code 5"
else
    fail "process.terminal: a pty in the guest, exit code 5" "status $rc"
fi

# 6-10. create -> created (the VMM's pid) -> start -> running, output -> stopped -> delete
bundle life '"/bin/sh", "-c", "echo started; sleep 5; echo done"'
id=life1
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm create --bundle "$work/life" --pid-file "$work/life.pid" "$id" \
    </dev/null >"$out" 2>"$err" || rc=$?
lap
pid="$(pid_of "$id")"
if [ "$rc" = 0 ] && [ "$(status_of "$id")" = created ] && [ -n "$pid" ] && [ "$(cat "$work/life.pid" 2>/dev/null)" = "$pid" ] \
    && [ "$(readlink "/proc/$pid/exe")" = "$hull_exe" ] && ! has started "$out"; then
    pass "create: created, the pid (and --pid-file) is the VMM, nothing ran yet"
else
    fail "create: created, the pid (and --pid-file) is the VMM, nothing ran yet" \
        "status $rc, state $(status_of "$id"), pid $pid, exe $(readlink "/proc/$pid/exe" 2>&1)"
fi
if [ -n "$(cgroups_of "$id")" ] && grep -qx "$pid" "$(cgroups_of "$id" | head -n 1)/cgroup.procs" 2>/dev/null; then
    pass "create: the VMM is in the container's cgroup"
else
    fail "create: the VMM is in the container's cgroup" "cgroups: $(cgroups_of "$id" | tr '\n' ' ')"
fi
clock; rc=0
h start "$id" 2>>"$err" || rc=$?
lap
# (took: how long start itself took)
if [ "$rc" = 0 ] && wait_line "$out" started 60 && [ "$(status_of "$id")" = running ]; then
    pass "start: the workload runs, state running"
else
    fail "start: the workload runs, state running" "status $rc, state $(status_of "$id")"
fi
clock; rc=0
wait_status "$id" stopped 60 || rc=$?
lap
if [ "$rc" = 0 ] && has '^done$' "$out"; then
    pass "exit: state stopped"
else
    fail "exit: state stopped" "state $(status_of "$id")"
fi
clock; rc=0
h delete "$id" 2>>"$err" || rc=$?
lap
left="$(leftovers "$id" "$pid")"
if [ "$rc" = 0 ] && [ -z "$left" ]; then pass "delete: nothing left"; else fail "delete: nothing left" "status $rc; $left"; fi

# 11. kill ID TERM reaches a workload that traps it; the VMM exits with its status (7)
#     (and kill --all USR1 first, to the workload and a child of it, traps that survive it)
bundle trap '"/bin/sh", "-c", "trap '"'"'echo got-usr1'"'"' USR1; trap '"'"'echo got-term; exit 7'"'"' TERM; (trap '"'"'echo child-usr1'"'"' USR1; while :; do sleep 1; done) & echo ready; while :; do sleep 1; done"'
id=term1
clock; rc=0
start_runner "$id" --bundle "$work/trap"
h kill --all "$id" USR1 2>>"$err"
if wait_line "$out" got-usr1 60 && wait_line "$out" child-usr1 60; then
    pass "kill --all USR1 reaches every process of the container in the guest"
else
    fail "kill --all USR1 reaches every process of the container in the guest" "no got-usr1 or child-usr1"
fi
h kill "$id" TERM 2>>"$err"
wait_bounded "$runner" 300
lap
if [ "$rc" = 7 ] && has '^got-term$' "$out"; then
    pass "kill TERM: the workload's trap runs, exit status 7"
else
    fail "kill TERM: the workload's trap runs, exit status 7" "status $rc"
fi

# 12. kill ID KILL: the VMM dies (run reports 128 + 9), nothing left after delete
bundle sleeper '"/bin/sh", "-c", "echo ready; exec sleep 1000"'
id=kill1
clock; rc=0
start_runner "$id" --keep --bundle "$work/sleeper"
pid="$(pid_of "$id")"
h kill "$id" KILL 2>>"$err"
wait_bounded "$runner" 300
lap
st="$(status_of "$id")"
h delete "$id" 2>>"$err"
left="$(leftovers "$id" "$pid")"
if [ "$rc" = 137 ] && [ "$st" = stopped ] && [ -z "$left" ]; then
    pass "kill KILL: the VMM dies (137), stopped, delete leaves nothing"
else
    fail "kill KILL: the VMM dies (137), stopped, delete leaves nothing" "status $rc, state $st; $left"
fi

# 13. a workload killed by a signal: the VMM ends the same way (run: 128 + 9). Without a pid
#     namespace: the init of one ignores a SIGKILL from inside it (natively too).
bundle selfkill '"/bin/sh", "-c", "kill -9 $$"' '/^ *{$/{N;/"type": "pid"/{N;d;};}'
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm run --bundle "$work/selfkill" sk1 </dev/null >"$out" 2>"$err" || rc=$?
lap
if [ "$rc" = 137 ]; then pass "workload killed by SIGKILL: 137"; else fail "workload killed by SIGKILL: 137" "status $rc"; fi

# 13b. an OOM in the guest: a process of the container that touches more memory than the
#      guest has is OOM-killed there (its exec ends with 137), and `events` streams an "oom"
#      event for it, as it does for a native container's cgroup OOM. The memory limit is
#      160 MiB, so the guest has 128 (the limit less what create keeps for the VMM): the VM,
#      its guest RAM all touched, must fit in the host cgroup that holds it (the VMM lives
#      on), which is what the sizing's margin is for. The VMM relays the guest's OOM kill to
#      the host cgroup, where the runc shim and conmon look for it: exactly one OOM kill there
#      (the relay's own process, never the VMM). `events` reports it from the guest's counts
#      (the guest's "oom" count can be above its kills, so one or more events).
bundle oomer '"/bin/sh", "-c", "echo ready; exec sleep 1000"' \
    's/"resources": {/"resources": {"memory": {"limit": 167772160},/'
id=oom1
clock; rc=0
host_kills=""
if start_runner "$id" --bundle "$work/oomer"; then
    host_cg="$(dirname "$(find /sys/fs/cgroup -path "*$id*" -name memory.events 2>/dev/null | head -n 1)")"
    "$hull" --root "$root" events --interval 1s "$id" >"$work/events" 2>>"$err" &
    events=$!
    sleep 2
    timeout -k 10 120 "$hull" --root "$root" exec "$id" /bin/dd if=/dev/zero of=/dev/null bs=100M count=1 \
        </dev/null >>"$out" 2>>"$err" || rc=$?
    i=0
    while ! grep -q '"type":"oom"' "$work/events" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    i=0
    while [ "$(awk '$1 == "oom_kill" { print $2 }' "$host_cg/memory.events" 2>/dev/null)" = 0 ] && [ $i -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
    # Whatever events says after the guest's next look (1 s).
    sleep 2
    kill "$events" 2>/dev/null
    wait "$events" 2>/dev/null
    host_kills="$(awk '$1 == "oom_kill" { print $2 }' "$host_cg/memory.events" 2>/dev/null)"
    [ "$(status_of "$id")" = running ] || host_kills="${host_kills:-?} (the container is $(status_of "$id"))"
    h kill "$id" KILL 2>>"$err"
    wait_bounded "$runner" 60
    h delete --force "$id" 2>/dev/null
else
    rc=start
fi
lap
left="$(leftovers "$id")"
oom_events="$(grep -c '"type":"oom"' "$work/events" 2>/dev/null)"
if [ "$rc" = 137 ] && [ "${oom_events:-0}" -ge 1 ] && [ "$host_kills" = 1 ] && [ -z "$left" ]; then
    pass "an OOM in the guest: the process is killed (137), events streams an oom event ($oom_events); the VM fits its 160 MiB host cgroup (the VMM lives on); the host cgroup counts the relayed OOM kill"
else
    fail "an OOM in the guest: the process is killed (137), events streams an oom event; the VM fits its 160 MiB host cgroup; the host cgroup counts the relayed OOM kill" \
        "exec status $rc, $oom_events oom events; host cgroup $host_cg: oom_kill '$host_kills' (want 1); $left"
fi

# 13c. networking (issue 14): a network namespace named by path, as podman and CNI give one,
#      holding the end of a veth whose host end has 10.88.0.1/24. The container (a VM) has the
#      veth's name, address and MAC on its NIC and the namespace's default route; 256 MiB go each way
#      between it and the host intact (busybox httpd and wget; no ping: the default
#      capabilities have no CAP_NET_RAW, natively either); after delete the veth has
#      no ingress qdisc and the namespace no tap. iproute2's ip and tc come in at /opt/iproute2.
IP=/opt/iproute2/ip
TC=/opt/iproute2/tc
ns=hullnet1
id=net1
# The transfers are the heaviest guest work of this script: a guest whose CPU triple-faults in
# the emulated machine (integration/testvm/README.md) has done so here more than anywhere. Then
# the check runs once more on a fresh container; a real fault fails both tries.
net_try=1
while :; do
clock; rc=0
net_out="" mac="" to_guest="" from_guest="" fetched="" ingress="" taps=""
if [ -x "$IP" ] && [ -x "$TC" ]; then
    "$IP" netns add "$ns" 2>>"$err"
    "$IP" link add hv0 type veth peer name hv1 2>>"$err"
    "$IP" link set hv1 netns "$ns" 2>>"$err"
    "$IP" addr add 10.88.0.1/24 dev hv0 2>>"$err"
    "$IP" link set hv0 up 2>>"$err"
    "$IP" -n "$ns" link set lo up 2>>"$err"
    "$IP" -n "$ns" addr add 10.88.0.2/24 dev hv1 2>>"$err"
    "$IP" -n "$ns" link set hv1 up 2>>"$err"
    "$IP" -n "$ns" route add default via 10.88.0.1 2>>"$err"
    mac="$("$IP" -n "$ns" -o link show hv1 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')"
    mkdir -p "$work/www" "$rootfs/srv"
    rm -f "$rootfs/fetched"
    head -c 268435456 /dev/urandom >"$work/www/blob"
    head -c 268435456 /dev/urandom >"$rootfs/srv/blob"
    to_guest="$(md5sum <"$work/www/blob" | cut -d' ' -f1)"
    from_guest="$(md5sum <"$rootfs/srv/blob" | cut -d' ' -f1)"
    busybox httpd -f -p 10.88.0.1:8080 -h "$work/www" &
    httpd=$!
    bundle net '"/bin/sh", "-c", "echo ready; echo mac=$(cat /sys/class/net/hv1/address); ip -o -4 addr show dev hv1; ip route; set -- $(timeout 300 wget -q -O - http://10.88.0.1:8080/blob | md5sum); echo got=$1; httpd -p 8081 -h /srv && echo serving; i=0; until [ -e /fetched ]; do sleep 0.1; i=$((i + 1)); [ $i -lt 3000 ] || exit 6; done"' \
        "/\"type\": \"network\"/s#\"network\"#\"network\", \"path\": \"/run/netns/$ns\"#"
    if start_runner "$id" --bundle "$work/net"; then
        if wait_line "$out" serving 300 "$runner"; then
            rm -f "$work/fetch.pid"
            (timeout 300 wget -q -O - http://10.88.0.2:8081/blob 2>>"$err" & echo $! >"$work/fetch.pid"; wait) |
                md5sum | cut -d' ' -f1 >"$work/fetched" &
            fetch=$!
            while kill -0 "$fetch" 2>/dev/null; do
                # The guest gone (its CPU triple-faulted): nothing answers the GET any more, and
                # its 300 s limit need not be waited out.
                kill -0 "$runner" 2>/dev/null || kill "$(cat "$work/fetch.pid" 2>/dev/null)" 2>/dev/null
                sleep 0.2
            done
            wait "$fetch"
            rm -f "$work/fetch.pid"
            fetched="$(cat "$work/fetched" 2>/dev/null)"
            rm -f "$work/fetched"
        fi
        touch "$rootfs/fetched"
        wait_bounded "$runner" 120
    else
        rc=start
    fi
    kill "$httpd" 2>/dev/null
    wait "$httpd" 2>/dev/null
    h delete --force "$id" 2>/dev/null
    ingress="$("$TC" -n "$ns" qdisc show dev hv1 ingress 2>&1)"
    taps="$("$IP" -n "$ns" -o link show 2>/dev/null | grep -c hulltap)"
    net_out="$(cat "$out")"
    "$IP" netns del "$ns" 2>/dev/null
    "$IP" link del hv0 2>/dev/null
    # Half a GiB of the test machine's memory (its /tmp is in RAM).
    rm -f "$work/www/blob" "$rootfs/srv/blob"
else
    rc="no iproute2 at /opt/iproute2"
fi
lap
left="$(leftovers "$id")"
net_ok=0
if [ "$rc" = 0 ] && has "^mac=$mac\$" "$out" && has 'inet 10.88.0.2/24' "$out" && has '^default via 10.88.0.1 dev hv1' "$out" \
    && has "^got=$to_guest\$" "$out" && [ "$fetched" = "$from_guest" ] \
    && [ -z "$ingress" ] && [ "$taps" = 0 ] && [ -z "$left" ]; then
    net_ok=1
elif [ "$net_try" = 1 ] && grep -q 'triple-faulted (KVM_EXIT_SHUTDOWN' "$err" 2>/dev/null; then
    printf 'RETRY network: the guest'"'"'s CPU triple-faulted; its stderr:\n'
    sed 's/^/  | /' "$err" | tail -n 5
    rm -rf "$work/net"
    net_try=2
    continue
fi
break
done
if [ "$net_ok" = 1 ]; then
    pass "network: the veth's name, address, MAC and default route in the guest; 256 MiB each way intact; nothing left on the veth"
else
    fail "network: the veth's name, address, MAC and default route in the guest; 256 MiB each way intact; nothing left on the veth" \
        "status $rc; mac $mac; host sent $to_guest, host got ${fetched:-nothing} (guest sent $from_guest); ingress left: '$ingress'; taps left: $taps; $left; guest said: $(echo "$net_out" | tr '\n' '|')"
fi

# 13d. an interface that comes between create and start, in the order of containerd 1.6's
#      `ctr run --cni`: the container's own network namespace (made by create) has lo only at
#      create; then a veth end is moved in and addressed (the namespace reached through `ip
#      netns attach` of the VMM's pid), then start. The guest has that interface (its name, MAC,
#      address and default route; no other but lo: the spare NIC it came on was out of sight
#      until then) and 4 MiB go each way. (A container whose namespace stays empty sees lo
#      only: the cargo tests' network_namespace_has_only_lo on the vm backend.)
id=late1
clock; rc=0
late_mac="" fetched="" to_guest="" from_guest="" pid=""
if [ -x "$IP" ]; then
    mkdir -p "$work/www" "$rootfs/srv"
    rm -f "$rootfs/fetched"
    head -c 4194304 /dev/urandom >"$work/www/small"
    head -c 4194304 /dev/urandom >"$rootfs/srv/small"
    to_guest="$(md5sum <"$work/www/small" | cut -d' ' -f1)"
    from_guest="$(md5sum <"$rootfs/srv/small" | cut -d' ' -f1)"
    busybox httpd -f -p 18090 -h "$work/www" &
    httpd=$!
    bundle late '"/bin/sh", "-c", "echo links=$(ls /sys/class/net); echo mac=$(cat /sys/class/net/hv3/address); ip -o -4 addr show dev hv3; ip route; set -- $(timeout 120 wget -q -O - http://10.88.1.1:18090/small | md5sum); echo got=$1; httpd -p 8081 -h /srv && echo serving; i=0; until [ -e /fetched ]; do sleep 0.1; i=$((i + 1)); [ $i -lt 3000 ] || exit 6; done"'
    timeout -k 10 200 "$hull" --root "$root" --backend vm create --bundle "$work/late" "$id" </dev/null >"$out" 2>"$err" || rc=create
    pid="$(pid_of "$id")"
    if [ "$rc" = 0 ] && [ -n "$pid" ]; then
        "$IP" netns attach hulllate "$pid" 2>>"$err"
        "$IP" link add hv2 type veth peer name hv3 2>>"$err"
        "$IP" link set hv3 netns hulllate 2>>"$err"
        "$IP" addr add 10.88.1.1/24 dev hv2 2>>"$err"
        "$IP" link set hv2 up 2>>"$err"
        "$IP" -n hulllate addr add 10.88.1.2/24 dev hv3 2>>"$err"
        "$IP" -n hulllate link set hv3 up 2>>"$err"
        "$IP" -n hulllate route add default via 10.88.1.1 2>>"$err"
        late_mac="$("$IP" -n hulllate -o link show hv3 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')"
        h start "$id" 2>>"$err" || rc=start
        wait_line "$out" serving 120
        fetched="$(timeout 120 wget -q -O - http://10.88.1.2:8081/small 2>>"$err" | md5sum | cut -d' ' -f1)"
        touch "$rootfs/fetched"
        wait_status "$id" stopped 60
    fi
    kill "$httpd" 2>/dev/null
    wait "$httpd" 2>/dev/null
    h delete --force "$id" 2>>"$err"
    "$IP" netns del hulllate 2>/dev/null
    "$IP" link del hv2 2>/dev/null
else
    rc="no iproute2 at /opt/iproute2"
fi
lap
left="$(leftovers "$id" "$pid")"
if [ "$rc" = 0 ] && has '^links=hv3 lo$' "$out" && has "^mac=$late_mac\$" "$out" && has 'inet 10.88.1.2/24' "$out" \
    && has '^default via 10.88.1.1 dev hv3' "$out" && has "^got=$to_guest\$" "$out" && [ "$fetched" = "$from_guest" ] \
    && [ -z "$left" ]; then
    pass "network: an interface that came between create and start is the guest's (name, MAC, address, route); 4 MiB each way"
else
    fail "network: an interface that came between create and start is the guest's (name, MAC, address, route); 4 MiB each way" \
        "status $rc; mac ${late_mac:-?}; host sent $to_guest, host got ${fetched:-nothing} (guest sent $from_guest); $left; guest said: $(tr '\n' '|' <"$out")"
fi

# 14. delete --force of a running VM container
id=force1
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm create --bundle "$work/sleeper" "$id" </dev/null >"$out" 2>"$err" || rc=$?
h start "$id" 2>>"$err" || rc=$?
wait_line "$out" ready 60
pid="$(pid_of "$id")"
h delete --force "$id" 2>>"$err" || rc=$?
lap
left="$(leftovers "$id" "$pid")"
if [ "$rc" = 0 ] && [ -n "$pid" ] && [ -z "$left" ]; then
    pass "delete --force: no process, cgroup or state left"
else
    fail "delete --force: no process, cgroup or state left" "status $rc, pid $pid; $left"
fi

# 14b. a signal before start ends the VMM (as it would a native init on the fifo); a created
#      container is deleted without --force; nothing is left either way
id=early1
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm create --bundle "$work/sleeper" "$id" </dev/null >"$out" 2>"$err" || rc=$?
pid="$(pid_of "$id")"
h kill "$id" TERM 2>>"$err" || rc=$?
wait_status "$id" stopped 60 || rc=$?
st="$(status_of "$id")"
h delete "$id" 2>>"$err" || rc=$?
lap
left="$(leftovers "$id" "$pid")"
if [ "$rc" = 0 ] && [ "$st" = stopped ] && ! has ready "$out" && [ -z "$left" ]; then
    pass "kill TERM before start: stopped, the workload never ran, nothing left"
else
    fail "kill TERM before start: stopped, the workload never ran, nothing left" "status $rc, state $st; $left"
fi
id=early2
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm create --bundle "$work/sleeper" "$id" </dev/null >"$out" 2>"$err" || rc=$?
pid="$(pid_of "$id")"
h delete "$id" 2>>"$err" || rc=$?
lap
left="$(leftovers "$id" "$pid")"
if [ "$rc" = 0 ] && [ -n "$pid" ] && [ -z "$left" ]; then
    pass "delete of a created container: nothing left"
else
    fail "delete of a created container: nothing left" "status $rc, pid $pid; $left"
fi

# 15. a bad kernel path: create fails clearly, nothing left
id=badk1
clock; rc=0
HULL_KERNEL=/nonexistent/vmlinuz "$hull" --root "$root" --backend vm create --bundle "$work/sleeper" "$id" \
    </dev/null >"$out" 2>"$err" || rc=$?
lap
left="$(leftovers "$id")"
if [ "$rc" != 0 ] && has 'no guest kernel at /nonexistent/vmlinuz' "$err" && [ -z "$left" ]; then
    pass "bad kernel path: clear error, nothing left"
else
    fail "bad kernel path: clear error, nothing left" "status $rc; $left"
fi

# 16. the guest does not come up in time: create fails clearly, nothing left. In a network
#     namespace named by path with a veth: the VMM had tied the veth to its tap before the
#     boot, and the failed create unties it (a leftover ingress qdisc made the next container
#     on that veth fail with "File exists").
printf '[vm]\nboot_timeout_s = 1\n' >"$work/short-boot.toml"
id=boot1
ns=hullboot1
ingress="(no iproute2)"
if [ -x "$IP" ] && [ -x "$TC" ]; then
    "$IP" netns add "$ns" 2>>"$err"
    "$IP" link add hv6 type veth peer name hv7 2>>"$err"
    "$IP" link set hv7 netns "$ns" 2>>"$err"
    "$IP" -n "$ns" link set hv7 up 2>>"$err"
fi
bundle boot1 '"/bin/sh", "-c", "exec sleep 1000"' \
    "/\"type\": \"network\"/s#\"network\"#\"network\", \"path\": \"/run/netns/$ns\"#"
clock; rc=0
HULL_CONFIG="$work/short-boot.toml" timeout -k 10 100 "$hull" --root "$root" --backend vm create --bundle "$work/boot1" \
    "$id" </dev/null >"$out" 2>"$err" || rc=$?
lap
sleep 1
left="$(leftovers "$id")"
vmms="$(for p in /proc/[0-9]*; do [ "$(readlink "$p/exe" 2>/dev/null)" = "$hull_exe" ] && echo "${p#/proc/}"; done)"
if [ -x "$TC" ]; then
    ingress="$("$TC" -n "$ns" qdisc show dev hv7 ingress 2>&1)"
    "$IP" netns del "$ns" 2>/dev/null
    "$IP" link del hv6 2>/dev/null
fi
if [ "$rc" != 0 ] && has 'did not connect within 1 s' "$err" && [ -z "$left" ] && [ -z "$vmms" ] && [ -z "$ingress" ]; then
    pass "boot timeout: clear error, nothing left (the veth untied)"
else
    fail "boot timeout: clear error, nothing left (the veth untied)" "status $rc; $left; hull processes: $vmms; ingress left: '$ingress'"
fi

# 16b. the guest kernel panics under a running workload (the agent, the guest's init, is gone
#      with it): run fails within seconds, its error shows the panic from the guest console's
#      tail, and nothing is left
bundle panic1 '"/bin/sh", "-c", "echo c > /proc/sysrq-trigger; sleep 100"' 's#"/proc/sysrq-trigger"#"/proc/hull-unused"#'
id=panic1
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" --backend vm run --bundle "$work/panic1" "$id" </dev/null >"$out" 2>"$err" || rc=$?
lap
sleep 1
left="$(leftovers "$id")"
vmms="$(for p in /proc/[0-9]*; do [ "$(readlink "$p/exe" 2>/dev/null)" = "$hull_exe" ] && echo "${p#/proc/}"; done)"
if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$rc" != 137 ] && has 'Kernel panic - not syncing: sysrq triggered crash' "$err" && [ -z "$left" ] && [ -z "$vmms" ]; then
    pass "guest kernel panic: run fails ($rc), the console's panic in its error, nothing left"
else
    fail "guest kernel panic: run fails, the console's panic in its error, nothing left" "status $rc; $left; hull processes: $vmms"
fi

# 17, 18. the annotation and the hull-vm name choose the VM: uname -r is the guest kernel's
host_release="$(uname -r)"
bundle uname '"/bin/uname", "-r"'
annotate uname
clock; rc=0
timeout -k 10 200 "$hull" --root "$root" run --bundle "$work/uname" an1 </dev/null >"$out" 2>"$err" || rc=$?
lap
guest_release="$(cat "$out")"
if [ "$rc" = 0 ] && [ -n "$guest_release" ] && [ "$guest_release" != "$host_release" ]; then
    pass "annotation hull.backend=vm: the guest kernel ($guest_release)"
else
    fail "annotation hull.backend=vm: the guest kernel" "status $rc, '$guest_release' vs the machine's $host_release"
fi
ln -s "$hull_exe" "$work/hull-vm"
bundle uname2 '"/bin/uname", "-r"'
clock; rc=0
timeout -k 10 200 "$work/hull-vm" --root "$root" run --bundle "$work/uname2" an2 </dev/null >"$out" 2>"$err" || rc=$?
lap
if [ "$rc" = 0 ] && [ -n "$guest_release" ] && [ "$(cat "$out")" = "$guest_release" ]; then
    pass "argv0 hull-vm: the guest kernel"
else
    fail "argv0 hull-vm: the guest kernel" "status $rc, '$(cat "$out")'"
fi

}

. "$here/backend-exec.sh"

case "$only" in ""|lifecycle) lifecycle_checks ;; esac
case "$only" in ""|exec) exec_checks ;; esac

printf '%s passed, %s failed\n' "$passed" "$failed"
[ "$failed" = 0 ]
