# Sourced by backend.sh (its helpers and variables): the commands that act on a running VM
# container, all on one container so that one guest boot serves them all: exec (output,
# exit code, the container's namespaces, stdin, user/env/cwd, a terminal, a program that is
# not there, --detach with --pid-file, signals to the stand-in), the VMM's capabilities,
# escapes through the share, ps, pause and resume, events, update, and delete --force while an
# exec runs.

# tick_of: the counter the workload writes five times a second (through the share); a read
# between its truncate and its write is empty, and is read again.
tick_of() {
    _t=""
    _i=0
    while [ -z "$_t" ] && [ $_i -lt 20 ]; do
        _t="$(cat "$rootfs/tmp/tick-ex1" 2>/dev/null)"
        [ -n "$_t" ] || sleep 0.05
        _i=$((_i + 1))
    done
    echo "${_t:-0}"
}
# procs_of ID: the host pids in the container's cgroup, one line.
procs_of() { cat "$(cgroups_of "$1" | head -n 1)/cgroup.procs" 2>/dev/null | sort -n | tr '\n' ' '; }
# gone PID: the process has ended (a zombie of the test machine's init counts).
gone() { [ ! -d "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# wait_gone PID SECONDS
wait_gone() {
    i=0
    while [ $i -lt $(($2 * 10)) ]; do
        gone "$1" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

exec_checks() {
    bundle ex '"/bin/sh", "-c", "echo ready; i=0; while :; do i=$((i+1)); echo $i > /tmp/tick-ex1; sleep 0.2; done"' \
        's/"readonly": true/"readonly": false/'
    id=ex1
    exout="$work/ex1.out"
    clock; rc=0
    timeout -k 10 200 "$hull" --root "$root" --backend vm create --bundle "$work/ex" "$id" \
        </dev/null >"$exout" 2>"$work/ex1.err" || rc=$?
    if [ "$rc" = 0 ]; then h start "$id" 2>>"$work/ex1.err" || rc=$?; fi
    wait_line "$exout" ready 60 || rc=1
    lap
    vmm="$(pid_of "$id")"
    if [ "$rc" != 0 ]; then
        cp "$exout" "$out"; cp "$work/ex1.err" "$err"
        fail "exec: a running VM container to exec into" "status $rc"
        h delete --force "$id" >/dev/null 2>&1
        return
    fi

    # exec: runs in the guest; stdout and stderr apart; its exit code
    clock; rc=0
    timeout -k 10 100 "$hull" --root "$root" exec "$id" /bin/sh -c 'echo in-guest; uname -r; echo to-err >&2; exit 4' \
        </dev/null >"$out" 2>"$err" || rc=$?
    lap
    if [ "$rc" = 4 ] && has '^in-guest$' "$out" && ! has "^$(uname -r)\$" "$out" && has '^to-err$' "$err" \
        && ! has to-err "$out"; then
        pass "exec: runs in the guest, stdout and stderr apart, exit code 4"
    else
        fail "exec: runs in the guest, stdout and stderr apart, exit code 4" "status $rc"
    fi

    # exec: in the container's namespaces in the guest: its pid 1 is the workload, its
    # hostname the spec's
    clock; rc=0
    timeout -k 10 100 "$hull" --root "$root" exec "$id" /bin/sh -c 'tr "\0" " " </proc/1/cmdline; echo; hostname' \
        </dev/null >"$out" 2>"$err" || rc=$?
    lap
    if [ "$rc" = 0 ] && has 'tick-ex1' "$out" && has '^hull$' "$out"; then
        pass "exec: in the container's pid and uts namespaces"
    else
        fail "exec: in the container's pid and uts namespaces" "status $rc"
    fi

    # exec: stdin reaches the process, with its end
    printf 'one\ntwo\n' >"$work/ex-input"
    clock; rc=0
    timeout -k 10 100 "$hull" --root "$root" exec "$id" /bin/cat <"$work/ex-input" >"$out" 2>"$err" || rc=$?
    lap
    if [ "$rc" = 0 ] && [ "$(cat "$out")" = "$(cat "$work/ex-input")" ]; then
        pass "exec: stdin forwarded"
    else
        fail "exec: stdin forwarded" "status $rc"
    fi

    # exec --user --env --cwd
    clock; rc=0
    timeout -k 10 100 "$hull" --root "$root" exec --user 1000:1001 --env FOO=bar-baz --cwd /tmp "$id" \
        /bin/sh -c 'id -u; id -g; pwd; echo $FOO' </dev/null >"$out" 2>"$err" || rc=$?
    lap
    if [ "$rc" = 0 ] && [ "$(tr '\n' ' ' <"$out")" = "1000 1001 /tmp bar-baz " ]; then
        pass "exec: --user, --env, --cwd"
    else
        fail "exec: --user, --env, --cwd" "status $rc"
    fi

    # exec -t: a pty in the guest, copied to the caller
    clock; rc=0
    timeout -k 10 100 "$hull" --root "$root" exec -t "$id" /bin/sh -c 'tty; test -t 0 && test -t 1 && echo tty-ok; exit 2' \
        </dev/null >"$out" 2>"$err" || rc=$?
    lap
    if [ "$rc" = 2 ] && grep -q '^/dev/pts/[0-9]' "$out" && has 'tty-ok' "$out"; then
        pass "exec -t: a terminal in the guest, exit code 2"
    else
        fail "exec -t: a terminal in the guest, exit code 2" "status $rc"
    fi

    # exec of a program that is not there: a clear error, no stand-in left
    clock; rc=0
    timeout -k 10 100 "$hull" --root "$root" exec "$id" /no/such-program </dev/null >"$out" 2>"$err" || rc=$?
    lap
    sleep 0.5
    procs="$(procs_of "$id")"
    if [ "$rc" != 0 ] && has 'cannot run "/no/such-program" in the guest' "$err" && [ "$procs" = "$vmm " ]; then
        pass "exec of a missing program: clear error, nothing left"
    else
        fail "exec of a missing program: clear error, nothing left" "status $rc, cgroup procs: $procs (VMM $vmm)"
    fi

    # exec -d --pid-file: the pid is a host stand-in in the container's cgroup, listed by ps,
    # that lives as long as the guest process
    clock; rc=0
    timeout -k 10 100 "$hull" --root "$root" exec -d --pid-file "$work/d.pid" "$id" /bin/sleep 4 \
        </dev/null >"$out" 2>"$err" || rc=$?
    lap
    d="$(cat "$work/d.pid" 2>/dev/null)"
    ps_out="$(h ps --format json "$id" 2>&1)"
    procs="$(procs_of "$id")"
    if [ "$rc" = 0 ] && [ -n "$d" ] && [ -d "/proc/$d" ] && ! gone "$d" && echo "$ps_out" | grep -qw "$d" \
        && echo "$procs" | grep -qw "$d"; then
        pass "exec -d --pid-file: a stand-in in the cgroup, listed by ps"
    else
        fail "exec -d --pid-file: a stand-in in the cgroup, listed by ps" "status $rc, pid '$d', ps $ps_out, procs $procs"
    fi
    clock
    if [ -n "$d" ] && wait_gone "$d" 60; then lap; pass "exec -d: the stand-in ends with the guest process"; else
        lap; fail "exec -d: the stand-in ends with the guest process" "pid '$d' still there"
    fi

    # a signal to the stand-in reaches the guest process, which traps it; its exit code comes back
    clock; rc=0
    rm -f "$work/t.pid"
    "$hull" --root "$root" exec --pid-file "$work/t.pid" "$id" \
        /bin/sh -c 'trap "echo got-term; exit 9" TERM; echo ready2; while :; do sleep 0.2; done' \
        </dev/null >"$out" 2>"$err" &
    job=$!
    wait_line "$out" ready2 60
    t="$(cat "$work/t.pid" 2>/dev/null)"
    [ -n "$t" ] && kill -TERM "$t"
    wait_bounded "$job" 60
    lap
    if [ "$rc" = 9 ] && has '^got-term$' "$out"; then
        pass "exec: SIGTERM to the stand-in reaches the trap, exit code 9"
    else
        fail "exec: SIGTERM to the stand-in reaches the trap, exit code 9" "status $rc, stand-in '$t'"
    fi

    # the VMM keeps only the capabilities serving files needs (CHOWN, DAC_OVERRIDE,
    # DAC_READ_SEARCH, FOWNER, FSETID, SETGID, SETUID, SETFCAP), bounding set included
    clock
    caps="$(grep -e ^CapEff -e ^CapBnd -e ^CapPrm "/proc/$vmm/status" 2>/dev/null | awk '{ print $2 }' | sort -u)"
    lap
    if [ "$caps" = 00000000800000df ]; then pass "the VMM's capabilities: file serving only"; else
        fail "the VMM's capabilities: file serving only" "CapEff/CapBnd/CapPrm: $(echo $caps)"
    fi

    # the VMM's jail: every thread has no_new_privs and a seccomp filter, each vcpu thread one
    # of its own on top of the event loop's (two)
    clock
    unfiltered=""
    vcpu_filters=""
    for t in /proc/"$vmm"/task/*; do
        comm="$(cat "$t/comm" 2>/dev/null)"
        grep -q '^NoNewPrivs:[[:space:]]*1$' "$t/status" && grep -q '^Seccomp:[[:space:]]*2$' "$t/status" \
            || unfiltered="$unfiltered $comm"
        case "$comm" in
            vcpu*) vcpu_filters="$vcpu_filters $(awk '/^Seccomp_filters:/ { print $2 }' "$t/status")" ;;
        esac
    done
    lap
    if [ -z "$unfiltered" ] && [ -n "$vcpu_filters" ] && ! echo "$vcpu_filters" | grep -qv '^\( 2\)*$'; then
        pass "the VMM's threads: no_new_privs and seccomp in each, the vcpus' own on top"
    else
        fail "the VMM's threads: no_new_privs and seccomp in each, the vcpus' own on top" \
            "without: '$unfiltered', vcpu filter counts: '$vcpu_filters'"
    fi

    # ... in a mount namespace of its own, whose root holds only what it serves: the rootfs share,
    # the agent's socket and the exec fifo in the state directory, and a read-only procfs (its
    # fds, and what podman top reads) of its own pid namespace, where it is pid 1 and no other
    # process of the host (this script) is; no hull binary, no /dev, /sys, no /etc
    clock
    vroot="/proc/$vmm/root"
    top() { echo "$1" | cut -d/ -f2; }
    want="$(printf '%s\n' proc "$(top "$(readlink -f "$rootfs")")" "$(top "$(readlink -f "$root")")" | sort -u | tr '\n' ' ')"
    got="$(ls -A "$vroot" 2>&1 | sort | tr '\n' ' ')"
    proc_opts="$(awk '$5 == "/proc" { print $6 }' "/proc/$vmm/mountinfo")"
    mounts="$(awk '{ print $5 }' "/proc/$vmm/mountinfo" 2>/dev/null | sort -u | tr '\n' ' ')"
    stray="$(awk -v r="$(readlink -f "$rootfs")" -v s="$(readlink -f "$root")/$id" \
        '$5 != "/" && $5 != "/proc" && index($5, r) != 1 && index($5, s) != 1 { print $5 }' "/proc/$vmm/mountinfo")"
    lap
    if [ "$(readlink "/proc/$vmm/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] && [ "$got" = "$want" ] \
        && [ "${proc_opts%%,*}" = ro ] && grep -q '^NSpid:.*[[:space:]]1$' "$vroot/proc/1/status" \
        && [ ! -e "$vroot/proc/$$" ] && [ -z "$stray" ] && [ ! -e "$vroot$hull_exe" ] && [ ! -e "$vroot/etc" ] \
        && [ -d "$vroot$(readlink -f "$rootfs")/bin" ] && [ -S "$vroot$(readlink -f "$root")/$id/vsock_1024" ]; then
        pass "the VMM's root: its own mount namespace, only the shares, its sockets and fds"
    else
        fail "the VMM's root: its own mount namespace, only the shares, its sockets and fds" \
            "root: '$got' (want '$want'), /proc options: '$proc_opts', its /proc: $(ls "$vroot/proc" | grep -c '^[0-9]') processes, pid 1 $(grep NSpid "$vroot/proc/1/status" 2>&1), this script's there: $([ -e "$vroot/proc/$$" ] && echo yes || echo no); mounts: $mounts; stray: $stray"
    fi

    # escapes through the share, each refused: a device node made from the guest (even with
    # CAP_MKNOD there), an absolute symlink planted on the host side; what the guest may do
    # (a fifo, chown with CAP_CHOWN) lands on the host as asked
    echo host-secret >"$work/host-secret"
    ln -sf "$work/host-secret" "$rootfs/tmp/leak"
    clock; rc=0
    timeout -k 10 100 "$hull" --root "$root" exec --cap CAP_MKNOD --cap CAP_CHOWN "$id" /bin/sh -c \
        'mknod /tmp/evil-mem c 1 1 && echo mknod-made; cat /tmp/leak 2>/dev/null && echo leaked; mkfifo /tmp/ok-fifo && echo fifo-made; touch /tmp/owned && chown 1234:1234 /tmp/owned && echo chowned; cat /proc/version' \
        </dev/null >"$out" 2>"$err" || rc=$?
    lap
    owner="$(stat -c %u:%g "$rootfs/tmp/owned" 2>/dev/null)"
    if ! has mknod-made "$out" && [ ! -e "$rootfs/tmp/evil-mem" ] && ! has leaked "$out" && ! has host-secret "$out" \
        && has fifo-made "$out" && [ -p "$rootfs/tmp/ok-fifo" ] && has chowned "$out" && [ "$owner" = 1234:1234 ] \
        && ! grep -qF "$(cat /proc/version)" "$out"; then
        pass "escapes through the share refused (device node, host symlink); fifo and chown work"
    else
        fail "escapes through the share refused (device node, host symlink); fifo and chown work" "status $rc, owner '$owner'"
    fi
    rm -f "$rootfs/tmp/leak" "$rootfs/tmp/ok-fifo" "$rootfs/tmp/owned"

    # pause: the whole guest stops (the workload's counter with it) and exec is refused;
    # resume: it goes on
    clock; rc=0
    a="$(tick_of)"; sleep 1.5; b="$(tick_of)"
    h pause "$id" 2>"$err" || rc=$?
    st_paused="$(status_of "$id")"
    sleep 0.5; c="$(tick_of)"; sleep 2; d2="$(tick_of)"
    timeout -k 10 60 "$hull" --root "$root" exec "$id" /bin/true </dev/null >"$out" 2>>"$err" && rc=1
    refused="$(grep -c 'paused' "$err")"
    h resume "$id" 2>>"$err" || rc=$?
    st_resumed="$(status_of "$id")"
    sleep 2; e="$(tick_of)"
    lap
    if [ "$rc" = 0 ] && [ "$b" -gt "$a" ] && [ "$st_paused" = paused ] && [ "$c" = "$d2" ] && [ "$refused" -gt 0 ] \
        && [ "$st_resumed" = running ] && [ "$e" -gt "$d2" ]; then
        pass "pause stops the guest (exec refused), resume goes on"
    else
        fail "pause stops the guest (exec refused), resume goes on" \
            "status $rc, ticks $a $b | paused($st_paused) $c $d2 | resumed($st_resumed) $e, refusals $refused"
    fi

    # events --stats: the host cgroup's cpu (the whole VM) with the memory and pids of the
    # container's cgroup in the guest, which are far below the host cgroup's (guest RAM)
    clock; rc=0
    timeout -k 10 60 "$hull" --root "$root" events --stats "$id" </dev/null >"$out" 2>"$err" || rc=$?
    lap
    host_mem="$(cat "$(find /sys/fs/cgroup -path "*$id*" -name memory.current 2>/dev/null | head -n 1)" 2>/dev/null)"
    ev_mem="$(grep -o '"memory":{[^}]*}' "$out" | grep -o '"usage":[0-9][0-9]*' | head -n 1 | cut -d: -f2)"
    ev_pids="$(grep -o '"pids":{[^}]*}' "$out" | grep -o '"current":[0-9][0-9]*' | cut -d: -f2)"
    if [ "$rc" = 0 ] && has '"type":"stats"' "$out" && [ -n "$ev_mem" ] && [ -n "$host_mem" ] \
        && [ "$ev_mem" -gt 0 ] && [ "$ev_mem" -lt "$host_mem" ] && [ -n "$ev_pids" ] && [ "$ev_pids" -ge 1 ]; then
        pass "events --stats: the guest cgroup's memory ($ev_mem B, host cgroup $host_mem B) and pids ($ev_pids)"
    else
        fail "events --stats: the guest cgroup's memory and pids" "status $rc, memory '$ev_mem' vs host '$host_mem', pids '$ev_pids'"
    fi

    # update: the host cgroup's limits change, and the container's cgroup in the guest
    clock; rc=0
    h update --pids-limit 321 "$id" 2>"$err" || rc=$?
    pidsmax="$(cat "$(find /sys/fs/cgroup -path "*$id*" -name pids.max 2>/dev/null | head -n 1)" 2>/dev/null)"
    guest_pidsmax="$(timeout -k 5 60 "$hull" --root "$root" exec "$id" /bin/cat /sys/fs/cgroup/pids.max </dev/null 2>>"$err")"
    lap
    if [ "$rc" = 0 ] && [ "$pidsmax" = 321 ] && [ "$guest_pidsmax" = 321 ]; then
        pass "update --pids-limit: the host cgroup and the guest's"
    else
        fail "update --pids-limit: the host cgroup and the guest's" "status $rc, pids.max '$pidsmax', in the guest '$guest_pidsmax'"
    fi

    # delete --force while an exec runs: the stand-in ends as killed (137), nothing is left
    clock; rc=0
    rm -f "$work/k.pid"
    "$hull" --root "$root" exec --pid-file "$work/k.pid" "$id" /bin/sleep 1000 </dev/null >"$out" 2>"$err" &
    job=$!
    i=0
    while [ ! -s "$work/k.pid" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    k="$(cat "$work/k.pid" 2>/dev/null)"
    d0=$(date +%s)
    h delete --force "$id" 2>>"$err" || rc=$?
    del_rc=$rc
    d1=$(date +%s)
    wait_bounded "$job" 60 $k
    lap
    timing="delete $((d1 - d0)) s, the exec's end $(($(date +%s) - d1)) s after it"
    left="$(leftovers "$id" "$vmm")"
    if [ "$del_rc" = 0 ] && [ "$rc" = 137 ] && [ "$timed_out" = 0 ] && [ -n "$k" ] && gone "$k" && [ -z "$left" ]; then
        pass "delete --force during an exec: the exec ends (137), nothing left ($timing)"
    else
        fail "delete --force during an exec: the exec ends (137), nothing left" \
            "delete $del_rc, exec $rc (killed by the check's own limit: $timed_out; $timing), stand-in '$k'; $left; $stuck"
    fi
}
