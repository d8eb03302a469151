#!/usr/bin/env bash
# Builds the OCI runtime-tools validation programs (validation/NAME/NAME.go -> NAME.t, TAP on
# stdout) and runtimetest (the checker they run inside the container) with Go, into a cache
# outside the work tree, and prints that directory. A second run builds nothing.
#
#   integration/oci-validation/build.sh [--src DIR|TARBALL] [--cache DIR] [--rebuild]
#
# The suite is pinned to one upstream commit (RT_COMMIT below; the module's pseudo-version is
# RT_VERSION). Its source comes from, in order:
#   1. --src: a checkout or a .tar.gz of that commit (e.g. `git archive --prefix=X/ COMMIT`);
#   2. $CACHE/runtime-tools-SHORT.tar.gz (what --src or 4. left there before);
#   3. runtime-tools-SHORT.tar.gz in this directory: upstream's tree at that commit (Apache-2.0,
#      its LICENSE inside), kept in the repository because the build machines reach neither
#      GitHub nor the Go module proxy, and Debian packages no validation/ or runtimetest;
#   4. the Go module proxy: `go mod download github.com/opencontainers/runtime-tools@RT_VERSION`
#      (GOPROXY as the environment says; its dependencies come from the proxy too). The module
#      zip has no vendor/ folder, so this is the only way that needs the proxy at build time.
# A checkout or tarball carries upstream's vendor/ folder: those build offline (-mod=vendor).
#
# Go: the module needs Go >= 1.21 and Debian 12's golang is 1.19, so this uses `go` when it is
# new enough, else /usr/lib/go-1.2x (Debian's golang-1.2x-go), else installs golang-1.23-go from
# bookworm-backports with apt-get. GOTOOLCHAIN=local: no toolchain download.
#
# The cache: $HULL_OCI_VALIDATION_CACHE, else /var/cache/hull-oci-validation (root) or
# ~/.cache/hull-oci-validation, holding SHORT/ (the *.t programs, runtimetest and the suite's
# rootfs-amd64.tar.gz, which the programs untar into each bundle) and the source tarball.
set -euo pipefail

RT_COMMIT=5e639034dcdc2422164e3d7d76a737e2fb451a67
RT_VERSION=v0.9.1-0.20251205004911-5e639034dcdc
RT_SHORT="${RT_COMMIT:0:12}"
GO_MIN_MINOR=21

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
src=""
rebuild=0
if [ "$(id -u)" -eq 0 ]; then
    cache="${HULL_OCI_VALIDATION_CACHE:-/var/cache/hull-oci-validation}"
else
    cache="${HULL_OCI_VALIDATION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hull-oci-validation}"
fi
while [ $# -gt 0 ]; do
    case "$1" in
    --src) src="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 0 ;;
    *) echo "oci-validation build: unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf 'oci-validation build: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

out="$cache/$RT_SHORT"
if [ "$rebuild" -eq 0 ] && [ -f "$out/.complete" ]; then
    echo "$out"
    exit 0
fi
mkdir -p "$cache"

# ---------------------------------------------------------------- Go
go_minor() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }
find_go() {
    local g m
    for g in "$(command -v go 2>/dev/null || true)" $(ls -d /usr/lib/go-1.*/bin/go 2>/dev/null | sort -t. -k2 -n -r); do
        [ -n "$g" ] && [ -x "$g" ] || continue
        m="$(go_minor "$g")"
        if [ -n "$m" ] && [ "$m" -ge "$GO_MIN_MINOR" ]; then echo "$g"; return 0; fi
    done
    return 1
}
go="$(find_go || true)"
if [ -z "$go" ]; then
    command -v apt-get >/dev/null || die "no Go >= 1.$GO_MIN_MINOR and no apt-get to install one"
    [ "$(id -u)" -eq 0 ] || die "no Go >= 1.$GO_MIN_MINOR: install golang-1.23-go (bookworm-backports) as root"
    log "installing golang-1.23-go from bookworm-backports (apt)"
    apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q "$@" >&2; }
    if [ "$("$here/../../scripts/bookworm-backports.sh")" = added ]; then
        log "added Debian's bookworm-backports to apt's sources"
        apt_get update
    fi
    apt_get install -y --no-install-recommends -t bookworm-backports golang-1.23-go ||
        { apt_get update && apt_get install -y --no-install-recommends -t bookworm-backports golang-1.23-go; } ||
        die "could not install golang-1.23-go: is bookworm-backports in apt's sources?"
    go="$(find_go)" || die "golang-1.23-go installed but no Go >= 1.$GO_MIN_MINOR found"
fi
log "Go: $go ($("$go" env GOVERSION))"

# ---------------------------------------------------------------- source
work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOCACHE="$cache/gocache" GOPATH="$cache/gopath" GOFLAGS=""
tarball="$cache/runtime-tools-$RT_SHORT.tar.gz"
shared_tarball="$here/runtime-tools-$RT_SHORT.tar.gz"
mode=vendor
if [ -n "$src" ] && [ -d "$src" ]; then
    log "source: $src"
    cp -a "$src" "$work/src"
else
    [ -n "$src" ] && cp "$src" "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    [ ! -f "$tarball" ] && [ -f "$shared_tarball" ] && cp "$shared_tarball" "$tarball"
    if [ -f "$tarball" ]; then
        log "source: $tarball"
        mkdir "$work/src"
        tar -xzf "$tarball" -C "$work/src" --strip-components=1
    else
        log "source: the Go module proxy, github.com/opencontainers/runtime-tools@$RT_VERSION"
        dir="$("$go" mod download -json "github.com/opencontainers/runtime-tools@$RT_VERSION" |
            sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" ||
            die "no source: none given (--src), none cached, none at $shared_tarball, and the module proxy failed; give --src a checkout or a \`git archive --prefix=runtime-tools/ $RT_COMMIT\` .tar.gz"
        [ -d "$dir" ] || die "go mod download gave no directory"
        cp -a "$dir" "$work/src"
        chmod -R u+w "$work/src"
        mode=mod
    fi
fi
[ -f "$work/src/go.mod" ] && [ -d "$work/src/validation" ] || die "the source has no go.mod or validation/"
[ "$mode" = vendor ] && [ ! -d "$work/src/vendor" ] && mode=mod

# ---------------------------------------------------------------- build
t0=$(date +%s)
mkdir -p "$work/out"
(
    cd "$work/src"
    export GOFLAGS="-mod=$mode -trimpath"
    # runtimetest runs inside the suite's busybox rootfs: static, as upstream builds it.
    CGO_ENABLED=0 "$go" build -tags "netgo osusergo" -ldflags "-s -w" -o "$work/out/runtimetest" ./cmd/runtimetest
    # One go build for every program: the packages are compiled once and linked in parallel.
    mkdir "$work/progs"
    "$go" build -ldflags "-s -w" -o "$work/progs/" $(ls -d ./validation/*/ | grep -v '/util/$')
) >&2 || die "go build failed"
for p in "$work/progs"/*; do mv "$p" "$work/out/$(basename "$p").t"; done
cp "$work/src/rootfs-amd64.tar.gz" "$work/out/"
n=$(ls "$work/out"/*.t | wc -l)
printf 'commit %s\nversion %s\ngo %s\nprograms %s\n' "$RT_COMMIT" "$RT_VERSION" "$("$go" env GOVERSION)" "$n" >"$work/out/.complete"
rm -rf "$out"
mv "$work/out" "$out"
log "built runtimetest and $n programs in $(($(date +%s) - t0)) s into $out"
echo "$out"
