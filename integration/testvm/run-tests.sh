#!/usr/bin/env bash
# Runs the project's cargo integration tests inside the test machine (testvm.sh): an emulated
# x86 machine with a pure cgroup v2 hierarchy and an ordinary /dev/kvm.
#
#   run-tests.sh [--all] [--backend native|vm] [--test NAME]... [-- TEST_ARGS...]
#
# Builds the test executables on the host (`cargo test --no-run --message-format=json`), carries
# them in at their host paths together with the hull binary they were built against (the tests
# find it through env!("CARGO_BIN_EXE_hull"), an absolute host path compiled in) and the
# libraries they link, and runs each one inside, in the package directory as cargo would, with
# TEST_ARGS (libtest's: a filter, --test-threads N, --nocapture, ...). busybox, which the tests
# copy into their bundles, is the guest's own /bin/busybox, the host's busybox-static.
#
#   --all              also run the unit tests (the test harnesses of src/ and vmm/)
#   --test NAME        only tests/NAME.rs (repeatable; as cargo's --test)
#   --backend vm       every container the tests make is a VM container (HULL_TEST_BACKEND=vm
#                      inside, see tests/common): the guest kernel (HULL_KERNEL, else
#                      /usr/local/share/hull/vmlinuz; `just kernel`) is carried in and named by
#                      HULL_KERNEL. The tests and hull are built with --release (the guest's
#                      initramfs is hull itself: a debug build is too big). Without --test, the test files that apply to VM containers:
#                      lifecycle exec process rootfs namespaces hooks cve cgroups. Tests that skip
#                      themselves on a VM (tests/common native_only) are listed after the run
#                      (docs/vm.md, "Tests on the vm backend").
#   --add HOST[:GUEST] carry another file or directory in (repeatable; see testvm.sh). Host
#                      files the tests always need are listed in integration/testvm/test-files.
#
# Environment: HULL_TESTVM_TIMEOUT (default 3600 s here), CARGO_BUILD_JOBS, and the rest of
# testvm.sh's. Exit status: 0 when every test executable passed, 1 when one failed, else
# testvm.sh's (124: timeout, 125: the guest did not come up).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
log() { printf 'testvm-tests: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# The test files that run on VM containers (the others test the CLI, the spec's validation,
# the backend choice, vm-run and seccomp profiles: nothing a VM container changes).
vm_tests="lifecycle exec process rootfs namespaces hooks cve cgroups rootless"

all=0
backend=native
tests=()
extra_adds=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --all) all=1; shift ;;
        --test) [ "$#" -ge 2 ] || die "--test needs a name"; tests+=("$2"); shift 2 ;;
        --test=*) tests+=("${1#*=}"); shift ;;
        --backend) [ "$#" -ge 2 ] || die "--backend needs native or vm"; backend="$2"; shift 2 ;;
        --backend=*) backend="${1#*=}"; shift ;;
        --add) [ "$#" -ge 2 ] || die "--add needs a path"; extra_adds+=(--add "$2"); shift 2 ;;
        --add=*) extra_adds+=(--add "${1#*=}"); shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
test_args=("$@")

vm_env=()
case "$backend" in
    native) vm_env=(--env HULL_TEST_SKIP_LOG=/tmp/testvm-skips) ;;
    vm)
        kernel="${HULL_KERNEL:-/usr/local/share/hull/vmlinuz}"
        [ -f "$kernel" ] || die "--backend vm: no guest kernel at $kernel (just kernel, or HULL_KERNEL)"
        kernel="$(readlink -f "$kernel")"
        extra_adds+=(--add "$kernel")
        vm_env=(--env HULL_TEST_BACKEND=vm --env "HULL_KERNEL=$kernel" --env HULL_TEST_SKIP_LOG=/tmp/testvm-skips)
        # Guests boot in the emulated machine, some at once (libtest's threads): give `create`
        # four times the default 60 s for the agent, as the tests' own deadlines (patience).
        vm_config="$(mktemp "${TMPDIR:-/tmp}/hull-testvm-config.XXXXXX")"
        printf '[vm]\nboot_timeout_s = 240\n' >"$vm_config"
        # mktemp's 0600 would keep it from tests/rootless.rs's ordinary user.
        chmod 0644 "$vm_config"
        extra_adds+=(--add "$vm_config:/etc/hull/config.toml")
        if [ "$all" = 0 ] && [ "${#tests[@]}" = 0 ]; then read -r -a tests <<<"$vm_tests"; fi
        ;;
    *) die "--backend: native or vm, not $backend" ;;
esac

export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null 2>&1 || die "cargo not found"
if ! command -v jq >/dev/null 2>&1; then
    log "installing jq"
    if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends jq >&2 \
        || die "cannot install jq"
fi

# --- build on the host

cargo_args=(test --workspace --no-run --message-format=json-render-diagnostics)
# The guest's initramfs is the hull binary itself: a debug build (over 100 MB with its debug
# information) does not fit a default-sized guest, and its VMM is slow. VM containers get the
# release build, as users and the other vm checks run it.
if [ "$backend" = vm ]; then cargo_args+=(--release); fi
if [ "$all" = 0 ]; then
    if [ "${#tests[@]}" -gt 0 ]; then
        for t in "${tests[@]}"; do cargo_args+=(--test "$t"); done
    else
        cargo_args+=(--tests)
    fi
fi
log "cargo ${cargo_args[*]}"
t0=$SECONDS
json="$(cd "$repo" && cargo "${cargo_args[@]}")" || die "the build failed"
log "built in $((SECONDS - t0)) s"

# kind, test profile, name, executable, package directory: one line per built executable.
artifacts="$(jq -r 'select(.reason == "compiler-artifact" and .executable != null)
    | [(.target.kind | join(",")), (.profile.test | tostring), .target.name, .executable,
       (.manifest_path | sub("/Cargo.toml$"; ""))] | @tsv' <<<"$json" | sort -t$'\t' -k1,1r -k3,3)"

hull_bin="$(awk -F'\t' '$1 == "bin" && $2 == "false" && $3 == "hull" { print $4; exit }' <<<"$artifacts")"
[ -n "$hull_bin" ] && [ -x "$hull_bin" ] || die "cargo built no hull binary (CARGO_BIN_EXE_hull)"

# What runs: the integration tests (kind test), and with --all the unit test harnesses.
runlist=()
declare -A seen=()
pkg_dir=""
while IFS=$'\t' read -r kind is_test name exe dir; do
    [ "$is_test" = true ] || continue
    if [ "$kind" != test ] && [ "$all" = 0 ]; then continue; fi
    if [ "${#tests[@]}" -gt 0 ] && [ "$kind" = test ]; then
        printf '%s\n' "${tests[@]}" | grep -qxF "$name" || continue
    fi
    [ -n "${seen[$exe]:-}" ] && continue
    seen[$exe]=1
    runlist+=("$kind"$'\t'"$name"$'\t'"$exe"$'\t'"$dir")
    [ "$dir" = "$repo" ] && pkg_dir="$dir"
done <<<"$artifacts"
[ "${#runlist[@]}" -gt 0 ] || die "no test executables were built (--test names: ${tests[*]:-})"

# --- the guest side: one script that runs each executable in its package's directory

work="$(mktemp -d "${TMPDIR:-/tmp}/hull-testvm-tests.XXXXXX")"
trap 'rm -rf "$work" ${vm_config:+"$vm_config"}' EXIT
runner="$work/run-tests"
# On the vm backend a test whose guest's CPU triple-faulted in the emulated machine (hull's
# message below; about one VM container in a hundred there, with nothing on the guest console,
# integration/testvm/README.md), or one that gave up on one of its own waits (a guest that
# stalls in the emulated machine outlasts them: the tests wait 80 s where the boot limit is
# 240 s; `hung: killed after` is tests/common's bounded runner giving up on a hull command),
# is run once more on its own, and the summary says so (RETRY, with the reason and the soft
# lockups the test machine's kernel logged meanwhile: a stalled nested guest leaves one). Any
# other failure stands, a guest kernel panic included.
if [ "$backend" = vm ]; then
    guest_flake='triple-faulted \(KVM_EXIT_SHUTDOWN|timed out waiting for|hull run did not return|hung: killed after [0-9]+ s'
else
    guest_flake=''
fi
{
    echo '#!/bin/sh'
    echo '# Generated by integration/testvm/run-tests.sh: runs each test executable in turn.'
    echo 'failed=""; passed=0; : >/tmp/testvm-summary'
    echo 'now() { cut -d" " -f1 /proc/uptime; }'
    printf 'flake=%q\n' "$guest_flake"
    # retry DIR EXE ARGS...: reruns, each alone, the tests the last run's output lists as failed,
    # when that output shows the guest flake; true when every one passes the second time.
    cat <<'RETRY'
retry() {
    [ -n "$flake" ] && why=$(grep -oE "$flake" /tmp/testvm-out | head -n 1) && [ -n "$why" ] || return 1
    names=$(awk '/^failures:$/ { n++; next } n == 2 && /^    [^ ]/ { print $1 }' /tmp/testvm-out)
    [ -n "$names" ] || return 1
    dir=$1; exe=$2; shift 2
    lockups=$(dmesg 2>/dev/null | grep -c 'soft lockup')
    for t in $names; do
        echo "# RETRY $t: the run's output says '$why' (a guest CPU's triple fault or a wait run out: the emulated machine); once more, alone"
        echo "# the test machine's kernel has logged $lockups soft lockups so far"
        [ "$lockups" = 0 ] || dmesg 2>/dev/null | grep -A3 'soft lockup' | tail -n 4 | sed 's/^/#   /'
        CARGO_MANIFEST_DIR="$dir" "$exe" "$@" --exact "$t" || return 1
        echo "  RETRY $t: passed the second time (first: '$why'; soft lockups logged so far: $lockups)" >>/tmp/testvm-summary
    done
}
RETRY
    for r in "${runlist[@]}"; do
        IFS=$'\t' read -r kind name exe dir <<<"$r"
        if [ "$kind" = test ]; then label="tests/$name.rs"; else label="$name ($kind unit tests)"; fi
        # A file an earlier try of the test machine finished (testvm.sh reruns the command after a
        # stall or a panic of the machine's kernel) keeps that result: its output is above. (The
        # one-round loop is for `continue`.)
        printf 'for _once in 1; do\n'
        printf 'case " $HULL_TESTVM_DONE " in *" %s=ok "*) echo; echo %q; echo "  %s: ok (on an earlier try of the test machine)" >>/tmp/testvm-summary; passed=$((passed + 1)); continue ;; *" %s=failed "*) echo; echo %q; echo "  %s: FAILED (on an earlier try of the test machine)" >>/tmp/testvm-summary; failed="$failed %s"; continue ;; esac\n' \
            "$name" "===== $label: passed on an earlier try, not run again" "$label" "$name" "===== $label: failed on an earlier try, not run again" "$label" "$name"
        printf 'echo; echo %q\n' "===== $label"
        printf 'start=$(now)\n'
        printf 'rm -f /tmp/testvm-rc; mkdir -p %q && cd %q && { CARGO_MANIFEST_DIR=%q %q "$@"; echo $? >/tmp/testvm-rc; } 2>&1 | tee /tmp/testvm-out\n' "$dir" "$dir" "$dir" "$exe"
        printf 'rc=$(cat /tmp/testvm-rc 2>/dev/null || echo 1)\n'
        printf 'if [ "$rc" != 0 ] && retry %q %q "$@"; then rc=0; fi\n' "$dir" "$exe"
        printf 'took=$(awk -v a="$start" -v b="$(now)" %q)\n' 'BEGIN { printf "%.1f", b - a }'
        printf 'if [ "$rc" = 0 ]; then passed=$((passed + 1)); r=ok; else failed="$failed %s"; r="FAILED (exit $rc)"; fi\n' "$name"
        printf 'if [ "$rc" = 0 ]; then echo "HULL-TESTVM-DONE %s=ok"; else echo "HULL-TESTVM-DONE %s=failed"; fi\n' "$name" "$name"
        printf 'echo "  %s: $r, $took s" >>/tmp/testvm-summary\n' "$label"
        printf 'done\n'
    done
    echo 'echo; echo "===== summary (guest time):"; cat /tmp/testvm-summary'
    echo 'if [ -s /tmp/testvm-skips ]; then echo "===== skipped ($(wc -l </tmp/testvm-skips)):"; sed "s/^/  /" /tmp/testvm-skips; fi'
    echo 'if [ -n "$failed" ]; then echo "===== FAILED:$failed"; exit 1; fi'
    echo 'echo "===== all $passed test executables passed"'
}>"$runner"
chmod +x "$runner"

args=(--no-hull --add "$hull_bin" --add "$runner:/usr/local/bin/hull-run-tests")
for r in "${runlist[@]}"; do
    IFS=$'\t' read -r _ _ exe dir <<<"$r"
    args+=(--add "$exe")
done
# Files the tests may read from their package directory (fixtures); cheap to carry.
if [ -n "$pkg_dir" ] && [ -d "$pkg_dir/tests" ]; then args+=(--add "$pkg_dir/tests"); fi
[ -n "$pkg_dir" ] && args+=(--cwd "$pkg_dir")
while read -r f; do
    case "$f" in ''|'#'*) continue ;; esac
    if [ -e "${f%%:*}" ]; then args+=(--add "$f"); else log "note: no ${f%%:*} on this host (test-files)"; fi
done <"$here/test-files"
args+=("${extra_adds[@]}")

export HULL_TESTVM_TIMEOUT="${HULL_TESTVM_TIMEOUT:-3600}"
log "running ${#runlist[@]} test executables in the test machine, backend $backend (timeout ${HULL_TESTVM_TIMEOUT} s)"
rc=0
"$here/testvm.sh" "${args[@]}" "${vm_env[@]}" -- hull-run-tests "${test_args[@]}" || rc=$?
exit "$rc"
