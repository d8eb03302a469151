#!/usr/bin/env python3
"""The VMM's part of the code order (scripts/link/vmm.order), from the pages a VMM touched.

record-vmm-order.sh runs it on the host around two runs of vmm-pages.sh in the test machine:

  vmm-order.py shuffle BINARY SEED OUT       every function of BINARY, in a random order (the
                                             same for the same SEED): another layout to run
  vmm-order.py touched BINARY PAGES OUT      the functions on the text pages PAGES lists
                                             (vmm-pages.sh's VMMPAGE lines) in BINARY's layout
  vmm-order.py write ORDER TOUCHED... OUT    the functions every TOUCHED list has and ORDER
                                             (hull.order) does not, in the first list's order

A page holds several functions, and a VMM touches only some of them: a function on a touched
page in one layout may not have run. In a shuffled layout its neighbours are others: a function
that did not run lands on a touched page again only by chance (about half of the text pages are
touched in a shuffled layout), so each further layout halves what is kept wrongly. BINARY is a build linked with HULL_LINK_KEEP_SYMBOLS=1.
"""
import random
import re
import subprocess
import sys

LLVM_SUFFIX = re.compile(r"\.llvm\.\d+$")
PAGE = 4096


def functions(binary):
    """(address, size, name) of every function symbol with a size, by address."""
    out = subprocess.run(["nm", "-n", "-S", "--defined-only", binary], check=True,
                         capture_output=True, text=True).stdout
    funcs = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW" and int(parts[1], 16) > 0:
            funcs.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    return funcs


def text_segment(binary):
    """(file offset, virtual address, file size) of the executable LOAD segment."""
    out = subprocess.run(["readelf", "-lW", binary], check=True, capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "LOAD" and "E" in parts[6:-1]:
            return int(parts[1], 16), int(parts[2], 16), int(parts[4], 16)
    sys.exit(f"vmm-order: no executable LOAD segment in {binary}")


def touched(binary, pages_file, out):
    offset, vaddr, size = text_segment(binary)
    pages = set()
    with open(pages_file) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "VMMPAGE":
                off = int(parts[2], 16)
                if offset <= off + PAGE and off < offset + size:
                    pages.add((off - offset + vaddr) // PAGE)
    if not pages:
        sys.exit(f"vmm-order: no text pages in {pages_file}")
    names = [name for addr, size, name in functions(binary)
             if any(p in pages for p in range(addr // PAGE, (addr + size - 1) // PAGE + 1))]
    with open(out, "w") as f:
        f.writelines(n + "\n" for n in names)
    print(f"vmm-order: {len(pages)} text pages touched, {len(names)} functions on them")


def shuffle(binary, seed, out):
    names = [name for _, _, name in functions(binary)]
    random.Random(seed).shuffle(names)
    with open(out, "w") as f:
        f.writelines(n + "\n" for n in names)


def write(order, lists, out):
    def key(name):
        return LLVM_SUFFIX.sub("", name.strip())

    with open(order) as f:
        placed = {key(line) for line in f}
    sets = []
    for path in lists[1:]:
        with open(path) as f:
            sets.append({key(line) for line in f})
    names = []
    seen = set()
    with open(lists[0]) as f:
        for line in f:
            name = line.strip()
            k = key(name)
            if k in placed or k in seen or not all(k in s for s in sets):
                continue
            seen.add(k)
            names.append(name)
    with open(out, "w") as f:
        f.writelines(n + "\n" for n in names)
    print(f"vmm-order: {len(names)} functions in {out}")


def main(argv):
    if len(argv) == 5 and argv[1] == "shuffle":
        shuffle(argv[2], int(argv[3]), argv[4])
    elif len(argv) == 5 and argv[1] == "touched":
        touched(argv[2], argv[3], argv[4])
    elif len(argv) >= 5 and argv[1] == "write":
        write(argv[2], argv[3:-1], argv[-1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
