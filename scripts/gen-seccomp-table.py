#!/usr/bin/env python3
"""Writes src/native/seccomp/table.rs: syscall numbers by name for each architecture that
hull's seccomp filters name (what libseccomp's tables give runc).

    scripts/gen-seccomp-table.py [--check] [--out PATH]

Reads the kernel's uapi headers that Debian's linux-libc-dev installs (6.1 on Debian 12):
asm/unistd_64.h, unistd_32.h and unistd_x32.h for x86_64, x86 and x32, and
asm-generic/unistd.h through `cpp` with the __ARCH_WANT_* defines of arm64 and riscv (as their
own asm/unistd.h set them) for aarch64 and riscv64. Then adds the syscalls numbered after 6.1
(451 and up, the same number on every architecture; x32 adds its syscall bit), which the
headers do not have yet, and riscv's two arch-specific ones. Each table is sorted by name and
wrapped at 99 columns. --check compares with the file instead of writing it (exit 1 when they
differ). Needs python3, cpp (gcc) and linux-libc-dev.
"""
import argparse
import pathlib
import re
import subprocess
import sys

ASM = "/usr/include/x86_64-linux-gnu/asm"
GENERIC = "/usr/include/asm-generic/unistd.h"
X32_BIT = 0x40000000

# Numbered after Linux 6.1, alike on every architecture (x32: plus X32_BIT).
AFTER_6_1 = {
    "cachestat": 451, "fchmodat2": 452, "map_shadow_stack": 453, "futex_wake": 454,
    "futex_wait": 455, "futex_requeue": 456, "statmount": 457, "listmount": 458,
    "lsm_get_self_attr": 459, "lsm_set_self_attr": 460, "lsm_list_modules": 461, "mseal": 462,
    "setxattrat": 463, "getxattrat": 464, "listxattrat": 465, "removexattrat": 466,
    "open_tree_attr": 467, "file_getattr": 468, "file_setattr": 469,
}

# What arch/arm64 and arch/riscv define before including asm-generic/unistd.h (64-bit).
ARM64_WANTS = ["RENAMEAT", "NEW_STAT", "SET_GET_RLIMIT", "SYS_CLONE3", "MEMFD_SECRET"]
RISCV_WANTS = ["NEW_STAT", "SET_GET_RLIMIT", "SYS_CLONE3", "MEMFD_SECRET"]
# __NR_arch_specific_syscall (244) + 14 and + 15 on riscv.
RISCV_OWN = {"riscv_hwprobe": 258, "riscv_flush_icache": 259}


def from_header(path, bit=0):
    table = {}
    for name, value in re.findall(r"#define __NR_(\w+)\s+(.+)", pathlib.Path(path).read_text()):
        table[name] = int(value.replace("__X32_SYSCALL_BIT", "0").strip("() ").split("+")[-1].strip()) + bit
    return table


def from_generic(wants):
    text = pathlib.Path(GENERIC).read_text()
    names = sorted(set(re.findall(r"__NR_(\w+)", text)) - {"syscalls", "arch_specific_syscall"})
    source = "#include <asm-generic/unistd.h>\n" + "".join(f"@@{n} __NR_{n}\n" for n in names)
    defines = ["-D__BITS_PER_LONG=64"] + [f"-D__ARCH_WANT_{w}" for w in wants]
    out = subprocess.run(["cpp", "-P", "-nostdinc", "-I/usr/include", f"-I{ASM}/.."] + defines,
                         input=source, capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        if not line.startswith("@@"):
            continue
        name, expr = line[2:].split(" ", 1)
        if "__NR" in expr:  # not defined for this architecture
            continue
        # Only integer literals, + and parentheses after preprocessing.
        if not re.fullmatch(r"[\d\s()+]+", expr):
            sys.exit(f"unexpected expression for {name}: {expr}")
        table[name] = eval(expr)  # noqa: S307 (checked above: digits, spaces, + and parens)
    return table


def tables():
    x86_64 = from_header(f"{ASM}/unistd_64.h")
    x86 = from_header(f"{ASM}/unistd_32.h")
    x32 = from_header(f"{ASM}/unistd_x32.h", X32_BIT)
    arm64 = from_generic(ARM64_WANTS)
    riscv = {**from_generic(RISCV_WANTS), **RISCV_OWN}
    for t in (x86_64, x86, arm64, riscv):
        t.update(AFTER_6_1)
    x32.update({n: v + X32_BIT for n, v in AFTER_6_1.items()})
    return [("X86_64", x86_64, False), ("X86", x86, False), ("X32", x32, True),
            ("AARCH64", arm64, False), ("RISCV64", riscv, False)]


HEADER = """//! Syscall numbers by name, per architecture: what libseccomp's tables give runc.
//!
//! Generated from the kernel's uapi headers (Debian 12 linux-libc-dev 6.1: asm/unistd_64.h,
//! unistd_32.h, unistd_x32.h, and asm-generic/unistd.h through cpp with each architecture's
//! __ARCH_WANT_* defines), plus the syscalls added since 6.1 (451..469, numbered alike on
//! every architecture). Each table is sorted by name. Do not edit by hand: run
//! scripts/gen-seccomp-table.py (`just lint` checks the file is what it writes).
"""

FOOTER = """
#[cfg(test)]
mod tests {
    #[test]
    fn sorted_by_name() {
        for t in [super::X86_64, super::X86, super::X32, super::AARCH64, super::RISCV64] {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
"""


def render():
    out = [HEADER]
    for name, table, hexa in tables():
        out.append("\n#[rustfmt::skip]\n")
        out.append(f"pub static {name}: &[(&str, u32)] = &[\n")
        line = "   "
        for sys_name in sorted(table):
            value = f"{table[sys_name]:#x}" if hexa else str(table[sys_name])
            item = f' ("{sys_name}", {value}),'
            if len(line) + len(item) > 99:
                out.append(line + "\n")
                line = "   "
            line += item
        out.append(line + "\n];\n")
    out.append(FOOTER)
    return "".join(out)


def main():
    repo = pathlib.Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the file, write nothing")
    ap.add_argument("--out", default=str(repo / "src/native/seccomp/table.rs"))
    args = ap.parse_args()
    text = render()
    path = pathlib.Path(args.out)
    if args.check:
        if path.read_text() != text:
            sys.exit(f"{path} differs from what {sys.argv[0]} generates: run it to regenerate")
        print(f"{path}: up to date")
        return
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
