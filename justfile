# The commands a person types. `just` alone lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

hull := justfile_directory() / "target/x86_64-unknown-linux-gnu/release/hull"
demo_dir := justfile_directory() / "target/demo"

# List the recipes.
default:
    @{{ just_executable() }} --list --unsorted

# Install what hull needs on Debian 12 (apt packages, just); idempotent.
setup:
    ./scripts/setup.sh

# Build the release binary (target/x86_64-unknown-linux-gnu/release/hull).
build:
    cargo build --release

# Builds the guest kernel the first time (~5-10 min); prints what the container saw (root).
# Build a busybox bundle and run it with hull, natively and then in a KVM microVM (hull's VMM).
demo: setup build kernel
    #!/usr/bin/env bash
    set -euo pipefail
    [ "$(id -u)" -eq 0 ] || { echo "demo: hull needs root here; run: sudo just demo" >&2; exit 1; }
    ./scripts/demo-bundle.sh "{{ demo_dir }}/bundle"
    id="demo-$$"
    echo "--- native: hull run --bundle {{ demo_dir }}/bundle $id: what the container saw ---"
    rc=0
    "{{ hull }}" --root "{{ demo_dir }}/state" run --bundle "{{ demo_dir }}/bundle" "$id" </dev/null || rc=$?
    echo "--- native: the container exited with status $rc ---"
    echo "--- vm: hull vm-run --share {{ demo_dir }}/bundle/rootfs: what the guest saw ---"
    vrc=0
    ./scripts/demo-vm.sh "{{ hull }}" /usr/local/share/hull/vmlinuz "{{ demo_dir }}/bundle" </dev/null || vrc=$?
    echo "--- vm: the program exited with status $vrc ---"
    [ "$rc" -eq 0 ] && exit "$vrc" || exit "$rc"

# Run every test (unit and integration; integration tests need root). ARGS go to cargo test.
test *ARGS:
    @[ "$(id -u)" -eq 0 ] || echo "test: not root: the integration tests need root and will fail" >&2
    cargo test --workspace --no-fail-fast {{ ARGS }}

# Clippy with warnings as errors, rustfmt's check, and the generated seccomp table is current.
lint:
    #!/usr/bin/env bash
    set -uo pipefail
    rc=0
    cargo clippy --workspace --all-targets -- -D warnings || rc=1
    cargo fmt --all --check || rc=1
    python3 scripts/gen-seccomp-table.py --check || rc=1
    exit "$rc"

# Format the code.
fmt:
    cargo fmt --all

# Force-delete the demo's containers and remove its state root (target/demo/state).
clean-state:
    #!/usr/bin/env bash
    set -euo pipefail
    root="{{ demo_dir }}/state"
    [ -d "$root" ] || exit 0
    if [ -x "{{ hull }}" ]; then
        for d in "$root"/*/; do
            [ -d "$d" ] || continue
            id="$(basename "$d")"
            "{{ hull }}" --root "$root" delete --force "$id" || echo "clean-state: could not delete $id" >&2
        done
    fi
    rm -rf --one-file-system "$root"

# Run CMD in the test machine: QEMU (TCG) booting Debian's cloud kernel with a pure cgroup v2
# hierarchy and an ordinary /dev/kvm, hull at /hull (integration/testvm/README.md).
# E.g. `just testvm -- cat /sys/fs/cgroup/cgroup.controllers`; `just testvm -i` for a shell.
[positional-arguments]
testvm *ARGS: build
    ./integration/testvm/testvm.sh --hull "{{ hull }}" "$@"

# Build the integration tests on the host and run them in the test machine (cgroup v2, KVM).
# ARGS: [--all] [--test NAME]... [-- LIBTEST_ARGS...]
[positional-arguments]
testvm-tests *ARGS:
    ./integration/testvm/run-tests.sh "$@"

# and that a stalled machine is caught, reported and rerun (stall-selftest.sh).
# Check the test machine: cgroup v2 controllers enabled, and a KVM VM runs (kvm-ioctls),
[positional-arguments]
testvm-smoke *ARGS:
    ./integration/testvm/smoke.sh "$@"
    ./integration/testvm/stall-selftest.sh

# About 5-10 minutes on 2 cores the first time, then cached by its config in /var/cache/hull-kernel;
# installs /usr/local/share/hull/vmlinuz (bzImage) and vmlinux (ELF, PVH). ARGS: see --help.
# Build the vm backend's guest kernel from Debian's linux-source-6.1 (vmm/guest/README.md).
[positional-arguments]
kernel *ARGS:
    ./vmm/guest/build.sh "$@"

# Checks output, exit codes, the shared directory, vcpus, stdin, signals, poweroff and panic
# (integration/vm/e2e.sh), inside the test machine, which has a real /dev/kvm.
# Boot the guest kernel with hull as /init in hull's own VMM and check `hull vm-run`.
vm-e2e: build kernel
    ./integration/vm/e2e.sh --testvm --hull "{{ hull }}"

# The container commands on VM containers (create, start, state, kill, delete, run with the vm
# backend: exit codes, stdio, signals, nothing left behind; integration/vm/backend.sh), inside
# the test machine, which has a real /dev/kvm.
vm-backend: build kernel
    #!/usr/bin/env bash
    set -uo pipefail
    out="$(mktemp /tmp/hull-vm-backend.XXXXXX)"
    trap 'rm -f "$out"' EXIT
    s=0
    ./integration/vm/backend.sh --testvm --hull "{{ hull }}" 2>&1 | tee "$out" || s=$?
    # A guest whose CPU triple-faulted in the emulated machine outside start_runner's own retry
    # (about one VM container in a hundred there, integration/testvm/README.md), or whose boot
    # stalled so that its agent never connected (a CI run lost three bind-mount checks in a row
    # to that): the whole run once more, as conformance-vm does. A real fault fails both.
    # The same when the test machine stalled on both of testvm's tries (status 123).
    if [ "$s" != 0 ] && { [ "$s" = 123 ] || grep -qE '^  \| .*(triple-faulted \(KVM_EXIT_SHUTDOWN|guest agent did not connect within)' "$out"; }; then
        echo "RETRY vm-backend: a guest's CPU triple-faulted, its boot stalled or the test machine stalled twice (status $s, the messages above); the whole run once more"
        s=0
        ./integration/vm/backend.sh --testvm --hull "{{ hull }}" || s=$?
    fi
    exit "$s"

# Every container a VM container (HULL_TEST_BACKEND=vm; the release build, the guest kernel
# carried in): lifecycle, exec, process, rootfs, namespaces, hooks, cve, cgroups, abuse and the rest. Tests that
# cannot hold for a VM skip themselves and are listed at the end (docs/vm.md, "Tests on the vm backend").
# ARGS: [--test NAME]... [-- LIBTEST_ARGS...]
# Every file passes on the vm backend (about 25 minutes); `just vm-tests`, in `just ci`, runs nine of them.
# The cargo integration tests again on the vm backend, in the test machine (it has a real /dev/kvm).
[positional-arguments]
testvm-tests-vm *ARGS: kernel
    ./integration/testvm/run-tests.sh --backend vm "$@"

# One container at a time: lifecycle, exec, namespaces, cgroups, hooks, cve, process, rootfs, rootless and
# abuse (CI runs this; testvm-tests-vm runs every file, cli, validation and the rest too: docs/vm.md).
# The cargo tests on VM containers, in the test machine (the CI subset).
vm-tests: kernel
    ./integration/testvm/run-tests.sh --backend vm --test lifecycle --test exec --test namespaces --test cgroups --test hooks --test cve --test process --test rootfs --test abuse --test rootless -- --test-threads 1

# Transient scopes over D-Bus, limits, update, delete, failure cleanup, a VM container, in the test machine
# (cgroup v2; integration/systemd/README.md).
# Drive hull --systemd-cgroup from a real systemd 252 running as PID 1.
[positional-arguments]
systemd-test *ARGS: build kernel
    @[ "$(id -u)" -eq 0 ] || { echo "systemd-test: needs root; run: sudo just systemd-test" >&2; exit 1; }
    ./integration/systemd/run.sh --hull "{{ hull }}" "$@"

# Taking turns, N times each: run, create/start/state/delete, exec, and the no-runtime floor.
# E.g. `just bench 200`, `N=200 just bench`, `just bench 50 --testvm` (in the cgroup v2 test
# machine: crun refuses this host's v1 hybrid layout); runc and crun come from Debian if missing.
# Benchmark hull against crun and runc on one busybox bundle (integration/bench/README.md).
[positional-arguments]
bench *ARGS: build
    #!/usr/bin/env bash
    set -euo pipefail
    [ "$(id -u)" -eq 0 ] || { echo "bench: needs root; run: sudo just bench" >&2; exit 1; }
    n="${N:-100}"
    if [[ "${1:-}" =~ ^[0-9]+$ ]]; then n="$1"; shift; fi
    python3 integration/bench/bench.py -n "$n" --hull "{{ hull }}" "$@"

# Puts a uprobe on each function of a release hull that keeps its symbols, runs a lifecycle on the
# benchmark's bundles, writes the functions that ran, first-run first, and relinks hull with them
# side by side (scripts/link/cc). Root. ARGS: [--all] (probe every function, not only those the
# order names already: ~15 min of kernel setup; needed when the lifecycle runs new code).
# Record the code order hull is linked with (scripts/link/hull.order).
[positional-arguments]
link-order *ARGS: build
    #!/usr/bin/env bash
    set -euo pipefail
    [ "$(id -u)" -eq 0 ] || { echo "link-order: needs root" >&2; exit 1; }
    [ -d target/bench/bundle-sleep ] || python3 integration/bench/bench.py -n 1 --warmup 0 \
        --rss-rounds 1 --hull "{{ hull }}" >/dev/null
    touch src/main.rs
    HULL_LINK_KEEP_SYMBOLS=1 cargo build --release
    cp "{{ hull }}" target/hull-with-symbols
    touch src/main.rs
    python3 scripts/link/record-order.py target/hull-with-symbols "$@"
    cargo build --release

# The functions `hull vm-run` and a VM container's VMM run that hull.order does not place, from
# the pages they touch in the test machine (three runs of ~15 s, three links: ~3 min). Root and
# the guest kernel (`just kernel`).
# Record the VMM's part of the code order (scripts/link/vmm.order).
link-order-vmm: build
    scripts/link/record-vmm-order.sh

# Same kernel, initramfs, memory and vcpus; in the test machine (integration/bench/README.md).
# ARGS: [-n N] [--rss-runs N] [--mem MIB] [--no-qemu] ... (vm-bench.sh --help).
# Then the network: a native and a VM container on one bridge (vm-net-bench.sh; `just bench-vm-net`).
# Benchmark hull's VMM against qemu microvm (boot, command exit, RSS), then VM container networking.
[positional-arguments]
bench-vm *ARGS: build kernel
    ./integration/bench/vm-bench.sh --testvm --hull "{{ hull }}" "$@"
    ./integration/bench/vm-net-bench.sh --testvm --hull "{{ hull }}"

# TCP throughput both ways and small-request latency, a VM container against a native one on one
# bridge, in the test machine. ARGS: [-n N] [--mib M] [--requests R] (vm-net-bench.sh --help).
# Benchmark VM containers' networking against native containers'.
[positional-arguments]
bench-vm-net *ARGS: build kernel
    ./integration/bench/vm-net-bench.sh --testvm --hull "{{ hull }}" "$@"

# Checks run, exit codes, exec, -t, --memory, stop/kill, top, pause, rm on a busybox --rootfs,
# with private roots; podman and conmon come from Debian if missing. Needs root.
# `just podman --testvm` runs the same checks in the test machine (cgroup v2).
# Drive hull with Debian's podman (integration/podman/README.md).
[positional-arguments]
podman *ARGS: build
    @[ "$(id -u)" -eq 0 ] || { echo "podman: needs root; run: sudo just podman" >&2; exit 1; }
    ./integration/podman/run.sh --hull "{{ hull }}" "$@"

# The user hull-rootless is made with ranges in /etc/subuid and /etc/subgid; checks ids, slirp4netns
# networking and -p, exec, stop, rm, leftovers (integration/podman/README.md). Needs root to set up.
# Rootless podman: an ordinary user's podman runs its containers on hull.
podman-rootless *ARGS: build
    @[ "$(id -u)" -eq 0 ] || { echo "podman-rootless: needs root to make the user; run: sudo just podman-rootless" >&2; exit 1; }
    ./integration/podman/rootless.sh --hull "{{ hull }}" {{ ARGS }}

# Checks run --rm (output, exit codes, stdin, -t), -d + task exec (output, exit code, -t), task
# ps/metrics, pause/resume, kill (TERM, KILL, --all) + delete, --memory-limit (read inside, OOM)
# through containerd-shim-runc-v2 with hull as its runc, on a busybox image built on the fly;
# private root/state/socket; containerd comes from Debian if missing. Needs root.
# Drive hull with Debian's containerd and ctr (integration/containerd/README.md).
[positional-arguments]
containerd *ARGS: build
    @[ "$(id -u)" -eq 0 ] || { echo "containerd: needs root; run: sudo just containerd" >&2; exit 1; }
    ./integration/containerd/run.sh --hull "{{ hull }}" "$@"

# Builds the programs with Go once (~3 min; Go 1.23 from bookworm-backports if missing), cached in
# /var/cache/hull-oci-validation; fails when a program's result differs from expected-v1.txt
# (v2.txt in the test machine). ARGS: --testvm, --runtime PATH (e.g. /usr/sbin/runc), --only NAME,
# --timeout S, --keep (integration/oci-validation/README.md). Needs root.
# Run the OCI runtime-tools validation programs against hull, one TAP line each, and a total.
[positional-arguments]
oci-validation *ARGS: build
    @[ "$(id -u)" -eq 0 ] || { echo "oci-validation: needs root; run: sudo just oci-validation" >&2; exit 1; }
    ./integration/oci-validation/run.sh --hull "{{ hull }}" "$@"

# The OCI validation programs in the test machine (cgroup v2), against expected-v2.txt.
oci-validation-testvm: build
    @[ "$(id -u)" -eq 0 ] || { echo "oci-validation-testvm: needs root" >&2; exit 1; }
    ./integration/oci-validation/run.sh --testvm --hull "{{ hull }}"

# Every container a KVM microVM (hull run as hull-vm, the guest kernel carried in), checked
# against expected-vm.txt. ARGS: --only NAME, --timeout S, --no-expect.
# The OCI validation programs in the test machine on the vm backend.
[positional-arguments]
oci-validation-vm *ARGS: build kernel
    @[ "$(id -u)" -eq 0 ] || { echo "oci-validation-vm: needs root" >&2; exit 1; }
    ./integration/oci-validation/run.sh --testvm --backend vm --hull "{{ hull }}" "$@"

# Real clients drive hull: containerd (ctr), podman (as root and rootless), Kubernetes' CRI (containerd's CRI plugin) and Docker, each with its own private daemon; fails if any fails.
conformance: build
    #!/usr/bin/env bash
    set -uo pipefail
    [ "$(id -u)" -eq 0 ] || { echo "conformance: needs root; run: sudo just conformance" >&2; exit 1; }
    rc=0
    for suite in containerd podman podman-rootless cri docker; do
        echo "=== $suite ==="
        t0=$(date +%s)
        case "$suite" in
            podman-rootless) ./integration/podman/rootless.sh --hull "{{ hull }}" || rc=1 ;;
            *) ./integration/$suite/run.sh --hull "{{ hull }}" || rc=1 ;;
        esac
        echo "=== $suite: $(($(date +%s) - t0)) s ==="
    done
    exit "$rc"

# ARGS: --keep, --handlers "hull runc", --testvm (integration/cri/README.md); `just conformance-vm` runs it on hull-vm and hull in the test machine.
# Kubernetes' CRI drives hull: containerd's CRI plugin with hull and runc as runtime handlers, pods over the CRI socket.
[positional-arguments]
cri *ARGS: build
    @[ "$(id -u)" -eq 0 ] || { echo "cri: needs root; run: sudo just cri" >&2; exit 1; }
    ./integration/cri/run.sh --hull "{{ hull }}" "$@"

# ARGS: --keep, --runtimes "hull runc" (integration/docker/README.md); `just conformance-vm` runs it on hull-vm in the test machine.
# Docker drives hull: a private dockerd (Debian's docker.io 20.10), hull registered as a runtime, the same checks on hull and runc.
[positional-arguments]
docker *ARGS: build
    @[ "$(id -u)" -eq 0 ] || { echo "docker: needs root; run: sudo just docker" >&2; exit 1; }
    ./integration/docker/run.sh --hull "{{ hull }}" "$@"

# Every container a VM container (hull's VMM boots a KVM microVM, the workload runs in the
# guest), inside the test machine (ordinary /dev/kvm, pure cgroup v2): the shim's runc and
# podman's runtime run hull as `hull-vm`. Prints each suite's PASS/FAIL/SKIP lines and totals.
# The containerd, podman, CRI, docker and rootless podman suites on VM containers in the test machine (the CRI's and rootless podman's also natively there, on cgroup v2); fails if any fails.
conformance-vm: build kernel
    #!/usr/bin/env bash
    set -uo pipefail
    [ "$(id -u)" -eq 0 ] || { echo "conformance-vm: needs root; run: sudo just conformance-vm" >&2; exit 1; }
    rc=0
    summary=()
    # podman-rootless: an ordinary user's podman, on VM containers, then natively on cgroup v2.
    run_suite() {
        case "$1" in
            podman-rootless) ./integration/podman/rootless.sh --testvm --backend vm --hull "{{ hull }}" ;;
            podman-rootless-native) ./integration/podman/rootless.sh --testvm --hull "{{ hull }}" ;;
            *) ./integration/$1/run.sh --testvm --backend vm --hull "{{ hull }}" ;;
        esac
    }
    for suite in containerd podman cri docker podman-rootless podman-rootless-native; do
        echo "=== $suite (in the test machine) ==="
        t0=$(date +%s)
        s=0
        out="$(mktemp /tmp/hull-conformance-vm.XXXXXX)"
        run_suite "$suite" 2>&1 | tee "$out" || s=$?
        # A guest whose CPU triple-faulted in the emulated machine (about one VM container in a
        # hundred there, integration/testvm/README.md), or that stalled while booting so that its
        # agent never connected (backend.sh's start_runner retries the same two), fails the
        # checks after it too: the suite runs once more. A real fault fails the rerun as well.
        # So does one whose test machine stalled on both of testvm's tries (status 123: its
        # kernel panicked twice, as it did in a CI run on 2026-12-07).
        if [ "$s" != 0 ] && { [ "$s" = 123 ] || grep -qE 'triple-faulted \(KVM_EXIT_SHUTDOWN|guest agent did not connect within' "$out"; }; then
            echo "RETRY $suite: a guest's CPU triple-faulted, its boot stalled or the test machine stalled twice (status $s, the messages above); the whole suite once more"
            s=0
            run_suite "$suite" 2>&1 | tee "$out" || s=$?
        fi
        [ "$s" = 0 ] || rc=1
        summary+=("$(printf '%-22s %-10s %5d s  %s' "$suite" "$([ "$s" = 0 ] && echo ok || echo "FAILED($s)")" $(($(date +%s) - t0)) \
            "$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n1)")")
        # A failed suite's FAIL lines and the first lines of each reason go in the table too:
        # the end of CI's log is what its report keeps.
        fails="$(awk '/^FAIL/ { n = 4; print "    " $0; next } n > 0 && /^      / { n--; print "    " $0; next } { n = 0 }' "$out" | head -n 24)"
        [ "$s" = 0 ] || [ -z "$fails" ] || summary+=("$fails")
        rm -f "$out"
    done
    echo "=== conformance-vm ==="
    printf '%s\n' "${summary[@]}"
    exit "$rc"

# Everything CI runs (README's test command): clippy and rustfmt, a short run of each fuzz target, the cargo tests on this host (cgroup v1 hybrid),
# the real clients (containerd, podman, Kubernetes' CRI, docker), the OCI runtime-tools validation programs against their
# expectations, and in the nested test machine its smoke test, the
# cargo integration tests again under pure cgroup v2, the validation programs again,
# hull under a real systemd as PID 1,
# hull vm-run end to end in hull's own VMM, the vm backend's container lifecycle, the cargo
# lifecycle tests on VM containers, the containerd and podman suites again on VM containers, and the
# validation programs on VM containers (all but one slow program); runs them all, fails if any fails, and
# ends with a
# table of each step's result and duration and the test-machine stalls that were retried.
ci:
    #!/usr/bin/env bash
    set -uo pipefail
    export HULL_TESTVM_STALL_LOG="$(mktemp /tmp/hull-ci-stalls.XXXXXX)"
    logs="$(mktemp -d /tmp/hull-ci-logs.XXXXXX)"
    trap 'rm -f "$HULL_TESTVM_STALL_LOG"; rm -rf "$logs"' EXIT
    rc=0
    table=()
    failed=()
    t_all=$(date +%s)
    for step in lint fuzz-smoke test conformance oci-validation testvm-smoke testvm-tests oci-validation-testvm systemd-test vm-e2e vm-backend vm-tests conformance-vm oci-validation-vm; do
        args=()
        # The validation programs on VM containers (~12 min here) without linux_cgroups_cpus,
        # whose 0.5-cpu quotas bound the VMMs booting its 16 guests (~11 min more); its result
        # is the suite's v1-only cgroup reader, which oci-validation-testvm checks natively
        # (integration/oci-validation/README.md). Per-program and whole-run limits that keep a
        # hung guest from eating CI's time.
        limit=()
        if [ "$step" = oci-validation-vm ]; then
            args=(--skip linux_cgroups_cpus --timeout 600)
            limit=(HULL_TESTVM_TIMEOUT=2400)
        fi
        echo "=== just $step ${args[*]} ==="
        t0=$(date +%s)
        env "${limit[@]}" "{{ just_executable() }}" "$step" "${args[@]}" 2>&1 | tee "$logs/$step"
        s=${PIPESTATUS[0]}
        [ "$s" = 0 ] || { rc=1; failed+=("$step"); }
        table+=("$(printf '%-22s %-8s %5d s' "$step" "$([ "$s" = 0 ] && echo ok || echo "FAILED($s)")" $(($(date +%s) - t0)))")
    done
    # What failed, once more at the end where a truncated log still shows it.
    for step in "${failed[@]}"; do
        echo "=== just ci: what failed in $step ==="
        grep -E -i '^(FAIL|not ok|RETRY|error|---- )|panicked|FAILED|timed out|stall|hull: error' "$logs/$step" | grep -v '# TODO' | tail -n 25
        echo "--- the last lines of $step ---"
        tail -n 15 "$logs/$step"
    done
    echo "=== just ci: steps ==="
    printf '%s\n' "${table[@]}"
    printf '%-22s %-8s %5d s\n' total "$([ "$rc" = 0 ] && echo ok || echo FAILED)" $(($(date +%s) - t_all))
    if [ -s "$HULL_TESTVM_STALL_LOG" ]; then
        echo "=== just ci: TEST-MACHINE STALLS ($(wc -l <"$HULL_TESTVM_STALL_LOG")), each rerun on a fresh machine ==="
        cat "$HULL_TESTVM_STALL_LOG"
    else
        echo "test-machine stalls: none"
    fi
    # Checks rerun because a hull guest died in the emulated machine (each said RETRY).
    retries="$(grep -H -E '^(# )?RETRY ' "$logs"/* 2>/dev/null | sed "s|^$logs/||")"
    if [ -n "$retries" ]; then
        echo "=== just ci: GUEST RETRIES ($(printf '%s\n' "$retries" | wc -l)) ==="
        printf '%s\n' "$retries"
    else
        echo "guest retries: none"
    fi
    exit "$rc"

# tests/stress.rs with N lifecycles in a row and N/8 per parallel loop (16 loops): nothing may
# fail or be left (state, mounts, cgroups, processes, the caller's fds). CI runs it small.
# Soak hull itself on this host: many containers in a row and at once.
soak N="1000":
    @[ "$(id -u)" -eq 0 ] || { echo "soak: needs root" >&2; exit 1; }
    HULL_STRESS_ROUNDS="{{ N }}" cargo test --release --test stress -- --test-threads 1 --nocapture

# Boot N hull guests in a row in the test machine (1 and 2 vcpus, some with the serial console)
# and count the guests that hung and the test-machine freezes. ARGS: [--load K] [--limit S].
# Soak the test machine: how often a guest boot or the machine itself stalls.
[positional-arguments]
testvm-soak N="200" *ARGS: build kernel
    ./integration/testvm/soak.sh -n "$1" "${@:2}"

# Two VM containers on one bridge in the test machine, one fetching 4 MiB from the other N times;
# a round that stalls prints both guests' and the host's view of the path (integration/vm/vm2vm.sh).
# Soak the VM-to-VM network path.
vm-net-soak N="60": build kernel
    ./integration/vm/vm2vm.sh --testvm --hull "{{ hull }}" --rounds "{{ N }}"

# Each fuzz target for SECONDS (CI's smoke run; `just fuzz TARGET SECONDS` for a long one):
# a crash or a hang fails it, with the input under fuzz/artifacts/TARGET.
fuzz-smoke SECONDS="20":
    #!/usr/bin/env bash
    set -euo pipefail
    log="$(mktemp /tmp/hull-fuzz.XXXXXX)"
    trap 'rm -f "$log"' EXIT
    for t in vsock_packet virtqueue_chain virtio_fs_request config_json seccomp_profile state_json agent_frames; do
        echo "=== fuzz $t, {{ SECONDS }} s"
        s=0
        "{{ just_executable() }}" fuzz "$t" "{{ SECONDS }}" >"$log" 2>&1 || s=$?
        grep -E '^Done [0-9]+ runs' "$log" || true
        if [ "$s" != 0 ]; then
            tail -n 60 "$log"
            echo "fuzz $t: FAILED (exit $s)"
            exit 1
        fi
    done

# Fuzz one target (vsock_packet, virtqueue_chain, virtio_fs_request, config_json, seccomp_profile,
# state_json, agent_frames) for SECONDS (fuzz/README.md).
# Needs the nightly toolchain; installs cargo-fuzz when missing. New corpus entries go under
# target/fuzz-corpus/TARGET (the seeds in fuzz/corpus/ stay as they are), crashes under
# fuzz/artifacts/TARGET (an input that runs over 30 s counts as a hang). Builds in target/fuzz, or in $HULL_FUZZ_TARGET_DIR.
fuzz TARGET SECONDS="60":
    #!/usr/bin/env bash
    set -euo pipefail
    rustup toolchain list | grep -q '^nightly' || { echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
    root="{{ justfile_directory() }}"
    export CARGO_TARGET_DIR="${HULL_FUZZ_TARGET_DIR:-$root/target/fuzz}"
    corpus="$root/target/fuzz-corpus/{{ TARGET }}"
    mkdir -p "$corpus"
    cd "$root/fuzz"
    cargo +nightly fuzz run "{{ TARGET }}" "$corpus" "corpus/{{ TARGET }}" -- -max_total_time="{{ SECONDS }}" -timeout=30
