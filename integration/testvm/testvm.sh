#!/usr/bin/env bash
# Runs a command inside an emulated x86 machine that has an ordinary /dev/kvm and a pure
# cgroup v2 hierarchy, and exits with the command's exit code.
#
#   testvm.sh [OPTIONS] [--] CMD [ARG...]
#
# Why: the project's machines are VMs whose /dev/kvm is PVM (stock guest kernels hang under it)
# and whose cgroups are a v1 hybrid. QEMU in TCG mode with `-cpu EPYC,+svm,+npt` boots Debian's
# linux-image-cloud-amd64; its kvm.ko, irqbypass.ko and kvm-amd.ko load inside and give an
# emulated AMD-V /dev/kvm. See integration/testvm/README.md.
#
# What it does, on a fresh Debian 12 machine:
#   - installs qemu-system-x86, cpio and busybox-static with apt-get when missing;
#   - fetches the kernel package that linux-image-cloud-amd64 depends on with `apt-get download`
#     and unpacks it with `dpkg-deb -x` into the cache (never installs it on the host);
#   - builds a base initramfs (static busybox, /init, the kvm modules), cached by content,
#     and a per-run archive (hull, the files named with --add, the shared libraries their ELF
#     executables need, the command), appended to it;
#   - boots it with QEMU TCG, streams the guest's console, and exits with CMD's exit code.
#
# Options:
#   --hull PATH          hull binary to carry in as /hull (also on PATH as `hull`);
#                        default target/x86_64-unknown-linux-gnu/release/hull when it exists. --no-hull: none.
#   --add HOST[:GUEST]   carry a file or directory in, at GUEST (default: the same absolute
#                        path as on the host). Repeatable. Dynamically linked ELF executables
#                        bring the libraries `ldd` lists.
#   --env NAME=VALUE     set an environment variable for CMD. Repeatable.
#   --cwd DIR            run CMD in DIR inside the guest (default /).
#   --timeout SECONDS    kill the guest after this long (default 600; HULL_TESTVM_TIMEOUT).
#   --boot-timeout SECS  the guest has stalled when it has not come up by then (default 90;
#                        HULL_TESTVM_BOOT_TIMEOUT).
#   --stall-timeout SECS the guest has stalled when its heartbeat (a line a second on its
#                        second serial port) stops for this long (default 60;
#                        HULL_TESTVM_STALL_TIMEOUT; 0: no stall detection after boot).
#   --stall-retries N    after a stall, rerun the command on a fresh machine up to N times
#                        (default 1; HULL_TESTVM_STALL_RETRIES). Each stall is reported
#                        loudly, with what QEMU's monitor says the vcpus were doing. A panic
#                        of the test machine's own kernel (not a nested guest's: the command's
#                        exit status never came) counts as a stall. A command may print
#                        `HULL-TESTVM-DONE WORD` lines (WORD: letters, digits, `._=-`) for the
#                        parts of its work it has finished: a rerun finds them, from every
#                        earlier try, in $HULL_TESTVM_DONE (space-separated), and can go on
#                        from there instead of doing them again (run-tests.sh does).
#   --mem SIZE           guest memory (default 4G; HULL_TESTVM_MEM).
#   --cpus N             guest vcpus (default 2; HULL_TESTVM_CPUS).
#   --append ARGS        extra kernel command line arguments.
#   --verbose            show kernel messages (drops `quiet`) and what the host side does
#                        (HULL_TESTVM_VERBOSE=1).
#   -i, --interactive    attach the terminal to the guest console (CMD defaults to sh);
#                        QEMU's escape is Ctrl-A X. The exit code is not reported.
#
# Environment: HULL_TESTVM_CACHE (cache directory; default ${XDG_CACHE_HOME:-/var/cache}/hull-testvm
# as root, ~/.cache/hull-testvm otherwise), HULL_TESTVM_KERNEL_PACKAGE (default
# linux-image-cloud-amd64), HULL_TESTVM_KERNEL_SUITE (take that package from this apt suite,
# e.g. bookworm-backports; default: apt's candidate), HULL_TESTVM_QEMU (default
# qemu-system-x86_64), and for experiments
# with the emulation (integration/testvm/README.md, "Stalls"): HULL_TESTVM_ACCEL (QEMU's -accel,
# default tcg,thread=multi), HULL_TESTVM_CPU (QEMU's -cpu), HULL_TESTVM_APPEND (kernel command
# line words, e.g. kvm_amd.npt=0: MODULE.PARAM words reach the kvm modules),
# HULL_TESTVM_STALL_LOG (a file each stall appends a line to).
#
# Exit status: CMD's exit status; 123 when the machine stalled (or its kernel panicked) on
# every try (see --stall-timeout); 124 when the guest timed out; 125 when testvm itself failed (preparing the
# machine, or the guest stopped without reporting CMD's exit status); 2 on bad usage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

log() { printf 'testvm: %s\n' "$*" >&2; }
vlog() { if [ "$verbose" = 1 ]; then log "$@"; fi; }
die() { log "error: $*"; exit 125; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# Arguments

hull_bin=""
hull_explicit=0
no_hull=0
adds=()
envs=()
guest_cwd=/
timeout_s="${HULL_TESTVM_TIMEOUT:-600}"
boot_timeout_s="${HULL_TESTVM_BOOT_TIMEOUT:-90}"
stall_timeout_s="${HULL_TESTVM_STALL_TIMEOUT:-60}"
stall_retries="${HULL_TESTVM_STALL_RETRIES:-1}"
mem="${HULL_TESTVM_MEM:-4G}"
cpus="${HULL_TESTVM_CPUS:-2}"
append_extra=""
verbose="${HULL_TESTVM_VERBOSE:-0}"
interactive=0

need_arg() { [ "$#" -ge 2 ] || { log "$1 needs an argument"; exit 2; }; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --hull) need_arg "$@"; hull_bin="$2"; hull_explicit=1; shift 2 ;;
        --hull=*) hull_bin="${1#*=}"; hull_explicit=1; shift ;;
        --no-hull) no_hull=1; shift ;;
        --add) need_arg "$@"; adds+=("$2"); shift 2 ;;
        --add=*) adds+=("${1#*=}"); shift ;;
        --env) need_arg "$@"; envs+=("$2"); shift 2 ;;
        --env=*) envs+=("${1#*=}"); shift ;;
        --cwd) need_arg "$@"; guest_cwd="$2"; shift 2 ;;
        --timeout) need_arg "$@"; timeout_s="$2"; shift 2 ;;
        --boot-timeout) need_arg "$@"; boot_timeout_s="$2"; shift 2 ;;
        --stall-timeout) need_arg "$@"; stall_timeout_s="$2"; shift 2 ;;
        --stall-retries) need_arg "$@"; stall_retries="$2"; shift 2 ;;
        --mem) need_arg "$@"; mem="$2"; shift 2 ;;
        --cpus) need_arg "$@"; cpus="$2"; shift 2 ;;
        --append) need_arg "$@"; append_extra="$append_extra $2"; shift 2 ;;
        --verbose|-v) verbose=1; shift ;;
        --interactive|-i) interactive=1; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) log "unknown option: $1 (see --help)"; exit 2 ;;
        *) break ;;
    esac
done
cmd=("$@")
if [ "${#cmd[@]}" -eq 0 ]; then
    if [ "$interactive" = 1 ]; then cmd=(sh); else log "no command given (see --help)"; exit 2; fi
fi
for n in "$timeout_s" "$boot_timeout_s" "$cpus"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { log "not a positive number: $n"; exit 2; }
done
for n in "$stall_timeout_s" "$stall_retries"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { log "not a number: $n"; exit 2; }
done
for e in "${envs[@]}"; do
    [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { log "--env wants NAME=VALUE, got: $e"; exit 2; }
done

if [ "$no_hull" = 0 ]; then
    if [ -z "$hull_bin" ]; then hull_bin="$repo/target/x86_64-unknown-linux-gnu/release/hull"; fi
    if [ ! -f "$hull_bin" ]; then
        if [ "$hull_explicit" = 1 ]; then die "no hull binary at $hull_bin"; fi
        log "note: no $hull_bin (run \`just build\`); the guest has no /hull"
        hull_bin=""
    fi
else
    hull_bin=""
fi

# ---------------------------------------------------------------------------------------------
# Host packages

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]; }

apt_updated=0
apt_update() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        apt_updated=1
    fi
}

ensure_packages() {
    local missing=() p
    for p in qemu-system-x86 cpio busybox-static; do installed "$p" || missing+=("$p"); done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
    log "installing ${missing[*]}"
    apt_update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >&2
}
ensure_packages

# QEMU 7.2 (Debian 12's own) freezes the test machine now and then: a vcpu loops on an int3 its
# kernel has already patched away, a stale translation of cross-modified code under
# multi-threaded TCG (README.md, "Stalls"). Debian's bookworm-backports carries QEMU 10, which
# has not frozen in our soaks; on bookworm it is installed from there unless
# HULL_TESTVM_QEMU names another QEMU or HULL_TESTVM_QEMU_BACKPORTS=0.
qemu_major() { "$1" --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p'; }
ensure_backports_qemu() {
    [ -z "${HULL_TESTVM_QEMU:-}" ] && [ "${HULL_TESTVM_QEMU_BACKPORTS:-1}" != 0 ] || return 0
    grep -qs '^VERSION_CODENAME=bookworm$' /etc/os-release || return 0
    local major
    major="$(qemu_major qemu-system-x86_64)"
    [ -n "$major" ] && [ "$major" -ge 10 ] && return 0
    if [ "$(as_root "$here/../../scripts/bookworm-backports.sh")" = added ]; then
        log "added Debian's bookworm-backports to apt's sources (QEMU 10 for the test machine)"
        apt_updated=0
    fi
    log "installing qemu-system-x86 from bookworm-backports (QEMU ${major:-?} freezes under multi-threaded TCG)"
    apt_update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -t bookworm-backports qemu-system-x86 >&2 || die "cannot install QEMU from bookworm-backports"
}
ensure_backports_qemu

qemu="${HULL_TESTVM_QEMU:-qemu-system-x86_64}"
command -v "$qemu" >/dev/null 2>&1 || die "$qemu not found"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do [ -x "$b" ] && { busybox="$b"; break; }; done
[ -n "$busybox" ] || die "busybox-static is installed but no /bin/busybox was found"
if ldd "$busybox" >/dev/null 2>&1; then die "$busybox is dynamically linked: install busybox-static"; fi

# ---------------------------------------------------------------------------------------------
# Cache

if [ -n "${HULL_TESTVM_CACHE:-}" ]; then cache="$HULL_TESTVM_CACHE"
elif [ -n "${XDG_CACHE_HOME:-}" ]; then cache="$XDG_CACHE_HOME/hull-testvm"
elif [ "$(id -u)" -eq 0 ]; then cache=/var/cache/hull-testvm
else cache="$HOME/.cache/hull-testvm"; fi
case "$cache" in "$repo"|"$repo"/*) die "the cache ($cache) must be outside the work tree";; esac
mkdir -p "$cache"
# One process fills the cache at a time; runs themselves proceed in parallel.
exec 9>"$cache/.lock"

with_cache_lock() { flock 9; "$@"; local rc=$?; flock -u 9; return "$rc"; }

# ---------------------------------------------------------------------------------------------
# Kernel: the versioned package behind the meta package, unpacked into the cache

kernel_meta="${HULL_TESTVM_KERNEL_PACKAGE:-linux-image-cloud-amd64}"
# The suite whose version of it to take (e.g. bookworm-backports: Linux 6.12 instead of 6.1);
# empty: apt's candidate.
kernel_suite="${HULL_TESTVM_KERNEL_SUITE:-}"

# Prints "PACKAGE VERSION": the versioned kernel package the meta package depends on, at the
# version it pins (apt-cache is slow, ~0.7 s: the answer is remembered until the apt lists change).
resolve_kernel_package() {
    local stamp memo="$cache/kernel/resolved-$kernel_meta${kernel_suite:+@$kernel_suite}" line
    local release=()
    [ -z "$kernel_suite" ] || release=(-o "APT::Default-Release=$kernel_suite")
    stamp="$(ls -l --time-style=+%s /var/lib/apt/lists/ 2>/dev/null | md5sum | cut -c1-16)"
    if [ -f "$memo" ] && read -r line <"$memo" && [ "${line%% *}" = "$stamp" ]; then
        echo "${line#* }"
        return 0
    fi
    line="$(apt-cache "${release[@]}" show --no-all-versions "$kernel_meta" 2>/dev/null | awk '
        $1 == "Depends:" {
            for (i = 2; i <= NF; i++) if ($i ~ /^linux-image-/) {
                pkg = $i; sub(/,$/, "", pkg)
                if ($(i + 1) == "(=") { ver = $(i + 2); sub(/\).*/, "", ver) }
                print pkg, ver; exit
            }
        }')"
    [ -n "$line" ] || return 0
    case "$line" in *" ") line="$line$(apt-cache "${release[@]}" policy "${line% }" | awk '$1 == "Candidate:" { print $2 }')" ;; esac
    mkdir -p "$cache/kernel"
    echo "$stamp $line" >"$memo"
    echo "$line"
}

decompress_to() { # FILE OUT: a kernel module, compressed or not, written uncompressed to OUT
    case "$1" in
        *.xz) xz -dc "$1" >"$2" 2>/dev/null || "$busybox" xz -dc "$1" >"$2" ;;
        *.zst) zstd -qdc "$1" >"$2" ;;
        *.gz) gzip -dc "$1" >"$2" ;;
        *) cp "$1" "$2" ;;
    esac
}

fetch_kernel() { # sets kdir (the unpacked package) and kver (its uname -r)
    local pkg ver dir tmp resolved
    resolved="$(resolve_kernel_package)"
    if [ -z "$resolved" ]; then
        apt_update || log "warning: apt-get update failed"
        resolved="$(resolve_kernel_package)"
    fi
    pkg="${resolved% *}"
    ver="${resolved#* }"
    if [ -z "$resolved" ]; then
        # Offline and not resolvable: the newest kernel already in the cache will do.
        dir="$(ls -1dt "$cache"/kernel/*/.complete 2>/dev/null | head -n1 || true)"
        [ -n "$dir" ] || die "apt cannot resolve $kernel_meta and no kernel is cached"
        kdir="$(dirname "$dir")"
        log "note: apt cannot resolve $kernel_meta; using the cached $(basename "$kdir")"
    else
        [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "apt has no candidate version of $pkg"
        kdir="$cache/kernel/${pkg}_${ver}"
        if [ ! -e "$kdir/.complete" ]; then
            log "fetching $pkg $ver (apt-get download; not installed on this host)"
            tmp="$(mktemp -d "$cache/.kernel.XXXXXX")"
            # apt drops to the _apt user for downloads when it can write the directory.
            if id _apt >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then chown _apt "$tmp"; fi
            (cd "$tmp" && apt-get download -q "$pkg=$ver" >&2) \
                || { rm -rf "$tmp"; die "apt-get download $pkg=$ver failed"; }
            mkdir "$tmp/root"
            dpkg-deb -x "$tmp"/*.deb "$tmp/root"
            rm -f "$tmp"/*.deb
            rm -rf "$kdir"
            mkdir -p "$cache/kernel"
            mv "$tmp/root" "$kdir"
            rmdir "$tmp"
            touch "$kdir/.complete"
            # Keep the two newest kernels.
            ls -1dt "$cache"/kernel/*/ | tail -n +3 | while read -r dir; do rm -rf "$dir"; done
        fi
    fi
    kver="$(ls -1 "$kdir/lib/modules" | head -n1)"
    [ -n "$kver" ] && [ -f "$kdir/boot/vmlinuz-$kver" ] || die "no kernel in $kdir"
    # name -> file of every module, for resolving dependencies (made once per kernel).
    if [ ! -s "$kdir/modules.index" ]; then
        (cd "$kdir/lib/modules/$kver" && find kernel -name '*.ko*' -type f) \
            | awk '{ n = $0; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n); gsub(/-/, "_", n);
                     print n, $0 }' | sort >"$kdir/modules.index.tmp"
        mv "$kdir/modules.index.tmp" "$kdir/modules.index"
    fi
}

# ---------------------------------------------------------------------------------------------
# Base initramfs: busybox, /init, the kvm modules; cached by content

# Modules the guest loads: both vendors' kvm (the guest picks the one its CPU has), what a VM
# container's network needs (tun for its taps; veth, the ingress qdisc, u32 filters and the
# mirred action for the plumbing and the tests' namespaces; bridge for the podman suite's CNI
# bridge networks; nf_tables with the x_tables matches and targets that iptables-nft and CNI's
# bridge (ipMasq), portmap and firewall plugins use, for podman's default network and -p),
# vhost_net for QEMU's reference numbers (integration/bench/vm-net-qemu.sh), and what they
# depend on, resolved from each module's .modinfo `depends=`.
base_modules=(kvm_amd kvm_intel tun veth sch_ingress cls_u32 act_mirred bridge vhost_net
    nf_tables nft_compat nft_chain_nat xt_nat xt_MASQUERADE xt_addrtype xt_conntrack xt_comment
    xt_mark xt_multiport xt_tcpudp)

module_file() { awk -v n="${1//-/_}" '$1 == n { print $2; exit }' "$kdir/modules.index"; }

add_module() { # NAME STAGE_MODDIR: copies NAME and its dependencies, appends to the load list
    local name="${1//-/_}" moddir="$2" file dep deps
    grep -qx "$name" "$moddir/.seen" 2>/dev/null && return 0
    echo "$name" >>"$moddir/.seen"
    file="$(module_file "$name")"
    [ -n "$file" ] || die "module $name is not in $kdir"
    decompress_to "$kdir/lib/modules/$kver/$file" "$moddir/$name.ko"
    deps="$(tr '\0' '\n' <"$moddir/$name.ko" | sed -n 's/^depends=//p' | head -n1 | tr , ' ')"
    for dep in $deps; do add_module "$dep" "$moddir"; done
    echo "$name" >>"$moddir/load-order"
}

stage_base() { # DIR
    local s="$1" d a
    mkdir -p "$s"/{usr/bin,usr/sbin,usr/lib,usr/lib64,dev,proc,sys,tmp,run,root,etc/testvm,mnt,newroot,var}
    mkdir -p "$s/usr/lib/modules/testvm"
    for d in bin sbin lib lib64; do ln -s "usr/$d" "$s/$d"; done
    ln -s ../tmp "$s/var/tmp"
    chmod 1777 "$s/tmp"
    cp "$busybox" "$s/usr/bin/busybox"
    # Every applet, as a symlink to busybox, where busybox would put it (merged /usr).
    "$busybox" --list-full | while read -r a; do
        a="${a#/}"
        case "$a" in bin/*|sbin/*) a="usr/$a" ;; esac
        [ "$a" = usr/bin/busybox ] || [ -e "$s/$a" ] || ln -s /usr/bin/busybox "$s/$a"
    done
    install -m 0755 "$here/guest/init" "$s/init"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$s/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$s/etc/group"
    printf '127.0.0.1 localhost testvm\n::1 localhost\n' >"$s/etc/hosts"
    echo testvm >"$s/etc/hostname"
    : >"$s/etc/fstab"
    local m
    for m in "${base_modules[@]}"; do add_module "$m" "$s/usr/lib/modules/testvm"; done
    rm -f "$s/usr/lib/modules/testvm/.seen"
    echo "$kver" >"$s/etc/testvm/kernel-release"
}

make_cpio() { # DIR: newc archive of DIR's contents on stdout, owned by root
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
}

# The base archive is keyed by what goes into it: this script (which stages it), the guest's
# /init, busybox and the kernel package; staging runs only when no archive has that key.
base_key() {
    { cat "${BASH_SOURCE[0]}" "$here/guest/init" "$busybox"; echo "$kdir"; } | sha256sum | cut -c1-16
}

build_base() { # sets base (the cached base archive)
    local s
    base="$cache/initramfs/base-$kver-$(base_key).cpio.gz"
    [ -f "$base" ] && return 0
    s="$work/base"
    stage_base "$s"
    mkdir -p "$cache/initramfs"
    make_cpio "$s" | gzip -6 >"$base.tmp"
    mv "$base.tmp" "$base"
    vlog "built $base ($(du -h "$base" | cut -f1))"
    rm -rf "$s"
}

# ---------------------------------------------------------------------------------------------
# Per-run archive: hull, --add files and their libraries, the command

quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

is_elf() { [ -f "$1" ] && [ "$(head -c4 "$1" | tr -d '\0')" = $'\x7fELF' ]; }

# The shared libraries (and the loader) an ELF file needs, copied to the same paths.
add_libs() { # FILE STAGE
    local lib
    is_elf "$1" || return 0
    while read -r lib; do
        [ -e "$2$lib" ] && continue
        mkdir -p "$2$(dirname "$lib")"
        cp -L "$lib" "$2$lib"
    done < <(ldd "$1" 2>/dev/null | grep -o '/[^ )]*' | sort -u || true)
}

stage_add() { # HOST GUEST STAGE
    local host="$1" guest="$2" s="$3" f
    [ -e "$host" ] || die "--add: no such file or directory: $host"
    case "$guest" in
        /tmp|/run|/run/*|/dev|/dev/*|/proc|/proc/*|/sys|/sys/*)
            die "--add: $guest would be hidden: the guest mounts over /run, /dev, /proc and /sys" ;;
        /*) ;;
        *) die "--add: the guest path must be absolute: $guest" ;;
    esac
    mkdir -p "$s$(dirname "$guest")"
    cp -a "$host" "$s$guest"
    if [ -d "$host" ]; then
        while IFS= read -r -d '' f; do add_libs "$f" "$s"; done \
            < <(find "$host" -type f -perm -u+x -print0)
    else
        add_libs "$host" "$s"
    fi
}

build_run_archive() { # sets run_archive
    local s="$work/run" a host guest e v
    mkdir -p "$s/usr/bin" "$s/usr/lib" "$s/usr/lib64" "$s/etc/testvm"
    # The base's merged-/usr symlinks, so that copies through /lib and /bin land under /usr;
    # they are left out of the archive (an entry of another type would replace the base's).
    for a in bin sbin lib lib64; do ln -s "usr/$a" "$s/$a"; done
    if [ -n "$hull_bin" ]; then
        cp "$hull_bin" "$s/hull"
        ln -s /hull "$s/usr/bin/hull"
        add_libs "$hull_bin" "$s"
    fi
    for a in "${adds[@]}"; do
        host="${a%%:*}"
        if [ "$host" = "$a" ]; then guest="$(realpath -m "$host")"; else guest="${a#*:}"; fi
        stage_add "$host" "$guest" "$s"
    done
    {
        echo "nonce=$nonce"
        echo "interactive=$interactive"
        echo "verbose=$verbose"
        echo "cwd=$(quote "$guest_cwd")"
    } >"$s/etc/testvm/run.conf"
    {
        for v in RUST_BACKTRACE RUST_LIB_BACKTRACE RUST_LOG RUST_TEST_THREADS RUST_TEST_NOCAPTURE \
            NO_COLOR CI; do
            if [ -n "${!v+x}" ]; then echo "export $v=$(quote "${!v}")"; fi
        done
        for n in "$stall_timeout_s" "$stall_retries"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { log "not a number: $n"; exit 2; }
done
for e in "${envs[@]}"; do echo "export ${e%%=*}=$(quote "${e#*=}")"; done
    } >"$s/etc/testvm/env"
    {
        printf 'exec'
        for a in "${cmd[@]}"; do printf ' %s' "$(quote "$a")"; done
        printf '\n'
    } >"$s/etc/testvm/cmd"
    run_archive="$work/run.cpio"
    (cd "$s" && find . -mindepth 1 ! -path ./bin ! -path ./sbin ! -path ./lib ! -path ./lib64 \
        | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$run_archive"
    rm -rf "$s"
}

# ---------------------------------------------------------------------------------------------
# Boot

work="$(mktemp -d "${TMPDIR:-/tmp}/hull-testvm.XXXXXX")"
qemu_pid=""
watchdog_pids=()
cleanup() {
    local p
    for p in "${watchdog_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

t0="$(date +%s.%N)"
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

with_cache_lock fetch_kernel
with_cache_lock build_base
nonce="$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
build_run_archive

# The kernel reads concatenated archives; the uncompressed one must start 4-byte aligned.
initrd="$work/initrd.img"
cp "$base" "$initrd"
truncate -s "%512" "$initrd"
cat "$run_archive" >>"$initrd"
rm -f "$run_archive"
vlog "kernel $kver, initramfs $(du -h "$initrd" | cut -f1), prepared in $(elapsed) s"

kappend="console=ttyS0 panic=-1 rdinit=/init systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"
kappend+=" tsc=reliable no_timer_check"
if [ "$verbose" = 1 ]; then kappend+=" printk.time=1"; else kappend+=" quiet loglevel=3"; fi
kappend+="$append_extra${HULL_TESTVM_APPEND:+ $HULL_TESTVM_APPEND}"

# AMD EPYC with SVM and nested paging: kvm-amd loads on it. The features TCG cannot emulate are
# turned off here rather than dropped by QEMU with a warning each.
cpu_model="EPYC,+svm,+npt,-rdseed,-sha-ni,-fxsr-opt,-misalignsse,-3dnowprefetch,-osvw,-topoext"
cpu_model+=",-nrip-save,-xsavec"
# shellcheck disable=SC2054 # the commas are QEMU's
qemu_args=(
    -machine q35 -accel "${HULL_TESTVM_ACCEL:-tcg,thread=multi}" -cpu "${HULL_TESTVM_CPU:-$cpu_model}"
    -smp "$cpus" -m "$mem"
    -nodefaults -no-user-config -no-reboot -display none -vga none
    -kernel "$kdir/boot/vmlinuz-$kver" -initrd "$initrd"
)

if [ "$interactive" = 1 ]; then
    log "booting $kver (interactive; Ctrl-A X quits QEMU)"
    rc=0
    "$qemu" "${qemu_args[@]}" -append "$kappend" -serial mon:stdio || rc=$?
    exit "$rc"
fi

# One boot of the machine: QEMU with the console on a fifo that is streamed to stdout, a second
# serial port for the guest's heartbeat (a line a second, see guest/init), and the monitor on a
# socket so that a stall can be looked into before QEMU is ended.
#
# Watchdogs end QEMU when the guest does not come up in time (boot), its heartbeat stops for
# --stall-timeout (stall), or the run exceeds --timeout (timeout); they write which in
# $state/killed. Sets attempt_rc: the command's status, or 123 (stalled), 124, 125.
watchdog() { # SECONDS WHY: kills QEMU after SECONDS unless the condition for WHY is met
    local secs="$1" why="$2" sp
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$secs" & sp=$!
    wait "$sp" || exit 0
    if [ "$why" = boot ] && [ -e "$state/up" ]; then exit 0; fi
    end_qemu "$why"
}

end_qemu() { # WHY: records why, reports a stall, then ends QEMU
    [ -e "$state/killed" ] && return 0
    echo "$1" >"$state/killed"
    case "$1" in boot|stall) stall_report >"$state/report" 2>&1 || true ;; esac
    kill "$qemu_pid" 2>/dev/null || true
    sleep 5
    kill -KILL "$qemu_pid" 2>/dev/null || true
}

# The heartbeat file grows by a line a second while the guest's user space runs; when it has
# not grown for --stall-timeout seconds after the guest came up, the machine has stalled
# (seen under TCG's nested SVM: every vcpu thread spinning, no output, the guest's own time
# limits never firing). Checked every 5 s.
stall_watch() {
    local size last_size=-1 last_change now sp
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    last_change="$(date +%s)"
    while :; do
        sleep 5 & sp=$!
        wait "$sp" || exit 0
        size="$(stat -c %s "$heartbeat" 2>/dev/null || echo 0)"
        now="$(date +%s)"
        if [ "$size" != "$last_size" ] || [ ! -e "$state/up" ]; then
            last_size="$size"
            last_change="$now"
        elif [ $((now - last_change)) -ge "$stall_timeout_s" ]; then
            end_qemu stall
            exit 0
        fi
    done
}

# What the vcpus were doing (stall-report.py), with the test machine's kernel symbols (shifted
# by the KASLR slide the guest wrote first on its heartbeat port) and, when it is carried in,
# the hull guest kernel's.
stall_report() {
    local maps=() text slide sm="$kdir/kallsyms.map" a host
    text="$(tr -d '\r' <"$heartbeat" 2>/dev/null | sed -n 's/^kaslr _text=\([0-9a-f]*\)$/\1/p' | head -n1)"
    if [ -f "$sm" ] && [ -n "$text" ]; then
        slide="$(awk -v t="$text" '$3 == "_text" { print t, $1; exit }' "$sm" \
            | python3 -c 'import sys; a, b = sys.stdin.read().split(); print("%x" % (int(a, 16) - int(b, 16)))' \
            2>/dev/null || true)"
        maps+=(--map "testvm-kernel=$sm@${slide:-0}")
    fi
    for a in "${adds[@]}"; do
        host="${a%%:*}"
        case "$host" in */vmlinux|*/vmlinuz)
            host="$(dirname "$host")/System.map"
            if [ -f "$host" ]; then maps+=(--map "hull-guest-kernel=$host"); fi ;;
        esac
    done
    echo "guest uptime at its last heartbeat: $(tail -n1 "$heartbeat" 2>/dev/null | tr -d '\r' || echo none) s"
    timeout 30 python3 "$here/stall-report.py" "$work/monitor.sock" "${maps[@]}"
}

boot_once() { # ATTEMPT
    local line qemu_rc=0 killed p done_word
    state="$work/state.$1"
    mkdir "$state"
    heartbeat="$state/heartbeat"
    : >"$heartbeat"
    rm -f "$work/monitor.sock"
    local fifo="$state/console"
    mkfifo "$fifo"
    # The kernel's symbols for stall reports, sent once per kernel by the guest (guest/init).
    local ksyms=() kappend_try="$kappend testvm.try=$1"
    # What earlier tries finished (HULL-TESTVM-DONE lines), for the command to go on from.
    if [ -s "$work/done" ]; then
        kappend_try+=" testvm.done=$(paste -sd, "$work/done")"
    fi
    if [ ! -s "$kdir/kallsyms.map" ]; then
        ksyms=(-serial "file:$state/kallsyms.b64")
        kappend_try+=" testvm.kallsyms=1"
    fi
    "$qemu" "${qemu_args[@]}" -append "$kappend_try" -serial stdio -serial "file:$heartbeat" "${ksyms[@]}" \
        -monitor "unix:$work/monitor.sock,server=on,wait=off" </dev/null >"$fifo" 2>&1 &
    qemu_pid=$!
    watchdog_pids=()
    watchdog "$boot_timeout_s" boot & watchdog_pids+=($!)
    watchdog "$timeout_s" timeout & watchdog_pids+=($!)
    if [ "$stall_timeout_s" -gt 0 ]; then stall_watch & watchdog_pids+=($!); fi

    local up_marker="HULL-TESTVM-$nonce-UP"
    local exit_marker="HULL-TESTVM-$nonce-EXIT="
    guest_rc=""
    local panicked=""
    # Stream the console: hide the markers, drop the serial line's carriage returns.
    while IFS= read -r line || [ -n "$line" ]; do
        line="${line%$'\r'}"
        case "$line" in
            *"Kernel panic - not syncing"*)
                # Ours or a nested guest's relayed here: which one, the exit status tells below.
                panicked="${line#*Kernel panic - not syncing: }"
                ;;
            *"$up_marker"*)
                touch "$state/up"
                log "guest ${line#*"$up_marker" } (host: $(elapsed) s)"
                line="${line%%"$up_marker"*}"
                [ -z "$line" ] && continue
                ;;
            *"$exit_marker"*)
                guest_rc="${line#*"$exit_marker"}"
                guest_rc="${guest_rc%%[!0-9]*}"
                line="${line%%"$exit_marker"*}"
                [ -z "$line" ] && continue
                ;;
            "HULL-TESTVM-DONE "*)
                done_word="${line#HULL-TESTVM-DONE }"
                case "$done_word" in
                    *[!A-Za-z0-9._=-]* | '') ;;
                    *) echo "$done_word" >>"$work/done" ;;
                esac
                ;;
            *": terminating on signal "*)
                # QEMU's own word when a watchdog stops it; the watchdog says why, below.
                [ -e "$state/killed" ] && continue
                ;;
            *"] reboot: Power down")
                # The kernel's last word after the command's exit status: noise.
                [ -n "$guest_rc" ] && continue
                ;;
        esac
        printf '%s\n' "$line"
    done <"$fifo"

    wait "$qemu_pid" || qemu_rc=$?
    qemu_pid=""
    for p in "${watchdog_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${watchdog_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    watchdog_pids=()

    if [ -f "$state/kallsyms.b64" ] && grep -q '^KALLSYMS-END' "$state/kallsyms.b64"; then
        sed '/^KALLSYMS-END/,$d' "$state/kallsyms.b64" | tr -d '\r' | base64 -d | gzip -dc \
            >"$kdir/kallsyms.map.$$" 2>/dev/null && mv "$kdir/kallsyms.map.$$" "$kdir/kallsyms.map"
        rm -f "$kdir/kallsyms.map.$$"
    fi

    killed="$(cat "$state/killed" 2>/dev/null || true)"
    if [ "$killed" = boot ] || [ "$killed" = stall ]; then
        if [ "$killed" = boot ]; then
            stall_why="the guest did not come up within $boot_timeout_s s (--boot-timeout)"
        else
            stall_why="the guest's heartbeat stopped for $stall_timeout_s s (--stall-timeout) at $(elapsed) s"
        fi
        attempt_rc=123
    elif [ "$killed" = timeout ]; then
        log "error: timed out after $timeout_s s (--timeout, HULL_TESTVM_TIMEOUT); the guest was killed"
        attempt_rc=124
    elif [ ! -e "$state/up" ]; then
        log "error: the guest stopped before it came up (QEMU exit status $qemu_rc); rerun with --verbose to see the kernel's messages"
        attempt_rc=125
    elif [ -z "$guest_rc" ] && [ -n "$panicked" ]; then
        # The test machine's own kernel died under the command (seen once in CI: a stack
        # overflow in an interrupt, 6.1 cloud kernel under TCG's nested SVM). Like a stall, the
        # emulated machine failed rather than the command: a fresh machine gets the command
        # again, and the report says so.
        stall_why="the test machine's kernel panicked at $(elapsed) s (\"$panicked\"; its oops is above)"
        : >"$state/report"
        attempt_rc=123
    elif [ -z "$guest_rc" ]; then
        log "error: the guest stopped without reporting the command's exit status (QEMU exit status $qemu_rc; did the guest kernel panic?)"
        attempt_rc=125
    else
        vlog "command exited with status $guest_rc; total $(elapsed) s"
        attempt_rc="$guest_rc"
    fi
}

stall_banner() { # ATTEMPT
    {
        echo "testvm: ================================================================"
        echo "testvm: STALL: the test machine stopped making progress (try $1 of $((stall_retries + 1))):"
        echo "testvm:   $stall_why."
        if [ -s "$state/report" ]; then
            echo "testvm:   What QEMU's monitor said the vcpus were doing:"
            sed 's/^/testvm:   | /' "$state/report" 2>/dev/null | head -n 80
        fi
        echo "testvm: ================================================================"
    } >&2
    # A summary for whoever counts stalls (testvm-soak, CI's step table).
    if [ -n "${HULL_TESTVM_STALL_LOG:-}" ]; then
        printf '%s stall try %s: %s\n' "$(date -u +%FT%TZ)" "$1" "$stall_why" >>"$HULL_TESTVM_STALL_LOG"
    fi
}

attempt=1
while :; do
    boot_once "$attempt"
    [ "$attempt_rc" = 123 ] || exit "$attempt_rc"
    stall_banner "$attempt"
    if [ "$attempt" -gt "$stall_retries" ]; then
        log "error: the test machine stalled on every try ($attempt); failing"
        exit 123
    fi
    attempt=$((attempt + 1))
    log "rerunning the command on a fresh test machine (try $attempt of $((stall_retries + 1)))"
done
