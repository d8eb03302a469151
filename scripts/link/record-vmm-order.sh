#!/usr/bin/env bash
# Records scripts/link/vmm.order: the functions a VMM runs (`hull vm-run`, a VM container's VMM
# through create, start and exec) that hull.order does not already place, so that the link puts
# them side by side after the lifecycle's. `just link-order-vmm`; root, the guest kernel (`just
# kernel`) and the test machine (integration/testvm), where the VMM can run.
#
# How: a release build that keeps its symbols (HULL_LINK_KEEP_SYMBOLS=1; the same layout as the
# stripped one) runs vmm-pages.sh in the test machine, which prints the pages of the binary the
# VMM touched; the functions on those pages are candidates. Then the same build linked in a
# shuffled order (HULL_LINK_ORDER) runs again: a function on a touched page in both layouts ran
# (vmm-order.py); a third layout, shuffled another way, drops most of the functions that shared
# a touched page with one that ran twice by chance. Three test-machine runs of ~15 s and three
# links, then the release build again: ~3 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "record-vmm-order: needs root" >&2; exit 1; }
kernel="${HULL_KERNEL:-/usr/local/share/hull/vmlinuz}"
[ -f "$kernel" ] || { echo "record-vmm-order: no guest kernel at $kernel (just kernel)" >&2; exit 1; }
bin=target/x86_64-unknown-linux-gnu/release/hull
work=target/link-order-vmm
rm -rf "$work"
mkdir -p "$work"

# build ORDER OUT: a symbol-keeping release build linked with ORDER ("" for the project's), as OUT.
build() {
    touch src/main.rs
    HULL_LINK_KEEP_SYMBOLS=1 HULL_LINK_ORDER="$1" cargo build --release
    cp "$bin" "$2"
}
# pages HULL OUT: vmm-pages.sh's VMMPAGE lines for HULL, from the test machine.
pages() {
    integration/testvm/testvm.sh --timeout 600 --hull "$1" --add "$kernel" \
        --add scripts/link/vmm-pages.sh:/vmm-pages.sh --add integration/lib.sh:/lib.sh \
        -- sh /vmm-pages.sh --kernel "$kernel" >"$work/testvm.log" 2>&1 \
        || { tail -n 40 "$work/testvm.log" >&2; echo "record-vmm-order: vmm-pages.sh failed" >&2; exit 1; }
    tr -d '\r' <"$work/testvm.log" | grep '^VMMPAGE ' >"$2"
}

build "" "$work/hull-0"
pages "$work/hull-0" "$work/pages-0"
scripts/link/vmm-order.py touched "$work/hull-0" "$work/pages-0" "$work/touched-0"
for seed in 1 2; do
    scripts/link/vmm-order.py shuffle "$work/hull-0" "$seed" "$work/shuffled-$seed.order"
    build "$(pwd)/$work/shuffled-$seed.order" "$work/hull-$seed"
    pages "$work/hull-$seed" "$work/pages-$seed"
    scripts/link/vmm-order.py touched "$work/hull-$seed" "$work/pages-$seed" "$work/touched-$seed"
done
scripts/link/vmm-order.py write scripts/link/hull.order "$work"/touched-[012] scripts/link/vmm.order
touch src/main.rs
cargo build --release
