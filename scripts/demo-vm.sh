#!/usr/bin/env bash
# Runs the demo bundle's program in a KVM microVM with `hull vm-run`: hull's VMM boots the guest
# kernel with hull as /init, shares BUNDLE/rootfs over virtio-fs and runs the bundle's
# process.args in it, then exits with the program's status.
#
#   scripts/demo-vm.sh HULL KERNEL BUNDLE
#
# Where /dev/kvm is ordinary KVM this runs hull directly. On hosts whose /dev/kvm comes from
# kvm_pvm (the project's build machines: PVM runs only kernels built for it, see docs/design.md) it
# runs the same command inside the nested test machine (integration/testvm), which has a real
# /dev/kvm.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { printf 'demo-vm: error: %s\n' "$*" >&2; exit 1; }

[ "$#" -eq 3 ] || die "usage: $0 HULL KERNEL BUNDLE"
hull="$1" kernel="$2" bundle="$3"
[ -x "$hull" ] || die "no hull at $hull (just build)"
[ -f "$kernel" ] || die "no guest kernel at $kernel (just kernel)"
[ -f "$bundle/config.json" ] || die "no bundle at $bundle (scripts/demo-bundle.sh)"

# The bundle's program, as an argument list.
mapfile -t args < <(jq -r '.process.args[]' "$bundle/config.json")
[ "${#args[@]}" -gt 0 ] || die "$bundle/config.json has no process.args"

if [ -e /sys/module/kvm_pvm ]; then
    echo "demo-vm: /dev/kvm here is PVM-backed; running inside the nested test machine" >&2
    exec "$repo/integration/testvm/testvm.sh" --hull "$hull" --add "$kernel:/vmlinuz" \
        --add "$bundle/rootfs:/demo/rootfs" -- \
        hull vm-run --kernel /vmlinuz --share /demo/rootfs -- "${args[@]}"
fi
exec "$hull" vm-run --kernel "$kernel" --share "$bundle/rootfs" -- "${args[@]}"
