//! linux.seccomp: the spec's filter compiled to one classic-BPF program in the init, before it
//! enters the container, and installed with seccomp(2).
//!
//! # When the filter is installed
//!
//! As runc does: with `process.noNewPrivileges`, as the very last step before execve; without
//! it, before the user switch and the capability drop (installing a filter needs no_new_privs
//! or CAP_SYS_ADMIN, and setuid to a non-root user or dropping the bounding set takes the
//! latter away), so the filter already covers the rest of the setup (setgroups, setres[ug]id,
//! capset, chdir, prctl, close_range, execve). A filter with SCMP_ACT_NOTIFY is installed in
//! the init before it reports Ready, because its listener fd must reach the agent at
//! `listenerPath` through `hull create` (see [`send_to_agent`]); it then covers everything the
//! init still does (the exec fifo, startContainer hooks, the user switch), as in runc.
//! Rules that NOTIFY `sendmsg` are refused: the init needs it to hand the listener over.
//!
//! # How the program is built
//!
//! seccompiler (rust-vmm) compiles the argument comparisons: each OCI rule with args becomes a
//! `SeccompRule`, whose BPF evaluates the conditions and falls through to the rule's return or
//! jumps past it. Everything around it is generated here, because seccompiler's
//! `SeccompFilter` cannot express what the OCI section needs: it has one match action and one
//! mismatch action per filter (a profile mixes ALLOW, ERRNO with several errnos, LOG, ...), no
//! SECCOMP_RET_USER_NOTIF, a single architecture per program (so no x86 or x32 next to x86_64),
//! and its name-to-number table is private. So:
//!
//! - one section per architecture the filter covers, chosen by `seccomp_data.arch`; any other
//!   architecture gets SECCOMP_RET_KILL_PROCESS (libseccomp's bad-arch action kills too);
//! - in a section, a binary search over the syscall numbers with rules (consecutive numbers
//!   with the same action merged into one range), then per syscall what libseccomp (so runc
//!   and crun) does with several rules: the first rule without args decides alone (later ones,
//!   and rules with args, are ignored: containers-common's profile allows setns and later
//!   denies it without CAP_SYS_ADMIN, and setns is allowed); else the rules with args in the
//!   spec's order, the first that matches deciding; else defaultAction;
//! - as runc (its -ENOSYS stub), a syscall numbered above every syscall the profile names gets
//!   ENOSYS instead of a restrictive defaultAction, so that a program falls back from syscalls
//!   newer than the profile (clone3, faccessat2...) instead of failing with EPERM.
//!
//! # Architectures
//!
//! The native one is always covered, as libseccomp does. On x86_64 hosts SCMP_ARCH_X86 and
//! SCMP_ARCH_X32 get their own numbers (x32 syscalls arrive as AUDIT_ARCH_X86_64 with bit 30
//! set: without SCMP_ARCH_X32 they get the bad-arch action, so they cannot slip past an x86_64
//! deny-list). Listed architectures that cannot run on this host (SCMP_ARCH_AARCH64 on x86_64,
//! mips, s390x, ...) are ignored: no syscall can come from them. SCMP_ARCH_ARM on an aarch64
//! host has no table here: it is left out, so 32-bit ARM programs are killed on their first
//! syscall. Arguments are compared as 64-bit values, except on x86 (32-bit registers), where
//! a value that does not fit 32 bits is decided exactly (`== 2^32` never matches, and so on).
//! Multiplexed calls are not split: on x86 `socket` is the direct syscall, and programs that
//! go through `socketcall` need `socketcall` itself allowed (Docker's profiles do).
//!
//! Syscall names unknown to every covered architecture are skipped (logged with --debug), as
//! runc does.

mod table;

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompArg, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};
use seccompiler::{sock_filter, BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::error::{msg, Context, Error, Result};

// Classic BPF opcodes (linux/filter.h): BPF_LD|BPF_W|BPF_ABS, BPF_JMP|op|BPF_K, BPF_RET|BPF_K.
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
/// BPF_MAXINSNS: the kernel refuses longer programs.
const MAX_INSNS: usize = 4096;
/// Offsets in struct seccomp_data.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const AUDIT_ARCH_RISCV64: u32 = 0xc000_00f3;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_KILL_THREAD: u32 = libc::SECCOMP_RET_KILL_THREAD;
const RET_TRAP: u32 = libc::SECCOMP_RET_TRAP;
const RET_ERRNO: u32 = libc::SECCOMP_RET_ERRNO;
const RET_USER_NOTIF: u32 = libc::SECCOMP_RET_USER_NOTIF;
const RET_TRACE: u32 = libc::SECCOMP_RET_TRACE;
const RET_LOG: u32 = libc::SECCOMP_RET_LOG;
const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_ACTION_FULL: u32 = libc::SECCOMP_RET_ACTION_FULL;

/// A syscall ABI a filter section is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abi {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
    Riscv64,
}

impl Abi {
    fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
            Abi::Riscv64 => AUDIT_ARCH_RISCV64,
        }
    }

    fn table(self) -> Option<&'static [(&'static str, u32)]> {
        match self {
            Abi::X86_64 => Some(table::X86_64),
            Abi::X86 => Some(table::X86),
            Abi::X32 => Some(table::X32),
            Abi::Aarch64 => Some(table::AARCH64),
            Abi::Riscv64 => Some(table::RISCV64),
            Abi::Arm => None,
        }
    }

    fn nr(self, name: &str) -> Option<u32> {
        let t = self.table()?;
        t.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| t[i].1)
    }

    /// Whether syscall arguments are 64-bit registers (x32 passes full 64-bit registers too).
    fn wide_args(self) -> bool {
        !matches!(self, Abi::X86 | Abi::Arm)
    }

    fn from_spec(a: Arch) -> Option<Abi> {
        Some(match a {
            Arch::ScmpArchNative => return native(),
            Arch::ScmpArchX86_64 => Abi::X86_64,
            Arch::ScmpArchX86 => Abi::X86,
            Arch::ScmpArchX32 => Abi::X32,
            Arch::ScmpArchAarch64 => Abi::Aarch64,
            Arch::ScmpArchArm => Abi::Arm,
            Arch::ScmpArchRiscv64 => Abi::Riscv64,
            _ => return None,
        })
    }
}

/// This host's own ABI.
fn native() -> Option<Abi> {
    if cfg!(target_arch = "x86_64") {
        Some(Abi::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Abi::Aarch64)
    } else if cfg!(target_arch = "riscv64") {
        Some(Abi::Riscv64)
    } else {
        None
    }
}

/// The other ABIs a process on this host can make syscalls with.
fn compat() -> &'static [Abi] {
    if cfg!(target_arch = "x86_64") {
        &[Abi::X86, Abi::X32]
    } else if cfg!(target_arch = "aarch64") {
        &[Abi::Arm]
    } else {
        &[]
    }
}

/// A compiled filter, ready to install.
#[derive(Debug)]
pub struct Filter {
    prog: Vec<sock_filter>,
    /// SECCOMP_FILTER_FLAG_* from the spec.
    flags: libc::c_ulong,
    /// Set when a rule or the default action is SCMP_ACT_NOTIFY: installed with a listener.
    notify: bool,
}

/// Compiles the spec's seccomp section.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let Some(native) = native() else {
        return msg("linux.seccomp: hull has no seccomp support for this architecture");
    };
    let default = action(s.default_action(), s.default_errno_ret(), "linux.seccomp.defaultAction")?;
    let abis = covered_abis(native, s.architectures().as_deref().unwrap_or_default());
    let syscalls = s.syscalls().as_deref().unwrap_or_default();

    let mut notify = default == RET_USER_NOTIF;
    let mut per_abi: Vec<(Abi, BTreeMap<u32, Sys>)> = abis.iter().map(|a| (*a, BTreeMap::new())).collect();
    let mut max_nr: Vec<Option<u32>> = vec![None; abis.len()];
    for (i, sc) in syscalls.iter().enumerate() {
        let what = format!("linux.seccomp.syscalls[{i}]");
        let ret = action(sc.action(), sc.errno_ret(), &what)?;
        notify |= ret == RET_USER_NOTIF;
        let args = sc.args().as_deref().unwrap_or_default();
        let groups = arg_groups(args, &what)?;
        for name in sc.names() {
            let mut known = false;
            for (k, (abi, rules)) in per_abi.iter_mut().enumerate() {
                let Some(nr) = abi.nr(name) else { continue };
                known = true;
                max_nr[k] = max_nr[k].max(Some(nr));
                let sys = rules.entry(nr).or_default();
                if groups.is_empty() {
                    match sys.always {
                        Some(prev) if prev != ret && *abi == native => crate::logging::debug(&format!(
                            "seccomp: {what}: {name}: {} ignored, an earlier rule without args gives {}",
                            ret_name(ret),
                            ret_name(prev)
                        )),
                        Some(_) => {}
                        None => sys.always = Some(ret),
                    }
                    continue;
                }
                for g in &groups {
                    if let Some(conds) = conditions(g, abi.wide_args(), &what)? {
                        sys.rules.push(Rule { conds, ret });
                    }
                }
            }
            if !known {
                crate::logging::debug(&format!("seccomp: unknown syscall {name:?} skipped"));
            }
        }
    }

    if notify {
        if s.listener_path().is_none() {
            return msg("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath");
        }
        check_notify_sendmsg(native, &per_abi, default)?;
    }

    // runc's -ENOSYS stub: only when the default would refuse (not for ALLOW, LOG, TRACE or
    // NOTIFY, which leave the decision to someone else) with another answer than ENOSYS.
    let stub = matches!(default & RET_ACTION_FULL, RET_KILL_PROCESS | RET_KILL_THREAD | RET_TRAP | RET_ERRNO)
        && default != RET_ERRNO | libc::ENOSYS as u32;
    let sections: Vec<Section> = per_abi
        .into_iter()
        .zip(max_nr)
        .map(|((abi, rules), max)| Section { abi, rules, enosys_above: if stub { max } else { None } })
        .collect();
    let prog = generate(&sections, default)?;
    Ok(Filter { prog, flags: flags(s, notify), notify })
}

/// The ABIs the filter has sections for: the native one, and listed ones a process here can use.
fn covered_abis(native: Abi, archs: &[Arch]) -> Vec<Abi> {
    let mut out = vec![native];
    for a in archs {
        let Some(abi) = Abi::from_spec(*a) else {
            crate::logging::debug(&format!("seccomp: architecture {a} cannot run on this host: ignored"));
            continue;
        };
        if out.contains(&abi) {
            continue;
        }
        if !compat().contains(&abi) {
            crate::logging::debug(&format!("seccomp: architecture {a} cannot run on this host: ignored"));
        } else if abi.table().is_none() {
            crate::logging::debug(&format!(
                "seccomp: no syscall table for {a}: its syscalls get the bad-architecture action (kill)"
            ));
        } else {
            out.push(abi);
        }
    }
    out
}

/// The SECCOMP_RET_* value of an action.
fn action(a: Act, errno: Option<u32>, what: &str) -> Result<u32> {
    if errno.is_some() && !matches!(a, Act::ScmpActErrno | Act::ScmpActTrace) {
        // runc ignores it too.
        crate::logging::debug(&format!("seccomp: {what}: errnoRet ignored, {a} returns no errno"));
    }
    let data = || -> Result<u32> {
        let e = errno.unwrap_or(libc::EPERM as u32);
        if e > libc::SECCOMP_RET_DATA {
            return msg(format!("{what}: errnoRet {e} does not fit in 16 bits"));
        }
        Ok(e)
    };
    Ok(match a {
        Act::ScmpActAllow => RET_ALLOW,
        Act::ScmpActErrno => RET_ERRNO | data()?,
        Act::ScmpActKill | Act::ScmpActKillThread => RET_KILL_THREAD,
        Act::ScmpActKillProcess => RET_KILL_PROCESS,
        Act::ScmpActTrap => RET_TRAP,
        Act::ScmpActTrace => RET_TRACE | data()?,
        Act::ScmpActLog => RET_LOG,
        Act::ScmpActNotify => RET_USER_NOTIF,
    })
}

fn ret_name(ret: u32) -> String {
    let data = ret & libc::SECCOMP_RET_DATA;
    match ret & RET_ACTION_FULL {
        RET_ALLOW => "SCMP_ACT_ALLOW".into(),
        RET_ERRNO => format!("SCMP_ACT_ERRNO({data})"),
        RET_KILL_THREAD => "SCMP_ACT_KILL_THREAD".into(),
        RET_KILL_PROCESS => "SCMP_ACT_KILL_PROCESS".into(),
        RET_TRAP => "SCMP_ACT_TRAP".into(),
        RET_TRACE => format!("SCMP_ACT_TRACE({data})"),
        RET_LOG => "SCMP_ACT_LOG".into(),
        RET_USER_NOTIF => "SCMP_ACT_NOTIFY".into(),
        _ => format!("{ret:#x}"),
    }
}

fn flags(s: &LinuxSeccomp, listener: bool) -> libc::c_ulong {
    let mut f: libc::c_ulong = 0;
    for flag in s.flags().as_deref().unwrap_or_default() {
        f |= match flag {
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // With a listener the kernel only takes TSYNC together with TSYNC_ESRCH.
            Flag::SeccompFilterFlagTsync if listener => {
                libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            }
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagWaitKillableRecv if listener => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            Flag::SeccompFilterFlagWaitKillableRecv => {
                crate::logging::debug(
                    "seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: the filter has no NOTIFY rule",
                );
                0
            }
        };
    }
    f
}

/// One OCI rule's args as seccompiler conditions: all in one rule, or, when an argument index
/// repeats, one rule per arg (runc's behaviour: libseccomp takes one condition per argument).
fn arg_groups<'a>(args: &'a [LinuxSeccompArg], what: &str) -> Result<Vec<Vec<&'a LinuxSeccompArg>>> {
    let mut seen = [false; 6];
    let mut repeats = false;
    for (j, a) in args.iter().enumerate() {
        let Some(slot) = seen.get_mut(a.index()) else {
            return msg(format!("{what}.args[{j}].index: {} is not a syscall argument (0..5)", a.index()));
        };
        repeats |= *slot;
        *slot = true;
    }
    Ok(if args.is_empty() {
        vec![]
    } else if repeats {
        args.iter().map(|a| vec![a]).collect()
    } else {
        vec![args.iter().collect()]
    })
}

/// The conditions for one ABI, or None when the rule can never match there. On an ABI with
/// 32-bit arguments a comparison with a value above 32 bits has a known answer.
fn conditions(args: &[&LinuxSeccompArg], wide: bool, what: &str) -> Result<Option<Vec<SeccompCondition>>> {
    let mut out = Vec::new();
    for a in args {
        let two = a.value_two().unwrap_or(0);
        let (op, value) = match a.op() {
            Op::ScmpCmpNe => (SeccompCmpOp::Ne, a.value()),
            Op::ScmpCmpLt => (SeccompCmpOp::Lt, a.value()),
            Op::ScmpCmpLe => (SeccompCmpOp::Le, a.value()),
            Op::ScmpCmpEq => (SeccompCmpOp::Eq, a.value()),
            Op::ScmpCmpGe => (SeccompCmpOp::Ge, a.value()),
            Op::ScmpCmpGt => (SeccompCmpOp::Gt, a.value()),
            // libseccomp's SCMP_CMP_MASKED_EQ: (arg & value) == valueTwo.
            Op::ScmpCmpMaskedEq => (SeccompCmpOp::MaskedEq(a.value()), two),
        };
        let len = if wide {
            SeccompCmpArgLen::Qword
        } else {
            // The argument is below 2^32: decide comparisons with wider values here.
            let big = value > u64::from(u32::MAX);
            let known = match (&op, big) {
                (SeccompCmpOp::Eq | SeccompCmpOp::Gt | SeccompCmpOp::Ge, true) => Some(false),
                (SeccompCmpOp::Ne | SeccompCmpOp::Lt | SeccompCmpOp::Le, true) => Some(true),
                // The mask's high half keeps nothing of a 32-bit argument.
                (SeccompCmpOp::MaskedEq(_), true) => Some(false),
                _ => None,
            };
            match known {
                Some(false) => return Ok(None),
                Some(true) => continue,
                None => SeccompCmpArgLen::Dword,
            }
        };
        let index = u8::try_from(a.index()).map_err(|_| Error::Msg(format!("{what}: bad argument index")))?;
        let c =
            SeccompCondition::new(index, len, op, value).map_err(|e| Error::Msg(format!("{what}: {e}")))?;
        out.push(c);
    }
    Ok(Some(out))
}

/// A syscall's rules on one ABI.
#[derive(Default)]
struct Sys {
    /// Rules with args, in the spec's order; empty conditions (possible on 32-bit ABIs) match.
    rules: Vec<Rule>,
    /// The action of the first rule without args: it overrides all the others.
    always: Option<u32>,
}

struct Rule {
    conds: Vec<SeccompCondition>,
    ret: u32,
}

struct Section {
    abi: Abi,
    rules: BTreeMap<u32, Sys>,
    enosys_above: Option<u32>,
}

/// The NOTIFY filter is in force when the init hands the listener over with sendmsg: a NOTIFY
/// there would wait for an agent that has no listener yet.
fn check_notify_sendmsg(native: Abi, per_abi: &[(Abi, BTreeMap<u32, Sys>)], default: u32) -> Result<()> {
    let Some(nr) = native.nr("sendmsg") else {
        return Ok(());
    };
    let sys = per_abi.iter().find(|(a, _)| *a == native).and_then(|(_, r)| r.get(&nr));
    let notifies = match sys {
        Some(s) => match s.always {
            Some(a) => a == RET_USER_NOTIF,
            None => default == RET_USER_NOTIF || s.rules.iter().any(|r| r.ret == RET_USER_NOTIF),
        },
        None => default == RET_USER_NOTIF,
    };
    if notifies {
        return msg(
            "linux.seccomp: sendmsg cannot be SCMP_ACT_NOTIFY: hull's init sends the listener fd with it; allow it",
        );
    }
    Ok(())
}

// ---- code generation ----

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Instructions with forward `ja` jumps to labels, resolved at the end. Conditional jumps only
/// ever skip an instruction or two, so their 8-bit offsets never overflow.
#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

enum Item {
    Ins(sock_filter),
    Ja(usize),
    Label(usize),
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }
    fn put(&mut self, i: sock_filter) {
        self.items.push(Item::Ins(i));
    }
    fn ja(&mut self, l: usize) {
        self.items.push(Item::Ja(l));
    }
    fn here(&mut self, l: usize) {
        self.items.push(Item::Label(l));
    }

    fn finish(self) -> Result<Vec<sock_filter>> {
        let mut at = vec![None; self.labels];
        let mut n = 0usize;
        for it in &self.items {
            match it {
                Item::Label(l) => at[*l] = Some(n),
                _ => n += 1,
            }
        }
        if n > MAX_INSNS {
            return msg(format!(
                "linux.seccomp: the filter needs {n} BPF instructions, more than the kernel's {MAX_INSNS}"
            ));
        }
        let mut out = Vec::with_capacity(n);
        for it in self.items {
            match it {
                Item::Label(_) => {}
                Item::Ins(i) => out.push(i),
                Item::Ja(l) => {
                    let pc = out.len();
                    let off = at
                        .get(l)
                        .copied()
                        .flatten()
                        .and_then(|t| t.checked_sub(pc + 1))
                        .and_then(|o| u32::try_from(o).ok())
                        .ok_or_else(|| {
                            Error::Msg("seccomp: internal error: bad jump in the filter".into())
                        })?;
                    out.push(stmt(JMP_JA, off));
                }
            }
        }
        Ok(out)
    }
}

/// What a syscall number leads to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    Ret(u32),
    Body(usize),
}

/// Numbers lo..=hi that all lead to the same place.
struct Span {
    lo: u32,
    hi: u32,
    then: Then,
}

fn generate(sections: &[Section], default: u32) -> Result<Vec<sock_filter>> {
    let mut asm = Asm::default();
    let bad_arch = asm.label();
    let x32 = sections.iter().find(|s| s.abi == Abi::X32);
    let mains: Vec<&Section> = sections.iter().filter(|s| s.abi != Abi::X32).collect();
    let starts: Vec<usize> = mains.iter().map(|_| asm.label()).collect();

    asm.put(stmt(LD_W_ABS, DATA_ARCH));
    for (s, l) in mains.iter().zip(&starts) {
        asm.put(jump(JMP_JEQ_K, s.abi.audit_arch(), 0, 1));
        asm.ja(*l);
    }
    asm.put(stmt(RET_K, RET_KILL_PROCESS));

    for (s, l) in mains.iter().zip(&starts) {
        asm.here(*l);
        asm.put(stmt(LD_W_ABS, DATA_NR));
        if s.abi == Abi::X86_64 {
            // x32 shares AUDIT_ARCH_X86_64 and sets bit 30 of the number.
            let x32_start = asm.label();
            asm.put(jump(JMP_JSET_K, X32_SYSCALL_BIT, 0, 1));
            asm.ja(if x32.is_some() { x32_start } else { bad_arch });
            section(&mut asm, s, default)?;
            if let Some(x) = x32 {
                asm.here(x32_start);
                section(&mut asm, x, default)?;
            }
        } else {
            section(&mut asm, s, default)?;
        }
    }
    asm.here(bad_arch);
    asm.put(stmt(RET_K, RET_KILL_PROCESS));
    asm.finish()
}

/// One ABI's dispatch, with the syscall number in A.
fn section(asm: &mut Asm, s: &Section, default: u32) -> Result<()> {
    if let Some(max) = s.enosys_above {
        asm.put(jump(JMP_JGT_K, max, 0, 1));
        asm.put(stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32));
    }
    let mut bodies: Vec<(usize, &Sys)> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    for (nr, sys) in &s.rules {
        let then = if sys.rules.is_empty() || sys.always.is_some() {
            let ret = sys.always.unwrap_or(default);
            if ret == default {
                continue;
            }
            Then::Ret(ret)
        } else {
            let l = asm.label();
            bodies.push((l, sys));
            Then::Body(l)
        };
        match spans.last_mut() {
            Some(last)
                if matches!(then, Then::Ret(_))
                    && last.then == then
                    && last.hi.checked_add(1) == Some(*nr) =>
            {
                last.hi = *nr
            }
            _ => spans.push(Span { lo: *nr, hi: *nr, then }),
        }
    }
    tree(asm, &spans, default);
    for (l, sys) in bodies {
        asm.here(l);
        body(asm, sys, default)?;
    }
    Ok(())
}

/// Binary search over the spans; falls back to `default` where no span holds the number.
fn tree(asm: &mut Asm, spans: &[Span], default: u32) {
    const LEAF: usize = 4;
    if spans.len() > LEAF {
        let mid = spans.len() / 2;
        let right = asm.label();
        asm.put(jump(JMP_JGE_K, spans[mid].lo, 0, 1));
        asm.ja(right);
        tree(asm, &spans[..mid], default);
        asm.here(right);
        tree(asm, &spans[mid..], default);
        return;
    }
    for s in spans {
        if s.lo == s.hi {
            asm.put(jump(JMP_JEQ_K, s.lo, 0, 1));
        } else {
            asm.put(jump(JMP_JGT_K, s.hi, 2, 0));
            asm.put(jump(JMP_JGE_K, s.lo, 0, 1));
        }
        match s.then {
            Then::Ret(r) => asm.put(stmt(RET_K, r)),
            Then::Body(l) => asm.ja(l),
        }
    }
    asm.put(stmt(RET_K, default));
}

/// A syscall with rules on its args (and none without): each rule's conditions (seccompiler's
/// code jumps past the rule's return when one fails), then the default.
fn body(asm: &mut Asm, sys: &Sys, default: u32) -> Result<()> {
    for r in &sys.rules {
        if r.conds.is_empty() {
            asm.put(stmt(RET_K, r.ret));
            return Ok(());
        }
        let rule = SeccompRule::new(r.conds.clone()).map_err(|e| Error::Msg(format!("seccomp: {e}")))?;
        let code: BpfProgram = rule.into();
        for i in code {
            asm.put(i);
        }
        asm.put(stmt(RET_K, r.ret));
    }
    asm.put(stmt(RET_K, default));
    Ok(())
}

// ---- installing ----

/// struct sock_fprog (linux/filter.h).
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const sock_filter,
}

impl Filter {
    /// Whether the filter has NOTIFY actions, so must be installed with [`Filter::install_listener`].
    pub fn needs_listener(&self) -> bool {
        self.notify
    }

    /// Installs the filter on this thread; the next syscall is already filtered. Needs
    /// no_new_privs or CAP_SYS_ADMIN (in this user namespace).
    pub fn install(self) -> Result<()> {
        if self.notify {
            return msg("seccomp: a filter with SCMP_ACT_NOTIFY must be installed with its listener");
        }
        self.load(self.flags).map(|_| ())
    }

    /// Installs a filter with NOTIFY actions and returns its listener fd (close-on-exec).
    pub fn install_listener(self) -> Result<OwnedFd> {
        let rc = self.load(self.flags | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
        let fd = i32::try_from(rc).map_err(|_| Error::Msg(format!("seccomp: bad listener fd {rc}")))?;
        // SAFETY: with NEW_LISTENER, seccomp(2) returns a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn load(&self, flags: libc::c_ulong) -> Result<libc::c_long> {
        let len = libc::c_ushort::try_from(self.prog.len())
            .map_err(|_| Error::Msg("seccomp: filter too long".into()))?;
        let prog = SockFprog { len, filter: self.prog.as_ptr() };
        // SAFETY: `prog` points to `self.prog`, which outlives the call; the kernel copies the
        // program and keeps no pointer to it.
        let rc = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &prog as *const SockFprog)
        };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            let why = match e.raw_os_error() {
                Some(libc::EACCES) => " (needs process.noNewPrivileges or CAP_SYS_ADMIN)",
                Some(libc::EINVAL) => " (does the kernel know every flag in linux.seccomp.flags?)",
                _ => "",
            };
            return Err(e).ctx(|| format!("install seccomp filter{why}"));
        }
        if rc > 0
            && flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0
            && flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER == 0
        {
            return msg(format!("install seccomp filter: thread {rc} could not be synchronized (TSYNC)"));
        }
        Ok(rc)
    }
}

/// `hull create`'s part: the init sent its listener fd; give it to the agent, with the state.
pub fn hand_over(
    spec: &oci_spec::runtime::Spec,
    listener: &OwnedFd,
    pid: i32,
    state_for: super::StateFor,
) -> Result<()> {
    let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return msg("container init sent a seccomp listener, but the spec has no linux.seccomp");
    };
    send_to_agent(s, listener.as_fd(), pid, state_for(pid))
}

/// Sends a NOTIFY filter's listener fd to the seccomp agent at listenerPath, as the runtime
/// spec says: one message on a unix stream socket holding the container process state
/// (ociVersion, fds ["seccompFd"], pid, metadata, state) and the fd as SCM_RIGHTS. Runs in
/// `hull create`, outside the container, where the host path is reachable.
pub fn send_to_agent(
    s: &LinuxSeccomp,
    listener: BorrowedFd,
    pid: i32,
    state: serde_json::Value,
) -> Result<()> {
    let Some(path) = s.listener_path() else {
        return msg("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath");
    };
    let version = state.get("ociVersion").cloned().unwrap_or_else(|| crate::spec::OCI_VERSION.into());
    let mut msg_json = serde_json::json!({
        "ociVersion": version,
        "fds": [oci_spec::runtime::SECCOMP_FD_NAME],
        "pid": pid,
        "state": state,
    });
    if let (Some(m), Some(obj)) = (s.listener_metadata(), msg_json.as_object_mut()) {
        obj.insert("metadata".into(), m.clone().into());
    }
    let payload =
        serde_json::to_vec(&msg_json).map_err(|e| Error::Msg(format!("seccomp agent message: {e}")))?;
    let sock =
        UnixStream::connect(path).ctx(|| format!("connect to the seccomp agent at {}", path.display()))?;
    let fds = [listener.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&payload)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx(|| format!("send the seccomp listener to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a filter the way the kernel would, on one seccomp_data.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = &prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    a = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                0x54 => a &= i.k, // ALU AND K
                JMP_JA => pc += i.k as usize,
                RET_K => return i.k,
                c => {
                    let t = match c {
                        JMP_JEQ_K => a == i.k,
                        JMP_JGT_K => a > i.k,
                        JMP_JGE_K => a >= i.k,
                        JMP_JSET_K => a & i.k != 0,
                        _ => panic!("unknown opcode {c:#x}"),
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
            }
        }
    }

    fn spec(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    fn nr(name: &str) -> u32 {
        native().unwrap().nr(name).unwrap()
    }

    fn native_arch() -> u32 {
        native().unwrap().audit_arch()
    }

    fn call(f: &Filter, name: &str, args: [u64; 6]) -> u32 {
        run(&f.prog, native_arch(), nr(name), args)
    }

    const EPERM: u32 = RET_ERRNO | 1;

    #[test]
    fn allow_list_with_default_errno() {
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        assert_eq!(call(&f, "read", [0; 6]), RET_ALLOW);
        assert_eq!(call(&f, "write", [0; 6]), RET_ALLOW);
        assert_eq!(call(&f, "exit_group", [0; 6]), RET_ALLOW);
        assert_eq!(call(&f, "getpid", [0; 6]), EPERM);
        // Above every named syscall: ENOSYS (runc's stub).
        assert_eq!(run(&f.prog, native_arch(), 1000, [0; 6]), RET_ERRNO | 38);
        // Another architecture: killed.
        assert_eq!(run(&f.prog, 0x1234, 0, [0; 6]), RET_KILL_PROCESS);
    }

    #[test]
    fn every_action() {
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getuid"], "action": "SCMP_ACT_KILL"},
                {"names": ["getgid"], "action": "SCMP_ACT_KILL_THREAD"},
                {"names": ["geteuid"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["getegid"], "action": "SCMP_ACT_TRAP"},
                {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                {"names": ["getpgrp"], "action": "SCMP_ACT_LOG"},
                {"names": ["getsid"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
            ]
        })))
        .unwrap();
        assert!(f.needs_listener());
        assert_eq!(call(&f, "getpid", [0; 6]), RET_ERRNO | 42);
        assert_eq!(call(&f, "getppid", [0; 6]), EPERM);
        assert_eq!(call(&f, "getuid", [0; 6]), RET_KILL_THREAD);
        assert_eq!(call(&f, "getgid", [0; 6]), RET_KILL_THREAD);
        assert_eq!(call(&f, "geteuid", [0; 6]), RET_KILL_PROCESS);
        assert_eq!(call(&f, "getegid", [0; 6]), RET_TRAP);
        assert_eq!(call(&f, "gettid", [0; 6]), RET_TRACE | 7);
        assert_eq!(call(&f, "getpgrp", [0; 6]), RET_LOG);
        assert_eq!(call(&f, "getsid", [0; 6]), RET_USER_NOTIF);
        assert_eq!(call(&f, "read", [0; 6]), RET_ALLOW);
        assert_eq!(call(&f, "write", [0; 6]), RET_ALLOW);
        // A permissive default: no ENOSYS stub.
        assert_eq!(run(&f.prog, native_arch(), 1000, [0; 6]), RET_ALLOW);
    }

    #[test]
    fn default_errno_ret_and_kill_default() {
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5,
            "syscalls": [{"names": ["exit_group"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        assert_eq!(call(&f, "write", [0; 6]), RET_ERRNO | 5);
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "syscalls": [{"names": ["exit_group"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        assert_eq!(call(&f, "write", [0; 6]), RET_KILL_PROCESS);
    }

    fn one_arg(op: &str, value: u64, two: Option<u64>) -> Filter {
        let mut arg = serde_json::json!({"index": 1, "value": value, "op": op});
        if let Some(t) = two {
            arg["valueTwo"] = t.into();
        }
        compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [arg]}]
        })))
        .unwrap()
    }

    fn denied(f: &Filter, arg1: u64) -> bool {
        call(f, "personality", [0, arg1, 0, 0, 0, 0]) == EPERM
    }

    #[test]
    fn every_operator_on_64_bit_values() {
        let big = 0x1_0000_0005u64;
        let f = one_arg("SCMP_CMP_EQ", big, None);
        assert!(denied(&f, big) && !denied(&f, 5) && !denied(&f, big + 1));
        let f = one_arg("SCMP_CMP_NE", big, None);
        assert!(!denied(&f, big) && denied(&f, 5) && denied(&f, 0));
        let f = one_arg("SCMP_CMP_LT", big, None);
        assert!(denied(&f, 5) && denied(&f, big - 1) && !denied(&f, big) && !denied(&f, u64::MAX));
        let f = one_arg("SCMP_CMP_LE", big, None);
        assert!(
            denied(&f, big) && denied(&f, 0xffff_ffff) && !denied(&f, big + 1) && !denied(&f, 0x2_0000_0000)
        );
        let f = one_arg("SCMP_CMP_GT", big, None);
        assert!(denied(&f, big + 1) && denied(&f, 0x2_0000_0000) && !denied(&f, big) && !denied(&f, 6));
        let f = one_arg("SCMP_CMP_GE", big, None);
        assert!(denied(&f, big) && denied(&f, u64::MAX) && !denied(&f, big - 1) && !denied(&f, 0xffff_ffff));
        let f = one_arg("SCMP_CMP_MASKED_EQ", 0x1_0000_00f0, Some(0x1_0000_0010));
        assert!(
            denied(&f, 0x1_0000_0010)
                && denied(&f, 0xff_0000_001f)
                && !denied(&f, 0x10)
                && !denied(&f, 0x1_0000_0020)
        );
    }

    #[test]
    fn args_in_one_rule_are_anded_repeated_indexes_are_ored() {
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": 2, "op": "SCMP_CMP_EQ"}
            ]}]
        })))
        .unwrap();
        assert_eq!(call(&f, "personality", [1, 0, 2, 0, 0, 0]), EPERM);
        assert_eq!(call(&f, "personality", [1, 0, 3, 0, 0, 0]), RET_ALLOW);
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}
            ]}]
        })))
        .unwrap();
        assert_eq!(call(&f, "personality", [1; 6]), EPERM);
        assert_eq!(call(&f, "personality", [2; 6]), EPERM);
        assert_eq!(call(&f, "personality", [3; 6]), RET_ALLOW);
    }

    #[test]
    fn first_matching_rule_with_args_then_default() {
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [
                    {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 20, "op": "SCMP_CMP_LE"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        })))
        .unwrap();
        assert_eq!(call(&f, "socket", [16, 0, 0, 0, 0, 0]), RET_ERRNO | 22);
        assert_eq!(call(&f, "socket", [2, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(call(&f, "socket", [21, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(call(&f, "personality", [8, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(call(&f, "personality", [9, 0, 0, 0, 0, 0]), EPERM);
    }

    /// libseccomp's rules, which runc and crun follow: the first rule without args wins over
    /// every other rule for the syscall, in any order.
    #[test]
    fn the_first_rule_without_args_decides() {
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [
                    {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket", "setns"], "action": "SCMP_ACT_LOG"},
                {"names": ["setns"], "action": "SCMP_ACT_ERRNO"}
            ]
        })))
        .unwrap();
        assert_eq!(call(&f, "socket", [16, 0, 0, 0, 0, 0]), RET_LOG);
        assert_eq!(call(&f, "socket", [2, 0, 0, 0, 0, 0]), RET_LOG);
        assert_eq!(call(&f, "setns", [0; 6]), RET_LOG);
    }

    #[test]
    fn unknown_names_are_skipped() {
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["no_such_syscall", "read"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        assert_eq!(call(&f, "read", [0; 6]), RET_ALLOW);
    }

    #[test]
    fn bad_input_is_refused() {
        let bad = |v: serde_json::Value, want: &str| {
            let e = compile(&spec(v)).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        };
        bad(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}),
            "does not fit",
        );
        bad(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath",
        );
        bad(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
                {"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
            "sendmsg",
        );
        bad(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "index",
        );
        assert!(serde_json::from_value::<LinuxSeccomp>(
            serde_json::json!({"defaultAction": "SCMP_ACT_NOPE"})
        )
        .is_err());
    }

    #[test]
    fn flags_map_to_the_kernel_bits() {
        let s = spec(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [
            "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]}));
        let f = compile(&s).unwrap();
        assert_eq!(f.flags, (1 << 1) | (1 << 2) | 1);
        assert_eq!(flags(&s, true), (1 << 1) | (1 << 2) | 1 | (1 << 4));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_and_x32_sections() {
        let v = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
            "syscalls": [
                {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_GE"}]},
                {"names": ["chown32"], "action": "SCMP_ACT_ERRNO"}
            ]
        });
        let f = compile(&spec(v.clone())).unwrap();
        let keyctl_32 = Abi::X86.nr("keyctl").unwrap();
        let keyctl_x32 = Abi::X32.nr("keyctl").unwrap();
        assert_eq!(run(&f.prog, AUDIT_ARCH_X86_64, 250, [0; 6]), EPERM);
        assert_eq!(run(&f.prog, AUDIT_ARCH_I386, keyctl_32, [0; 6]), EPERM);
        assert_eq!(run(&f.prog, AUDIT_ARCH_X86_64, keyctl_x32, [0; 6]), EPERM);
        assert_eq!(run(&f.prog, AUDIT_ARCH_I386, Abi::X86.nr("chown32").unwrap(), [0; 6]), EPERM);
        assert_eq!(run(&f.prog, AUDIT_ARCH_X86_64, 0, [0; 6]), RET_ALLOW);
        // 64-bit comparison on x86_64 and x32; on x86 an argument is never >= 2^32.
        let pers = Abi::X86.nr("personality").unwrap();
        assert_eq!(run(&f.prog, AUDIT_ARCH_I386, pers, [0xffff_ffff, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&f.prog, AUDIT_ARCH_X86_64, 135, [0x1_0000_0000, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(&f.prog, AUDIT_ARCH_X86_64, 135, [0xffff_ffff, 0, 0, 0, 0, 0]), RET_ALLOW);
        // Without x32 and x86 listed, their syscalls are killed: a deny-list cannot be bypassed.
        let mut v2 = v;
        v2["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64"]);
        let f = compile(&spec(v2)).unwrap();
        assert_eq!(run(&f.prog, AUDIT_ARCH_X86_64, keyctl_x32, [0; 6]), RET_KILL_PROCESS);
        assert_eq!(run(&f.prog, AUDIT_ARCH_I386, keyctl_32, [0; 6]), RET_KILL_PROCESS);
        assert_eq!(run(&f.prog, AUDIT_ARCH_X86_64, 250, [0; 6]), EPERM);
    }

    /// A big allow-list, like Docker's profile, stays well inside the kernel's limit.
    #[test]
    fn large_profiles_fit() {
        let t = native().unwrap().table().unwrap();
        let names: Vec<&str> = t.iter().map(|(n, _)| *n).filter(|n| !n.starts_with('k')).collect();
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        assert!(f.prog.len() < 1000, "{} instructions", f.prog.len());
        for (n, _) in t {
            let want = if n.starts_with('k') { EPERM } else { RET_ALLOW };
            assert_eq!(call(&f, n, [0; 6]), want, "{n}");
        }
    }
}
