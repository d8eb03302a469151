//! Device rules on cgroup v2: v2 has no devices.allow/deny files, so the rules become a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup.
//!
//! The program sees (access << 16 | type, major, minor) for every device open or mknod and
//! returns 1 to allow. Rules are checked last to first and the first match decides (so a
//! later rule overrides an earlier one, as writing them in order to v1's files does); an
//! allow rule matches when it grants every access asked for, a deny rule when it forbids
//! any of them. Nothing matching means allowed, like v1's root cgroup.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::error::Fault;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high one
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | dst, off, imm }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7;
const AND64_K: u8 = 0x57;
const RSH64_K: u8 = 0x77;
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15;
const EXIT: u8 = 0x95;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn access_bits(a: Option<&str>) -> i32 {
    let a = a.filter(|s| !s.is_empty()).unwrap_or("rwm");
    let mut bits = 0;
    for c in a.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        };
    }
    bits
}

/// The program for `rules`.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    // r2 = type|access word, r3 = type, r4 = access, r5 = major, r6 = minor.
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(MOV64_X, 3, 2, 0, 0),
        insn(AND64_K, 3, 0, 0, 0xffff),
        insn(MOV64_X, 4, 2, 0, 0),
        insn(RSH64_K, 4, 0, 0, 16),
        insn(LDX_W, 5, 1, 4, 0),
        insn(LDX_W, 6, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // Each check jumps past the rest of this rule's block when it does not hold; the
        // jump offsets are filled once the block's length is known.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        match rule.typ() {
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => {
                block.push((insn(JNE_K, 3, 0, 0, DEV_CHAR), true))
            }
            Some(LinuxDeviceType::B) => block.push((insn(JNE_K, 3, 0, 0, DEV_BLOCK), true)),
            // 'a' and none match any type; pipes ('p') never reach the device cgroup.
            Some(LinuxDeviceType::P) => continue,
            _ => {}
        }
        if let Some(m) = rule.major().filter(|m| *m >= 0) {
            block.push((insn(JNE_K, 5, 0, 0, m as i32), true));
        }
        if let Some(m) = rule.minor().filter(|m| *m >= 0) {
            block.push((insn(JNE_K, 6, 0, 0, m as i32), true));
        }
        let acc = access_bits(rule.access().as_deref());
        block.push((insn(MOV64_X, 7, 4, 0, 0), false));
        if rule.allow() {
            // Matches only if nothing outside the rule's access is asked for.
            block.push((insn(AND64_K, 7, 0, 0, !acc & 0x7), false));
            block.push((insn(JNE_K, 7, 0, 0, 0), true));
        } else {
            // Matches if any forbidden access is asked for.
            block.push((insn(AND64_K, 7, 0, 0, acc), false));
            block.push((insn(JEQ_K, 7, 0, 0, 0), true));
        }
        block.push((insn(MOV64_K, 0, 0, 0, i32::from(rule.allow())), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let n = block.len();
        for (i, (mut ins, jumps)) in block.into_iter().enumerate() {
            if jumps {
                ins.off = (n - i - 1) as i16;
            }
            p.push(ins);
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 1));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: attr is a zero-padded bpf_attr of the size passed, alive for the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// BPF_PROG_LOAD with an optional verifier log buffer.
fn load(prog: &[Insn], log: Option<&mut Vec<u8>>) -> std::io::Result<i64> {
    let license = b"Apache-2.0\0";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&15u32.to_ne_bytes()); // BPF_PROG_TYPE_CGROUP_DEVICE
    attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    if let Some(log) = log {
        attr[24..28].copy_from_slice(&1u32.to_ne_bytes()); // log_level
        attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
        attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    }
    bpf(5, &mut attr)
}

/// Loads the program for `rules` and attaches it to the cgroup at `dir`.
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), Fault> {
    let prog = program(rules);
    // Without a log first: before Linux 6.4 a verifier log that outgrows its buffer fails
    // the load (ENOSPC) even for a valid program. The log is only wanted to explain a failure.
    let fd = match load(&prog, None) {
        Ok(fd) => fd,
        Err(source) => {
            let mut log = vec![0u8; 1 << 20];
            let log = match load(&prog, Some(&mut log)) {
                Ok(_) => String::new(),
                Err(_) => String::from_utf8_lossy(&log).trim_end_matches('\0').trim().to_string(),
            };
            return Err(Fault::BpfLoad { log, source });
        }
    };
    // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let dir_fault = |op, source| Fault::Dir { op, path: dir.to_path_buf(), source };
    let cg = std::fs::File::open(dir).map_err(|e| dir_fault("devices: open", e))?;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cg.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&6u32.to_ne_bytes()); // BPF_CGROUP_DEVICE
    attr[12..16].copy_from_slice(&2u32.to_ne_bytes()); // BPF_F_ALLOW_MULTI
    bpf(8, &mut attr).map_err(|e| dir_fault("devices: attach the BPF program to", e))?;
    // The cgroup holds its own reference to the program: our fd can go.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(allow);
        d.set_typ(typ);
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        d
    }

    /// A tiny interpreter for the instructions the generator emits, to check the logic
    /// without loading anything into a kernel.
    fn run(p: &[Insn], typ: i32, acc: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((acc << 16) | typ) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[(i.off / 4) as usize] as i64,
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i.imm as i64,
                AND64_K => r[dst] &= i.imm as i64,
                RSH64_K => r[dst] >>= i.imm,
                JNE_K => {
                    if r[dst] != i.imm as i64 {
                        pc += i.off as usize
                    }
                }
                JEQ_K => {
                    if r[dst] == i.imm as i64 {
                        pc += i.off as usize
                    }
                }
                EXIT => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn deny_all_then_allow_some() {
        let c = Some(LinuxDeviceType::C);
        let p = program(&[
            rule(false, None, None, None, "rwm"),
            rule(true, c, Some(1), Some(3), "rwm"),
            rule(true, c, Some(136), None, "rw"),
        ]);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 5), 0, "/dev/zero");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 7), 1, "a pty");
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 136, 7), 0, "mknod of a pty");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 1, 3), 0, "block 1:3");
    }

    #[test]
    fn no_rules_allow_everything_and_later_rules_win() {
        assert_eq!(run(&program(&[]), DEV_BLOCK, ACC_WRITE, 8, 0), 1);
        let c = Some(LinuxDeviceType::C);
        let p = program(&[rule(true, c, Some(1), Some(5), "rwm"), rule(false, c, Some(1), Some(5), "w")]);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 5), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 5), 0);
    }

    /// Loads the program into the kernel for real: on the cgroup2 hierarchy (pure v2, or
    /// the hybrid layout's unified mount), a child in the cgroup may open /dev/null but not
    /// /dev/zero.
    #[test]
    fn kernel_enforces_the_program() {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let Some(mp) = mountinfo.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2").then(|| left.split(' ').nth(4).map(String::from))?
        }) else {
            eprintln!("no cgroup2 mount: skipped");
            return;
        };
        let dir = Path::new(&mp).join(format!("hull-bpf-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let c = Some(LinuxDeviceType::C);
        // Many rules, as podman sends: a long verifier log must not fail the load.
        let mut rules = vec![rule(false, None, None, None, "rwm"), rule(true, c, Some(1), Some(3), "rwm")];
        for minor in 100..140 {
            rules.push(rule(true, c, Some(10), Some(minor), "rwm"));
        }
        rules.push(rule(false, c, Some(1), Some(5), "rwm"));
        attach(&dir, &rules).unwrap();
        let procs = dir.join("cgroup.procs");
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("echo $$ > {}; cat /dev/null && ! head -c1 /dev/zero 2>/dev/null", procs.display()))
            .status()
            .unwrap();
        let _ = std::fs::remove_dir(&dir);
        assert!(status.success(), "null must open, zero must not");
    }
}
