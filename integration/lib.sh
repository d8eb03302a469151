# Helpers the integration scripts share, on the host and inside the test machine (which has
# busybox, not bash): POSIX sh only. Source it; it defines functions and sets nothing else.

# The guest kernel hull's VMM boots when no --kernel names one: $HULL_KERNEL, else where
# `just kernel` installs it.
default_kernel() {
    echo "${HULL_KERNEL:-/usr/local/share/hull/vmlinuz}"
}

# Prints the path of a static busybox, or nothing. Where ldd exists (the host; the test
# machine has none), a dynamically linked one is passed over: it would not run in a rootfs
# without its libraries.
find_busybox() {
    for _b in /bin/busybox /usr/bin/busybox; do
        [ -x "$_b" ] || continue
        if command -v ldd >/dev/null 2>&1 && ldd "$_b" >/dev/null 2>&1; then continue; fi
        echo "$_b"
        return 0
    done
    return 1
}

# busybox_rootfs DIR: a minimal root filesystem in DIR: the static busybox and a link per
# applet in /bin, the usual top-level directories, root and nobody in /etc/passwd and
# /etc/group (runc's default spec and podman's --user nobody need the latter).
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
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$1/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/etc/group"
}

# pass NAME / fail NAME WHY: the check lines of the vm scripts (e2e.sh, backend.sh), which CI
# reads: "PASS NAME (T s)", or "FAIL NAME: WHY (T s)" and the command's output from $out and
# $err; $took is the check's time. They count in $passed and $failed. A script with lines of
# its own format defines its own after sourcing this.
pass() { passed=$((passed + 1)); printf 'PASS %s (%s s)\n' "$1" "$took"; }
fail() {
    failed=$((failed + 1))
    printf 'FAIL %s: %s (%s s)\n' "$1" "$2" "$took"
    printf '  --- stdout:\n'; sed 's/^/  | /' "$out" 2>/dev/null | head -n 20
    printf '  --- stderr:\n'; sed 's/^/  | /' "$err" 2>/dev/null | tail -n 30
}

# vm_script_in_testvm HERE NAME HULL KERNEL TIMEOUT [ARGS...]: on the host, reruns
# integration/vm/NAME inside the test machine (it needs an ordinary /dev/kvm), with hull
# (default: the release build), the guest kernel and integration/ carried in, and ARGS after
# --kernel. Does not return.
vm_script_in_testvm() {
    _repo="$(cd "$1/../.." && pwd)"
    _hull="${3:-$_repo/target/x86_64-unknown-linux-gnu/release/hull}"
    [ -x "$_hull" ] || { echo "$2: no hull at $_hull (just build)" >&2; exit 2; }
    [ -f "$4" ] || { echo "$2: no guest kernel at $4 (just kernel)" >&2; exit 2; }
    _name="$2"
    _kernel="$4"
    _limit="${HULL_TESTVM_TIMEOUT:-$5}"
    shift 5
    # iproute2's ip and tc (busybox's ip makes no veth and has no tc): the network checks use
    # them at /opt/iproute2.
    _tools=""
    for _t in ip tc; do
        # The file itself: testvm carries a symlink as a symlink (Debian's /usr/sbin/ip is one).
        _p="$(command -v "$_t" 2>/dev/null || true)"
        [ -n "$_p" ] && _p="$(readlink -f "$_p")" && _tools="$_tools --add $_p:/opt/iproute2/$_t"
    done
    # shellcheck disable=SC2086 # one word per option
    exec "$_repo/integration/testvm/testvm.sh" --timeout "$_limit" --hull "$_hull" $_tools \
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

# wait_for_file FILE PID: until FILE exists (0), PID is gone or 120 s passed (1). The VM
# benchmarks wait with it for a guest workload's flag file.
wait_for_file() {
    _i=0
    while [ ! -e "$1" ]; do
        kill -0 "$2" 2>/dev/null || return 1
        [ "$_i" -lt 2400 ] || return 1
        sleep 0.05
        _i=$((_i + 1))
    done
}

# vm_bundle HULL DIR ROOTFS MEM_MIB ARGS: a bundle in DIR made by HULL's `hull spec`, on ROOTFS,
# with no terminal, ARGS (JSON array items, e.g. '"/bin/true"') as process.args, and MEM_MIB of
# guest RAM (hull.vm.memory_mib), so that the VM benchmarks know the guest's mapping by its size.
vm_bundle() {
    mkdir -p "$2" && (cd "$2" && "$1" spec) || return 1
    sed -i -e 's/"terminal": true/"terminal": false/' -e "s#\"path\": \"rootfs\"#\"path\": \"$3\"#" \
        -e "s#^\( *\)\"sh\"\$#\1$5#" "$2/config.json" || return 1
    awk -v m="$4" '{ print } /"ociVersion"/ { print "  \"annotations\": {\"hull.vm.memory_mib\": \"" m "\"}," }' \
        "$2/config.json" >"$2/config.new" && mv "$2/config.new" "$2/config.json"
}

# now_us: the wall clock (CLOCK_REALTIME) in microseconds, in $_now. busybox's date has no %N;
# adjtimex prints the time to the microsecond (the same clock socat stamps its log with). The
# benchmarks time with it.
now_us() {
    _t="$(adjtimex 2>/dev/null)"
    # shellcheck disable=SC2086 # split "SEC time.tv_usec: USEC ..."
    set -- ${_t##*time.tv_sec:}
    _u="$3"
    while :; do case "$_u" in 0?*) _u="${_u#0}" ;; *) break ;; esac; done
    _now=$(( $1 * 1000000 + _u ))
}

# oci_image_tar ROOTFS OUT CMD_JSON CREATED_BY: OUT becomes an OCI image layout in one tar, as
# `ctr images import` takes it: one gzip layer holding ROOTFS, a config with CMD_JSON as its
# Cmd (a JSON array) and the usual PATH, the manifest, an index whose manifest is tagged
# `latest`. CREATED_BY goes into the config's history. Scratch files go next to OUT.
oci_image_tar() {
    case "$(uname -m)" in
        x86_64) _arch=amd64 ;;
        aarch64) _arch=arm64 ;;
        *) _arch="$(dpkg --print-architecture)" ;;
    esac
    _work="$2.d"
    _b="$_work/layout/blobs/sha256"
    mkdir -p "$_b" || return 1
    tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$1" -cf "$_work/layer.tar" . || return 1
    _diff_id="$(sha256sum <"$_work/layer.tar" | cut -d' ' -f1)"
    gzip -n -c "$_work/layer.tar" >"$_work/layer.tar.gz" || return 1
    # blob FILE: moves FILE into the blobs by its digest; sets $_digest and $_size.
    _blob() {
        _digest="$(sha256sum <"$1" | cut -d' ' -f1)"
        _size="$(stat -c %s "$1")"
        mv "$1" "$_b/$_digest"
    }
    _blob "$_work/layer.tar.gz" || return 1
    _layer="$_digest" _layer_size="$_size"
    printf '%s' "{\"architecture\":\"$_arch\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":$3},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$_diff_id\"]},\"history\":[{\"created_by\":\"hull $4\"}]}" \
        >"$_work/config.json"
    _blob "$_work/config.json" || return 1
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$_digest\",\"size\":$_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$_layer\",\"size\":$_layer_size}]}" \
        >"$_work/manifest.json"
    _blob "$_work/manifest.json" || return 1
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$_digest\",\"size\":$_size,\"platform\":{\"architecture\":\"$_arch\",\"os\":\"linux\"},\"annotations\":{\"org.opencontainers.image.ref.name\":\"latest\"}}]}" \
        >"$_work/layout/index.json"
    printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$_work/layout/oci-layout"
    tar --numeric-owner --owner=0 --group=0 -C "$_work/layout" -cf "$2" oci-layout index.json blobs || return 1
    rm -rf "$_work"
}

# stop_containerd SOCKET NAMESPACE PID: what a failed check left in containerd's NAMESPACE
# killed and removed through containerd (which also stops their shims), then containerd
# itself (SIGKILL after 5 s). Each ctr call is bounded: a VM container's kill takes a while.
stop_containerd() {
    kill -0 "$3" 2>/dev/null || return 0
    for _c in $(timeout -k 5 150 ctr -a "$1" -n "$2" containers ls -q 2>/dev/null); do
        timeout -k 5 150 ctr -a "$1" -n "$2" tasks kill -s SIGKILL "$_c" >/dev/null 2>&1
        sleep 0.2
        timeout -k 5 150 ctr -a "$1" -n "$2" tasks delete -f "$_c" >/dev/null 2>&1
        timeout -k 5 150 ctr -a "$1" -n "$2" containers delete "$_c" >/dev/null 2>&1
    done
    kill "$3"
    for _i in $(seq 50); do kill -0 "$3" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$3" 2>/dev/null
    wait "$3" 2>/dev/null
}

# hull_wrappers DIR HULL KERNEL CALLS: DIR/hull and DIR/hull-vm, the programs a client is told
# to run as its runtime: each appends "NAME ARGS" to CALLS (the proof the client ran hull),
# then execs HULL through a link named like itself in DIR/bin (the name hull-vm chooses the
# vm backend), with the guest kernel in HULL_KERNEL.
hull_wrappers() {
    mkdir -p "$1/bin" || return 1
    for _h in hull hull-vm; do
        ln -sf "$2" "$1/bin/$_h" || return 1
        printf '#!/bin/sh\nprintf '"'"'%%s\\n'"'"' "%s $*" >>"%s"\nexport HULL_KERNEL='"'"'%s'"'"'\nexec "%s" "$@"\n' \
            "$_h" "$4" "$3" "$1/bin/$_h" >"$1/$_h" || return 1
        chmod 755 "$1/$_h" || return 1
    done
}
