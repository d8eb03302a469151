#!/usr/bin/env bash
# Installs what building, testing and demoing hull needs on Debian 12 (bookworm), assuming Rust
# (cargo) is already installed. Idempotent: a second run changes nothing and touches no network.
#
#   apt:  busybox-static (the test and demo rootfs), jq (demo bundle), runc (benchmarks),
#         golang-github-containers-common (the real seccomp profile the tests use),
#         gcc (the linker cargo calls), when missing; `apt-get update` only then.
#   just: from PyPI (`pip install rust-just`, which ships the binary), else
#         `cargo install just --locked`. Run as root, it also links `just` into /usr/local/bin
#         when the directory pip put it in is not on PATH.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Root runs apt directly; anyone else goes through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# ---------------------------------------------------------------------------------------------
# Rust

export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null 2>&1 \
    || die "cargo not found: install Rust first (https://rustup.rs), then run this again"

# ---------------------------------------------------------------------------------------------
# Debian packages

apt_packages=(busybox-static jq runc golang-github-containers-common)
# newuidmap/newgidmap, which rootless hull uses for subordinate id ranges (tests/rootless.rs).
apt_packages+=(uidmap)
# ip and tc, which the vm backend's network checks carry into the test machine.
command -v tc >/dev/null 2>&1 || apt_packages+=(iproute2)
# cargo links through `cc`; a Rust toolchain from rustup does not bring one.
command -v cc >/dev/null 2>&1 || apt_packages+=(gcc libc6-dev)

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for p in "${apt_packages[@]}"; do
    installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
else
    log "apt packages present: ${apt_packages[*]}"
fi

# busybox-static puts busybox in /bin (= /usr/bin on merged-/usr systems); the rootfs needs it.
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
    if [ -x "$b" ]; then busybox="$b"; break; fi
done
[ -n "$busybox" ] || die "busybox-static is installed but no /bin/busybox was found"

# ---------------------------------------------------------------------------------------------
# just

# Directories a `just` from pip or cargo may land in, whether or not they are on PATH.
just_dirs() {
    local py
    for py in python3 python; do
        if command -v "$py" >/dev/null 2>&1; then
            "$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true
            "$py" -c 'import site; print(site.USER_BASE + "/bin")' 2>/dev/null || true
            break
        fi
    done
    echo "$HOME/.local/bin"
    echo "${PYENV_ROOT:-$HOME/.pyenv}/shims"
    echo "$HOME/.cargo/bin"
}

# Prints the path of a working `just`, from PATH or from one of just_dirs.
find_just() {
    local d
    if command -v just >/dev/null 2>&1 && just --version >/dev/null 2>&1; then
        command -v just
        return 0
    fi
    while read -r d; do
        if [ -n "$d" ] && [ -x "$d/just" ] && "$d/just" --version >/dev/null 2>&1; then
            echo "$d/just"
            return 0
        fi
    done < <(just_dirs)
    return 1
}

pip_install_just() {
    local py=""
    for p in python3 python; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then
            py="$p"
            break
        fi
    done
    [ -n "$py" ] || { log "no python with pip found"; return 1; }
    local quiet=(--quiet --disable-pip-version-check --no-input)
    # A virtualenv or pyenv python first; then the user site (Debian's own python refuses both
    # without --break-system-packages, harmless here: rust-just is one binary, no imports).
    # Only the last attempt's errors are shown: the first two fail by design on Debian's python.
    export PIP_ROOT_USER_ACTION=ignore
    "$py" -m pip install "${quiet[@]}" rust-just 2>/dev/null \
        || "$py" -m pip install "${quiet[@]}" --user rust-just 2>/dev/null \
        || "$py" -m pip install "${quiet[@]}" --user --break-system-packages rust-just \
        || return 1
    # pyenv makes its shims on rehash; `python -m pip` does not trigger it.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
}

if just_path="$(find_just)"; then
    log "just present: $just_path ($("$just_path" --version))"
else
    log "installing just"
    if ! pip_install_just || ! just_path="$(find_just)"; then
        log "pip could not install just; trying cargo install just --locked (takes a few minutes)"
        cargo install just --locked
        just_path="$(find_just)" || die "just was installed but cannot be found"
    fi
    log "installed $("$just_path" --version) at $just_path"
fi

# Make sure a plain `just` works in a new shell.
if ! command -v just >/dev/null 2>&1; then
    just_dir="$(dirname "$just_path")"
    if [ "$(id -u)" -eq 0 ] && [ -d /usr/local/bin ]; then
        # pyenv shims work from anywhere; link the real binary rather than a shim otherwise.
        ln -sf "$(readlink -f "$just_path")" /usr/local/bin/just
        log "linked /usr/local/bin/just -> $(readlink -f "$just_path")"
    else
        log "note: $just_dir is not on PATH; add it, e.g.:"
        log "    export PATH=\"$just_dir:\$PATH\""
    fi
fi

log "ok: cargo $(cargo --version | cut -d' ' -f2), $("$just_path" --version), busybox at $busybox"
