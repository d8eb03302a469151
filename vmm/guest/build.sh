#!/usr/bin/env bash
# Build hull's guest kernel (see README.md next to this script).
#
# Debian's linux-source-6.1 + `make tinyconfig` + kernel.config, built with the host's gcc,
# cached outside the work tree under a key made of the fragment, this script's version and
# the linux-source package version, then installed where hull looks for it.
set -euo pipefail

SCRIPT_VERSION="hull-guest-kernel-build 1"
SRC_PKG="linux-source-6.1"
SRC_TARBALL="/usr/src/${SRC_PKG}.tar.xz"
# What the build needs on a fresh Debian 12: the source, a compiler and binutils (strip),
# make, Kconfig's lexer and parser generators, bc (kernel/time), libelf for objtool, xz to
# unpack the source, zstd to compress the bzImage's payload.
PACKAGES=("$SRC_PKG" build-essential gcc make binutils libc6-dev flex bison bc libelf-dev
          xz-utils zstd tar util-linux)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FRAGMENT="$HERE/kernel.config"
CACHE_DIR="${HULL_KERNEL_CACHE:-/var/cache/hull-kernel}"
INSTALL_DIR="${HULL_KERNEL_INSTALL_DIR:-/usr/local/share/hull}"
JOBS="${HULL_KERNEL_JOBS:-$(nproc)}"
KEEP_SOURCE=0
PRINT_PATH=0
FORCE=0
NO_INSTALL=0
VERBOSE=0
CONFIG_ONLY=0

log() { printf 'guest-kernel: %s\n' "$*" >&2; }
die() { printf 'guest-kernel: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<EOF
usage: $0 [options]

Builds hull's guest kernel (bzImage and ELF vmlinux) from Debian's $SRC_PKG with
$FRAGMENT on top of tinyconfig, caches it, and installs it.

  --install-dir DIR  install vmlinuz (bzImage) and vmlinux here
                     (default \$HULL_KERNEL_INSTALL_DIR or /usr/local/share/hull)
  --no-install       build (or find in the cache) only, install nothing
  --print-path       print the cached bzImage's path without building or installing
                     anything; exit 0 if it exists, 1 if not
  --keep-source      keep the configured source tree, in <cache>/<key>/$SRC_PKG
  --force            rebuild even if the cache has this key
  --config-only      configure and check only (no compile, no cache entry, no install);
                     print the final .config on stdout
  -j, --jobs N       parallel make jobs (default \$HULL_KERNEL_JOBS or nproc: $JOBS)
  -v, --verbose      show the kernel build's output (it always goes to a log file)
  -h, --help         this text

Environment: HULL_KERNEL_CACHE (default /var/cache/hull-kernel), HULL_KERNEL_INSTALL_DIR,
HULL_KERNEL_JOBS. Missing packages are installed with apt-get (root, or sudo).
Cache entry: <cache>/<key>/{bzImage,vmlinux,config,build.log}, key = sha256 of the fragment,
this script's version ("$SCRIPT_VERSION") and the $SRC_PKG package version.
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --install-dir) [ $# -ge 2 ] || die "--install-dir needs a directory"; INSTALL_DIR="$2"; shift 2 ;;
        --install-dir=*) INSTALL_DIR="${1#*=}"; shift ;;
        --no-install) NO_INSTALL=1; shift ;;
        --print-path) PRINT_PATH=1; shift ;;
        --keep-source) KEEP_SOURCE=1; shift ;;
        --force) FORCE=1; shift ;;
        --config-only) CONFIG_ONLY=1; shift ;;
        -j|--jobs) [ $# -ge 2 ] || die "$1 needs a number"; JOBS="$2"; shift 2 ;;
        --jobs=*) JOBS="${1#*=}"; shift ;;
        -j[0-9]*) JOBS="${1#-j}"; shift ;;
        -v|--verbose) VERBOSE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "bad job count: $JOBS"
[ -f "$FRAGMENT" ] || die "no config fragment at $FRAGMENT"
[ -n "$INSTALL_DIR" ] || die "empty install directory"

# ---- packages ---------------------------------------------------------------------------

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages and no apt-get: ${missing[*]}"
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    for p in "${missing[@]}"; do
        installed "$p" || die "apt-get did not install $p"
    done
}

# The linux-source version the build uses: the installed one, else the one apt would
# install (so --print-path works before anything is installed). Empty when unknown.
source_version() {
    local v
    v="$(dpkg-query -W -f='${Version}' "$SRC_PKG" 2>/dev/null || true)"
    if installed "$SRC_PKG" && [ -n "$v" ]; then
        printf '%s' "$v"
        return
    fi
    if command -v apt-cache >/dev/null 2>&1; then
        apt-cache policy "$SRC_PKG" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
    fi
}

cache_key() {
    { cat "$FRAGMENT"; printf '\n%s\n%s %s\n' "$SCRIPT_VERSION" "$SRC_PKG" "$1"; } \
        | sha256sum | cut -d' ' -f1
}

# ---- --print-path -------------------------------------------------------------------------

SRC_VERSION="$(source_version)"
if [ "$PRINT_PATH" -eq 1 ]; then
    if [ -z "$SRC_VERSION" ]; then
        log "$SRC_PKG is neither installed nor known to apt; cannot compute the cache key"
        exit 1
    fi
    path="$CACHE_DIR/$(cache_key "$SRC_VERSION")/bzImage"
    printf '%s\n' "$path"
    [ -f "$path" ]
    exit $?
fi

# ---- install ------------------------------------------------------------------------------

# Copies one file into place atomically (temporary name in the same directory, then rename).
install_file() {
    local src="$1" dst="$2" tmp
    if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
        return 0
    fi
    tmp="$(dirname "$dst")/.$(basename "$dst").tmp.$$"
    cp "$src" "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$dst"
}

install_kernel() {
    local entry="$1"
    if [ "$NO_INSTALL" -eq 1 ]; then
        log "cached at $entry (not installed: --no-install)"
        printf '%s\n' "$entry/bzImage"
        return 0
    fi
    mkdir -p "$INSTALL_DIR"
    install_file "$entry/bzImage" "$INSTALL_DIR/vmlinuz"
    install_file "$entry/vmlinux" "$INSTALL_DIR/vmlinux"
    # Entries cached before System.map was kept have none; nothing needs it but diagnosis.
    if [ -f "$entry/System.map" ]; then install_file "$entry/System.map" "$INSTALL_DIR/System.map"; fi
    log "installed $INSTALL_DIR/vmlinuz (bzImage, $(stat -c %s "$INSTALL_DIR/vmlinuz") bytes) and $INSTALL_DIR/vmlinux (ELF, PVH entry)"
    printf '%s\n' "$INSTALL_DIR/vmlinuz"
}

cached() { [ -f "$1/bzImage" ] && [ -f "$1/vmlinux" ] && [ -f "$1/config" ]; }

if [ -n "$SRC_VERSION" ] && [ "$FORCE" -eq 0 ] && [ "$CONFIG_ONLY" -eq 0 ]; then
    ENTRY="$CACHE_DIR/$(cache_key "$SRC_VERSION")"
    if cached "$ENTRY"; then
        log "cache hit: $ENTRY ($SRC_PKG $SRC_VERSION)"
        install_kernel "$ENTRY"
        exit 0
    fi
fi

# ---- build --------------------------------------------------------------------------------

ensure_packages
SRC_VERSION="$(source_version)"
[ -n "$SRC_VERSION" ] || die "cannot tell the version of $SRC_PKG"
[ -f "$SRC_TARBALL" ] || die "$SRC_PKG $SRC_VERSION is installed but $SRC_TARBALL is missing"
KEY="$(cache_key "$SRC_VERSION")"
ENTRY="$CACHE_DIR/$KEY"

mkdir -p "$CACHE_DIR"
# One build per cache at a time; a second caller waits, then finds the entry.
exec 9>"$CACHE_DIR/.lock"
if ! flock -n 9; then
    log "another build holds $CACHE_DIR/.lock; waiting"
    flock 9
fi
# Work directories left by a build that was killed (no other build runs while we hold the lock).
rm -rf "$CACHE_DIR"/.build-*
if cached "$ENTRY" && [ "$FORCE" -eq 0 ] && [ "$CONFIG_ONLY" -eq 0 ]; then
    log "cache hit: $ENTRY ($SRC_PKG $SRC_VERSION)"
    install_kernel "$ENTRY"
    exit 0
fi

WORK="$(mktemp -d "$CACHE_DIR/.build-$KEY.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
OUTDIR="$WORK/out"
mkdir -p "$OUTDIR"
LOG="$OUTDIR/build.log"
SRC="$WORK/$SRC_PKG"
MAKE=(make -C "$SRC" ARCH=x86_64 "-j$JOBS")

# Runs a step with its output in the log (and on the terminal with --verbose); on failure
# shows the log's tail and keeps a copy of it next to the cache entry.
step() {
    local rc=0
    if [ "$VERBOSE" -eq 1 ]; then
        "$@" 2>&1 | tee -a "$LOG" || rc=$?
    else
        "$@" >>"$LOG" 2>&1 || rc=$?
    fi
    if [ "$rc" -ne 0 ]; then
        tail -n 40 "$LOG" >&2 || true
        cp "$LOG" "$CACHE_DIR/failed-$KEY.log" 2>/dev/null || true
        die "'$*' failed (exit $rc); log: $CACHE_DIR/failed-$KEY.log"
    fi
}

START=$(date +%s)
log "$SRC_PKG $SRC_VERSION, key $KEY, $JOBS jobs"
log "work directory $WORK (log: $LOG)"
log "unpacking $SRC_TARBALL"
tar -C "$WORK" -xf "$SRC_TARBALL"
[ -d "$SRC" ] || die "$SRC_TARBALL did not unpack to $SRC_PKG/"

log "configuring: tinyconfig + $(basename "$FRAGMENT")"
step "${MAKE[@]}" tinyconfig
step env KCONFIG_CONFIG="$SRC/.config" "$SRC/scripts/kconfig/merge_config.sh" -m -O "$SRC" \
    "$SRC/.config" "$FRAGMENT"
step "${MAKE[@]}" olddefconfig

# Every option the fragment sets must be in the final .config as written, and every option
# it turns off must be off: olddefconfig silently drops what has an unmet dependency.
check_config() {
    local cfg="$1" line opt bad=() n=0
    while IFS= read -r line || [ -n "$line" ]; do
        line="${line%%[[:space:]]}"
        if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
            n=$((n + 1))
            opt="${BASH_REMATCH[1]}"
            if ! grep -qxF -- "$line" "$cfg"; then
                local got
                got="$(grep -E "^(# )?${opt}[= ]" "$cfg" || true)"
                bad+=("$line (got: ${got:-absent})")
            fi
        elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            n=$((n + 1))
            opt="${BASH_REMATCH[1]}"
            if grep -qE "^${opt}=" "$cfg"; then
                bad+=("$opt off (got: $(grep -E "^${opt}=" "$cfg"))")
            fi
        fi
    done <"$FRAGMENT"
    if [ ${#bad[@]} -gt 0 ]; then
        log "the fragment's options that did not survive olddefconfig (typo or unmet dependency):"
        printf 'guest-kernel:   %s\n' "${bad[@]}" >&2
        cp "$cfg" "$CACHE_DIR/failed-$KEY.config" 2>/dev/null || true
        die "${#bad[@]} option(s) dropped; final config: $CACHE_DIR/failed-$KEY.config"
    fi
    log "all $n options of the fragment are in the final .config"
}
check_config "$SRC/.config"
if [ "$CONFIG_ONLY" -eq 1 ]; then
    cat "$SRC/.config"
    exit 0
fi

log "compiling bzImage and vmlinux (make -j$JOBS)"
step "${MAKE[@]}" bzImage vmlinux

cp "$SRC/arch/x86/boot/bzImage" "$OUTDIR/bzImage"
strip --strip-all -o "$OUTDIR/vmlinux" "$SRC/vmlinux"
cp "$SRC/.config" "$OUTDIR/config"
# The symbols of the stripped vmlinux, for reading a stalled or crashed guest's instruction
# pointers (the test machine's stall report looks for it beside the kernel).
cp "$SRC/System.map" "$OUTDIR/System.map"
printf '%s\n%s %s\nkey %s\nbuilt %s\n' "$SCRIPT_VERSION" "$SRC_PKG" "$SRC_VERSION" "$KEY" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$OUTDIR/info"
if [ "$KEEP_SOURCE" -eq 1 ]; then
    mv "$SRC" "$OUTDIR/$SRC_PKG"
fi

# Publish the entry with one rename; --force replaces an old entry.
if [ -e "$ENTRY" ]; then
    mv "$ENTRY" "$WORK/old-entry"
fi
mv "$OUTDIR" "$ENTRY"
rm -f "$CACHE_DIR/failed-$KEY.log" "$CACHE_DIR/failed-$KEY.config"
ELAPSED=$(( $(date +%s) - START ))
log "built in $((ELAPSED / 60))m$((ELAPSED % 60))s: $ENTRY/bzImage ($(stat -c %s "$ENTRY/bzImage") bytes), vmlinux ($(stat -c %s "$ENTRY/vmlinux") bytes)"
[ "$KEEP_SOURCE" -eq 1 ] && log "source tree kept at $ENTRY/$SRC_PKG"
install_kernel "$ENTRY"
