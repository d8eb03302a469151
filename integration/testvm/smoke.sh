#!/usr/bin/env bash
# Checks the test machine: boots it once and runs guest/smoke inside, which looks at the cgroup
# v2 hierarchy (controllers present and enabled, a child cgroup usable, no v1 mounts) and runs
# kvm-smoke (a KVM VM running a few real-mode instructions, with kvm-ioctls). Extra arguments
# go to testvm.sh. Exit status: 0 when all is well.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

target="$repo/target/testvm/kvm-smoke"
cargo build --release --locked --quiet --manifest-path "$here/kvm-smoke/Cargo.toml" --target-dir "$target" \
    --target x86_64-unknown-linux-gnu
exec "$here/testvm.sh" --no-hull \
    --add "$target/x86_64-unknown-linux-gnu/release/kvm-smoke:/usr/local/bin/kvm-smoke" \
    --add "$here/guest/smoke:/usr/local/bin/testvm-smoke" \
    "$@" -- testvm-smoke
