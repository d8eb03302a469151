# The commands a person types. `just` alone lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

hull := justfile_directory() / "target/release/hull"
demo_dir := justfile_directory() / "target/demo"

# List the recipes.
default:
    @{{ just_executable() }} --list --unsorted

# Install what hull needs on Debian 12 (apt packages, just); idempotent.
setup:
    ./scripts/setup.sh

# Build the release binary (target/release/hull).
build:
    cargo build --release

# Build a busybox bundle and run it natively with hull: prints what the container sees (root).
demo: setup build
    #!/usr/bin/env bash
    set -euo pipefail
    [ "$(id -u)" -eq 0 ] || { echo "demo: hull needs root here; run: sudo just demo" >&2; exit 1; }
    ./scripts/demo-bundle.sh "{{ demo_dir }}/bundle"
    id="demo-$$"
    echo "--- hull run --bundle {{ demo_dir }}/bundle $id: what the container saw ---"
    rc=0
    "{{ hull }}" --root "{{ demo_dir }}/state" run --bundle "{{ demo_dir }}/bundle" "$id" </dev/null || rc=$?
    echo "--- container exited with status $rc ---"
    exit "$rc"

# Run every test (unit and integration; integration tests need root). ARGS go to cargo test.
test *ARGS:
    @[ "$(id -u)" -eq 0 ] || echo "test: not root: the integration tests need root and will fail" >&2
    cargo test --workspace --no-fail-fast {{ ARGS }}

# Clippy with warnings as errors, and rustfmt's check.
lint:
    #!/usr/bin/env bash
    set -uo pipefail
    rc=0
    cargo clippy --workspace --all-targets -- -D warnings || rc=1
    cargo fmt --all --check || rc=1
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
