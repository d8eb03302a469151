#!/usr/bin/env bash
# Rootless podman on hull (issue 17): an ordinary user's podman, as most podman users run it,
# with hull as its runtime. podman makes its own user namespace from the user's /etc/subuid and
# /etc/subgid ranges (newuidmap, newgidmap), gives each container slirp4netns networking, and
# has no cgroup to give on this host; it calls hull as that user, inside that namespace.
#
#   integration/podman/rootless.sh [--hull PATH] [--keep] [--testvm] [--backend native|vm] [--kernel PATH]
#                                  [--systemd USER]
#
# --testvm runs the same checks inside the test machine (integration/testvm: pure cgroup v2),
# with the host's podman, conmon, catatonit, slirp4netns, newuidmap/newgidmap (setuid) and
# setpriv carried in; the user is written into its /etc (it has no useradd). --backend vm (with
# --testvm: it needs an ordinary /dev/kvm) makes every container a VM container: the wrapper
# runs hull through a link named hull-vm, and the user is given /dev/kvm (group, 0660).
#
# Needs root to set up, then runs every podman command as the user hull-rootless (made here with
# useradd when missing, as tests/rootless.rs makes it, with ranges in /etc/subuid and
# /etc/subgid): private storage (vfs), config, runtime directory and home under one work
# directory. The runtime is a wrapper named hull that logs its uid and argv, then runs hull with
# no --root, so hull's own rootless default ($XDG_RUNTIME_DIR/hull) is what holds the state.
# Prints PASS/FAIL per check and `N passed, M failed`; exits non-zero on any failure.
#
# slirp4netns opens /dev/net/tun as the user: Debian's udev makes it 0666; where it is not
# (a machine without udev, like these), the script makes it so for the run and puts it back.
#
# --systemd USER: podman's systemd cgroup manager, the default on a systemd host, with a
# delegated cgroup v2 subtree. Run as root on a systemd host where USER's own `systemd --user`
# runs with its session bus at /run/user/UID/bus (integration/systemd/run.sh sets that up in
# the test machine and runs this). Every podman command then runs as a transient service of
# the user's systemd (`systemd-run --user`), as in a login session, so that podman, conmon
# and hull reach that manager and its subtree; podman passes hull --systemd-cgroup. One more
# check: --memory and --pids-limit reach the container's cgroup, a scope of the user's systemd.
# shellcheck disable=SC2016  # quoted $(...) is for the container's shell
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=integration/lib.sh
. "$repo/integration/lib.sh"
hull="$repo/target/x86_64-unknown-linux-gnu/release/hull"
keep=0
testvm=0
backend=native
kernel="$(default_kernel)"
systemd_user=""
while [ $# -gt 0 ]; do
    case "$1" in
    --hull) hull="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --testvm) testvm=1; shift ;;
    --backend) backend="$2"; shift 2 ;;
    --kernel) kernel="$2"; shift 2 ;;
    --systemd) systemd_user="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 0 ;;
    *) echo "rootless.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

[ "$(id -u)" -eq 0 ] || { echo "podman-rootless: needs root (to make the user)" >&2; exit 1; }
hull="$(readlink -f "$hull")"
[ -x "$hull" ] || { echo "podman-rootless: no hull binary at $hull (cargo build --release)" >&2; exit 1; }

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y "$@" >&2 || {
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y "$@" >&2
    }
}
case "$backend" in native | vm) ;; *) echo "podman-rootless: --backend: native or vm, not $backend" >&2; exit 2 ;; esac
if [ "$backend" = vm ]; then
    kernel="$(readlink -f "$kernel")"
    [ -f "$kernel" ] || { echo "podman-rootless: no guest kernel at $kernel (just kernel; --kernel, HULL_KERNEL)" >&2; exit 1; }
fi

need=()
command -v podman >/dev/null || need+=(podman)
command -v conmon >/dev/null || need+=(conmon)
command -v newuidmap >/dev/null || need+=(uidmap)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
if [ "${#need[@]}" -gt 0 ]; then
    echo "podman-rootless: installing ${need[*]} (apt)" >&2
    apt_install "${need[@]}" || { echo "podman-rootless: could not install ${need[*]}" >&2; exit 1; }
fi

if [ "$testvm" -eq 1 ]; then
    args=(--backend "$backend")
    [ "$keep" -eq 1 ] && args+=(--keep)
    adds=()
    [ "$backend" = vm ] && { adds+=(--add "$kernel"); args+=(--kernel "$kernel"); }
    [ -e /etc/containers/policy.json ] && adds+=(--add /etc/containers/policy.json)
    exec "$repo/integration/testvm/testvm.sh" --hull "$hull" --timeout "${HULL_TESTVM_TIMEOUT:-1800}" \
        --add "$(readlink -f "$(command -v bash)")":/bin/bash \
        --add "$(command -v podman)" --add "$(command -v conmon)" \
        --add "$(readlink -f /usr/libexec/podman/catatonit)":/usr/libexec/podman/catatonit \
        --add /usr/lib/podman/rootlessport \
        --add "$(command -v slirp4netns)" --add "$(command -v newuidmap)" --add "$(command -v newgidmap)" \
        --add /usr/bin/setpriv:/usr/local/bin/setpriv \
        --add /usr/share/containers/seccomp.json \
        --add "$here/rootless.sh" --add "$repo/integration/lib.sh" "${adds[@]}" \
        -- bash "$here/rootless.sh" --hull /hull "${args[@]}"
fi
[ "$backend" = vm ] && [ ! -e /dev/kvm ] && { echo "podman-rootless: --backend vm needs /dev/kvm (run it with --testvm)" >&2; exit 1; }

# ---------------------------------------------------------------- the user
user="${systemd_user:-hull-rootless}"
if [ -n "$systemd_user" ]; then
    id -u "$user" >/dev/null 2>&1 || { echo "podman-rootless: --systemd: no user $user" >&2; exit 1; }
    [ -S "/run/user/$(id -u "$user")/bus" ] ||
        { echo "podman-rootless: --systemd: no session bus at /run/user/$(id -u "$user")/bus (the user's systemd)" >&2; exit 1; }
fi
sub_start=400000
sub_count=65536
if ! id -u "$user" >/dev/null 2>&1; then
    if command -v useradd >/dev/null; then
        useradd --no-create-home --shell /bin/false "$user" || { echo "podman-rootless: useradd $user failed" >&2; exit 1; }
    else
        # The test machine: no useradd, an /etc of its own to write.
        echo "$user:x:1500:1500::/nonexistent:/bin/false" >>/etc/passwd
        echo "$user:x:1500:" >>/etc/group
    fi
fi
for f in /etc/subuid /etc/subgid; do
    grep -qx "$user:$sub_start:$sub_count" "$f" 2>/dev/null && continue
    { grep -v "^$user:" "$f" 2>/dev/null; echo "$user:$sub_start:$sub_count"; } >"$f.hull-new" && mv "$f.hull-new" "$f"
done
uid="$(id -u "$user")"
gid="$(id -g "$user")"

work="$(mktemp -d /tmp/hull-podman-rootless.XXXXXX)"
chmod 755 "$work"
xdg="$work/xdg"
cgroup_manager=cgroupfs
if [ -n "$systemd_user" ]; then
    xdg="/run/user/$uid"
    cgroup_manager=systemd
fi
log="$work/hull-argv.log"
tun_mode="$(stat -c %a /dev/net/tun 2>/dev/null || true)"

# The user's processes, zombies left out (busybox's ps and pkill know no -u).
user_pids() {
    for st in /proc/[0-9]*/status; do
        awk -v u="$uid" '$1 == "Uid:" && $2 == u { uid_ok = 1 } $1 == "State:" && $2 == "Z" { z = 1 }
            END { exit !(uid_ok && !z) }' "$st" 2>/dev/null || continue
        p="${st#/proc/}"
        echo "${p%/status}"
    done
}

# as_user CMD...: CMD as the user, with its own HOME and XDG_RUNTIME_DIR and the private
# podman configuration.
# util-linux's setpriv (in the test machine at /usr/local/bin: busybox's knows no --reuid).
setpriv_bin=/usr/local/bin/setpriv
[ -x "$setpriv_bin" ] || setpriv_bin="$(command -v setpriv)"
as_user() {
    if [ -n "$systemd_user" ]; then
        # A service of the user's systemd, started from a system service running as the user
        # (which finds the user's bus through its environment). What podman leaves running
        # (slirp4netns, rootlessport) stays when the command is done, as it stays in a login
        # session's scope: KillMode=process.
        systemd-run --quiet --wait --pipe --collect --uid="$uid" --gid="$gid" \
            -E XDG_RUNTIME_DIR="$xdg" -E DBUS_SESSION_BUS_ADDRESS="unix:path=$xdg/bus" \
            -E PATH=/usr/local/bin:/usr/bin:/bin \
            systemd-run --user --quiet --wait --pipe --collect -p KillMode=process \
            -E PATH=/usr/local/bin:/usr/bin:/bin -E HOME="$work/home" -E XDG_RUNTIME_DIR="$xdg" \
            -E DBUS_SESSION_BUS_ADDRESS="unix:path=$xdg/bus" \
            -E CONTAINERS_CONF="$work/containers.conf" -E CONTAINERS_STORAGE_CONF="$work/storage.conf" "$@"
        return
    fi
    "$setpriv_bin" --reuid "$uid" --regid "$gid" --init-groups \
        env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$work/home" XDG_RUNTIME_DIR="$xdg" \
        CONTAINERS_CONF="$work/containers.conf" CONTAINERS_STORAGE_CONF="$work/storage.conf" "$@"
}
pm() { as_user timeout -k 10 120 podman --runtime "$work/bin/hull" "$@"; }

cleanup() {
    local rc=$?
    if [ "$keep" -eq 1 ]; then
        echo "podman-rootless: kept $work" >&2
        return "$rc"
    fi
    pm rm -af -t 0 >/dev/null 2>&1 || true
    # The user's podman keeps a pause process holding its user namespace. (Under --systemd it
    # lives in the user's manager, which is the caller's to stop.)
    [ -n "$systemd_user" ] || for p in $(user_pids); do kill -KILL "$p" 2>/dev/null; done
    [ -n "$tun_mode" ] && chmod "$tun_mode" /dev/net/tun 2>/dev/null
    awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$work" 2>/dev/null || rm -rf "$work"
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$tun_mode" = 666 ] || chmod 666 /dev/net/tun

mkdir -p "$work"/{home,bin,graph,runroot,tmp}
[ -n "$systemd_user" ] || { mkdir -p "$xdg" && chmod 700 "$xdg"; }
# hull, where the user may run it (the checkout may sit under a home only root may enter). On
# the vm backend through a link named hull-vm, which makes create choose it, with the kernel.
cp "$hull" "$work/bin/hull.real"
real="$work/bin/hull.real"
env_line=""
if [ "$backend" = vm ]; then
    ln -s hull.real "$work/bin/hull-vm"
    real="$work/bin/hull-vm"
    env_line="export HULL_KERNEL='$kernel'"
    # The user needs /dev/kvm, as a member of the kvm group would have it.
    chgrp "$gid" /dev/kvm && chmod 660 /dev/kvm
fi
cat >"$work/bin/hull" <<EOF
#!/bin/sh
printf 'uid=%s %s\n' "\$(id -u)" "\$*" >>"$log"
$env_line
exec "$real" "\$@"
EOF
chmod 755 "$work/bin/hull" "$work/bin/hull.real"
: >"$log"
chmod 666 "$log"

cat >"$work/containers.conf" <<EOF
[containers]
log_driver = "k8s-file"

[engine]
cgroup_manager = "$cgroup_manager"
events_logger = "file"
events_logfile_path = "$work/tmp/events.log"
tmp_dir = "$work/tmp"
runtime = "hull"
runtime_supports_json = ["crun", "runc", "hull"]

[engine.runtimes]
hull = ["$work/bin/hull"]

[network]
default_rootless_network_cmd = "slirp4netns"
EOF
cat >"$work/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$work/graph"
runroot = "$work/runroot"
EOF
chown -R "$uid:$gid" "$work/home" "$work/graph" "$work/runroot" "$work/tmp"
[ -n "$systemd_user" ] || chown "$uid:$gid" "$xdg"

# The image: a busybox rootfs imported by the user (its files then belong to the container's
# root, which is the user).
busybox_rootfs "$work/rootfs" || { echo "podman-rootless: cannot make a busybox rootfs" >&2; exit 1; }
tar -C "$work/rootfs" -cf "$work/rootfs.tar" . && chmod 644 "$work/rootfs.tar"
image=localhost/hull-rootless-busybox
pm import "$work/rootfs.tar" "$image" >"$work/import.log" 2>&1 || {
    echo "podman-rootless: podman import failed:" >&2
    cat "$work/import.log" >&2
    exit 1
}

# ---------------------------------------------------------------- checks
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS  $1"; }
fail() {
    failed=$((failed + 1)); echo "FAIL  $1"
    shift
    [ $# -gt 0 ] && printf '%s\n' "$@" | tail -n 15 | sed 's/^/      /'
    return 0
}
run_opts=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
prun() { pm run "${run_opts[@]}" "$@" </dev/null; }

# 1. the container's root is the user; its other ids are the user's subordinate range; hull ran
#    as the user (not as root), inside podman's user namespace. Seen on the host: what the
#    container's root and its uid 1 write to a volume belongs to the user and to the first
#    subordinate id.
vol="$work/vol"
mkdir -p "$vol" && chown "$uid:$gid" "$vol"
out="$(prun --rm --network none -v "$vol:/vol" "$image" \
    sh -c 'id -u; touch /vol/by-root /vol/by-1 && chown 1:1 /vol/by-1; cat /proc/self/uid_map' 2>&1)"
map="$(printf '%s\n' "$out" | sed -n '2,$p' | awk '{ print $1, $2, $3 }' | tr '\n' ';')"
owners="$(stat -c %u:%g "$vol/by-root" "$vol/by-1" 2>&1 | tr '\n' ' ')"
# podman's namespace maps its root to the user and 1.. to the range. Natively the container's
# map is the namespace hull was run in, as the kernel shows it from inside; a VM container's
# guest has a kernel, and a map, of its own.
map_ok=1
[ "$backend" = native ] && [ "$map" != "0 $uid 1;1 $sub_start $sub_count;" ] && map_ok=0
if [ "$(printf '%s\n' "$out" | head -n1)" = 0 ] && [ "$map_ok" = 1 ] &&
    [ "$owners" = "$uid:$gid $sub_start:$sub_start " ] &&
    grep -q "^uid=0 .*create" "$log" && ! grep -q "^uid=[1-9]" "$log"; then
    pass "run: container root is uid $uid, ids 1.. are $sub_start.. (a volume's files); hull ran in podman's user namespace"
else
    fail "run: ids" "$out" "map: $map" "owners on the host (want $uid:$gid $sub_start:$sub_start): $owners" "$(head -n 3 "$log")"
fi

# 2. the exit code
prun --rm --network none "$image" sh -c 'exit 7' >/dev/null 2>&1
s=$?
[ "$s" = 7 ] && pass "exit code 7" || fail "exit code 7" "status $s"

# 3. slirp4netns networking: the address, route and DNS slirp4netns gives.
out="$(prun --rm "$image" sh -c 'ip -4 addr show tap0; ip route; cat /etc/resolv.conf' 2>&1)"
if printf '%s\n' "$out" | grep -q 'inet 10.0.2.100/24' && printf '%s\n' "$out" | grep -q '^default via 10.0.2.2' &&
    printf '%s\n' "$out" | grep -q '^nameserver 10.0.2.3'; then
    pass "slirp4netns: 10.0.2.100/24, default via 10.0.2.2, DNS 10.0.2.3"
else
    fail "slirp4netns network" "$out"
fi

# 4. -p: a port published through slirp4netns's forwarder, served to the host.
# The body of http://127.0.0.1:PORT/, fetched by bash itself: the test machine's wget is
# static busybox's, which crashes resolving the address (glibc's NSS in a static binary).
http_get() {
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 &&
        sed "1,/^\r\{0,1\}$/d" <&3' http_get "$1"
}
# A VM container's port goes through slirp4netns's own forwarder: podman's default one,
# rootlessport, connects to the container's address from inside the network namespace, where
# that address is the namespace's own, not the guest's (docs/vm.md, "Rootless").
web_net=()
[ "$backend" = vm ] && web_net=(--network slirp4netns:port_handler=slirp4netns)
if pm run -d --name web "${web_net[@]}" -p 127.0.0.1:18081:8080 "${run_opts[@]}" "$image" \
    sh -c 'mkdir /www && echo rootless-served >/www/index.html && exec httpd -f -p 8080 -h /www' >"$work/web.run" 2>&1 </dev/null; then
    got=""
    # Up to 30 s: in the emulated test machine the port forwarder takes a while.
    for _ in $(seq 1 100); do
        got="$(http_get 18081 2>/dev/null)" && [ -n "$got" ] && break
        sleep 0.3
    done
    [ "$got" = rootless-served ] && pass "-p 18081:8080 served to the host" ||
        fail "-p" "got: $got" "$(http_get 18081 2>&1)" "$(netstat -ltn 2>&1 | grep 18081)" "$(pm logs web 2>&1)"
else
    fail "-p: run -d" "$(cat "$work/web.run")" "$(pm logs web 2>&1)"
fi

# 5. exec into the running container: output, exit code, the same namespaces.
out="$(pm exec web sh -c 'id -u; wget -qO- http://127.0.0.1:8080/' 2>&1)"
pm exec web sh -c 'exit 3' >/dev/null 2>&1
s=$?
if [ "$out" = "$(printf '0\nrootless-served')" ] && [ "$s" = 3 ] && grep -q "exec " "$log"; then
    pass "exec: output, exit code 3, the container's network"
else
    fail "exec" "$out" "status $s"
fi

# 6. stop: httpd as pid 1 has no TERM handler (ignored in its namespace), so stop -t 2 kills it.
pm stop -t 2 web >/dev/null 2>&1
st="$(pm inspect -f '{{.State.Status}} {{.State.ExitCode}}' web 2>&1)"
[ "$st" = "exited 137" ] && pass "stop -t 2: KILL after the grace (137)" || fail "stop" "$st"

# 7. stop with a TERM handler: the program's own exit status.
pm run -d --name trap "${run_opts[@]}" --network none "$image" \
    sh -c 'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 0.1; done' >/dev/null 2>&1 </dev/null
for _ in $(seq 1 50); do pm logs trap 2>/dev/null | grep -q ready && break; sleep 0.1; done
pm stop -t 10 trap >/dev/null 2>&1
st="$(pm inspect -f '{{.State.Status}} {{.State.ExitCode}}' trap 2>&1)"
if [ "$st" = "exited 0" ] && pm logs trap 2>&1 | grep -q got-term; then
    pass "stop: TERM reaches the handler (exit 0, log got-term)"
else
    fail "stop with a handler" "$st" "$(pm logs trap 2>&1)"
fi

# 9. (--systemd) limits through the user's systemd: podman asks for a scope of the user's
#    manager (hull --systemd-cgroup, cgroupsPath user.slice:libpod:ID); the limits are set in
#    it, seen from inside (the container's cgroup namespace) and by the user's systemd.
if [ -n "$systemd_user" ]; then
    cid="$(pm run -d --name lim --memory 64m --pids-limit 64 --network none "${run_opts[@]}" "$image" \
        sh -c 'echo ready; exec sleep 1000' 2>"$work/lim.err" </dev/null)"
    for _ in $(seq 1 50); do pm logs lim 2>/dev/null | grep -q ready && break; sleep 0.2; done
    inside="$(pm exec lim sh -c 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max' 2>&1 | tr '\n' ' ')"
    pid="$(pm inspect -f '{{.State.Pid}}' lim 2>/dev/null)"
    cg="$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null)"
    unit="${cg##*/}"
    host="$(cat "/sys/fs/cgroup$cg/memory.max" "/sys/fs/cgroup$cg/pids.max" 2>&1 | tr '\n' ' ')"
    umax="$(as_user systemctl --user show -p MemoryMax --value "$unit" 2>&1)"
    if [ "$inside" = "67108864 64 " ] && [ "$host" = "67108864 64 " ] && [ "$unit" = "libpod-$cid.scope" ] &&
        [ "$umax" = 67108864 ] && grep -q -- "--systemd-cgroup.* create" "$log" &&
        case "$cg" in *"/user@"* | */hull-user-manager.service/*) true ;; *) false ;; esac; then
        pass "--memory 64m --pids-limit 64: in the user's systemd scope $unit (MemoryMax $umax), seen inside"
    else
        fail "limits through the user's systemd" "inside: $inside" "host ($cg): $host" "unit $unit, MemoryMax: $umax" \
            "$(cat "$work/lim.err")" "$(grep create "$log" | tail -n 1)"
    fi
    pm rm -f -t 0 lim >/dev/null 2>&1
    sleep 1
    if [ -n "$cg" ] && [ ! -e "/sys/fs/cgroup$cg" ] &&
        [ "$(as_user systemctl --user show -p ActiveState --value "$unit" 2>&1)" != active ]; then
        pass "rm: the scope $unit and its cgroup are gone"
    else
        fail "rm: the scope" "cgroup $cg: $(ls -d "/sys/fs/cgroup$cg" 2>&1)" \
            "$(as_user systemctl --user show -p ActiveState --value "$unit" 2>&1)"
    fi
fi

# 8. rm, and nothing left: no container, no hull state, no container process of the user's
#    (podman's own pause process, which holds its user namespace, stays until cleanup).
pm rm -f web trap >/dev/null 2>&1
left="$(pm ps -aq 2>&1)"
# A rootless runtime's default root: $XDG_RUNTIME_DIR/hull (runc's and crun's: .../runc, .../crun).
state_dir="$xdg/$(basename "$hull")"
state="$(ls -A "$state_dir" 2>/dev/null)"
# Zombies do not count: podman's helpers (conmon, slirp4netns) exit before their parent reaps.
user_procs() {
    for p in $(user_pids); do printf '%s %s\n' "$p" "$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"; done 2>/dev/null |
        grep -v -e 'catatonit' -e 'podman pause' -e '^[0-9]* $' -e 'systemd --user' -e 'dbus-daemon --session' || true
}
# Up to 10 s for processes on their way out: in the test machine, a process with the cmdline of
# the `timeout` that ran `podman ps -aq` just above, reparented to init, was seen sleeping there
# after the command returned, and gone 2 s later. A container's process does not leave by itself.
for _ in $(seq 20); do
    procs="$(user_procs)"
    [ -n "$procs" ] || break
    sleep 0.5
done
if [ -z "$left" ] && [ -z "$state" ] && [ -d "$state_dir" ] && [ -z "$procs" ]; then
    pass "rm: no container, \$XDG_RUNTIME_DIR/$(basename "$hull") empty, no process left"
else
    fail "leftovers" "containers: $left" "hull state: $state" "processes: $procs"
fi

echo "$passed passed, $failed failed (rootless podman, uid $uid, backend $backend, cgroup manager $cgroup_manager)"
[ "$failed" -eq 0 ]
