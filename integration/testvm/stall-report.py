#!/usr/bin/env python3
"""What a stalled test machine was doing, asked of QEMU's human monitor.

    stall-report.py MONITOR_SOCKET [--map NAME=SYSTEM.MAP[@OFFSET]]... [--samples N]

Prints `info status`, then N samples (1 s apart) of every vcpu's instruction pointer with
the kernel symbol it falls in, then the last sample's mode and control registers. A vcpu whose pc stays in one small
function across the samples is spinning there; one whose pc is not in any map is in a nested
guest (or user space). testvm.sh runs this when its heartbeat stops, before it ends QEMU.

--map names a System.map; OFFSET (hex) is added to its addresses (a KASLR slide the guest
reported). Several maps may be given (the test machine's kernel, the hull guest's kernel): each
pc is looked up in each.
"""

import bisect
import re
import socket
import sys
import time


def read_until_prompt(sock, deadline):
    buf = b""
    while not buf.endswith(b"(qemu) "):
        if time.monotonic() > deadline:
            break
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
    return buf.decode("utf-8", "replace")


def command(sock, cmd, timeout=5.0):
    sock.sendall(cmd.encode() + b"\n")
    out = read_until_prompt(sock, time.monotonic() + timeout)
    lines = out.replace("\r", "").split("\n")
    # The monitor echoes the command (with terminal escapes) and ends with the prompt.
    lines = [l for l in lines if not l.startswith("(qemu)") and cmd not in l]
    return "\n".join(lines).strip()


class SymbolMap:
    def __init__(self, name, path, offset):
        self.name = name
        self.addrs = []
        self.names = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tTwW":
                    self.addrs.append(int(parts[0], 16) + offset)
                    self.names.append(parts[2])
        order = sorted(range(len(self.addrs)), key=self.addrs.__getitem__)
        self.addrs = [self.addrs[i] for i in order]
        self.names = [self.names[i] for i in order]

    def lookup(self, pc):
        i = bisect.bisect_right(self.addrs, pc) - 1
        if i < 0 or pc - self.addrs[i] > 0x100000:
            return None
        return f"{self.names[i]}+{pc - self.addrs[i]:#x}"


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    maps = []
    samples = 3
    i = 2
    while i < len(argv):
        if argv[i] == "--map" and i + 1 < len(argv):
            name, spec = argv[i + 1].split("=", 1)
            file, _, off = spec.partition("@")
            try:
                maps.append(SymbolMap(name, file, int(off, 16) if off else 0))
            except OSError as e:
                print(f"stall-report: map {name}: {e}")
            i += 2
        elif argv[i] == "--samples" and i + 1 < len(argv):
            samples = int(argv[i + 1])
            i += 2
        else:
            print(f"stall-report: unknown argument {argv[i]}", file=sys.stderr)
            return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(0.5)
    try:
        sock.connect(path)
    except OSError as e:
        print(f"stall-report: cannot reach QEMU's monitor at {path}: {e}")
        return 1
    read_until_prompt(sock, time.monotonic() + 5)
    print("info status:", command(sock, "info status"))
    regs = ""
    for n in range(samples):
        if n:
            time.sleep(1)
        regs = command(sock, "info registers -a", timeout=10)
        print(f"sample {n + 1}:")
        cpu = "?"
        for line in regs.splitlines():
            m = re.match(r"CPU#(\d+)", line)
            if m:
                cpu = m.group(1)
            m = re.search(r"RIP=([0-9a-f]+) .*CPL=(\d).*HLT=(\d)", line)
            if not m:
                continue
            pc = int(m.group(1), 16)
            where = [f"{s.name}:{w}" for s in maps if (w := s.lookup(pc))]
            halted = " halted" if m.group(3) == "1" else ""
            print(f"  cpu {cpu} rip {pc:#018x} cpl {m.group(2)}{halted} {' '.join(where) or '(in no map)'}")
    # Of every vcpu's registers, the lines that tell where it is and in which mode: the rest
    # (segments, FPU, vector registers) is noise here.
    print("info registers -a (pc, flags, control registers):")
    for line in regs.splitlines():
        if line.startswith(("CPU#", "RAX=", "RIP=", "CR0=", "EFER=")):
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
