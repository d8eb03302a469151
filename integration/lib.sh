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
