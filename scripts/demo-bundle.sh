#!/usr/bin/env bash
# Builds a busybox OCI bundle: OUTDIR/rootfs (busybox-static and its applets) and
# OUTDIR/config.json (runc's default spec, hostname "hull-demo") whose program prints what the
# container sees: its hostname, its pid 1, its processes, its mounts and its user.
#
#   scripts/demo-bundle.sh [OUTDIR]      default: target/demo/bundle under the repository root
#
# Needs busybox-static and jq (scripts/setup.sh installs both). Rebuilds the bundle each run.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/target/demo/bundle}"

die() { printf 'demo-bundle: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=integration/lib.sh
. "$repo/integration/lib.sh"

command -v jq >/dev/null 2>&1 || die "jq not found (run scripts/setup.sh)"
busybox="$(find_busybox)" || die "no static busybox (run scripts/setup.sh: it installs busybox-static)"

mkdir -p "$out"
rootfs="$out/rootfs"
# A container that is still running has its mounts elsewhere (its own mount namespace), but
# never cross into another filesystem when clearing the old rootfs.
rm -rf --one-file-system "$rootfs" "$out/config.json"

busybox_rootfs "$rootfs" || die "cannot make a busybox rootfs in $rootfs"

# What the container runs: a shell, which stays pid 1 while it prints.
read -r -d '' script <<'EOF' || true
echo "hostname: $(hostname)"
echo "my pid:   $$"
echo "pid 1:    $(tr '\0' '\n' </proc/1/cmdline | head -n 2 | tr '\n' ' ')... ($(readlink /proc/1/exe))"
echo "user:     $(id)"
echo "--- processes (ps)"
ps -o pid,user,comm
echo "--- mounts (/proc/self/mounts)"
cat /proc/self/mounts
EOF

# runc's default config (runc spec), the same shape as tests/common/mod.rs uses.
jq -n --arg script "$script" '{
    ociVersion: "1.2.0",
    process: {
        terminal: false,
        user: {uid: 0, gid: 0},
        args: ["sh", "-c", $script],
        env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        cwd: "/",
        capabilities: {
            bounding: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            effective: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            permitted: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        },
        rlimits: [{type: "RLIMIT_NOFILE", hard: 1024, soft: 1024}],
        noNewPrivileges: true
    },
    root: {path: "rootfs", readonly: false},
    hostname: "hull-demo",
    mounts: [
        {destination: "/proc", type: "proc", source: "proc"},
        {destination: "/dev", type: "tmpfs", source: "tmpfs",
         options: ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {destination: "/dev/pts", type: "devpts", source: "devpts",
         options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {destination: "/dev/shm", type: "tmpfs", source: "shm",
         options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {destination: "/dev/mqueue", type: "mqueue", source: "mqueue",
         options: ["nosuid", "noexec", "nodev"]},
        {destination: "/sys", type: "sysfs", source: "sysfs",
         options: ["nosuid", "noexec", "nodev", "ro"]}
    ],
    linux: {
        resources: {devices: [{allow: false, access: "rwm"}]},
        namespaces: [
            {type: "pid"}, {type: "network"}, {type: "ipc"}, {type: "uts"}, {type: "mount"}
        ],
        maskedPaths: ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
            "/sys/firmware", "/proc/scsi"],
        readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    }
}' >"$out/config.json"

printf 'demo-bundle: wrote %s (rootfs with %s, config.json)\n' "$out" "$busybox" >&2
