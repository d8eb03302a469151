# Helpers the integration scripts share, on the host and inside the test machine (which has
# busybox, not bash): POSIX sh only. Source it; it defines functions and sets nothing else.

# Prints the path of a static busybox, or nothing.
find_busybox() {
    for b in /bin/busybox /usr/bin/busybox; do
        if [ -x "$b" ]; then echo "$b"; return 0; fi
    done
    return 1
}

# busybox_rootfs DIR: a minimal root filesystem in DIR: the static busybox and a link per
# applet in /bin, the usual top-level directories, root in /etc/passwd and /etc/group.
busybox_rootfs() {
    _bb="$(find_busybox)" || { echo "busybox not found (install busybox-static)" >&2; return 1; }
    for _d in bin sbin etc proc sys dev tmp root home var usr/bin; do
        mkdir -p "$1/$_d" || return 1
    done
    chmod 1777 "$1/tmp"
    chmod 700 "$1/root"
    cp "$_bb" "$1/bin/busybox" || return 1
    "$_bb" --list | while read -r _a; do
        [ "$_a" = busybox ] || ln -sf busybox "$1/bin/$_a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$1/etc/passwd"
    printf 'root:x:0:\n' >"$1/etc/group"
}

# vm_script_in_testvm HERE NAME HULL KERNEL TIMEOUT [ARGS...]: on the host, reruns
# integration/vm/NAME inside the test machine (it needs an ordinary /dev/kvm), with hull
# (default: the release build), the guest kernel and integration/ carried in, and ARGS after
# --kernel. Does not return.
vm_script_in_testvm() {
    _repo="$(cd "$1/../.." && pwd)"
    _hull="${3:-$_repo/target/release/hull}"
    [ -x "$_hull" ] || { echo "$2: no hull at $_hull (just build)" >&2; exit 2; }
    [ -f "$4" ] || { echo "$2: no guest kernel at $4 (just kernel)" >&2; exit 2; }
    _name="$2"
    _kernel="$4"
    _limit="${HULL_TESTVM_TIMEOUT:-$5}"
    shift 5
    exec "$_repo/integration/testvm/testvm.sh" --timeout "$_limit" --hull "$_hull" \
        --add "$_kernel" --add "$_repo/integration:/integration" -- sh "/integration/vm/$_name" --kernel "$_kernel" "$@"
}

# vm_script_prerequisites HULL KERNEL: inside, prints the hull to use (HULL, else the one on
# PATH, else /hull) after checking it, the kernel and /dev/kvm; fails with a message otherwise.
vm_script_prerequisites() {
    _hull="$1"
    [ -n "$_hull" ] || _hull="$(command -v hull 2>/dev/null || echo /hull)"
    [ -x "$_hull" ] || { echo "no hull at $_hull (--hull)" >&2; return 1; }
    [ -f "$2" ] || { echo "no guest kernel at $2 (--kernel)" >&2; return 1; }
    [ -e /dev/kvm ] || { echo "no /dev/kvm here" >&2; return 1; }
    echo "$_hull"
}
