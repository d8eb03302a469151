//! How the kernel treats the container's process: oomScoreAdj, personality, ioPriority,
//! scheduler, execCPUAffinity.

use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};

use super::error::{msg, Context, Result};

/// process.oomScoreAdj, written while still on the host (children inherit it).
pub fn set_oom_score_adj(v: i32) -> Result<()> {
    std::fs::write("/proc/self/oom_score_adj", v.to_string())
        .ctx(|| format!("process.oomScoreAdj {v}: write /proc/self/oom_score_adj"))
}

/// linux.personality.
pub fn set_personality(p: &LinuxPersonality) -> Result<()> {
    let domain: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    if let Some(flags) = p.flags() {
        if !flags.is_empty() {
            return msg(format!("linux.personality.flags: unsupported flags {flags:?}"));
        }
    }
    // SAFETY: personality takes a plain integer.
    let rc = unsafe { libc::personality(domain) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error()).ctx(|| "linux.personality".to_string());
    }
    Ok(())
}

/// process.ioPriority through ioprio_set(IOPRIO_WHO_PROCESS, self).
pub fn set_io_priority(p: &LinuxIOPriority) -> Result<()> {
    let class: i64 = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return msg(format!("process.ioPriority.priority {} is not in 0..7", p.priority()));
    }
    let value = (class << 13) | p.priority();
    // SAFETY: ioprio_set takes integers only.
    let rc = unsafe {
        libc::syscall(libc::SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, value)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("process.ioPriority {:?}", p.class()));
    }
    Ok(())
}

/// struct sched_attr of sched_setattr(2) (not in libc).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

/// process.scheduler through sched_setattr(2).
pub fn set_scheduler(s: &Scheduler) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0).max(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: `attr` is a properly sized sched_attr that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("process.scheduler {:?}", s.policy()));
    }
    Ok(())
}

/// Parses a CPU list such as "0-3,7".
fn parse_cpus(list: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let (a, b): (usize, usize) = match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) if a <= b && b < libc::CPU_SETSIZE as usize => (a, b),
            _ => return msg(format!("process.execCPUAffinity: bad CPU list {list:?}")),
        };
        out.extend(a..=b);
    }
    Ok(out)
}

/// Pins this process to the CPUs in `list` (execCPUAffinity.initial or .final).
pub fn set_affinity(list: &str) -> Result<()> {
    let cpus = parse_cpus(list)?;
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in cpus {
        // SAFETY: c < CPU_SETSIZE was checked by parse_cpus.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("process.execCPUAffinity {list:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        assert_eq!(super::parse_cpus("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(super::parse_cpus("3-1").is_err());
        assert!(super::parse_cpus("x").is_err());
    }
}
