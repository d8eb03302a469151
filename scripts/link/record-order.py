#!/usr/bin/env python3
"""Records scripts/link/hull.order: the functions a container's lifecycle runs, first-run first.

    record-order.py BINARY [--all] [--out FILE]

BINARY is a release hull linked with HULL_LINK_KEEP_SYMBOLS=1 (`just link-order` builds it): the
same code at the same addresses as the stripped build, with its symbols. As root, this puts a
uprobe on the entry of each of its functions (tracefs), runs a lifecycle on the benchmark's
bundles (run, create/start/state/delete, run -d, exec, kill, delete -f, --version), and writes the
functions the uprobes saw, in the order they first ran. scripts/link/cc then links hull with them
side by side.

Without --all, only the functions whose path (the name less its hash) is already in the order
get a probe: quick, for a build whose names moved. --all probes every function (about 11,000),
which the kernel takes ~8 minutes to set up and as long to take down: needed after a change that
makes the lifecycle run new code.

Vector string functions of the C library (avx, evex, sse, erms) get no probe: a uprobe on their
first instruction never returns here.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

TRACE = "/sys/kernel/tracing"
GROUP = "hullorder"
HASH = re.compile(r"17h[0-9a-f]{16}E([.]llvm[.][0-9]+)?$")
UNPROBABLE = re.compile(r"avx|evex|sse|erms|_rtm")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORDER = os.path.join(ROOT, "scripts", "link", "hull.order")
BENCH = os.path.join(ROOT, "target", "bench")


def path_of(name):
    return HASH.sub("", name)


def functions(binary):
    """(file offset, name) of each function in BINARY."""
    loads = []
    for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            loads.append((int(f[2], 16), int(f[1], 16), int(f[4], 16)))
    seen = {}
    for line in subprocess.run(["nm", "--defined-only", "-S", binary], capture_output=True,
                               text=True, check=True).stdout.splitlines():
        f = line.split()
        if len(f) != 4 or f[2] not in "tTwW" or int(f[1], 16) == 0:
            continue
        if UNPROBABLE.search(f[3]):
            continue
        addr = int(f[0], 16)
        for vaddr, offset, size in loads:
            if vaddr <= addr < vaddr + size:
                seen.setdefault(addr - vaddr + offset, f[3])
    return sorted(seen.items())


def workload(hull, root):
    bundle, sleeper = os.path.join(BENCH, "bundle"), os.path.join(BENCH, "bundle-sleep")
    quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    steps = [
        ["--version"],
        ["run", "--bundle", bundle, "o1"],
        ["create", "--bundle", bundle, "--pid-file", os.path.join(root, "o2.pid"), "o2"],
        ["start", "o2"],
        ["state", "o2"],
        ["delete", "-f", "o2"],
        ["run", "-d", "--bundle", sleeper, "o3"],
        ["exec", "o3", "/bin/true"],
        ["kill", "o3", "KILL"],
        ["delete", "-f", "o3"],
    ]
    for step in steps:
        args = [hull] if step == ["--version"] else [hull, "--root", root]
        subprocess.run(args + step, check=False, timeout=60, **quiet)


def write(path, text):
    with open(os.path.join(TRACE, path), "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--all", action="store_true", help="probe every function (slow)")
    ap.add_argument("--out", default=ORDER)
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    if not os.path.isdir(os.path.join(BENCH, "bundle-sleep")):
        sys.exit("record-order: no benchmark bundles in %s: run `just bench 1` once" % BENCH)
    if not os.path.exists(os.path.join(TRACE, "uprobe_events")):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACE], check=False)
    funcs = functions(binary)
    if not a.all:
        with open(ORDER) as f:
            known = {path_of(line.strip()) for line in f if line.strip()}
        funcs = [(o, n) for o, n in funcs if path_of(n) in known]
    print("record-order: %d probes (setting up takes the kernel ~50 ms each)" % len(funcs),
          file=sys.stderr)
    names = {}
    fd = os.open(os.path.join(TRACE, "uprobe_events"), os.O_WRONLY | os.O_APPEND)
    try:
        for i, (offset, name) in enumerate(funcs):
            names["f%d" % i] = name
            os.write(fd, b"p:%s/f%d %s:0x%x\n" % (GROUP.encode(), i, binary.encode(), offset))
        os.close(fd)
        fd = -1
        write("buffer_size_kb", "65536")
        write("trace", "")
        write("events/%s/enable" % GROUP, "1")
        write("tracing_on", "1")
        with tempfile.TemporaryDirectory(prefix="hull-order-") as root:
            workload(binary, root)
        write("tracing_on", "0")
        order, seen = [], set()
        with open(os.path.join(TRACE, "trace")) as trace:
            for line in trace:
                m = re.search(r" (f\d+): \(", line)
                if m and m.group(1) not in seen:
                    seen.add(m.group(1))
                    order.append(names[m.group(1)])
        if len(order) < 100:
            sys.exit("record-order: only %d functions ran: is the binary unstripped?" % len(order))
        with open(a.out, "w") as f:
            f.write("\n".join(order) + "\n")
        print("record-order: %d functions in %s" % (len(order), a.out), file=sys.stderr)
    finally:
        if fd >= 0:
            os.close(fd)
        print("record-order: taking the probes down (as slow as setting them up)",
              file=sys.stderr)
        write("tracing_on", "1")
        if os.path.exists(os.path.join(TRACE, "events", GROUP)):
            write("events/%s/enable" % GROUP, "0")
        fd = os.open(os.path.join(TRACE, "uprobe_events"), os.O_WRONLY | os.O_APPEND)
        for event in names:
            try:
                os.write(fd, b"-:%s/%s\n" % (GROUP.encode(), event.encode()))
            except OSError:
                pass
        os.close(fd)
        write("trace", "")


if __name__ == "__main__":
    main()
