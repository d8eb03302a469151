#!/usr/bin/env bash
# hull's systemd cgroup driver against a real systemd 252 running as PID 1.
#
#   integration/systemd/run.sh [--hull PATH] [--timeout S] [--keep-going]
#
# The project's machines do not boot systemd, so this makes a systemd host: inside the test
# machine (integration/testvm: QEMU, pure cgroup v2) the host's systemd and dbus-daemon are
# carried in and systemd is started as PID 1 of a new pid, mount and cgroup namespace, in
# container mode, on a unit set of its own (hull-test.target). The checks then run as a
# transient service of that systemd (systemd-run --wait --pipe), as containerd or CRI-O would
# run hull, and call `hull --systemd-cgroup` with cgroupsPath slice:prefix:name. What they
# look at is systemd's and the kernel's view (systemctl, /proc/PID/cgroup, cgroupfs), not
# hull's words. hull talks to systemd over the system bus (dbus-daemon, socket-activated by
# this systemd); one more round points it at a bus that is not there and checks for a clear
# error and nothing left behind. The rootless round runs hull, then rootless podman with its
# systemd cgroup manager (integration/podman/rootless.sh --systemd), on a user's own systemd.
#
# Prints PASS/FAIL per check and `N passed, M failed`; exits non-zero on any failure. Needs
# root, busybox-static, systemd, dbus-daemon and util-linux on the host (Debian 12).
#
# Internal modes: --inside (in the test machine: start systemd, run the checks),
# --checks bus|nobus|rootless (in systemd's transient service, or for rootless in the test
# user's own systemd's: the checks themselves).
# shellcheck disable=SC2016  # single-quoted $ is for the container's shell
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
hull="$repo/target/x86_64-unknown-linux-gnu/release/hull"
timeout=900
mode=host
checks_mode=""
while [ $# -gt 0 ]; do
    case "$1" in
    --hull) hull="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --inside) mode=inside; shift ;;
    --checks) mode=checks; checks_mode="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 0 ;;
    *) echo "systemd: unknown argument: $1" >&2; exit 2 ;;
    esac
done

# Where the tools go in the test machine: its busybox owns /usr/bin/unshare and nsenter.
tools=/opt/hull-sd
say() { echo "systemd-test: $*" >&2; }

# ------------------------------------------------------------------------------ host
if [ "$mode" = host ]; then
    [ "$(id -u)" -eq 0 ] || { say "needs root"; exit 1; }
    hull="$(readlink -f "$hull")"
    [ -x "$hull" ] || { say "no hull binary at $hull (cargo build --release)"; exit 1; }
    # What is carried in comes from the host's packages: install them when missing (only the
    # files are used; nothing of systemd runs on the host).
    missing=()
    for p in systemd dbus-daemon util-linux busybox-static podman conmon uidmap slirp4netns; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
    for f in /usr/lib/systemd/systemd /usr/bin/systemctl /usr/bin/systemd-run /usr/bin/dbus-daemon \
        /usr/bin/unshare /usr/bin/nsenter /bin/busybox; do
        [ -x "$f" ] || { say "missing $f (apt-get install systemd dbus-daemon util-linux busybox-static)"; exit 1; }
    done
    version="$(/usr/lib/systemd/systemd --version | head -n1)"
    say "carrying in $version"
    # systemd's private libraries live in the multiarch directory (libsystemd-shared-252.so).
    shared="$(ldd /usr/lib/systemd/systemd | grep -o '/[^ ]*/systemd/libsystemd-shared-[^ ]*' | head -n1)"
    args=(--hull "$hull" --timeout "$timeout"
        --add "$(readlink -f "$(command -v bash)")":/bin/bash
        --add "$here/run.sh":"$tools/run.sh"
        --add /usr/bin/unshare:"$tools/bin/unshare" --add /usr/bin/nsenter:"$tools/bin/nsenter"
        --add /usr/lib/systemd --add "$(dirname "$shared")"
        --add /usr/bin/systemctl --add /usr/bin/systemd-run --add /usr/bin/busctl
        --add /usr/bin/dbus-daemon --add /usr/share/dbus-1)
    [ -d /etc/dbus-1 ] && args+=(--add /etc/dbus-1)
    # Rootless podman under the user's systemd (integration/podman/rootless.sh --systemd): what
    # its --testvm carries in.
    args+=(--add /usr/bin/podman --add /usr/bin/conmon
        --add "$(readlink -f /usr/libexec/podman/catatonit)":/usr/libexec/podman/catatonit
        --add /usr/lib/podman/rootlessport --add /usr/bin/slirp4netns
        --add /usr/bin/newuidmap --add /usr/bin/newgidmap --add /usr/share/containers/seccomp.json
        --add "$repo/integration/podman/rootless.sh":"$tools/integration/podman/rootless.sh"
        --add "$repo/integration/lib.sh":"$tools/integration/lib.sh")
    [ -e /etc/containers/policy.json ] && args+=(--add /etc/containers/policy.json)
    [ -n "${HULL_SYSTEMD_ROUNDS:-}" ] && args+=(--env "HULL_SYSTEMD_ROUNDS=$HULL_SYSTEMD_ROUNDS")
    # A VM container under the systemd driver too, when there is a guest kernel (`just
    # kernel`): carried in where hull looks for it, with the boot timeout the other test
    # machine runs give (each guest boots nested under emulation).
    kernel="${HULL_KERNEL:-/usr/local/share/hull/vmlinuz}"
    if [ -f "$kernel" ]; then
        vmconf="$(mktemp)"
        trap 'rm -f "$vmconf"' EXIT
        printf '[vm]\nboot_timeout_s = 240\n' >"$vmconf"
        # Readable by all, as /etc files are: the rootless round's hull reads it as a user.
        chmod 644 "$vmconf"
        args+=(--add "$(readlink -f "$kernel")":/usr/local/share/hull/vmlinuz --add "$vmconf":/etc/hull/config.toml)
    else
        say "no guest kernel at $kernel: the VM container check is skipped (just kernel)"
    fi
    "$repo/integration/testvm/testvm.sh" "${args[@]}" -- /bin/bash "$tools/run.sh" --inside
    exit
fi

# ------------------------------------------------------------------------------ inside
# In the test machine, as its root: start systemd in its own namespaces, then the checks.
if [ "$mode" = inside ]; then
    B="$tools/bin"
    # A host's /etc as far as systemd and dbus-daemon need it. A machine id makes this boot
    # not a "first boot" (no preset pass over every unit file: ~10 s under TCG).
    mkdir -p /etc/systemd/system /var /run/dbus
    [ -e /var/run ] || ln -s /run /var/run
    echo 5bd1e3a8c2f04f6e9d1b7a2c3e4f5a6b >/etc/machine-id
    grep -q '^messagebus:' /etc/passwd || echo 'messagebus:x:100:102::/nonexistent:/bin/false' >>/etc/passwd
    grep -q '^messagebus:' /etc/group || echo 'messagebus:x:102:' >>/etc/group
    # Only what the checks need: no gettys, no journald, no default.target's crowd.
    printf '[Unit]\nDescription=hull systemd driver tests\n' >/etc/systemd/system/hull-test.target

    # systemd's cgroup: a child of the root, the root of its cgroup namespace. Only its PID 1
    # goes in it (the caller stays outside: a cgroup with processes cannot delegate
    # controllers to its children).
    mkdir -p /sys/fs/cgroup/systemd-host
    cat >/tmp/systemd-pid1.sh <<EOF
echo 0 >/sys/fs/cgroup/systemd-host/cgroup.procs || exit 1
exec $B/unshare --cgroup /bin/sh -c 'umount -l /sys/fs/cgroup && mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || exit 1
exec env -i container=hull PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/lib/systemd/systemd --unit=hull-test.target --log-target=kmsg --show-status=no'
EOF
    "$B/unshare" --pid --fork --mount-proc --mount --propagation private /bin/sh /tmp/systemd-pid1.sh &
    outer=$!
    sdpid=""
    state=""
    for _ in $(seq 1 120); do
        if [ -z "$sdpid" ]; then
            for p in /proc/[0-9]*; do
                [ "$(cat "$p/comm" 2>/dev/null)" = systemd ] && { sdpid="${p#/proc/}"; break; }
            done
        fi
        [ -n "$sdpid" ] && state="$("$B/nsenter" -t "$sdpid" -a systemctl is-system-running 2>/dev/null)"
        case "$state" in running | degraded) break ;; esac
        kill -0 "$outer" 2>/dev/null || break
        sleep 1
    done
    case "$state" in
    running | degraded) say "systemd is PID 1 of its namespaces (host pid $sdpid): $state" ;;
    *)
        say "systemd did not come up (state: ${state:-none})"
        dmesg | grep -i systemd | tail -n 40 >&2
        exit 1
        ;;
    esac
    insd() { "$B/nsenter" -t "$sdpid" -a "$@"; }
    rc=0
    # The checks run as a transient service of this systemd, like a container manager would.
    run_checks() {
        insd systemd-run --quiet --wait --pipe --collect --unit="hull-checks-$1" \
            -p Delegate=yes -E PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            /bin/bash "$tools/run.sh" --checks "$1" || rc=1
    }
    # Rootless, as rootless podman with its systemd cgroup manager runs its runtime: an ordinary
    # user's own systemd (`systemd --user`, started the way user@.service starts it: as the
    # user, Delegate=yes, without PAM here), its session bus socket-activated by that manager
    # (dbus-user-session's dbus.socket), and the checks run by the user as a transient service
    # of that manager, so hull and its container start inside the user's delegated subtree.
    run_rootless_checks() {
        local u=hull-rl uid=1500 xdg=/run/user/1500
        grep -q "^$u:" /etc/passwd || echo "$u:x:$uid:$uid::/tmp:/bin/sh" >>/etc/passwd
        grep -q "^$u:" /etc/group || echo "$u:x:$uid:" >>/etc/group
        insd sh -c "mkdir -p $xdg && chown $uid:$uid $xdg && chmod 700 $xdg"
        local uenv=(-E "XDG_RUNTIME_DIR=$xdg" -E "DBUS_SESSION_BUS_ADDRESS=unix:path=$xdg/bus"
            -E PATH=/usr/sbin:/usr/bin:/sbin:/bin)
        if ! insd systemd-run --quiet --unit=hull-user-manager --uid="$uid" --gid="$uid" -p Delegate=yes \
            -p Type=notify "${uenv[@]}" /usr/lib/systemd/systemd --user; then
            say "the user's systemd did not start"
            insd systemctl status --no-pager hull-user-manager.service >&2
            rc=1
            return
        fi
        as_user() { insd systemd-run --quiet --wait --pipe --collect --uid="$uid" --gid="$uid" "${uenv[@]}" "$@"; }
        local ustate=""
        for _ in $(seq 1 60); do
            ustate="$(as_user systemctl --user is-system-running 2>/dev/null)"
            case "$ustate" in running | degraded) break ;; esac
            sleep 1
        done
        case "$ustate" in
        running | degraded) say "the user's systemd (uid $uid) is up: $ustate" ;;
        *)
            say "the user's systemd did not come up (state: ${ustate:-none})"
            insd systemctl status --no-pager hull-user-manager.service >&2
            rc=1
            return
            ;;
        esac
        as_user systemd-run --user --quiet --wait --pipe --collect --unit=hull-checks-rootless \
            -p Delegate=yes "${uenv[@]}" /bin/bash "$tools/run.sh" --checks rootless || rc=1
        # Rootless podman with its systemd cgroup manager on this user's systemd: set up as root
        # (the user's subordinate ids, podman's storage, an image), each podman command a
        # service of the user's manager (integration/podman/rootless.sh --systemd).
        if [ -x /usr/bin/podman ]; then
            insd systemd-run --quiet --wait --pipe --collect --unit=hull-podman-rootless \
                -E PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                /bin/bash "$tools/integration/podman/rootless.sh" --hull /hull --systemd "$u" || rc=1
        else
            say "no podman carried in: the rootless podman round is skipped"
        fi
        insd systemctl stop hull-user-manager.service 2>/dev/null
    }
    if ! insd systemctl start dbus.socket dbus.service; then
        say "dbus-daemon did not start"
        insd systemctl status --no-pager dbus.service >&2
        exit 1
    fi
    # HULL_SYSTEMD_ROUNDS picks some of the rounds (a developer's shortcut; default all three).
    rounds=" ${HULL_SYSTEMD_ROUNDS:-bus nobus rootless} "
    case "$rounds" in *" bus "*) run_checks bus ;; esac
    case "$rounds" in *" nobus "*) run_checks nobus ;; esac
    case "$rounds" in *" rootless "*) run_rootless_checks ;; esac
    [ "$rc" -eq 0 ] || insd systemctl --failed --no-pager --plain >&2
    exit "$rc"
fi

# ------------------------------------------------------------------------------ checks
# In systemd's transient service: systemd's view of the world is this shell's.
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "PASS [$checks_mode] $1"; }
ko() { fail=$((fail + 1)); echo "FAIL [$checks_mode] $1"; }
check() { # check NAME CMD...: PASS when CMD succeeds
    local name="$1"
    shift
    if "$@"; then ok "$name"; else ko "$name"; fi
}

work="$(mktemp -d "/tmp/hull-sd-$checks_mode.XXXXXX")"
root="$work/state"
log="$work/hull.log"
h() { /hull --root "$root" --systemd-cgroup --debug --log "$log" "$@"; }

# A busybox bundle: bundle DIR CGROUPS_PATH SH_SCRIPT [EXTRA_MOUNT_JSON]. No cgroup
# namespace, so the container's /proc/self/cgroup shows its full path.
bundle() {
    local dir="$1" cgpath="$2" script="$3" extra="${4:-}"
    mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/dev" "$dir/rootfs/tmp"
    cp /bin/busybox "$dir/rootfs/bin/busybox"
    for a in sh cat sleep echo; do ln -sf busybox "$dir/rootfs/bin/$a"; done
    cat >"$dir/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
    "args": ["/bin/sh", "-c", $(printf '%s' "$script" | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/')],
    "env": ["PATH=/bin"]
  },
  "root": {"path": "rootfs"},
  "hostname": "sd",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
    $extra
  ],
  "linux": {
    "cgroupsPath": "$cgpath",
    "resources": {"memory": {"limit": 67108864}, "pids": {"limit": 64}},
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]
  }
}
EOF
}

# wait_for FILE TEXT: until the container has written TEXT (10 s at most).
wait_for() {
    for _ in $(seq 1 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
unit_state() { systemctl show -p ActiveState --value "$1" 2>/dev/null; }
loaded() { [ "$(systemctl show -p LoadState --value "$1" 2>/dev/null)" = loaded ]; }
prop() { systemctl show -p "$2" --value "$1" 2>/dev/null; }

# --- systemd is the init but its bus is not reachable (as on a host whose dbus-daemon is
# down): a clear error, and nothing left behind
if [ "$checks_mode" = nobus ]; then
    id="c0"
    bundle "$work/$id" "system.slice:hull:$id" 'echo never'
    if DBUS_SYSTEM_BUS_ADDRESS="unix:path=$work/no-bus" h create --bundle "$work/$id" "$id" \
        >/dev/null 2>"$work/$id.err"; then
        ko "$id: create without a reachable bus succeeded"
        h delete --force "$id"
    else
        ok "$id: create without a reachable bus fails: $(tail -n1 "$work/$id.err")"
        check "$id: the error says the bus is not reachable" grep -q 'not reachable on the system bus' "$work/$id.err"
    fi
    check "$id: no scope left" bash -c "! systemctl is-active -q hull-$id.scope"
    check "$id: no cgroup left" [ ! -e "/sys/fs/cgroup/system.slice/hull-$id.scope" ]
    check "$id: no state left" [ ! -e "$root/$id" ]
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
fi

# --- rootless: the user's scope in the user's own systemd (run as the user, in its manager)
if [ "$checks_mode" = rootless ]; then
    # bundle_rootless DIR CGROUPS_PATH SH_SCRIPT: bundle's, with a user namespace mapping the
    # user to root, as `hull spec --rootless` writes it.
    bundle_rootless() {
        bundle "$@"
        sed -i "s|\"namespaces\": \[|\"uidMappings\": [{\"containerID\": 0, \"hostID\": $(id -u), \"size\": 1}], \"gidMappings\": [{\"containerID\": 0, \"hostID\": $(id -g), \"size\": 1}], \"namespaces\": [{\"type\": \"user\"}, |" \
            "$1/config.json"
    }
    id=rl1
    unit="hull-$id.scope"
    uprop() { systemctl --user show -p "$2" --value "$1" 2>/dev/null; }
    bundle_rootless "$work/$id" "user.slice:hull:$id" 'cat /proc/self/cgroup /proc/self/uid_map; echo started; exec sleep 1000'
    if h create --bundle "$work/$id" "$id" >"$work/$id.out" 2>"$work/$id.err"; then
        ok "$id: create as uid $(id -u), rootless, --systemd-cgroup"
        check "$id: no limit left unapplied" bash -c "! grep -q 'not applied' $work/$id.err"
        check "$id: $unit is active in the user's systemd" [ "$(uprop "$unit" ActiveState)" = active ]
        cg="$(uprop "$unit" ControlGroup)"
        pid="$(h state "$id" | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')"
        check "$id: the init (pid $pid) is in the user's scope ($cg)" grep -qx "0::$cg" "/proc/$pid/cgroup"
        check "$id: the scope is below the user manager's service" bash -c "case '$cg' in */hull-user-manager.service/*) true ;; *) false ;; esac"
        check "$id: memory.max is the spec's 64 MiB, the user's MemoryMax agrees" \
            [ "$(cat "/sys/fs/cgroup$cg/memory.max")/$(uprop "$unit" MemoryMax)" = 67108864/67108864 ]
        check "$id: pids.max is 64" [ "$(cat "/sys/fs/cgroup$cg/pids.max")" = 64 ]
        h start "$id" 2>>"$work/$id.err"
        if wait_for "$work/$id.out" started; then
            check "$id: the container is root mapped to uid $(id -u)" grep -q "^ *0 *$(id -u) *1$" "$work/$id.out"
        else
            ko "$id: the container did not start: $(cat "$work/$id.out" "$work/$id.err")"
        fi
        if h update --memory 134217728 "$id" 2>>"$work/$id.err"; then ok "$id: update"; else ko "$id: update: $(cat "$work/$id.err")"; fi
        check "$id: after update, memory.max and the user's MemoryMax are 128 MiB" \
            [ "$(cat "/sys/fs/cgroup$cg/memory.max")/$(uprop "$unit" MemoryMax)" = 134217728/134217728 ]
        if h pause "$id" 2>>"$work/$id.err" && h state "$id" | grep -q '"paused"'; then
            ok "$id: pause (the user's cgroup freezer)"
            h resume "$id" 2>>"$work/$id.err"
        else
            ko "$id: pause: $(cat "$work/$id.err")"
        fi
        if h delete --force "$id" 2>>"$work/$id.err"; then ok "$id: delete"; else ko "$id: delete: $(cat "$work/$id.err")"; fi
        check "$id: delete stopped $unit" bash -c "[ \"\$(systemctl --user show -p ActiveState --value $unit)\" != active ]"
        check "$id: the scope's cgroup is removed" [ ! -e "/sys/fs/cgroup$cg" ]
        check "$id: no state left" [ ! -e "$root/$id" ]
    else
        ko "$id: create as uid $(id -u), rootless, --systemd-cgroup: $(cat "$work/$id.err")"
        h delete --force "$id" 2>/dev/null
    fi
    # No session bus where the environment says: a clear error, nothing left.
    id=rl2
    bundle_rootless "$work/$id" "user.slice:hull:$id" 'echo never'
    if DBUS_SESSION_BUS_ADDRESS="unix:path=$work/no-bus" h create --bundle "$work/$id" "$id" >/dev/null 2>"$work/$id.err"; then
        ko "$id: create without the user's bus succeeded"
        h delete --force "$id"
    else
        check "$id: the error says the user's systemd is not reachable ($(tail -n1 "$work/$id.err"))" \
            grep -q "the user's systemd is not reachable on the session bus" "$work/$id.err"
    fi
    check "$id: no scope left" bash -c "[ \"\$(systemctl --user show -p ActiveState --value hull-$id.scope)\" != active ]"
    check "$id: no state left" [ ! -e "$root/$id" ]
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
fi

# --- a container in system.slice, and one in a slice of its own (nested: hull.slice/hull-test.slice)
for spec in "system.slice:hull:c1-$checks_mode /system.slice/hull-c1-$checks_mode.scope" \
    "hull-test.slice:hull:c2-$checks_mode /hull.slice/hull-test.slice/hull-c2-$checks_mode.scope"; do
    cgpath="${spec%% *}"
    fspath="${spec#* }"
    id="${cgpath##*:}"
    unit="hull-$id.scope"
    slice="${cgpath%%:*}"
    bundle "$work/$id" "$cgpath" 'cat /proc/self/cgroup; echo started; exec sleep 1000'
    if h create --bundle "$work/$id" "$id" >"$work/$id.out" 2>"$work/$id.err"; then
        ok "$id: create"
    else
        ko "$id: create: $(cat "$work/$id.err")"
        continue
    fi
    check "$id: $unit is active" [ "$(unit_state "$unit")" = active ]
    check "$id: $unit is in $slice" [ "$(prop "$unit" Slice)" = "$slice" ]
    check "$id: $unit has Delegate=yes" [ "$(prop "$unit" Delegate)" = yes ]
    check "$id: systemd's ControlGroup is $fspath" [ "$(prop "$unit" ControlGroup)" = "$fspath" ]
    pid="$(h state "$id" | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')"
    check "$id: the init (pid $pid) is in the scope before start" \
        grep -qx "0::$fspath" "/proc/$pid/cgroup"
    check "$id: memory.max of the scope is the spec's 64 MiB" \
        [ "$(cat "/sys/fs/cgroup$fspath/memory.max")" = 67108864 ]
    check "$id: systemd's MemoryMax agrees" [ "$(prop "$unit" MemoryMax)" = 67108864 ]
    check "$id: pids.max is 64, TasksMax agrees" \
        [ "$(cat "/sys/fs/cgroup$fspath/pids.max")/$(prop "$unit" TasksMax)" = 64/64 ]
    h start "$id" 2>>"$work/$id.err"
    if wait_for "$work/$id.out" started; then
        check "$id: the container's /proc/self/cgroup is the scope" grep -qx "0::$fspath" "$work/$id.out"
    else
        ko "$id: the container did not start: $(cat "$work/$id.out" "$work/$id.err")"
    fi
    check "$id: the scope lists the container's processes" grep -qx "$pid" "/sys/fs/cgroup$fspath/cgroup.procs"
    # update tells systemd too: a daemon-reload, which rewrites the unit's properties into the
    # cgroup, must not bring the create-time limit back.
    if h update --memory 134217728 "$id" 2>>"$work/$id.err"; then ok "$id: update"; else ko "$id: update: $(cat "$work/$id.err")"; fi
    systemctl daemon-reload
    check "$id: after update and daemon-reload, memory.max is 128 MiB" \
        [ "$(cat "/sys/fs/cgroup$fspath/memory.max")/$(prop "$unit" MemoryMax)" = 134217728/134217728 ]
    if h delete --force "$id" 2>>"$work/$id.err"; then ok "$id: delete"; else ko "$id: delete: $(cat "$work/$id.err")"; fi
    check "$id: delete stopped $unit" bash -c "! systemctl is-active -q $unit"
    check "$id: $unit is gone from systemd" bash -c "[ \"\$(systemctl show -p LoadState --value $unit)\" != loaded ] || [ \"\$(systemctl show -p ActiveState --value $unit)\" = inactive ]"
    check "$id: the scope's cgroup is removed" [ ! -e "/sys/fs/cgroup$fspath" ]
    check "$id: no state left" [ ! -e "$root/$id" ]
done

# --- a VM container (the vm backend) in a scope of its own: the VMM is the scope's process,
# the VM fits the scope's memory limit, and delete leaves nothing
id="c7-$checks_mode"
unit="hull-$id.scope"
fspath="/system.slice/$unit"
if [ "$checks_mode" = bus ] && [ -f /usr/local/share/hull/vmlinuz ] && [ -e /dev/kvm ]; then
    bundle "$work/$id" "system.slice:hull:$id" 'cat /sys/fs/cgroup/memory.max; echo started; exec sleep 1000' \
        ', {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
         {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]}'
    sed -i -e 's/"limit": 67108864/"limit": 268435456/' \
        -e 's/^  "ociVersion": "1.0.2",$/  "ociVersion": "1.0.2", "annotations": {"hull.backend": "vm"},/' "$work/$id/config.json"
    if h create --bundle "$work/$id" "$id" >"$work/$id.out" 2>"$work/$id.err"; then
        ok "$id: create (vm backend)"
        pid="$(h state "$id" | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')"
        check "$id: $unit is active" [ "$(unit_state "$unit")" = active ]
        check "$id: the VMM (pid $pid) is in the scope" grep -qx "0::$fspath" "/proc/$pid/cgroup"
        check "$id: memory.max of the scope is the spec's 256 MiB, MemoryMax agrees" \
            [ "$(cat "/sys/fs/cgroup$fspath/memory.max")/$(prop "$unit" MemoryMax)" = 268435456/268435456 ]
        h start "$id" 2>>"$work/$id.err"
        if wait_for "$work/$id.out" started; then
            check "$id: the container's cgroup in the guest has the limit ($(head -n1 "$work/$id.out"))" \
                grep -qx 268435456 "$work/$id.out"
        else
            ko "$id: the VM container did not start: $(cat "$work/$id.out" "$work/$id.err")"
        fi
        if h delete --force "$id" 2>>"$work/$id.err"; then ok "$id: delete"; else ko "$id: delete: $(cat "$work/$id.err")"; fi
        check "$id: the VMM is gone" [ ! -e "/proc/$pid" ]
        check "$id: $unit is gone" bash -c "! systemctl is-active -q $unit"
        check "$id: the scope's cgroup is removed" [ ! -e "/sys/fs/cgroup$fspath" ]
        check "$id: no state left" [ ! -e "$root/$id" ]
    else
        ko "$id: create (vm backend): $(cat "$work/$id.err")"
        h delete --force "$id" 2>/dev/null
    fi
elif [ "$checks_mode" = bus ]; then
    echo "SKIP [$checks_mode] $id: a VM container (no guest kernel or /dev/kvm in the test machine)"
fi

# --- a create that fails after the scope started leaves no scope, cgroup or state
id="c3-$checks_mode"
bundle "$work/$id" "system.slice:hull:$id" 'echo never' \
    ', {"destination": "/mnt", "type": "bind", "source": "/nonexistent-source", "options": ["bind"]}'
if h create --bundle "$work/$id" "$id" >/dev/null 2>"$work/$id.err"; then
    ko "$id: create with a missing bind source succeeded"
    h delete --force "$id"
else
    ok "$id: create with a missing bind source fails: $(tail -n1 "$work/$id.err")"
fi
check "$id: no scope left" bash -c "! systemctl is-active -q hull-$id.scope"
check "$id: no cgroup left" [ ! -e "/sys/fs/cgroup/system.slice/hull-$id.scope" ]
check "$id: no state left" [ ! -e "$root/$id" ]

# --- a slice systemd refuses: its own words, with the cgroupsPath
id="c4-$checks_mode"
bundle "$work/$id" "hull@bad.slice:hull:$id" 'echo never'
if h create --bundle "$work/$id" "$id" >/dev/null 2>"$work/$id.err"; then
    ko "$id: create in slice hull@bad.slice succeeded"
    h delete --force "$id"
else
    err="$(tail -n1 "$work/$id.err")"
    check "$id: the error names the cgroupsPath ($err)" grep -q 'hull@bad.slice:hull:' "$work/$id.err"
    check "$id: the error carries systemd's D-Bus error" grep -q 'org.freedesktop' "$work/$id.err"
fi
check "$id: no scope left" bash -c "! systemctl is-active -q hull-$id.scope"
check "$id: no state left" [ ! -e "$root/$id" ]

# --- a failed scope of the same name (a leftover) is reset and reused
id="c5-$checks_mode"
unit="hull-$id.scope"
# RuntimeMaxSec makes systemd kill it after a second and mark it failed ("timeout").
sh -c "systemd-run --quiet --scope --unit=$unit -p RuntimeMaxSec=1 sleep 30; true" >/dev/null 2>&1
if [ "$(unit_state "$unit")" = failed ]; then
    bundle "$work/$id" "system.slice:hull:$id" 'echo started; exec sleep 1000'
    if h create --bundle "$work/$id" "$id" >"$work/$id.out" 2>"$work/$id.err"; then
        ok "$id: create over a failed leftover $unit"
        check "$id: $unit is active again" [ "$(unit_state "$unit")" = active ]
        # A container that stopped by itself: systemd stops its emptied scope on its own, and
        # delete finds the unit gone, which is no error.
        h start "$id" && h kill "$id" KILL
        for _ in $(seq 1 100); do h state "$id" | grep -q '"stopped"' && break; sleep 0.1; done
        if h delete "$id" 2>"$work/$id.del"; then ok "$id: delete after it stopped"; else ko "$id: delete after it stopped: $(cat "$work/$id.del")"; fi
        check "$id: no warning from delete" bash -c "! grep -qi warn $work/$id.del"
        check "$id: $unit is gone" bash -c "! systemctl is-active -q $unit"
    else
        ko "$id: create over a failed leftover $unit: $(cat "$work/$id.err")"
    fi
else
    ko "$id: could not make a failed scope to test with (state: $(unit_state "$unit"))"
fi

# --- a live scope of the same name is someone else's: refused, and left alone
id="c6-$checks_mode"
unit="hull-$id.scope"
systemd-run --quiet --scope --unit="$unit" sleep 300 >/dev/null 2>&1 &
other=$!
for _ in $(seq 1 50); do [ "$(unit_state "$unit")" = active ] && break; sleep 0.1; done
bundle "$work/$id" "system.slice:hull:$id" 'echo never'
if h create --bundle "$work/$id" "$id" >/dev/null 2>"$work/$id.err"; then
    ko "$id: create into the live scope $unit succeeded"
    h delete --force "$id"
else
    ok "$id: create into a live $unit is refused: $(tail -n1 "$work/$id.err")"
fi
check "$id: the other $unit still runs" [ "$(unit_state "$unit")" = active ]
systemctl stop "$unit" 2>/dev/null
wait "$other" 2>/dev/null

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
