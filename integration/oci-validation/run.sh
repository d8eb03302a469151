#!/usr/bin/env bash
# Runs the OCI runtime-tools validation programs against hull (or any runtime) and checks each
# program's result against the expectations for this host.
#
#   integration/oci-validation/run.sh [--hull PATH | --runtime PATH] [--testvm] [--backend native|vm]
#       [--kernel PATH] [--timeout S] [--expect FILE | --no-expect] [--only NAME]...
#       [--skip NAME]... [--keep] [--src DIR|TARBALL]
#
# build.sh builds the programs once into a cache (see there for where the source comes from).
# Each program NAME.t runs with RUNTIME set to a wrapper that gives the runtime a private
# --root, in the cache directory (the programs read ./runtimetest and ./rootfs-amd64.tar.gz from
# there) with TMPDIR a private folder (their bundles), stdin /dev/null, and a time limit
# (--timeout, default 60 s; 300 s in the test machine, 1800 s there with --backend vm:
# linux_cgroups_cpus alone boots 16 guests under 0.5-cpu quotas, 11-15 minutes). Its TAP output is counted: a program
# passes when it exits 0 with a plan and no `not ok`, is skipped when every test it ran was
# skipped, and fails otherwise (its result then reads fail:N for N `not ok` lines, error for a
# bad exit without one, or timeout); README.md says how the hook and *_fail programs count. One TAP line per program, then the totals; the output of each program that failed
# or differed from its expectation is printed after the table too, and kept with --keep.
# --skip NAME leaves a program out (the run says which; `just ci` leaves out the vm backend's
# slowest program, README.md says why).
#
# --runtime PATH runs another runtime through the same script (e.g. /usr/sbin/runc) and checks
# no expectations unless --expect names a file. With hull the expectations file is
# expected-HOST.txt beside this script: v1 on a cgroup v1 (hybrid) host, v2 on pure cgroup v2
# (the test machine), vm for --backend vm. The run fails when a program's result differs
# from its line there (absent: pass) — a regression, or an unexpected pass to write down.
#
# --testvm runs the same programs in the test machine (integration/testvm: QEMU, pure cgroup
# v2), carrying in bash, tar, the programs, and the runtime. --backend vm runs hull as hull-vm
# (every container a KVM microVM; needs --testvm for an ordinary /dev/kvm; a program that
# differs from its expectation there runs once more, as the suite's fixed waits of 5-10 s can
# run out on a slow nested guest, and the run says which), with the guest
# kernel from --kernel (default $HULL_KERNEL, else /usr/local/share/hull/vmlinuz), carried in
# with an /etc/hull/config.toml that gives `create` a 240 s boot timeout. Needs root.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
runtime="$repo/target/x86_64-unknown-linux-gnu/release/hull"
runtime_given=0
testvm=0
backend=native
kernel="${HULL_KERNEL:-/usr/local/share/hull/vmlinuz}"
limit=""
expect=""
no_expect=0
keep=0
src_args=()
only=()
skip_names=()
progs_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
    --hull) runtime="$2"; shift 2 ;;
    --runtime) runtime="$2"; runtime_given=1; shift 2 ;;
    --testvm) testvm=1; shift ;;
    --backend) backend="$2"; shift 2 ;;
    --kernel) kernel="$2"; shift 2 ;;
    --timeout) limit="$2"; shift 2 ;;
    --expect) expect="$2"; shift 2 ;;
    --no-expect) no_expect=1; shift ;;
    --only) only+=("$2"); shift 2 ;;
    --skip) skip_names+=("$2"); shift 2 ;;
    --keep) keep=1; shift ;;
    --src) src_args=(--src "$2"); shift 2 ;;
    --programs) progs_dir="$2"; shift 2 ;; # inside the test machine: the built programs
    -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 0 ;;
    *) echo "oci-validation: unknown argument: $1" >&2; exit 2 ;;
    esac
done

die() { echo "oci-validation: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (the programs create containers)"
case "$backend" in native | vm) ;; *) echo "oci-validation: --backend: native or vm, not $backend" >&2; exit 2 ;; esac
# The test machine's clock runs fast when its host is loaded (TCG): a longer limit there, and
# longer still for VM containers, each of which boots a guest in the emulated machine.
if [ -z "$limit" ]; then
    if [ "$backend" = vm ]; then limit=1800; elif [ "$testvm" -eq 1 ]; then limit=300; else limit=60; fi
fi
case "$limit" in '' | *[!0-9]*) echo "oci-validation: --timeout: seconds, not $limit" >&2; exit 2 ;; esac
runtime="$(readlink -f "$runtime")"
[ -x "$runtime" ] || die "no runtime at $runtime (cargo build --release; --hull, --runtime)"
runtime_name="$(basename "$runtime")"
is_hull=0
[ "$runtime_given" -eq 0 ] || [ "$runtime_name" = hull ] && is_hull=1
[ "$backend" = vm ] && [ "$is_hull" -eq 0 ] && die "--backend vm is hull's"
if [ "$backend" = vm ]; then
    kernel="$(readlink -f "$kernel")"
    [ -f "$kernel" ] || die "no guest kernel at $kernel (just kernel; --kernel, HULL_KERNEL)"
fi

if [ -z "$progs_dir" ]; then
    progs_dir="$("$here/build.sh" "${src_args[@]}")" || die "could not build the validation programs"
fi
[ -f "$progs_dir/runtimetest" ] || die "no runtimetest in $progs_dir"

# Which expectations: decided here, where the host is known.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then host=v2; host_words="cgroup v2"; else host=v1; host_words="cgroup v1 hybrid"; fi
if [ "$testvm" -eq 1 ]; then host=v2; host_words="cgroup v2, test machine"; fi
if [ -z "$expect" ] && [ "$no_expect" -eq 0 ] && [ "$is_hull" -eq 1 ]; then
    expect="$here/expected-$host.txt"
    # VM containers run in the test machine only (cgroup v2): one file for them.
    [ "$backend" = vm ] && expect="$here/expected-vm.txt"
fi
[ -z "$expect" ] || [ -f "$expect" ] || die "no expectations file $expect"

if [ "$testvm" -eq 1 ]; then
    args=(--programs "$progs_dir" --runtime "$runtime" --backend "$backend" --timeout "$limit")
    adds=(--add "$progs_dir" --add "$here" --add "$(readlink -f "$(command -v bash)"):/bin/bash"
        --add "$(readlink -f "$(command -v tar)"):/usr/local/bin/tar")
    hull_arg=(--no-hull)
    if [ "$is_hull" -eq 1 ]; then
        hull_arg=(--hull "$runtime")
        args=(--programs "$progs_dir" --runtime /hull --backend "$backend" --timeout "$limit")
    else
        adds+=(--add "$runtime")
    fi
    whole_limit="${HULL_TESTVM_TIMEOUT:-2400}"
    if [ "$backend" = vm ]; then
        adds+=(--add "$kernel")
        args+=(--kernel "$kernel")
        # Guests boot in the emulated machine, slower still on a loaded host: `create` waits
        # four times the default 60 s for the agent, as run-tests.sh --backend vm has it.
        vm_config="$(mktemp "${TMPDIR:-/tmp}/hull-oci-validation-config.XXXXXX")"
        printf '[vm]\nboot_timeout_s = 240\n' >"$vm_config"
        adds+=(--add "$vm_config:/etc/hull/config.toml")
        whole_limit="${HULL_TESTVM_TIMEOUT:-7200}"
    fi
    if [ -n "$expect" ]; then
        # A file outside this directory (--expect) travels in too.
        args+=(--expect "$(readlink -f "$expect")")
        adds+=(--add "$(readlink -f "$expect")")
    else
        args+=(--no-expect)
    fi
    [ "$keep" -eq 1 ] && args+=(--keep)
    for o in "${only[@]}"; do args+=(--only "$o"); done
    for o in "${skip_names[@]}"; do args+=(--skip "$o"); done
    # The guest is 2-3 times slower than this host (TCG): a whole run's limit is generous.
    rc=0
    "$repo/integration/testvm/testvm.sh" "${hull_arg[@]}" --timeout "$whole_limit" \
        "${adds[@]}" -- bash "$here/run.sh" "${args[@]}" || rc=$?
    [ -z "${vm_config:-}" ] || rm -f "$vm_config"
    exit "$rc"
fi
[ "$backend" = vm ] && [ ! -e /dev/kvm ] && die "--backend vm needs an ordinary /dev/kvm (run it with --testvm)"

# ---------------------------------------------------------------- the runtime wrapper
work="$(mktemp -d /tmp/hull-oci-validation.XXXXXX)"
root="$work/root"
logs="$work/logs"
mkdir -p "$root" "$logs" "$work/tmp" "$work/bin"
# As /tmp is: a container whose root is mapped to another uid must still reach its bundle.
chmod 755 "$work"
chmod 1777 "$work/tmp"
env_line=""
target="$runtime"
if [ "$backend" = vm ]; then
    # The name hull-vm chooses the vm backend for create; the other commands read the state.
    ln -s "$runtime" "$work/bin/hull-vm"
    target="$work/bin/hull-vm"
    env_line="export HULL_KERNEL='$kernel'"
fi
wrapper="$work/bin/runtime"
cat >"$wrapper" <<EOF
#!/bin/sh
$env_line
exec "$target" --root "$root" "\$@"
EOF
chmod 755 "$wrapper"

cleanup_containers() {
    local d n=0
    for d in "$root"/*/; do
        [ -d "$d" ] || continue
        n=$((n + 1))
        "$wrapper" delete --force "$(basename "$d")" >/dev/null 2>&1 || true
    done
    echo "$n"
}
cleanup() {
    cleanup_containers >/dev/null
    if [ "$keep" -eq 1 ]; then
        echo "oci-validation: kept $work" >&2
    else
        # A runtime can leave mounts in this namespace (runc does, for a container without a
        # mount namespace): unmount what is under the work dir, deepest first, and never let
        # rm cross into a mount (busybox's rm, in the test machine, cannot promise that: there
        # the machine goes away anyway).
        awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null; done
        rm -rf --one-file-system "$work" 2>/dev/null
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- expectations
# A line: PROGRAM RESULT REASON...; '#' comments, blank lines and indented continuation lines
# are for people.
declare -A want=() why=() seen=()
if [ -n "$expect" ]; then
    while IFS= read -r line; do
        case "$line" in '' | '#'* | ' '* | "$(printf '\t')"*) continue ;; esac
        read -r p r rest <<<"$line"
        want[$p]="$r"
        why[$p]="$rest"
    done <"$expect"
fi

# ---------------------------------------------------------------- run
programs=()
if [ "${#only[@]}" -gt 0 ]; then
    for o in "${only[@]}"; do
        [ -x "$progs_dir/$o.t" ] || die "no program $o.t in $progs_dir"
        programs+=("$o")
    done
else
    for f in "$progs_dir"/*.t; do programs+=("$(basename "$f" .t)"); done
fi
if [ "${#skip_names[@]}" -gt 0 ]; then
    kept=()
    for p in "${programs[@]}"; do
        [[ " ${skip_names[*]} " == *" $p "* ]] || kept+=("$p")
    done
    for o in "${skip_names[@]}"; do
        [ -x "$progs_dir/$o.t" ] || die "--skip $o: no program $o.t in $progs_dir"
    done
    programs=("${kept[@]}")
fi
for p in "${!want[@]}"; do
    [ -x "$progs_dir/$p.t" ] || die "$expect names $p, which is not a program of the suite"
done

echo "oci-validation: $runtime_name$([ "$backend" = vm ] && echo " (backend vm)") on $(uname -r), $host_words; $(sed -n 's/^commit //p' "$progs_dir/.complete" | cut -c1-12), limit ${limit} s a program"
[ -n "$expect" ] && echo "oci-validation: expectations: $(basename "$expect")"
[ "${#skip_names[@]}" -eq 0 ] || echo "oci-validation: not run (--skip): ${skip_names[*]}"
echo "1..${#programs[@]}"
n=0
p_pass=0 p_fail=0 p_skip=0 t_pass=0 t_fail=0 t_skip=0 differ=0 leftovers=0
differ_names=() show=() retried=()
t_all=$(date +%s)
# run_program NAME: runs NAME.t once; sets out, rc, ds, secs, pass, bad, skip and result.
run_program() {
    local p="$1" ok plan t0
    out="$logs/$p.tap"
    t0=${EPOCHREALTIME/./}
    (cd "$progs_dir" && exec env RUNTIME="$wrapper" TMPDIR="$work/tmp" timeout -k 10 "$limit" "./$p.t") \
        </dev/null >"$out" 2>&1
    rc=$?
    ds=$(((${EPOCHREALTIME/./} - t0) / 100000))
    secs="$((ds / 10)).$((ds % 10))"
    ok=$(grep -c -E '^ok( |$)' "$out")
    skip=$(grep -c -i -E '^ok( [0-9]+)?( -)?[^#]*# *skip' "$out")
    bad=$(grep -c -E '^not ok( |$)' "$out")
    plan=$(grep -c -E '^1\.\.[0-9]+' "$out")
    pass=$((ok - skip))
    # By the clock: busybox's timeout (in the test machine) exits 143, not 124.
    if [ "$rc" -ne 0 ] && [ "$ds" -ge $((limit * 10)) ]; then
        result=timeout
    elif [ "$rc" -eq 0 ] && [ "$plan" -eq 0 ] && [ "$ok" -eq 0 ] && [ "${p%_fail}" != "$p" ]; then
        # The *_fail programs print no TAP: they exit 0 when the runtime refused the bad config
        # and 1 (with a message) when it ran it.
        result=pass
        pass=1
    elif [ "$rc" -eq 0 ] && [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ] && grep -q -E '^1\.\.0$' "$out"; then
        # The hook programs print no test line either: an empty plan alone when all was well,
        # an "error" diagnostic before it when not.
        if grep -q -E '^ +"error":' "$out"; then result=error; else result=pass; pass=1; fi
    elif [ "$bad" -gt 0 ]; then
        result="fail:$bad"
    elif [ "$rc" -ne 0 ] || [ "$plan" -eq 0 ]; then
        result=error
    elif [ "$pass" -eq 0 ]; then
        result=skip
    else
        result=pass
    fi
}

# In the test machine (guest/init exports HULL_TESTVM_DONE, empty on a first try) each
# program's result is handed to testvm.sh as `HULL-TESTVM-DONE ovN=RESULT` (N its place in this
# run, `:` written `-`: the kernel command line that carries them to a rerun is short). When
# the test machine itself dies (integration/testvm/README.md) and testvm.sh reruns the command,
# the programs an earlier try finished keep their results and are not run again.
in_testvm=0
[ -n "${HULL_TESTVM_DONE+set}" ] && in_testvm=1
resumed=0
for p in "${programs[@]}"; do
    n=$((n + 1))
    earlier=""
    if [ "$in_testvm" -eq 1 ]; then
        for w in $HULL_TESTVM_DONE; do
            case "$w" in "ov$n="*) earlier="${w#ov"$n"=}" ;; esac
        done
    fi
    if [ -n "$earlier" ]; then
        # Its TAP counts stayed with the earlier try: only the result is known here.
        result="${earlier/-/:}"
        out="$logs/$p.tap"
        echo "# $p: $result on an earlier try of the test machine, not run again" >"$out"
        rc=0 secs="(earlier try)" pass=0 bad=0 skip=0
        resumed=$((resumed + 1))
    else
        run_program "$p"
    fi
    # On the vm backend the suite's fixed waits (10 s for a container to stop after `start`,
    # 5 or 10 s after a `kill`, often without saying so) can run out on a slow, nested guest:
    # a program that differs from its expectation runs once more, and says so. A regression
    # differs twice.
    if [ -z "$earlier" ] && [ "$backend" = vm ] && [ -n "$expect" ] && [[ "|${want[$p]:-pass}|" != *"|$result|"* ]]; then
        echo "# RETRY $p: $result (${secs} s), expected ${want[$p]:-pass}: the suite's fixed waits; once more"
        retried+=("$p")
        cleanup_containers >/dev/null
        mv "$out" "$out.first"
        run_program "$p"
    fi
    [ "$in_testvm" -eq 0 ] || [ -n "$earlier" ] || echo "HULL-TESTVM-DONE ov$n=${result/:/-}"
    case "$result" in pass) p_pass=$((p_pass + 1)) ;; skip) p_skip=$((p_skip + 1)) ;; *) p_fail=$((p_fail + 1)) ;; esac
    t_pass=$((t_pass + pass)) t_fail=$((t_fail + bad)) t_skip=$((t_skip + skip))
    left=$(cleanup_containers)
    leftovers=$((leftovers + left))
    counts="$pass passed, $bad failed, $skip skipped, ${secs} s"
    [ -z "$earlier" ] || counts="on an earlier try of the test machine"
    [ "$rc" -ne 0 ] && counts="$counts, exit $rc"
    [ "$left" -ne 0 ] && counts="$counts, $left container(s) left behind"
    if [ -n "$expect" ]; then
        w="${want[$p]:-pass}"
        seen[$p]=1
        # An expectation may list results a program is known to flip between (a|b).
        if [[ "|$w|" == *"|$result|"* ]]; then
            if [ "$result" = pass ]; then
                echo "ok $n - $p: $counts"
            elif [ "$result" = skip ]; then
                echo "ok $n - $p: $counts # SKIP ${why[$p]}"
            else
                echo "not ok $n - $p: $result ($counts) # TODO ${why[$p]}"
            fi
        else
            differ=$((differ + 1))
            differ_names+=("$p")
            show+=("$p")
            echo "not ok $n - $p: $result ($counts), expected $w${why[$p]:+ (${why[$p]})}"
        fi
    else
        case "$result" in
        pass) echo "ok $n - $p: $counts" ;;
        skip) echo "ok $n - $p: $counts # SKIP" ;;
        *) echo "not ok $n - $p: $result ($counts)"; show+=("$p") ;;
        esac
    fi
done

if [ "${#show[@]}" -gt 0 ]; then
    echo "# ---- the failing tests of each program that $([ -n "$expect" ] && echo "differed from its expectation" || echo failed)"
    for p in "${show[@]}"; do
        echo "# $p:"
        grep -E '^not ok' "$logs/$p.tap" | head -n 20 | sed 's/^/#   /'
        if ! grep -q -E '^not ok' "$logs/$p.tap"; then tail -n 15 "$logs/$p.tap" | sed 's/^/#   /'; fi
    done
fi
echo "# $runtime_name, $host_words: programs: ${#programs[@]}: $p_pass passed, $p_fail failed, $p_skip skipped;" \
    "TAP tests: $t_pass passed, $t_fail failed, $t_skip skipped; $(($(date +%s) - t_all)) s"
[ "$leftovers" -eq 0 ] || echo "# $leftovers container(s) were left behind (deleted with --force)"
[ "$resumed" -eq 0 ] || echo "# $resumed program(s) kept their result from an earlier try of the test machine (not in the TAP counts)"
[ "${#retried[@]}" -eq 0 ] || echo "# rerun once (vm backend, differed the first time): ${retried[*]}"
rc=0
if [ -n "$expect" ]; then
    if [ "$differ" -eq 0 ]; then
        echo "# expectations ($(basename "$expect")): every program as expected"
    else
        echo "# expectations ($(basename "$expect")): $differ program(s) differ: ${differ_names[*]}"
        rc=1
    fi
fi
exit "$rc"
