#!/bin/sh
# shellcheck disable=SC2317 # the run functions are called through again()
# Benchmark of hull's VMM (`hull vm-run`) against qemu's microvm machine, booting the same guest
# kernel and the same initramfs (hull's, hull as /init in agent mode) with the same memory and
# vcpus: time from process start and from VMM start to "agent ready" and to the command's exit,
# and the VMM's RSS beyond guest memory; then the container path: native `run` against the vm
# backend's, a VM container's `create`, `start` and `exec` against a native one's, and a VM
# container's VMM RSS beyond guest memory. Needs an ordinary /dev/kvm, so it runs inside the test
# machine (integration/testvm), not on the project's PVM hosts. POSIX sh: the test machine has
# busybox, not bash. See integration/bench/README.md, "just bench-vm".
#
# From the repository, on the host (builds nothing; run `just build` and `just kernel` first):
#
#   integration/bench/vm-bench.sh --testvm [--hull PATH] [--kernel PATH] [OPTIONS]
#
# which installs qemu-system-x86 and socat when missing and carries into the test machine the
# kernel, this script, qemu and its firmware (/usr/share/qemu, /usr/share/seabios), qemu's
# virtiofsd, socat, and the test machine kernel's vhost-vsock modules.
#
# Inside (or on any machine with a usable /dev/kvm, qemu, virtiofsd and socat):
#
#   vm-bench.sh [--hull PATH] [--kernel PATH] [-n N] [--rss-runs N] [--mem MIB] [--warmup N]
#               [--no-qemu] [--keep]
#
# -n N: timed runs of each VMM (default 10), alternating hull and qemu, the order flipping each
# round; --rss-runs N: RSS samples of each (default 5); --warmup N: untimed runs of each first
# (default 1); --mem: guest memory in MiB (default 256); --no-qemu: hull alone.
# Prints a table of medians (min-max) and the issue's targets. Exits 0 whether or not the targets
# are met, 1 when a run fails, 2 on bad usage.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
# In the test machine this script is /bench/vm-bench.sh and lib.sh is carried to /lib.sh.
# shellcheck source=integration/lib.sh
. "$here/../lib.sh"
hull=""
kernel="$(default_kernel)"
runs=10
rss_runs=5
warmup=1
mem=256
with_qemu=1
keep=0
testvm=0
pass_args=""

die() { printf 'vm-bench: error: %s\n' "$*" >&2; exit 2; }
say() { printf 'vm-bench: %s\n' "$*" >&2; }
posint() { case "$2" in ''|*[!0-9]*) die "$1 needs a number, got '$2'" ;; esac; }

while [ $# -gt 0 ]; do
    case "$1" in
        --hull) [ $# -ge 2 ] || die "--hull needs a path"; hull="$2"; shift 2 ;;
        --kernel) [ $# -ge 2 ] || die "--kernel needs a path"; kernel="$2"; shift 2 ;;
        -n) [ $# -ge 2 ] || die "-n needs a number"; posint -n "$2"; runs="$2"
            pass_args="$pass_args -n $2"; shift 2 ;;
        --rss-runs) [ $# -ge 2 ] || die "--rss-runs needs a number"; posint --rss-runs "$2"
            rss_runs="$2"; pass_args="$pass_args --rss-runs $2"; shift 2 ;;
        --warmup) [ $# -ge 2 ] || die "--warmup needs a number"; posint --warmup "$2"
            warmup="$2"; pass_args="$pass_args --warmup $2"; shift 2 ;;
        --mem) [ $# -ge 2 ] || die "--mem needs a number"; posint --mem "$2"; mem="$2"
            pass_args="$pass_args --mem $2"; shift 2 ;;
        --no-qemu) with_qemu=0; pass_args="$pass_args --no-qemu"; shift ;;
        --keep) keep=1; pass_args="$pass_args --keep"; shift ;;
        --testvm) testvm=1; shift ;;
        -h|--help) sed -n '3,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[ "$runs" -ge 1 ] || die "-n must be at least 1"

# ---------------------------------------------------------------------------------------------
# Host side: carry everything into the test machine and run this script there.

# The test machine's kernel modules for vhost-vsock (qemu's vsock device needs /dev/vhost-vsock),
# copied (decompressed) from testvm.sh's cache into DIR/<kernel release>/ with a load-order
# file, for every cached kernel: the guest picks its own by `uname -r`.
stage_vhost_modules() { # REPO DIR
    cache="${HULL_TESTVM_CACHE:-}"
    if [ -z "$cache" ]; then
        if [ -n "${XDG_CACHE_HOME:-}" ]; then cache="$XDG_CACHE_HOME/hull-testvm"
        elif [ "$(id -u)" = 0 ]; then cache=/var/cache/hull-testvm
        else cache="$HOME/.cache/hull-testvm"; fi
    fi
    if ! ls "$cache"/kernel/*/lib/modules/*/kernel/drivers/vhost/vhost_vsock.ko* >/dev/null 2>&1; then
        say "no test machine kernel cached yet: preparing one (testvm.sh --no-hull -- true)"
        "$1/integration/testvm/testvm.sh" --no-hull -- true >/dev/null || die "testvm.sh failed"
    fi
    found=0
    for kdir in "$cache"/kernel/*/lib/modules/*/; do
        [ -d "$kdir/kernel/drivers/vhost" ] || continue
        kver="$(basename "$kdir")"
        mkdir -p "$2/$kver"
        : >"$2/$kver/load-order"
        for m in vsock vmw_vsock_virtio_transport_common vhost_iotlb vhost vhost_vsock; do
            f="$(find "$kdir/kernel" -name "$m.ko*" | head -n1)"
            [ -n "$f" ] || die "module $m is not in $kdir"
            case "$f" in
                *.ko) cp "$f" "$2/$kver/$m.ko" ;;
                *.ko.xz) xz -dc "$f" >"$2/$kver/$m.ko" ;;
                *.ko.zst) zstd -qdc "$f" >"$2/$kver/$m.ko" ;;
                *.ko.gz) gzip -dc "$f" >"$2/$kver/$m.ko" ;;
                *) die "unknown module format: $f" ;;
            esac
            echo "$m" >>"$2/$kver/load-order"
        done
        found=1
    done
    [ "$found" = 1 ] || die "no vhost modules in the test machine's kernel under $cache/kernel"
}

if [ "$testvm" = 1 ]; then
    repo="$(cd "$here/../.." && pwd)"
    [ -n "$hull" ] || hull="$repo/target/x86_64-unknown-linux-gnu/release/hull"
    [ -x "$hull" ] || die "no hull at $hull (just build)"
    [ -f "$kernel" ] || die "no guest kernel at $kernel (just kernel)"
    if [ "$with_qemu" = 1 ]; then
        missing=""
        command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
        command -v socat >/dev/null 2>&1 || missing="$missing socat"
        if [ -n "$missing" ]; then
            [ "$(id -u)" = 0 ] || die "missing packages:$missing (apt-get install them, or run as root)"
            say "installing$missing"
            # shellcheck disable=SC2086 # a list of package names
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null \
                || die "apt-get install$missing failed"
        fi
    fi
    host_tmp="$(mktemp -d "${TMPDIR:-/tmp}/hull-vm-bench.XXXXXX")" || die "mktemp"
    trap 'rm -rf "$host_tmp"' EXIT INT TERM
    # A bound on the whole run, ~3x what a quiet host needs: now and then the whole test machine
    # stops making progress (see README.md), and then only testvm's timeout ends the run.
    set -- --hull "$hull" --timeout $((180 + 100 * runs + 30 * rss_runs)) --add "$kernel" \
        --add "$here/vm-bench.sh:/bench/vm-bench.sh" --add "$here/../lib.sh:/lib.sh"
    if [ "$with_qemu" = 1 ]; then
        qemu="$(command -v qemu-system-x86_64)"
        socat="$(command -v socat)"
        virtiofsd=""
        for v in "${HULL_VIRTIOFSD:-}" /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd "$HOME/.cargo/bin/virtiofsd"; do
            if [ -n "$v" ] && [ -x "$v" ]; then virtiofsd="$v"; break; fi
        done
        # QEMU 7.2's qemu-system-common had a virtiofsd; QEMU 8 and later (the test machine's
        # QEMU 10 from bookworm-backports) do not, and Debian 12 has no virtiofsd package.
        [ -n "$virtiofsd" ] || die "no virtiofsd: QEMU 8 and later do not ship one; \`cargo install virtiofsd\` (needs libseccomp-dev and libcap-ng-dev) or HULL_VIRTIOFSD=PATH, or --no-qemu for hull alone"
        stage_vhost_modules "$repo" "$host_tmp/modules"
        set -- "$@" --add "$qemu:/usr/bin/qemu-system-x86_64" --add /usr/share/qemu \
            --add /usr/share/seabios --add "$virtiofsd:/usr/libexec/virtiofsd" \
            --add "$socat:/usr/bin/socat" --add "$host_tmp/modules:/bench/modules"
    fi
    rc=0
    # shellcheck disable=SC2086 # pass_args is a list of plain words
    "$repo/integration/testvm/testvm.sh" "$@" -- sh /bench/vm-bench.sh --kernel "$kernel" \
        --hull /hull $pass_args || rc=$?
    exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# Inside: the benchmark itself.

hull="$(vm_script_prerequisites "$hull" "$kernel")" || exit 2
if [ "$with_qemu" = 1 ]; then
    qemu="$(command -v qemu-system-x86_64 2>/dev/null || true)"
    [ -n "$qemu" ] || die "qemu-system-x86_64 not found (--no-qemu: hull alone)"
    socat="$(command -v socat 2>/dev/null || true)"
    [ -n "$socat" ] || die "socat not found"
    virtiofsd=""
    for v in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd; do
        if [ -x "$v" ]; then virtiofsd="$v"; break; fi
    done
    [ -n "$virtiofsd" ] || die "virtiofsd not found"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/hull-vm-bench.XXXXXX")" || die "mktemp"
bg_pids=""
cleanup() {
    for p in $bg_pids; do kill -9 "$p" 2>/dev/null; done
    if [ "$keep" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_us
case "$_now" in ''|*[!0-9]*) die "cannot read the clock with adjtimex" ;; esac

rootfs="$work/rootfs"
busybox_rootfs "$rootfs" || die "cannot make a busybox rootfs"

# watchdog PID SECONDS: kills PID after SECONDS, says so, and when PID does not go away, what
# its threads are doing (a vcpu thread stuck in the kernel under the emulated SVM shows here);
# its pid in $watchdog. It watches PID and ends by itself once PID is reaped: it is never
# signalled (a signal sent while the subshell was still starting, with the script's traps not
# yet reset, could be lost, and the wait for it then took the whole limit).
watchdog() {
    rm -f "$work/killed"
    (
        end=$(($(date +%s) + $2))
        while kill -0 "$1" 2>/dev/null; do
            if [ "$(date +%s)" -ge "$end" ]; then
                say "$(cat "/proc/$1/comm" 2>/dev/null) (pid $1) ran past $2 s: killing it"
                : >"$work/killed"
                kill -9 "$1" 2>/dev/null
                sleep 5
                [ -d "/proc/$1" ] || exit 0
                say "pid $1 is still there after SIGKILL; its threads (state, kernel stack):"
                for t in /proc/"$1"/task/*; do
                    say "  ${t##*/} $(cut -d' ' -f2,3 "$t/stat" 2>/dev/null) $(tr '\n' ' ' <"$t/stack" 2>/dev/null)"
                done
                exit 0
            fi
            sleep 0.2
        done
    ) </dev/null >/dev/null &
    watchdog=$!
}
# After PID was waited for: the watchdog sees it gone within 0.2 s.
unwatch() { wait "$watchdog" 2>/dev/null; }

# Seconds for one VM run: runs take 2 to 10 s in the test machine. Now and then a guest hangs
# there (more often on a busy host: TCG-emulated nesting): the run is killed, counted and
# done again, up to 3 times in a row.
limit=60
running_flag=/tmp/.vm-bench-running
rss_cmd="touch $running_flag; sleep 3"

# The RSS of PID beyond guest memory: every mapping's Rss in /proc/PID/smaps except the ones of
# exactly the guest's size (its RAM: anonymous for hull and qemu's default backend, the memfd
# here, which virtiofsd maps too). Prints "OVERHEAD_KIB TOTAL_KIB GUEST_MAPPINGS".
rss_beyond_guest() { # PID [COPY]
    [ -z "${2:-}" ] || cat "/proc/$1/smaps" >"$2" 2>/dev/null
    awk -v guest_kib=$((mem * 1024)) '
        /^[0-9a-f]+-[0-9a-f]+ / { size = -1; next }
        /^Size:/ { size = $2; next }
        /^Rss:/ { total += $2; if (size == guest_kib) n++; else over += $2; next }
        END { printf "%d %d %d\n", over, total, n }
    ' "/proc/$1/smaps"
}

# --- hull ------------------------------------------------------------------------------------

hull_vm() { # ARGS... -- CMD...: starts hull vm-run in the background, pid in $vm_pid
    rm -f "$work/hull.log"
    "$hull" --debug --log "$work/hull.log" --log-format json vm-run --kernel "$kernel" \
        --mem "$mem" --cpus 1 --share "$rootfs" --boot-timeout 200 "$@" \
        </dev/null >"$work/hull.out" 2>"$work/hull.err" &
    vm_pid=$!
}

# awk functions: the time of day (UTC) in microseconds of HH:MM:SS.FRACTION, and ms between
# that and t0_us (a CLOCK_REALTIME in microseconds).
awk_clock='
    # Decimal, also with leading zeros (busybox awk reads "0123" as octal).
    function dec(x) { sub(/^0+/, "", x); return x + 0 }
    function tod_us(hms,   p, s, frac) {
        split(hms, p, ":"); s = p[3]; frac = s; sub(/^[0-9]*\./, "", frac); sub(/\..*/, "", s)
        # socat prints its data dumps as SS.000UUUUUU (microseconds, 9 digits); hull logs
        # nanoseconds (9 digits); socat its log lines in microseconds (6 digits).
        if (length(frac) == 9 && dump) frac = dec(frac)
        else frac = dec(substr(frac "000000", 1, 6))
        return ((dec(p[1]) * 60 + dec(p[2])) * 60 + dec(s)) * 1000000 + frac
    }
    function since(hms,   d) {
        d = tod_us(hms) - t0_us % 86400000000
        if (d < -43200000000) d += 86400000000
        return d / 1000
    }
'

# One timed run; appends "start_agent vmm_agent start_done vmm_done wall initramfs built
# kernel_entry exec teardown" (ms) to hull.times. "start" is the process start (just before
# the fork), as for qemu: hull's timeline is relative, so it is placed on the clock by the
# "initramfs:" line of its JSON log (nanosecond timestamps), logged right at the timeline's
# "initramfs made". exec: process start to the timeline's "vm-run start" (in main);
# teardown: "VM exited" to the process's exit.
run_hull() { # [EXTRA VM-RUN ARGS...]
    now_us; t0=$_now
    hull_vm "$@" -- /bin/true
    watchdog "$vm_pid" "$limit"
    rc=0
    wait "$vm_pid" || rc=$?
    now_us; t1=$_now
    unwatch
    if [ "$rc" != 0 ] && [ -e "$work/killed" ]; then
        hung_hull=$((hung_hull + 1))
        return 1
    fi
    if [ "$rc" != 0 ]; then
        say "hull vm-run failed (status $rc):"
        sed 's/^/  | /' "$work/hull.err" | tail -n 30 >&2
        exit 1
    fi
    logged="$(sed -n '/"msg":"initramfs: /s/.*"time":"[0-9-]*T\([0-9:.]*\)Z".*/\1/p' "$work/hull.log" | head -n1)"
    awk -v t0_us="$t0" -v wall_us=$((t1 - t0)) -v logged="$logged" "$awk_clock"'
        /^vm-run timeline/ { on = 1; next }
        on && NF >= 2 {
            t = $1 + 0; $1 = ""; what = substr($0, 2)
            if (what ~ /^vm-run start/) start = t
            else if (what ~ /^initramfs made/) { initrd = t; seen_initrd = 1 }
            else if (what ~ /^VMM start/) vmm = t
            else if (what ~ /^VM built/) built = t
            else if (what ~ /^kernel entry/) entry = t
            else if (what ~ /^agent ready/) { agent = t; seen_agent = 1 }
            else if (what ~ /^command done/) { done_ = t; seen_done = 1 }
            else if (what ~ /^VM exited/) exited = t
        }
        END {
            if (!seen_agent || !seen_done || !seen_initrd || logged == "") {
                print "no timeline, or no initramfs line in the log" > "/dev/stderr"; exit 1
            }
            # Timeline mark T (ms since VMM start) on the process clock: ms since the fork.
            off = since(logged) - initrd
            wall = wall_us / 1000
            printf "%.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f\n", agent + off, agent - vmm, \
                done_ + off, done_ - vmm, wall, initrd - start, built - vmm, entry - vmm, \
                start + off, wall - (exited + off)
        }
    ' "$work/hull.err" >>"$work/hull.times" || { sed 's/^/  | /' "$work/hull.err" >&2; exit 1; }
}

rss_hull() {
    rm -f "$rootfs$running_flag"
    hull_vm -- /bin/sh -c "$rss_cmd"
    watchdog "$vm_pid" "$limit"
    if wait_for_file "$rootfs$running_flag" "$vm_pid"; then
        rss_beyond_guest "$vm_pid" "$work/hull.smaps" >>"$work/hull.rss"
    fi
    rc=0
    wait "$vm_pid" || rc=$?
    unwatch
    if [ "$rc" != 0 ] && [ -e "$work/killed" ]; then
        hung_hull=$((hung_hull + 1))
        return 1
    fi
    [ "$rc" = 0 ] || { say "hull vm-run failed (status $rc)"; sed 's/^/  | /' "$work/hull.err" >&2; exit 1; }
}

# --- qemu ------------------------------------------------------------------------------------

# le32 N: N as 4 little-endian bytes (octal escapes for printf's format).
le32() {
    printf '\\%03o\\%03o\\%03o\\%03o' $(($1 % 256)) $(($1 / 256 % 256)) $(($1 / 65536 % 256)) \
        $(($1 / 16777216 % 256))
}

# frame_run FILE CMD...: the agent protocol's Run frame (kind 2, JSON {args, env, cwd}) for
# CMD, with hull vm-run's environment, then StdinEof (kind 4), as hull sends them.
frame_run() {
    _f="$1"; shift
    _args=""
    for _a in "$@"; do
        _a="$(printf '%s' "$_a" | sed 's/\\/\\\\/g; s/"/\\"/g')"
        _args="$_args${_args:+,}\"$_a\""
    done
    _json="{\"args\":[$_args],\"env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"HOME=/root\"],\"cwd\":\"/\"}"
    # shellcheck disable=SC2059 # the format is the escapes
    { printf "\\002$(le32 ${#_json})"; printf '%s' "$_json"; printf '\004\000\000\000\000'; } >"$_f"
}

# The host end of the agent protocol for qemu: run by socat on the accepted vsock connection
# (stdin from the agent, stdout to it). Reads Hello, sends the Run frame (FILE), reads frames
# until Exit (8) or Error (10), sends Ack (9), then reads until the guest closes.
cat >"$work/responder.sh" <<'EOF'
rd() { dd bs=1 count="$1" 2>/dev/null; }
frame() {
    set -- $(rd 5 | od -An -tu1)
    [ $# -eq 5 ] || exit 1
    kind=$1
    len=$(( $2 + $3 * 256 + $4 * 65536 + $5 * 16777216 ))
}
frame
rd "$len" >/dev/null
cat "$1"
while frame; do
    if [ "$kind" = 8 ] || [ "$kind" = 10 ]; then
        printf '\011\000\000\000\000'
        rd "$len" >"$2"
        printf '\n%s\n' "$kind" >>"$2"
        break
    fi
    rd "$len" >/dev/null
done
cat >/dev/null
EOF

cmdline=""
initramfs="$work/initramfs.cpio"

# Starts virtiofsd on the rootfs, socat listening on vsock port 1024 with the responder, and
# qemu; pid in $vm_pid, virtiofsd's in $vfs_pid, socat's in $socat_pid; t0 is qemu's start.
qemu_vm() { # RUN_FRAME_FILE
    rm -f "$work/vfs.sock" "$work/socat.log" "$work/exit"
    "$virtiofsd" --socket-path="$work/vfs.sock" -o source="$rootfs" -o cache=always -o xattr \
        -o sandbox=chroot </dev/null >/dev/null 2>"$work/virtiofsd.err" &
    vfs_pid=$!
    bg_pids="$bg_pids $vfs_pid"
    wait_for_file "$work/vfs.sock" "$vfs_pid" || { sed 's/^/  | /' "$work/virtiofsd.err" >&2; die "virtiofsd did not start"; }
    TZ=UTC "$socat" -d -d -lu -x VSOCK-LISTEN:1024 EXEC:"sh $work/responder.sh $1 $work/exit" \
        </dev/null 2>"$work/socat.log" &
    socat_pid=$!
    bg_pids="$bg_pids $socat_pid"
    _i=0
    until grep -q 'listening on' "$work/socat.log" 2>/dev/null; do
        kill -0 "$socat_pid" 2>/dev/null || { cat "$work/socat.log" >&2; die "socat did not start"; }
        [ "$_i" -lt 200 ] || die "socat did not start listening"
        sleep 0.05
        _i=$((_i + 1))
    done
    now_us; t0=$_now
    "$qemu" -M microvm,x-option-roms=off,rtc=off,acpi=off,memory-backend=mem -enable-kvm -cpu host \
        -m "$mem" -smp 1 -nodefaults -no-user-config -nographic -no-reboot \
        -global virtio-mmio.force-legacy=false \
        -object memory-backend-memfd,id=mem,size="${mem}M",share=on \
        -device i8042 \
        -chardev socket,id=vfs,path="$work/vfs.sock" -device vhost-user-fs-device,chardev=vfs,tag=hullroot \
        -device vhost-vsock-device,guest-cid=3 \
        -kernel "$kernel" -initrd "$initramfs" -append "$cmdline" \
        </dev/null >"$work/qemu.out" 2>"$work/qemu.err" &
    vm_pid=$!
}

# Ends the helpers of one qemu run.
qemu_done() {
    for p in $socat_pid $vfs_pid; do
        _i=0
        while kill -0 "$p" 2>/dev/null && [ "$_i" -lt 40 ]; do sleep 0.05; _i=$((_i + 1)); done
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    bg_pids=""
}

qemu_failed() { # WHAT
    say "qemu: $1"
    for f in qemu.err socat.log virtiofsd.err; do
        say "--- $f"; sed 's/^/  | /' "$work/$f" | tail -n 20 >&2
    done
    exit 1
}

# One timed run; appends "start_agent start_done wall" (ms) to qemu.times. Agent ready is
# socat's accept, the command's exit the arrival of the Exit frame (first byte 08), both from
# socat's log (microsecond stamps of the same clock, time of day in UTC).
run_qemu() {
    qemu_vm "$work/run-true.frame"
    watchdog "$vm_pid" "$limit"
    rc=0
    wait "$vm_pid" || rc=$?
    now_us; t1=$_now
    unwatch
    qemu_done
    if [ "$rc" != 0 ] && [ -e "$work/killed" ]; then
        hung_qemu=$((hung_qemu + 1))
        return 1
    fi
    [ "$rc" = 0 ] || qemu_failed "exited with status $rc"
    [ "$(tail -n1 "$work/exit" 2>/dev/null)" = 8 ] || qemu_failed "the agent did not report an exit status"
    awk -v t0_us="$t0" -v wall_us=$((t1 - t0)) "$awk_clock"'
        /accepting connection from/ && !agent { agent = since($2); next }
        /^> / { pending = $3; next }
        pending != "" {
            if ($1 == "08" && !done_) { dump = 1; done_ = since(pending); dump = 0 }
            pending = ""; next
        }
        END {
            if (!agent || !done_) { print "no accept or Exit in socat log" > "/dev/stderr"; exit 1 }
            printf "%.1f %.1f %.1f\n", agent, done_, wall_us / 1000
        }
    ' "$work/socat.log" >>"$work/qemu.times" || qemu_failed "could not read the times"
}

rss_qemu() {
    rm -f "$rootfs$running_flag"
    qemu_vm "$work/run-rss.frame"
    watchdog "$vm_pid" "$limit"
    if wait_for_file "$rootfs$running_flag" "$vm_pid"; then
        q="$(rss_beyond_guest "$vm_pid" "$work/qemu.smaps")"
        v="$(rss_beyond_guest "$vfs_pid")"
        echo "$q $v" >>"$work/qemu.rss"
    fi
    rc=0
    wait "$vm_pid" || rc=$?
    unwatch
    qemu_done
    if [ "$rc" != 0 ] && [ -e "$work/killed" ]; then
        hung_qemu=$((hung_qemu + 1))
        return 1
    fi
    [ "$rc" = 0 ] || qemu_failed "exited with status $rc"
}

# --- the runs --------------------------------------------------------------------------------

: >"$work/hull.times"
: >"$work/qemu.times"
: >"$work/hull.rss"
: >"$work/qemu.rss"

hull_version="$("$hull" --version 2>/dev/null)"
hull_version="${hull_version%%
*}"
say "$hull_version, kernel $kernel, $mem MiB, 1 vcpu; $runs runs each"
# again FUNC [ARGS...]: runs FUNC until it does not time out, at most 3 times.
hung_hull=0
hung_qemu=0
again() {
    _tries=1
    until "$@"; do
        [ "$_tries" -lt 3 ] || die "$1: 3 runs in a row hung (killed after $limit s)"
        say "$1: the run hung (killed after $limit s); running it again"
        _tries=$((_tries + 1))
    done
}

# The first run (hull's warm-up) also dumps the initramfs and shows the kernel command line,
# for qemu.
again run_hull --dump-initramfs "$initramfs"
: >"$work/hull.times"
cmdline="$(sed -n 's/^hull: debug: kernel command line: //p' "$work/hull.err" | head -n1)"
[ -n "$cmdline" ] || die "hull --debug vm-run did not print the kernel command line"
[ -s "$initramfs" ] || die "hull vm-run --dump-initramfs wrote nothing"

if [ "$with_qemu" = 1 ]; then
    if [ ! -e /dev/vhost-vsock ]; then
        mods="/bench/modules/$(uname -r)"
        [ -f "$mods/load-order" ] || die "no /dev/vhost-vsock and no modules in $mods (run with --testvm)"
        while read -r m; do
            grep -q "^$m " /proc/modules || insmod "$mods/$m.ko" || die "insmod $m failed"
        done <"$mods/load-order"
        i=0
        while [ ! -e /dev/vhost-vsock ] && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
        [ -e /dev/vhost-vsock ] || die "vhost_vsock loaded but no /dev/vhost-vsock"
    fi
    frame_run "$work/run-true.frame" /bin/true
    frame_run "$work/run-rss.frame" /bin/sh -c "$rss_cmd"
fi

i=1
while [ $i -le "$warmup" ]; do
    [ $i = 1 ] || { again run_hull; : >"$work/hull.times"; }
    if [ "$with_qemu" = 1 ]; then again run_qemu; : >"$work/qemu.times"; fi
    i=$((i + 1))
done

i=1
while [ $i -le "$runs" ]; do
    if [ "$with_qemu" = 0 ]; then
        again run_hull
    elif [ $((i % 2)) = 1 ]; then
        again run_hull; again run_qemu
    else
        again run_qemu; again run_hull
    fi
    say "round $i/$runs done: hull $(tail -n1 "$work/hull.times" | cut -d' ' -f1,3,5) ms${qemu:+, qemu $(tail -n1 "$work/qemu.times" 2>/dev/null)} ms (agent, exit, wall)"
    i=$((i + 1))
done

say "RSS samples"
i=1
while [ $i -le "$rss_runs" ]; do
    again rss_hull
    [ "$with_qemu" = 0 ] || again rss_qemu
    i=$((i + 1))
done

# --- the container path ----------------------------------------------------------------------
# The same busybox rootfs as a bundle: native `run` of /bin/true against the vm backend's, a
# VM container's `create` and `start` apart (and a native one's, for the ratio), `exec` of
# /bin/true into a running container of each kind, and a VM container's VMM RSS beyond guest
# RAM. Every command has a time limit; a failure ends the benchmark with its stderr.

croot="$work/croot"
export HULL_KERNEL="$kernel"
cbundle() { # NAME ARGS_JSON: a bundle on the rootfs whose process.args are ARGS_JSON, with
    # --mem of guest RAM, so that the RSS above leaves the right mapping out.
    vm_bundle "$hull" "$work/$1" "$rootfs" "$mem" "$2" || die "hull spec"
}
cbundle ctrue '"/bin/true"'
cbundle csleep '"/bin/sleep", "1000"'
# timed FILE ARGS...: `hull --root $croot ARGS...` with a time limit, its wall time (ms)
# appended to FILE.
timed() {
    _file="$1"
    shift
    now_us; _a=$_now
    timeout -s KILL "$limit" "$hull" --root "$croot" "$@" </dev/null >"$work/c.out" 2>"$work/c.err" || {
        say "failed: hull $*"
        sed 's/^/  | /' "$work/c.err" | tail -n 20 >&2
        exit 1
    }
    now_us
    awk -v d=$((_now - _a)) 'BEGIN { printf "%.1f\n", d / 1000 }' >>"$_file"
}
h() { "$hull" --root "$croot" "$@"; }
say "container path: $runs rounds"
i=1
while [ $i -le "$runs" ]; do
    timed "$work/native-run.ms" run --bundle "$work/ctrue" "nr$i"
    timed "$work/vm-run-container.ms" --backend vm run --bundle "$work/ctrue" "vr$i"
    timed "$work/native-create.ms" create --bundle "$work/csleep" "nc$i"
    timed "$work/native-start.ms" start "nc$i"
    timed "$work/native-exec.ms" exec "nc$i" /bin/true
    h delete --force "nc$i" >/dev/null 2>&1
    timed "$work/vm-create.ms" --backend vm create --bundle "$work/csleep" "vc$i"
    timed "$work/vm-start.ms" start "vc$i"
    timed "$work/vm-exec.ms" exec "vc$i" /bin/true
    vmm="$(h state "vc$i" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -n1)"
    [ -z "$vmm" ] || rss_beyond_guest "$vmm" "$work/container.smaps" >>"$work/container.rss"
    h delete --force "vc$i" >/dev/null 2>&1
    say "container round $i/$runs done: native run $(tail -n1 "$work/native-run.ms"), vm run $(tail -n1 "$work/vm-run-container.ms") ms"
    i=$((i + 1))
done

# --- the table -------------------------------------------------------------------------------

# stats FILE COLUMN: "median min max" of the column (the median of an even count is the mean of
# the middle two).
stats() {
    awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "- - -"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m, v[1], v[NR]
        }'
}
med() { stats "$1" "$2" | cut -d' ' -f1; }
cell() { # FILE COLUMN [DIGITS]: "median (min-max)"
    stats "$1" "$2" | awk -v d="${3:-1}" '$1 == "-" { print "-"; exit }
        { f = "%." d "f"; printf f " (" f "-" f ")\n", $1, $2, $3 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "-") printf "%.2fx\n", a / b; else print "" }'; }
row() { # LABEL HULL_CELL QEMU_CELL RATIO
    printf '%-38s | %-24s | %-24s | %s\n' "$1" "$2" "$3" "$4"
}

if [ "$with_qemu" = 1 ]; then
    qlabel="qemu microvm"
else
    qlabel="(no qemu)"
    : >"$work/qemu.times"
fi
kernel_size="$(wc -c <"$kernel")"
initramfs_size="$(wc -c <"$initramfs")"
kvm_cpu="$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: //')"
echo
echo "$hull_version vm-run vs qemu microvm: N=$runs (after $warmup warm-up), $mem MiB, 1 vcpu, $(uname -r) host kernel, $(nproc) CPUs ($kvm_cpu)"
echo "guest kernel $kernel ($((kernel_size / 1024)) KiB), initramfs $((initramfs_size / 1024)) KiB (hull's, dumped by vm-run --dump-initramfs)"
[ "$with_qemu" = 0 ] || "$qemu" --version | head -n1
echo
row "time, median ms (min-max)" "hull" "$qlabel" "hull/qemu"
row "--------------------------------------" "------------------------" "------------------------" "---------"
row "process start -> agent ready" "$(cell "$work/hull.times" 1)" "$(cell "$work/qemu.times" 1)" \
    "$(ratio "$(med "$work/hull.times" 1)" "$(med "$work/qemu.times" 1)")"
row "VMM start -> agent ready" "$(cell "$work/hull.times" 2)" "(= process start)" \
    "$(ratio "$(med "$work/hull.times" 2)" "$(med "$work/qemu.times" 1)")"
row "process start -> command exit" "$(cell "$work/hull.times" 3)" "$(cell "$work/qemu.times" 2)" \
    "$(ratio "$(med "$work/hull.times" 3)" "$(med "$work/qemu.times" 2)")"
row "VMM start -> command exit" "$(cell "$work/hull.times" 4)" "(= process start)" \
    "$(ratio "$(med "$work/hull.times" 4)" "$(med "$work/qemu.times" 2)")"
row "wall (process start -> exit)" "$(cell "$work/hull.times" 5)" "$(cell "$work/qemu.times" 3)" \
    "$(ratio "$(med "$work/hull.times" 5)" "$(med "$work/qemu.times" 3)")"
echo "  hull, median ms: exec to vm-run start $(med "$work/hull.times" 9), initramfs made" \
    "$(med "$work/hull.times" 6) after that; VM built $(med "$work/hull.times" 7), kernel entry" \
    "$(med "$work/hull.times" 8) after VMM start; VM exited to process exit $(med "$work/hull.times" 10)"
echo
echo "RSS beyond guest RAM: every mapping's Rss in /proc/PID/smaps but the $mem MiB one, $rss_runs samples"
row "RSS, median KiB (min-max)" "hull" "$qlabel" "hull/qemu"
row "--------------------------------------" "------------------------" "------------------------" "---------"
row "VMM process" "$(cell "$work/hull.rss" 1 0)" "$(cell "$work/qemu.rss" 1 0)" \
    "$(ratio "$(med "$work/hull.rss" 1)" "$(med "$work/qemu.rss" 1)")"
if [ "$with_qemu" = 1 ]; then
    awk '{ print $1 + $4, $2 + $5 }' "$work/qemu.rss" >"$work/qemu-vfs.rss"
    row "VMM + virtio-fs server (virtiofsd)" "(in-process)" "$(cell "$work/qemu-vfs.rss" 1 0)" \
        "$(ratio "$(med "$work/hull.rss" 1)" "$(med "$work/qemu-vfs.rss" 1)")"
fi
row "VMM process, whole RSS" "$(cell "$work/hull.rss" 2 0)" "$(cell "$work/qemu.rss" 2 0)" ""
# The largest parts of the last sample: Rss by mapping name (files by base name, [anon] for the
# anonymous ones), guest RAM left out.
parts() { # LABEL SMAPS
    [ -s "$2" ] || return 0
    awk -v guest_kib=$((mem * 1024)) '
        /^[0-9a-f]+-[0-9a-f]+ / {
            name = "[anon]"
            if (NF >= 6) { name = $6; for (i = 7; i <= NF; i++) name = name " " $i }
            sub(/.*\//, "", name); size = -1; next
        }
        /^Size:/ { size = $2; next }
        /^Rss:/ { if (size != guest_kib) r[name] += $2; next }
        END { for (n in r) if (r[n] > 0) print r[n], n }
    ' "$2" | sort -rn | head -n 8 | awk -v label="$1" '
        { line = line (NR > 1 ? ", " : "") $2 " " $1 }
        END { print "  " label " (KiB, last sample): " line }'
}
parts hull "$work/hull.smaps"
[ "$with_qemu" = 0 ] || parts qemu "$work/qemu.smaps"
bad="$(awk '$3 != 1' "$work/hull.rss" "$work/qemu.rss" | wc -l)"
[ "$bad" = 0 ] || echo "  warning: $bad samples did not have exactly one $mem MiB mapping in the VMM"

if [ "$hung_hull" != 0 ] || [ "$hung_qemu" != 0 ]; then
    echo "  hung runs (killed after $limit s and run again, not in the numbers): hull $hung_hull, qemu $hung_qemu"
fi
echo
echo "targets (issue 7): hull ahead of qemu microvm on boot-to-agent, VMM overhead <= 5 MiB"
verdict() { if [ "$1" = 1 ]; then printf '  ok   '; else printf '  MISS '; fi; }
hull_rss="$(med "$work/hull.rss" 1)"
if [ "$with_qemu" = 1 ]; then
    h1="$(med "$work/hull.times" 1)"; h2="$(med "$work/hull.times" 2)"; q1="$(med "$work/qemu.times" 1)"
    verdict "$(awk -v a="$h1" -v b="$q1" 'BEGIN { print (a < b) }')"
    echo "boot to agent ready from process start: hull $h1 ms vs qemu $q1 ms"
    verdict "$(awk -v a="$h2" -v b="$q1" 'BEGIN { print (a < b) }')"
    echo "boot to agent ready from VMM start: hull $h2 ms vs qemu $q1 ms"
fi
verdict "$(awk -v a="$hull_rss" 'BEGIN { print (a != "-" && a <= 5120) }')"
echo "VMM overhead: hull $hull_rss KiB (target <= 5120 KiB)"

echo
echo "the container path (issue 13): the same rootfs as a bundle, N=$runs, wall ms of each command"
row "time, median ms (min-max)" "native" "vm backend" "vm/native"
row "--------------------------------------" "------------------------" "------------------------" "---------"
crow() { # LABEL NATIVE_FILE VM_FILE
    row "$1" "$(cell "$2" 1)" "$(cell "$3" 1)" "$(ratio "$(med "$3" 1)" "$(med "$2" 1)")"
}
: >"$work/none.ms"
crow "run /bin/true" "$work/native-run.ms" "$work/vm-run-container.ms"
crow "create (sleep 1000)" "$work/native-create.ms" "$work/vm-create.ms"
crow "start" "$work/native-start.ms" "$work/vm-start.ms"
crow "exec /bin/true" "$work/native-exec.ms" "$work/vm-exec.ms"
row "VMM RSS beyond guest RAM, KiB" "" "$(cell "$work/container.rss" 1 0)" ""
parts "VM container's VMM" "$work/container.smaps"
vm_run="$(med "$work/vm-run-container.ms" 1)"
bare="$(med "$work/hull.times" 5)"
vm_start="$(med "$work/vm-start.ms" 1)"
native_start="$(med "$work/native-start.ms" 1)"
container_rss="$(med "$work/container.rss" 1)"
echo "targets (issue 13):"
verdict "$(awk -v a="$vm_run" -v b="$bare" 'BEGIN { print (b > 0 && a <= 1.3 * b) }')"
echo "vm backend run within 1.3x of vm-run's wall: $vm_run ms vs $bare ms ($(ratio "$vm_run" "$bare"))"
verdict "$(awk -v a="$vm_start" -v b="$native_start" 'BEGIN { print (b > 0 && a <= 3 * b) }')"
echo "start of a created VM container within 3x of a native start: $vm_start ms vs $native_start ms ($(ratio "$vm_start" "$native_start"))"
verdict "$(awk -v a="$container_rss" 'BEGIN { print (a != "-" && a <= 5120) }')"
echo "a VM container's VMM overhead: $container_rss KiB (target <= 5120 KiB)"
exit 0
